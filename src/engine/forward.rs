//! Routes through other nodes: next hops (from the router, cached per pair) and frames passed
//! on toward a node this engine does not deliver to.

use super::frame::HOP_CONFIGURED;
use super::lost::GONE_CHECK_EVERY;
use super::{
    lane_of, Engine, Leg, MsgHeader, Router, RoutesGeneration, FLAG_DESCRIPTOR, FLAG_ONE_WAY,
    FLAG_SEQ, MSG_HEADER,
};
use crate::codec::FrameKind;
use crate::error::{Error, ErrorKind, Result};
use crate::ring::{PushError, SlotHeader};
use std::time::{Duration, Instant};

/// How long a live next hop may take no frame before the frames waiting for it are dropped:
/// a hop that never reads, or routes whose full rings wait on each other in a cycle, must not
/// hold the rings behind them forever.
const HOLD_LIMIT: Duration = Duration::from_secs(5);

/// Frames to forward that found no room onward. Such a frame is not copied and not waited
/// for: it stays in the ring it came in (and the frames behind it too), and a later poll
/// reads it again. The sender of that ring then finds it full and waits for room itself,
/// as it would for a slow destination: a full hop pushes back to the origin, and the engine
/// goes on serving every other ring meanwhile.
#[derive(Default)]
pub(super) struct Held {
    /// The frame being dispatched was left in its ring.
    left: bool,
    /// Some frame was left by the last pass over the inbound rings.
    any: bool,
    /// When a next hop without room is checked for being gone next.
    next_check: Option<Instant>,
    /// Since when each next hop that took no frame has had no room.
    since: std::collections::HashMap<u32, Instant>,
}

impl Engine {
    /// Sets the router that picks next hops (without one, every destination is direct).
    pub fn set_router(&mut self, router: Option<Router>) {
        self.router = router;
        self.hops.clear();
    }

    /// Sets what reads the routes' generation: cached next hops are forgotten when it
    /// changes, so a change made through the topology (a link's figures reported with
    /// `update_link_metrics`, a link added or marked down) reaches the next send.
    pub fn set_routes_generation(&mut self, generation: Option<RoutesGeneration>) {
        self.routes_generation = generation;
        self.hops.clear();
    }

    /// The next hop from `from` toward `to` on the routes of `leg`: `to` itself without a
    /// router, else the router's answer (cached), `None` when it knows no route.
    fn next_hop(&mut self, from: u32, to: u32, leg: Leg) -> Option<u32> {
        if self.router.is_none() || from == to {
            return Some(to);
        }
        if let Some(generation) = &self.routes_generation {
            let now = generation();
            if now != self.routes_seen {
                self.hops.clear();
                self.routes_seen = now;
            }
        }
        let _ = self.refresh_peers();
        if let Some(&h) = self.hops.get(&(from, to, leg)) {
            return Some(h);
        }
        let next = match (self.id_of(from), self.id_of(to)) {
            (Some(f), Some(t)) => {
                let router = self.router.as_mut().expect("checked above");
                router(&f, &t, leg).and_then(|n| {
                    self.by_name
                        .get(&n)
                        .copied()
                        .or_else(|| self.peers.get(&n).map(|e| e.index))
                        .or_else(|| self.remote_by_name(&n).map(|(i, _)| i))
                })
            }
            _ => None,
        };
        if let Some(hop) = next {
            self.hops.insert((from, to, leg), hop);
        }
        next
    }

    /// The next hop of a send from `src` (a node of this process) toward `dst`, or
    /// `NoRouteFoundError`.
    pub(crate) fn via(&mut self, src: u32, dst: u32) -> Result<u32> {
        self.next_hop(src, dst, Leg::First).ok_or_else(|| {
            Error::NoRouteFound(format!(
                "no route from node {} to node {}",
                self.name_for_errors(src),
                self.name_for_errors(dst)
            ))
        })
    }

    /// Whether the frame just dispatched was left in its ring (see [`Held`]); clears it.
    pub(super) fn take_left(&mut self) -> bool {
        std::mem::take(&mut self.held.left)
    }

    /// Notes how many inbound rings the last pass left a frame in.
    pub(super) fn set_holding(&mut self, rings: usize) {
        self.held.any = rings > 0;
        self.counters.forwards_waiting = rings as u64;
    }

    /// Whether frames wait for room onward (forwards left in their rings, replies kept for
    /// later), sequenced frames for their acknowledgement (or resend), or acknowledgements
    /// for their time. A later poll sends them; nothing rings this engine when room frees or
    /// time passes, so its thread should not sleep long meanwhile.
    pub fn holds_back(&self) -> bool {
        self.held.any
            || !self.deferred.is_empty()
            || self.delivery.keeps()
            || !self.delivery.due.is_empty()
    }

    /// Whether next hop `next`, whose ring has no room, is gone (its process died, or its
    /// index was registered again; checked at most every [`GONE_CHECK_EVERY`]) or has taken
    /// nothing for [`HOLD_LIMIT`].
    fn next_hop_gone(&mut self, next: u32) -> bool {
        let now = Instant::now();
        let since = *self.held.since.entry(next).or_insert(now);
        if now.duration_since(since) > HOLD_LIMIT {
            return true;
        }
        if self.held.next_check.is_some_and(|at| now < at) {
            return false;
        }
        self.held.next_check = Some(now + GONE_CHECK_EVERY);
        self.unreachable(next)
    }

    /// Passes a frame on toward its destination. A ping single-frame records `at` in its
    /// path (the metadata); a frame past its hop limit or without a route is dropped and, if
    /// its sender waits, answered with an error. A frame whose next ring is full is left
    /// where it is (see [`Held`]) unless the next hop is gone or has taken nothing for
    /// [`HOLD_LIMIT`], then it is dropped.
    pub(super) fn forward(&mut self, at: u32, h: SlotHeader, payload: &[u8]) {
        if self.pass_on(at, h, payload) {
            // Counted when it is read again.
            self.held.left = true;
        } else {
            self.counters.frames_received += 1;
        }
    }

    /// [`Engine::forward`]: whether the frame was left in its ring.
    fn pass_on(&mut self, at: u32, h: SlotHeader, payload: &[u8]) -> bool {
        let mut m = MsgHeader::decode(payload);
        // A frame that came from a node of another process (or host), or did so before, is
        // passed on along the configured routes; one still inside the process that sent it,
        // along the process's own.
        let configured = m.configured() || !self.hosted.contains_key(&h.src);
        let leg = if configured { Leg::Onward } else { Leg::First };
        // The limit comes from shared memory: past what seven bits count, it is theirs.
        let next = if m.hops() >= m.hop_limit.min(!HOP_CONFIGURED) {
            Err("hop limit reached")
        } else {
            self.next_hop(at, m.dst, leg).ok_or("no route onward")
        };
        let next = match next {
            Ok(next) => next,
            Err(why) => {
                let streamed = h.flags & FLAG_SEQ != 0
                    || FrameKind::from_u8(h.kind) == Some(FrameKind::Delivered);
                if streamed {
                    self.counters.forward_unrouted += 1;
                } else {
                    self.counters.errors += 1;
                }
                self.release_descriptor(h, payload);
                // A sequenced frame is sent again by its sender (and its header is not
                // checked here: it may have been damaged on the way).
                let answer = h.flags & (FLAG_ONE_WAY | FLAG_SEQ) == 0
                    && FrameKind::from_u8(h.kind) == Some(FrameKind::Data);
                if answer {
                    self.answer_error(None, (at, m.origin), m.id, ErrorKind::NoRouteFound, why);
                }
                return false;
            }
        };
        if h.flags & FLAG_DESCRIPTOR != 0 && self.tcp_route(next).is_some() {
            // Bytes in this host's shared segment cannot follow the frame to another host.
            self.counters.errors += 1;
            self.release_descriptor(h, payload);
            if h.flags & FLAG_ONE_WAY == 0 && FrameKind::from_u8(h.kind) == Some(FrameKind::Data) {
                let why = "a large message sent by descriptor cannot be forwarded to another host";
                self.answer_error(None, (at, m.origin), m.id, ErrorKind::NoRouteFound, why);
            }
            return false;
        }
        m.hop = (m.hops() + 1) | if configured { HOP_CONFIGURED } else { 0 };
        let body = &payload[MSG_HEADER..];
        let total = m.total as usize;
        let meta_len = (h.aux as usize).min(body.len());
        let mut slot = SlotHeader { src: at, ..h };
        let record = FrameKind::from_u8(h.kind) == Some(FrameKind::Ping) && body.len() == total;
        let at_bytes = at.to_le_bytes();
        if record {
            // Both come from shared memory: a path that no longer fits is dropped.
            let (Some(aux), Some(total)) = (slot.aux.checked_add(4), m.total.checked_add(4)) else {
                self.counters.errors += 1;
                return false;
            };
            slot.aux = aux;
            m.total = total;
        }
        let hdr = m.encode();
        let parts: [&[u8]; 4] = if record {
            [&hdr, &body[..meta_len], &at_bytes, &body[meta_len..]]
        } else {
            [&hdr, body, &[], &[]]
        };
        let lane = lane_of(m.priority());
        if let Some(left) = self.inject((at, next, lane), slot, &parts) {
            return left;
        }
        let carried = if h.flags & FLAG_DESCRIPTOR != 0 {
            crate::transport::channel::Descriptor::decode(body).map_or(0, |d| d.len as u64)
        } else {
            0
        };
        let pushed = match self.producer(at, next, lane) {
            Ok(p) => p
                .try_push(slot, &parts)
                .inspect(|()| p.count_carried(carried)),
            Err(_) => Err(PushError::TooLarge),
        };
        match pushed {
            Ok(()) => {
                self.registry.ring_bell(next);
                self.counters.frames_sent += 1;
                if !self.held.since.is_empty() {
                    self.held.since.remove(&next);
                }
                self.release_held(Some((at, next)));
                false
            }
            Err(PushError::Full) if !self.next_hop_gone(next) => {
                if !self.held.any {
                    self.held.any = true;
                    self.counters.forward_stalls += 1;
                }
                true
            }
            Err(e) => {
                if e == PushError::Corrupt {
                    let _ = self.drop_corrupt(at, next, lane);
                }
                self.counters.errors += 1;
                self.release_descriptor(h, payload);
                false
            }
        }
    }

    /// Returns the buffer of a descriptor frame that is dropped to its pool.
    fn release_descriptor(&mut self, h: SlotHeader, payload: &[u8]) {
        if h.flags & FLAG_DESCRIPTOR != 0 {
            drop(self.take_descriptor(&payload[MSG_HEADER..]));
        }
    }
}
