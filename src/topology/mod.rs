//! The fabric's topology: nodes, links, zones, health and measured link metrics
//! ([`Topology`]), and generators of test topologies. It is the data routing reads; the
//! reference's `TopologyManager`, which keeps routing tables in step with it, lives in the
//! `routing` module (routing depends on the topology, never the reverse).
#![forbid(unsafe_code)]

pub mod generate;
mod graph;
mod zones;

pub use graph::{LinkMetrics, LinkPolicy, LinkSpec, LinkView, Topology};
pub use zones::ZoneState;
