//! Zone isolation, quantum-aware routing, the learned cost model, load balancing and route
//! recomputation: each test fails if its rule is removed.

use hyperfabric::model::{FabricZone, HardwareType, IsolationLevel, NodeSignature, ZoneType};
use hyperfabric::routing::{Metric, RouteRequest, RoutingOptions};
use hyperfabric::topology::generate;
use hyperfabric::{DataType, ErrorKind, LinkSpec, TopologyManager};

fn node(id: &str, hw: HardwareType, lat: u64) -> NodeSignature {
    let mut n = NodeSignature::new(id, HardwareType::CpuServer, 100.0, lat).unwrap();
    n.hardware_type = hw;
    if hw.is_quantum() {
        n.quantum_coherence_time_us = Some(10.0);
    }
    n
}

/// `nodes` as (id, hardware), `links` as (a, b, latency).
fn fabric(
    opts: RoutingOptions,
    nodes: &[(&str, HardwareType)],
    links: &[(&str, &str, u64)],
) -> TopologyManager {
    let tm = TopologyManager::with_options(opts);
    for &(id, hw) in nodes {
        tm.add_node(node(id, hw, 0)).unwrap();
    }
    for &(a, b, lat) in links {
        tm.add_link(LinkSpec::new(a, b).latency_ns(lat)).unwrap();
    }
    tm
}

fn zone(tm: &TopologyManager, id: &str, ty: ZoneType, level: IsolationLevel, members: &[&str]) {
    tm.create_zone(FabricZone::new(id, ty, level, 16, 1.0).unwrap())
        .unwrap();
    for m in members {
        tm.assign_to_zone(id, m).unwrap();
    }
}

fn path(tm: &TopologyManager, a: &str, b: &str) -> Result<Vec<String>, ErrorKind> {
    tm.find_shortest_path(a, b, Metric::Latency)
        .map_err(|e| e.kind())
}

const CPU: HardwareType = HardwareType::CpuServer;

/// a - x - c is fast, a - m - c is slow; x is an outsider, m a member.
fn diamond() -> TopologyManager {
    fabric(
        RoutingOptions::default(),
        &[
            ("a", CPU),
            ("c", CPU),
            ("x", CPU),
            ("m", CPU),
            ("o1", CPU),
            ("o2", CPU),
            ("ctl", CPU),
        ],
        &[
            ("a", "x", 10),
            ("x", "c", 10),
            ("a", "m", 100),
            ("m", "c", 100),
            ("o1", "m", 10),
            ("m", "o2", 10),
            ("o1", "x", 100),
            ("x", "o2", 100),
            ("ctl", "a", 10),
        ],
    )
}

#[test]
fn medium_zone_admits_only_members_and_control_plane() {
    let tm = diamond();
    assert_eq!(path(&tm, "a", "o1").unwrap(), ["a", "x", "o1"]);
    zone(
        &tm,
        "z",
        ZoneType::ComputeCluster,
        IsolationLevel::Medium,
        &["a", "c"],
    );
    assert_eq!(
        path(&tm, "a", "o1").unwrap_err(),
        ErrorKind::ZoneIsolationViolation
    );
    assert_eq!(
        path(&tm, "o1", "a").unwrap_err(),
        ErrorKind::ZoneIsolationViolation
    );
    assert_eq!(
        path(&tm, "a", "c").unwrap(),
        ["a", "x", "c"],
        "medium does not restrict transit"
    );
    assert_eq!(
        path(&tm, "a", "ctl").unwrap_err(),
        ErrorKind::ZoneIsolationViolation
    );
    zone(
        &tm,
        "ops",
        ZoneType::ControlPlane,
        IsolationLevel::None,
        &["ctl"],
    );
    assert_eq!(path(&tm, "ctl", "a").unwrap(), ["ctl", "a"]);
    tm.delete_zone("z").unwrap();
    assert_eq!(path(&tm, "a", "o1").unwrap(), ["a", "x", "o1"]);
}

#[test]
fn low_and_none_zones_do_not_restrict_routes() {
    let tm = diamond();
    zone(
        &tm,
        "l",
        ZoneType::InferenceFarm,
        IsolationLevel::Low,
        &["a", "m"],
    );
    zone(
        &tm,
        "n",
        ZoneType::EdgeNetwork,
        IsolationLevel::None,
        &["c", "x"],
    );
    assert_eq!(path(&tm, "a", "o1").unwrap(), ["a", "x", "o1"]);
    assert_eq!(path(&tm, "o1", "o2").unwrap(), ["o1", "m", "o2"]);
}

#[test]
fn high_zone_keeps_member_traffic_inside_and_outsiders_out() {
    let tm = diamond();
    assert_eq!(path(&tm, "a", "c").unwrap(), ["a", "x", "c"]);
    assert_eq!(path(&tm, "o1", "o2").unwrap(), ["o1", "m", "o2"]);
    zone(
        &tm,
        "secure",
        ZoneType::QuantumRealm,
        IsolationLevel::High,
        &["a", "c", "m"],
    );
    zone(
        &tm,
        "ops",
        ZoneType::ControlPlane,
        IsolationLevel::None,
        &["ctl"],
    );
    // Member to member: only through members.
    let r = tm.shortest_route("a", "c", Metric::Latency).unwrap();
    assert_eq!(r.path, ["a", "m", "c"]);
    assert_eq!(r.latency_ns, 200);
    // Outsider to outsider: never through a member.
    assert_eq!(path(&tm, "o1", "o2").unwrap(), ["o1", "x", "o2"]);
    // A node reaches itself whatever the zones.
    assert_eq!(path(&tm, "a", "a").unwrap(), ["a"]);
    assert_eq!(path(&tm, "o1", "o1").unwrap(), ["o1"]);
    // A control-plane node reaches members.
    assert_eq!(path(&tm, "ctl", "c").unwrap()[0], "ctl");
    // Without a path inside the zone there is no route.
    tm.remove_link("a", "m").unwrap();
    assert_eq!(path(&tm, "a", "c").unwrap_err(), ErrorKind::NoRouteFound);
}

#[test]
fn quantum_secure_zone_enforces_high_rules() {
    let tm = diamond();
    zone(
        &tm,
        "q",
        ZoneType::QuantumRealm,
        IsolationLevel::QuantumSecure,
        &["a", "c", "m"],
    );
    assert_eq!(path(&tm, "a", "c").unwrap(), ["a", "m", "c"]);
    assert_eq!(
        path(&tm, "a", "o1").unwrap_err(),
        ErrorKind::ZoneIsolationViolation
    );
}

fn quantum_fabric(enabled: bool) -> TopologyManager {
    // qpu1 - cpu - qpu2 is fast; qpu1 - ph - qpu2 is slower but quantum-capable.
    fabric(
        RoutingOptions {
            enable_quantum_optimization: enabled,
            ..Default::default()
        },
        &[
            ("qpu1", HardwareType::QuantumQpu),
            ("qpu2", HardwareType::QuantumQpu),
            ("cpu", CPU),
            ("ph", HardwareType::PhotonicSwitch),
            ("far", CPU),
        ],
        &[
            ("qpu1", "cpu", 100),
            ("cpu", "qpu2", 100),
            ("qpu1", "ph", 1000),
            ("ph", "qpu2", 1000),
            ("qpu1", "far", 12_000),
        ],
    )
}

#[test]
fn entanglement_requires_a_quantum_capable_path() {
    let tm = quantum_fabric(true);
    let mut req = RouteRequest::new("qpu1", "qpu2");
    assert_eq!(tm.route(&req).unwrap().path, ["qpu1", "cpu", "qpu2"]);
    req.requires_quantum_entanglement = true;
    assert_eq!(tm.route(&req).unwrap().path, ["qpu1", "ph", "qpu2"]);
    tm.remove_link("ph", "qpu2").unwrap();
    assert_eq!(
        tm.route(&req).unwrap_err().kind(),
        ErrorKind::QuantumCoherence
    );
    // Disabled quantum optimisation cannot honour the requirement.
    let off = quantum_fabric(false);
    assert_eq!(
        off.route(&req).unwrap_err().kind(),
        ErrorKind::QuantumCoherence
    );
}

#[test]
fn quantum_traffic_must_beat_the_coherence_deadline() {
    let tm = quantum_fabric(true);
    // qpu1 has 10 µs coherence; qpu1 -> far takes 12 µs.
    let mut req = RouteRequest::new("qpu1", "far");
    assert_eq!(tm.route(&req).unwrap().latency_ns, 12_000);
    req.data_type = DataType::QuantumState;
    assert_eq!(
        tm.route(&req).unwrap_err().kind(),
        ErrorKind::QuantumCoherence
    );
    req.data_type = DataType::QuantumCircuit;
    assert_eq!(
        tm.route(&req).unwrap_err().kind(),
        ErrorKind::QuantumCoherence
    );
    // Within the deadline it routes.
    req.destination = "qpu2".into();
    assert_eq!(tm.route(&req).unwrap().latency_ns, 200);
    // With quantum optimisation off, no deadline is applied.
    let off = quantum_fabric(false);
    let req = RouteRequest {
        data_type: DataType::QuantumState,
        ..RouteRequest::new("qpu1", "far")
    };
    assert!(off.route(&req).is_ok());
}

#[test]
fn coherence_deadline_is_capped_by_max_latency_quantum() {
    let tm = TopologyManager::with_options(RoutingOptions {
        enable_quantum_optimization: true,
        ..Default::default()
    });
    let mut q = node("q", HardwareType::QuantumQpu, 0);
    q.quantum_coherence_time_us = Some(1000.0); // 1 ms, above the 100 µs cap
    tm.add_node(q).unwrap();
    tm.add_node(node("c", CPU, 0)).unwrap();
    tm.add_link(LinkSpec::new("q", "c").latency_ns(150_000))
        .unwrap();
    let req = RouteRequest {
        data_type: DataType::QuantumState,
        ..RouteRequest::new("q", "c")
    };
    let e = tm.route(&req).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuantumCoherence);
    assert!(e.to_string().contains("100000"), "{e}");
}

#[test]
fn latency_constraint_is_refused_with_the_figures() {
    let tm = diamond();
    let req = RouteRequest {
        latency_constraint_ns: Some(19),
        ..RouteRequest::new("a", "c")
    };
    let e = tm.route(&req).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LatencyConstraintViolation);
    assert!(
        e.to_string().contains("20 ns") && e.to_string().contains("19 ns"),
        "{e}"
    );
    let path = tm
        .routing()
        .find_optimal_path("a", "c", DataType::Tensor, Some(20), None)
        .unwrap();
    assert_eq!(path, ["a", "x", "c"]);
    assert_eq!(
        tm.routing()
            .find_optimal_path("a", "nope", DataType::Tensor, None, None)
            .unwrap_err()
            .kind(),
        ErrorKind::NodeNotFound
    );
}

/// a - b - d (2000 ns declared) and a - c - d (2400 ns declared); b - d's utilisation climbs.
fn congestion_route(ml: bool) -> Vec<(f64, Vec<String>)> {
    let tm = fabric(
        RoutingOptions {
            enable_ml_optimization: ml,
            ..Default::default()
        },
        &[("a", CPU), ("b", CPU), ("c", CPU), ("d", CPU)],
        &[
            ("a", "b", 1000),
            ("b", "d", 1000),
            ("a", "c", 1200),
            ("c", "d", 1200),
        ],
    );
    let mut out = Vec::new();
    for step in 0..=9 {
        let rho = step as f64 / 10.0;
        tm.update_link_metrics("b", "d", 1000, rho * 100.0, 0.0)
            .unwrap();
        for (x, y) in [("a", "b"), ("a", "c"), ("c", "d")] {
            tm.update_link_metrics(
                x,
                y,
                if x == "a" && y == "b" { 1000 } else { 1200 },
                0.0,
                0.0,
            )
            .unwrap();
        }
        out.push((rho, path(&tm, "a", "d").unwrap()));
    }
    out
}

#[test]
fn learned_routing_moves_off_a_congesting_link_before_it_saturates() {
    let learned = congestion_route(true);
    let moved = learned
        .iter()
        .find(|(_, p)| p[1] == "c")
        .map(|(rho, _)| *rho);
    assert!(
        learned[0].1[1] == "b",
        "starts on the faster path: {learned:?}"
    );
    assert!(
        moved.is_some_and(|r| r < 0.9),
        "learned model never left b: {learned:?}"
    );
    // Static routing keeps the declared-fastest path whatever is measured.
    let fixed = congestion_route(false);
    assert!(fixed.iter().all(|(_, p)| p[1] == "b"), "{fixed:?}");
}

#[test]
fn link_metrics_are_checked() {
    let tm = diamond();
    let err = |r: hyperfabric::Result<()>| r.unwrap_err().kind();
    assert_eq!(
        err(tm.update_link_metrics("a", "o2", 1, 1.0, 0.0)),
        ErrorKind::LinkNotFound
    );
    assert_eq!(
        err(tm.update_link_metrics("a", "zz", 1, 1.0, 0.0)),
        ErrorKind::NodeNotFound
    );
    assert_eq!(
        err(tm.update_link_metrics("a", "x", 1, -1.0, 0.0)),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        err(tm.update_link_metrics("a", "x", 1, 1.0, 1.5)),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        err(tm.update_link_metrics("a", "x", 1, f64::NAN, 0.0)),
        ErrorKind::InvalidArgument
    );
}

fn fat_tree_manager(auto_optimization: bool) -> TopologyManager {
    let g = generate::fat_tree(4, 100.0);
    let tm = TopologyManager::new(auto_optimization);
    for n in g.nodes {
        tm.add_node(n).unwrap();
    }
    for l in g.links {
        tm.add_link(l).unwrap();
    }
    tm
}

#[test]
fn equal_cost_next_hops_spread_flows() {
    let tm = fat_tree_manager(true);
    let tables = tm.routing().current_tables().unwrap();
    let gr = tables.graph();
    let edge = gr.index_of("edge-0-0").unwrap();
    let far = gr.index_of("host-3-1-1").unwrap();
    let view = tables.source(edge).unwrap();
    let hops = view.next_hops(far, Metric::Latency);
    assert_eq!(
        hops.len(),
        2,
        "two aggregation switches lead to another pod"
    );
    let used: std::collections::HashSet<u32> = (0..16)
        .map(|h| view.next_hop_for_flow(far, Metric::Latency, h))
        .collect();
    assert_eq!(used.len(), 2);
    for h in used {
        assert!(gr.id(h).starts_with("agg-0-"));
    }
    // Without auto-optimisation every flow takes the primary next hop.
    let tm = fat_tree_manager(false);
    let tables = tm.routing().current_tables().unwrap();
    let view = tables.source(edge).unwrap();
    assert_eq!(view.next_hops(far, Metric::Latency).len(), 1);
    let used: std::collections::HashSet<u32> = (0..16)
        .map(|h| view.next_hop_for_flow(far, Metric::Latency, h))
        .collect();
    assert_eq!(used.len(), 1);
}

#[test]
fn routes_follow_topology_changes_and_failures() {
    let tm = diamond();
    assert_eq!(path(&tm, "a", "c").unwrap(), ["a", "x", "c"]);
    tm.set_node_health("x", false).unwrap();
    assert_eq!(path(&tm, "a", "c").unwrap(), ["a", "m", "c"]);
    assert_eq!(path(&tm, "x", "c").unwrap_err(), ErrorKind::NoRouteFound);
    tm.set_node_health("x", true).unwrap();
    tm.set_link_state("a", "x", false).unwrap();
    assert_eq!(path(&tm, "a", "c").unwrap(), ["a", "m", "c"]);
    tm.set_link_state("a", "x", true).unwrap();
    tm.remove_node("m").unwrap();
    tm.remove_link("x", "c").unwrap();
    assert_eq!(path(&tm, "a", "c").unwrap_err(), ErrorKind::NoRouteFound);
    assert_eq!(path(&tm, "a", "m").unwrap_err(), ErrorKind::NodeNotFound);
}

#[test]
fn bottlenecks_report_utilisation_and_narrow_nodes() {
    let tm = TopologyManager::new(true);
    for i in 0..6 {
        tm.add_node(node(&format!("h{i}"), CPU, 10)).unwrap();
    }
    let mut sw = NodeSignature::new("sw", HardwareType::NetworkSwitch, 50.0, 10).unwrap();
    sw.bandwidth_gbps = 50.0;
    tm.add_node(sw).unwrap();
    for i in 0..6 {
        tm.add_link(LinkSpec::new(format!("h{i}"), "sw").bandwidth_gbps(100.0))
            .unwrap();
    }
    tm.add_link(LinkSpec::new("h0", "h1")).unwrap();
    tm.update_link_metrics("h0", "sw", 500, 90.0, 0.0).unwrap();
    let b = tm.analyze_bottlenecks().unwrap();
    let find = |ty: &str| {
        b.iter()
            .find(|x| x.bottleneck_type == ty)
            .unwrap_or_else(|| panic!("{ty} missing: {b:#?}"))
    };
    let util = find("link_utilization");
    assert!(util.location.contains("h0") && util.location.contains("sw"));
    assert!((util.severity - 0.9).abs() < 1e-9);
    assert!(!util.affected_paths.is_empty());
    assert!(util
        .affected_paths
        .iter()
        .all(|p| p.contains(&"sw".to_string())));
    let narrow = find("node_bandwidth");
    assert_eq!(narrow.location, "sw");
    assert!((narrow.severity - 0.5).abs() < 1e-9);
    assert!(narrow.recommended_action.contains("50 Gbit/s"));
    assert!(b.windows(2).all(|w| w[0].severity >= w[1].severity));
    let info = tm.topology_info().unwrap();
    assert_eq!(info.total_nodes, 7);
    assert_eq!(info.total_links, 7);
    assert_eq!(info.performance_metrics["reachable_pair_ratio"], 1.0);
}

#[test]
fn a_bridge_between_two_cliques_is_a_route_concentration() {
    let tm = TopologyManager::new(true);
    let ids: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
    for id in &ids {
        tm.add_node(node(id, CPU, 10)).unwrap();
    }
    for side in [0..4, 4..8] {
        for i in side.clone() {
            for j in i + 1..side.end {
                tm.add_link(LinkSpec::new(&ids[i], &ids[j]).latency_ns(10))
                    .unwrap();
            }
        }
    }
    tm.add_link(LinkSpec::new("n3", "n4").latency_ns(10))
        .unwrap();
    let b = tm.analyze_bottlenecks().unwrap();
    let c: Vec<_> = b
        .iter()
        .filter(|x| x.bottleneck_type == "route_concentration")
        .collect();
    assert_eq!(c.len(), 1, "{b:#?}");
    assert_eq!(c[0].location, "n3<->n4");
    assert!(
        c[0].recommended_action.starts_with("32 of 56 routes"),
        "{}",
        c[0].recommended_action
    );
    assert!(c[0]
        .affected_paths
        .iter()
        .all(|p| p.windows(2).any(|w| w == ["n3", "n4"] || w == ["n4", "n3"])));
}

#[test]
fn route_load_spreads_over_equal_cost_paths() {
    // In a k=4 fat-tree every core link carries the same share when flows are spread; with
    // only primary next hops the first core switch takes more.
    let core_loads = |auto: bool| -> Vec<f64> {
        let tm = fat_tree_manager(auto);
        let t = tm.routing().current_tables().unwrap();
        let (g, load) = (t.graph(), t.route_load());
        assert_eq!(load.routes, 36 * 35);
        (0..g.link_count())
            .filter(|&i| {
                let (a, b) = g.link(i);
                g.id(a).starts_with("core") || g.id(b).starts_with("core")
            })
            .map(|i| load.links[i])
            .collect()
    };
    let spread = core_loads(true);
    assert_eq!(spread.len(), 16);
    assert!(
        spread.iter().all(|&l| (l - spread[0]).abs() < 1e-9),
        "{spread:?}"
    );
    let fixed = core_loads(false);
    let (lo, hi) = fixed
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &l| (lo.min(l), hi.max(l)));
    assert!(hi > lo, "{fixed:?}");
    // The total is the same: spreading moves load, it does not create or lose any.
    let (a, b): (f64, f64) = (spread.iter().sum(), fixed.iter().sum());
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    assert!(fat_tree_manager(true)
        .analyze_bottlenecks()
        .unwrap()
        .is_empty());
}
