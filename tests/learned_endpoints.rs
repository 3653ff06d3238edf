//! Endpoints follow learned routes. An endpoint made while its destination is a direct
//! neighbour has a ring of its own to it; when learned routing moves the pair off the
//! congested direct link, the endpoint's next send (its ring drained) goes through the
//! engine, which takes the new route; when the routes come back, the endpoint takes a ring
//! of its own again. Its messages arrive in order throughout.
//!
//! One protocol, learning, hosts a and s, and x, whose bulk reaches b only through a, on the
//! link a - b (1 us, 1 Gbit/s). The other way from a to b, through s, is configured slower
//! (10 us links), so routes take the direct link until its load says otherwise. A second
//! protocol of this process hosts b: b's rings are files, as between processes.

mod common;

use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::{DataType, PacketPriority};
use hyperfabric::ErrorKind;
use std::sync::atomic::Ordering;
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

#[test]
fn an_endpoint_leaves_its_ring_when_learned_routes_leave_the_direct_link() {
    let name = format!("learn-ep-{}", std::process::id());
    let _removed = common::FabricDir(name.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fabric.yaml");
    std::fs::write(&path, config(&name)).unwrap();
    let cfg = hyperfabric::config::load_fabric_config(&path).unwrap();
    let make =
        || HyperFabricProtocol::with_config(ProtocolConfig::from_config(&cfg).unwrap()).unwrap();
    let (p, pb) = (Arc::new(make()), make());
    for n in &cfg.nodes {
        if n.node_id == "b" {
            pb.register_node(n.clone()).unwrap();
        } else {
            p.register_node(n.clone()).unwrap();
        }
    }
    // A handler (run while x's engine is held) sends through an endpoint made before: after
    // the routes move, that endpoint keeps its ring (the engine would refuse the handler).
    let inside = Arc::new(std::sync::Mutex::new(p.endpoint("a", "b").unwrap()));
    let held = inside.clone();
    p.on_receive("x", move |m| {
        held.lock().unwrap().post(&m.data)?;
        Ok(Vec::new())
    })
    .unwrap();
    p.start_background_services().unwrap();
    pb.start_background_services().unwrap();
    let mut ep = p.endpoint("a", "b").unwrap();
    assert!(format!("{ep:?}").contains("own_ring: true"), "{ep:?}");
    let mut sent = 0u64;
    ep.post(&sent.to_le_bytes()).unwrap();
    sent += 1;
    let quick = SendOptions {
        timeout: Duration::from_millis(20),
        ..SendOptions::default()
    };

    // Bulk from x to b over a - b, and b taking everything.
    let bulk = {
        let p = p.clone();
        common::Stopped::spawn(move |flag| {
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
    let handled = std::cell::Cell::new(0u32);
    let take = |got: &mut Vec<u64>| {
        while let Ok(m) = pb.recv("b", Duration::ZERO) {
            match m.data.len() {
                8 => got.push(u64::from_le_bytes(m.data[..8].try_into().unwrap())),
                9 => handled.set(handled.get() + 1),
                _ => {}
            }
        }
    };
    // Sends `n` through the endpoint, taking what b received while there is no room (bulk
    // fills b's queue): never waits long for room with nothing taken.
    let send = |ep: &mut hyperfabric::fabric::Endpoint, n: u64, got: &mut Vec<u64>| {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            match ep.post_with(&n.to_le_bytes(), &quick) {
                Ok(()) => return,
                Err(e) if e.kind() == ErrorKind::Timeout && Instant::now() < until => take(got),
                Err(e) => panic!("send {n}: {e}"),
            }
        }
    };
    let end = Instant::now() + Duration::from_secs(30);
    let handovers = || p.get_topology_info().unwrap().performance_metrics["learned_handovers"];
    while handovers() < 1.0 {
        assert!(Instant::now() < end, "learned routing never moved a route");
        send(&mut ep, sent, &mut got);
        sent += 1;
        take(&mut got);
        std::thread::sleep(Duration::from_millis(5));
    }
    // Sends through the fast path (`post`) until the endpoint moved: it moves at a send that
    // finds everything in its ring taken, so what it sent before and after arrive in order.
    while format!("{ep:?}").contains("own_ring: true") {
        assert!(Instant::now() < end, "the endpoint kept its ring: {ep:?}");
        ep.post(&sent.to_le_bytes()).unwrap();
        sent += 1;
        take(&mut got);
    }
    p.post("s", "x", &[9u8; 9], &SendOptions::default())
        .unwrap();
    drop(bulk);
    for _ in 0..3 {
        send(&mut ep, sent, &mut got);
        sent += 1;
    }
    // With the bulk stopped, the routes come back to the direct link (after the dwell), and
    // the endpoint takes a ring of its own again once the engine holds nothing of the pair.
    let back = Instant::now() + Duration::from_secs(30);
    while !format!("{ep:?}").contains("own_ring: true") {
        assert!(
            Instant::now() < back,
            "the endpoint never took a ring again: {ep:?}, {} hand-overs",
            handovers()
        );
        send(&mut ep, sent, &mut got);
        sent += 1;
        take(&mut got);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(handovers() >= 2.0, "back on a ring before routes came back");
    for _ in 0..100 {
        ep.post(&sent.to_le_bytes()).unwrap();
        sent += 1;
    }
    let until = Instant::now() + Duration::from_secs(10);
    while (got.len() as u64) < sent {
        assert!(Instant::now() < until, "{} of {sent} arrived", got.len());
        take(&mut got);
    }
    assert_eq!(
        got,
        (0..sent).collect::<Vec<_>>(),
        "every send, once, in order"
    );
    while handled.get() == 0 {
        assert!(Instant::now() < until, "the handler's send never arrived");
        take(&mut got);
    }
    let inside = inside.lock().unwrap();
    assert!(
        format!("{inside:?}").contains("own_ring: true"),
        "{inside:?}"
    );
    drop(inside);
    drop(ep);
    drop(p);
    drop(pb);
}
