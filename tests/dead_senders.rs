//! Senders killed with SIGKILL in the middle of 256 MiB messages leave nothing behind in
//! their receiver: its half-received messages are freed, the dead senders' rings and segments
//! unmapped, and its anonymous memory and mappings return to where they started. The receiver
//! is this process (one test in this binary, so no other test's memory mixes in).

mod common;

use common::{node, protocol, FabricDir};
use hyperfabric::fabric::{HyperFabricProtocol, SendOptions};
use hyperfabric::PacketPriority;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

const SENDERS: usize = 20;
const MESSAGE: usize = 256 << 20;
const FABRIC: &str = "HF_DEAD_SENDERS_FABRIC";
const NAME: &str = "HF_DEAD_SENDERS_NODE";

/// Child process of `killed_senders_leave_nothing_behind`: posts one 256 MiB message to `rx`
/// and is killed before it ends.
#[test]
#[ignore = "child process of killed_senders_leave_nothing_behind, started by it"]
fn child_posts_a_large_message() {
    let fabric = common::child_var(FABRIC);
    let name = std::env::var(NAME).unwrap();
    // Through the engine's rings, whose reassembly the parent watches (a thread's endpoint
    // would have the receiving call assemble the message in place).
    let p = common::engine_protocol(&fabric);
    p.register_node(node(&name)).unwrap();
    let data = vec![0x3cu8; MESSAGE];
    println!("ready");
    let opts = SendOptions {
        priority: PacketPriority::Bulk,
        timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let _ = p.post(&name, "rx", &data, &opts);
    std::thread::sleep(Duration::from_secs(60));
}

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn fabric_mappings(dir: &str) -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir))
        .count()
}

fn metric(p: &HyperFabricProtocol, k: &str) -> u64 {
    p.get_topology_info().unwrap().performance_metrics[k] as u64
}

#[test]
fn killed_senders_leave_nothing_behind() {
    let dir = FabricDir(format!("dead-senders-{}", std::process::id()));
    let rx = protocol(&dir.0);
    rx.register_node(node("rx")).unwrap();
    rx.start_background_services().unwrap();
    let root = hyperfabric::sys::state_root().join(&dir.0);
    let root = root.to_str().unwrap().to_owned();
    // Warm up: a whole large message from a sender that stays, so the receiver's own
    // allocations and mappings are counted in the baseline.
    let warm = protocol(&dir.0);
    warm.register_node(node("warm")).unwrap();
    warm.post("warm", "rx", &vec![1u8; 8 << 20], &SendOptions::default())
        .unwrap();
    assert_eq!(
        rx.recv("rx", Duration::from_secs(10)).unwrap().data.len(),
        8 << 20
    );
    let rss_before = status_kib("RssAnon:");
    let maps_before = fabric_mappings(&root);
    let mut peak = 0;
    let (mut killed, mut attempts) = (0, 0);
    while killed < SENDERS {
        attempts += 1;
        assert!(
            attempts <= 3 * SENDERS,
            "senders kept finishing before they were killed"
        );
        let k = killed;
        let name = format!("s{attempts}");
        let mut child = common::child_command("child_posts_a_large_message")
            .env(FABRIC, &dir.0)
            .env(NAME, &name)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(
            lines.any(|l| l.unwrap().contains("ready")),
            "sender {k} not ready"
        );
        // Kill it once a good part of its message arrived (and none of it completed). A
        // sender the receiver kept up with may finish first: its message is whole, not what
        // this test is about, and another sender takes its turn.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut finished = false;
        while metric(&rx, "reassembly_bytes") < 32 << 20 {
            if let Ok(m) = rx.recv("rx", Duration::ZERO) {
                assert_eq!(m.data.len(), MESSAGE, "a half message was delivered");
                finished = true;
                break;
            }
            assert!(Instant::now() < deadline, "sender {k} sent nothing");
            std::thread::sleep(Duration::from_millis(1));
        }
        peak = peak.max(status_kib("RssAnon:"));
        child.kill().unwrap();
        child.wait().unwrap();
        if finished {
            continue;
        }
        killed += 1;
        // The next sender starts once this one's half message is freed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric(&rx, "reassemblies") > 0 {
            assert!(Instant::now() < deadline, "half message of sender {k} kept");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert_eq!(metric(&rx, "abandoned_reassemblies"), SENDERS as u64);
    assert!(
        rx.recv("rx", Duration::from_millis(100)).is_err(),
        "a half message was delivered"
    );
    // Unmapping follows the liveness check; wait for it, then compare.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fabric_mappings(&root) > maps_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss_after = status_kib("RssAnon:");
    let maps_after = fabric_mappings(&root);
    println!(
        "RssAnon: {} MiB before, {} MiB at the largest half message, {} MiB after {SENDERS} \
         killed senders; fabric mappings: {maps_before} before, {maps_after} after",
        rss_before >> 10,
        peak >> 10,
        rss_after >> 10
    );
    assert!(
        rss_after < rss_before + (48 << 10),
        "RssAnon grew from {rss_before} to {rss_after} KiB"
    );
    assert_eq!(maps_after, maps_before, "mappings of dead senders left");
}
