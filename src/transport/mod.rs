//! Transports: how bytes reach another node. On one host, the node [`registry`] in shared
//! memory tells every process which nodes exist and who hosts them, and [`channel`]s (pairs
//! of shared-memory rings) carry the messages.

pub mod channel;
pub mod direct;
pub mod registry;
