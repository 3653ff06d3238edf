//! TCP between hosts, driven by io_uring: [`wire`] cuts a stream into the ring's frames
//! (with the receiving node and lane, since one connection carries every channel between
//! two processes) and checks what another host sent; [`reactor`] drives the connections
//! of an engine with one io_uring (batched sends, a multishot receive per connection into
//! provided buffers, or single receives where the kernel lacks them).
//!
//! The engine does not open these connections yet: they are the layer the transport
//! between hosts is built on, tested here on loopback.

pub mod control;
pub mod directory;
pub mod reactor;
pub mod wire;

pub use directory::{is_remote, Directory, RemoteNode, REMOTE_BASE};
pub use reactor::{ConnId, Event, Reactor, RecvMode};
pub use wire::{Decoder, FrameHeader};

#[cfg(test)]
mod tests;
