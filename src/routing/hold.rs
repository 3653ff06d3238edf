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
//!
//! The dwell time grows with flapping, as route flap damping does: each hand-over adds one
//! to a penalty that halves every [`HoldRules::flap_half_life`], and the dwell after a
//! hand-over is the base dwell times 2^(penalty − 1), up to [`HoldRules::max_dwell`]. A
//! single move, or a move and its return, waits the base dwell; traffic that swings its own
//! route back and forth (its load moves with the route, and the old path looks better each
//! time) moves less and less often: after 2, 3.9, 6.9, 10.4 s, ..., about every 13.5 s once the
//! penalty settles with the defaults, instead of every 2 s for ever.

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
    /// Least time between two hand-overs (without flapping).
    pub dwell: Duration,
    /// Half-life of the flapping penalty.
    pub flap_half_life: Duration,
    /// Longest dwell time, however much routes flapped.
    pub max_dwell: Duration,
}

impl Default for HoldRules {
    fn default() -> HoldRules {
        HoldRules {
            margin: 0.25,
            min_gain_ns: 2_000,
            sustain: Duration::from_millis(100),
            dwell: Duration::from_secs(2),
            flap_half_life: Duration::from_secs(30),
            max_dwell: Duration::from_secs(60),
        }
    }
}

/// The state of the hysteresis (see the module documentation).
#[derive(Debug, Clone)]
pub struct RouteHold {
    rules: HoldRules,
    better_since: Option<Instant>,
    last_handover: Option<Instant>,
    /// The flapping penalty as of the last hand-over (see the module documentation).
    penalty: f64,
}

impl RouteHold {
    /// A hold with `rules`, nothing handed over yet.
    pub fn new(rules: HoldRules) -> RouteHold {
        RouteHold {
            rules,
            better_since: None,
            last_handover: None,
            penalty: 0.0,
        }
    }

    /// The least time from the last hand-over to the next one now.
    pub fn dwell(&self) -> Duration {
        let grown = self.rules.dwell.as_secs_f64() * 2f64.powf((self.penalty - 1.0).max(0.0));
        Duration::from_secs_f64(grown.min(self.rules.max_dwell.as_secs_f64())).max(self.rules.dwell)
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
            .is_none_or(|t| now.duration_since(t) >= self.dwell());
        if sustained && rested {
            let decay = self.last_handover.map_or(0.0, |t| {
                let half_lives = now.duration_since(t).as_secs_f64()
                    / self.rules.flap_half_life.as_secs_f64().max(1e-3);
                self.penalty * 0.5f64.powf(half_lives)
            });
            self.penalty = decay + 1.0;
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
        // A saving that lapses for one sample starts its sustain time over (past the dwell,
        // which two moves in 2 s made longer: see the next test).
        assert!(!h.decide(at(6_950), false));
        assert!(!h.decide(at(7_000), true));
        assert!(!h.decide(at(7_050), false));
        assert!(!h.decide(at(7_100), true));
        assert!(!h.decide(at(7_150), true));
        assert!(h.decide(at(7_200), true));
    }

    #[test]
    fn routes_that_flap_wait_longer_and_longer_then_settle_back() {
        let rules = HoldRules::default();
        let mut h = RouteHold::new(rules);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // A saving wanted at every sample (50 ms) for 10 minutes: a swing that never ends.
        let mut moved = Vec::new();
        for ms in (0..600_000).step_by(50) {
            if h.decide(at(ms), true) {
                moved.push(ms);
            }
        }
        let gaps: Vec<u64> = moved.windows(2).map(|w| w[1] - w[0]).collect();
        // A move and its return wait the base dwell; then the gaps grow.
        assert_eq!(gaps[0], 2_000, "{gaps:?}");
        assert!(gaps[1] > 3_000 && gaps[2] > gaps[1], "{gaps:?}");
        // Never longer than the cap, and settled well above the base dwell.
        assert!(gaps.iter().all(|&g| g <= 60_050), "{gaps:?}");
        let late = &gaps[gaps.len() - 5..];
        assert!(late.iter().all(|&g| g >= 10_000), "{gaps:?}");
        assert!(moved.len() < 60, "{} hand-overs in 10 minutes", moved.len());
        // Quiet for ten minutes: the penalty decays and a new move waits the base dwell.
        let last = *moved.last().unwrap();
        let quiet = last + 600_000;
        assert!(h.decide(at(quiet), true));
        assert!(h.dwell() < Duration::from_millis(2_010), "{:?}", h.dwell());
    }
}
