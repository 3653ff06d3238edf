//! Large messages landed straight into the buffer of the `recv_into` that waits for them.
//!
//! A message whose frames are large enough to land (`transport::tcp::reactor::land`) would
//! be received by the kernel into a buffer of the engine's, queued, and copied into the
//! caller's buffer by `recv_into`: one more copy of every byte than a plain socket reader
//! makes. When the thread in `recv_into` polls the engine itself and the message's first
//! frame starts under the conditions of a straight hand-off (see [`super::straight`]:
//! a plain one-way message without metadata sent to the node itself, for the registration
//! the receive waits on, nothing of its ring, connection or the node's queue ahead of it),
//! and the message fits the caller's buffer, the caller's buffer is lent to the landing:
//! every frame of the message lands there, at its offset, over as many polls of the same
//! wait as it takes, and the message is handed over with nothing copied.
//!
//! The buffer is lent for the wait only. Whatever ends the wait, and a poll by anyone else,
//! first takes it back ([`Engine::spill_into`]): what came so far is copied into a buffer
//! of the engine's and the message goes on through the reassembly, as any other. So does a
//! landing that would arm a receive on the ring (the kernel could write after the wait).
//! While its buffer is lent, the wait takes nothing else into it.

use super::in_place::InPlace;
use super::lock;
use crate::engine::reassembly::{Key, Reassembly, Step};
use crate::engine::{Engine, MsgHeader, NodeName, FLAG_ONE_WAY};
use crate::ring::SlotHeader;
use crate::transport::tcp::{ConnId, Lent};
use std::ptr::NonNull;
use std::time::Instant;

/// A message landing into a waiting receive's buffer.
pub(super) struct Into {
    /// The wait it is for.
    pub(super) token: u64,
    /// The wait's buffer (`total` bytes of it are the message's).
    ptr: NonNull<u8>,
    /// Its sender's id.
    pub(super) source: NodeName,
    /// Its first frame's headers.
    pub(super) slot: SlotHeader,
    pub(super) m: MsgHeader,
    /// Bytes in place (a frame landing now holds more).
    pub(super) got: usize,
    /// The connection its frames come on.
    pub(super) conn: ConnId,
}

// SAFETY: the pointer stands for the exclusive borrow of the waiting receive's buffer, which
// the wait does not use while it is lent (see the module documentation); which thread
// writes through it, under the engine's lock, does not matter.
unsafe impl Send for Into {}

impl Into {
    /// The message of frame `slot` (message header `m`, `len` bytes of body) for the wait
    /// `token` whose buffer is `cap` bytes at `ptr`, when it can land there: a plain
    /// one-way data frame without metadata that starts a message fitting the buffer.
    pub(super) fn start(
        (token, ptr, cap): (u64, NonNull<u8>, usize),
        (slot, m, len): (SlotHeader, MsgHeader, usize),
        source: NodeName,
        conn: ConnId,
    ) -> Option<Into> {
        let plain = slot.kind == crate::codec::FrameKind::Data as u8
            && slot.flags == FLAG_ONE_WAY
            && slot.aux == 0;
        let total = m.total as usize;
        let fits = total <= cap && total <= crate::engine::MAX_MESSAGE;
        (plain && m.offset == 0 && len <= total && fits).then_some(Into {
            token,
            ptr,
            source,
            slot,
            m,
            got: 0,
            conn,
        })
    }

    /// The message's length.
    pub(super) fn total(&self) -> usize {
        self.m.total as usize
    }

    /// Whether frame `slot` (message header `m`, `len` bytes of body) that came on `conn`
    /// is the message's next.
    pub(super) fn continues(
        &self,
        conn: ConnId,
        slot: &SlotHeader,
        m: &MsgHeader,
        len: usize,
    ) -> bool {
        conn == self.conn
            && slot.kind == self.slot.kind
            && slot.flags == self.slot.flags
            && slot.aux == 0
            && m.origin == self.m.origin
            && m.id == self.m.id
            && m.dst == self.m.dst
            && m.total == self.m.total
            && m.offset as usize == self.got
            && len <= self.total() - self.got
    }

    /// The buffer, to land the next frame in after what is in place.
    pub(super) fn lend(&self) -> Lent {
        // SAFETY: `ptr` is the wait's buffer, `total` bytes of which are writable
        // (`Into::start`); the wait does not use them while they are lent, and they are
        // taken back before it ends (`Engine::spill_into`).
        unsafe { Lent::new(self.ptr, self.got, self.total()) }
    }

    /// Copies `bytes`, the body of the message's next frame (see [`Into::continues`]),
    /// into place.
    pub(super) fn append(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.total() - self.got);
        // SAFETY: `got + n <= total` bytes of the buffer are writable and lent to nothing
        // else now (no frame of the message lands); `bytes` is the decoder's.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(self.got), n)
        };
        self.got += n;
    }

    /// Whether the whole message is in place.
    pub(super) fn is_whole(&self) -> bool {
        self.got == self.total()
    }

    fn key(&self) -> Key {
        (self.m.origin, self.m.id, self.slot.kind)
    }

    /// Gives what is in place (no frame of it landing) to the reassembly, copied into a
    /// buffer of the engine's: the message goes on there. Returns it (its headers and
    /// bytes) if it is whole, which the caller delivers.
    pub(super) fn spill(
        self,
        partial: &mut Reassembly,
        now: Instant,
    ) -> Option<(SlotHeader, MsgHeader, Vec<u8>)> {
        // As large as what came: the reassembly grows it as the rest comes (the message's
        // claimed length, which its sender chooses, reserves nothing).
        let v = self.lend().to_vec(self.got);
        match partial.put_back(self.key(), self.total(), v, now) {
            Step::Done(whole) => Some((self.slot, self.m, whole)),
            Step::More => None,
            Step::Rejected => {
                partial.note_abandoned();
                None
            }
        }
    }

    /// [`Into::spill`] into the reassembly of a reap, which delivers the message if it is
    /// whole.
    pub(super) fn spill_to(self, place: &mut InPlace<'_>) {
        if let Some(w) = self.spill(place.partial, place.now) {
            place.whole.push(w);
        }
    }
}

impl Engine {
    /// Takes the buffer of a waiting receive back from the message landing into it, if
    /// one does: what came so far goes on through the reassembly (see the module
    /// documentation). `token`: only for that wait (`None`: whichever wait it is for).
    pub(crate) fn spill_into(&mut self, token: Option<u64>) {
        let now = self.timers.now;
        let Some(h) = self.hosts.as_mut() else {
            return;
        };
        if token.is_some_and(|t| h.into.as_ref().is_none_or(|i| i.token != t)) {
            return;
        }
        let Some(i) = h.into.take() else {
            return;
        };
        h.counters.taken_back += 1;
        if lock(&h.reactor).spill_landing(i.conn).is_some() {
            // A frame of it is landing: its buffer, now the engine's, holds the message so
            // far, and comes back to the reassembly with the frame (`Event::Landed`).
            return;
        }
        if let Some((slot, m, whole)) = i.spill(&mut self.partial, now) {
            self.deliver_assembled(slot, &m, whole);
        }
    }

    /// The bytes in place of the message landing into the buffer of wait `token`, if one
    /// does.
    pub(crate) fn lends_to(&self, token: u64) -> Option<usize> {
        self.hosts
            .as_ref()
            .and_then(|h| h.into.as_ref())
            .filter(|i| i.token == token)
            .map(|i| i.got)
    }
}
