//! Send admission (`RoutingEngine::check_send`, `RoutingTables::admit`) against the route
//! requests it stands for. On random (source, destination, constraint) triples of generated
//! topologies, with constraints just below, at and just above the fastest latency, a send is
//! admitted exactly when `find_optimal_path` / `route` finds a route, and refused with the same
//! error (kind and message) when it does not; likewise for quantum data, entanglement and
//! zones. Every answer is also checked to come from the precomputed tables.

use hyperfabric::model::MAX_QUANTUM_ENTANGLED_NODES;
use hyperfabric::routing::{RoutingOptions, SendRequirements};
use hyperfabric::topology::generate::{self, Generated};
use hyperfabric::{
    DataType, Error, ErrorKind, FabricZone, HardwareType, IsolationLevel, LinkSpec, NodeSignature,
    TopologyManager, ZoneType,
};

/// xorshift64: a fixed sequence, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A manager over `g` (one rebuild), every link's latency raised by 0..`jitter` ns so the
/// fastest latencies differ from pair to pair.
fn manager(g: &Generated, opts: RoutingOptions, rng: &mut Rng, jitter: u64) -> TopologyManager {
    let tm = TopologyManager::with_options(opts);
    tm.routing()
        .update_topology(|t| {
            for n in &g.nodes {
                t.add_node(n.clone())?;
            }
            for l in &g.links {
                let lat = l.latency_ns.unwrap_or(0) + rng.next() % jitter.max(1);
                t.add_link(l.clone().latency_ns(lat))?;
            }
            Ok(())
        })
        .unwrap();
    tm
}

type Outcome = Result<(u64, bool), (ErrorKind, String)>;

fn outcome(e: Error) -> (ErrorKind, String) {
    (e.kind(), e.to_string())
}

/// What the protocol's send check did before admission answers: the zone endpoint rule on the
/// topology, then the route request, then the encryption rule.
fn by_request(tm: &TopologyManager, src: &str, dst: &str, req: &SendRequirements) -> Outcome {
    if let Some(why) = tm.read(|t| t.isolation_violation(src, dst)) {
        return Err(outcome(Error::ZoneIsolationViolation(why)));
    }
    let route = tm.route(&req.request(src, dst)).map_err(outcome);
    if !req.requires_quantum_entanglement {
        // The reference's `find_optimal_path` (which has no entanglement argument) agrees.
        let found = tm.routing().find_optimal_path(
            src,
            dst,
            req.data_type,
            req.latency_constraint_ns,
            None,
        );
        assert_eq!(
            found.map(drop).map_err(outcome),
            route.as_ref().map(drop).map_err(Clone::clone)
        );
    }
    let route = route?;
    Ok((
        route.latency_ns,
        tm.read(|t| t.encryption_zone(src, dst).is_some()),
    ))
}

/// The admission answer, checked to be the one the tables hold for the pair.
fn by_admission(tm: &TopologyManager, src: &str, dst: &str, req: &SendRequirements) -> Outcome {
    let got = tm
        .routing()
        .check_send(src, dst, req)
        .map(|a| (a.latency_ns, a.must_encrypt))
        .map_err(outcome);
    let tables = tm.routing().current_tables().unwrap();
    let g = tables.graph();
    if let (Some(s), Some(d)) = (g.index_of(src), g.index_of(dst)) {
        let precomputed = tables
            .admit(s, d, req)
            .expect("every source has precomputed answers")
            .map(|a| (a.latency_ns, a.must_encrypt))
            .map_err(|r| {
                let e = r.error(g, s, d);
                assert_eq!(r.kind(), e.kind());
                outcome(e)
            });
        assert_eq!(precomputed, got, "{src} -> {dst} {req:?}");
    }
    got
}

/// Counts of the outcomes seen, so a test notices when it stopped exercising a case.
#[derive(Default, Debug)]
struct Seen(std::collections::BTreeMap<String, usize>);

impl Seen {
    fn add(&mut self, o: &Outcome) {
        let key = match o {
            Ok(_) => "admitted".to_string(),
            Err((kind, _)) => format!("{kind:?}"),
        };
        *self.0.entry(key).or_default() += 1;
    }

    fn at_least(&self, key: &str, n: usize) {
        let got = self.0.get(key).copied().unwrap_or(0);
        assert!(got >= n, "{key}: {got} < {n} in {:?}", self.0);
    }
}

/// Checks `req` between `src` and `dst`, then the same requirements with the constraint just
/// below, at and just above the fastest latency admitted without one, and at `random`.
fn check_around(
    tm: &TopologyManager,
    (src, dst): (&str, &str),
    req: SendRequirements,
    random: u64,
    seen: &mut Seen,
) {
    let free = SendRequirements {
        latency_constraint_ns: None,
        ..req
    };
    let expect = by_request(tm, src, dst, &free);
    assert_eq!(
        by_admission(tm, src, dst, &free),
        expect,
        "{src} -> {dst} {free:?}"
    );
    seen.add(&expect);
    let fastest = expect.as_ref().ok().map(|&(ns, _)| ns);
    let mut limits = vec![random];
    if let Some(f) = fastest {
        limits.extend([f.saturating_sub(1), f, f + 1]);
    }
    for limit in limits {
        let req = SendRequirements {
            latency_constraint_ns: Some(limit),
            ..req
        };
        let expect = by_request(tm, src, dst, &req);
        assert_eq!(
            by_admission(tm, src, dst, &req),
            expect,
            "{src} -> {dst} {req:?}"
        );
        if let Some(f) = fastest {
            // With a route at all, the constraint alone decides: refused exactly below it.
            match &expect {
                Ok(_) => assert!(f <= limit, "{src} -> {dst} {req:?}"),
                Err((kind, _)) => assert!(
                    f > limit && *kind == ErrorKind::LatencyConstraintViolation,
                    "{src} -> {dst} {req:?}: {expect:?}"
                ),
            }
        }
        seen.add(&expect);
    }
}

#[test]
fn constrained_sends_match_find_optimal_path_on_a_k16_fat_tree() {
    let mut rng = Rng(0x5EED_F00D_1234_5678);
    let g = generate::fat_tree(16, 100.0);
    assert_eq!(g.hosts(), 1024);
    let tm = manager(&g, RoutingOptions::default(), &mut rng, 300);
    // Some hosts unreachable (their only link down) and one down, for the refusals.
    tm.set_link_state("host-3-2-1", "edge-3-2", false).unwrap();
    tm.set_link_state("host-9-0-7", "edge-9-0", false).unwrap();
    tm.set_node_health("host-5-5-5", false).unwrap();
    let mut hosts: Vec<&str> = g
        .nodes
        .iter()
        .filter(|n| n.node_id.starts_with("host-"))
        .map(|n| n.node_id.as_str())
        .collect();
    let all: Vec<&str> = g.nodes.iter().map(|n| n.node_id.as_str()).collect();
    hosts.extend(["host-3-2-1", "host-9-0-7", "host-5-5-5"].repeat(20));
    let mut seen = Seen::default();
    for i in 0..5000 {
        let src = rng.pick(&hosts);
        // Mostly host to host; some pairs with switches and with the node itself.
        let dst = match i % 10 {
            0 => rng.pick(&all),
            1 => src,
            _ => rng.pick(&hosts),
        };
        let random = rng.next() % 4000;
        check_around(
            &tm,
            (src, dst),
            SendRequirements::default(),
            random,
            &mut seen,
        );
    }
    seen.at_least("admitted", 10_000);
    seen.at_least("LatencyConstraintViolation", 5000);
    seen.at_least("NoRouteFound", 250);
}

/// `g`'s nodes with mixed hardware: QPUs (coherence 1 to 8 µs), photonic switches and CPUs.
fn quantum_mix(mut g: Generated, rng: &mut Rng) -> Generated {
    for n in &mut g.nodes {
        match rng.below(3) {
            0 => {
                n.hardware_type = HardwareType::QuantumQpu;
                n.quantum_coherence_time_us = Some(1.0 + rng.below(8) as f64);
            }
            1 => n.hardware_type = HardwareType::PhotonicSwitch,
            _ => n.hardware_type = HardwareType::CpuServer,
        }
    }
    g
}

fn quantum_requirements(rng: &mut Rng) -> SendRequirements {
    SendRequirements {
        data_type: rng.pick(&[
            DataType::Generic,
            DataType::QuantumState,
            DataType::QuantumCircuit,
        ]),
        latency_constraint_ns: None,
        requires_quantum_entanglement: rng.below(2) == 0,
    }
}

#[test]
fn quantum_sends_match_route_with_and_without_quantum_optimization() {
    let mut rng = Rng(0xC0FF_EE00_DEAD_BEEF);
    for quantum in [true, false] {
        let g = quantum_mix(generate::torus(8, 8, 100.0), &mut rng);
        let opts = RoutingOptions {
            enable_quantum_optimization: quantum,
            ..RoutingOptions::default()
        };
        let tm = manager(&g, opts, &mut rng, 400);
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.node_id.as_str()).collect();
        let mut seen = Seen::default();
        for _ in 0..3000 {
            let (src, dst) = (rng.pick(&ids), rng.pick(&ids));
            let random = rng.next() % 6000;
            check_around(
                &tm,
                (src, dst),
                quantum_requirements(&mut rng),
                random,
                &mut seen,
            );
        }
        seen.at_least("admitted", 2000);
        seen.at_least("QuantumCoherence", 600);
        seen.at_least("LatencyConstraintViolation", 1000);
    }
}

#[test]
fn entangled_paths_longer_than_the_limit_are_refused_as_route_refuses_them() {
    // A chain of photonic switches longer than MAX_QUANTUM_ENTANGLED_NODES, closed into a ring
    // by one slow link, so far pairs have a short slow path and a long fast one.
    let n = MAX_QUANTUM_ENTANGLED_NODES + 30;
    let mut g = Generated::default();
    for i in 0..n {
        g.nodes.push(
            NodeSignature::new(format!("p{i}"), HardwareType::PhotonicSwitch, 100.0, 1).unwrap(),
        );
    }
    for i in 1..n {
        g.links
            .push(LinkSpec::new(format!("p{}", i - 1), format!("p{i}")).latency_ns(10));
    }
    g.links
        .push(LinkSpec::new("p0", format!("p{}", n - 1)).latency_ns(1500));
    let opts = RoutingOptions {
        enable_quantum_optimization: true,
        ..RoutingOptions::default()
    };
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let tm = manager(&g, opts, &mut rng, 1);
    let mut seen = Seen::default();
    for i in 0..400 {
        // Half the pairs at least MAX_QUANTUM_ENTANGLED_NODES - 1 links apart on the chain.
        let (a, b) = if i % 2 == 0 {
            let a = rng.below(n - 99);
            (a, a + 99 + rng.below(n - 99 - a))
        } else {
            (rng.below(n), rng.below(n))
        };
        let (a, b) = if rng.below(2) == 0 { (a, b) } else { (b, a) };
        let (src, dst) = (format!("p{a}"), format!("p{b}"));
        let req = quantum_requirements(&mut rng);
        check_around(&tm, (&src, &dst), req, rng.next() % 3000, &mut seen);
    }
    seen.at_least("admitted", 200);
    seen.at_least("QuantumCoherence", 50);
    // At the limit: 100 nodes pass, 101 do not.
    let entangled = SendRequirements {
        requires_quantum_entanglement: true,
        ..SendRequirements::default()
    };
    let check = |dst: &str| tm.routing().check_send("p0", dst, &entangled);
    assert_eq!(check("p99").unwrap().latency_ns, 99 * 10 + 100);
    let refused = check("p100").unwrap_err();
    assert!(
        refused.to_string().contains("entangled path has 101 nodes"),
        "{refused}"
    );
    for dst in ["p99", "p100"] {
        check_around(&tm, ("p0", dst), entangled, 0, &mut seen);
    }
}

#[test]
fn zoned_sends_match_the_zone_rules_and_route() {
    let mut rng = Rng(0xFACE_B00C_0BAD_CAFE);
    for (quantum, extra_zones) in [(false, 0), (true, 0), (true, 70)] {
        let g = quantum_mix(generate::fat_tree(8, 100.0), &mut rng);
        let opts = RoutingOptions {
            enable_quantum_optimization: quantum,
            ..RoutingOptions::default()
        };
        let tm = manager(&g, opts, &mut rng, 300);
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.node_id.as_str()).collect();
        // Filler zones first (more than 64 zones take two words of bits), then the isolating
        // ones, with random and overlapping members.
        let mut zones: Vec<(String, ZoneType, IsolationLevel, usize)> = (0..extra_zones)
            .map(|i| {
                let level = rng.pick(&[IsolationLevel::None, IsolationLevel::Low]);
                (format!("filler-{i}"), ZoneType::ComputeCluster, level, 2)
            })
            .collect();
        zones.extend([
            (
                "high-a".into(),
                ZoneType::ComputeCluster,
                IsolationLevel::High,
                40,
            ),
            (
                "high-b".into(),
                ZoneType::InferenceFarm,
                IsolationLevel::High,
                30,
            ),
            (
                "medium".into(),
                ZoneType::StorageTier,
                IsolationLevel::Medium,
                30,
            ),
            (
                "secure".into(),
                ZoneType::QuantumRealm,
                IsolationLevel::QuantumSecure,
                12,
            ),
            ("ctl".into(), ZoneType::ControlPlane, IsolationLevel::Low, 6),
        ]);
        for (id, ty, level, members) in &zones {
            tm.create_zone(FabricZone::new(id.as_str(), *ty, *level, 64, 1.0).unwrap())
                .unwrap();
            for _ in 0..*members {
                tm.assign_to_zone(id, rng.pick(&ids)).unwrap();
            }
        }
        let mut with_unknown = ids.clone();
        with_unknown.extend(["nope"; 8]);
        let mut seen = Seen::default();
        for _ in 0..3000 {
            let (src, dst) = (rng.pick(&with_unknown), rng.pick(&with_unknown));
            let req = if quantum {
                quantum_requirements(&mut rng)
            } else {
                SendRequirements::default()
            };
            check_around(&tm, (src, dst), req, rng.next() % 5000, &mut seen);
        }
        seen.at_least("admitted", 1000);
        seen.at_least("ZoneIsolationViolation", 1000);
        seen.at_least("NodeNotFound", 100);
        seen.at_least("NoRouteFound", 100);
        let encrypted = tm
            .read(|t| t.zone("secure").unwrap().members.iter().next().cloned())
            .unwrap();
        let ctl = tm
            .read(|t| t.zone("ctl").unwrap().members.iter().next().cloned())
            .unwrap();
        let free = SendRequirements::default();
        assert_eq!(
            by_admission(&tm, &ctl, &encrypted, &free),
            by_request(&tm, &ctl, &encrypted, &free)
        );
    }
}

#[test]
fn admission_sees_every_change_made_before_the_check() {
    let tm = TopologyManager::new(true);
    for id in ["a", "b", "c", "d"] {
        tm.add_node(NodeSignature::new(id, HardwareType::CpuServer, 100.0, 10).unwrap())
            .unwrap();
    }
    tm.add_link(LinkSpec::new("a", "b").latency_ns(100))
        .unwrap();
    tm.add_link(LinkSpec::new("b", "c").latency_ns(100))
        .unwrap();
    tm.add_link(LinkSpec::new("a", "d").latency_ns(500))
        .unwrap();
    tm.add_link(LinkSpec::new("d", "c").latency_ns(500))
        .unwrap();
    let within = |ns| SendRequirements {
        latency_constraint_ns: Some(ns),
        ..SendRequirements::default()
    };
    let check = |ns| tm.routing().check_send("a", "c", &within(ns));
    for round in 0..50 {
        // a-b-c: 230 ns; a-d-c: 1030 ns; no path: refused whatever the constraint.
        assert_eq!(check(230).unwrap().latency_ns, 230, "round {round}");
        tm.set_link_state("a", "b", false).unwrap();
        assert_eq!(
            check(230).unwrap_err().kind(),
            ErrorKind::LatencyConstraintViolation
        );
        assert_eq!(check(1030).unwrap().latency_ns, 1030);
        tm.set_node_health("d", false).unwrap();
        assert_eq!(check(5000).unwrap_err().kind(), ErrorKind::NoRouteFound);
        tm.set_node_health("d", true).unwrap();
        tm.set_link_state("a", "b", true).unwrap();
    }
}
