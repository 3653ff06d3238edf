//! The [`Transport`] trait: how frames reach another node, whatever carries them. A
//! transport opens the outbound half of a channel ([`Outbound`]: where frames are pushed)
//! and accepts the inbound halves peers opened toward the nodes of this process
//! ([`Inbound`]: where frames are taken in place). Frames are the ring's: a slot header and a
//! payload of at most the channel's limit.
//!
//! Implemented by [`super::memory::InProcess`] (rings in process memory between nodes of one
//! process) and [`super::shm::SharedMemory`] (rings in files of the fabric directory between
//! processes of one host); a transport between hosts implements the same three traits.

use crate::error::Result;
use crate::ring::{Consumer, Corrupt, Producer, PushError, Region, SlotHeader};
use crate::transport::channel::Lane;

/// The sending half of a channel.
pub trait Outbound: Send {
    /// Pushes one frame whose payload is the concatenation of `parts` (see
    /// [`Producer::try_push`]).
    fn try_push(&mut self, header: SlotHeader, parts: &[&[u8]]) -> Result<(), PushError>;
    /// Whether the receiver found the channel corrupt (it reads nothing more from it).
    fn is_corrupt(&self) -> bool;
    /// Whether a frame of `len` payload bytes fits now (see [`Producer::has_room`]).
    fn has_room(&mut self, len: usize) -> bool;
    /// Whether the receiver took every frame pushed (see [`Producer::is_drained`]).
    fn is_drained(&mut self) -> bool;
    /// What the channel carried, when it is a ring: (messages, payload bytes, slots queued,
    /// slots), for operators' tools.
    fn traffic(&self) -> Option<(u64, u64, u64, u64)> {
        None
    }
    /// Whether the channel is a connection to another host (its traffic is known only to
    /// this process), not a ring of shared memory.
    fn is_connection(&self) -> bool {
        false
    }
    /// Marks a timing probe if frames wait for the receiver (see [`crate::ring::Probe`]);
    /// channels without one ignore it.
    fn mark_probe(&mut self, _now_ns: u64) {}
    /// Counts `bytes` of data handed over by descriptor with the last frame as carried.
    fn count_carried(&mut self, _bytes: u64) {}
    /// The timing probes the receiver completed and the sum of their delays (ns), when the
    /// channel is a ring.
    fn probes(&self) -> Option<(u64, u64)> {
        None
    }
}

/// The receiving half of a channel.
pub trait Inbound: Send {
    /// Whether a frame is waiting (a few loads).
    fn ready(&mut self) -> bool;
    /// Reads the next frame: `f` gets its header and payload, in place, and answers whether
    /// it took the frame; one it did not take stays the channel's next (back-pressure from a
    /// reader that cannot pass it on now). `Ok(Some(taken))` for a frame read, `Ok(None)`
    /// when there is none, `Err` once the channel was found corrupt (nothing more is read).
    fn try_pop(
        &mut self,
        f: &mut dyn FnMut(SlotHeader, &[u8]) -> bool,
    ) -> Result<Option<bool>, Corrupt>;
    /// Why the channel was found corrupt, if it was.
    fn corruption(&self) -> Option<Corrupt>;
    /// Whether frames are left to read.
    fn has_message(&self) -> bool;
}

/// What [`Transport::connect`] opens: the sending half, and the receiving half when it is
/// this process's to poll.
pub type Connected = (Box<dyn Outbound>, Option<Box<dyn Inbound>>);

/// An inbound channel a transport accepted: from `src` to hosted node `dst` on `lane`.
pub struct Accepted {
    /// Sending node.
    pub src: u32,
    /// Receiving (hosted) node.
    pub dst: u32,
    /// Lane.
    pub lane: Lane,
    /// Its receiving half.
    pub inbound: Box<dyn Inbound>,
    /// It replaces an earlier channel of the same (src, dst, lane), whose sender is gone:
    /// drop that one.
    pub replaces: bool,
}

/// How frames reach nodes (see the module documentation).
pub trait Transport: Send {
    /// Its name, for reports.
    fn name(&self) -> &'static str;
    /// Opens the channel from `src` (a node of this process) to `dst` on `lane` with room
    /// for `slots` slots. The receiving half comes back too when it is this process's to
    /// poll (a channel inside the process); otherwise the receiver's transport accepts it.
    fn connect(&mut self, ends: (u32, u32, Lane), slots: usize) -> Result<Connected>;
    /// Adds to `out` the channels toward nodes for which `hosted` is true that peers opened
    /// since the last call (cheap when nothing changed).
    fn accept(&mut self, hosted: &dyn Fn(u32) -> bool, out: &mut Vec<Accepted>);
    /// Forgets what it knows of channels from or to node `index` (it left), so a new
    /// channel under the same name is accepted again.
    fn forget(&mut self, index: u32);
}

impl Outbound for Producer<Region> {
    #[inline]
    fn try_push(&mut self, header: SlotHeader, parts: &[&[u8]]) -> Result<(), PushError> {
        Producer::try_push(self, header, parts)
    }

    #[inline]
    fn is_corrupt(&self) -> bool {
        Producer::is_corrupt(self)
    }

    #[inline]
    fn has_room(&mut self, len: usize) -> bool {
        Producer::has_room(self, len)
    }

    fn is_drained(&mut self) -> bool {
        Producer::is_drained(self)
    }

    fn traffic(&self) -> Option<(u64, u64, u64, u64)> {
        let (m, b, q) = Producer::traffic(self);
        Some((m, b, q, self.capacity() as u64))
    }

    fn mark_probe(&mut self, now_ns: u64) {
        Producer::mark_probe(self, now_ns)
    }

    fn count_carried(&mut self, bytes: u64) {
        Producer::count_carried(self, bytes)
    }

    fn probes(&self) -> Option<(u64, u64)> {
        Producer::probes(self)
    }
}

impl Inbound for Consumer<Region> {
    #[inline]
    fn ready(&mut self) -> bool {
        Consumer::ready(self)
    }

    #[inline]
    fn try_pop(
        &mut self,
        f: &mut dyn FnMut(SlotHeader, &[u8]) -> bool,
    ) -> Result<Option<bool>, Corrupt> {
        Consumer::try_pop_or_leave(self, |h, d| {
            let taken = f(h, d);
            (taken, taken)
        })
    }

    fn corruption(&self) -> Option<Corrupt> {
        Consumer::corruption(self)
    }

    fn has_message(&self) -> bool {
        Consumer::has_message(self)
    }
}
