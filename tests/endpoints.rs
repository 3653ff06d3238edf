//! Endpoints and `recv` without the engine lock: many threads posting to one node through
//! their own endpoints (each thread's order kept, nothing lost, nothing twice), several
//! threads receiving for one node, a handler answering while its process also sends, and two
//! sides flooding each other without reading (no deadlock). The two sides are two protocol
//! instances on one fabric: they reach each other through files in shared memory, with engines
//! of their own, as two processes do.

mod common;

use common::FabricDir;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::ErrorKind;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn protocol(fabric: &str, nodes: &[&str]) -> HyperFabricProtocol {
    let p = HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        ..Default::default()
    })
    .unwrap();
    for n in nodes {
        p.register_node(NodeSignature::new(*n, HardwareType::CpuServer, 100.0, 10).unwrap())
            .unwrap();
    }
    p
}

fn fabric(tag: &str) -> (String, FabricDir) {
    let name = format!("ep-{tag}-{}", std::process::id());
    (name.clone(), FabricDir(name))
}

/// (thread, sequence number, filler up to `len`).
fn message(thread: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(len.max(8));
    m.extend_from_slice(&thread.to_le_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    m.resize(len.max(8), (seq % 251) as u8);
    m
}

fn parse(m: &[u8]) -> (u32, u32) {
    (
        u32::from_le_bytes(m[0..4].try_into().unwrap()),
        u32::from_le_bytes(m[4..8].try_into().unwrap()),
    )
}

#[test]
fn many_threads_post_through_endpoints_and_several_threads_receive() {
    const SENDERS: u32 = 4;
    const RECEIVERS: usize = 2;
    const EACH: u32 = 5_000;
    let (name, _dir) = fabric("many");
    let tx = Arc::new(protocol(&name, &["a"]));
    let rx = Arc::new(protocol(&name, &["b"]));
    let receivers: Vec<_> = (0..RECEIVERS)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                // What this receiver saw from each sender, in the order it saw it.
                let mut seen: HashMap<u32, Vec<u32>> = HashMap::new();
                loop {
                    match rx.recv("b", Duration::from_millis(500)) {
                        Ok(m) => {
                            assert_eq!(m.source, "a");
                            let (t, s) = parse(&m.data);
                            // Sizes vary, inline and by descriptor: the bytes are the sender's.
                            assert_eq!(m.data.to_vec(), message(t, s, m.data.len()));
                            seen.entry(t).or_default().push(s);
                        }
                        Err(e) if e.kind() == ErrorKind::Timeout => return seen,
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            })
        })
        .collect();
    let senders: Vec<_> = (0..SENDERS)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut ep = tx.endpoint("a", "b").unwrap();
                for s in 0..EACH {
                    let len = [8, 100, 3000, 40_000][(s % 4) as usize];
                    ep.post(&message(t, s, len)).unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let mut all: HashMap<u32, Vec<u32>> = HashMap::new();
    for r in receivers {
        for (t, seqs) in r.join().unwrap() {
            // Each receiver saw each sender's messages in the order they were sent.
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "sender {t} out of order"
            );
            all.entry(t).or_default().extend(seqs);
        }
    }
    assert_eq!(all.len(), SENDERS as usize);
    for (t, mut seqs) in all {
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (0..EACH).collect::<Vec<_>>(),
            "sender {t} lost or doubled"
        );
    }
}

#[test]
fn a_handler_answers_while_its_process_sends_through_endpoints() {
    let (name, _dir) = fabric("handler");
    let server = Arc::new(protocol(&name, &["h", "out"]));
    server.on_receive("h", |m| Ok(m.data.to_vec())).unwrap();
    server.start_background_services().unwrap();
    let client = protocol(&name, &["c", "sink"]);
    let flood = {
        let server = server.clone();
        std::thread::spawn(move || {
            let mut ep = server.endpoint("out", "sink").unwrap();
            for i in 0..20_000u32 {
                ep.post(&i.to_le_bytes()).unwrap();
            }
        })
    };
    let mut ep = client.endpoint("c", "h").unwrap();
    let opts = SendOptions::default();
    let mut sunk = 0u32;
    for i in 0..2_000u32 {
        let data = message(0, i, 16 + (i as usize % 5000));
        assert_eq!(ep.send_data(&data, &opts).unwrap(), data);
        while let Ok(m) = client.recv("sink", Duration::ZERO) {
            assert_eq!(m.data.to_vec(), sunk.to_le_bytes());
            sunk += 1;
        }
    }
    while sunk < 20_000 {
        let m = client.recv("sink", Duration::from_secs(5)).unwrap();
        assert_eq!(m.data.to_vec(), sunk.to_le_bytes());
        sunk += 1;
    }
    flood.join().unwrap();
}

#[test]
fn two_sides_flooding_each_other_without_reading_do_not_deadlock() {
    // Each side posts far more than a ring holds before it reads anything: a sender waiting
    // for room drains its own rings into its node's queue, so both finish.
    const N: u32 = 20_000;
    let (name, _dir) = fabric("flood");
    let one = protocol(&name, &["x"]);
    let two = protocol(&name, &["y"]);
    let side = |p: HyperFabricProtocol, me: &'static str, peer: &'static str| {
        std::thread::spawn(move || {
            let mut ep = p.endpoint(me, peer).unwrap();
            for i in 0..N {
                ep.post(&message(0, i, 64 + (i as usize % 200))).unwrap();
            }
            for i in 0..N {
                let m = p.recv(me, Duration::from_secs(10)).unwrap();
                assert_eq!(parse(&m.data), (0, i));
            }
        })
    };
    let a = side(one, "x", "y");
    let b = side(two, "y", "x");
    a.join().unwrap();
    b.join().unwrap();
}

#[test]
fn an_endpoint_to_a_node_that_left_fails_and_its_successor_never_reads_its_ring() {
    let (name, _dir) = fabric("left");
    let tx = protocol(&name, &["a"]);
    let rx = protocol(&name, &["b"]);
    let mut ep = tx.endpoint("a", "b").unwrap();
    ep.post(b"first").unwrap();
    assert_eq!(
        &*rx.recv("b", Duration::from_secs(5)).unwrap().data,
        b"first"
    );
    rx.unregister_node("b").unwrap();
    let err = ep.post(b"lost").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NodeNotFound);
    // A new registration of the name (maybe the same index) starts empty.
    rx.register_node(NodeSignature::new("b", HardwareType::CpuServer, 100.0, 10).unwrap())
        .unwrap();
    assert_eq!(
        ep.post(b"late").unwrap_err().kind(),
        ErrorKind::NodeNotFound
    );
    assert_eq!(
        rx.recv("b", Duration::from_millis(100)).unwrap_err().kind(),
        ErrorKind::Timeout
    );
    let mut again = tx.endpoint("a", "b").unwrap();
    again.post(b"new").unwrap();
    assert_eq!(&*rx.recv("b", Duration::from_secs(5)).unwrap().data, b"new");
}

#[test]
fn endpoints_refuse_unknown_nodes() {
    let (name, _dir) = fabric("unknown");
    let p = protocol(&name, &["a"]);
    assert_eq!(
        p.endpoint("a", "nobody").unwrap_err().kind(),
        ErrorKind::NodeNotFound
    );
    assert_eq!(
        p.endpoint("nobody", "a").unwrap_err().kind(),
        ErrorKind::NodeNotFound
    );
}

#[test]
fn recv_into_copies_into_the_callers_buffer_and_keeps_a_message_too_large_for_it() {
    let (name, _dir) = fabric("into");
    let tx = protocol(&name, &["a"]);
    let rx = protocol(&name, &["b"]);
    let mut ep = tx.endpoint("a", "b").unwrap();
    // Inline, by descriptor, and one from the engine's path, in order.
    let big = message(0, 1, 100_000);
    ep.post(b"small").unwrap();
    ep.post(&big).unwrap();
    ep.post(b"after").unwrap();
    let mut buf = vec![0u8; 16];
    let r = rx.recv_into("b", Duration::from_secs(5), &mut buf).unwrap();
    assert_eq!(
        (&buf[..r.len], r.source.as_str(), r.one_way),
        (&b"small"[..], "a", true)
    );
    // Too small: refused with the size, and the message stays the next one.
    for _ in 0..2 {
        let e = rx
            .recv_into("b", Duration::from_secs(5), &mut buf)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BufferOverflow);
        assert!(e.to_string().contains("100000"), "{e}");
    }
    let mut large = vec![0u8; 200_000];
    let r = rx
        .recv_into("b", Duration::from_secs(5), &mut large)
        .unwrap();
    assert_eq!(&large[..r.len], &big[..]);
    let r = rx.recv_into("b", Duration::from_secs(5), &mut buf).unwrap();
    assert_eq!(&buf[..r.len], b"after");
    // Messages with metadata keep it.
    let opts = SendOptions {
        metadata: Some(serde_json::json!({"k": 1}).as_object().unwrap().clone()),
        ..Default::default()
    };
    tx.post("a", "b", b"meta", &opts).unwrap();
    let r = rx.recv_into("b", Duration::from_secs(5), &mut buf).unwrap();
    assert_eq!(&buf[..r.len], b"meta");
    assert!(String::from_utf8_lossy(&r.metadata).contains("\"k\""));
}

#[test]
fn post_many_sends_a_batch_in_order_with_one_doorbell() {
    let (name, _dir) = fabric("batch");
    let tx = protocol(&name, &["a"]);
    let rx = protocol(&name, &["b"]);
    let mut ep = tx.endpoint("a", "b").unwrap();
    // More than a ring holds, sizes mixed (inline and by descriptor): the batch waits for
    // room as single posts do.
    let msgs: Vec<Vec<u8>> = (0..3_000u32)
        .map(|i| message(0, i, [8, 200, 5000][i as usize % 3]))
        .collect();
    let receiver = std::thread::spawn(move || {
        let mut buf = vec![0u8; 8192];
        for i in 0..3_000u32 {
            let r = rx
                .recv_into("b", Duration::from_secs(10), &mut buf)
                .unwrap();
            assert_eq!(parse(&buf[..r.len]), (0, i));
            assert_eq!(r.len, [8, 200, 5000][i as usize % 3]);
        }
    });
    let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
    for chunk in refs.chunks(64) {
        ep.post_many(chunk).unwrap();
    }
    receiver.join().unwrap();
}

#[test]
fn recv_batch_lends_messages_in_place_in_order_up_to_its_limit() {
    let (name, _dir) = fabric("lend");
    let tx = protocol(&name, &["a"]);
    let rx = protocol(&name, &["b"]);
    let sender = std::thread::spawn(move || {
        let mut ep = tx.endpoint("a", "b").unwrap();
        for i in 0..1000u32 {
            ep.post(&message(0, i, [8, 3000][i as usize % 2])).unwrap();
        }
        // A request through the same ring: lent too, after the posts, and it gets its
        // receipt.
        let req = ep.send_data_nb(b"end", &SendOptions::default()).unwrap();
        assert_eq!(req.wait().unwrap(), b"");
    });
    let mut seen = Vec::new();
    let mut last = false;
    while !last {
        let n = rx
            .recv_batch("b", Duration::from_secs(5), 64, |m| {
                assert_eq!(m.source, "a");
                if m.data == b"end" {
                    assert!(!m.one_way);
                    last = true;
                } else {
                    seen.push(parse(m.data).1);
                }
            })
            .unwrap();
        assert!((1..=64).contains(&n), "{n} messages in one batch");
    }
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    sender.join().unwrap();
    assert_eq!(
        rx.recv_batch("b", Duration::ZERO, 8, |_| {})
            .unwrap_err()
            .kind(),
        ErrorKind::Timeout
    );
    assert_eq!(
        rx.recv_batch("b", Duration::ZERO, 0, |_| {})
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn every_receive_reports_what_a_plain_post_carried() {
    use hyperfabric::model::{DataType, PacketPriority};
    let (name, _dir) = fabric("fields");
    let tx = protocol(&name, &["a"]);
    let rx = protocol(&name, &["b"]);
    let mut ep = tx.endpoint("a", "b").unwrap();
    let opts = SendOptions {
        priority: PacketPriority::High,
        data_type: DataType::Gradient,
        ..Default::default()
    };
    for i in 0..3u8 {
        ep.post_with(&[i; 7], &opts).unwrap();
    }
    ep.post(b"plain").unwrap();
    let wait = Duration::from_secs(5);
    let m = rx.recv("b", wait).unwrap();
    assert_eq!(
        (&m.data[..], m.source.as_str(), m.destination.as_str()),
        (&[0u8; 7][..], "a", "b")
    );
    assert_eq!(
        (
            m.priority,
            m.data_type,
            m.one_way,
            m.request_id,
            m.metadata.len()
        ),
        (PacketPriority::High, DataType::Gradient, true, 0, 0)
    );
    let mut buf = [0u8; 64];
    let r = rx.recv_into("b", wait, &mut buf).unwrap();
    assert_eq!((&buf[..r.len], r.source.as_str()), (&[1u8; 7][..], "a"));
    assert_eq!(
        (
            r.priority,
            r.data_type,
            r.one_way,
            r.request_id,
            r.metadata.len()
        ),
        (PacketPriority::High, DataType::Gradient, true, 0, 0)
    );
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let n = rx
            .recv_batch("b", wait, 8, |m| {
                let fields = (m.source, m.destination, m.priority, m.data_type);
                seen.push((m.data.to_vec(), fields.0, fields.1, fields.2, fields.3))
            })
            .unwrap();
        assert!(n >= 1);
    }
    assert_eq!(seen[0].0, [2u8; 7]);
    assert_eq!((seen[0].1.as_str(), seen[0].2.as_str()), ("a", "b"));
    assert_eq!(
        (seen[0].3, seen[0].4),
        (PacketPriority::High, DataType::Gradient)
    );
    assert_eq!(seen[1].0, b"plain");
    assert_eq!(
        (seen[1].3, seen[1].4),
        (PacketPriority::Medium, DataType::default())
    );
}

#[test]
fn a_handler_sends_through_an_endpoint_and_is_refused_sends_by_name() {
    let (name, _dir) = fabric("handler-sends");
    let server = Arc::new(protocol(&name, &["srv"]));
    let client = protocol(&name, &["cli", "out"]);
    let ep = std::sync::Mutex::new(server.endpoint("srv", "out").unwrap());
    let weak = Arc::downgrade(&server);
    server
        .on_request("srv", move |m, reply| {
            let p = weak.upgrade().expect("the protocol runs its handler");
            // By node names: refused at once (it could wait for the engine the handler holds).
            let refused = p.post("srv", "out", &m.data, &SendOptions::default());
            match refused {
                Err(e) if e.kind() == ErrorKind::InvalidArgument => reply.write(b"refused"),
                other => reply.write(format!("{other:?}").as_bytes()),
            }
            // Through an endpoint made before: sent.
            ep.lock().unwrap().post(&m.data)
        })
        .unwrap();
    server.start_background_services().unwrap();
    let opts = SendOptions {
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    for i in 0..20u8 {
        let answer = client.send_data("cli", "srv", &[i; 5], &opts).unwrap();
        assert_eq!(answer, b"refused");
        let m = client.recv("out", Duration::from_secs(5)).unwrap();
        assert_eq!(&m.data[..], &[i; 5]);
    }
    server.stop_background_services().unwrap();
}

#[test]
fn a_handler_dropped_with_a_pending_request_does_not_wait_for_the_engine() {
    let (name, _dir) = fabric("handler-drop");
    let p = protocol(&name, &["h", "a"]);
    // Nobody drives the receiving side: the request stays pending.
    let quiet = protocol(&name, &["x"]);
    let opts = SendOptions {
        timeout: Duration::from_secs(60),
        ..Default::default()
    };
    for round in 0..2 {
        let pending = p.send_data_nb("a", "x", b"q", &opts).unwrap();
        let kept = std::sync::Mutex::new(Some(pending));
        p.on_request("h", move |_, _| {
            let _ = kept.lock().unwrap().is_some();
            Ok(())
        })
        .unwrap();
        // The handler (and the request it holds) goes without the engine held: a request
        // dropped there gives itself up through the engine.
        if round == 0 {
            p.clear_handler("h").unwrap();
        } else {
            p.unregister_node("h").unwrap();
        }
    }
    drop(quiet);
}
