//! Zero-copy buffers: [`BufferManager`] owns a pool of equal buffers in one mapping (private,
//! or a shared-memory file other processes map) with a lock-free free list in the same
//! mapping; [`ZeroCopyBuffer`] is one buffer, returned to its pool when dropped.

pub mod freelist;

#[cfg(not(loom))]
mod pool;

#[cfg(not(loom))]
pub use pool::{BufferDescriptor, BufferManager, Payload, PoolHeader, ZeroCopyBuffer, POOL_MAGIC};
