//! End-to-end delivery on routes that a ring alone does not guarantee (through forwarders):
//! per-stream sequence numbers, cumulative acknowledgements, a bounded resend buffer at the
//! sender, duplicates and gaps refused at the receiver, and senders told of what could not
//! be delivered. The semantics are in `docs/delivery.md`.
//!
//! A stream is (sending node, receiving node, priority): its frames reach the receiver
//! exactly once and in order, or the sender learns that they did not. A direct ring between
//! two nodes of one host needs none of this (the ring is the acknowledgement) and its frames
//! carry no extension.

mod ext;
mod receiver;
mod sender;

pub(crate) use ext::{before, checksum, destination_tag, succ, SeqExt};
pub use ext::{FLAG_SEQ, SEQ_EXT};
use receiver::InStream;
use rustc_hash::FxHashMap as HashMap;
use sender::OutStream;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

/// Frames a stream keeps for resending before its sender waits for acknowledgements.
pub const KEPT_FRAMES: usize = 1024;
/// Bytes a stream keeps for resending before its sender waits for acknowledgements.
pub const KEPT_BYTES: usize = 8 << 20;
/// Bytes all streams of an engine keep at most.
pub const KEPT_TOTAL: usize = 256 << 20;
/// Time without acknowledgement after which a kept frame is first sent again, until round
/// trips are measured.
const FIRST_RTO: Duration = Duration::from_millis(20);
/// Shortest and longest wait before a resend (an engine thread that a loaded machine does
/// not schedule for a few milliseconds is not a lost frame).
const MIN_RTO: Duration = Duration::from_millis(10);
const MAX_RTO: Duration = Duration::from_millis(500);
/// A stream whose kept frames waited this long without any acknowledgement (no route, a
/// receiver that takes nothing, a hop that loses everything) is failed: its frames are
/// dropped and its sender told. Twice a send's default timeout: a request waiting for its
/// answer fails by its own deadline first.
pub const DELIVERY_LIMIT: Duration = Duration::from_secs(10);
/// Incarnations of streams that ended, remembered so that their late frames are refused.
const RETIRED: usize = 4096;
/// Frames a receiver keeps that arrived after a missing one, per stream, and the bytes all
/// streams may keep so: taken in order once the missing one came (beyond, they are dropped
/// and sent again by their sender).
const AHEAD_FRAMES: usize = 512;
const AHEAD_BYTES: usize = 64 << 20;

/// A stream: (sending node, receiving node, priority).
pub(crate) type StreamKey = (u32, u32, u8);

/// Counters of end-to-end delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounters {
    /// Sequenced frames sent (first sends).
    pub sequenced: u64,
    /// Frames sent again (timeouts and gaps).
    pub resent: u64,
    /// Rounds of resends after a timeout (every kept frame of a stream sent again).
    pub timeouts: u64,
    /// Acknowledgements sent.
    pub acks_sent: u64,
    /// Acknowledgements received that released kept frames.
    pub acks_received: u64,
    /// Frames refused as already delivered.
    pub duplicates: u64,
    /// Frames that came after a missing one (kept until it comes, or refused when too many
    /// wait).
    pub out_of_order: u64,
    /// Frames refused because their checksum did not match.
    pub corrupt: u64,
    /// Frames of an ended incarnation of their stream, refused.
    pub stale: u64,
    /// Messages whose delivery failed (their senders were told).
    pub failed: u64,
    /// Of them, requests (failed with an error; the rest are one-way messages reported by
    /// the next send of their pair).
    pub failed_requests: u64,
    /// Of them, one-way messages sent straight over a TCP connection that closed before its
    /// peer receipted them (some may have arrived).
    pub unreceipted: u64,
    /// Frames kept for resending now.
    pub kept_frames: u64,
    /// Bytes those hold.
    pub kept_bytes: u64,
    /// Streams this engine sends on now.
    pub streams_out: u64,
    /// Streams this engine receives on now (freed when their sender leaves or dies).
    pub streams_in: u64,
}

/// What the sender of a stream whose frames were dropped is told by its next send.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) messages: u64,
    /// Of them, messages whose receiver never confirmed taking them (they may have arrived:
    /// see `Engine::unreceipted`).
    pub(crate) unconfirmed: u64,
    pub(crate) kind: crate::error::ErrorKind,
    pub(crate) why: String,
}

/// The engine's end-to-end delivery state.
#[derive(Default)]
pub(crate) struct Delivery {
    /// Whether this engine sequences what it sends through forwarders
    /// (`enable_fault_tolerance`). Received sequenced frames are handled either way.
    pub(crate) on: bool,
    pub(crate) out: HashMap<StreamKey, OutStream>,
    pub(crate) inn: HashMap<StreamKey, InStream>,
    /// Streams with an acknowledgement to send.
    pub(crate) due: Vec<StreamKey>,
    /// Some acknowledgement due cannot wait; else, passes since the waiting ones were
    /// looked at (the clock is read every few passes only).
    pub(crate) ack_urgent: bool,
    pub(crate) ack_skips: u32,
    /// Streams whose frames kept after a gap can be taken now.
    pub(crate) ready: Vec<StreamKey>,
    /// Bytes of those frames, all streams.
    pub(crate) ahead_bytes: usize,
    /// Some stream has a gap reported or a frame to resend.
    pub(crate) resend_asked: bool,
    /// When resend timers are looked at next.
    pub(crate) check_at: Option<std::time::Instant>,
    /// Frames all streams keep, and their bytes.
    pub(crate) kept: usize,
    pub(crate) kept_bytes: usize,
    retired: Retired,
    /// Failures not yet reported, by (sending node, receiving node).
    pub(crate) failures: HashMap<(u32, u32), Failure>,
    pub(crate) counters: DeliveryCounters,
}

impl Delivery {
    /// Counters, with the kept frames and bytes of now.
    pub(crate) fn counters(&self) -> DeliveryCounters {
        let (frames, bytes) = self
            .out
            .values()
            .fold((0, 0), |(f, b), s| (f + s.kept.len(), b + s.bytes));
        DeliveryCounters {
            kept_frames: frames as u64,
            kept_bytes: bytes as u64,
            streams_out: self.out.len() as u64,
            streams_in: self.inn.len() as u64,
            ..self.counters
        }
    }

    /// Whether some stream keeps frames (resend timers run).
    pub(crate) fn keeps(&self) -> bool {
        self.kept > 0
    }
}

/// Ended incarnations, by the sending node's name tag: bounded, oldest forgotten first.
#[derive(Default)]
struct Retired {
    order: VecDeque<(u32, u64)>,
    set: HashSet<(u32, u64)>,
}

impl Retired {
    fn add(&mut self, tag: u32, incarnation: u64) {
        if self.set.insert((tag, incarnation)) {
            self.order.push_back((tag, incarnation));
            if self.order.len() > RETIRED {
                let old = self.order.pop_front().expect("non-empty");
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, tag: u32, incarnation: u64) -> bool {
        !self.set.is_empty() && self.set.contains(&(tag, incarnation))
    }
}

/// A new incarnation: the wall clock in milliseconds above 24 random bits, so that a later
/// incarnation of a stream compares higher than an earlier one (receivers refuse frames of
/// an older incarnation than the one they follow), also after the sending process
/// restarted. Never 0.
pub(crate) fn new_incarnation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let fresh = ((since_epoch_ms() << INCARNATION_RANDOM) | crate::sys::random_u64() >> 42).max(1);
    // Increasing within the process, whatever the clock does.
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = fresh.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// Random low bits of an incarnation (above them: milliseconds since [`EPOCH_MS`], enough
/// for 139 years).
const INCARNATION_RANDOM: u32 = 22;
/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch: incarnations count from it.
const EPOCH_MS: u64 = 1_767_225_600_000;
/// How far ahead of the receiver's clock a new incarnation may be (clocks of hosts
/// differ): one further ahead is refused, so that one forged or damaged frame cannot make a
/// stream refuse its sender's real incarnations for longer than this.
pub(crate) const INCARNATION_AHEAD_MS: u64 = 60_000;

/// The wall clock in milliseconds since [`EPOCH_MS`] (0 before it).
fn since_epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        .saturating_sub(EPOCH_MS)
}

/// Whether `incarnation` was drawn no further ahead of this host's clock than
/// [`INCARNATION_AHEAD_MS`].
pub(crate) fn plausible_incarnation(incarnation: u64) -> bool {
    incarnation >> INCARNATION_RANDOM <= since_epoch_ms() + INCARNATION_AHEAD_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incarnations_from_far_ahead_are_implausible() {
        let now = new_incarnation();
        assert!(plausible_incarnation(now));
        assert!(plausible_incarnation(now + (30_000 << INCARNATION_RANDOM)));
        assert!(!plausible_incarnation(
            now + (120_000 << INCARNATION_RANDOM)
        ));
        assert!(!plausible_incarnation(u64::MAX - 1));
    }

    #[test]
    fn incarnations_increase() {
        let mut last = new_incarnation();
        for _ in 0..1000 {
            let next = new_incarnation();
            assert!(next > last);
            last = next;
        }
    }

    #[test]
    fn retired_incarnations_are_bounded_and_forget_the_oldest() {
        let mut r = Retired::default();
        for i in 0..(RETIRED as u64 + 10) {
            r.add(1, i);
        }
        assert!(!r.contains(1, 0));
        assert!(!r.contains(1, 9));
        assert!(r.contains(1, 10));
        assert!(r.contains(1, RETIRED as u64 + 9));
        assert!(!r.contains(2, 20));
        assert_eq!(r.order.len(), RETIRED);
    }
}
