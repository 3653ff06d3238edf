//! `TopologyManager`: the reference's topology class. It owns a [`RoutingEngine`] (which owns
//! the [`Topology`]); every change goes through the engine so routing tables follow it, and
//! path queries read those tables.

use super::{analyze_bottlenecks, Metric, Route, RouteRequest, RoutingEngine, RoutingOptions};
use crate::error::Result;
use crate::model::{unix_now, BottleneckInfo, FabricZone, NodeSignature, TopologyInfo};
use crate::topology::{LinkPolicy, LinkSpec, Topology};
use std::collections::BTreeMap;

/// Nodes, links, zones and health of a fabric, with routing tables kept current.
///
/// ```
/// use hyperfabric::{HardwareType, LinkSpec, Metric, NodeSignature, TopologyManager};
/// let tm = TopologyManager::new(true);
/// for id in ["a", "b", "c"] {
///     tm.add_node(NodeSignature::new(id, HardwareType::CpuServer, 100.0, 10).unwrap()).unwrap();
/// }
/// tm.add_link(LinkSpec::new("a", "b").latency_ns(100)).unwrap();
/// tm.add_link(LinkSpec::new("b", "c").latency_ns(100)).unwrap();
/// assert_eq!(tm.find_shortest_path("a", "c", Metric::Latency).unwrap(), ["a", "b", "c"]);
/// ```
#[derive(Debug)]
pub struct TopologyManager {
    engine: RoutingEngine,
}

impl TopologyManager {
    /// A manager with tables for every node. `enable_auto_optimization` spreads flows over
    /// equal-cost next hops.
    pub fn new(enable_auto_optimization: bool) -> TopologyManager {
        TopologyManager::with_options(RoutingOptions {
            load_balancing: enable_auto_optimization,
            ..RoutingOptions::default()
        })
    }

    /// A manager whose routing engine has `options`.
    pub fn with_options(options: RoutingOptions) -> TopologyManager {
        TopologyManager {
            engine: RoutingEngine::new(options),
        }
    }

    /// The routing engine (tables, constrained requests, link metrics).
    pub fn routing(&self) -> &RoutingEngine {
        &self.engine
    }

    /// Reads the topology.
    pub fn read<T>(&self, f: impl FnOnce(&Topology) -> T) -> T {
        self.engine.read_topology(f)
    }

    /// Adds a node (`DuplicateNodeError`, `InvalidNodeError`).
    pub fn add_node(&self, node: NodeSignature) -> Result<()> {
        self.engine.update_topology(|t| t.add_node(node))
    }

    /// Removes a node with its links and memberships (`NodeNotFoundError`).
    pub fn remove_node(&self, node_id: &str) -> Result<()> {
        self.engine
            .update_topology(|t| t.remove_node(node_id).map(drop))
    }

    /// Declares a link.
    pub fn add_link(&self, link: LinkSpec) -> Result<()> {
        self.engine.update_topology(|t| t.add_link(link))
    }

    /// Removes a declared link (`LinkNotFoundError`).
    pub fn remove_link(&self, a: &str, b: &str) -> Result<()> {
        self.engine.update_topology(|t| t.remove_link(a, b))
    }

    /// Sets the link policy (`None`: the default).
    pub fn set_link_policy(&self, policy: Option<LinkPolicy>) -> Result<()> {
        self.engine.update_topology(|t| {
            t.set_link_policy(policy);
            Ok(())
        })
    }

    /// Marks a link up or down.
    pub fn set_link_state(&self, a: &str, b: &str, up: bool) -> Result<()> {
        self.engine.update_topology(|t| t.set_link_state(a, b, up))
    }

    /// Marks a node healthy or failed; routes avoid failed nodes.
    pub fn set_node_health(&self, node_id: &str, up: bool) -> Result<()> {
        self.engine
            .update_topology(|t| t.set_node_health(node_id, up))
    }

    /// Creates a zone (`DuplicateZoneError`, `InsufficientResourcesError`, `InvalidZoneError`).
    pub fn create_zone(&self, zone: FabricZone) -> Result<()> {
        self.engine.update_topology(|t| t.create_zone(zone))
    }

    /// Deletes a zone (`ZoneNotFoundError`).
    pub fn delete_zone(&self, zone_id: &str) -> Result<()> {
        self.engine
            .update_topology(|t| t.delete_zone(zone_id).map(drop))
    }

    /// Adds a node to a zone.
    pub fn assign_to_zone(&self, zone_id: &str, node_id: &str) -> Result<()> {
        self.engine
            .update_topology(|t| t.assign_to_zone(zone_id, node_id))
    }

    /// Removes a node from a zone.
    pub fn unassign_from_zone(&self, zone_id: &str, node_id: &str) -> Result<()> {
        self.engine
            .update_topology(|t| t.unassign_from_zone(zone_id, node_id))
    }

    /// The reference's `find_shortest_path`: node ids of the best path by `metric`.
    pub fn find_shortest_path(
        &self,
        source: &str,
        destination: &str,
        metric: Metric,
    ) -> Result<Vec<String>> {
        Ok(self.shortest_route(source, destination, metric)?.path)
    }

    /// The best route by `metric`, with its latency, bandwidth and hops.
    pub fn shortest_route(&self, source: &str, destination: &str, metric: Metric) -> Result<Route> {
        self.engine.route(&RouteRequest {
            metric,
            ..RouteRequest::new(source, destination)
        })
    }

    /// The best route by latency on the configured figures (see
    /// [`RoutingEngine::configured_route`]).
    pub fn configured_route(&self, source: &str, destination: &str) -> Result<Route> {
        self.engine
            .configured_route(&RouteRequest::new(source, destination))
    }

    /// Solves a constrained request (see [`RoutingEngine::route`]).
    pub fn route(&self, request: &RouteRequest) -> Result<Route> {
        self.engine.route(request)
    }

    /// Records link measurements (see [`RoutingEngine::update_link_metrics`]).
    pub fn update_link_metrics(
        &self,
        source: &str,
        destination: &str,
        latency_ns: u64,
        bandwidth_utilized_gbps: f64,
        packet_loss_rate: f64,
    ) -> Result<()> {
        self.engine.update_link_metrics(
            source,
            destination,
            latency_ns,
            bandwidth_utilized_gbps,
            packet_loss_rate,
        )
    }

    /// Current bottlenecks, most severe first.
    pub fn analyze_bottlenecks(&self) -> Result<Vec<BottleneckInfo>> {
        let tables = self.engine.current_tables()?;
        Ok(self.read(|t| analyze_bottlenecks(t, &tables)))
    }

    /// Topology state with performance figures taken from the routing tables: over the
    /// routes of their sources (every node, or for a protocol the nodes it hosts).
    pub fn topology_info(&self) -> Result<TopologyInfo> {
        let tables = self.engine.current_tables()?;
        let bottlenecks = self.read(|t| analyze_bottlenecks(t, &tables));
        let g = tables.graph();
        let mut metrics = BTreeMap::new();
        let (mut pairs, mut reached, mut lat_sum, mut lat_max, mut hop_sum, mut hop_max) =
            (0u64, 0u64, 0f64, 0u64, 0u64, 0u64);
        for &s in tables.sources() {
            let view = tables.source(s).expect("listed sources have tables");
            for d in 0..g.node_count() as u32 {
                if d == s {
                    continue;
                }
                pairs += 1;
                let e = view.lookup(d, Metric::Latency);
                if e.reachable() {
                    reached += 1;
                    lat_sum += e.latency_ns as f64;
                    lat_max = lat_max.max(e.latency_ns);
                    hop_sum += e.hops as u64;
                    hop_max = hop_max.max(e.hops as u64);
                }
            }
        }
        let avg = |sum: f64| {
            if reached > 0 {
                sum / reached as f64
            } else {
                0.0
            }
        };
        metrics.insert("route_epoch".into(), g.epoch() as f64);
        metrics.insert("table_build_ms".into(), tables.build_ns() as f64 / 1e6);
        metrics.insert("tables_built_unix".into(), tables.built_at());
        metrics.insert("table_sources".into(), tables.sources().len() as f64);
        metrics.insert(
            "reachable_pair_ratio".into(),
            if pairs > 0 {
                reached as f64 / pairs as f64
            } else {
                1.0
            },
        );
        metrics.insert("avg_path_latency_ns".into(), avg(lat_sum));
        metrics.insert("max_path_latency_ns".into(), lat_max as f64);
        metrics.insert("avg_path_hops".into(), avg(hop_sum as f64));
        metrics.insert("diameter_hops".into(), hop_max as f64);
        metrics.insert("links_up".into(), g.link_count() as f64);
        metrics.insert("ecmp_alternates".into(), tables.alternates_len() as f64);
        Ok(self.read(|t| TopologyInfo {
            total_nodes: t.node_count(),
            total_links: t.link_count(),
            zones: t.zones().iter().map(|z| z.zone.clone()).collect(),
            bottlenecks,
            performance_metrics: metrics,
            quantum_enabled_nodes: t.nodes().filter(|n| n.hardware_type.is_quantum()).count(),
            neuromorphic_nodes: t
                .nodes()
                .filter(|n| n.hardware_type.is_neuromorphic())
                .count(),
            timestamp: unix_now(),
        }))
    }
}

impl Default for TopologyManager {
    fn default() -> Self {
        TopologyManager::new(true)
    }
}
