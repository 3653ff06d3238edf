//! Hysteresis of learned routes: when fresh link predictions may move routes.
//!
//! Learned latencies change with every sample; routes must not. The learned router compares,
//! for each (source, destination) pair it routes from, the latency of the path the tables
//! use now and of the best path, both under the fresh predictions. Fresh figures are handed
//! to the route service only when
//!
//! - some pair's best path beats its current one by the margin (a fraction of the current
//!   latency, and at least a floor in ns, so that noise on microsecond links moves nothing),
//! - that has held at every sample for the sustain time, and
//! - the last hand-over is at least the dwell time ago.
//!
//! So a route moves within about a sample interval plus the sustain time of a lasting
//! change, and no pair changes route more than once per dwell time.

use std::time::{Duration, Instant};

/// When fresh figures may move routes (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldRules {
    /// Fraction of the current path's latency the best path must save.
    pub margin: f64,
    /// Latency the best path must save at least, ns.
    pub min_gain_ns: u64,
    /// How long the saving must hold.
    pub sustain: Duration,
    /// Least time between two hand-overs.
    pub dwell: Duration,
}

impl Default for HoldRules {
    fn default() -> HoldRules {
        HoldRules {
            margin: 0.25,
            min_gain_ns: 2_000,
            sustain: Duration::from_millis(100),
            dwell: Duration::from_secs(2),
        }
    }
}

/// The state of the hysteresis (see the module documentation).
#[derive(Debug, Clone)]
pub struct RouteHold {
    rules: HoldRules,
    better_since: Option<Instant>,
    last_handover: Option<Instant>,
}

impl RouteHold {
    /// A hold with `rules`, nothing handed over yet.
    pub fn new(rules: HoldRules) -> RouteHold {
        RouteHold {
            rules,
            better_since: None,
            last_handover: None,
        }
    }

    /// Whether a pair whose current path takes `current_ns` and whose best path takes
    /// `best_ns` (both under fresh figures) wants to move.
    pub fn wants_move(&self, current_ns: u64, best_ns: u64) -> bool {
        let gain = current_ns.saturating_sub(best_ns);
        gain >= self.rules.min_gain_ns && (gain as f64) >= self.rules.margin * current_ns as f64
    }

    /// One sample: `wanted` says whether some pair wants to move (see
    /// [`wants_move`](Self::wants_move)). Answers whether the fresh figures are handed over
    /// now; the caller then does so.
    pub fn decide(&mut self, now: Instant, wanted: bool) -> bool {
        if !wanted {
            self.better_since = None;
            return false;
        }
        let since = *self.better_since.get_or_insert(now);
        let sustained = now.duration_since(since) >= self.rules.sustain;
        let rested = self
            .last_handover
            .is_none_or(|t| now.duration_since(t) >= self.rules.dwell);
        if sustained && rested {
            self.better_since = None;
            self.last_handover = Some(now);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saving_moves_routes_only_when_large_lasting_and_not_too_soon() {
        let mut h = RouteHold::new(HoldRules::default());
        // 10 % saved, or 1 us saved: not enough.
        assert!(!h.wants_move(100_000, 90_000));
        assert!(!h.wants_move(4_000, 3_000));
        assert!(h.wants_move(100_000, 70_000));
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // Wanted at 0 and 50 ms: not yet sustained; at 100 ms it is.
        assert!(!h.decide(at(0), true));
        assert!(!h.decide(at(50), true));
        assert!(h.decide(at(100), true));
        // A new saving right after: it waits for the dwell time, however long it holds.
        let mut moved = Vec::new();
        for ms in (150..=2_500).step_by(50) {
            if h.decide(at(ms), true) {
                moved.push(ms);
            }
        }
        assert_eq!(moved, vec![2_100]);
        // A saving that lapses for one sample starts its sustain time over.
        assert!(!h.decide(at(4_950), false));
        assert!(!h.decide(at(5_000), true));
        assert!(!h.decide(at(5_050), false));
        assert!(!h.decide(at(5_100), true));
        assert!(!h.decide(at(5_150), true));
        assert!(h.decide(at(5_200), true));
    }
}
