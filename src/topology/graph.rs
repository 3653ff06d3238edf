//! [`Topology`]: the authoritative description of the fabric, kept in a petgraph
//! `StableGraph` so node and link indices survive removals. Every change bumps `epoch`, which the
//! route service compares with the epoch of the tables it published.

use super::zones::ZoneState;
use crate::error::{Error, Result};
use crate::model::NodeSignature;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableUnGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

/// Which pairs of nodes are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkPolicy {
    /// Every pair of nodes is linked directly: on one host every pair of processes can share
    /// memory, across hosts every pair can open a socket. Declared links only set attributes.
    Auto,
    /// Only declared links exist.
    Explicit,
}

impl LinkPolicy {
    /// The config string.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPolicy::Auto => "auto",
            LinkPolicy::Explicit => "explicit",
        }
    }
}

impl fmt::Display for LinkPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LinkPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(LinkPolicy::Auto),
            "explicit" => Ok(LinkPolicy::Explicit),
            _ => Err(format!(
                "unknown link policy {s:?} (expected one of: auto, explicit)"
            )),
        }
    }
}

/// A declared link between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSpec {
    /// One end.
    pub a: String,
    /// The other end.
    pub b: String,
    /// Latency of the link itself in ns; 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ns: Option<u64>,
    /// Capacity in Gbit/s; the smaller of the two nodes' bandwidths when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_gbps: Option<f64>,
}

impl LinkSpec {
    /// A link with no declared attributes.
    pub fn new(a: impl Into<String>, b: impl Into<String>) -> LinkSpec {
        LinkSpec {
            a: a.into(),
            b: b.into(),
            latency_ns: None,
            bandwidth_gbps: None,
        }
    }

    /// Sets the declared latency.
    pub fn latency_ns(mut self, ns: u64) -> LinkSpec {
        self.latency_ns = Some(ns);
        self
    }

    /// Sets the declared bandwidth.
    pub fn bandwidth_gbps(mut self, gbps: f64) -> LinkSpec {
        self.bandwidth_gbps = Some(gbps);
        self
    }
}

/// Measured state of a link, fed by `update_link_metrics` and (later) the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkMetrics {
    /// Number of updates received.
    pub samples: u64,
    /// EWMA of measured latency in ns.
    pub ewma_latency_ns: f64,
    /// EWMA of utilisation, 0..1 of the link's capacity.
    pub utilization: f64,
    /// Last reported bandwidth in use, Gbit/s.
    pub utilized_gbps: f64,
    /// EWMA of the packet loss rate, 0..1.
    pub loss_rate: f64,
    /// Latency the learned router last set for the link, ns: the declared (or reported)
    /// latency plus the queueing delay its model predicts from the link's measured load.
    /// With learned routing, routes use it instead of the formula over the reported figures.
    pub learned_latency_ns: Option<u64>,
}

/// Weight of a new sample in the link EWMAs.
const EWMA_ALPHA: f64 = 0.3;

impl LinkMetrics {
    fn record(&mut self, latency_ns: u64, utilized_gbps: f64, capacity_gbps: f64, loss: f64) {
        let util = (utilized_gbps / capacity_gbps).clamp(0.0, 1.0);
        if self.samples == 0 {
            self.ewma_latency_ns = latency_ns as f64;
            self.utilization = util;
            self.loss_rate = loss;
        } else {
            let mix = |old: f64, new: f64| old + EWMA_ALPHA * (new - old);
            self.ewma_latency_ns = mix(self.ewma_latency_ns, latency_ns as f64);
            self.utilization = mix(self.utilization, util);
            self.loss_rate = mix(self.loss_rate, loss);
        }
        self.utilized_gbps = utilized_gbps;
        self.samples += 1;
    }
}

#[derive(Debug, Clone)]
pub(crate) struct NodeState {
    pub(crate) sig: NodeSignature,
    pub(crate) up: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct LinkState {
    pub(crate) latency_ns: Option<u64>,
    pub(crate) bandwidth_gbps: Option<f64>,
    pub(crate) up: bool,
    pub(crate) metrics: LinkMetrics,
}

/// One link as seen by readers: declared attributes resolved to effective values.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkView {
    /// One end.
    pub a: String,
    /// The other end.
    pub b: String,
    /// Effective latency (declared or 0), ns.
    pub latency_ns: u64,
    /// Effective capacity (declared or the smaller node bandwidth), Gbit/s.
    pub bandwidth_gbps: f64,
    /// Whether the link was declared (as opposed to implied by the `auto` policy).
    pub declared: bool,
    /// Whether the link carries traffic.
    pub up: bool,
    /// Measured state.
    pub metrics: LinkMetrics,
}

/// The fabric's topology. Plain data: routing reads it, the manager mutates it.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    graph: StableUnGraph<NodeState, LinkState>,
    index: HashMap<String, NodeIndex>,
    pub(super) zones: Vec<ZoneState>,
    policy: Option<LinkPolicy>,
    /// Auto-policy pairs that were marked down (implied links have no edge to carry the flag).
    down_pairs: BTreeSet<(NodeIndex, NodeIndex)>,
    /// Metrics measured on implied (auto-policy) links.
    implied_metrics: HashMap<(NodeIndex, NodeIndex), LinkMetrics>,
    epoch: u64,
}

fn ordered(a: NodeIndex, b: NodeIndex) -> (NodeIndex, NodeIndex) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Topology {
    /// An empty topology with the default link policy.
    pub fn new() -> Topology {
        Topology::default()
    }

    /// Bumped on every change.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(super) fn touch(&mut self) {
        self.epoch += 1;
    }

    /// The effective link policy: the one set, else `explicit` when any link is declared and
    /// `auto` otherwise.
    pub fn link_policy(&self) -> LinkPolicy {
        self.policy.unwrap_or(if self.graph.edge_count() > 0 {
            LinkPolicy::Explicit
        } else {
            LinkPolicy::Auto
        })
    }

    /// The policy that was set explicitly, if any.
    pub fn link_policy_setting(&self) -> Option<LinkPolicy> {
        self.policy
    }

    /// Sets (or with `None`, resets to the default) the link policy.
    pub fn set_link_policy(&mut self, policy: Option<LinkPolicy>) {
        self.policy = policy;
        self.touch();
    }

    pub(crate) fn node_index(&self, id: &str) -> Result<NodeIndex> {
        self.index
            .get(id)
            .copied()
            .ok_or_else(|| Error::NodeNotFound(format!("node {id:?} is not in the topology")))
    }

    /// Adds a validated node; `DuplicateNodeError` if the id exists.
    pub fn add_node(&mut self, node: NodeSignature) -> Result<()> {
        node.validate()?;
        if self.index.contains_key(&node.node_id) {
            return Err(Error::DuplicateNode(format!(
                "node {:?} is already registered",
                node.node_id
            )));
        }
        let id = node.node_id.clone();
        let ix = self.graph.add_node(NodeState {
            sig: node,
            up: true,
        });
        self.index.insert(id, ix);
        self.touch();
        Ok(())
    }

    /// Removes a node, its links and its zone memberships.
    pub fn remove_node(&mut self, id: &str) -> Result<NodeSignature> {
        let ix = self.node_index(id)?;
        self.index.remove(id);
        for z in &mut self.zones {
            z.members.remove(id);
        }
        self.down_pairs.retain(|(a, b)| *a != ix && *b != ix);
        self.implied_metrics
            .retain(|(a, b), _| *a != ix && *b != ix);
        let state = self.graph.remove_node(ix).expect("indexed node exists");
        self.touch();
        Ok(state.sig)
    }

    /// A node's signature.
    pub fn node(&self, id: &str) -> Result<&NodeSignature> {
        Ok(&self.graph[self.node_index(id)?].sig)
    }

    /// Whether the node is up (not marked failed).
    pub fn node_up(&self, id: &str) -> Result<bool> {
        Ok(self.graph[self.node_index(id)?].up)
    }

    /// Marks a node up or down; routes avoid nodes that are down.
    pub fn set_node_health(&mut self, id: &str, up: bool) -> Result<()> {
        let ix = self.node_index(id)?;
        if self.graph[ix].up != up {
            self.graph[ix].up = up;
            self.touch();
        }
        Ok(())
    }

    /// Nodes in insertion order (the order of dense indices in routing tables).
    pub fn nodes(&self) -> impl Iterator<Item = &NodeSignature> + '_ {
        self.graph.node_indices().map(move |ix| &self.graph[ix].sig)
    }

    pub(crate) fn node_states(&self) -> impl Iterator<Item = (NodeIndex, &NodeState)> + '_ {
        self.graph
            .node_indices()
            .map(move |ix| (ix, &self.graph[ix]))
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// Declares a link. Both ends must exist, must differ, and must not be linked already;
    /// declared values must be finite and the bandwidth positive.
    pub fn add_link(&mut self, spec: LinkSpec) -> Result<()> {
        let a = self.node_index(&spec.a)?;
        let b = self.node_index(&spec.b)?;
        if a == b {
            return Err(Error::InvalidArgument(format!(
                "link {:?}<->{:?}: a node cannot link to itself",
                spec.a, spec.b
            )));
        }
        if let Some(bw) = spec.bandwidth_gbps {
            if !bw.is_finite() || bw <= 0.0 {
                return Err(Error::InvalidArgument(format!(
                    "link {:?}<->{:?}: bandwidth_gbps must be positive and finite (got {bw})",
                    spec.a, spec.b
                )));
            }
        }
        if self.graph.find_edge(a, b).is_some() {
            return Err(Error::InvalidArgument(format!(
                "link {:?}<->{:?} is already declared",
                spec.a, spec.b
            )));
        }
        self.graph.add_edge(
            a,
            b,
            LinkState {
                latency_ns: spec.latency_ns,
                bandwidth_gbps: spec.bandwidth_gbps,
                up: true,
                metrics: LinkMetrics::default(),
            },
        );
        self.touch();
        Ok(())
    }

    fn declared_edge(&self, a: &str, b: &str) -> Result<EdgeIndex> {
        let (ia, ib) = (self.node_index(a)?, self.node_index(b)?);
        self.graph
            .find_edge(ia, ib)
            .ok_or_else(|| Error::LinkNotFound(format!("no declared link {a:?}<->{b:?}")))
    }

    /// Removes a declared link.
    pub fn remove_link(&mut self, a: &str, b: &str) -> Result<()> {
        let e = self.declared_edge(a, b)?;
        self.graph.remove_edge(e);
        self.touch();
        Ok(())
    }

    /// Whether `a` and `b` are linked under the current policy.
    pub fn has_link(&self, a: &str, b: &str) -> Result<bool> {
        let (ia, ib) = (self.node_index(a)?, self.node_index(b)?);
        Ok(ia != ib
            && (self.graph.find_edge(ia, ib).is_some() || self.link_policy() == LinkPolicy::Auto))
    }

    /// Marks a link (declared, or implied by the `auto` policy) up or down.
    pub fn set_link_state(&mut self, a: &str, b: &str, up: bool) -> Result<()> {
        if !self.has_link(a, b)? {
            return Err(Error::LinkNotFound(format!("no link {a:?}<->{b:?}")));
        }
        let (ia, ib) = (self.node_index(a)?, self.node_index(b)?);
        match self.graph.find_edge(ia, ib) {
            Some(e) => self.graph[e].up = up,
            None if up => {
                self.down_pairs.remove(&ordered(ia, ib));
            }
            None => {
                self.down_pairs.insert(ordered(ia, ib));
            }
        }
        self.touch();
        Ok(())
    }

    /// Records a measurement on the link `a`<->`b`. Returns whether the topology epoch moved
    /// (it does not: metrics do not change the static topology; callers decide whether the
    /// learned cost model needs new tables).
    pub fn record_link_metrics(
        &mut self,
        a: &str,
        b: &str,
        latency_ns: u64,
        utilized_gbps: f64,
        loss_rate: f64,
    ) -> Result<()> {
        if !utilized_gbps.is_finite() || utilized_gbps < 0.0 {
            return Err(Error::InvalidArgument(format!(
                "bandwidth_utilized_gbps must be finite and non-negative (got {utilized_gbps})"
            )));
        }
        if !(0.0..=1.0).contains(&loss_rate) {
            return Err(Error::InvalidArgument(format!(
                "packet_loss_rate must be within 0.0..=1.0 (got {loss_rate})"
            )));
        }
        if !self.has_link(a, b)? {
            return Err(Error::LinkNotFound(format!("no link {a:?}<->{b:?}")));
        }
        let (ia, ib) = (self.node_index(a)?, self.node_index(b)?);
        let capacity = self.link_capacity(ia, ib);
        match self.graph.find_edge(ia, ib) {
            Some(e) => self.graph[e]
                .metrics
                .record(latency_ns, utilized_gbps, capacity, loss_rate),
            None => self
                .implied_metrics
                .entry(ordered(ia, ib))
                .or_default()
                .record(latency_ns, utilized_gbps, capacity, loss_rate),
        }
        Ok(())
    }

    /// Sets (or clears, with `None`) the latency learned routing gives link `a`-`b` (see
    /// [`LinkMetrics::learned_latency_ns`]).
    pub fn set_learned_latency(&mut self, a: &str, b: &str, latency_ns: Option<u64>) -> Result<()> {
        if !self.has_link(a, b)? {
            return Err(Error::LinkNotFound(format!("no link {a:?}<->{b:?}")));
        }
        let (ia, ib) = (self.node_index(a)?, self.node_index(b)?);
        match self.graph.find_edge(ia, ib) {
            Some(e) => self.graph[e].metrics.learned_latency_ns = latency_ns,
            None => {
                self.implied_metrics
                    .entry(ordered(ia, ib))
                    .or_default()
                    .learned_latency_ns = latency_ns
            }
        }
        Ok(())
    }

    fn link_capacity(&self, a: NodeIndex, b: NodeIndex) -> f64 {
        let declared = self
            .graph
            .find_edge(a, b)
            .and_then(|e| self.graph[e].bandwidth_gbps);
        declared.unwrap_or_else(|| {
            self.graph[a]
                .sig
                .bandwidth_gbps
                .min(self.graph[b].sig.bandwidth_gbps)
        })
    }

    /// Every link under the current policy, with effective values. For `auto` this is every
    /// pair of nodes (n·(n−1)/2 entries).
    pub fn links(&self) -> Vec<LinkView> {
        let mut out = Vec::new();
        self.for_each_link(|a, b, declared| {
            let e = self.graph.find_edge(a, b);
            let (latency_ns, up, metrics) = match e {
                Some(e) => {
                    let l = &self.graph[e];
                    (l.latency_ns.unwrap_or(0), l.up, l.metrics)
                }
                None => (
                    0,
                    !self.down_pairs.contains(&ordered(a, b)),
                    self.implied_metrics
                        .get(&ordered(a, b))
                        .copied()
                        .unwrap_or_default(),
                ),
            };
            out.push(LinkView {
                a: self.graph[a].sig.node_id.clone(),
                b: self.graph[b].sig.node_id.clone(),
                latency_ns,
                bandwidth_gbps: self.link_capacity(a, b),
                declared,
                up,
                metrics,
            });
        });
        out
    }

    /// Calls `f(a, b, declared)` for every link under the current policy, each pair once.
    pub(crate) fn for_each_link(&self, mut f: impl FnMut(NodeIndex, NodeIndex, bool)) {
        match self.link_policy() {
            LinkPolicy::Explicit => {
                for e in (&self.graph).edge_references() {
                    f(e.source(), e.target(), true);
                }
            }
            LinkPolicy::Auto => {
                let ixs: Vec<NodeIndex> = self.graph.node_indices().collect();
                for (i, &a) in ixs.iter().enumerate() {
                    for &b in &ixs[i + 1..] {
                        f(a, b, self.graph.find_edge(a, b).is_some());
                    }
                }
            }
        }
    }

    /// Effective latency, capacity, state and learned metrics of a link (declared or implied).
    pub(crate) fn link_attrs(&self, a: NodeIndex, b: NodeIndex) -> (u64, f64, bool, LinkMetrics) {
        let capacity = self.link_capacity(a, b);
        match self.graph.find_edge(a, b) {
            Some(e) => {
                let l = &self.graph[e];
                (l.latency_ns.unwrap_or(0), capacity, l.up, l.metrics)
            }
            None => (
                0,
                capacity,
                !self.down_pairs.contains(&ordered(a, b)),
                self.implied_metrics
                    .get(&ordered(a, b))
                    .copied()
                    .unwrap_or_default(),
            ),
        }
    }

    /// Number of links under the current policy.
    pub fn link_count(&self) -> usize {
        match self.link_policy() {
            LinkPolicy::Explicit => self.graph.edge_count(),
            LinkPolicy::Auto => {
                let n = self.graph.node_count();
                n * n.saturating_sub(1) / 2
            }
        }
    }

    /// Declared links, as given (for saving a configuration).
    pub fn declared_links(&self) -> Vec<LinkSpec> {
        (&self.graph)
            .edge_references()
            .map(|e| LinkSpec {
                a: self.graph[e.source()].sig.node_id.clone(),
                b: self.graph[e.target()].sig.node_id.clone(),
                latency_ns: e.weight().latency_ns,
                bandwidth_gbps: e.weight().bandwidth_gbps,
            })
            .collect()
    }

    /// Total node bandwidth of the fabric, Gbit/s.
    pub fn capacity_gbps(&self) -> f64 {
        self.nodes()
            .map(|n| n.bandwidth_gbps)
            .fold(0.0, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::model::{FabricZone, HardwareType, IsolationLevel, ZoneType};

    fn node(id: &str, bw: f64) -> NodeSignature {
        NodeSignature::new(id, HardwareType::CpuServer, bw, 10).unwrap()
    }

    #[test]
    fn a_refused_zone_names_the_bandwidth_without_a_negative_zero() {
        let mut t = Topology::new();
        let z = FabricZone::new("z", ZoneType::StorageTier, IsolationLevel::Low, 1, 5.0).unwrap();
        let e = t.create_zone(z).unwrap_err().to_string();
        assert!(
            e.contains("has 0 Gbit/s") && e.contains("of which 0 Gbit/s"),
            "{e}"
        );
        assert!(!e.contains("-0"), "{e}");
    }

    #[test]
    fn link_policy_defaults_follow_declared_links() {
        let mut t = Topology::new();
        for id in ["a", "b", "c"] {
            t.add_node(node(id, 100.0)).unwrap();
        }
        assert_eq!(t.link_policy(), LinkPolicy::Auto);
        assert_eq!(t.link_count(), 3);
        assert!(t.has_link("a", "c").unwrap());
        t.add_link(LinkSpec::new("a", "b").latency_ns(5)).unwrap();
        assert_eq!(t.link_policy(), LinkPolicy::Explicit);
        assert_eq!(t.link_count(), 1);
        assert!(!t.has_link("a", "c").unwrap());
        t.set_link_policy(Some(LinkPolicy::Auto));
        assert_eq!(t.link_count(), 3);
        let l = t.links().into_iter().find(|l| l.declared).unwrap();
        assert_eq!((l.latency_ns, l.bandwidth_gbps), (5, 100.0));
    }

    #[test]
    fn bad_changes_get_the_right_errors() {
        let mut t = Topology::new();
        t.add_node(node("a", 10.0)).unwrap();
        assert_eq!(
            t.add_node(node("a", 10.0)).unwrap_err().kind(),
            ErrorKind::DuplicateNode
        );
        assert_eq!(
            t.add_link(LinkSpec::new("a", "zz")).unwrap_err().kind(),
            ErrorKind::NodeNotFound
        );
        t.add_node(node("b", 10.0)).unwrap();
        t.add_link(LinkSpec::new("a", "b")).unwrap();
        assert_eq!(
            t.add_link(LinkSpec::new("b", "a")).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            t.remove_link("a", "a").unwrap_err().kind(),
            ErrorKind::LinkNotFound
        );
        let zone =
            FabricZone::new("z", ZoneType::ComputeCluster, IsolationLevel::High, 1, 15.0).unwrap();
        t.create_zone(zone.clone()).unwrap();
        assert_eq!(
            t.create_zone(zone).unwrap_err().kind(),
            ErrorKind::DuplicateZone
        );
        let big =
            FabricZone::new("y", ZoneType::ComputeCluster, IsolationLevel::Low, 1, 6.0).unwrap();
        assert_eq!(
            t.create_zone(big).unwrap_err().kind(),
            ErrorKind::InsufficientResources
        );
        t.assign_to_zone("z", "a").unwrap();
        assert_eq!(
            t.assign_to_zone("z", "b").unwrap_err().kind(),
            ErrorKind::InsufficientResources
        );
        t.remove_node("a").unwrap();
        assert!(t.zone("z").unwrap().members.is_empty());
        assert_eq!(t.node("a").unwrap_err().kind(), ErrorKind::NodeNotFound);
    }
}
