//! Multi-hop routes across three processes: `cli` and `srv` are linked only through `sw`, a
//! switch node hosted by a third process whose engine forwards. `ping` reports the 3-node
//! path; requests and their responses, large ones included, cross the switch both ways.

mod common;

use common::{child_var, serve_until_stdin_closes, spawn_peer, FabricDir, Peer};
use hyperfabric::engine::{BULK_SLOTS, INBOX_MESSAGES, LATENCY_SLOTS, MSG_HEADER, SEQ_EXT};
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::PacketPriority;
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::ring::INLINE_PAYLOAD;
use hyperfabric::{ErrorKind, LinkSpec};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const ROLE: &str = "HF_FORWARD_TEST_ROLE";
const FABRIC: &str = "HF_FORWARD_TEST_FABRIC";

fn protocol(fabric: &str) -> HyperFabricProtocol {
    HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        links: vec![
            LinkSpec::new("cli", "sw").latency_ns(100),
            LinkSpec::new("sw", "srv").latency_ns(100),
            LinkSpec::new("a", "sw").latency_ns(100),
            LinkSpec::new("sw", "c").latency_ns(100),
            LinkSpec::new("d", "e").latency_ns(100),
        ],
        ..Default::default()
    })
    .unwrap()
}

#[test]
#[ignore = "child process of a_switch_in_a_third_process_forwards_both_ways, started by it"]
fn peer_role() {
    let p = protocol(&child_var(FABRIC));
    match child_var(ROLE).as_str() {
        "switch" => {
            p.register_node(
                NodeSignature::new("sw", HardwareType::NetworkSwitch, 400.0, 50).unwrap(),
            )
            .unwrap();
        }
        "receiver" => {
            // The far end of a hop that fills: it reads nothing until told, then checks that
            // every message came, in order.
            p.register_node(NodeSignature::new("c", HardwareType::NvidiaH100, 400.0, 100).unwrap())
                .unwrap();
            p.start_background_services().unwrap();
            println!("ready");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            for i in 0..HELD_MESSAGES {
                let m = p.recv("c", Duration::from_secs(30)).unwrap();
                assert_eq!(m.data, i.to_le_bytes(), "message {i} of {HELD_MESSAGES}");
            }
            let extra = p.recv("c", Duration::from_millis(100));
            assert!(extra.is_err(), "a message more than was sent: {extra:?}");
            return;
        }
        "server" => {
            p.register_node(
                NodeSignature::new("srv", HardwareType::StorageArray, 200.0, 500).unwrap(),
            )
            .unwrap();
            p.on_receive("srv", |m| Ok(m.data.iter().rev().copied().collect()))
                .unwrap();
        }
        other => panic!("unknown role {other}"),
    }
    p.start_background_services().unwrap();
    println!("ready");
    serve_until_stdin_closes();
}

/// More messages than the receiver's queue (65,536) and the rings of both hops hold.
const HELD_MESSAGES: u32 = 70_000;

fn spawn(role: &str, fabric: &str) -> Peer {
    spawn_peer(&[(ROLE, role), (FABRIC, fabric)])
}

#[test]
fn a_switch_in_a_third_process_forwards_both_ways() {
    let fabric = format!("test-forward-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric);
    p.register_node(NodeSignature::new("cli", HardwareType::NvidiaH100, 400.0, 100).unwrap())
        .unwrap();
    p.start_background_services().unwrap();
    let mut switch = spawn("switch", &fabric);
    let _server = spawn("server", &fabric);

    let r = p.ping("cli", "srv", 64, 5000).unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(r.path, ["cli", "sw", "srv"]);
    assert_eq!(r.packet_loss_rate, 0.0);
    let route = p
        .topology()
        .unwrap()
        .shortest_route("cli", "srv", hyperfabric::Metric::Latency)
        .unwrap();
    assert_eq!(route.path, ["cli", "sw", "srv"]);

    for size in [0usize, 8, 4096, (1 << 20) + 1] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let got = p
            .send_data("cli", "srv", &data, &SendOptions::default())
            .unwrap();
        assert!(got.iter().eq(data.iter().rev()), "size {size}");
    }
    // 100 ns + 100 + 50 + 100 + 500: a 500 ns constraint cannot be met through the switch.
    let strict = SendOptions {
        latency_constraint_ns: Some(500),
        ..Default::default()
    };
    assert_eq!(
        p.send_data("cli", "srv", b"x", &strict).unwrap_err().kind(),
        ErrorKind::LatencyConstraintViolation
    );

    // Without the switch there is no route: once this process has noticed the switch's
    // process died (its node leaves the topology), sends fail at once.
    switch.0.kill().unwrap();
    switch.0.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.get_topology_info().unwrap().total_nodes != 2 {
        assert!(
            Instant::now() < deadline,
            "the dead switch is still in the topology"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let e = p
        .send_data("cli", "srv", b"x", &SendOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoRouteFound, "{e}");
}

fn metric(p: &HyperFabricProtocol, name: &str) -> f64 {
    p.get_topology_info().unwrap().performance_metrics[name]
}

/// A forwarder whose next ring is full (its reader reads nothing) leaves the frames where
/// they are and goes on serving everyone else: requests between two other nodes of its
/// process are answered meanwhile, the sender waits for room, and once the reader reads,
/// every message arrives once and in order.
#[test]
fn a_full_hop_pushes_back_without_holding_up_the_forwarder() {
    let fabric = format!("test-forward-held-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = std::sync::Arc::new(protocol(&fabric));
    for id in ["a", "sw", "d", "e"] {
        p.register_node(NodeSignature::new(id, HardwareType::NvidiaH100, 400.0, 100).unwrap())
            .unwrap();
    }
    p.on_receive("e", |m| Ok(m.data.iter().rev().copied().collect()))
        .unwrap();
    p.start_background_services().unwrap();
    let mut receiver = spawn("receiver", &fabric);
    let route = p
        .topology()
        .unwrap()
        .shortest_route("a", "c", hyperfabric::Metric::Latency)
        .unwrap();
    assert_eq!(route.path, ["a", "sw", "c"]);
    let errors = metric(&p, "errors");

    let posted = std::sync::Arc::new(AtomicU32::new(0));
    let poster = {
        let (p, posted) = (p.clone(), posted.clone());
        std::thread::spawn(move || {
            let opts = SendOptions {
                timeout: Duration::from_secs(60),
                ..Default::default()
            };
            for i in 0..HELD_MESSAGES {
                p.post("a", "c", &i.to_le_bytes(), &opts)
                    .unwrap_or_else(|e| panic!("post {i}: {e}"));
                posted.store(i + 1, Ordering::Relaxed);
            }
        })
    };
    // The receiver's queue fills, then the ring from sw to c: forwarding stops there. Once
    // more messages were posted than those two hold, some wait in the ring from a to sw,
    // and stay there until the receiver reads.
    let lane = if PacketPriority::default().is_latency_lane() {
        LATENCY_SLOTS
    } else {
        BULK_SLOTS
    };
    // Each message takes two slots: slot header, message header and the sequence extension
    // of a route through a forwarder (fault tolerance is on by default), then its 4 bytes.
    let slots_per_message = (MSG_HEADER + SEQ_EXT + 4).div_ceil(INLINE_PAYLOAD);
    let beyond = (INBOX_MESSAGES + lane / slots_per_message) as u32 + 1;
    let deadline = Instant::now() + Duration::from_secs(60);
    while posted.load(Ordering::Relaxed) < beyond || metric(&p, "forwards_waiting") == 0.0 {
        assert!(
            !poster.is_finished(),
            "every post went through a hop that reads nothing"
        );
        assert!(
            Instant::now() < deadline,
            "the hop never filled, or the forwarder stopped serving while it was full"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The engine that holds those frames answers other requests at once.
    let quick = SendOptions {
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    for i in 0..20u8 {
        let got = p.send_data("d", "e", &[i, 1, 2], &quick).unwrap();
        assert_eq!(got, [2, 1, i]);
    }
    assert!(!poster.is_finished(), "the sender did not wait for room");
    assert!(metric(&p, "forwards_waiting") > 0.0);
    assert!(metric(&p, "forward_stalls") > 0.0);

    receiver.send_line("go");
    poster.join().expect("every post is taken");
    let status = receiver.0.wait().unwrap();
    assert!(
        status.success(),
        "the receiver missed or reordered messages: {status}"
    );
    assert_eq!(metric(&p, "errors"), errors, "forwarding dropped frames");
}
