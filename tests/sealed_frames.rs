//! Sealed frames between processes against someone who can write the fabric's shared memory
//! but has no key: a sealed message copied back into its ring is refused (not delivered
//! twice, counted, and a waiting sender's copy answered with `AuthenticationError`); so is one
//! whose outer origin or destination was rewritten. A frame sealed with another key reaches
//! its sender as `AuthenticationError` at once, also when its node took over the index of a
//! node that had been answered before. Senders that alternate reuse the key schedule.

mod common;

// The engine's rings: what these tests forge and replay.
use common::{checksum, engine_protocol_with_key as protocol, node, spawn_peer, test_key as key};
use common::{FabricDir, Peer};
use hyperfabric::codec::{key_schedules_built, FabricKey, FrameKind};
use hyperfabric::fabric::{HyperFabricProtocol, SendOptions};
use hyperfabric::ring::{self, Region, SlotHeader};
use hyperfabric::transport::channel::{ring_path, Lane};
use hyperfabric::transport::registry::Registry;
use hyperfabric::ErrorKind;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLE: &str = "HF_SEALED_TEST_ROLE";
const FABRIC: &str = "HF_SEALED_TEST_FABRIC";
const PAYMENT: &[u8] = b"PAY 100 TO N1";

fn sealed() -> SendOptions {
    SendOptions {
        encryption_enabled: true,
        timeout: Duration::from_secs(3),
        ..Default::default()
    }
}

/// "payer": hosts n1 and n3, sends n2 a sealed one-way payment and a sealed request, and
/// then leaves its engine alone (no background thread), so the replies to n1 stay readable
/// in their ring. "echo": hosts srv, which answers with the data it got.
#[test]
#[ignore = "child process of the tests of this file, started by them"]
fn peer_role() {
    let role = common::child_var(ROLE);
    let p = protocol(&common::child_var(FABRIC), Some(key()));
    let _pending;
    match role.as_str() {
        "payer" => {
            p.register_node(node("n1")).unwrap();
            p.register_node(node("n3")).unwrap();
            p.post("n1", "n2", PAYMENT, &sealed()).unwrap();
            _pending = p.send_data_nb("n1", "n2", b"BALANCE?", &sealed()).unwrap();
        }
        "echo" => {
            p.register_node(node("srv")).unwrap();
            p.on_receive("srv", |m| Ok(m.data.to_vec())).unwrap();
            p.start_background_services().unwrap();
        }
        other => panic!("unknown role {other}"),
    }
    println!("ready");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn spawn(role: &str, fabric: &str) -> Peer {
    spawn_peer(&[(ROLE, role), (FABRIC, fabric)])
}

fn index(fabric: &str, id: &str) -> u32 {
    Registry::open(fabric)
        .unwrap()
        .lookup(id)
        .unwrap()
        .unwrap_or_else(|| panic!("{id} is not registered"))
        .index
}

fn latency_ring(fabric: &str, src: u32, dst: u32) -> PathBuf {
    ring_path(
        &hyperfabric::sys::state_root().join(fabric),
        src,
        dst,
        Lane::Latency,
    )
}

/// Reads the first `n` messages of a ring file through a consumer of our own (on a copy of
/// it), as anyone who can read the file can. Its position starts at the head the real consumer last published,
/// which is the start for a ring whose consumer has not read anything yet.
fn read_messages(path: &Path, n: usize) -> Vec<(SlotHeader, Vec<u8>)> {
    // A copy of the file: a consumer publishes its position (when dropped), which would tell
    // the real producer that slots the real receiver has not read are free.
    let copy = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(path, copy.path()).unwrap();
    let (_, mut c) = ring::split(Arc::new(Region::open_file(copy.path()).unwrap()));
    (0..n)
        .map(|i| {
            c.try_pop(|h, d| (h, d.to_vec()))
                .expect("ring not corrupt")
                .unwrap_or_else(|| panic!("message {i} of {} missing", path.display()))
        })
        .collect()
}

/// Appends a message to a ring file at its current tail (from the ring header), as an
/// attacker with write access to the file can.
fn push_at_tail(path: &Path, h: SlotHeader, payload: &[u8]) {
    let (mut p, _) = ring::split(Arc::new(Region::open_file(path).unwrap()));
    p.try_push(h, &[payload]).unwrap();
}

/// Rewrites the little-endian u32 at `at` of a ring message (the message header: destination
/// at 0, origin at 24).
fn with_u32(payload: &[u8], at: usize, v: u32) -> Vec<u8> {
    let mut p = payload.to_vec();
    p[at..at + 4].copy_from_slice(&v.to_le_bytes());
    p
}

fn refused(p: &HyperFabricProtocol) -> (f64, f64) {
    let m = p.get_topology_info().unwrap().performance_metrics;
    (m["sealed_refused"], m["sealed_replays_refused"])
}

fn nothing_for(p: &HyperFabricProtocol, node: &str) {
    match p.recv(node, Duration::from_millis(300)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout, "{e}"),
        Ok(m) => panic!(
            "{node} was delivered {:?} from {}",
            String::from_utf8_lossy(&m.data),
            m.source
        ),
    }
}

#[test]
fn replayed_and_redirected_sealed_frames_are_refused() {
    let fabric = format!("test-sealed-replay-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    // No background thread: nothing is read from the rings until this test receives.
    let p = protocol(&fabric, Some(key()));
    p.register_node(node("n2")).unwrap();
    p.register_node(node("n4")).unwrap();
    let _payer = spawn("payer", &fabric);
    let [n1, n2, n3, n4] = ["n1", "n2", "n3", "n4"].map(|id| index(&fabric, id));

    // The payer's two sealed messages, captured before n2 reads them.
    let to_n2 = latency_ring(&fabric, n1, n2);
    let captured = read_messages(&to_n2, 2);
    let (payment, request) = (&captured[0], &captured[1]);
    assert_eq!(payment.0.kind, FrameKind::Data as u8);
    let request_id = u64::from_le_bytes(request.1[4..12].try_into().unwrap());

    // Delivered once each.
    for want in [PAYMENT, b"BALANCE?"] {
        let m = p.recv("n2", Duration::from_secs(5)).unwrap();
        assert_eq!((m.data.as_ref(), m.source.as_str()), (want, "n1"));
    }
    nothing_for(&p, "n2");
    assert_eq!(refused(&p), (0.0, 0.0));

    // The payment copied back to the tail of the ring: refused as a replay.
    push_at_tail(&to_n2, payment.0, &payment.1);
    nothing_for(&p, "n2");
    assert_eq!(refused(&p), (1.0, 1.0));

    // Re-attributed: the outer origin (and the previous hop) rewritten to n3.
    let h = SlotHeader {
        src: n3,
        ..payment.0
    };
    push_at_tail(&to_n2, h, &with_u32(&payment.1, 24, n3));
    nothing_for(&p, "n2");
    assert_eq!(refused(&p).0, 2.0, "a re-attributed frame must not open");

    // Redirected: the outer destination rewritten to n4, which n2 forwards it to.
    push_at_tail(&to_n2, payment.0, &with_u32(&payment.1, 0, n4));
    nothing_for(&p, "n4");
    nothing_for(&p, "n2");
    assert_eq!(refused(&p).0, 3.0, "a redirected frame must not open");

    // The request copied back: refused, and its sender answered with AuthenticationError
    // (read from the ring back to n1, which the payer leaves unread).
    push_at_tail(&to_n2, request.0, &request.1);
    nothing_for(&p, "n2");
    assert_eq!(refused(&p), (4.0, 2.0));
    let replies = read_messages(&latency_ring(&fabric, n2, n1), 2);
    let (ack, error) = (&replies[0], &replies[1]);
    assert_eq!(
        ack.0.kind,
        FrameKind::Ack as u8,
        "the original request's receipt"
    );
    assert_eq!(error.0.kind, FrameKind::Error as u8);
    let id = u64::from_le_bytes(error.1[4..12].try_into().unwrap());
    let status = i32::from_le_bytes(error.1[32..36].try_into().unwrap());
    assert_eq!(id, request_id);
    assert_eq!(status, ErrorKind::AuthenticationFailed.status_code());
}

/// The node sending with the wrong key takes over the registry index of a node that srv had
/// answered: the answer must reach the new node, not the ring of the one before.
#[test]
fn a_frame_sealed_with_another_key_fails_at_once() {
    let fabric = format!("test-sealed-wrong-key-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let _echo = spawn("echo", &fabric);

    let before = protocol(&fabric, Some(key()));
    before.register_node(node("client")).unwrap();
    assert_eq!(
        before.send_data("client", "srv", b"hi", &sealed()).unwrap(),
        b"hi"
    );
    let taken = index(&fabric, "client");
    // Taken over at once: srv has no time for a periodic look at the registry in between.
    let intruder = protocol(&fabric, Some(FabricKey::from_bytes([8; 32])));
    before.unregister_node("client").unwrap();
    intruder.register_node(node("intruder")).unwrap();
    for size in [9usize, 5000, 100_000] {
        let started = Instant::now();
        let e = intruder
            .send_data("intruder", "srv", &vec![5; size], &sealed())
            .unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::AuthenticationFailed,
            "{size} bytes: {e}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{size} bytes: answered after {:?}",
            started.elapsed()
        );
    }
    assert_eq!(index(&fabric, "intruder"), taken, "the index was reused");
}

/// Two protocols of one process on one fabric each send by descriptor: each message must
/// arrive with its own bytes (they once named their segments alike, so the receiver read one
/// protocol's data for the other's message).
#[test]
fn protocols_of_one_process_keep_their_segments_apart() {
    let fabric = format!("test-sealed-segments-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let _echo = spawn("echo", &fabric);
    let first = protocol(&fabric, None);
    first.register_node(node("a")).unwrap();
    let second = protocol(&fabric, None);
    second.register_node(node("b")).unwrap();
    for round in 0..3u8 {
        for (p, id) in [(&first, "a"), (&second, "b")] {
            for size in [5000usize, 100_000] {
                let data: Vec<u8> = (0..size)
                    .map(|i| (i as u8) ^ round ^ id.as_bytes()[0])
                    .collect();
                let got = p
                    .send_data(id, "srv", &data, &SendOptions::default())
                    .unwrap();
                assert_eq!(checksum(&got), checksum(&data), "{id}, {size} bytes");
            }
        }
    }
}

#[test]
fn alternating_senders_reuse_the_key_schedule() {
    let fabric = format!("test-sealed-schedules-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric, Some(key()));
    for id in ["n1", "n3", "sink"] {
        p.register_node(node(id)).unwrap();
    }
    p.on_receive("sink", |m| Ok(m.data.to_vec())).unwrap();
    let built = key_schedules_built();
    for round in 0..40u32 {
        let from = if round % 2 == 0 { "n1" } else { "n3" };
        let data = round.to_le_bytes();
        assert_eq!(p.send_data(from, "sink", &data, &sealed()).unwrap(), data);
    }
    assert_eq!(
        key_schedules_built() - built,
        0,
        "sealing and opening must reuse the protocol's key schedule"
    );
}
