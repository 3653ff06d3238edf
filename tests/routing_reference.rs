//! Routing tables and constrained routes checked against independent references written here:
//! an O(n²) Dijkstra without a heap on lexicographic keys, brute-force widest-path thresholds,
//! and exhaustive enumeration of simple paths, on random graphs and on generated fat-tree,
//! dragonfly and torus topologies.

use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::routing::{Metric, RouteRequest};
use hyperfabric::topology::generate::{self, Generated};
use hyperfabric::{DataType, ErrorKind, LinkSpec, TopologyManager};
use proptest::prelude::*;

/// A plain description of a graph, independent of the library's structures. Without edges it
/// stands for the `auto` link policy (every pair linked).
#[derive(Debug, Clone)]
struct Spec {
    node_lat: Vec<u64>,
    node_bw: Vec<f64>,
    up: Vec<bool>,
    /// (a, b, latency, bandwidth)
    edges: Vec<(usize, usize, u64, f64)>,
}

impl Spec {
    fn id(i: usize) -> String {
        format!("n{i}")
    }

    fn manager(&self) -> TopologyManager {
        let tm = TopologyManager::new(true);
        for i in 0..self.node_lat.len() {
            tm.add_node(
                NodeSignature::new(
                    Spec::id(i),
                    HardwareType::CpuServer,
                    self.node_bw[i],
                    self.node_lat[i],
                )
                .unwrap(),
            )
            .unwrap();
        }
        for &(a, b, lat, bw) in &self.edges {
            tm.add_link(
                LinkSpec::new(Spec::id(a), Spec::id(b))
                    .latency_ns(lat)
                    .bandwidth_gbps(bw),
            )
            .unwrap();
        }
        for (i, &up) in self.up.iter().enumerate() {
            if !up {
                tm.set_node_health(&Spec::id(i), false).unwrap();
            }
        }
        tm
    }

    fn from_generated(g: &Generated, lat_jitter: &[u64]) -> Spec {
        let index: std::collections::HashMap<&str, usize> = g
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.node_id.as_str(), i))
            .collect();
        Spec {
            node_lat: g.nodes.iter().map(|n| n.latency_ns).collect(),
            node_bw: g.nodes.iter().map(|n| n.bandwidth_gbps).collect(),
            up: vec![true; g.nodes.len()],
            edges: g
                .links
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    (
                        index[l.a.as_str()],
                        index[l.b.as_str()],
                        l.latency_ns.unwrap() + lat_jitter[i % lat_jitter.len()],
                        // Every third link is narrower, so widest paths differ from shortest.
                        if i % 3 == 0 {
                            l.bandwidth_gbps.unwrap() / 2.0
                        } else {
                            l.bandwidth_gbps.unwrap()
                        },
                    )
                })
                .collect(),
        }
    }

    fn n(&self) -> usize {
        self.node_lat.len()
    }

    /// Neighbours of `u` usable at bandwidth floor `floor`: (v, link latency, link bandwidth).
    fn adj(&self, u: usize, floor: f64) -> Vec<(usize, u64, f64)> {
        if !self.up[u] {
            return vec![];
        }
        if self.edges.is_empty() {
            // No declared link: the `auto` policy links every pair directly, with latency 0
            // and the smaller node bandwidth.
            return (0..self.n())
                .filter(|&v| v != u && self.up[v])
                .map(|v| (v, 0, self.node_bw[u].min(self.node_bw[v])))
                .filter(|&(v, _, bw)| bw >= floor && self.node_bw[v] >= floor)
                .collect();
        }
        self.edges
            .iter()
            .filter_map(|&(a, b, lat, bw)| {
                let v = if a == u {
                    b
                } else if b == u {
                    a
                } else {
                    return None;
                };
                (self.up[v] && bw >= floor && self.node_bw[v] >= floor).then_some((v, lat, bw))
            })
            .collect()
    }
}

/// O(n²) Dijkstra on lexicographic keys: `hops_first` selects (hops, latency), else
/// (latency, hops). Returns per node Some((latency, hops)).
fn reference(spec: &Spec, src: usize, floor: f64, hops_first: bool) -> Vec<Option<(u64, u32)>> {
    let n = spec.n();
    let mut best: Vec<Option<(u64, u32)>> = vec![None; n];
    let mut done = vec![false; n];
    if !spec.up[src] || spec.node_bw[src] < floor {
        return best;
    }
    let key = |v: (u64, u32)| {
        if hops_first {
            (v.1 as u64, v.0)
        } else {
            (v.0, v.1 as u64)
        }
    };
    best[src] = Some((spec.node_lat[src], 0));
    loop {
        let next = (0..n)
            .filter(|&v| !done[v] && best[v].is_some())
            .min_by_key(|&v| key(best[v].unwrap()));
        let Some(u) = next else { break };
        done[u] = true;
        let (lat, hops) = best[u].unwrap();
        for (v, l, _) in spec.adj(u, floor) {
            let cand = (lat + l + spec.node_lat[v], hops + 1);
            if best[v].is_none_or(|b| key(cand) < key(b)) {
                best[v] = Some(cand);
            }
        }
    }
    best
}

/// Widest bottleneck to each node by brute force: the largest threshold (among all link and
/// node bandwidths) at which the node is still reachable.
fn widest(spec: &Spec, src: usize) -> Vec<f64> {
    let mut thresholds: Vec<f64> = spec
        .edges
        .iter()
        .map(|e| e.3)
        .chain(spec.node_bw.iter().copied())
        .collect();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    let mut out = vec![0.0; spec.n()];
    for &b in thresholds.iter().rev() {
        let r = reference(spec, src, b, false);
        for v in 0..spec.n() {
            if r[v].is_some() {
                out[v] = b; // ascending thresholds: the last one that reaches v wins
            }
        }
    }
    out
}

/// Checks every table entry of every source against the references.
fn check_tables(spec: &Spec) -> Result<(), TestCaseError> {
    let tm = spec.manager();
    let tables = tm.routing().current_tables().unwrap();
    let g = tables.graph();
    let n = spec.n();
    let lat_ref: Vec<_> = (0..n).map(|s| reference(spec, s, 0.0, false)).collect();
    let hop_ref: Vec<_> = (0..n).map(|s| reference(spec, s, 0.0, true)).collect();
    for s in 0..n {
        let si = g.index_of(&Spec::id(s)).unwrap();
        let view = tables.source(si).unwrap();
        let wide = widest(spec, s);
        for d in 0..n {
            let di = g.index_of(&Spec::id(d)).unwrap();
            // Latency and hops metrics: exact optimum, and every next hop is optimal.
            for (metric, refs, hops_first) in [
                (Metric::Latency, &lat_ref, false),
                (Metric::Hops, &hop_ref, true),
            ] {
                let e = view.lookup(di, metric);
                match refs[s][d] {
                    None => prop_assert!(!e.reachable(), "{metric} {s}->{d} should be unreachable"),
                    Some((lat, hops)) => {
                        prop_assert!(e.reachable(), "{metric} {s}->{d} should be reachable");
                        prop_assert_eq!(
                            (e.latency_ns, e.hops as u32),
                            (lat, hops),
                            "{} {}->{}",
                            metric,
                            s,
                            d
                        );
                        if s == d {
                            continue;
                        }
                        let key = |v: (u64, u32)| {
                            if hops_first {
                                (v.1 as u64, v.0)
                            } else {
                                (v.0, v.1 as u64)
                            }
                        };
                        for &nh in view.next_hops(di, metric) {
                            let nh_id: usize = g.id(nh)[1..].parse().unwrap();
                            let link = spec.adj(s, 0.0).into_iter().find(|x| x.0 == nh_id);
                            prop_assert!(
                                link.is_some(),
                                "next hop {nh_id} of {s} is not a neighbour"
                            );
                            let (nl, nhops) = refs[nh_id][d].unwrap();
                            let via = (spec.node_lat[s] + link.unwrap().1 + nl, nhops + 1);
                            prop_assert_eq!(
                                key(via),
                                key((lat, hops)),
                                "next hop {} of {}->{} not optimal",
                                nh_id,
                                s,
                                d
                            );
                        }
                        // The stored path is a real path with the stored figures.
                        let path = tables.path(si, di, metric).unwrap();
                        let ids: Vec<usize> = path
                            .iter()
                            .map(|&i| g.id(i)[1..].parse().unwrap())
                            .collect();
                        prop_assert_eq!(ids[0], s);
                        prop_assert_eq!(*ids.last().unwrap(), d);
                        let mut plat = spec.node_lat[s];
                        let mut pbw = spec.node_bw[s];
                        for w in ids.windows(2) {
                            let (_, l, bw) = spec
                                .adj(w[0], 0.0)
                                .into_iter()
                                .find(|x| x.0 == w[1])
                                .unwrap();
                            plat += l + spec.node_lat[w[1]];
                            pbw = pbw.min(bw).min(spec.node_bw[w[1]]);
                        }
                        prop_assert_eq!(plat, lat);
                        prop_assert_eq!(pbw, e.bandwidth_gbps);
                    }
                }
            }
            // Bandwidth metric: widest bottleneck, then lowest latency, then fewest hops.
            let e = view.lookup(di, Metric::Bandwidth);
            if wide[d] == 0.0 {
                prop_assert!(!e.reachable());
                continue;
            }
            let within = reference(spec, s, wide[d], false);
            let (lat, hops) = within[d].unwrap();
            prop_assert_eq!(e.bandwidth_gbps, wide[d], "bandwidth {}->{}", s, d);
            prop_assert_eq!(
                (e.latency_ns, e.hops as u32),
                (lat, hops),
                "bandwidth {}->{}",
                s,
                d
            );
            if s != d {
                for &nh in view.next_hops(di, Metric::Bandwidth) {
                    let nh_id: usize = g.id(nh)[1..].parse().unwrap();
                    let link = spec.adj(s, wide[d]).into_iter().find(|x| x.0 == nh_id);
                    prop_assert!(
                        link.is_some(),
                        "bandwidth next hop {nh_id} of {s} is too narrow"
                    );
                    let (nl, nhops) = reference(spec, nh_id, wide[d], false)[d].unwrap();
                    prop_assert_eq!(
                        (spec.node_lat[s] + link.unwrap().1 + nl, nhops + 1),
                        (lat, hops)
                    );
                }
                // The engine's answer for the metric agrees with the table.
                let r = tm
                    .shortest_route(&Spec::id(s), &Spec::id(d), Metric::Bandwidth)
                    .unwrap();
                prop_assert_eq!(
                    (r.bandwidth_gbps, r.latency_ns, r.hops),
                    (wide[d], lat, hops)
                );
            }
        }
    }
    Ok(())
}

/// All simple paths from s to d whose intermediates pass `allowed` and whose links and nodes
/// meet `floor`: (latency, bandwidth, hops, path).
fn all_paths(
    spec: &Spec,
    s: usize,
    d: usize,
    floor: f64,
    allowed: &dyn Fn(usize) -> bool,
) -> Vec<(u64, f64, u32, Vec<usize>)> {
    let mut out = Vec::new();
    if !spec.up[s] || spec.node_bw[s] < floor {
        return out;
    }
    let mut stack = vec![s];
    fn dfs(
        spec: &Spec,
        d: usize,
        floor: f64,
        allowed: &dyn Fn(usize) -> bool,
        stack: &mut Vec<usize>,
        out: &mut Vec<(u64, f64, u32, Vec<usize>)>,
    ) {
        let u = *stack.last().unwrap();
        if u == d {
            let mut lat = spec.node_lat[stack[0]];
            let mut bw = spec.node_bw[stack[0]];
            for w in stack.windows(2) {
                let (_, l, b) = spec
                    .adj(w[0], floor)
                    .into_iter()
                    .find(|x| x.0 == w[1])
                    .unwrap();
                lat += l + spec.node_lat[w[1]];
                bw = bw.min(b).min(spec.node_bw[w[1]]);
            }
            out.push((lat, bw, stack.len() as u32 - 1, stack.clone()));
            return;
        }
        if stack.len() > 1 && !allowed(u) {
            return;
        }
        for (v, _, _) in spec.adj(u, floor) {
            if !stack.contains(&v) {
                stack.push(v);
                dfs(spec, d, floor, allowed, stack, out);
                stack.pop();
            }
        }
    }
    dfs(spec, d, floor, allowed, &mut stack, &mut out);
    out
}

fn random_spec(max_nodes: usize) -> impl Strategy<Value = Spec> {
    (2..=max_nodes).prop_flat_map(|n| {
        (
            proptest::collection::vec(prop_oneof![Just(0u64), Just(3), Just(10)], n),
            proptest::collection::vec(prop_oneof![Just(40.0), Just(100.0), Just(400.0)], n),
            proptest::collection::vec(prop::bool::weighted(0.9), n),
            proptest::collection::vec(
                (
                    0..n,
                    0..n,
                    prop_oneof![Just(0u64), Just(1), Just(5), Just(10), Just(50)],
                    prop_oneof![Just(10.0), Just(25.0), Just(40.0), Just(100.0)],
                ),
                0..=n * 3,
            ),
        )
            .prop_map(|(node_lat, node_bw, up, raw)| {
                let mut seen = std::collections::HashSet::new();
                let edges = raw
                    .into_iter()
                    .filter(|&(a, b, _, _)| a != b && seen.insert((a.min(b), a.max(b))))
                    .collect();
                Spec {
                    node_lat,
                    node_bw,
                    up,
                    edges,
                }
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn tables_match_reference_on_random_graphs(spec in random_spec(14)) {
        check_tables(&spec)?;
    }

    #[test]
    fn tables_match_reference_on_fat_trees(jitter in proptest::collection::vec(0u64..40, 1..16)) {
        check_tables(&Spec::from_generated(&generate::fat_tree(4, 100.0), &jitter))?;
    }

    #[test]
    fn tables_match_reference_on_dragonflies(jitter in proptest::collection::vec(0u64..40, 1..16), a in 1usize..4, h in 1usize..3) {
        check_tables(&Spec::from_generated(&generate::dragonfly(a, 1, h, 100.0), &jitter))?;
    }

    #[test]
    fn tables_match_reference_on_tori(jitter in proptest::collection::vec(0u64..40, 1..16), x in 1usize..6, y in 2usize..6) {
        check_tables(&Spec::from_generated(&generate::torus(x, y, 100.0), &jitter))?;
    }

    /// Constrained requests against exhaustive enumeration of simple paths.
    #[test]
    fn constrained_routes_match_exhaustive_search(
        spec in random_spec(8),
        s in 0usize..8, d in 0usize..8,
        metric in prop_oneof![Just(Metric::Latency), Just(Metric::Bandwidth), Just(Metric::Hops)],
        limit in prop::option::of(0u64..150),
        floor in prop::option::of(prop_oneof![Just(10.0), Just(25.0), Just(40.0), Just(100.0)]),
    ) {
        let (s, d) = (s % spec.n(), d % spec.n());
        let tm = spec.manager();
        let req = RouteRequest {
            metric,
            latency_constraint_ns: limit,
            bandwidth_requirement_gbps: floor,
            ..RouteRequest::new(Spec::id(s), Spec::id(d))
        };
        let got = tm.route(&req);
        if !spec.up[s] || !spec.up[d] {
            prop_assert_eq!(got.unwrap_err().kind(), ErrorKind::NoRouteFound);
            return Ok(());
        }
        let paths = all_paths(&spec, s, d, floor.unwrap_or(0.0), &|_| true);
        if paths.is_empty() {
            prop_assert_eq!(got.unwrap_err().kind(), ErrorKind::NoRouteFound);
            return Ok(());
        }
        let fastest = paths.iter().map(|p| p.0).min().unwrap();
        if limit.is_some_and(|l| fastest > l) {
            prop_assert_eq!(got.unwrap_err().kind(), ErrorKind::LatencyConstraintViolation);
            return Ok(());
        }
        let ok: Vec<_> = paths.iter().filter(|p| limit.is_none_or(|l| p.0 <= l)).collect();
        let got = got.unwrap();
        let expect = match metric {
            Metric::Latency => ok.iter().map(|p| (p.0, p.2)).min().map(|(l, h)| (l, h, None)),
            Metric::Hops => ok.iter().map(|p| (p.2, p.0)).min().map(|(h, l)| (l, h, None)),
            Metric::Bandwidth => {
                let bw = ok.iter().map(|p| p.1).fold(0.0, f64::max);
                ok.iter().filter(|p| p.1 == bw).map(|p| (p.0, p.2)).min().map(|(l, h)| (l, h, Some(bw)))
            }
        }
        .unwrap();
        prop_assert_eq!((got.latency_ns, got.hops), (expect.0, expect.1), "{:?} -> {:?}", req, got);
        if let Some(bw) = expect.2 {
            prop_assert_eq!(got.bandwidth_gbps, bw);
        }
        // The returned path is one of the enumerated ones.
        let ids: Vec<usize> = got.path.iter().map(|p| p[1..].parse().unwrap()).collect();
        prop_assert!(ok.iter().any(|p| p.3 == ids), "path {:?} is not a valid path", ids);
    }
}

#[test]
fn quantum_data_type_without_quantum_optimization_routes_normally() {
    let spec = Spec {
        node_lat: vec![1, 1],
        node_bw: vec![10.0, 10.0],
        up: vec![true, true],
        edges: vec![(0, 1, 5, 10.0)],
    };
    let tm = spec.manager();
    let req = RouteRequest {
        data_type: DataType::QuantumState,
        ..RouteRequest::new("n0", "n1")
    };
    assert_eq!(tm.route(&req).unwrap().latency_ns, 7);
}

/// Constrained requests on generated topologies, against the O(n²) reference: the latency
/// metric with a bandwidth floor and a latency bound, and the bandwidth metric with a bound
/// (the widest threshold whose fastest path meets it).
fn check_constrained(
    spec: &Spec,
    s: usize,
    d: usize,
    limit: Option<u64>,
    floor: Option<f64>,
) -> Result<(), TestCaseError> {
    let tm = spec.manager();
    let floor_v = floor.unwrap_or(0.0);
    let fastest = reference(spec, s, floor_v, false)[d];
    for metric in [Metric::Latency, Metric::Bandwidth] {
        let req = RouteRequest {
            metric,
            latency_constraint_ns: limit,
            bandwidth_requirement_gbps: floor,
            ..RouteRequest::new(Spec::id(s), Spec::id(d))
        };
        let got = tm.route(&req);
        let Some((best, best_hops)) = fastest else {
            prop_assert_eq!(got.unwrap_err().kind(), ErrorKind::NoRouteFound);
            continue;
        };
        if limit.is_some_and(|l| best > l) {
            prop_assert_eq!(
                got.unwrap_err().kind(),
                ErrorKind::LatencyConstraintViolation
            );
            continue;
        }
        let got = got.unwrap();
        match metric {
            Metric::Latency => prop_assert_eq!((got.latency_ns, got.hops), (best, best_hops)),
            _ => {
                let mut thresholds: Vec<f64> = spec
                    .edges
                    .iter()
                    .map(|e| e.3)
                    .chain(spec.node_bw.iter().copied())
                    .filter(|&b| b >= floor_v)
                    .collect();
                thresholds.sort_by(|a, b| b.total_cmp(a));
                thresholds.dedup();
                let (b, lat, hops) = thresholds
                    .iter()
                    .find_map(|&b| {
                        reference(spec, s, b, false)[d]
                            .filter(|&(lat, _)| limit.is_none_or(|l| lat <= l))
                            .map(|(lat, hops)| (b, lat, hops))
                    })
                    .unwrap();
                prop_assert_eq!(got.bandwidth_gbps, b);
                prop_assert_eq!((got.latency_ns, got.hops), (lat, hops));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn constrained_routes_match_reference_on_generated_topologies(
        kind in 0usize..3,
        jitter in proptest::collection::vec(0u64..400, 1..16),
        s in 0usize..64, d in 0usize..64,
        limit in prop::option::of(0u64..3000),
        floor in prop::option::of(prop_oneof![Just(50.0), Just(100.0)]),
    ) {
        let g = match kind {
            0 => generate::fat_tree(4, 100.0),
            1 => generate::dragonfly(2, 1, 2, 100.0),
            _ => generate::torus(4, 4, 100.0),
        };
        let spec = Spec::from_generated(&g, &jitter);
        check_constrained(&spec, s % spec.n(), d % spec.n(), limit, floor)?;
    }
}
