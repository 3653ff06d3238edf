//! [`TcpOut`]: the outbound channel to a node reached over TCP, a handle on the connection
//! of the process hosting it (frames queue on the engine's reactor).

use super::lock;
use crate::codec::FrameKind;
use crate::engine::{MsgHeader, FLAG_COMPACT, FLAG_DESCRIPTOR, FLAG_ONE_WAY, FLAG_SEQ, MSG_HEADER};
use crate::error::Result;
use crate::ring::{PushError, SlotHeader};
use crate::transport::channel::Lane;
use crate::transport::tcp::{ConnId, FrameHeader, Reactor};
use crate::transport::Outbound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Frames to node `dst` (this process's index) on `lane` over connection `conn`.
pub struct TcpOut {
    reactor: Arc<Mutex<Reactor>>,
    conn: ConnId,
    dst: u32,
    lane: Lane,
    /// Frames and payload bytes taken by the connection from this node pair.
    sent: Arc<Sent>,
}

/// Frames and payload bytes a pair of nodes sent over connections. Written only by the
/// engine that holds the channels (plain stores, no read-modify-write), read by the thread
/// that publishes the process's counters.
#[derive(Debug, Default)]
pub struct Sent {
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl Sent {
    fn add(&self, bytes: usize) {
        let m = self.messages.load(Ordering::Relaxed);
        self.messages.store(m + 1, Ordering::Relaxed);
        let b = self.bytes.load(Ordering::Relaxed);
        self.bytes.store(b + bytes as u64, Ordering::Relaxed);
    }

    /// (frames, payload bytes).
    pub fn get(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

impl TcpOut {
    pub(super) fn new(
        reactor: Arc<Mutex<Reactor>>,
        conn: ConnId,
        dst: u32,
        lane: Lane,
        sent: Arc<Sent>,
    ) -> TcpOut {
        TcpOut {
            reactor,
            conn,
            dst,
            lane,
            sent,
        }
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        lock(&self.reactor).is_open(self.conn)
    }
}

impl Outbound for TcpOut {
    fn try_push(&mut self, header: SlotHeader, parts: &[&[u8]]) -> Result<(), PushError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let h = FrameHeader {
            slot: SlotHeader {
                len: u32::try_from(len).map_err(|_| PushError::TooLarge)?,
                ..header
            },
            dst: self.dst,
            lane: self.lane,
        };
        let note = one_way_end(&header, parts, len);
        let mut r = lock(&self.reactor);
        if !r.is_open(self.conn) {
            return Err(PushError::Corrupt);
        }
        match r.send_noted(self.conn, &h, parts, note) {
            Ok(true) => {
                self.sent.add(len);
                Ok(())
            }
            Ok(false) => Err(PushError::Full),
            Err(crate::Error::InvalidArgument(_)) => Err(PushError::TooLarge),
            Err(_) => Err(PushError::Corrupt),
        }
    }

    /// A closed connection reads as corrupt: nothing pushed will be read.
    fn is_corrupt(&self) -> bool {
        !self.is_open()
    }

    fn has_room(&mut self, len: usize) -> bool {
        lock(&self.reactor).has_room(self.conn, len)
    }

    fn is_drained(&mut self) -> bool {
        lock(&self.reactor).is_flushed(self.conn)
    }

    /// Queued bytes and the queue's limit in slot-sized units, as a ring's slots are.
    fn traffic(&self) -> Option<(u64, u64, u64, u64)> {
        let (queued, limit) = lock(&self.reactor).queued_bytes(self.conn);
        let slots = |b: usize| b.div_ceil(crate::ring::SLOT_SIZE) as u64;
        let (messages, bytes) = self.sent.get();
        Some((messages, bytes, slots(queued), slots(limit)))
    }

    fn is_connection(&self) -> bool {
        true
    }
}

/// (sending node, receiving node) of a frame that ends a one-way data message not sequenced
/// end to end: what the connection's receipts are to vouch for (see
/// `transport::tcp::reactor::receipts`). A sequenced frame has its stream for that.
fn one_way_end(header: &SlotHeader, parts: &[&[u8]], len: usize) -> Option<(u32, u32)> {
    let plain = header.flags & (FLAG_SEQ | FLAG_DESCRIPTOR | FLAG_COMPACT) == 0;
    if header.kind != FrameKind::Data as u8 || header.flags & FLAG_ONE_WAY == 0 || !plain {
        return None;
    }
    let first = parts.first().filter(|p| p.len() >= MSG_HEADER)?;
    let m = MsgHeader::decode(first);
    let end = m.offset as usize + (len - MSG_HEADER);
    (end >= m.total as usize).then_some((header.src, m.dst))
}
