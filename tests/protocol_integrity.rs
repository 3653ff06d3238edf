//! Integrity and priority between two processes: 100,000 random-size one-way messages
//! checked by checksum and sequence (none lost, corrupted or duplicated), and an ULTRA_HIGH
//! message that overtakes a 256 MiB BULK transfer on the same channel.

mod common;

use common::{
    checksum, child_var, node, protocol, serve_until_stdin_closes, spawn_peer, FabricDir, Peer,
};
use hyperfabric::fabric::SendOptions;
use hyperfabric::model::PacketPriority;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROLE: &str = "HF_INTEGRITY_TEST_ROLE";
const FABRIC: &str = "HF_INTEGRITY_TEST_FABRIC";
const MESSAGES: u64 = 100_000;

/// Message `i`: 8 bytes of sequence, 8 of checksum, then pseudo-random bytes of a
/// pseudo-random length (0..=9000, sometimes 64 KiB + 1).
fn message(i: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = if i % 997 == 0 {
        65_537
    } else {
        (x % 9001) as usize
    };
    let body: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut m = i.to_le_bytes().to_vec();
    m.extend_from_slice(&checksum(&body).to_le_bytes());
    m.extend_from_slice(&body);
    m
}

#[derive(Default)]
struct Seen {
    next: u64,
    bad: u64,
    urgent_at: Option<Instant>,
    bulk_done_at: Option<Instant>,
}

#[test]
#[ignore = "child process of hundred_thousand_messages_and_an_urgent_one_overtaking_bulk, started by it"]
fn peer_role() {
    assert_eq!(child_var(ROLE), "peer");
    let p = protocol(&child_var(FABRIC));
    let seen = Arc::new(Mutex::new(Seen::default()));
    p.register_node(node("check")).unwrap();
    let s = seen.clone();
    p.on_receive("check", move |m| {
        let mut s = s.lock().unwrap();
        if m.data == b"report" {
            return Ok(format!("{} {}", s.next, s.bad).into_bytes());
        }
        let ok = m.data.len() >= 16
            && u64::from_le_bytes(m.data[..8].try_into().unwrap()) == s.next
            && u64::from_le_bytes(m.data[8..16].try_into().unwrap()) == checksum(&m.data[16..]);
        if !ok {
            s.bad += 1;
        }
        s.next += 1;
        Ok(Vec::new())
    })
    .unwrap();
    p.register_node(node("bulk-sink")).unwrap();
    let s = seen.clone();
    p.on_receive("bulk-sink", move |m| {
        let mut s = s.lock().unwrap();
        if m.data == b"report" {
            let overtook = matches!((s.urgent_at, s.bulk_done_at), (Some(u), Some(b)) if u < b);
            return Ok(vec![overtook as u8]);
        }
        if m.data == b"urgent" {
            s.urgent_at = Some(Instant::now());
        } else {
            assert!(m.data.iter().all(|&b| b == 0xb7), "bulk payload corrupted");
            s.bulk_done_at = Some(Instant::now());
        }
        Ok(Vec::new())
    })
    .unwrap();
    p.start_background_services().unwrap();
    println!("ready");
    serve_until_stdin_closes();
}

fn spawn(fabric: &str) -> Peer {
    spawn_peer(&[(ROLE, "peer"), (FABRIC, fabric)])
}

#[test]
fn hundred_thousand_messages_and_an_urgent_one_overtaking_bulk() {
    let fabric = format!("test-integrity-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = Arc::new(protocol(&fabric));
    p.register_node(node("sender")).unwrap();
    let peer = spawn(&fabric);

    let opts = SendOptions {
        timeout: Duration::from_secs(60),
        ..Default::default()
    };
    for i in 0..MESSAGES {
        p.post("sender", "check", &message(i), &opts).unwrap();
    }
    let report = p.send_data("sender", "check", b"report", &opts).unwrap();
    assert_eq!(
        String::from_utf8(report).unwrap(),
        format!("{MESSAGES} 0"),
        "received, corrupted"
    );

    // 256 MiB on the bulk lane; an ULTRA_HIGH message from another thread meanwhile.
    let bulk = vec![0xb7u8; 256 << 20];
    let q = p.clone();
    let sender = std::thread::spawn(move || {
        let opts = SendOptions {
            priority: PacketPriority::Bulk,
            timeout: Duration::from_secs(120),
            ..Default::default()
        };
        q.send_data("sender", "bulk-sink", &bulk, &opts).unwrap();
    });
    std::thread::sleep(Duration::from_millis(5));
    let urgent = SendOptions {
        priority: PacketPriority::UltraHigh,
        ..opts.clone()
    };
    p.send_data("sender", "bulk-sink", b"urgent", &urgent)
        .unwrap();
    sender.join().unwrap();
    let overtook = p
        .send_data("sender", "bulk-sink", b"report", &opts)
        .unwrap();
    assert_eq!(
        overtook,
        [1],
        "the urgent message arrived after the bulk transfer completed"
    );

    drop(peer);
    drop(p);
    let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&fabric));
}
