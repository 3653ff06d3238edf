//! Requests between processes after the registry index of a node was taken over, and
//! descriptors from two protocols of one process: a frame sealed with another key reaches its
//! sender as `AuthenticationError` at once, also when its node took over the index of a node
//! that had been answered before, and each protocol's large messages arrive with their own
//! bytes.

mod common;

use common::{checksum, node, protocol_with_key as protocol, spawn_peer, test_key as key};
use common::{FabricDir, Peer};
use hyperfabric::codec::FabricKey;
use hyperfabric::fabric::SendOptions;
use hyperfabric::transport::registry::Registry;
use hyperfabric::ErrorKind;
use std::io::Read;
use std::time::{Duration, Instant};

const ROLE: &str = "HF_SEALED_TEST_ROLE";
const FABRIC: &str = "HF_SEALED_TEST_FABRIC";

fn sealed() -> SendOptions {
    SendOptions {
        encryption_enabled: true,
        timeout: Duration::from_secs(3),
        ..Default::default()
    }
}

/// "echo": hosts srv, which answers with the data it got.
#[test]
fn peer_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let p = protocol(&std::env::var(FABRIC).unwrap(), Some(key()));
    match role.as_str() {
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
