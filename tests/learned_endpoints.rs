//! Endpoints follow learned routes. An endpoint made while its destination is a direct
//! neighbour has a ring of its own to it; when learned routing moves the pair off the
//! congested direct link, the endpoint's next send (its ring drained) goes through the
//! engine, which takes the new route, and its messages still arrive in order.
//!
//! One process hosts every node: a, b and s, and x, whose bulk reaches b only through a, on
//! the link a - b (1 us, 1 Gbit/s). The other way from a to b, through s, is configured slower
//! (10 us links), so routes take the direct link until its load says otherwise.

use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::{DataType, PacketPriority};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(name: &str) -> String {
    format!(
        "\
fabric:
  name: {name}
  protocol: {{ enable_ml_routing: true }}
nodes:
  - {{ node_id: a, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}
  - {{ node_id: b, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}
  - {{ node_id: s, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}
  - {{ node_id: x, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}
links:
  - {{ a: a, b: b, latency_ns: 1000, bandwidth_gbps: 1 }}
  - {{ a: x, b: a, latency_ns: 1000, bandwidth_gbps: 100 }}
  - {{ a: a, b: s, latency_ns: 10000, bandwidth_gbps: 100 }}
  - {{ a: s, b: b, latency_ns: 10000, bandwidth_gbps: 100 }}
"
    )
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[test]
fn an_endpoint_leaves_its_ring_when_learned_routes_leave_the_direct_link() {
    let name = format!("learn-ep-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fabric.yaml");
    std::fs::write(&path, config(&name)).unwrap();
    let cfg = hyperfabric::config::load_fabric_config(&path).unwrap();
    let p = Arc::new(
        HyperFabricProtocol::with_config(ProtocolConfig::from_config(&cfg).unwrap()).unwrap(),
    );
    for n in &cfg.nodes {
        p.register_node(n.clone()).unwrap();
    }
    p.start_background_services().unwrap();
    let mut ep = p.endpoint("a", "b").unwrap();
    assert!(format!("{ep:?}").contains("own_ring: true"), "{ep:?}");
    let mut sent = 0u64;
    ep.post(&sent.to_le_bytes()).unwrap();
    sent += 1;

    // Bulk from x to b over a - b, and b taking everything.
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let bulk = {
        let (p, flag) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            let data = vec![5u8; 1 << 20];
            let opts = SendOptions {
                data_type: DataType::Generic,
                priority: PacketPriority::Bulk,
                ..SendOptions::default()
            };
            while !flag.load(Ordering::Acquire) {
                if p.post("x", "b", &data, &opts).is_err() {
                    break;
                }
            }
        })
    };
    let mut got = Vec::new();
    let take = |p: &HyperFabricProtocol, got: &mut Vec<u64>| {
        while let Ok(m) = p.recv("b", Duration::ZERO) {
            if m.data.len() == 8 {
                got.push(u64::from_le_bytes(m.data[..8].try_into().unwrap()));
            }
        }
    };
    let end = Instant::now() + Duration::from_secs(30);
    let handovers = || p.get_topology_info().unwrap().performance_metrics["learned_handovers"];
    while handovers() < 1.0 {
        assert!(Instant::now() < end, "learned routing never moved a route");
        ep.post(&sent.to_le_bytes()).unwrap();
        sent += 1;
        take(&p, &mut got);
        std::thread::sleep(Duration::from_millis(5));
    }
    // The next sends move the endpoint to the engine, once b took what its ring held.
    while format!("{ep:?}").contains("own_ring: true") {
        assert!(Instant::now() < end, "the endpoint kept its ring: {ep:?}");
        ep.post(&sent.to_le_bytes()).unwrap();
        sent += 1;
        take(&p, &mut got);
    }
    stop.store(true, Ordering::Release);
    bulk.join().unwrap();
    for _ in 0..3 {
        ep.post(&sent.to_le_bytes()).unwrap();
        sent += 1;
    }
    let until = Instant::now() + Duration::from_secs(10);
    while (got.len() as u64) < sent {
        assert!(Instant::now() < until, "{} of {sent} arrived", got.len());
        take(&p, &mut got);
    }
    assert_eq!(
        got,
        (0..sent).collect::<Vec<_>>(),
        "every send, once, in order"
    );
    drop(ep);
    drop(p);
    let _ = HyperFabricProtocol::remove_fabric(&name);
}
