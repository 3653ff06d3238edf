//! Integrity and priority between processes: 100,000 random-size one-way messages checked by
//! checksum and sequence (none lost, corrupted or duplicated), and an ULTRA_HIGH message that
//! overtakes a 16 MiB BULK transfer queued before it on the same channel.

mod common;

use common::{
    checksum, child_var, node, protocol, serve_until_stdin_closes, spawn_peer, FabricDir,
};
use hyperfabric::fabric::SendOptions;
use hyperfabric::model::PacketPriority;
use std::time::Duration;

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

/// The child side. "check" hosts `check`, which verifies the sequence and checksum of every
/// message and answers "report" with "received corrupted". "bulk-sink" hosts `bulk-sink` and
/// does not poll its rings until a line arrives on its stdin, so the parent can queue traffic
/// in both lanes first; `bulk-sink` answers a bulk message with 1 if its bytes are intact, and
/// "urgent" with 1 if a bulk message was delivered before it.
#[test]
#[ignore = "child process of hundred_thousand_messages_and_an_urgent_one_overtaking_bulk, started by it"]
fn peer_role() {
    let p = protocol(&child_var(FABRIC));
    match child_var(ROLE).as_str() {
        "check" => {
            p.register_node(node("check")).unwrap();
            let (mut next, mut bad) = (0u64, 0u64);
            p.on_receive("check", move |m| {
                if m.data == b"report" {
                    return Ok(format!("{next} {bad}").into_bytes());
                }
                let ok = m.data.len() >= 16
                    && u64::from_le_bytes(m.data[..8].try_into().unwrap()) == next
                    && u64::from_le_bytes(m.data[8..16].try_into().unwrap())
                        == checksum(&m.data[16..]);
                bad += !ok as u64;
                next += 1;
                Ok(Vec::new())
            })
            .unwrap();
            p.start_background_services().unwrap();
            println!("ready");
        }
        "bulk-sink" => {
            p.register_node(node("bulk-sink")).unwrap();
            let mut bulk_delivered = false;
            p.on_receive("bulk-sink", move |m| {
                if m.data == b"urgent" {
                    return Ok(vec![bulk_delivered as u8]);
                }
                bulk_delivered = true;
                Ok(vec![m.data.iter().all(|&b| b == 0xb7) as u8])
            })
            .unwrap();
            println!("ready");
            let mut go = String::new();
            std::io::stdin().read_line(&mut go).unwrap();
            assert_eq!(go.trim(), "go");
            p.start_background_services().unwrap();
        }
        other => panic!("unknown role {other}"),
    }
    serve_until_stdin_closes();
}

#[test]
fn hundred_thousand_messages_and_an_urgent_one_overtaking_bulk() {
    let fabric = format!("test-integrity-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric);
    p.register_node(node("sender")).unwrap();
    let check = spawn_peer(&[(ROLE, "check"), (FABRIC, &fabric)]);

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
    drop(check);

    // A 16 MiB BULK request, then an ULTRA_HIGH one, to a receiver that does not poll yet:
    // `send_data_nb` returns once a message is in the ring, so the whole bulk transfer waits
    // ahead of the urgent message on the same channel. Once the receiver runs, the urgent
    // message must be answered before the bulk one is delivered.
    let mut sink = spawn_peer(&[(ROLE, "bulk-sink"), (FABRIC, &fabric)]);
    let bulk = vec![0xb7u8; 16 << 20];
    let bulk_opts = SendOptions {
        priority: PacketPriority::Bulk,
        ..opts.clone()
    };
    let urgent_opts = SendOptions {
        priority: PacketPriority::UltraHigh,
        ..opts.clone()
    };
    let mut bulk_request = p
        .send_data_nb("sender", "bulk-sink", &bulk, &bulk_opts)
        .unwrap();
    let urgent_request = p
        .send_data_nb("sender", "bulk-sink", b"urgent", &urgent_opts)
        .unwrap();
    assert!(
        bulk_request.test().is_none(),
        "the receiver answered before it started"
    );
    sink.send_line("go");
    assert_eq!(
        urgent_request.wait().unwrap(),
        [0],
        "the bulk transfer queued first was delivered before the urgent message"
    );
    assert_eq!(bulk_request.wait().unwrap(), [1], "bulk payload corrupted");
}
