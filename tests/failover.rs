//! Failure detection across processes: `cli` reaches `srv` through `sw1` (fast) or `sw2`
//! (slow), each switch hosted by another process. When the process hosting `sw1` stops (it
//! is alive but its engine sends no heartbeats), the others mark `sw1` down within a few
//! heartbeat intervals, routes are rebuilt and traffic goes through `sw2`; when it resumes,
//! `sw1` is up again and carries the traffic.

mod common;

use common::{child_var, serve_until_stdin_closes, spawn_peer, FabricDir, Peer};
use hyperfabric::engine::{HEARTBEAT_INTERVAL, HEARTBEAT_MISSES};
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::transport::registry::Registry;
use hyperfabric::LinkSpec;
use std::time::{Duration, Instant};

const ROLE: &str = "HF_FAILOVER_TEST_ROLE";
const FABRIC: &str = "HF_FAILOVER_TEST_FABRIC";

fn protocol(fabric: &str) -> HyperFabricProtocol {
    HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        links: vec![
            LinkSpec::new("cli", "sw1").latency_ns(100),
            LinkSpec::new("sw1", "srv").latency_ns(100),
            LinkSpec::new("cli", "sw2").latency_ns(1000),
            LinkSpec::new("sw2", "srv").latency_ns(1000),
        ],
        ..Default::default()
    })
    .unwrap()
}

fn switch(id: &str) -> NodeSignature {
    NodeSignature::new(id, HardwareType::NetworkSwitch, 400.0, 50).unwrap()
}

#[test]
#[ignore = "child process of the tests in this file, started by them"]
fn peer_role() {
    let p = protocol(&child_var(FABRIC));
    match child_var(ROLE).as_str() {
        "sw1" => {
            p.register_node(switch("sw1")).unwrap();
        }
        "sw2-and-server" => {
            p.register_node(switch("sw2")).unwrap();
            p.register_node(
                NodeSignature::new("srv", HardwareType::StorageArray, 200.0, 10).unwrap(),
            )
            .unwrap();
            p.on_receive("srv", |m| Ok(m.data.to_vec())).unwrap();
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

fn signal(peer: &Peer, sig: i32) {
    // SAFETY: kill only sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(peer.0.id() as i32, sig) }, 0);
}

fn sw1_up(p: &HyperFabricProtocol) -> bool {
    p.topology().unwrap().read(|t| t.node_up("sw1")).unwrap()
}

/// Waits until `cond` holds; returns how long it took.
fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

#[test]
fn a_stopped_switch_is_marked_down_and_routed_around() {
    let fabric = format!("test-failover-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric);
    p.register_node(NodeSignature::new("cli", HardwareType::NvidiaH100, 400.0, 10).unwrap())
        .unwrap();
    p.start_background_services().unwrap();
    let sw1 = spawn("sw1", &fabric);
    let _rest = spawn("sw2-and-server", &fabric);
    let path = |p: &HyperFabricProtocol| p.ping("cli", "srv", 64, 200).map(|r| r.path);

    assert_eq!(path(&p).unwrap(), ["cli", "sw1", "srv"]);
    // Heartbeats keep a live switch up: it stays up while its heartbeats (read in the
    // registry) span the silence after which a node is marked down, and a few detection
    // rounds more.
    let registry = Registry::open(&fabric).unwrap();
    let sw1_index = registry.lookup("sw1").unwrap().unwrap().index;
    let first = registry.heartbeat(sw1_index);
    assert!(first > 0, "sw1 sends heartbeats");
    let span = (HEARTBEAT_INTERVAL * (HEARTBEAT_MISSES + 3)).as_nanos() as u64;
    within(Duration::from_secs(5), || {
        assert!(sw1_up(&p), "a switch that sends heartbeats was marked down");
        registry.heartbeat(sw1_index) > first + span
    });

    signal(&sw1, libc::SIGSTOP);
    let took = within(Duration::from_secs(5), || !sw1_up(&p));
    eprintln!("sw1 marked down {took:?} after it stopped");
    within(Duration::from_secs(5), || {
        path(&p).is_ok_and(|x| x == ["cli", "sw2", "srv"])
    });
    let got = p
        .send_data("cli", "srv", b"around", &SendOptions::default())
        .unwrap();
    assert_eq!(got, b"around");

    signal(&sw1, libc::SIGCONT);
    within(Duration::from_secs(5), || sw1_up(&p));
    within(Duration::from_secs(5), || {
        path(&p).is_ok_and(|x| x == ["cli", "sw1", "srv"])
    });
}

fn protocol_silent_after(fabric: &str, down_after: Duration) -> HyperFabricProtocol {
    HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        down_after,
        ..Default::default()
    })
    .unwrap()
}

/// Each process marks a stopped node down after its own silence limit
/// (`ProtocolConfig::down_after`): one that allows 60 ms marks it down while one that
/// allows 1.5 s still routes through it, and the latter only once the node was silent that
/// long.
#[test]
fn the_silence_limit_of_a_node_is_configurable() {
    let fabric = format!("test-failover-limit-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let quick = protocol_silent_after(&fabric, Duration::from_millis(60));
    let patient = protocol_silent_after(&fabric, Duration::from_millis(1500));
    for (p, id) in [(&quick, "q"), (&patient, "p")] {
        p.register_node(NodeSignature::new(id, HardwareType::CpuServer, 100.0, 10).unwrap())
            .unwrap();
        p.start_background_services().unwrap();
    }
    let sw1 = spawn("sw1", &fabric);
    let registry = Registry::open(&fabric).unwrap();
    let sw1_index = registry.lookup("sw1").unwrap().unwrap().index;
    within(Duration::from_secs(5), || {
        registry.heartbeat(sw1_index) > 0 && sw1_up(&quick) && sw1_up(&patient)
    });
    let silence = || {
        Duration::from_nanos(
            hyperfabric::sys::monotonic_ns().saturating_sub(registry.heartbeat(sw1_index)),
        )
    };

    signal(&sw1, libc::SIGSTOP);
    within(Duration::from_secs(5), || !sw1_up(&quick));
    let (quiet, patient_up) = (silence(), sw1_up(&patient));
    assert!(quiet >= Duration::from_millis(60), "down after {quiet:?}");
    if quiet < Duration::from_millis(1400) {
        assert!(patient_up, "marked down after {quiet:?} of 1.5 s allowed");
    }
    within(Duration::from_secs(10), || !sw1_up(&patient));
    let quiet = silence();
    assert!(quiet >= Duration::from_millis(1500), "down after {quiet:?}");
    signal(&sw1, libc::SIGCONT);
    within(Duration::from_secs(5), || {
        sw1_up(&quick) && sw1_up(&patient)
    });

    let too_short = HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.clone()),
        down_after: Duration::from_millis(5),
        ..Default::default()
    });
    let Err(e) = too_short else {
        panic!("a silence limit of 5 ms was accepted")
    };
    assert_eq!(e.kind(), hyperfabric::ErrorKind::Config, "{e}");
}
