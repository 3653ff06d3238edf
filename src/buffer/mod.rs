//! Zero-copy buffers: [`BufferManager`] owns a pool of equal buffers in one mapping (private,
//! or a shared-memory file other processes map) with a lock-free free list and a lending
//! record per buffer in the same mapping; [`ZeroCopyBuffer`] is one buffer, returned to its
//! pool when dropped; [`Payload`] holds received bytes, possibly a buffer of the sender's
//! pool read in place.

pub mod freelist;

#[cfg(not(loom))]
mod payload;
#[cfg(not(loom))]
mod pool;
pub(crate) mod recycle;
#[cfg(not(loom))]
mod registered;
#[cfg(not(loom))]
mod zero_copy;

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(not(loom))]
pub use payload::Payload;
#[cfg(not(loom))]
pub use pool::{BufferDescriptor, BufferManager, PoolHeader, POOL_MAGIC, STATE_CORRUPT};
#[cfg(not(loom))]
pub use registered::MemoryRegion;
#[cfg(not(loom))]
pub use zero_copy::ZeroCopyBuffer;
