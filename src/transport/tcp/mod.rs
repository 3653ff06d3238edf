//! TCP between hosts, driven by io_uring: [`wire`] cuts a stream into the ring's frames
//! (with the receiving node and lane, since one connection carries every channel between
//! two processes) and checks what another host sent; [`reactor`] drives the connections
//! of an engine with one io_uring (batched sends, a multishot receive per connection into
//! provided buffers, or single receives where the kernel lacks them); [`control`] and
//! [`directory`] are the announcements of nodes and the indices of other hosts' nodes.
//! The engine's side of the connections is `engine::hosts`.

pub mod control;
pub mod directory;
pub mod reactor;
pub mod wire;

pub use directory::{is_remote, Directory, RemoteNode, REMOTE_BASE};
pub use reactor::{Body, ConnId, Event, Lent, Reactor, RecvMode};
pub use wire::{Decoder, FrameHeader};

/// Largest frame payload on a connection: 256 KiB of a message's body and room for its
/// message header. A message to a node that the process at the other end hosts travels in
/// fragments of 256 KiB (so that a message of a power-of-two size has no short last
/// frame): fewer, larger frames than a shared-memory lane's; a frame that must be
/// forwarded on this host still fits its lane.
pub const MAX_FRAME: usize = (256 << 10) + 64;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_direct;
#[cfg(test)]
mod tests_land;
