//! Zero copy between two processes: a buffer of a pool made by `create_buffer_manager` travels
//! as a descriptor (the receiver reads the sender's pages and the buffer comes back to the
//! sender's pool when the receiver drops the message); large messages travel through chunks of
//! the sender's segment, and when a receiver holds every chunk the sender falls back to the
//! ring without losing anything. Segments of a killed process are reclaimed.

mod common;

use common::{
    checksum, child_var, node, protocol, serve_until_stdin_closes, spawn_peer, FabricDir,
};
use hyperfabric::fabric::{HyperFabricProtocol, SendOptions};
use std::time::{Duration, Instant};

const ROLE: &str = "HF_ZC_TEST_ROLE";
const FABRIC: &str = "HF_ZC_TEST_FABRIC";

/// `len` bytes: 8 of checksum over the rest, then a pattern that depends on `seed`.
fn message(seed: u64, len: usize) -> Vec<u8> {
    let mut body: Vec<u8> = (0..len - 8)
        .map(|i| (i as u64).wrapping_mul(seed | 1).wrapping_add(seed >> 3) as u8)
        .collect();
    let mut m = checksum(&body).to_le_bytes().to_vec();
    m.append(&mut body);
    m
}

fn intact(data: &[u8]) -> bool {
    data.len() >= 8 && u64::from_le_bytes(data[..8].try_into().unwrap()) == checksum(&data[8..])
}

/// The receiver: keeps every message (so zero-copy buffers stay borrowed) until a "report"
/// arrives, then posts back "count zero_copy bad" and drops them.
#[test]
#[ignore = "child process of the tests in this file, started by them"]
fn peer_role() {
    let role = child_var(ROLE);
    let p = protocol(&child_var(FABRIC));
    if role == "segment-maker" {
        p.register_node(node("maker")).unwrap();
        let _pool = p.create_buffer_manager(2, 4096).unwrap();
        println!("ready");
        serve_until_stdin_closes();
        return;
    }
    p.register_node(node("zc-dst")).unwrap();
    println!("ready");
    let mut held = Vec::new();
    let (mut zero_copy, mut bad) = (0, 0);
    loop {
        let Ok(m) = p.recv("zc-dst", Duration::from_secs(30)) else {
            return;
        };
        if m.data == b"report" {
            let report = format!("{} {zero_copy} {bad}", held.len());
            p.post(
                "zc-dst",
                &m.source,
                report.as_bytes(),
                &SendOptions::default(),
            )
            .unwrap();
            held.clear();
            zero_copy = 0;
            bad = 0;
            continue;
        }
        zero_copy += m.data.is_zero_copy() as usize;
        bad += !intact(&m.data) as usize;
        held.push(m);
    }
}

/// Posts "report" and returns (messages held, of them zero copy, corrupted).
fn report(p: &HyperFabricProtocol) -> (usize, usize, usize) {
    p.post("zc-src", "zc-dst", b"report", &SendOptions::default())
        .unwrap();
    let m = p.recv("zc-src", Duration::from_secs(30)).unwrap();
    let s = String::from_utf8(m.data.to_vec()).unwrap();
    let v: Vec<usize> = s.split(' ').map(|x| x.parse().unwrap()).collect();
    (v[0], v[1], v[2])
}

#[test]
fn buffers_and_large_messages_cross_processes_without_copies() {
    let fabric = format!("zc-{}", std::process::id());
    let _dir = FabricDir(fabric.clone());
    // Posts by name through the engine, which sends a message of one chunk as one
    // descriptor the receiver reads in place (an endpoint pipelines it in smaller fragments).
    let p = common::engine_protocol(&fabric);
    p.register_node(node("zc-src")).unwrap();
    let _peer = spawn_peer(&[(ROLE, "receiver"), (FABRIC, &fabric)]);
    let opts = SendOptions::default();

    // A 1 MiB buffer by descriptor: the receiver reads it in place; it comes back to the
    // pool only when the receiver drops it.
    let pool = p.create_buffer_manager(4, 1 << 20).unwrap();
    let mut b = pool.acquire().unwrap();
    let data = message(7, 1 << 20);
    b.write_data(&data, 0, false).unwrap();
    p.post_buffer("zc-src", "zc-dst", b, &opts).unwrap();
    let mut b = pool.acquire().unwrap();
    b.write_data(&message(8, 4096), 0, false).unwrap();
    // Request form: the receiver has no handler, so a delivery receipt comes back.
    assert_eq!(p.send_buffer("zc-src", "zc-dst", b, &opts).unwrap(), b"");
    assert_eq!(pool.available(), 2, "both buffers are with the receiver");
    assert_eq!(report(&p), (2, 2, 0));
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.available() < 4 {
        assert!(Instant::now() < deadline, "buffers never came back");
        std::thread::sleep(Duration::from_millis(1));
    }

    // A standalone buffer cannot travel by descriptor: its bytes are sent instead.
    let mut own = hyperfabric::buffer::ZeroCopyBuffer::new(100, false, false).unwrap();
    own.write_data(&message(9, 100), 0, false).unwrap();
    p.post_buffer("zc-src", "zc-dst", own, &opts).unwrap();
    assert_eq!(report(&p), (1, 0, 0));

    // 100 large messages while the receiver holds all of them: the first ones take every
    // chunk of the sender's segment, the rest go through the ring; none is lost.
    let sizes: Vec<usize> = (0..100).map(|i| (16 << 10) + 1 + i * 31_001).collect();
    for (i, &len) in sizes.iter().enumerate() {
        p.post("zc-src", "zc-dst", &message(i as u64, len), &opts)
            .unwrap();
    }
    let (count, zero_copy, bad) = report(&p);
    assert_eq!((count, bad), (100, 0));
    assert!(
        zero_copy > 0 && zero_copy < 100,
        "{zero_copy} of 100 read in place: expected some, and ring fallback for the rest"
    );
    // Released chunks are reused: all of these fit one chunk each.
    for i in 0..10 {
        p.post("zc-src", "zc-dst", &message(i, 1 << 20), &opts)
            .unwrap();
    }
    assert_eq!(report(&p), (10, 10, 0));
    // A 16 MiB message spans chunks and is reassembled.
    p.post("zc-src", "zc-dst", &message(99, 16 << 20), &opts)
        .unwrap();
    assert_eq!(report(&p), (1, 0, 0));
}

#[test]
fn segments_of_a_killed_process_are_reclaimed() {
    let fabric = format!("zc-kill-{}", std::process::id());
    let _dir = FabricDir(fabric.clone());
    let dir = hyperfabric::sys::state_root().join(&fabric);
    let mut peer = spawn_peer(&[(ROLE, "segment-maker"), (FABRIC, &fabric)]);
    let pid = peer.0.id();
    let segments = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("seg-{pid}-"))
            })
            .count()
    };
    assert_eq!(segments(), 1);
    peer.0.kill().unwrap();
    peer.0.wait().unwrap();
    // The next process to open the fabric removes it.
    let _p = protocol(&fabric);
    assert_eq!(segments(), 0);
}
