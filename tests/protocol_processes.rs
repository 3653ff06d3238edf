//! `HyperFabricProtocol` between real processes over shared memory: request/response with
//! handlers, delivery receipts and `recv`, one-way `post`, `ping`, compression and
//! encryption, the reference's errors, and a peer killed with SIGKILL.

mod common;

use common::{
    child_var, protocol_with_key as protocol, serve_until_stdin_closes, spawn_peer,
    test_key as key, FabricDir, Peer,
};
use hyperfabric::codec::FabricKey;
use hyperfabric::fabric::SendOptions;
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::ErrorKind;
use std::time::{Duration, Instant};

const ROLE: &str = "HF_PROTO_TEST_ROLE";
const FABRIC: &str = "HF_PROTO_TEST_FABRIC";

fn node(id: &str, latency_ns: u64) -> NodeSignature {
    NodeSignature::new(id, HardwareType::CpuServer, 100.0, latency_ns).unwrap()
}

/// Child side. "server": hosts `srv` (handler: reversed data), posts three messages and
/// sends one request to the parent's `inbox`. "victim": hosts `victim`, whose handler never
/// answers. "reborn": hosts `victim` again, answering. Each then serves until its stdin
/// closes (or it is killed).
#[test]
#[ignore = "child process of the tests in this file, started by them"]
fn peer_role() {
    let p = protocol(&child_var(FABRIC), Some(key()));
    match child_var(ROLE).as_str() {
        "server" => {
            p.register_node(node("srv", 1000)).unwrap();
            p.on_receive("srv", |m| {
                let mut d = m.data.to_vec();
                d.reverse();
                d.extend_from_slice(&m.metadata);
                Ok(d)
            })
            .unwrap();
            p.register_node(node("child-out", 10)).unwrap();
            for i in 0..3u8 {
                p.post("child-out", "inbox", &[i; 10], &SendOptions::default())
                    .unwrap();
            }
            let ack = p
                .send_data("child-out", "inbox", b"receipt?", &SendOptions::default())
                .unwrap();
            assert!(
                ack.is_empty(),
                "a node without handler answers with an empty receipt"
            );
        }
        "victim" => {
            p.register_node(node("victim", 10)).unwrap();
            // Requests stay pending until the process is killed.
            p.on_receive("victim", |_| loop {
                std::thread::park();
            })
            .unwrap();
            // A segment and a direct ring of its own, which must not outlive it either.
            std::mem::forget(p.create_buffer_manager(1, 4096).unwrap());
            std::mem::forget(p.open_sender("victim", "caller").unwrap());
        }
        "reborn" => {
            p.register_node(node("victim", 10)).unwrap();
            p.on_receive("victim", |m| Ok([b"reborn:".as_slice(), &m.data].concat()))
                .unwrap();
        }
        "mutual" => {
            p.register_node(node("m-child", 10)).unwrap();
            p.register_node(node("m-child-out", 10)).unwrap();
            answer_with_tag(&p, "m-child", b'c');
            p.start_background_services().unwrap();
            println!("ready");
            // The parent starts its own requests, then says go: both load at once.
            let mut go = String::new();
            std::io::stdin().read_line(&mut go).unwrap();
            let report = match request_load(&p, "m-child-out", "m-parent", b'p') {
                Ok(ok) => format!("done {ok}"),
                Err(e) => format!("failed: {e}"),
            };
            p.post(
                "m-child-out",
                "m-inbox",
                report.as_bytes(),
                &SendOptions::default(),
            )
            .unwrap();
            serve_until_stdin_closes();
            return;
        }
        other => panic!("unknown role {other}"),
    }
    p.start_background_services().unwrap();
    println!("ready");
    serve_until_stdin_closes();
}

/// Requests each side of the mutual-load test sends per thread.
const MUTUAL_REQUESTS: usize = 1500;
/// Threads per side sending them.
const MUTUAL_THREADS: usize = 2;

/// Answers every request to `id` with its bytes and `tag` after them.
fn answer_with_tag(p: &hyperfabric::fabric::HyperFabricProtocol, id: &str, tag: u8) {
    p.on_request(id, move |m, reply| {
        reply.write(&m.data);
        reply.write(&[tag]);
        Ok(())
    })
    .unwrap();
}

/// Sends [`MUTUAL_REQUESTS`] requests of mixed sizes (inline, by descriptor, several
/// fragments) from each of [`MUTUAL_THREADS`] threads, checks every answer (the bytes sent and
/// `tag`), and returns how many were right, or the first error.
fn request_load(
    p: &hyperfabric::fabric::HyperFabricProtocol,
    src: &str,
    dst: &str,
    tag: u8,
) -> hyperfabric::Result<usize> {
    const SIZES: [usize; 6] = [1, 8, 200, 3000, 20_000, 70_000];
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..MUTUAL_THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut ok = 0;
                    for i in 0..MUTUAL_REQUESTS {
                        let len = SIZES[(i + t) % SIZES.len()];
                        let data: Vec<u8> = (0..len).map(|k| (k + i * 7 + t) as u8).collect();
                        let opts = SendOptions {
                            timeout: Duration::from_secs(60),
                            ..Default::default()
                        };
                        let back = p.send_data(src, dst, &data, &opts)?;
                        if back.len() == len + 1 && back[..len] == data[..] && back[len] == tag {
                            ok += 1;
                        }
                    }
                    Ok(ok)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

fn spawn(role: &str, fabric: &str) -> Peer {
    spawn_peer(&[(ROLE, role), (FABRIC, fabric)])
}

fn fabric_name(tag: &str) -> String {
    format!("test-{tag}-{}", std::process::id())
}

fn fabric_files(fabric: &str) -> Vec<String> {
    std::fs::read_dir(hyperfabric::sys::state_root().join(fabric))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn requests_receipts_posts_pings_and_errors_between_processes() {
    let fabric = fabric_name("rr");
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric, Some(key()));
    p.register_node(node("cli", 100)).unwrap();
    p.register_node(node("inbox", 10)).unwrap();
    // The child sends to `inbox` before it reports ready: our engine must answer meanwhile.
    p.start_background_services().unwrap();
    let peer = spawn("server", &fabric);

    // Sizes around the inline limit of a slot and beyond one page.
    for size in [0usize, 1, 47, 48, 49, 4095, 65536, (1 << 20) + 1, 16 << 20] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        let got = p
            .send_data("cli", "srv", &data, &SendOptions::default())
            .unwrap();
        let mut want = data.clone();
        want.reverse();
        assert_eq!(got, want, "size {size}");
    }
    // Metadata travels with the message.
    let mut meta = serde_json::Map::new();
    meta.insert("layer".into(), serde_json::json!(12));
    let opts = SendOptions {
        metadata: Some(meta),
        ..Default::default()
    };
    let got = p.send_data("cli", "srv", b"ab", &opts).unwrap();
    assert_eq!(got, b"ba{\"layer\":12}");

    // Compression and encryption round-trip (the handler sees plain data).
    let text = b"gradient-shard ".repeat(400);
    for (compression_enabled, encryption_enabled) in [(true, false), (false, true), (true, true)] {
        let opts = SendOptions {
            compression_enabled,
            encryption_enabled,
            ..Default::default()
        };
        let got = p.send_data("cli", "srv", &text, &opts).unwrap();
        let mut want = text.clone();
        want.reverse();
        assert_eq!(got, want);
    }
    // A frame sealed with another key is rejected at the receiver and the sender is told.
    let intruder = protocol(&fabric, Some(FabricKey::from_bytes([8; 32])));
    intruder.register_node(node("intruder", 10)).unwrap();
    let e = intruder
        .send_data(
            "intruder",
            "srv",
            b"let me in",
            &SendOptions {
                encryption_enabled: true,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{e}");
    drop(intruder);

    // Posts and a request from the child arrived in `inbox`, in order.
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(p.recv("inbox", Duration::from_secs(10)).unwrap());
    }
    assert_eq!(got[0].data, [0u8; 10]);
    assert_eq!(got[2].data, [2u8; 10]);
    assert!(got[..3]
        .iter()
        .all(|m| m.one_way && m.source == "child-out"));
    assert_eq!(got[3].data, b"receipt?");
    assert!(!got[3].one_way);
    assert_eq!(
        p.recv("inbox", Duration::from_millis(20))
            .unwrap_err()
            .kind(),
        ErrorKind::Timeout
    );

    // Ping measures real round trips.
    let r = p.ping("cli", "srv", 64, 2000).unwrap();
    assert!(r.success);
    assert_eq!(r.path, ["cli", "srv"]);
    assert!(r.latency_ns > 0 && r.bandwidth_gbps > 0.0);
    assert_eq!(r.packet_loss_rate, 0.0);

    // The reference's errors.
    let e = p
        .send_data("cli", "nowhere", b"x", &SendOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NodeNotFound);
    let e = p
        .send_data("srv", "cli", b"x", &SendOptions::default())
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::NodeNotFound,
        "srv is hosted by the other process"
    );
    assert_eq!(
        p.register_node(node("srv", 1)).unwrap_err().kind(),
        ErrorKind::DuplicateNode
    );
    let mut bad = node("bad", 1);
    bad.bandwidth_gbps = -1.0;
    assert_eq!(
        p.register_node(bad).unwrap_err().kind(),
        ErrorKind::InvalidNode
    );
    // cli (100 ns) + srv (1000 ns): a 500 ns constraint is refused before sending.
    let strict = SendOptions {
        latency_constraint_ns: Some(500),
        ..Default::default()
    };
    let sent_before = p.get_topology_info().unwrap().performance_metrics["frames_sent"];
    assert_eq!(
        p.send_data("cli", "srv", b"x", &strict).unwrap_err().kind(),
        ErrorKind::LatencyConstraintViolation
    );
    assert_eq!(
        p.get_topology_info().unwrap().performance_metrics["frames_sent"],
        sent_before
    );
    let mut huge = serde_json::Map::new();
    huge.insert("blob".into(), serde_json::json!("x".repeat(5000)));
    let e = p
        .send_data(
            "cli",
            "srv",
            b"x",
            &SendOptions {
                metadata: Some(huge),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    let info = p.get_topology_info().unwrap();
    assert_eq!(info.total_nodes, 4);
    assert!(info.performance_metrics["frames_received"] > 0.0);

    drop(peer);
    drop(p);
    let left: Vec<String> = fabric_files(&fabric)
        .into_iter()
        .filter(|f| f.starts_with("ch-"))
        .collect();
    assert!(left.is_empty(), "channel files left: {left:?}");
    let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&fabric));
}

#[test]
fn a_killed_peer_fails_pending_requests_and_frees_its_node() {
    let fabric = fabric_name("kill");
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric, None);
    p.register_node(node("caller", 10)).unwrap();
    let mut peer = spawn("victim", &fabric);
    let victim_pid = peer.0.id();
    let files = fabric_files(&fabric);
    let seg = format!("seg-{victim_pid}-");
    assert!(files.iter().any(|f| f.starts_with(&seg)), "{files:?}");
    assert!(files.iter().any(|f| f.starts_with("dc-")), "{files:?}");
    // The request is in the victim's ring and unanswered when its process dies.
    let opts = SendOptions {
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let mut request = p
        .send_data_nb("caller", "victim", b"are you there", &opts)
        .unwrap();
    assert!(request.test().is_none(), "pending when the victim dies");
    peer.0.kill().unwrap(); // SIGKILL
    peer.0.wait().unwrap();
    let killed = Instant::now();
    let e = request.wait().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NodeNotFound, "{e}");
    // Well before the request's own 10 s timeout.
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "noticed after {:?}",
        killed.elapsed()
    );
    // Nothing of the dead process remains (its entry was reclaimed when the request failed).
    let files = fabric_files(&fabric);
    assert!(
        files
            .iter()
            .all(|f| !f.starts_with("ch-") && !f.starts_with("dc-") && !f.starts_with(&seg)),
        "{files:?}"
    );

    // A new process takes the id (and the index) over; both directions work with it: the
    // rings of the dead incarnation are neither written nor read any more.
    let _reborn = spawn("reborn", &fabric);
    let got = p.send_data("caller", "victim", b"hello", &opts).unwrap();
    assert_eq!(got, b"reborn:hello");
    drop(p);
    let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&fabric));
}

#[test]
fn two_processes_requesting_from_each_other_under_load_both_finish() {
    // Each process answers the other's requests from its engine thread while two of its own
    // threads wait for answers from the other: no side may hold what the other's answer
    // needs.
    let fabric = fabric_name("mutual");
    let _cleanup = FabricDir(fabric.clone());
    let p = std::sync::Arc::new(protocol(&fabric, Some(key())));
    p.register_node(node("m-parent", 10)).unwrap();
    p.register_node(node("m-out", 10)).unwrap();
    p.register_node(node("m-inbox", 10)).unwrap();
    answer_with_tag(&p, "m-parent", b'p');
    p.start_background_services().unwrap();
    let mut child = spawn("mutual", &fabric);
    // The load runs on a thread of its own, so a side stuck for good fails the test at the
    // deadline instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let parent = p.clone();
    std::thread::spawn(move || {
        let _ = tx.send(request_load(&parent, "m-out", "m-child", b'c'));
    });
    child.send_line("go");
    let theirs = p
        .recv("m-inbox", Duration::from_secs(120))
        .map(|m| String::from_utf8_lossy(&m.data).into_owned());
    let mine = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the parent's requests did not finish within 120 s");
    let all = MUTUAL_REQUESTS * MUTUAL_THREADS;
    assert_eq!(mine.unwrap(), all, "answers the parent got right");
    assert_eq!(
        theirs.unwrap(),
        format!("done {all}"),
        "what the child reported"
    );
}
