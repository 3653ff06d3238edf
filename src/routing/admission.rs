//! Send admission: whether a send with a latency constraint, of quantum data, requiring
//! entanglement, or while an isolating zone exists would get a route, decided from answers
//! computed with the routing tables instead of a route search per message.
//!
//! What [`RoutingEngine::route`](super::RoutingEngine::route) decides for a send (a latency
//! request without a bandwidth floor) depends only on the pair's lowest-(latency, hops) path
//! among the paths its filters allow, and the filters depend only on the traffic class and on
//! the zones of the two endpoints:
//!
//! - plain and quantum data: intermediates allowed by the HIGH-zone transit rule. While no
//!   HIGH zone has members nothing is filtered and the latency tables already hold the answer.
//!   The coherence deadline of quantum data is a function of the two endpoints;
//! - entanglement-requiring traffic under quantum rules: the same, and quantum-capable
//!   intermediates only.
//!
//! For one source, the transit filter of a destination depends only on the destination's
//! HIGH-zone memberships, so destinations are grouped by them and each (source, group) costs
//! one pruned search when the tables are built. A check is then the endpoint rule on per-node
//! zone bit sets, two up flags, one load of the fastest latency, and the comparisons `route`
//! makes, in its order, refusing with its errors.

use super::engine::RoutingOptions;
use super::graph::RouteGraph;
use super::request::{self, solve, RouteRequest};
use super::search::{Search, SearchOrder};
use super::table::RoutingTables;
use super::Metric;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{DataType, IsolationLevel, MAX_LATENCY_QUANTUM_NS, MAX_QUANTUM_ENTANGLED_NODES};
use std::collections::BTreeMap;

/// What a send asks of its route: the parts of a [`RouteRequest`] a send sets (the metric is
/// latency, there is no bandwidth floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendRequirements {
    /// Kind of data; under quantum rules, quantum types must beat the coherence deadline.
    pub data_type: DataType,
    /// Upper bound on the route's latency, ns.
    pub latency_constraint_ns: Option<u64>,
    /// Cross quantum-capable nodes only.
    pub requires_quantum_entanglement: bool,
}

impl SendRequirements {
    /// The route request a send with these requirements stands for.
    pub fn request(&self, source: &str, destination: &str) -> RouteRequest {
        RouteRequest {
            data_type: self.data_type,
            latency_constraint_ns: self.latency_constraint_ns,
            requires_quantum_entanglement: self.requires_quantum_entanglement,
            ..RouteRequest::new(source, destination)
        }
    }
}

/// A send that has a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Latency of the fastest route the send may take, ns (the `latency_ns` of the route
    /// `route` returns).
    pub latency_ns: u64,
    /// An endpoint is a member of a QUANTUM_SECURE zone: the send must be encrypted.
    pub must_encrypt: bool,
}

/// Why a send is refused, without the message (formatted only by [`Refusal::error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A zone of MEDIUM isolation or above separates the endpoints.
    ZoneIsolation,
    /// The source is down.
    SourceDown,
    /// The destination is down.
    DestinationDown,
    /// Entanglement asked for while quantum optimization is off.
    EntanglementDisabled,
    /// No path the zone rules allow (`zone_filtered`: a HIGH zone filtered intermediates).
    NoRoute {
        /// Whether a HIGH zone's transit rule filtered intermediates.
        zone_filtered: bool,
    },
    /// No path across quantum-capable intermediates.
    NoQuantumPath,
    /// The fastest allowed path misses the coherence deadline.
    CoherenceDeadline {
        /// Latency of the fastest allowed path, ns.
        fastest_ns: u64,
        /// The deadline, ns.
        deadline_ns: u64,
    },
    /// The fastest allowed path misses the latency constraint.
    LatencyConstraint {
        /// Latency of the fastest allowed path, ns.
        fastest_ns: u64,
        /// The constraint, ns.
        constraint_ns: u64,
    },
    /// The fastest entangled path has more than `MAX_QUANTUM_ENTANGLED_NODES` nodes.
    TooManyEntangledNodes {
        /// Nodes on that path.
        nodes: usize,
    },
}

impl Refusal {
    /// The kind of the error `route` refuses with.
    pub fn kind(self) -> ErrorKind {
        match self {
            Refusal::ZoneIsolation => ErrorKind::ZoneIsolationViolation,
            Refusal::SourceDown | Refusal::DestinationDown | Refusal::NoRoute { .. } => {
                ErrorKind::NoRouteFound
            }
            Refusal::EntanglementDisabled
            | Refusal::NoQuantumPath
            | Refusal::CoherenceDeadline { .. }
            | Refusal::TooManyEntangledNodes { .. } => ErrorKind::QuantumCoherence,
            Refusal::LatencyConstraint { .. } => ErrorKind::LatencyConstraintViolation,
        }
    }

    /// The error `route` gives for the send from dense `s` to dense `d` of `g`, message
    /// included.
    pub fn error(self, g: &RouteGraph, s: u32, d: u32) -> Error {
        let (source, destination) = (g.id(s), g.id(d));
        match self {
            Refusal::ZoneIsolation => Error::ZoneIsolationViolation(
                g.endpoint_violation(s, d)
                    .unwrap_or_else(|| format!("zone rules forbid {source:?} -> {destination:?}")),
            ),
            Refusal::SourceDown => request::node_down(source),
            Refusal::DestinationDown => request::node_down(destination),
            Refusal::EntanglementDisabled => request::entanglement_disabled(),
            Refusal::NoRoute { zone_filtered } => request::no_route(g, s, d, zone_filtered),
            Refusal::NoQuantumPath => request::no_quantum_path(source, destination),
            Refusal::CoherenceDeadline {
                fastest_ns,
                deadline_ns,
            } => request::coherence_missed(source, destination, fastest_ns, deadline_ns),
            Refusal::LatencyConstraint {
                fastest_ns,
                constraint_ns,
            } => request::latency_missed(source, destination, fastest_ns, constraint_ns),
            Refusal::TooManyEntangledNodes { nodes } => request::too_many_entangled(nodes),
        }
    }
}

/// The fastest allowed route of one pair: latency (`u64::MAX`: none) and links.
#[derive(Debug, Clone, Copy)]
struct Fastest {
    latency_ns: u64,
    hops: u32,
}

impl Fastest {
    const NONE: Fastest = Fastest {
        latency_ns: u64::MAX,
        hops: u32::MAX,
    };
}

/// Zone memberships as per-node bit sets (bit `z`: the graph's zone `z`), so the endpoint and
/// transit rules of a pair cost a few word operations.
#[derive(Debug, Default)]
struct ZoneBits {
    /// Words per node: 0 without zones.
    words: usize,
    /// `[node][word]`: the zones of MEDIUM isolation or above the node is a member of.
    isolating: Vec<u64>,
    /// `[node][word]`: the same for zones of HIGH isolation or above.
    high: Vec<u64>,
    /// Some HIGH zone has a member: the transit rule filters intermediates.
    transit: bool,
    /// The node is a member of a QUANTUM_SECURE zone.
    seal: Vec<bool>,
}

impl ZoneBits {
    fn new(g: &RouteGraph) -> ZoneBits {
        let n = g.node_count();
        let words = g.zones.len().div_ceil(64);
        let mut b = ZoneBits {
            words,
            isolating: vec![0; n * words],
            high: vec![0; n * words],
            transit: false,
            seal: (0..n as u32).map(|v| g.must_encrypt(v)).collect(),
        };
        for (zi, z) in g.zones.iter().enumerate() {
            if z.level < IsolationLevel::Medium {
                continue;
            }
            let (word, bit) = (zi / 64, 1u64 << (zi % 64));
            for v in (0..n).filter(|&v| z.members[v]) {
                b.isolating[v * words + word] |= bit;
                if z.level >= IsolationLevel::High {
                    b.high[v * words + word] |= bit;
                    b.transit = true;
                }
            }
        }
        b
    }

    fn high_of(&self, v: usize) -> &[u64] {
        &self.high[v * self.words..(v + 1) * self.words]
    }

    /// The endpoint rule: a zone has one endpoint as member and the other is not a
    /// control-plane node.
    #[inline]
    fn isolates(&self, control_plane: &[bool], s: usize, d: usize) -> bool {
        let w = self.words;
        let (a, b) = (
            &self.isolating[s * w..(s + 1) * w],
            &self.isolating[d * w..(d + 1) * w],
        );
        let (mut s_only, mut d_only) = (0u64, 0u64);
        for (x, y) in a.iter().zip(b) {
            s_only |= x & !y;
            d_only |= y & !x;
        }
        (s_only != 0 && !control_plane[d]) || (d_only != 0 && !control_plane[s])
    }

    /// The transit rule: `x` may carry traffic between `s` and `d` when it is a member of every
    /// HIGH zone both are members of, and of none that neither is a member of.
    fn transit_allows(&self, s: usize, d: usize, x: usize) -> bool {
        let (hs, hd, hx) = (self.high_of(s), self.high_of(d), self.high_of(x));
        (0..self.words).all(|i| (hs[i] & hd[i]) & !hx[i] == 0 && hx[i] & !(hs[i] | hd[i]) == 0)
    }
}

/// The answers of send admission for one tables build (see the module documentation).
#[derive(Debug)]
pub(crate) struct Admission {
    n: usize,
    /// Built for an engine with `enable_quantum_optimization`.
    quantum_rules: bool,
    zones: ZoneBits,
    /// `[slot][destination]`: fastest latency under the transit rule; empty while no HIGH
    /// zone has members (the latency tables are the answer).
    transit: Vec<u64>,
    /// `[slot][destination]`: fastest route across quantum-capable intermediates under the
    /// transit rule; empty without quantum rules.
    entangled: Vec<Fastest>,
}

impl Admission {
    /// Computes the answers for every source of `tables`.
    pub(crate) fn build(tables: &RoutingTables, quantum_rules: bool) -> Admission {
        let g = tables.graph();
        let n = g.node_count();
        let zones = ZoneBits::new(g);
        let rows = tables.slot_count() * n;
        let mut transit = if zones.transit {
            vec![u64::MAX; rows]
        } else {
            Vec::new()
        };
        let mut entangled = if quantum_rules {
            vec![Fastest::NONE; rows]
        } else {
            Vec::new()
        };
        if !transit.is_empty() || !entangled.is_empty() {
            // Destinations by HIGH-zone memberships: one transit filter per group and source.
            let mut groups: BTreeMap<&[u64], Vec<u32>> = BTreeMap::new();
            for v in 0..n {
                groups.entry(zones.high_of(v)).or_default().push(v as u32);
            }
            let mut search = Search::new(n);
            let mut allowed = vec![true; n];
            for &src in tables.sources() {
                let row = tables.slot(src).expect("table sources have a slot") * n;
                for dsts in groups.values() {
                    let rep = dsts[0] as usize;
                    for (x, ok) in allowed.iter_mut().enumerate() {
                        *ok = zones.transit_allows(src as usize, rep, x);
                    }
                    if !transit.is_empty() {
                        if allowed.iter().all(|&ok| ok) {
                            let view = tables.source(src).expect("table sources have tables");
                            for &d in dsts {
                                transit[row + d as usize] =
                                    view.lookup(d, Metric::Latency).latency_ns;
                            }
                        } else {
                            search.run(g, src, SearchOrder::Latency, 0.0, Some(&allowed));
                            for &d in dsts {
                                transit[row + d as usize] = search.latency_ns[d as usize];
                            }
                        }
                    }
                    if !entangled.is_empty() {
                        for (x, ok) in allowed.iter_mut().enumerate() {
                            *ok &= g.hardware[x].is_quantum_capable();
                        }
                        search.run(g, src, SearchOrder::Latency, 0.0, Some(&allowed));
                        for &d in dsts {
                            let di = d as usize;
                            entangled[row + di] = Fastest {
                                latency_ns: search.latency_ns[di],
                                hops: search.hops[di],
                            };
                        }
                    }
                }
            }
        }
        Admission {
            n,
            quantum_rules,
            zones,
            transit,
            entangled,
        }
    }

    /// The verdict for a pair whose source has `slot`, in the order `route` checks.
    #[inline]
    fn decide(
        &self,
        tables: &RoutingTables,
        slot: usize,
        (s, d): (u32, u32),
        req: &SendRequirements,
    ) -> std::result::Result<Admitted, Refusal> {
        let g = tables.graph();
        let (si, di) = (s as usize, d as usize);
        if self.zones.words > 0 && self.zones.isolates(&g.control_plane, si, di) {
            return Err(Refusal::ZoneIsolation);
        }
        if !g.up[si] {
            return Err(Refusal::SourceDown);
        }
        if !g.up[di] {
            return Err(Refusal::DestinationDown);
        }
        let entangle = req.requires_quantum_entanglement;
        if entangle && !self.quantum_rules {
            return Err(Refusal::EntanglementDisabled);
        }
        let at = slot * self.n + di;
        let (fastest, nodes) = if entangle {
            let f = self.entangled[at];
            (f.latency_ns, f.hops as usize + 1)
        } else if self.zones.transit {
            (self.transit[at], 0)
        } else {
            (tables.entry_at(slot, d, Metric::Latency).latency_ns, 0)
        };
        if fastest == u64::MAX {
            return Err(if entangle {
                Refusal::NoQuantumPath
            } else {
                Refusal::NoRoute {
                    zone_filtered: self.zones.transit,
                }
            });
        }
        if self.quantum_rules && (entangle || req.data_type.is_quantum()) {
            let deadline = [si, di]
                .iter()
                .filter_map(|&v| g.coherence_ns[v])
                .fold(MAX_LATENCY_QUANTUM_NS, u64::min);
            if fastest > deadline {
                return Err(Refusal::CoherenceDeadline {
                    fastest_ns: fastest,
                    deadline_ns: deadline,
                });
            }
        }
        if let Some(limit) = req.latency_constraint_ns {
            if fastest > limit {
                return Err(Refusal::LatencyConstraint {
                    fastest_ns: fastest,
                    constraint_ns: limit,
                });
            }
        }
        if entangle && nodes > MAX_QUANTUM_ENTANGLED_NODES {
            return Err(Refusal::TooManyEntangledNodes { nodes });
        }
        Ok(Admitted {
            latency_ns: fastest,
            must_encrypt: self.zones.seal[si] || self.zones.seal[di],
        })
    }
}

impl RoutingTables {
    /// Decides a send from dense `s` to dense `d` (indices of [`RoutingTables::graph`]) as
    /// [`RoutingEngine::route`](super::RoutingEngine::route) decides the latency request with
    /// these requirements, preceded by the zone endpoint rule, from the answers of
    /// [`RoutingTables::with_admission`]: a few loads and comparisons, no search, no
    /// allocation, no lock, no formatting. `None` when there is no precomputed answer (tables
    /// without admission answers, `s` not a table source, an index out of range).
    ///
    /// Measured (benches/routing.rs, `send_check/*_by_index`, k=16 fat-tree, random host
    /// pairs): about 3.5 ns; with a latency constraint, 1.02x and 0.96x the cost without one
    /// in two runs.
    ///
    /// ```
    /// use hyperfabric::routing::{CostModel, RouteGraph, RoutingTables, SendRequirements};
    /// use hyperfabric::topology::{generate, Topology};
    /// let g = generate::fat_tree(4, 100.0);
    /// let mut t = Topology::new();
    /// g.nodes.iter().for_each(|n| t.add_node(n.clone()).unwrap());
    /// g.links.iter().for_each(|l| t.add_link(l.clone()).unwrap());
    /// let graph = std::sync::Arc::new(RouteGraph::build(&t, CostModel::Static));
    /// let all: Vec<u32> = (0..graph.node_count() as u32).collect();
    /// let tables = RoutingTables::build(graph.clone(), &all, 1, true).with_admission(false);
    /// let (s, d) = (graph.index_of("host-0-0-0").unwrap(), graph.index_of("host-3-1-1").unwrap());
    /// let fastest = tables.admit(s, d, &SendRequirements::default()).unwrap().unwrap().latency_ns;
    /// let within = SendRequirements { latency_constraint_ns: Some(fastest), ..Default::default() };
    /// assert!(tables.admit(s, d, &within).unwrap().is_ok());
    /// let below = SendRequirements { latency_constraint_ns: Some(fastest - 1), ..Default::default() };
    /// assert!(tables.admit(s, d, &below).unwrap().is_err());
    /// ```
    #[inline]
    pub fn admit(
        &self,
        s: u32,
        d: u32,
        req: &SendRequirements,
    ) -> Option<std::result::Result<Admitted, Refusal>> {
        let a = self.admission()?;
        if s as usize >= a.n || d as usize >= a.n {
            return None;
        }
        let slot = self.slot(s)?;
        Some(a.decide(self, slot, (s, d), req))
    }
}

/// Decides a send from `source` to `destination` on `tables`: the zone endpoint rule (which
/// also covers ids not in the topology), then what `route` says for the request. From the
/// precomputed answers when both nodes are known and the source has them; otherwise by
/// solving the request.
pub(super) fn admit(
    tables: &RoutingTables,
    options: &RoutingOptions,
    source: &str,
    destination: &str,
    req: &SendRequirements,
) -> Result<Admitted> {
    let g = tables.graph();
    let (s, d) = (g.index_of(source), g.index_of(destination));
    if let (Some(s), Some(d)) = (s, d) {
        if let Some(verdict) = tables.admit(s, d, req) {
            return verdict.map_err(|r| r.error(g, s, d));
        }
    }
    if let Some(why) = g.endpoint_violation_of((s, d), (source, destination)) {
        return Err(Error::ZoneIsolationViolation(why));
    }
    let route = solve(tables, options, &req.request(source, destination))?;
    let seal = |v: Option<u32>| v.is_some_and(|v| g.must_encrypt(v));
    Ok(Admitted {
        latency_ns: route.latency_ns,
        must_encrypt: seal(s) || seal(d),
    })
}
