//! [`TcpOut`]: the outbound channel to a node reached over TCP, a handle on the connection
//! of the process hosting it (frames queue on the engine's reactor).

use super::lock;
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
        let mut r = lock(&self.reactor);
        if !r.is_open(self.conn) {
            return Err(PushError::Corrupt);
        }
        match r.send(self.conn, &h, parts) {
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
