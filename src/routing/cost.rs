//! Link cost models: the static one uses declared latencies; the learned one predicts each
//! link's latency from what was measured on it.

use crate::topology::LinkMetrics;

/// How link latency is obtained for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CostModel {
    /// Declared `latency_ns` only; measurements never move routes.
    #[default]
    Static,
    /// Predicted latency from measurements (`enable_ml_routing`), see [`predicted_latency_ns`].
    Learned,
}

/// Reference frame size for the queueing term: the default maximum packet (64 KiB).
pub(super) const QUEUE_FRAME_BITS: f64 = 65_536.0 * 8.0;
/// Utilisation is capped below 1 so the queueing term stays finite.
const MAX_RHO: f64 = 0.99;
/// Loss is capped so the retransmission factor stays finite.
const MAX_LOSS: f64 = 0.9;

/// The learned model's latency prediction for a link, in ns:
///
/// `(base + S · ρ/(1−ρ)) / (1 − loss)`
///
/// where `base` is the EWMA of measured latency (the declared latency until a sample
/// arrives), `S` the time to serialise one 64 KiB frame at the link's capacity (the service
/// time of an M/M/1 queue, whose waiting time is `S·ρ/(1−ρ)`), `ρ` the EWMA utilisation and
/// `loss` the EWMA loss rate (each loss costs one more transmission on average).
pub fn predicted_latency_ns(declared_ns: u64, capacity_gbps: f64, m: &LinkMetrics) -> u64 {
    if m.samples == 0 {
        return declared_ns;
    }
    let base = m.ewma_latency_ns.max(0.0);
    let service_ns = QUEUE_FRAME_BITS / capacity_gbps.max(f64::MIN_POSITIVE);
    let rho = m.utilization.clamp(0.0, MAX_RHO);
    let queue = service_ns * rho / (1.0 - rho);
    let loss = m.loss_rate.clamp(0.0, MAX_LOSS);
    let v = (base + queue) / (1.0 - loss);
    v.min(u64::MAX as f64 / 4.0).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prediction_grows_with_utilisation_and_loss() {
        let mut m = LinkMetrics {
            samples: 1,
            ewma_latency_ns: 1000.0,
            ..Default::default()
        };
        assert_eq!(predicted_latency_ns(5, 100.0, &LinkMetrics::default()), 5);
        assert_eq!(predicted_latency_ns(5, 100.0, &m), 1000);
        let mut last = 1000;
        for rho in [0.2, 0.5, 0.8, 0.95, 1.0] {
            m.utilization = rho;
            let p = predicted_latency_ns(5, 100.0, &m);
            assert!(p > last, "{p} <= {last} at rho {rho}");
            last = p;
        }
        m.utilization = 0.0;
        m.loss_rate = 0.5;
        assert_eq!(predicted_latency_ns(5, 100.0, &m), 2000);
    }
}
