//! Result records of the API reference.

use super::FabricZone;
use serde::Serialize;
use std::collections::BTreeMap;

/// Result of a `ping` between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingResult {
    /// Source node id.
    pub source: String,
    /// Destination node id.
    pub destination: String,
    /// Median round-trip time / 2, in ns.
    pub latency_ns: u64,
    /// Bandwidth measured from a pipelined burst, in Gbit/s.
    pub bandwidth_gbps: f64,
    /// Node path the probes took, recorded hop by hop.
    pub path: Vec<String>,
    /// Fraction of probes that timed out.
    pub packet_loss_rate: f64,
    /// Seconds since the Unix epoch when the ping finished.
    pub timestamp: f64,
    /// Whether at least one probe came back.
    pub success: bool,
}

impl PingResult {
    /// Latency in milliseconds.
    pub fn latency_ms(&self) -> f64 {
        self.latency_ns as f64 / 1_000_000.0
    }

    /// Latency in microseconds.
    pub fn latency_us(&self) -> f64 {
        self.latency_ns as f64 / 1_000.0
    }
}

/// A performance bottleneck and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BottleneckInfo {
    /// Where: a link `"a<->b"` or a node id.
    pub location: String,
    /// What kind: `"link_utilization"`, `"route_concentration"`, `"node_bandwidth"`, ...
    pub bottleneck_type: String,
    /// 0.0 (harmless) to 1.0 (saturated).
    pub severity: f64,
    /// Measured utilisation of the location, 0.0 to 1.0 (0 when nothing was measured).
    pub current_utilization: f64,
    /// A concrete action that would relieve it.
    pub recommended_action: String,
    /// Routes that cross the location, as node paths.
    pub affected_paths: Vec<Vec<String>>,
}

/// The state of the fabric's topology.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopologyInfo {
    /// Registered nodes.
    pub total_nodes: usize,
    /// Links (declared, or implied by the `auto` link policy).
    pub total_links: usize,
    /// Zones.
    pub zones: Vec<FabricZone>,
    /// Current bottlenecks.
    pub bottlenecks: Vec<BottleneckInfo>,
    /// Named figures (route epoch, table build time, average path latency, ...).
    pub performance_metrics: BTreeMap<String, f64>,
    /// Nodes that are quantum processors.
    pub quantum_enabled_nodes: usize,
    /// Nodes that are neuromorphic processors.
    pub neuromorphic_nodes: usize,
    /// Seconds since the Unix epoch when the information was taken.
    pub timestamp: f64,
}

/// Seconds since the Unix epoch, as the reference's `timestamp` fields.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
