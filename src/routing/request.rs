//! Route requests: [`RouteRequest`] and [`Route`], and how one request is solved on one
//! tables snapshot. Unconstrained requests are answered from the tables; constrained ones by
//! pruned searches on the snapshot's graph (the latency bound, the widest path within it, the
//! fewest hops within it).

use super::graph::RouteGraph;
use super::search::{Search, SearchOrder};
use super::table::RoutingTables;
use super::{Metric, RoutingOptions};
use crate::error::{Error, Result};
use crate::model::{DataType, MAX_LATENCY_QUANTUM_NS, MAX_QUANTUM_ENTANGLED_NODES};

/// A route request: the arguments of the reference's `find_optimal_path`, plus the metric and
/// the entanglement requirement of `send_data`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRequest {
    /// Source node id.
    pub source: String,
    /// Destination node id.
    pub destination: String,
    /// Kind of data; quantum types get coherence-deadline routing.
    pub data_type: DataType,
    /// What to optimise.
    pub metric: Metric,
    /// Upper bound on path latency, ns.
    pub latency_constraint_ns: Option<u64>,
    /// Lower bound on path bandwidth, Gbit/s.
    pub bandwidth_requirement_gbps: Option<f64>,
    /// Cross quantum-capable nodes only.
    pub requires_quantum_entanglement: bool,
}

impl RouteRequest {
    /// An unconstrained latency request for generic data.
    pub fn new(source: impl Into<String>, destination: impl Into<String>) -> RouteRequest {
        RouteRequest {
            source: source.into(),
            destination: destination.into(),
            data_type: DataType::Generic,
            metric: Metric::Latency,
            latency_constraint_ns: None,
            bandwidth_requirement_gbps: None,
            requires_quantum_entanglement: false,
        }
    }
}

/// A computed route.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Route {
    /// Node ids from source to destination.
    pub path: Vec<String>,
    /// Path latency, ns.
    pub latency_ns: u64,
    /// Path bottleneck bandwidth, Gbit/s.
    pub bandwidth_gbps: f64,
    /// Links on the path.
    pub hops: u32,
}
/// Solves one request on one snapshot. Unconstrained requests are answered from the tables;
/// constrained ones by pruned searches, O(E log V) each, off the data path.
pub(super) fn solve(
    tables: &RoutingTables,
    options: &RoutingOptions,
    req: &RouteRequest,
) -> Result<Route> {
    let g = tables.graph();
    let find = |id: &str| {
        g.index_of(id)
            .ok_or_else(|| Error::NodeNotFound(format!("node {id:?} is not in the topology")))
    };
    let (s, d) = (find(&req.source)?, find(&req.destination)?);
    for (v, id) in [(s, &req.source), (d, &req.destination)] {
        if !g.up[v as usize] {
            return Err(node_down(id));
        }
    }
    if let Some(why) = g.endpoint_violation(s, d) {
        return Err(Error::ZoneIsolationViolation(why));
    }
    let floor = match req.bandwidth_requirement_gbps {
        Some(b) if !b.is_finite() || b < 0.0 => {
            return Err(Error::InvalidArgument(format!(
                "bandwidth_requirement_gbps must be finite and non-negative (got {b})"
            )))
        }
        Some(b) => b,
        None => 0.0,
    };
    let quantum_traffic = req.data_type.is_quantum() || req.requires_quantum_entanglement;
    let quantum_rules = options.enable_quantum_optimization && quantum_traffic;
    if req.requires_quantum_entanglement && !options.enable_quantum_optimization {
        return Err(entanglement_disabled());
    }

    // Which nodes may be intermediates.
    let mut allowed: Option<Vec<bool>> = g.transit_class(s, d).map(|c| g.transit_allowed(&c));
    if quantum_rules && req.requires_quantum_entanglement {
        let a = allowed.get_or_insert_with(|| vec![true; g.node_count()]);
        for (x, ok) in a.iter_mut().enumerate() {
            *ok &= g.hardware[x].is_quantum_capable();
        }
    }
    let deadline = quantum_rules.then(|| {
        [s, d]
            .iter()
            .filter_map(|&v| g.coherence_ns[v as usize])
            .fold(MAX_LATENCY_QUANTUM_NS, u64::min)
    });

    // Fast path: nothing constrains the route, the tables have it.
    let unconstrained = floor == 0.0 && deadline.is_none() && req.latency_constraint_ns.is_none();
    if unconstrained {
        if let Some(e) = tables.lookup(s, d, req.metric) {
            if !e.reachable() {
                return Err(no_route(g, s, d, allowed.is_some()));
            }
            if let Some(path) = tables.path(s, d, req.metric) {
                let ok = allowed
                    .as_ref()
                    .is_none_or(|a| intermediates(&path).iter().all(|&x| a[x as usize]));
                if ok {
                    return Ok(Route {
                        path: g.ids_of(&path),
                        latency_ns: e.latency_ns,
                        bandwidth_gbps: e.bandwidth_gbps,
                        hops: e.hops as u32,
                    });
                }
            }
        }
    }

    let allowed = allowed.as_deref();
    let mut search = Search::new(g.node_count());
    // Feasibility: the lowest-latency path within the filters and the bandwidth floor.
    search.run(g, s, SearchOrder::Latency, floor, allowed);
    if !search.reached(d) {
        if quantum_rules && req.requires_quantum_entanglement {
            return Err(no_quantum_path(&req.source, &req.destination));
        }
        if floor > 0.0 {
            return Err(Error::NoRouteFound(format!(
                "no path from {:?} to {:?} with at least {floor} Gbit/s",
                req.source, req.destination
            )));
        }
        return Err(no_route(g, s, d, allowed.is_some()));
    }
    let best = search.latency_ns[d as usize];
    if let Some(dl) = deadline {
        if best > dl {
            return Err(coherence_missed(&req.source, &req.destination, best, dl));
        }
    }
    if let Some(limit) = req.latency_constraint_ns {
        if best > limit {
            return Err(latency_missed(&req.source, &req.destination, best, limit));
        }
    }
    let bound = [deadline, req.latency_constraint_ns]
        .into_iter()
        .flatten()
        .min();
    let path = match req.metric {
        Metric::Latency => search.path(d),
        Metric::Bandwidth => widest_within(g, &mut search, s, d, floor, allowed, bound),
        Metric::Hops => fewest_hops_within(g, s, d, floor, allowed, bound),
    }
    .ok_or_else(|| no_route(g, s, d, allowed.is_some()))?;
    if quantum_rules
        && req.requires_quantum_entanglement
        && path.len() > MAX_QUANTUM_ENTANGLED_NODES
    {
        return Err(too_many_entangled(path.len()));
    }
    Ok(route_of(g, &path))
}

/// The nodes of a path between its endpoints (none for a path of one or two nodes).
pub(crate) fn intermediates(path: &[u32]) -> &[u32] {
    if path.len() <= 2 {
        &[]
    } else {
        &path[1..path.len() - 1]
    }
}

pub(super) fn no_route(g: &RouteGraph, s: u32, d: u32, filtered: bool) -> Error {
    let why = if filtered {
        " within zone isolation rules"
    } else {
        ""
    };
    Error::NoRouteFound(format!("no path from {:?} to {:?}{why}", g.id(s), g.id(d)))
}

// The refusals below are worded once: `solve` and send admission (`admission.rs`) give the
// same error for the same request.

pub(super) fn node_down(id: &str) -> Error {
    Error::NoRouteFound(format!("node {id:?} is down"))
}

pub(super) fn entanglement_disabled() -> Error {
    Error::QuantumCoherence(
        "entanglement-requiring traffic needs quantum optimization enabled".into(),
    )
}

pub(super) fn no_quantum_path(source: &str, destination: &str) -> Error {
    Error::QuantumCoherence(format!(
        "no path of quantum-capable nodes from {source:?} to {destination:?}"
    ))
}

pub(super) fn coherence_missed(source: &str, destination: &str, best: u64, dl: u64) -> Error {
    Error::QuantumCoherence(format!(
        "fastest path from {source:?} to {destination:?} takes {best} ns, beyond the coherence \
         deadline of {dl} ns"
    ))
}

pub(super) fn latency_missed(source: &str, destination: &str, best: u64, limit: u64) -> Error {
    Error::LatencyConstraintViolation(format!(
        "fastest path from {source:?} to {destination:?} takes {best} ns, constraint is \
         {limit} ns"
    ))
}

pub(super) fn too_many_entangled(nodes: usize) -> Error {
    Error::QuantumCoherence(format!(
        "entangled path has {nodes} nodes, at most {MAX_QUANTUM_ENTANGLED_NODES} allowed"
    ))
}

/// Latency, bandwidth and hops of a dense path, measured on the graph.
fn route_of(g: &RouteGraph, path: &[u32]) -> Route {
    let mut latency = g.node_latency_ns[path[0] as usize];
    let mut bw = g.node_bandwidth_gbps[path[0] as usize];
    for w in path.windows(2) {
        let arc = g
            .arcs(w[0])
            .iter()
            .filter(|a| a.to == w[1])
            .min_by_key(|a| a.latency_ns)
            .expect("consecutive path nodes are linked");
        latency = latency
            .saturating_add(arc.latency_ns)
            .saturating_add(g.node_latency_ns[w[1] as usize]);
        bw = bw
            .min(arc.bandwidth_gbps)
            .min(g.node_bandwidth_gbps[w[1] as usize]);
    }
    Route {
        path: g.ids_of(path),
        latency_ns: latency,
        bandwidth_gbps: bw,
        hops: path.len() as u32 - 1,
    }
}

/// The widest path whose latency is within `bound`: the largest threshold at which the
/// lowest-latency path still meets the bound (its latency only grows as the threshold rises).
fn widest_within(
    g: &RouteGraph,
    search: &mut Search,
    s: u32,
    d: u32,
    floor: f64,
    allowed: Option<&[bool]>,
    bound: Option<u64>,
) -> Option<Vec<u32>> {
    search.widest(g, s, allowed);
    let mut thresholds: Vec<f64> = (0..g.node_count())
        .flat_map(|v| g.arcs(v as u32).iter().map(|a| a.bandwidth_gbps))
        .chain(g.node_bandwidth_gbps.iter().copied())
        .filter(|&b| b >= floor && b <= search.widest_gbps[d as usize])
        .collect();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    for b in thresholds {
        search.run(g, s, SearchOrder::Latency, b, allowed);
        if search.reached(d) && bound.is_none_or(|l| search.latency_ns[d as usize] <= l) {
            return search.path(d);
        }
    }
    None
}

/// The fewest-hops path whose latency is within `bound`, ties by latency: Bellman-Ford by hop
/// count (layer k holds the lowest latency with at most k links), stopping at the first layer
/// that reaches `d` within the bound.
fn fewest_hops_within(
    g: &RouteGraph,
    s: u32,
    d: u32,
    floor: f64,
    allowed: Option<&[bool]>,
    bound: Option<u64>,
) -> Option<Vec<u32>> {
    let n = g.node_count();
    let ok_node = |v: usize| g.node_bandwidth_gbps[v] >= floor;
    let mut layers: Vec<(Vec<u64>, Vec<u32>)> = Vec::new();
    let mut dist = vec![u64::MAX; n];
    dist[s as usize] = g.node_latency_ns[s as usize];
    layers.push((dist.clone(), vec![u32::MAX; n]));
    let within = |lat: u64| bound.is_none_or(|l| lat <= l);
    if s == d {
        return within(dist[d as usize]).then(|| vec![s]);
    }
    for _ in 1..n {
        let prev = &layers.last().expect("layer 0 exists").0;
        let mut next = prev.clone();
        let mut pred = vec![u32::MAX; n];
        let mut changed = false;
        for u in 0..n {
            if prev[u] == u64::MAX || (u as u32 != s && allowed.is_some_and(|a| !a[u])) {
                continue;
            }
            for arc in g.arcs(u as u32) {
                let v = arc.to as usize;
                if arc.bandwidth_gbps < floor || !ok_node(v) {
                    continue;
                }
                let lat = prev[u]
                    .saturating_add(arc.latency_ns)
                    .saturating_add(g.node_latency_ns[v]);
                if lat < next[v] {
                    next[v] = lat;
                    pred[v] = u as u32;
                    changed = true;
                }
            }
        }
        layers.push((next, pred));
        let (dist, _) = layers.last().expect("just pushed");
        if dist[d as usize] != u64::MAX && within(dist[d as usize]) {
            // Walk back through the layers: a node whose value did not change in layer k was
            // reached with fewer links.
            let mut path = vec![d];
            let mut v = d as usize;
            let mut k = layers.len() - 1;
            while v != s as usize {
                while layers[k].1[v] == u32::MAX {
                    k -= 1;
                }
                v = layers[k].1[v] as usize;
                k -= 1;
                path.push(v as u32);
            }
            path.reverse();
            return Some(path);
        }
        if !changed {
            return None;
        }
    }
    None
}
