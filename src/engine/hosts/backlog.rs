//! The backlog of frames from other hosts that wait for room in their inbound rings: pushed
//! in order as room frees, and a connection whose backlog grows past [`HOLD_AT`] stops
//! receiving until it falls under [`RESUME_UNDER`].

use super::inbound::{HOLD_AT, RESUME_UNDER, SPARE};
use super::lock;
use crate::engine::Engine;
use crate::ring::PushError;
use crate::transport::tcp::ConnId;
use rustc_hash::FxHashMap;

impl Engine {
    /// Stops receiving on the connections with [`HOLD_AT`] bytes in the backlog, and
    /// receives again on those held whose backlog fell under [`RESUME_UNDER`] (or that
    /// closed).
    pub(super) fn hold_backlogged(&mut self) {
        let Some(h) = self.hosts.as_mut() else {
            return;
        };
        if h.backlog_bytes < HOLD_AT && h.holding.is_empty() {
            return;
        }
        let mut per: FxHashMap<ConnId, usize> = FxHashMap::default();
        for w in &h.backlog {
            *per.entry(w.conn).or_default() += w.bytes.len();
        }
        let mut r = lock(&h.reactor);
        let now = std::time::Instant::now();
        let links = &mut h.links;
        h.holding.retain(|id| {
            // A connection that closed is no longer held (nothing more comes from it).
            let held = r.is_open(*id) && per.get(id).is_some_and(|&b| b >= RESUME_UNDER);
            if !held {
                r.resume(*id);
                // Its silence is judged from now: nothing was read from it while held.
                if let Some(l) = links.get_mut(id) {
                    l.heard = now;
                }
            }
            held
        });
        for (id, bytes) in per {
            if bytes >= HOLD_AT && !h.holding.contains(&id) && r.is_open(id) {
                r.pause(id);
                h.holding.push(id);
                h.counters.holds += 1;
            }
        }
    }

    /// Pushes the frames of the backlog whose rings have room now, in order.
    pub(super) fn flush_backlog(&mut self) {
        let Some(h) = self.hosts.as_mut() else {
            return;
        };
        let mut blocked: Vec<ConnId> = Vec::new();
        let mut i = 0;
        while i < h.backlog.len() {
            let w = &h.backlog[i];
            if blocked.contains(&w.conn) {
                i += 1;
                continue;
            }
            let pushed = h
                .rings
                .get_mut(&w.key)
                .map(|p| p.try_push(w.slot, &[&w.bytes]));
            match pushed {
                Some(Ok(())) | None | Some(Err(PushError::TooLarge | PushError::Corrupt)) => {
                    let w = h.backlog.remove(i).expect("in range");
                    h.backlog_bytes -= w.bytes.len();
                    if h.spare.len() < SPARE {
                        h.spare.push(w.bytes);
                    }
                }
                Some(Err(PushError::Full)) => {
                    blocked.push(w.conn);
                    i += 1;
                }
            }
        }
    }
}
