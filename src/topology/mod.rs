//! The fabric's topology: nodes, links, zones, health and measured link metrics
//! ([`Topology`]), and the reference's `TopologyManager` façade over it and its routing tables.
#![forbid(unsafe_code)]

mod bottleneck;
pub mod generate;
mod graph;
mod manager;

pub use bottleneck::analyze_bottlenecks;
pub use graph::{LinkMetrics, LinkPolicy, LinkSpec, LinkView, Topology, ZoneState};
pub use manager::TopologyManager;
