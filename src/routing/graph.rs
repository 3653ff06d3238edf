//! [`RouteGraph`]: an immutable, compact (CSR) copy of the topology that searches run on.
//! Nodes get dense indices `0..n` in topology order; only links that are up between nodes that
//! are up become arcs, each with its effective latency (declared or learned) and capacity.

use super::cost::{predicted_latency_ns, CostModel};
use crate::model::{HardwareType, IsolationLevel, ZoneType};
use crate::topology::Topology;
use rustc_hash::FxHashMap;
use std::collections::HashMap;

/// One direction of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Arc {
    pub(crate) to: u32,
    /// Link latency in ns (declared, or predicted by the learned model).
    pub(crate) latency_ns: u64,
    /// Link capacity in Gbit/s.
    pub(crate) bandwidth_gbps: f64,
    /// Index into `links` (both directions share it).
    pub(crate) link: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct ZoneRule {
    pub(crate) zone_id: String,
    pub(crate) level: IsolationLevel,
    pub(crate) members: Vec<bool>,
}

/// Snapshot of the topology for route computation.
#[derive(Debug, Clone, Default)]
pub struct RouteGraph {
    pub(crate) epoch: u64,
    ids: Vec<String>,
    /// Dense index of each id (FxHash: ids are short and resolved on every checked send).
    index: FxHashMap<String, u32>,
    pub(crate) node_latency_ns: Vec<u64>,
    pub(crate) node_bandwidth_gbps: Vec<f64>,
    pub(crate) up: Vec<bool>,
    pub(crate) hardware: Vec<HardwareType>,
    pub(crate) coherence_ns: Vec<Option<u64>>,
    /// `arcs[offsets[u]..offsets[u + 1]]` leave node `u`.
    offsets: Vec<u32>,
    arcs: Vec<Arc>,
    /// Endpoints of every link that became arcs, `a < b`.
    pub(crate) links: Vec<(u32, u32)>,
    pub(crate) zones: Vec<ZoneRule>,
    pub(crate) control_plane: Vec<bool>,
}

impl RouteGraph {
    /// Copies what routing needs out of `topology`, using `model` for link latencies.
    pub fn build(topology: &Topology, model: CostModel) -> RouteGraph {
        let mut g = RouteGraph {
            epoch: topology.epoch(),
            ..Default::default()
        };
        let mut dense = HashMap::new();
        for (ix, state) in topology.node_states() {
            let i = g.ids.len() as u32;
            dense.insert(ix, i);
            g.index.insert(state.sig.node_id.clone(), i);
            g.ids.push(state.sig.node_id.clone());
            g.node_latency_ns.push(state.sig.latency_ns);
            g.node_bandwidth_gbps.push(state.sig.bandwidth_gbps);
            g.up.push(state.up);
            g.hardware.push(state.sig.hardware_type);
            g.coherence_ns.push(state.sig.coherence_deadline_ns());
        }
        let n = g.ids.len();
        let mut adjacency: Vec<Vec<Arc>> = vec![Vec::new(); n];
        topology.for_each_link(|a, b, _| {
            let (latency, capacity, up, metrics) = topology.link_attrs(a, b);
            let (ia, ib) = (dense[&a], dense[&b]);
            if !up || !g.up[ia as usize] || !g.up[ib as usize] {
                return;
            }
            let latency_ns = match model {
                CostModel::Static => latency,
                CostModel::Learned => metrics
                    .learned_latency_ns
                    .unwrap_or_else(|| predicted_latency_ns(latency, capacity, &metrics)),
            };
            let link = g.links.len() as u32;
            g.links.push((ia.min(ib), ia.max(ib)));
            for (from, to) in [(ia, ib), (ib, ia)] {
                adjacency[from as usize].push(Arc {
                    to,
                    latency_ns,
                    bandwidth_gbps: capacity,
                    link,
                });
            }
        });
        g.offsets.reserve(n + 1);
        g.offsets.push(0);
        for list in adjacency {
            g.arcs.extend(list);
            g.offsets.push(g.arcs.len() as u32);
        }
        g.control_plane = vec![false; n];
        for z in topology.zones() {
            let mut members = vec![false; n];
            for m in &z.members {
                if let Some(&i) = g.index.get(m) {
                    members[i as usize] = true;
                    if z.zone.zone_type == ZoneType::ControlPlane {
                        g.control_plane[i as usize] = true;
                    }
                }
            }
            g.zones.push(ZoneRule {
                zone_id: z.zone.zone_id.clone(),
                level: z.zone.isolation_level,
                members,
            });
        }
        g
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.ids.len()
    }

    /// Number of links that carry traffic.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Dense endpoints of link `i` (`a < b`), as indexed in route loads.
    pub fn link(&self, i: usize) -> (u32, u32) {
        self.links[i]
    }

    /// Topology epoch this snapshot was taken at.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The id of dense index `i`.
    pub fn id(&self, i: u32) -> &str {
        &self.ids[i as usize]
    }

    /// The dense index of a node id.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// Arcs leaving `u`.
    #[inline]
    pub(crate) fn arcs(&self, u: u32) -> &[Arc] {
        let u = u as usize;
        &self.arcs[self.offsets[u] as usize..self.offsets[u + 1] as usize]
    }

    /// A copy whose links take the latency `latency(a, b)` gives them (ids of their ends),
    /// or keep theirs where it gives `None`: what routes would be under other link figures.
    pub fn with_link_latencies(&self, latency: impl Fn(&str, &str) -> Option<u64>) -> RouteGraph {
        let mut g = self.clone();
        let fresh: Vec<Option<u64>> = self
            .links
            .iter()
            .map(|&(a, b)| latency(self.id(a), self.id(b)))
            .collect();
        for arc in &mut g.arcs {
            if let Some(ns) = fresh[arc.link as usize] {
                arc.latency_ns = ns;
            }
        }
        g
    }

    /// Latency of a dense node path as searches count it (every node on it, and every link
    /// between them); `None` when two consecutive nodes have no link that carries traffic.
    pub fn path_latency(&self, path: &[u32]) -> Option<u64> {
        let first = *path.first()?;
        let mut total = *self.node_latency_ns.get(first as usize)?;
        for w in path.windows(2) {
            let arc = self.arcs(w[0]).iter().find(|a| a.to == w[1])?;
            total = total
                .saturating_add(arc.latency_ns)
                .saturating_add(self.node_latency_ns[w[1] as usize]);
        }
        Some(total)
    }

    /// Ids of a dense path.
    pub fn ids_of(&self, path: &[u32]) -> Vec<String> {
        path.iter().map(|&i| self.id(i).to_string()).collect()
    }

    /// The MEDIUM-and-above endpoint rule: when `s` or `d` is a member of such a zone and the
    /// other is neither a member nor a control-plane node, names the zone that forbids it.
    pub(crate) fn endpoint_violation(&self, s: u32, d: u32) -> Option<String> {
        self.endpoint_violation_of((Some(s), Some(d)), (self.id(s), self.id(d)))
    }

    /// [`RouteGraph::endpoint_violation`] for ids that may not be in the graph (`None`): such
    /// a node is neither a member nor a control-plane node, as in the topology's own check.
    pub(crate) fn endpoint_violation_of(
        &self,
        (s, d): (Option<u32>, Option<u32>),
        (source, destination): (&str, &str),
    ) -> Option<String> {
        let member = |z: &ZoneRule, v: Option<u32>| v.is_some_and(|v| z.members[v as usize]);
        for z in &self.zones {
            if z.level < IsolationLevel::Medium || member(z, s) == member(z, d) {
                continue;
            }
            let (inside, outside, outside_ix) = if member(z, s) {
                (source, destination, d)
            } else {
                (destination, source, s)
            };
            if !outside_ix.is_some_and(|v| self.control_plane[v as usize]) {
                return Some(format!(
                    "zone {:?} ({}) isolates {inside:?}: {outside:?} is neither a member nor a \
                     control-plane node",
                    z.zone_id, z.level
                ));
            }
        }
        None
    }

    /// Whether `v` is a member of a QUANTUM_SECURE zone: its traffic must be encrypted.
    pub(crate) fn must_encrypt(&self, v: u32) -> bool {
        self.zones
            .iter()
            .any(|z| z.level == IsolationLevel::QuantumSecure && z.members[v as usize])
    }

    /// The HIGH-and-above transit rule as a class: for every HIGH zone, how many of the two
    /// endpoints are members (0, 1 or 2). Member-to-member traffic never leaves the zone
    /// (2: intermediates must be members); traffic between two outsiders never enters it
    /// (0: intermediates must not be members); traffic between a member and a control-plane
    /// node (1) may cross it. `None` when no HIGH zone has members (no rule applies).
    pub(crate) fn transit_class(&self, s: u32, d: u32) -> Option<Vec<(u16, u8)>> {
        let mut class = Vec::new();
        for (zi, z) in self.zones.iter().enumerate() {
            if z.level >= IsolationLevel::High && z.members.iter().any(|&m| m) {
                let inside = z.members[s as usize] as u8 + z.members[d as usize] as u8;
                class.push((zi as u16, inside));
            }
        }
        (!class.is_empty()).then_some(class)
    }

    /// Which nodes may be intermediates for traffic of transit class `class`.
    pub(crate) fn transit_allowed(&self, class: &[(u16, u8)]) -> Vec<bool> {
        (0..self.node_count())
            .map(|x| {
                class.iter().all(|&(zi, inside)| {
                    let member = self.zones[zi as usize].members[x];
                    match inside {
                        2 => member,
                        0 => !member,
                        _ => true,
                    }
                })
            })
            .collect()
    }
}
