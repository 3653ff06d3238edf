//! `measure_network_performance`: pings between this protocol's nodes and every other node of
//! the host for a while, summarised as named metrics.

use super::{lock, HyperFabricProtocol};
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// The reference's `measure_network_performance`: for `duration`, pings every other live node
/// of the host from each node this protocol hosts (64-byte probes, one destination after the
/// other, round after round) and reports, as a map of metric names to values: the pairs and
/// probes measured, the latency (mean, min, median, max of the pings' median one-way
/// latencies, ns), the mean burst bandwidth (Gbit/s), the probe loss rate, and the engine's
/// traffic over the period (frames and bytes per second). A destination that fails to answer
/// counts as lost probes, not as an error. `NodeNotFoundError` when this protocol hosts no
/// node.
pub fn measure_network_performance(
    protocol: &HyperFabricProtocol,
    duration: Duration,
) -> Result<std::collections::BTreeMap<String, f64>> {
    protocol.check_process()?;
    let sources = lock(&protocol.inner.engine).hosted_ids();
    if sources.is_empty() {
        return Err(Error::NodeNotFound(
            "measure_network_performance needs a node hosted by this protocol".into(),
        ));
    }
    let before = protocol.inner.counters();
    let start = Instant::now();
    let (mut latencies, mut bandwidths) = (Vec::new(), Vec::new());
    let (mut probes, mut lost, mut pairs) = (0.0f64, 0.0f64, std::collections::BTreeSet::new());
    loop {
        let peers: Vec<String> = protocol
            .inner
            .registry
            .list()?
            .into_iter()
            .map(|e| e.signature.node_id)
            .collect();
        for src in &sources {
            for dst in peers.iter().filter(|d| *d != src) {
                if start.elapsed() >= duration && !latencies.is_empty() {
                    break;
                }
                match protocol.ping(src, dst, 64, 1000) {
                    Ok(r) => {
                        probes += 16.0;
                        lost += r.packet_loss_rate * 16.0;
                        if r.success {
                            latencies.push(r.latency_ns as f64);
                            bandwidths.push(r.bandwidth_gbps);
                            pairs.insert((src.clone(), dst.clone()));
                        }
                    }
                    Err(e) if e.kind() == crate::ErrorKind::NodeNotFound => {}
                    Err(_) => {
                        probes += 16.0;
                        lost += 16.0;
                    }
                }
            }
        }
        if start.elapsed() >= duration || peers.len() < 2 {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let after = protocol.inner.counters();
    latencies.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let mut m = std::collections::BTreeMap::new();
    m.insert("duration_s".into(), secs);
    m.insert("pairs_measured".into(), pairs.len() as f64);
    m.insert("probes".into(), probes);
    m.insert(
        "packet_loss_rate".into(),
        if probes > 0.0 { lost / probes } else { 0.0 },
    );
    m.insert("avg_latency_ns".into(), mean(&latencies));
    m.insert(
        "min_latency_ns".into(),
        latencies.first().copied().unwrap_or(0.0),
    );
    m.insert(
        "p50_latency_ns".into(),
        latencies.get(latencies.len() / 2).copied().unwrap_or(0.0),
    );
    m.insert(
        "max_latency_ns".into(),
        latencies.last().copied().unwrap_or(0.0),
    );
    m.insert("avg_bandwidth_gbps".into(), mean(&bandwidths));
    m.insert(
        "frames_per_s".into(),
        (after.frames_sent + after.frames_received - before.frames_sent - before.frames_received)
            as f64
            / secs,
    );
    m.insert(
        "bytes_per_s".into(),
        (after.bytes_sent + after.bytes_received - before.bytes_sent - before.bytes_received)
            as f64
            / secs,
    );
    Ok(m)
}
