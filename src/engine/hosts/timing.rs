//! Timing probes on connections, for learned routing: the delay a connection adds under load.
//!
//! A ring's consumer times the probes its producer marks (see [`crate::ring::Probe`]); a
//! connection has no shared header, so its probe is a small control frame
//! (`tcp::control::KIND_ECHO`). It is queued behind the data this process queued on the
//! connection, and the peer's engine answers it after the read that took it, behind what the
//! peer queued to send back. Its round trip therefore grows with the bytes queued in this
//! process and in both kernels' socket buffers (frames the peer read but has not delivered
//! yet do not delay it). The queueing delay is that round trip less the smallest one of the
//! last ten minutes, the connection's round trip with nothing queued, kept per minute as
//! LEDBAT keeps its base delay.
//!
//! Probes go only from a process that learns routes ([`Engine::set_connection_probes`],
//! from its first sample of a configured link whose ends are both up), on connections whose
//! peer announced its nodes. There is one probe in flight per
//! connection. A new one leaves at most once per millisecond while the connection carries
//! frames, and every [`IDLE_EVERY`] when it does not, which keeps the base round trip fresh.
//! Every process answers them.
//!
//! What a peer can do with them is bounded. Probe numbers are keyed hashes, so an answer
//! cannot be sent before its probe was read, and one that names no probe in flight is
//! ignored. Several probes asked on one connection between two answers get one answer, the
//! latest. An answer waits while the connection holds its queue limit of bytes or more, so
//! a peer that asks and never reads makes this process queue nothing beyond that limit.

use super::lock;
use crate::engine::Engine;
use crate::transport::tcp::control::{
    control_header, ECHO_ANSWER, ECHO_ASKED, ECHO_LEN, KIND_ECHO,
};
use crate::transport::tcp::{ConnId, FrameHeader};
use std::hash::BuildHasher;

/// A connection that carried no frame since its last probe is probed this often.
pub const IDLE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A probe unanswered this long is given up: one is sent anew, and the old one's answer is
/// ignored (the peer does not answer probes, or the connection is stuck).
const GIVE_UP_NS: u64 = 10_000_000_000;

/// The base round trip is the smallest of the last [`BUCKETS`] buckets of this long.
const BUCKET_NS: u64 = 60_000_000_000;
const BUCKETS: usize = 10;

/// What the learner reads of a connection's probes ([`Engine::connection_probes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeCounts {
    /// Probes answered, and the sum of their queueing delays (ns).
    pub(crate) answered: u64,
    pub(crate) delay_sum_ns: u64,
    /// Whether a probe is on its way: an interval without an answer then measured nothing.
    pub(crate) pending: bool,
    /// Which connection's probes these are (random, one per connection): counts of two
    /// connections are never compared.
    pub(crate) source: u64,
}

/// A connection's probes, kept by the engine beside the connection.
#[derive(Debug)]
pub(super) struct Timing {
    /// Keys the probe numbers.
    key: std::collections::hash_map::RandomState,
    /// The probe in flight: (its number, when it left, ns).
    out: Option<(u64, u64)>,
    /// Probes sent so far.
    sent: u64,
    /// When the last probe left (ns), and the frames numbered on the connection then.
    last_ns: u64,
    frames_then: u64,
    /// The smallest round trip of each bucket, the current one at `bucket`, and when it
    /// began (ns). `u64::MAX`: none.
    mins: [u64; BUCKETS],
    bucket: usize,
    bucket_ns: u64,
    /// Probes answered, and the sum of their queueing delays (ns).
    answered: u64,
    delay_sum_ns: u64,
    /// The latest probe the peer asked to have answered, not answered yet.
    asked: Option<[u8; ECHO_LEN]>,
}

impl Timing {
    pub(super) fn new() -> Timing {
        Timing {
            key: std::collections::hash_map::RandomState::new(),
            out: None,
            sent: 0,
            last_ns: 0,
            frames_then: 0,
            mins: [u64::MAX; BUCKETS],
            bucket: 0,
            bucket_ns: 0,
            answered: 0,
            delay_sum_ns: 0,
            asked: None,
        }
    }

    fn counts(&self) -> ProbeCounts {
        ProbeCounts {
            answered: self.answered,
            delay_sum_ns: self.delay_sum_ns,
            pending: self.out.is_some(),
            source: self.key.hash_one(u64::MAX),
        }
    }

    /// The number of a probe to send now, given the clock and the frames numbered on the
    /// connection so far, if one is due.
    fn due(&mut self, now_ns: u64, frames: u64) -> Option<u64> {
        if let Some((_, at)) = self.out {
            if now_ns.saturating_sub(at) < GIVE_UP_NS {
                return None;
            }
            self.out = None;
        }
        // The first probe goes at once.
        let idle = frames == self.frames_then && self.sent > 0;
        if idle && now_ns.saturating_sub(self.last_ns) < IDLE_EVERY.as_nanos() as u64 {
            return None;
        }
        self.sent += 1;
        let number = self.key.hash_one(self.sent);
        self.out = Some((number, now_ns));
        self.last_ns = now_ns;
        self.frames_then = frames;
        Some(number)
    }

    /// Takes the answer to probe `number` at `now_ns`: the queueing delay it measured, or
    /// `None` for an answer to no probe in flight.
    fn answer(&mut self, number: u64, now_ns: u64) -> Option<u64> {
        let (_, at) = self.out.filter(|&(n, _)| n == number)?;
        self.out = None;
        let rtt = now_ns.saturating_sub(at);
        // Buckets whose minute passed without a probe are emptied.
        let passed = (now_ns.saturating_sub(self.bucket_ns) / BUCKET_NS).min(BUCKETS as u64);
        for _ in 0..passed {
            self.bucket = (self.bucket + 1) % BUCKETS;
            self.mins[self.bucket] = u64::MAX;
        }
        if passed > 0 {
            self.bucket_ns = now_ns;
        }
        let m = &mut self.mins[self.bucket];
        *m = (*m).min(rtt);
        let base = self.mins.iter().copied().min().unwrap_or(rtt).min(rtt);
        let delay = rtt - base;
        self.answered += 1;
        self.delay_sum_ns = self.delay_sum_ns.wrapping_add(delay);
        Some(delay)
    }
}

impl Engine {
    /// Whether this engine probes its connections (see the module): on while the process
    /// learns routes.
    pub(crate) fn set_connection_probes(&mut self, on: bool) {
        if let Some(h) = self.hosts.as_mut() {
            h.probing = on;
        }
    }

    /// The periodic tick's part: answers the probes asked that may be answered now, and
    /// sends the probes due (at most one in flight on each connection) when probing.
    pub(in crate::engine) fn time_connections(&mut self, now_ns: u64) {
        let Some(h) = self.hosts.as_mut() else { return };
        if !h.probing && h.links.values().all(|l| l.timing.asked.is_none()) {
            return;
        }
        let mut r = lock(&h.reactor);
        for (&id, l) in h.links.iter_mut() {
            answer(&mut r, id, &mut l.timing);
            if !h.probing || !l.ready {
                continue;
            }
            let frames = r.tally(id).0;
            if let Some(number) = l.timing.due(now_ns, frames) {
                let _ = r.send_control(id, &echo_header(ECHO_ASKED), &number.to_le_bytes());
            }
        }
    }

    /// Applies the echoes that came (connection, `aux`, body): answers are timed, and the
    /// probes asked are answered. `Err` (the connection and why) for an echo of an unknown
    /// form.
    pub(super) fn take_echoes(
        &mut self,
        echoes: Vec<(ConnId, u16, [u8; ECHO_LEN])>,
    ) -> Vec<(ConnId, String)> {
        let mut refused = Vec::new();
        let Some(h) = self.hosts.as_mut() else {
            return refused;
        };
        let now_ns = crate::sys::monotonic_ns();
        let mut asked = Vec::new();
        for (id, aux, body) in echoes {
            let Some(l) = h.links.get_mut(&id) else {
                continue;
            };
            match aux {
                ECHO_ASKED => {
                    l.timing.asked = Some(body);
                    asked.push(id);
                }
                ECHO_ANSWER => {
                    let _ = l.timing.answer(u64::from_le_bytes(body), now_ns);
                }
                _ => refused.push((id, "an echo of an unknown form".to_string())),
            }
        }
        if !asked.is_empty() {
            let mut r = lock(&h.reactor);
            for id in asked {
                if let Some(l) = h.links.get_mut(&id) {
                    answer(&mut r, id, &mut l.timing);
                }
            }
        }
        refused
    }

    /// The probes of the connection that reaches node `via` of another host; `None` while
    /// this engine does not probe.
    pub(in crate::engine) fn connection_probes(&self, via: u32) -> Option<ProbeCounts> {
        let h = self.hosts.as_ref().filter(|h| h.probing)?;
        let id = h.route.get(&via)?;
        Some(h.links.get(id)?.timing.counts())
    }
}

/// Answers the probe asked on `id`, if one is and the connection holds less than its queue
/// limit (else it waits: a peer that does not read gets nothing more queued).
fn answer(r: &mut crate::transport::tcp::Reactor, id: ConnId, t: &mut Timing) {
    let Some(body) = t.asked else { return };
    let (queued, limit) = r.queued_bytes(id);
    if queued >= limit {
        return;
    }
    t.asked = None;
    let _ = r.send_control(id, &echo_header(ECHO_ANSWER), &body);
}

/// The header of an echo with `aux`.
fn echo_header(aux: u16) -> FrameHeader {
    control_header(KIND_ECHO, aux, ECHO_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One probe in flight, numbered unpredictably; a busy connection is probed again at
    /// once, an idle one after [`IDLE_EVERY`]; the delay is the round trip less the smallest
    /// of the last ten minutes; an answer to no probe in flight is ignored; an unanswered
    /// probe is given up.
    #[test]
    fn probes_time_the_round_trip_above_the_smallest() {
        let ms = 1_000_000;
        let mut t = Timing::new();
        let p1 = t.due(ms, 0).expect("the first goes at once");
        assert_eq!(t.due(2 * ms, 5), None, "one in flight");
        assert!(t.counts().pending);
        assert_eq!(t.answer(p1.wrapping_add(1), 3 * ms), None, "not in flight");
        assert_eq!(
            t.answer(p1, ms + 50_000),
            Some(0),
            "the first sets the base"
        );
        assert!(!t.counts().pending);
        assert_eq!(t.due(3 * ms, 0), None, "idle, and asked 2 ms ago");
        let p2 = t.due(3 * ms, 7).expect("frames went");
        assert!(p2 != p1 && p2 != p1.wrapping_add(1), "numbers are keyed");
        assert_eq!(t.answer(p2, 3 * ms + 250_000), Some(200_000));
        assert_eq!(t.answer(p2, 4 * ms), None, "answered once");
        let c = t.counts();
        assert_eq!((c.answered, c.delay_sum_ns), (2, 200_000));
        assert_ne!(c.source, Timing::new().counts().source, "per connection");
        let later = 3 * ms + IDLE_EVERY.as_nanos() as u64;
        let p3 = t.due(later, 7).expect("idle for the idle period");
        let p4 = t.due(later + GIVE_UP_NS, 7).expect("given up");
        assert_eq!(
            t.answer(p3, later + GIVE_UP_NS + 1),
            None,
            "the old one's answer"
        );
        // A shorter round trip lowers the base; it holds for ten minutes, then is forgotten.
        assert_eq!(t.answer(p4, later + GIVE_UP_NS + 20_000), Some(0));
        let mut at = later + GIVE_UP_NS + ms;
        for minute in 1..=9 {
            at += BUCKET_NS;
            let p = t.due(at, 100 + minute).unwrap();
            assert_eq!(t.answer(p, at + 90_000), Some(70_000), "minute {minute}");
        }
        at += BUCKET_NS;
        let p = t.due(at, 200).unwrap();
        assert_eq!(t.answer(p, at + 90_000), Some(0), "ten minutes later");
        let p = t.due(at + 1, 201).unwrap();
        assert_eq!(t.answer(p, at + 1 + 100_000), Some(10_000));
    }
}
