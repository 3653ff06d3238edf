//! Large messages between hosts: a message that comes over TCP in fragments, or in one frame
//! of 16 KiB or more, is put together as its frames arrive rather than through an inbound
//! ring. Whatever `max_packet_size` (it sizes fragments in rings; frames to the process
//! hosting the destination carry up to 256 KiB), sizes around every boundary (the 16 KiB
//! threshold, a frame's payload, `max_packet_size`) mixed with small messages on two
//! priorities arrive whole, once and in order per priority, at a reader of the node's queue
//! and at a handler; large requests are answered with large responses.

mod common;

use common::{loopback_tcp, node, test_key, until_tcp, FabricDir};
use hyperfabric::config::ProtocolOptions;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::PacketPriority;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A protocol over TCP (listening on loopback when `listen`) whose fragments in rings are
/// at most `max_packet` bytes.
fn protocol(fabric: &str, listen: bool, max_packet: usize) -> HyperFabricProtocol {
    HyperFabricProtocol::with_config(ProtocolConfig {
        options: ProtocolOptions {
            max_packet_size: max_packet as u32,
            ..Default::default()
        },
        fabric_name: Some(fabric.into()),
        key: Some(test_key()),
        tcp: Some(loopback_tcp(listen)),
        ..Default::default()
    })
    .unwrap()
}

/// The sizes sent: every boundary a fragment size of `max_packet` or the largest frame
/// makes, either side, with small messages between.
fn sizes(max_packet: usize) -> Vec<usize> {
    let mut s = Vec::new();
    for edge in [16 << 10, max_packet, 2 * max_packet, 256 << 10, 3 << 20] {
        for n in [
            edge.saturating_sub(97),
            edge - 1,
            edge,
            edge + 1,
            edge + 4099,
        ] {
            s.push(n);
            s.push(n % 300);
        }
    }
    s.extend([0, 1, 1 << 20, 5, (1 << 20) + 13, 64 << 10]);
    s
}

/// Message `i` of `n` bytes: its index, then bytes that depend on both.
fn message(i: usize, n: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..n).map(|k| (k.wrapping_mul(31) ^ i) as u8).collect();
    if n >= 4 {
        m[..4].copy_from_slice(&(i as u32).to_le_bytes());
    }
    m
}

/// The priority message `i` goes with: two of them, so two rings of one connection.
fn priority(i: usize) -> PacketPriority {
    if i % 3 == 0 {
        PacketPriority::High
    } else {
        PacketPriority::Bulk
    }
}

/// Posts every size from "a" to "b" and checks what "b"'s reader (or handler, when
/// `handler`) gets: every message whole, in order per priority. Returns how many frames
/// "b" put together as they arrived, and how many of those the kernel received in place.
fn posts_arrive_whole_and_in_order(max_packet: usize, handler: bool) -> (f64, f64) {
    let f = FabricDir(format!(
        "tcp-large-{max_packet}-{handler}-{}",
        std::process::id()
    ));
    let a = protocol(&f.0, true, max_packet);
    let b = protocol(&f.0, false, max_packet);
    a.register_node(node("a")).unwrap();
    a.start_background_services().unwrap();
    b.register_node(node("b")).unwrap();
    let (tx, rx) = mpsc::channel();
    if handler {
        b.on_receive("b", move |m| {
            tx.send(m.data.to_vec()).unwrap();
            Ok(Vec::new())
        })
        .unwrap();
        b.start_background_services().unwrap();
    }
    b.connect_host(a.listen_address().unwrap()).unwrap();
    until_tcp(&a, "b");
    let sizes = sizes(max_packet);
    let posted = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for (i, &n) in sizes.iter().enumerate() {
                let opts = SendOptions {
                    priority: priority(i),
                    ..Default::default()
                };
                a.post("a", "b", &message(i, n), &opts)
                    .unwrap_or_else(|e| panic!("post {i} ({n} bytes): {e}"));
                posted.fetch_add(1, Ordering::Release);
            }
        });
        if !handler {
            // Without an engine thread, "b" reads its connection only when its reader
            // waits: the first messages (small ones and ones of 16 KiB, on both priorities)
            // are read together, many frames in one go.
            while posted.load(Ordering::Acquire) < 10 {
                std::thread::yield_now();
            }
        }
        // Per priority, the indices in the order they were sent.
        let mut expected: Vec<Vec<usize>> = vec![Vec::new(), Vec::new()];
        for i in 0..sizes.len() {
            expected[(priority(i) == PacketPriority::High) as usize].push(i);
        }
        let mut next = [0usize; 2];
        for k in 0..sizes.len() {
            let data = if handler {
                rx.recv_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|e| panic!("message {k}: {e}"))
            } else {
                b.recv("b", Duration::from_secs(30))
                    .unwrap_or_else(|e| panic!("message {k}: {e}"))
                    .data
                    .to_vec()
            };
            // Which message it is: by its index where it has one, else by its size
            // (unique among the messages of fewer than 4 bytes of one priority).
            let found = (0..2).find_map(|p| {
                let i = *expected[p].get(next[p])?;
                (data == message(i, sizes[i])).then_some(p)
            });
            let Some(p) = found else {
                panic!(
                    "message {k} ({} bytes) is not the next of either priority",
                    data.len()
                );
            };
            next[p] += 1;
        }
        assert_eq!(next[0] + next[1], sizes.len());
        if handler {
            // With everything before it delivered (nothing waits in the connection's rings),
            // one message in fragments alone: under any load, its fragments are put
            // together as they arrive (a stream that keeps the handler behind may send
            // every frame through the rings, which is right, and what the mix above may do).
            let last = message(sizes.len(), 3 << 20);
            a.post("a", "b", &last, &SendOptions::default()).unwrap();
            let got = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            assert!(got == last, "the last message arrived changed");
        }
    });
    let m = b.get_topology_info().unwrap().performance_metrics;
    (m["tcp_frames_in_place"], m["tcp_frames_landed"])
}

/// Frames of the largest size: most are landed (received by the kernel into their
/// message).
#[test]
fn posts_in_fragments_of_the_largest_frame_arrive_whole_and_in_order() {
    let (in_place, landed) = posts_arrive_whole_and_in_order(1 << 20, false);
    assert!(landed > 0.0 && in_place >= landed, "{in_place} {landed}");
}

/// A small `max_packet_size` sizes the fragments in rings, not the frames to the process
/// that hosts the destination: those are as large as a connection carries, so large
/// messages are still landed; frames too small to be landed (messages of 16 to 32 KiB,
/// the last fragments of larger ones) are still put together as they arrive.
#[test]
fn posts_with_a_small_max_packet_size_arrive_whole_and_in_order() {
    let (in_place, landed) = posts_arrive_whole_and_in_order(4096, false);
    assert!(landed > 0.0 && in_place > landed, "{in_place} {landed}");
}

/// At a handler (an engine thread reads the connection), sizes around a `max_packet_size`
/// that is no power of two. Whether the mix's frames land or are put together in place depends on
/// whether the handler kept up (a frame that arrives while its connection's inbound ring
/// still holds frames goes through the ring); the message sent alone after them is.
#[test]
fn posts_to_a_handler_arrive_whole_and_in_order() {
    let (in_place, landed) = posts_arrive_whole_and_in_order(100_000, true);
    assert!(in_place > 0.0 && in_place >= landed, "{in_place} {landed}");
}

/// Large requests answered with large responses (both put together as they arrive).
#[test]
fn large_requests_get_large_answers() {
    let f = FabricDir(format!("tcp-large-req-{}", std::process::id()));
    let a = protocol(&f.0, true, 1 << 20);
    let b = protocol(&f.0, false, 1 << 20);
    a.register_node(node("a")).unwrap();
    a.on_receive("a", |m| Ok(m.data.iter().rev().copied().collect()))
        .unwrap();
    a.start_background_services().unwrap();
    b.register_node(node("b")).unwrap();
    b.connect_host(a.listen_address().unwrap()).unwrap();
    until_tcp(&b, "a");
    for (i, n) in [20_000, 300_000, 1 << 20, 40, (2 << 20) + 7]
        .into_iter()
        .enumerate()
    {
        let m = message(i, n);
        let back = b
            .send_data("b", "a", &m, &SendOptions::default())
            .unwrap_or_else(|e| panic!("request {i} ({n} bytes): {e}"));
        assert!(
            back.iter().rev().eq(m.iter()),
            "answer {i} ({n} bytes) differs"
        );
    }
}
