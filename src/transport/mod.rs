//! Transports: how bytes reach another node. On one host, the node [`registry`] in shared
//! memory tells every process which nodes exist and who hosts them, and channels carry the
//! frames: behind the [`Transport`] trait ([`link`]), rings in process memory
//! ([`memory::InProcess`]) between nodes of one process and rings in shared-memory files
//! ([`shm::SharedMemory`]) between processes; [`channel`] names the files.

pub mod channel;
pub mod direct;
pub mod link;
pub mod memory;
pub mod registry;
pub mod shm;
pub mod stats;
pub mod tcp;

pub use link::{Accepted, Connected, Inbound, Outbound, Transport};
