//! Timing probes of a ring (see the module documentation of [`super`]): the mark, by the
//! producer; the completion, by the consumer; the counts observers read.

use super::{Producer, RingMemory};
use crate::sync::atomic::{AtomicU64, Ordering};

/// A ring's timing probe in its header (see the module documentation of [`super`]). Written
/// by both ends and read by observers: everything in it is checked, or clamped, where used.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Probe {
    // Offsets in a ring header (`transport::stats` reads them): 56, 64, 72, 80, 88.
    /// The position the consumer must reach to complete the probe (0: none in flight). Set
    /// by the producer while 0 or past its tail (a mark no one could have made), cleared by
    /// the consumer once reached or when more than a ring ahead of it.
    pub position: AtomicU64,
    /// Monotonic clock (ns) when `position` was set.
    pub marked_ns: AtomicU64,
    /// Probes completed (written by the consumer).
    pub completed: AtomicU64,
    /// Sum of their delays, ns, each below [`MAX_PROBE_DELAY_NS`] (written by the consumer).
    pub delay_sum_ns: AtomicU64,
    /// The last one's delay, ns (written by the consumer).
    pub last_delay_ns: AtomicU64,
}

/// Probe delays from this on are not recorded: a mark this old is a producer's clock word
/// that is not a time, or a consumer that stopped for a minute, not a queue.
pub const MAX_PROBE_DELAY_NS: u64 = 60_000_000_000;

/// Records the delay of the probe a consumer just reached and clears it for the next. A
/// delay of a minute or more (a mark time no clock wrote, or a consumer stopped that long) is
/// cleared without being recorded.
#[cold]
pub(super) fn complete_probe(p: &Probe) {
    let marked = p.marked_ns.load(Ordering::Relaxed);
    let delay = crate::sys::monotonic_ns().saturating_sub(marked);
    if delay >= MAX_PROBE_DELAY_NS {
        p.position.store(0, Ordering::Release);
        return;
    }
    // The consumer is the only writer of these three.
    p.last_delay_ns.store(delay, Ordering::Relaxed);
    let sum = p.delay_sum_ns.load(Ordering::Relaxed);
    p.delay_sum_ns
        .store(sum.wrapping_add(delay), Ordering::Relaxed);
    let n = p.completed.load(Ordering::Relaxed);
    // Release: an observer that sees the count sees the delays stored before it.
    p.completed.store(n.wrapping_add(1), Ordering::Release);
    p.position.store(0, Ordering::Release);
}

impl<M: RingMemory> Producer<M> {
    /// The probes the consumer completed and the sum of their delays (ns), when the ring's
    /// memory has a probe.
    pub fn probes(&self) -> Option<(u64, u64)> {
        let p = self.mem.probe()?;
        Some((
            p.completed.load(Ordering::Acquire),
            p.delay_sum_ns.load(Ordering::Relaxed),
        ))
    }

    /// Marks a timing probe at the tail (see the module documentation) if messages wait for
    /// the consumer and no probe is in flight. Two loads when there is nothing to do.
    pub fn mark_probe(&mut self, now_ns: u64) {
        let Some(p) = self.mem.probe() else { return };
        // Acquire: a 0 the consumer stored after its last reads of the mark.
        let at = p.position.load(Ordering::Acquire);
        // A probe in flight is left to complete; a position past this producer's tail is
        // none it marked (forged, or left by an earlier incarnation) and is marked over.
        if (at != 0 && at <= self.tail) || self.tail == 0 {
            return;
        }
        if self.mem.head().load(Ordering::Relaxed) >= self.tail {
            return;
        }
        p.marked_ns.store(now_ns, Ordering::Relaxed);
        // Release: a consumer that sees the position sees its time.
        p.position.store(self.tail, Ordering::Release);
    }
}
