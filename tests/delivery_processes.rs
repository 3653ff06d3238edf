//! End-to-end delivery across processes when processes die: a forwarder killed in the middle
//! of a message (the message arrives whole, once, along the other route), and a sender
//! killed with messages in flight (the receiver frees what it held for it).

mod common;

use common::{checksum, child_var, serve_until_stdin_closes, spawn_peer, FabricDir, Peer};
use hyperfabric::engine::KEPT_BYTES;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::{HardwareType, NodeSignature, PacketPriority};
use hyperfabric::LinkSpec;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLE: &str = "HF_DELIVERY_TEST_ROLE";
const FABRIC: &str = "HF_DELIVERY_TEST_FABRIC";
const TAG: &str = "HF_DELIVERY_TEST_TAG";

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

fn node(id: &str, kind: HardwareType) -> NodeSignature {
    NodeSignature::new(id, kind, 400.0, 50).unwrap()
}

#[test]
#[ignore = "child process of the tests of this file, started by them"]
fn peer_role() {
    let p = protocol(&child_var(FABRIC));
    match child_var(ROLE).as_str() {
        "sw1" => {
            p.register_node(node("sw1", HardwareType::NetworkSwitch))
                .unwrap();
        }
        "sw2" => {
            p.register_node(node("sw2", HardwareType::NetworkSwitch))
                .unwrap();
        }
        "sender" => {
            // Sends large messages until killed.
            p.register_node(node("cli", HardwareType::CpuServer))
                .unwrap();
            p.start_background_services().unwrap();
            let opts = SendOptions {
                priority: PacketPriority::Bulk,
                timeout: Duration::from_secs(60),
                ..Default::default()
            };
            println!("ready");
            let data = vec![7u8; 1 << 20];
            loop {
                let _ = p.post("cli", "srv", &data, &opts);
            }
        }
        "receiver" => {
            // Hosts srv and prints the number of every message it receives.
            p.register_node(node("srv", HardwareType::StorageArray))
                .unwrap();
            p.start_background_services().unwrap();
            println!("ready");
            loop {
                if let Ok(m) = p.recv("srv", Duration::from_secs(60)) {
                    let n = u32::from_le_bytes(m.data[..4].try_into().unwrap());
                    println!("got {n}");
                }
            }
        }
        "poster" => {
            // Posts 300 numbered messages tagged with this process's tag, then serves.
            p.register_node(node("cli", HardwareType::CpuServer))
                .unwrap();
            p.start_background_services().unwrap();
            let tag = child_var(TAG).into_bytes()[0];
            println!("ready");
            for n in 0..300u32 {
                let mut m = vec![tag];
                m.extend_from_slice(&n.to_le_bytes());
                p.post("cli", "srv", &m, &SendOptions::default()).unwrap();
            }
            println!("posted");
            serve_until_stdin_closes();
            return;
        }
        other => panic!("unknown role {other}"),
    }
    p.start_background_services().unwrap();
    println!("ready");
    serve_until_stdin_closes();
}

fn spawn(role: &str, fabric: &str, faults: Option<&str>) -> Peer {
    let mut env = vec![(ROLE, role), (FABRIC, fabric)];
    if let Some(f) = faults {
        env.push(("HF_FAULTS", f));
    }
    spawn_peer(&env)
}

fn kill(peer: &Peer) {
    // SAFETY: kill only sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(peer.0.id() as i32, libc::SIGKILL) }, 0);
}

fn metric(p: &HyperFabricProtocol, name: &str) -> f64 {
    p.get_topology_info().unwrap().performance_metrics[name]
}

/// Waits until `cond` holds.
fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A 64 MiB request goes out through sw1, whose process holds every frame 30 ms (injected
/// delay) and is killed once the first fragments were acknowledged: the rest is sent again
/// through sw2, and the handler sees the whole message exactly once.
#[test]
fn a_forwarder_killed_in_the_middle_of_a_message_leaves_it_whole() {
    let fabric = format!("test-deliv-kill-fwd-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = Arc::new(protocol(&fabric));
    p.register_node(node("cli", HardwareType::CpuServer))
        .unwrap();
    p.register_node(node("srv", HardwareType::StorageArray))
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    {
        let calls = calls.clone();
        p.on_receive("srv", move |m| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let mut answer = checksum(&m.data).to_le_bytes().to_vec();
            answer.extend_from_slice(&n.to_le_bytes());
            Ok(answer)
        })
        .unwrap();
    }
    p.start_background_services().unwrap();
    let sw1 = spawn("sw1", &fabric, Some("seed=1,delay=1@30ms"));
    let _sw2 = spawn("sw2", &fabric, None);
    until(Duration::from_secs(10), "routes through sw1", || {
        p.ping("cli", "srv", 64, 500)
            .is_ok_and(|r| r.path == ["cli", "sw1", "srv"])
    });
    // cli and srv share this process, but the route between them crosses sw1's process
    // both ways.
    // Eight times what a stream keeps unacknowledged: when the first acknowledgement comes
    // back (a round trip of at least 60 ms through sw1), most of the message is not sent yet.
    let len = 8 * KEPT_BYTES as u32;
    let data: Vec<u8> = (0..len).map(|i| (i * 31 + i / 4093) as u8).collect();
    let acked = metric(&p, "delivery_acks_received");
    let opts = SendOptions {
        priority: PacketPriority::Bulk,
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let request = p.send_data_nb("cli", "srv", &data, &opts).unwrap();
    until(
        Duration::from_secs(20),
        "first fragments acknowledged",
        || metric(&p, "delivery_acks_received") > acked,
    );
    assert!(
        metric(&p, "delivery_kept_frames") > 0.0,
        "the whole message went through before sw1 was killed"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the message was already whole"
    );
    kill(&sw1);
    let answer = request.wait().unwrap();
    assert_eq!(
        &answer[..8],
        &checksum(&data).to_le_bytes(),
        "a torn message"
    );
    assert_eq!(u32::from_le_bytes(answer[8..12].try_into().unwrap()), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "delivered more than once");
    assert!(metric(&p, "delivery_resent") > 0.0);
    assert_eq!(
        p.ping("cli", "srv", 64, 2000).unwrap().path,
        ["cli", "sw2", "srv"]
    );
}

/// A sender killed while it sends large messages through a forwarder: the receiver drops
/// its streams and half-received messages once it learns of the death (the liveness check
/// runs every 500 ms).
#[test]
fn a_killed_sender_leaves_no_stream_or_half_message_at_the_receiver() {
    let fabric = format!("test-deliv-kill-snd-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric);
    p.register_node(node("srv", HardwareType::StorageArray))
        .unwrap();
    p.start_background_services().unwrap();
    let _sw1 = spawn("sw1", &fabric, None);
    let _sw2 = spawn("sw2", &fabric, None);
    let sender = spawn("sender", &fabric, None);
    let mut got = 0;
    while got < 5 {
        let m = p.recv("srv", Duration::from_secs(20)).unwrap();
        assert_eq!(m.data.len(), 1 << 20);
        got += 1;
    }
    assert!(metric(&p, "delivery_streams_in") >= 1.0);
    kill(&sender);
    let start = Instant::now();
    until(Duration::from_secs(2), "the receiver's state freed", || {
        let _ = p.recv("srv", Duration::ZERO);
        metric(&p, "delivery_streams_in") == 0.0 && metric(&p, "reassemblies") == 0.0
    });
    eprintln!("freed {:?} after the kill", start.elapsed());
    assert_eq!(metric(&p, "reassembly_bytes"), 0.0);
}

/// The sender's node comes back in a new process (same id) while frames of its earlier
/// process are still held back in a forwarder (half of sw1's frames wait 2 s): nothing is
/// delivered twice, and the new process's messages all arrive, once and in order.
#[test]
fn a_sender_restarted_under_the_same_id_is_never_taken_for_its_earlier_self() {
    let fabric = format!("test-deliv-restart-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric);
    p.register_node(node("srv", HardwareType::StorageArray))
        .unwrap();
    p.start_background_services().unwrap();
    let _sw1 = spawn("sw1", &fabric, Some("seed=3,delay=0.5@2s"));
    let _sw2 = spawn("sw2", &fabric, None);
    let posted = |tag: &str| {
        let (peer, lines) = spawn_reading("poster", &fabric, Some(tag));
        while !lines.recv().expect("the poster posted").contains("posted") {}
        peer
    };
    let first = posted("A");
    kill(&first);
    drop(first);
    let _second = posted("B");
    let mut seen = std::collections::HashSet::new();
    let mut next_b = 0u32;
    let until = Instant::now() + Duration::from_secs(30);
    while next_b < 300 {
        assert!(Instant::now() < until, "B's messages stopped at {next_b}");
        let Ok(m) = p.recv("srv", Duration::from_millis(100)) else {
            continue;
        };
        let (tag, n) = (
            m.data[0],
            u32::from_le_bytes(m.data[1..5].try_into().unwrap()),
        );
        assert!(seen.insert((tag, n)), "{} {n} delivered twice", tag as char);
        if tag == b'B' {
            assert_eq!(n, next_b, "B's messages out of order");
            next_b += 1;
        }
    }
    // What the forwarder still holds of A comes within 2 s: none of it twice.
    let quiet = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < quiet {
        if let Ok(m) = p.recv("srv", Duration::from_millis(100)) {
            let (tag, n) = (
                m.data[0],
                u32::from_le_bytes(m.data[1..5].try_into().unwrap()),
            );
            assert!(seen.insert((tag, n)), "{} {n} delivered twice", tag as char);
            assert_eq!(tag, b'A', "B's message {n} delivered twice");
        }
    }
    let a = seen.iter().filter(|(t, _)| *t == b'A').count();
    eprintln!(
        "of A's 300: {a} delivered; refused as stale {}, with a bad checksum {}",
        metric(&p, "delivery_stale_refused"),
        metric(&p, "delivery_corrupt_refused")
    );
}

/// A child in `role` whose printed lines come through the returned channel, once it is
/// ready.
fn spawn_reading(
    role: &str,
    fabric: &str,
    tag: Option<&str>,
) -> (Peer, std::sync::mpsc::Receiver<String>) {
    let mut c = common::child_command("peer_role");
    c.env(ROLE, role).env(FABRIC, fabric);
    if let Some(t) = tag {
        c.env(TAG, t);
    }
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the child got ready");
        if l.trim_end().ends_with("ready") {
            break;
        }
    }
    (Peer(child), rx)
}

/// The receiver is killed while messages to it wait in a forwarder (every frame held 2 s)
/// and a new process registers its node: the messages meant for the earlier process are
/// reported failed to the sender and never delivered to the new one.
#[test]
fn frames_for_a_receiver_that_restarted_never_reach_its_new_process() {
    let fabric = format!("test-deliv-rcv-restart-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric);
    p.register_node(node("cli", HardwareType::CpuServer))
        .unwrap();
    p.start_background_services().unwrap();
    let _sw1 = spawn("sw1", &fabric, Some("seed=2,delay=1@2s"));
    let _sw2 = spawn("sw2", &fabric, Some("seed=2,delay=1@2s"));
    let post = |n: u32| p.post("cli", "srv", &n.to_le_bytes(), &SendOptions::default());
    let got = |rx: &std::sync::mpsc::Receiver<String>, limit: Duration| {
        let mut v = Vec::new();
        let until = Instant::now() + limit;
        while let Ok(l) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            if let Some(n) = l.strip_prefix("got ") {
                v.push(n.parse::<u32>().unwrap());
            }
        }
        v
    };
    let (first, lines) = spawn_reading("receiver", &fabric, None);
    until(Duration::from_secs(10), "the first receiver", || {
        p.get_topology_info()
            .is_ok_and(|i| i.performance_metrics["frames_sent"] >= 0.0)
            && post(0).is_ok()
    });
    assert!(got(&lines, Duration::from_secs(5)).contains(&0));
    for n in 1..=10 {
        post(n).unwrap();
    }
    kill(&first);
    drop(first);
    let (_second, lines) = spawn_reading("receiver", &fabric, None);
    // The sender learns that 1..=10 failed: a later post says so (and is not made).
    let mut reported = false;
    let mut n = 11;
    let until_reported = Instant::now() + Duration::from_secs(10);
    while !reported {
        assert!(Instant::now() < until_reported, "no failure reported");
        match post(n) {
            Ok(()) => n += 1,
            Err(e) => {
                reported = e.to_string().contains("were not delivered");
                assert!(reported, "{e}");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    post(n).unwrap();
    let second_got = got(&lines, Duration::from_secs(5));
    assert!(
        second_got.iter().all(|&m| m > 10),
        "the new receiver got messages meant for the earlier one: {second_got:?}"
    );
    assert!(second_got.contains(&n), "{second_got:?} lacks {n}");
}
