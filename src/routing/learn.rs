//! The learned link model: what a link's queueing delay will be at a given load, fitted
//! online to what was measured on it.
//!
//! Each sample of a link gives its load and, when a timing probe completed, the queueing
//! delay measured under that load (see [`crate::ring::Probe`]). Two features describe the
//! load:
//!
//! - `r = ρ/(1−ρ)`, with `ρ` the utilisation of the link's declared capacity over the
//!   sample's interval (capped at 0.95): the growth of an M/M/1 queue's waiting time;
//! - `q`, the bytes queued on the link when sampled, as the time to send them at the declared
//!   capacity (ms, so both features have similar ranges and the fit stays well
//!   conditioned): what a new message waits behind.
//!
//! The model is `delay = w1·r + w2·q`, fitted by recursive least squares with exponential
//! forgetting (each sample weighs 2 % less per newer one, so about the last 50 samples
//! count: the fit follows a link whose behaviour changes). It has no constant term: an idle
//! link with nothing queued has no queueing delay (the sampler reads such an interval as a
//! delay of 0), and a constant fitted under load would stay in every idle prediction. It
//! starts as the fixed M/M/1 model (`w1` = the time to serialise one 64 KiB frame, `w2 = 0`)
//! and moves from there as samples arrive.
//!
//! Every sample first scores both models out of sample: the absolute error of the learned
//! prediction and of the fixed one, each as a moving average (for the choice) and a total
//! (for reports). [`LinkLearner::predict_ns`] answers with the learned prediction once it
//! has been scored on enough samples and errs less than the fixed model, else with the fixed
//! one.

/// Reference frame of the fixed model's service time: the default largest packet (64 KiB).
pub const FIXED_FRAME_BITS: f64 = super::cost::QUEUE_FRAME_BITS;
/// Utilisation is capped here so `ρ/(1−ρ)` stays finite (19 at most).
const MAX_RHO: f64 = 0.95;
/// Weight of older samples: each newer sample multiplies it by this.
const FORGET: f64 = 0.98;
/// Initial covariance (a weak prior around the fixed model), and its cap: a feature that
/// stops varying (an idle link) must not let the covariance grow without bound.
const P_INIT: f64 = 1.0e4;
const P_MAX_TRACE: f64 = 3.0e4;
/// Weight of a new error in the moving averages of errors.
const ERROR_ALPHA: f64 = 0.1;
/// Samples scored before the learned prediction may replace the fixed one.
const MIN_SCORED: u64 = 8;
/// Largest delay taken as a sample, µs (a minute): beyond it the sample is not a link's.
/// Predictions and errors are capped there too, so every figure stays finite.
const MAX_DELAY_US: f64 = 60.0e6;
/// Smallest capacity a model assumes, Gbit/s.
const MIN_CAPACITY_GBPS: f64 = 1e-6;

/// What was observed on a link over one sampling interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSample {
    /// Utilisation of the declared capacity over the interval (0 idle, 1 full; more when
    /// the link carried more than it declared).
    pub utilisation: f64,
    /// Bytes queued on the link at the end of the interval.
    pub queued_bytes: f64,
    /// Queueing delay measured by probes that completed in the interval, ns.
    pub delay_ns: Option<f64>,
}

/// Errors of the two models on the samples scored so far.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct ModelErrors {
    /// Samples with a measured delay, each scored before the model learned from it.
    pub scored: u64,
    /// Mean absolute error of the learned model, ns.
    pub learned_mean_ns: f64,
    /// Mean absolute error of the fixed M/M/1 model, ns.
    pub fixed_mean_ns: f64,
    /// Moving average of the learned model's absolute error (recent samples weigh most),
    /// ns.
    pub learned_recent_ns: f64,
    /// The same for the fixed model, ns.
    pub fixed_recent_ns: f64,
}

/// One link's learned model (see the module documentation).
#[derive(Debug, Clone)]
pub struct LinkLearner {
    capacity_gbps: f64,
    w: [f64; D],
    p: [[f64; D]; D],
    learned_abs_us: f64,
    fixed_abs_us: f64,
    learned_recent_us: f64,
    fixed_recent_us: f64,
    scored: u64,
}

impl LinkLearner {
    /// A model of a link of `capacity_gbps` (its declared bandwidth), starting as the fixed
    /// M/M/1 model.
    pub fn new(capacity_gbps: f64) -> LinkLearner {
        // A capacity below 1 kbit/s is taken as 1 kbit/s: the figures stay finite.
        let capacity_gbps = if capacity_gbps.is_finite() {
            capacity_gbps.max(MIN_CAPACITY_GBPS)
        } else {
            1.0
        };
        let service_us = FIXED_FRAME_BITS / capacity_gbps / 1e3;
        LinkLearner {
            capacity_gbps,
            w: [service_us, 0.0],
            p: initial_covariance(),
            learned_abs_us: 0.0,
            fixed_abs_us: 0.0,
            learned_recent_us: 0.0,
            fixed_recent_us: 0.0,
            scored: 0,
        }
    }

    fn features(&self, s: &LoadSample) -> [f64; D] {
        let rho = if s.utilisation.is_finite() {
            s.utilisation.clamp(0.0, MAX_RHO)
        } else {
            MAX_RHO
        };
        let queued = if s.queued_bytes.is_finite() {
            s.queued_bytes.max(0.0)
        } else {
            0.0
        };
        // Bytes at Gbit/s: bits / (Gbit/s) = ns; ms for the fit.
        let queued_ms = (queued * 8.0 / self.capacity_gbps / 1e6).min(MAX_DELAY_US / 1e3);
        [rho / (1.0 - rho), queued_ms]
    }

    /// The fixed M/M/1 model's queueing delay at this load, ns: `S·ρ/(1−ρ)` with `S` the
    /// time to serialise a 64 KiB frame at the declared capacity.
    pub fn fixed_ns(&self, s: &LoadSample) -> f64 {
        let x = self.features(s);
        (FIXED_FRAME_BITS / self.capacity_gbps * x[0]).min(MAX_DELAY_US * 1e3)
    }

    /// The learned model's queueing delay at this load, ns (never negative).
    pub fn learned_ns(&self, s: &LoadSample) -> f64 {
        let x = self.features(s);
        let v = dot(&self.w, &x).clamp(0.0, MAX_DELAY_US) * 1e3;
        if v.is_finite() {
            v
        } else {
            0.0
        }
    }

    /// Whether the learned model replaces the fixed one now.
    pub fn trusted(&self) -> bool {
        self.scored >= MIN_SCORED && self.learned_recent_us <= self.fixed_recent_us
    }

    /// The queueing delay predicted at this load, ns: the learned model's when
    /// [`trusted`](Self::trusted), else the fixed one's.
    pub fn predict_ns(&self, s: &LoadSample) -> f64 {
        if self.trusted() {
            self.learned_ns(s)
        } else {
            self.fixed_ns(s)
        }
    }

    /// Scores both models on a sample with a measured delay, then learns from it: the
    /// absolute errors of the learned and the fixed model on it, ns. A sample without a
    /// delay teaches nothing (`None`).
    pub fn observe(&mut self, s: &LoadSample) -> Option<(f64, f64)> {
        let delay_ns = s.delay_ns.filter(|d| d.is_finite() && *d >= 0.0)?;
        let y = (delay_ns / 1e3).min(MAX_DELAY_US);
        let x = self.features(s);
        let learned = dot(&self.w, &x).clamp(0.0, MAX_DELAY_US);
        let fixed = (self.fixed_ns(s) / 1e3).min(MAX_DELAY_US);
        let (el, ef) = ((learned - y).abs(), (fixed - y).abs());
        if self.scored == 0 {
            (self.learned_recent_us, self.fixed_recent_us) = (el, ef);
        } else {
            self.learned_recent_us += ERROR_ALPHA * (el - self.learned_recent_us);
            self.fixed_recent_us += ERROR_ALPHA * (ef - self.fixed_recent_us);
        }
        self.learned_abs_us += el;
        self.fixed_abs_us += ef;
        self.scored += 1;
        self.update(&x, y);
        Some((el * 1e3, ef * 1e3))
    }

    /// One step of recursive least squares with forgetting.
    fn update(&mut self, x: &[f64; D], y: f64) {
        let px = mul(&self.p, x);
        let denom = FORGET + dot(x, &px);
        if !denom.is_finite() || denom <= 0.0 {
            return;
        }
        let k = px.map(|v| v / denom);
        let e = y - dot(&self.w, x);
        for (w, k) in self.w.iter_mut().zip(k) {
            *w += k * e;
        }
        // P = (P − k·(xᵀP)) / λ; xᵀP = (Px)ᵀ as P is symmetric, and is kept so.
        for (row, ki) in self.p.iter_mut().zip(k) {
            for (v, pj) in row.iter_mut().zip(px) {
                *v = (*v - ki * pj) / FORGET;
            }
        }
        for i in 0..D {
            for j in 0..i {
                let v = 0.5 * (self.p[i][j] + self.p[j][i]);
                (self.p[i][j], self.p[j][i]) = (v, v);
            }
        }
        if self.w.iter().any(|w| !w.is_finite()) {
            // Numbers a sample should not produce: start over from the fixed model.
            *self = LinkLearner::new(self.capacity_gbps);
            return;
        }
        let trace: f64 = (0..D).map(|i| self.p[i][i]).sum();
        if !trace.is_finite() || (0..D).any(|i| self.p[i][i] <= 0.0) {
            // Rounding left the covariance indefinite: keep the weights, forget their
            // confidence.
            self.p = initial_covariance();
            return;
        }
        if trace > P_MAX_TRACE {
            let f = P_MAX_TRACE / trace;
            self.p.iter_mut().flatten().for_each(|v| *v *= f);
        }
    }

    /// The errors of both models so far.
    pub fn errors(&self) -> ModelErrors {
        let mean = |sum: f64| {
            if self.scored == 0 {
                0.0
            } else {
                sum / self.scored as f64 * 1e3
            }
        };
        ModelErrors {
            scored: self.scored,
            learned_mean_ns: mean(self.learned_abs_us),
            fixed_mean_ns: mean(self.fixed_abs_us),
            learned_recent_ns: self.learned_recent_us * 1e3,
            fixed_recent_ns: self.fixed_recent_us * 1e3,
        }
    }
}

/// Features of the model.
const D: usize = 2;

fn initial_covariance() -> [[f64; D]; D] {
    let mut p = [[0.0; D]; D];
    for (i, row) in p.iter_mut().enumerate() {
        row[i] = P_INIT;
    }
    p
}

fn dot(a: &[f64; D], b: &[f64; D]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

fn mul(m: &[[f64; D]; D], x: &[f64; D]) -> [f64; D] {
    std::array::from_fn(|i| dot(&m[i], x))
}

#[cfg(test)]
#[path = "learn_tests.rs"]
mod tests;
