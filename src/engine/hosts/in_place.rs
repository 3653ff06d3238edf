//! Messages put together as their frames arrive over TCP, not through an inbound ring.
//!
//! Through a ring, every byte of a large message is copied three times after the kernel's
//! receive: into the ring, out of it into the message being put together, and into the
//! reader's buffer. A frame that is a fragment of a larger message, or a message of at least
//! [`IN_PLACE_MIN`] bytes in one frame, skips the ring when nothing of its ring or of its
//! connection waits ahead of it (so it stays in order): its body goes straight into its
//! message, and a frame large enough to be landed (`transport::tcp::reactor::land`) is
//! received there by the kernel, with no copy at all. A message made whole this way is
//! delivered right after the reap, before any frame that came after it leaves its ring.
//!
//! Back-pressure still holds: a frame for a node whose mailbox is full, or that comes after
//! [`IN_PLACE_BUDGET`] bytes of messages in one reap, goes through its ring, which holds
//! the connection once full.

use super::{lock, Lane};
use crate::codec::FrameKind;
use crate::engine::reassembly::{self, Reassembly, Step};
use crate::engine::Engine;
use crate::engine::{Counters, MsgHeader, MAX_MESSAGE};
use crate::ring::SlotHeader;
use crate::transport::tcp::ConnId;
use std::time::Instant;

/// The smallest message that comes in one frame and is delivered from a buffer of its own
/// rather than through its ring: below, the ring's copy costs little and a handler reads
/// the message in place; above, copying it into the ring, then out of it, doubles the
/// copies of every byte.
pub(super) const IN_PLACE_MIN: usize = 16 << 10;

/// Bytes of messages put together by one reap, after which its frames go through their
/// rings: the reactor reaps for as long as frames come, and the mailboxes these messages
/// go to are filled only once it is done, so without a bound a flood would overfill them.
pub(super) const IN_PLACE_BUDGET: usize = 4 << 20;

/// A message buffer lent to a connection that lands a frame into it: out of the
/// reassembly's map meanwhile, so counted here, and freed with its connection when the
/// peer stops inside the frame (see [`Engine::expire_landings`]).
pub(super) struct Lending {
    pub(super) since: Instant,
    /// The message's bytes once the frame is whole.
    pub(super) bytes: usize,
}

impl Engine {
    /// Closes the connections whose peer stopped for [`reassembly::TIMEOUT`] inside a frame
    /// landing into a message (the message is abandoned, as one whose fragments stop
    /// coming is): the buffer lent to it is freed with the connection.
    pub(crate) fn expire_landings(&mut self, now: Instant) {
        let Some(h) = self.hosts.as_mut() else {
            return;
        };
        let stale: Vec<ConnId> = h
            .lending
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.since) >= reassembly::TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            h.lending.remove(&id);
            self.partial.note_abandoned();
            let mut r = lock(&h.reactor);
            if h.into.take_if(|i| i.conn == id).is_some() {
                // A waiting receive's buffer: taken back now (the message, counted
                // abandoned here, is not counted again when the close is reaped).
                r.spill_landing(id);
                h.counters.taken_back += 1;
            }
            r.fail_conn(id, "the peer stopped inside a frame".into());
        }
    }

    /// Messages lent to connections landing a frame, and their bytes.
    pub(crate) fn lent_reassemblies(&self) -> (usize, usize) {
        self.hosts.as_ref().map_or((0, 0), |h| {
            (h.lending.len(), h.lending.values().map(|l| l.bytes).sum())
        })
    }
}

/// The reassembly of one reap's frames (see the module documentation).
pub(super) struct InPlace<'a> {
    pub(super) partial: &'a mut Reassembly,
    pub(super) counters: &'a mut Counters,
    pub(super) now: Instant,
    /// Messages made whole: slot header, message header, metadata and data.
    pub(super) whole: Vec<(SlotHeader, MsgHeader, Vec<u8>)>,
    bytes: usize,
    /// Frames added, and of those landed (for [`super::HostCounters`]).
    pub(super) added: u64,
    pub(super) landed: u64,
}

impl<'a> InPlace<'a> {
    pub(super) fn new(
        partial: &'a mut Reassembly,
        counters: &'a mut Counters,
        now: Instant,
    ) -> Self {
        InPlace {
            partial,
            counters,
            now,
            whole: Vec::new(),
            bytes: 0,
            added: 0,
            landed: 0,
        }
    }

    /// Whether a frame of `kind` with message header `m` and `len` bytes of body, for ring
    /// `key`, is put together here (or, a message in one large frame, delivered from its
    /// own buffer): it is for the node it came to (not forwarded), is no ping (whose path
    /// is mapped on the way), and is a fragment or a large message; `full`: the node's
    /// mailbox is full. The caller checks that nothing waits ahead of it.
    pub(super) fn takes(
        &self,
        kind: u8,
        m: &MsgHeader,
        len: usize,
        key: (u32, u32, Lane),
        full: bool,
    ) -> bool {
        let whole = m.offset == 0 && len == m.total as usize;
        let ping = matches!(
            FrameKind::from_u8(kind),
            Some(FrameKind::Ping | FrameKind::Pong)
        );
        m.dst == key.1
            && !ping
            && (!whole || len >= IN_PLACE_MIN)
            && self.bytes < IN_PLACE_BUDGET
            && !full
    }

    /// Adds the body `rest` of frame `slot` (message header `m`) to its message.
    pub(super) fn add(&mut self, slot: SlotHeader, m: MsgHeader, rest: &[u8]) {
        self.count(rest.len());
        let (offset, total) = (m.offset as usize, m.total as usize);
        let step = if offset == 0 && rest.len() == total {
            let mut whole = crate::buffer::recycle::take(total);
            whole.extend_from_slice(rest);
            Step::Done(whole)
        } else {
            let key = (m.origin, m.id, slot.kind);
            self.partial
                .add(key, (offset, total), &[rest], MAX_MESSAGE, self.now)
        };
        self.step(slot, m, step);
    }

    /// The buffer the `len` bytes of body of frame `slot` are received into (its message
    /// so far), or `None` when the frame does not follow what arrived.
    pub(super) fn lend(&mut self, slot: SlotHeader, m: &MsgHeader, len: usize) -> Option<Vec<u8>> {
        let key = (m.origin, m.id, slot.kind);
        let span = (m.offset as usize, m.total as usize);
        self.partial.lend(key, span, len, MAX_MESSAGE)
    }

    /// Takes back the buffer lent for frame `slot`, its `len` bytes of body received.
    pub(super) fn put_back(&mut self, slot: SlotHeader, m: MsgHeader, len: usize, body: Vec<u8>) {
        self.landed += 1;
        self.count(len);
        let key = (m.origin, m.id, slot.kind);
        let step = self.partial.put_back(key, m.total as usize, body, self.now);
        self.step(slot, m, step);
    }

    fn count(&mut self, len: usize) {
        self.added += 1;
        self.counters.frames_received += 1;
        self.counters.bytes_received += len as u64;
    }

    fn step(&mut self, slot: SlotHeader, m: MsgHeader, step: Step) {
        match step {
            Step::More => {}
            Step::Rejected => self.counters.errors += 1,
            Step::Done(whole) => {
                self.bytes += whole.len();
                self.whole.push((slot, m, whole));
            }
        }
    }
}
