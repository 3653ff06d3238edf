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
use std::sync::{Arc, Mutex};

/// Frames to node `dst` (this process's index) on `lane` over connection `conn`.
pub struct TcpOut {
    reactor: Arc<Mutex<Reactor>>,
    conn: ConnId,
    dst: u32,
    lane: Lane,
}

impl TcpOut {
    pub(super) fn new(reactor: Arc<Mutex<Reactor>>, conn: ConnId, dst: u32, lane: Lane) -> TcpOut {
        TcpOut {
            reactor,
            conn,
            dst,
            lane,
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
            Ok(true) => Ok(()),
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
