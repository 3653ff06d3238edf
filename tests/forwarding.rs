//! Multi-hop routes across three processes: `cli` and `srv` are linked only through `sw`, a
//! switch node hosted by a third process whose engine forwards. `ping` reports the 3-node
//! path; requests and their responses, large ones included, cross the switch both ways.

mod common;

use common::{child_var, serve_until_stdin_closes, spawn_peer, FabricDir, Peer};
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::{ErrorKind, LinkSpec};
use std::time::{Duration, Instant};

const ROLE: &str = "HF_FORWARD_TEST_ROLE";
const FABRIC: &str = "HF_FORWARD_TEST_FABRIC";

fn protocol(fabric: &str) -> HyperFabricProtocol {
    HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        links: vec![
            LinkSpec::new("cli", "sw").latency_ns(100),
            LinkSpec::new("sw", "srv").latency_ns(100),
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
