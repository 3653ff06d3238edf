//! Routing: a compact graph snapshot of the topology ([`RouteGraph`]), exact searches over it,
//! precomputed per-source [`RoutingTables`] for the three metrics (with the answers of send
//! admission: whether a constrained, quantum or zoned send has a route), and the
//! [`RoutingEngine`] that rebuilds them off the caller's thread and answers constrained route
//! requests; above them the reference's [`TopologyManager`] (a topology whose every change
//! reaches the routing engine) and bottleneck analysis ([`analyze_bottlenecks`]).
#![forbid(unsafe_code)]

mod admission;
mod bottleneck;
mod cost;
mod engine;
mod graph;
mod hold;
mod learn;
mod manager;
mod request;
mod search;
mod table;

pub use admission::{Admitted, Refusal, SendRequirements};
pub use bottleneck::analyze_bottlenecks;
pub use cost::{predicted_latency_ns, CostModel};
pub use engine::{RoutingEngine, RoutingOptions, SourceSet};
pub use graph::RouteGraph;
pub use hold::{HoldRules, RouteHold};
pub use learn::{LinkLearner, LoadSample, ModelErrors};
pub use manager::TopologyManager;
pub(crate) use request::intermediates;
pub use request::{Route, RouteRequest};
pub use search::{Search, SearchOrder};
pub use table::{RouteEntry, RouteLoad, RoutingTables, SourceRoutes, NO_ROUTE};

use std::fmt;
use std::str::FromStr;

/// What a route optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Lowest path latency (sum of link and node latencies); ties: fewer hops.
    Latency = 0,
    /// Widest path (largest bottleneck bandwidth); ties: lower latency, then fewer hops.
    Bandwidth = 1,
    /// Fewest links; ties: lower latency.
    Hops = 2,
}

impl Metric {
    /// The three metrics, in table order.
    pub const ALL: [Metric; 3] = [Metric::Latency, Metric::Bandwidth, Metric::Hops];

    /// The metric's name (`latency`, `bandwidth`, `hops`).
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Latency => "latency",
            Metric::Bandwidth => "bandwidth",
            Metric::Hops => "hops",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Metric> {
        match s {
            "latency" => Ok(Metric::Latency),
            "bandwidth" => Ok(Metric::Bandwidth),
            "hops" => Ok(Metric::Hops),
            _ => Err(crate::Error::InvalidArgument(format!(
                "unknown metric {s:?} (expected one of: latency, bandwidth, hops)"
            ))),
        }
    }
}
