//! Messages handed straight to the receive that polls the engine. A thread in `recv` or
//! `recv_into` polls the engine itself when no engine thread runs; a whole plain one-way
//! message that came over TCP for its node (sent to the node itself, not to a hop on its
//! way) then goes into its sink as the frame is cut from the stream: no inbound ring, no
//! dispatch, no queue, no message built for a `recv_into`. Only for the registration the
//! receive waits on (not one that took its index since), and only when nothing can have
//! to come out before it: the node has no handler
//! and nothing queued (checked once before the reap: during it, nothing joins the queue),
//! nothing of the frame's ring or connection waits, and no message made whole earlier in
//! the same reap goes to the node. Everything else takes the inbound rings as before.

use crate::codec::FrameKind;
use crate::engine::mailbox::{hand, hand_landed, Mailbox, Sink};
use crate::engine::{MsgHeader, NodeName, FLAG_ONE_WAY};
use crate::ring::SlotHeader;

/// The receive that polls the engine: the mailbox it waits on (of one registration of its
/// node) and its sink.
pub struct Want<'s, 'b> {
    mailbox: &'s Mailbox,
    sink: &'s mut Sink<'b>,
    /// The wait this poll is part of: the same for every poll of one receive.
    token: u64,
}

impl<'s, 'b> Want<'s, 'b> {
    /// A poll for the receive from `mailbox` into `sink`, of the wait `token` (unique
    /// among the waits of the process, see [`Want::next_token`]).
    pub fn new(mailbox: &'s Mailbox, sink: &'s mut Sink<'b>, token: u64) -> Self {
        Want {
            mailbox,
            sink,
            token,
        }
    }

    /// A token for a new wait.
    pub fn next_token() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Its node's index.
    pub(super) fn node(&self) -> u32 {
        self.mailbox.node()
    }

    /// Whether `mailbox` is the one it waits on: not that of a registration that took the
    /// index of the one it waits for, which left.
    pub(super) fn waits_on(&self, mailbox: &Mailbox) -> bool {
        std::ptr::eq(self.mailbox, mailbox)
    }
}

/// A [`Want`] while the engine reaps: the node's id, and what was handed to it.
pub(super) struct Straight<'w, 's, 'b> {
    want: &'w mut Want<'s, 'b>,
    id: NodeName,
    /// Messages handed, and their bytes (metadata and data, as the dispatch counts them).
    pub(super) handed: u64,
    pub(super) bytes: u64,
    /// Of those, messages landed into the receive's buffer (see `into_buffer`).
    pub(super) into_buffers: u64,
}

impl<'w, 's, 'b> Straight<'w, 's, 'b> {
    /// The reap's view of `want`, whose node's id is `id`.
    pub(super) fn new(want: &'w mut Want<'s, 'b>, id: NodeName) -> Self {
        Straight {
            want,
            id,
            handed: 0,
            bytes: 0,
            into_buffers: 0,
        }
    }

    /// Whether frame `slot` sent to node `to` (its message header `m` and the `rest_len`
    /// bytes after it, mapped onto this process's indices) is a whole plain one-way message
    /// for the node, at the end of its route (one for another node goes its next hop).
    #[inline]
    pub(super) fn fits(&self, to: u32, slot: &SlotHeader, m: &MsgHeader, rest_len: usize) -> bool {
        slot.kind == FrameKind::Data as u8
            && slot.flags == FLAG_ONE_WAY
            && to == self.want.node()
            && m.dst == to
            && m.offset == 0
            && m.total as usize == rest_len
            && slot.aux as usize <= rest_len
    }

    /// Whether a frame sent to node `to`, its message header `m`, ends its route at the
    /// receive's node.
    pub(super) fn ends_at(&self, to: u32, m: &MsgHeader) -> bool {
        to == self.want.node() && m.dst == to
    }

    /// The wait's token.
    pub(super) fn token(&self) -> u64 {
        self.want.token
    }

    /// The buffer of a `recv_into` that holds nothing yet: its start and length.
    pub(super) fn buffer(&mut self) -> Option<(std::ptr::NonNull<u8>, usize)> {
        match &mut *self.want.sink {
            Sink::Buffer {
                buf,
                got: None,
                too_large: None,
                spill: None,
            } => Some((std::ptr::NonNull::new(buf.as_mut_ptr())?, buf.len())),
            _ => None,
        }
    }

    /// Hands over the message of `source` (its first frame's header `m`) whose `len` bytes
    /// of data were landed into the buffer ([`Straight::buffer`]).
    pub(super) fn hand_landed(&mut self, source: NodeName, m: &MsgHeader, len: usize) {
        let node = (self.want.node(), self.id);
        if hand_landed(self.want.sink, node, source, m, len) {
            self.handed += 1;
            self.into_buffers += 1;
            self.bytes += len as u64;
        }
    }

    /// Hands the message of a frame that [`fits`](Self::fits) (from `source`, its header
    /// `m`, `rest` its metadata then data) to the sink, if the sink takes it. Returns
    /// whether it did.
    pub(super) fn hand(&mut self, source: NodeName, m: &MsgHeader, meta: u16, rest: &[u8]) -> bool {
        let (metadata, data) = rest.split_at(meta as usize);
        let node = (self.want.node(), self.id);
        let handed = hand(self.want.sink, node, source, m, (metadata, data));
        if handed {
            self.handed += 1;
            self.bytes += rest.len() as u64;
        }
        handed
    }
}
