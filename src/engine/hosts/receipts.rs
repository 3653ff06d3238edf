//! Receipts on connections (see `transport::tcp::reactor::receipts`): this engine tells each
//! peer how many of its frames it took, and learns from the peer's receipts which of its
//! one-way messages arrived. Those a closed connection carried and its peer never receipted
//! are failures of their pair, reported by the pair's next send like those of a stream.

use super::lock;
use crate::engine::Engine;
use crate::error::ErrorKind;
use crate::transport::tcp::control::{control_header, KIND_RECEIPT, RECEIPT_DROPPED, RECEIPT_LEN};
use crate::transport::tcp::{ConnId, FrameHeader};

/// Frames taken on a connection after which a receipt goes at once (else the periodic tick
/// sends one, every [`HEARTBEAT_INTERVAL`](crate::engine::HEARTBEAT_INTERVAL)): what the
/// peer keeps in mind stays small under a flood of small messages.
pub const RECEIPT_EVERY: u64 = 256;

/// Why messages counted by [`Engine::unreceipted`] failed.
const WHY: &str = "the connection to the host of their receiver closed";

impl Engine {
    /// Sends a receipt on every connection that took frames since its last one (`urgent`:
    /// only on those that took [`RECEIPT_EVERY`] or more).
    pub(super) fn send_receipts(&mut self, urgent: bool) {
        let Some(h) = self.hosts.as_mut() else { return };
        let limit = if urgent { RECEIPT_EVERY } else { 1 };
        if !h.links.values().any(|l| l.arrived - l.receipted >= limit) {
            return;
        }
        let mut r = lock(&h.reactor);
        for (&id, l) in h.links.iter_mut() {
            if l.arrived - l.receipted < limit {
                continue;
            }
            let fh = receipt_header(0);
            // A control frame: taken past the queue limits, and not numbered itself.
            if r.send_control(id, &fh, &l.arrived.to_le_bytes()).is_ok() {
                l.receipted = l.arrived;
            }
        }
    }

    /// Tells the peers which frames this engine took and dropped (see
    /// [`RECEIPT_DROPPED`]): numbered among the frames taken off their connection.
    pub(super) fn send_drops(&mut self, drops: &[(ConnId, u64)]) {
        let Some(h) = self.hosts.as_mut() else { return };
        let mut r = lock(&h.reactor);
        for &(id, number) in drops {
            let fh = receipt_header(RECEIPT_DROPPED);
            let _ = r.send_control(id, &fh, &number.to_le_bytes());
        }
    }

    /// Applies receipts that came (connection, `aux`, body): a count releases notes, a
    /// dropped frame makes its one-way message a failure of its pair. Returns the
    /// connections to close, with why.
    pub(super) fn take_receipts(
        &mut self,
        receipts: Vec<(ConnId, u16, [u8; RECEIPT_LEN])>,
    ) -> Vec<(ConnId, String)> {
        let mut refused = Vec::new();
        let Some(h) = self.hosts.as_mut() else {
            return refused;
        };
        let mut failed = Vec::new();
        {
            let mut r = lock(&h.reactor);
            for (id, aux, b) in receipts {
                let n = u64::from_le_bytes(b);
                let done = match aux {
                    0 => r.receipt(id, n),
                    RECEIPT_DROPPED => r.dropped(id, n).map(|pair| failed.extend(pair)),
                    _ => Err("a receipt of an unknown form"),
                };
                if let Err(why) = done {
                    refused.push((id, why.to_string()));
                }
            }
        }
        let why = "its receiving node was no longer on its host when it arrived";
        self.fail_noted(failed, why, false);
        refused
    }

    /// What a process owes its peers before a node of it leaves, or it closes: the
    /// acknowledgements due and the receipts of every frame taken, handed on. Waits a few
    /// milliseconds at most: for connections whose queues are full, and, when
    /// acknowledgements went, for the processes of this host that pass them on to take them
    /// from their rings (one that read the departure first would find their source gone).
    pub fn settle_before_leaving(&mut self) {
        let acked = self.flush_acks_now();
        self.send_receipts(false);
        if acked {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(50);
            let hosted = &self.hosted;
            while self.out.iter_mut().any(|(&(_, dst, _), o)| {
                !hosted.contains_key(&dst) && !o.is_connection() && !o.is_drained()
            }) && std::time::Instant::now() < until
            {
                std::thread::yield_now();
            }
        }
        let Some(h) = self.hosts.as_ref() else { return };
        let conns: Vec<_> = h.links.keys().copied().collect();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(20);
        let mut r = lock(&h.reactor);
        while conns.iter().any(|&c| r.is_queued(c)) && std::time::Instant::now() < until {
            r.reap_sends();
            std::hint::spin_loop();
        }
    }

    /// What an engine thread does before it sleeps: receipts for every frame taken since
    /// the last (a peer that goes silent now has had its word on all of them).
    pub fn settle(&mut self) {
        self.send_receipts(false);
    }

    /// Counts the one-way messages that connection `id`, which closed, carried from nodes of
    /// this process and that its peer never receipted: failures of their pairs, reported by
    /// each pair's next send (see `docs/delivery.md`).
    pub(super) fn unreceipted(&mut self, id: ConnId) {
        let Some(h) = self.hosts.as_mut() else { return };
        let notes = lock(&h.reactor).take_unreceipted(id);
        self.fail_noted(notes, WHY, true);
    }

    /// Counts the one-way messages of `notes` (sending node, receiving node) as failures of
    /// their pairs, for `why` (`unconfirmed`: they may have arrived). Without fault
    /// tolerance they are lost without a word; a message passed on for another process is
    /// its sender's stream's to answer for.
    fn fail_noted(&mut self, notes: Vec<(u32, u32)>, why: &str, unconfirmed: bool) {
        if !self.delivery.on {
            return;
        }
        for pair in notes {
            if !self.hosted.contains_key(&pair.0) {
                continue;
            }
            let f = self.note_failures(pair, 1, ErrorKind::NodeNotFound, why);
            if unconfirmed {
                f.unconfirmed += 1;
                self.delivery.counters.unreceipted += 1;
            }
        }
    }
}

/// The header of a receipt with `aux`.
fn receipt_header(aux: u16) -> FrameHeader {
    control_header(KIND_RECEIPT, aux, RECEIPT_LEN)
}
