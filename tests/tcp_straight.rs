//! Messages from another host handed straight to the receive that polls the engine: with
//! no engine thread, a whole plain message that comes over TCP goes from the stream into
//! the waiting `recv_into` buffer (or `recv` message). Mixed with what may not take that
//! way (large messages put together as they arrive, requests that are acknowledged,
//! metadata, a buffer too small, a second priority), every message arrives once, whole,
//! with its metadata, in order per priority, and a message too large for the buffer stays
//! the next one.

mod common;

use common::{loopback_tcp, node, tcp_protocol, test_key, until_tcp, FabricDir};
use hyperfabric::fabric::SendOptions;
use hyperfabric::model::PacketPriority;
use hyperfabric::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What message `i` is: its size, priority, whether it carries metadata and whether it is
/// a request (`send_data`, acknowledged by the receiving engine).
fn shape(i: usize) -> (usize, PacketPriority, bool, bool) {
    let size = match i % 11 {
        3 => 40_000 + i,     // put together as it arrives, not through a ring
        7 => 300 + i % 97,   // larger than the small buffer below
        _ => (i * 37) % 200, // small, some empty
    };
    let priority = if i % 5 == 0 {
        PacketPriority::High
    } else {
        PacketPriority::Bulk
    };
    (size, priority, i % 13 == 4, i % 17 == 9)
}

/// Message `i`'s bytes: its index first, then bytes that depend on it.
fn message(i: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..shape(i).0).map(|k| (k * 7 + i) as u8).collect();
    if m.len() >= 4 {
        m[..4].copy_from_slice(&(i as u32).to_le_bytes());
    }
    m
}

#[test]
fn messages_handed_straight_to_a_receive_keep_their_order_and_contents() {
    const N: usize = 3_000;
    let f = FabricDir(format!("tcp-straight-{}", std::process::id()));
    let a = tcp_protocol(&f.0, Some(test_key()), true);
    let b = tcp_protocol(&f.0, Some(test_key()), false);
    a.register_node(node("a")).unwrap();
    // The sender's engine on its own thread; the receiver's only in its receives.
    a.start_background_services().unwrap();
    b.register_node(node("b")).unwrap();
    b.connect_host(a.listen_address().unwrap()).unwrap();
    until_tcp(&a, "b");
    let sent = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..N {
                let (_, priority, meta, request) = shape(i);
                let mut opts = SendOptions {
                    priority,
                    ..Default::default()
                };
                if meta {
                    let mut m = serde_json::Map::new();
                    m.insert("i".into(), (i as u64).into());
                    opts.metadata = Some(m);
                }
                let data = message(i);
                let r = if request {
                    a.send_data("a", "b", &data, &opts).map(drop)
                } else {
                    a.post("a", "b", &data, &opts)
                };
                r.unwrap_or_else(|e| panic!("message {i}: {e}"));
                sent.store(i + 1, Ordering::Release);
            }
        });
        // Per priority, the indices in the order they were sent.
        let mut expected: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        for i in 0..N {
            expected[(shape(i).1 == PacketPriority::High) as usize].push(i);
        }
        let mut next = [0usize; 2];
        let mut big = vec![0u8; 1 << 20];
        let mut small = [0u8; 256];
        let mut too_large = 0;
        for k in 0..N {
            // Every few messages a buffer that may be too small: the message then stays
            // the next one, and the large buffer takes it.
            let got = if k % 3 == 0 {
                match b.recv_into("b", Duration::from_secs(30), &mut small) {
                    Ok(r) => Some((r.clone(), small[..r.len].to_vec())),
                    Err(e) if e.kind() == ErrorKind::BufferOverflow => {
                        too_large += 1;
                        None
                    }
                    Err(e) => panic!("message {k}: {e}"),
                }
            } else {
                None
            };
            let (r, data) = match got {
                Some(g) => g,
                None => {
                    let r = b
                        .recv_into("b", Duration::from_secs(30), &mut big)
                        .unwrap_or_else(|e| panic!("message {k}: {e}"));
                    let data = big[..r.len].to_vec();
                    (r, data)
                }
            };
            let p = (r.priority == PacketPriority::High) as usize;
            let i = *expected[p]
                .get(next[p])
                .unwrap_or_else(|| panic!("message {k}: more of priority {p} than sent"));
            next[p] += 1;
            assert!(
                data == message(i),
                "message {k}: not message {i}, next of its priority"
            );
            assert_eq!(r.source.as_str(), "a");
            assert_eq!(r.one_way, !shape(i).3, "message {i}");
            let meta: Option<serde_json::Value> = (!r.metadata.is_empty())
                .then(|| serde_json::from_slice(&r.metadata).expect("metadata is JSON"));
            match shape(i).2 {
                true => assert_eq!(meta.unwrap()["i"], i as u64, "message {i}"),
                false => assert!(meta.is_none(), "message {i} got metadata"),
            }
        }
        assert_eq!(next[0] + next[1], N);
        assert!(
            too_large > 0,
            "no message was too large for the small buffer"
        );
    });
    assert_eq!(sent.load(Ordering::Acquire), N);
    // Nothing more came than was sent.
    let more = b.recv_into("b", Duration::ZERO, &mut [0u8; 64]);
    assert_eq!(more.unwrap_err().kind(), ErrorKind::Timeout);
    let m = b.get_topology_info().unwrap().performance_metrics;
    let handed = m["tcp_messages_handed"];
    // The plain ones that found the receive waiting went straight; large messages and
    // requests never do.
    let never = (0..N)
        .filter(|&i| shape(i).0 >= 16 << 10 || shape(i).3)
        .count();
    assert!(
        handed > 0.0 && handed <= (N - never) as f64,
        "{handed} of {N}"
    );
}

/// A protocol over TCP (listening on loopback when `listen`) whose nodes `a` and `b` are
/// linked only through `sw`.
fn through_switch(fabric: &str, listen: bool) -> hyperfabric::fabric::HyperFabricProtocol {
    use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig};
    HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        key: Some(test_key()),
        links: vec![
            hyperfabric::LinkSpec::new("a", "sw").latency_ns(100),
            hyperfabric::LinkSpec::new("sw", "b").latency_ns(100),
        ],
        tcp: Some(loopback_tcp(listen)),
        ..Default::default()
    })
    .unwrap()
}

/// Messages to `b` that come over TCP to the switch `sw` hosted beside `b` take their last
/// hop (a ring between the two nodes) even while `b`'s receive polls the engine: none is
/// handed straight to `b` ahead of the earlier ones still on that hop.
#[test]
fn messages_for_a_hop_beside_the_receiver_take_their_hop_in_order() {
    const N: usize = 6_000;
    let f = FabricDir(format!("tcp-straight-hop-{}", std::process::id()));
    let a = through_switch(&f.0, true);
    let b = through_switch(&f.0, false);
    a.register_node(node("a")).unwrap();
    a.start_background_services().unwrap();
    b.register_node(node("sw")).unwrap();
    b.register_node(node("b")).unwrap();
    b.connect_host(a.listen_address().unwrap()).unwrap();
    until_tcp(&a, "sw");
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..N {
                let opts = SendOptions {
                    priority: PacketPriority::Bulk,
                    compression_enabled: i % 7 == 5,
                    ..Default::default()
                };
                let data = (i as u32).to_le_bytes();
                let sent = if i % 7 == 3 {
                    a.send_data_nb("a", "b", &data, &opts).map(drop)
                } else {
                    a.post("a", "b", &data, &opts)
                };
                sent.unwrap_or_else(|e| panic!("message {i}: {e}"));
            }
        });
        for i in 0..N {
            let m = b
                .recv("b", Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
            assert_eq!(m.data[..], (i as u32).to_le_bytes(), "message {i}");
        }
    });
    let m = b.get_topology_info().unwrap().performance_metrics;
    assert_eq!(m["tcp_messages_handed"], 0.0, "a message skipped its hop");
}
