//! Zones of a fabric whose nodes live in two processes: created, filled and enforced by
//! every process (the zone table is host state), admission errors, MEDIUM isolation refused
//! at send, control-plane nodes let through, QUANTUM_SECURE traffic sealed (and refused
//! without a key), and the delivery check that drops what a sender should not have sent.

mod common;

use common::{
    child_var, node, protocol_with_key as protocol, serve_until_stdin_closes, spawn_peer,
    test_key as key, FabricDir,
};
use hyperfabric::codec::FrameKind;
use hyperfabric::engine::{Engine, Outgoing};
use hyperfabric::fabric::SendOptions;
use hyperfabric::model::{DataType, FabricZone, IsolationLevel, PacketPriority, ZoneType};
use hyperfabric::transport::registry::Registry;
use hyperfabric::ErrorKind;

const ROLE: &str = "HF_ZONES_TEST_ROLE";
const FABRIC: &str = "HF_ZONES_TEST_FABRIC";

fn zone(id: &str, level: IsolationLevel, max_nodes: u32, gbps: f64) -> FabricZone {
    FabricZone::new(id, ZoneType::ComputeCluster, level, max_nodes, gbps).unwrap()
}

/// The peer hosts gpu-b, outsider and sec-b, each answering with its own id.
#[test]
#[ignore = "child process of zones_are_shared_admitted_and_enforced, started by it"]
fn peer_role() {
    assert_eq!(child_var(ROLE), "peer");
    let p = protocol(&child_var(FABRIC), Some(key()));
    for id in ["gpu-b", "outsider", "sec-b"] {
        p.register_node(node(id)).unwrap();
        p.on_receive(id, move |_| Ok(id.as_bytes().to_vec()))
            .unwrap();
    }
    p.start_background_services().unwrap();
    println!("ready");
    serve_until_stdin_closes();
}

#[test]
fn zones_are_shared_admitted_and_enforced() {
    let fabric = format!("test-zones-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric, Some(key()));
    for id in ["gpu-a", "ctl", "sec-a"] {
        p.register_node(node(id)).unwrap();
    }
    let _peer = spawn_peer(&[(ROLE, "peer"), (FABRIC, &fabric)]);
    let opts = SendOptions::default();
    let kind = |r: hyperfabric::Result<bool>| r.unwrap_err().kind();

    // Admission: six nodes of 100 Gbit/s carry 600.
    assert!(p
        .create_zone(zone("train", IsolationLevel::Medium, 2, 300.0))
        .unwrap());
    assert_eq!(
        kind(p.create_zone(zone("train", IsolationLevel::Low, 2, 1.0))),
        ErrorKind::DuplicateZone
    );
    assert_eq!(
        kind(p.create_zone(zone("big", IsolationLevel::Low, 2, 400.0))),
        ErrorKind::InsufficientResources
    );
    p.assign_to_zone("train", "gpu-a").unwrap();
    p.assign_to_zone("train", "gpu-b").unwrap();
    assert_eq!(
        kind(p.assign_to_zone("train", "sec-a")),
        ErrorKind::InsufficientResources,
        "max_nodes is 2"
    );
    assert_eq!(
        kind(p.assign_to_zone("nowhere", "gpu-a")),
        ErrorKind::ZoneNotFound
    );
    assert_eq!(
        kind(p.assign_to_zone("train", "nobody")),
        ErrorKind::NodeNotFound
    );
    let mgmt =
        FabricZone::new("mgmt", ZoneType::ControlPlane, IsolationLevel::None, 4, 1.0).unwrap();
    p.create_zone(mgmt).unwrap();
    p.assign_to_zone("mgmt", "ctl").unwrap();

    // Another process sees the same zones.
    let other = protocol(&fabric, None);
    let info = other.get_topology_info().unwrap();
    let ids: Vec<&str> = info.zones.iter().map(|z| z.zone_id.as_str()).collect();
    assert_eq!(ids, ["train", "mgmt"]);

    // MEDIUM: members talk, outsiders are refused before sending, control plane passes.
    assert_eq!(
        p.send_data("gpu-a", "gpu-b", b"x", &opts).unwrap(),
        b"gpu-b"
    );
    let e = p.send_data("gpu-a", "outsider", b"x", &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ZoneIsolationViolation, "{e}");
    assert_eq!(p.send_data("ctl", "gpu-b", b"x", &opts).unwrap(), b"gpu-b");
    p.unassign_from_zone("train", "gpu-a").unwrap();
    assert_eq!(
        kind(p.unassign_from_zone("train", "gpu-a")),
        ErrorKind::NodeNotFound
    );
    let e = p.send_data("gpu-a", "gpu-b", b"x", &opts).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::ZoneIsolationViolation,
        "no longer a member: {e}"
    );
    p.delete_zone("train").unwrap();
    assert_eq!(kind(p.delete_zone("train")), ErrorKind::ZoneNotFound);
    assert_eq!(
        p.send_data("gpu-a", "outsider", b"x", &opts).unwrap(),
        b"outsider"
    );

    // QUANTUM_SECURE: traffic is sealed with the fabric key; without a key it is refused.
    p.create_zone(zone("vault", IsolationLevel::QuantumSecure, 4, 10.0))
        .unwrap();
    p.assign_to_zone("vault", "sec-a").unwrap();
    p.assign_to_zone("vault", "sec-b").unwrap();
    assert_eq!(
        p.send_data("sec-a", "sec-b", b"x", &opts).unwrap(),
        b"sec-b"
    );
    other.register_node(node("sec-c")).unwrap();
    p.assign_to_zone("vault", "sec-c").unwrap();
    let e = other.send_data("sec-c", "sec-b", b"x", &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ZoneIsolationViolation, "{e}");
    assert!(e.to_string().contains("no fabric key"), "{e}");
}

/// An engine without the protocol's send-side checks (as a sender with a stale view would
/// be): the receiving process's delivery check drops the message and answers with the error.
#[test]
fn the_receiver_drops_what_the_zone_forbids() {
    let fabric = format!("test-zones-delivery-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric, None);
    p.register_node(node("inside")).unwrap();
    p.on_receive("inside", |_| Ok(b"delivered".to_vec()))
        .unwrap();
    p.register_node(node("member")).unwrap();
    p.create_zone(zone("closed", IsolationLevel::High, 4, 10.0))
        .unwrap();
    p.assign_to_zone("closed", "inside").unwrap();
    p.assign_to_zone("closed", "member").unwrap();
    p.start_background_services().unwrap();

    let mut e = Engine::new(Registry::open(&fabric).unwrap(), None, 65536);
    let src = e.register(&node("rogue")).unwrap();
    let dst = e.resolve("inside").unwrap();
    let id = e.new_request(&dst);
    let o = Outgoing {
        kind: FrameKind::Data,
        request_id: id,
        priority: PacketPriority::Medium,
        data_type: DataType::Generic,
        one_way: false,
        metadata: &[],
        framed: false,
        coalesced: false,
    };
    assert!(
        e.try_send_from(src, dst.index, &o, b"let me in", 0)
            .unwrap()
            .unwrap()
            .1
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let result = loop {
        e.poll();
        if let Some(r) = e.take_result(id) {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "no answer");
    };
    assert_eq!(
        result.unwrap_err().kind(),
        ErrorKind::ZoneIsolationViolation
    );
    // A member is delivered.
    assert_eq!(
        p.send_data("member", "inside", b"x", &SendOptions::default())
            .unwrap(),
        b"delivered"
    );
}

/// LOW isolation: traffic across the boundary of a zone with a reservation is paced at the
/// member's bandwidth less its share of the reservation (here 1 Gbit/s less 0.98: 2.5 MB/s),
/// both ways; traffic between members is not.
#[test]
fn low_isolation_limits_the_rate_across_the_zone_boundary() {
    let fabric = format!("test-zones-low-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric, None);
    let slow = |id: &str| {
        hyperfabric::model::NodeSignature::new(id, hyperfabric::HardwareType::CpuServer, 1.0, 10)
            .unwrap()
    };
    p.register_node(slow("m")).unwrap();
    p.register_node(slow("m2")).unwrap();
    p.register_node(node("out")).unwrap();
    p.create_zone(zone("low", IsolationLevel::Low, 4, 1.96))
        .unwrap();
    p.assign_to_zone("low", "m").unwrap();
    p.assign_to_zone("low", "m2").unwrap();
    let waits = |p: &hyperfabric::fabric::HyperFabricProtocol| {
        p.get_topology_info().unwrap().performance_metrics["low_isolation_waits"]
    };
    let chunk = vec![5u8; 64 << 10];
    let opts = SendOptions::default();
    // Between members: no limit.
    for _ in 0..32 {
        p.post("m", "m2", &chunk, &opts).unwrap();
        p.recv("m2", opts.timeout).unwrap();
    }
    assert_eq!(waits(&p), 0.0, "traffic inside the zone was paced");
    // Across: 2.5 MB/s each way, so 48 times 64 KiB take 1.23 s at least (the first goes at
    // once, each of the others when the one before it is paid for).
    for (from, to) in [("m", "out"), ("out", "m")] {
        let t0 = std::time::Instant::now();
        for _ in 0..48 {
            p.post(from, to, &chunk, &opts).unwrap();
            p.recv(to, opts.timeout).unwrap();
        }
        let took = t0.elapsed();
        assert!(
            took >= std::time::Duration::from_millis(1200),
            "{from} -> {to}: 3 MiB in {took:?}, above 2.5 MB/s"
        );
    }
    assert!(waits(&p) > 0.0);
    // A send whose deadline comes first fails with a timeout that names the zone.
    let short = SendOptions {
        timeout: std::time::Duration::from_millis(50),
        ..Default::default()
    };
    let big = vec![1u8; 1 << 20];
    p.post("m", "out", &big, &short).unwrap();
    let e = p.post("m", "out", &big, &short).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.to_string().contains("\"low\""), "{e}");
}
