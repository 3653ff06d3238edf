//! Which routes a forwarded frame follows with learned routing. A frame follows the learned
//! routes of the process that sent it while it stays inside that process, and the configured
//! routes once it has left it: every process computes those alike, so two processes whose
//! learned figures disagree never send a frame back and forth between them.
//!
//! Process P (a protocol of this test, learning) hosts a, f, s1 and s2; its learned figures
//! make f - s1 slow, so its routes from a and f to b go through s2 although the configured
//! ones go through s1. Two more protocols of this process (their rings are files, as between
//! processes; neither learns) host c, which reaches b only through f, and b.

mod common;

use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig};
use hyperfabric::model::PacketPriority;
use std::time::Duration;

fn config(name: &str) -> String {
    let node = |id: &str| {
        format!("  - {{ node_id: {id}, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}\n")
    };
    let nodes: String = ["a", "f", "s1", "s2", "b", "c"].map(node).concat();
    format!(
        "\
fabric:
  name: {name}
  protocol: {{ enable_ml_routing: true }}
nodes:
{nodes}links:
  - {{ a: a, b: f, latency_ns: 1000 }}
  - {{ a: c, b: f, latency_ns: 1000 }}
  - {{ a: f, b: s1, latency_ns: 1000 }}
  - {{ a: s1, b: b, latency_ns: 1000 }}
  - {{ a: f, b: s2, latency_ns: 10000 }}
  - {{ a: s2, b: b, latency_ns: 10000 }}
"
    )
}

#[test]
fn frames_follow_learned_routes_inside_their_process_and_configured_ones_after() {
    let name = format!("learn-fwd-{}", std::process::id());
    let _removed = common::FabricDir(name.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fabric.yaml");
    std::fs::write(&path, config(&name)).unwrap();
    let cfg = hyperfabric::config::load_fabric_config(&path).unwrap();
    let make = |learning: bool| {
        let mut c = ProtocolConfig::from_config(&cfg).unwrap();
        c.options.enable_ml_routing = learning;
        HyperFabricProtocol::with_config(c).unwrap()
    };
    let (p, q, r) = (make(true), make(false), make(false));
    for n in &cfg.nodes {
        match n.node_id.as_str() {
            "c" => q.register_node(n.clone()).unwrap(),
            "b" => r.register_node(n.clone()).unwrap(),
            _ => p.register_node(n.clone()).unwrap(),
        };
    }
    // P learns nothing by itself (its background services, which would sample the idle
    // links and set their figures back, do not run): its figures are set here. Its engine
    // is polled by its own waits, and by a receive on another thread while c's probes
    // cross f.
    q.start_background_services().unwrap();
    r.start_background_services().unwrap();
    let tm = p.topology().unwrap();
    tm.routing()
        .set_learned_latencies(&[("f".into(), "s1".into(), Some(1_000_000))])
        .unwrap();
    let learned = tm
        .find_shortest_path("a", "b", hyperfabric::Metric::Latency)
        .unwrap();
    assert_eq!(learned, ["a", "f", "s2", "b"], "P's learned route");
    let configured = tm.configured_route("a", "b").unwrap().path;
    assert_eq!(configured, ["a", "f", "s1", "b"], "the configured route");

    let probe_to = |by: &HyperFabricProtocol, from: &str, to: &str| -> Vec<String> {
        by.probe(from, to, 64, PacketPriority::High, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("probe {from} -> {to}: {e}"))
            .path
    };
    let probe = |by: &HyperFabricProtocol, from: &str| probe_to(by, from, "b");
    // Sent by a node of P, the frame stays in P up to s2: P's learned route all the way.
    // (Its answer comes back from b by the configured route, through s1: had P passed it on
    // along its learned route, from s1 back to b, b would have sent it to s1 again, until
    // its hop limit, and the probe would never have been answered.)
    assert_eq!(probe(&p, "a"), ["a", "f", "s2", "b"]);
    assert_eq!(probe(&p, "f"), ["f", "s2", "b"]);
    // Sent by c (another process), the frame reaches P at f: from there on, the configured
    // route, whatever P learned.
    let p = std::sync::Arc::new(p);
    let polling = {
        let p = p.clone();
        common::Stopped::spawn(move |stop| {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let _ = p.recv("s1", Duration::from_millis(5));
            }
        })
    };
    for _ in 0..3 {
        assert_eq!(probe(&q, "c"), ["c", "f", "s1", "b"]);
        assert_eq!(probe_to(&r, "b", "a"), ["b", "s1", "f", "a"]);
    }
    polling.stop();
}

/// With learned routing, link figures reported through the protocol's topology
/// (`update_link_metrics`) move the routes of the next send: the engine's cached next hops
/// follow the routes' generation.
#[test]
fn reported_link_figures_move_the_next_send() {
    let name = format!("learn-rep-{}", std::process::id());
    let _removed = common::FabricDir(name.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fabric.yaml");
    std::fs::write(&path, config(&name)).unwrap();
    let cfg = hyperfabric::config::load_fabric_config(&path).unwrap();
    let p = HyperFabricProtocol::with_config(ProtocolConfig::from_config(&cfg).unwrap()).unwrap();
    for n in &cfg.nodes {
        p.register_node(n.clone()).unwrap();
    }
    let probe = || {
        p.probe("a", "b", 64, PacketPriority::High, Duration::from_secs(10))
            .unwrap()
            .path
    };
    // The configured route, now cached by the engine.
    assert_eq!(probe(), ["a", "f", "s1", "b"]);
    assert_eq!(probe(), ["a", "f", "s1", "b"]);
    // s1 - b measured slow: the next probe avoids it.
    p.topology()
        .unwrap()
        .update_link_metrics("s1", "b", 1_000_000, 0.0, 0.0)
        .unwrap();
    assert_eq!(probe(), ["a", "f", "s2", "b"]);
}
