//! Large messages from another host landed by the kernel straight into the buffer of the
//! `recv_into` that waits for them (no engine thread: the receive polls the engine). Mixed
//! with messages that may not take that way, with waits that end in the middle of a message
//! (its buffer is then taken back and the message goes on through the reassembly), with two
//! threads receiving for one node, and with a sender that stops inside a message: every
//! message arrives once, whole, in order per priority, and a stalled sender holds nothing
//! else back.

mod common;

use common::{
    frame_header as header, node, protocol_with_key, tcp_protocol, test_key, until_tcp, FabricDir,
};
use hyperfabric::codec::handshake::{self, Credentials};
use hyperfabric::fabric::{HyperFabricProtocol, SendOptions};
use hyperfabric::model::PacketPriority;
use hyperfabric::ErrorKind;
use std::io::Write;
use std::time::{Duration, Instant};

/// Message `i`'s size, priority, and whether it carries metadata or is a request (neither
/// lands into a receive's buffer).
fn shape(i: usize) -> (usize, PacketPriority, bool, bool) {
    let size = match i % 9 {
        0 => 40_000 + i,     // one frame, landed
        1 => 65_536,         // one frame
        2 => 300_000 + i,    // two frames, the second short
        3 => 1 << 20,        // four frames of 256 KiB
        4 => (1 << 20) + 17, // and a short fifth
        5 => (i * 37) % 500, // small: straight from the stream, or a ring
        6 => 70_000,         // with metadata
        7 => 50_000,         // a request
        _ => (3 << 20) + i,  // larger than the small buffer below
    };
    let priority = if i % 4 == 1 {
        PacketPriority::High
    } else {
        PacketPriority::Bulk
    };
    (size, priority, i % 9 == 6, i % 9 == 7)
}

/// Message `i`'s bytes: its index first, then bytes that depend on it.
fn message(i: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..shape(i).0)
        .map(|k| (k * 13 + i + k / 4093) as u8)
        .collect();
    if m.len() >= 4 {
        m[..4].copy_from_slice(&(i as u32).to_le_bytes());
    }
    m
}

/// A sender `a` (engine thread) and a receiver `b` (no engine thread), connected.
fn pair(tag: &str) -> (FabricDir, HyperFabricProtocol, HyperFabricProtocol) {
    let f = FabricDir(format!("tcp-into-{tag}-{}", std::process::id()));
    let a = tcp_protocol(&f.0, Some(test_key()), true);
    let b = tcp_protocol(&f.0, Some(test_key()), false);
    a.register_node(node("a")).unwrap();
    a.start_background_services().unwrap();
    b.register_node(node("b")).unwrap();
    b.connect_host(a.listen_address().unwrap()).unwrap();
    until_tcp(&a, "b");
    (f, a, b)
}

/// Sends messages `0..n` from `a` to `b`.
fn send_all(a: &HyperFabricProtocol, n: usize) {
    for i in 0..n {
        let (_, priority, meta, request) = shape(i);
        let mut opts = SendOptions {
            priority,
            timeout: Duration::from_secs(60),
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
    }
}

/// The message index a received message carries, checked against its shape and bytes.
fn check(r: &hyperfabric::fabric::Received, data: &[u8]) -> usize {
    assert!(
        data.len() >= 4,
        "a message without its index: {} bytes",
        data.len()
    );
    let i = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
    assert!(data == message(i), "message {i}: its bytes");
    assert_eq!(r.source.as_str(), "a");
    assert_eq!(r.priority, shape(i).1, "message {i}");
    assert_eq!(r.one_way, !shape(i).3, "message {i}");
    let meta: Option<serde_json::Value> = (!r.metadata.is_empty())
        .then(|| serde_json::from_slice(&r.metadata).expect("metadata is JSON"));
    match shape(i).2 {
        true => assert_eq!(meta.unwrap()["i"], i as u64, "message {i}"),
        false => assert!(meta.is_none(), "message {i} got metadata"),
    }
    i
}

#[test]
fn large_messages_land_in_the_waiting_buffer_whole_and_in_order() {
    // Indices 5 (small, some under 4 bytes) are left out: every message carries its index.
    const N: usize = 450;
    let (_f, a, b) = pair("order");
    let metric = |k: &str| b.get_topology_info().unwrap().performance_metrics[k];
    std::thread::scope(|s| {
        s.spawn(|| send_all(&a, N));
        let mut expected: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        for i in 0..N {
            expected[(shape(i).1 == PacketPriority::High) as usize].push(i);
        }
        let mut next = [0usize; 2];
        let mut big = vec![0u8; 4 << 20];
        let mut small = vec![0u8; 2 << 20];
        let mut k = 0;
        while next[0] + next[1] < N {
            // Some waits are short (they end inside large messages: their buffer is taken
            // back), some buffers too small (the message then stays the next one).
            let wait = match k % 4 {
                0 => Duration::ZERO,
                1 => Duration::from_micros(30),
                _ => Duration::from_secs(30),
            };
            let buf: &mut [u8] = if k % 5 == 2 { &mut small } else { &mut big };
            k += 1;
            let r = match b.recv_into("b", wait, buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::Timeout && wait < Duration::from_secs(1) => {
                    // The buffer is the caller's again: what it writes there is no
                    // message's.
                    buf.fill(0xee);
                    continue;
                }
                // Too large for the small buffer: it stays the next message (checked below
                // when the large buffer takes it).
                Err(e) if e.kind() == ErrorKind::BufferOverflow => continue,
                Err(e) => panic!("after {k} receives: {e}"),
            };
            let data = &buf[..r.len];
            if data.len() < 4 {
                // A small message of index 5 mod 9.
                let p = (r.priority == PacketPriority::High) as usize;
                let i = expected[p][next[p]];
                assert_eq!(
                    i % 9,
                    5,
                    "a message of {} bytes is not message {i}",
                    data.len()
                );
                assert!(data == message(i), "message {i}: its bytes");
                next[p] += 1;
                continue;
            }
            let i = check(&r, data);
            let p = (shape(i).1 == PacketPriority::High) as usize;
            assert_eq!(
                Some(&i),
                expected[p].get(next[p]),
                "out of order in priority {p}"
            );
            next[p] += 1;
        }
    });
    let more = b.recv_into("b", Duration::ZERO, &mut [0u8; 64]);
    assert_eq!(
        more.unwrap_err().kind(),
        ErrorKind::Timeout,
        "more than was sent"
    );
    let into = metric("tcp_messages_into_buffers");
    let landable = (0..N).filter(|i| matches!(i % 9, 0..=4 | 8)).count() as f64;
    assert!(
        into > 0.0 && into <= landable,
        "{into} messages landed into buffers, of {landable} that may"
    );
    assert!(
        metric("tcp_receive_buffers_taken_back") > 0.0,
        "no wait ended inside a message"
    );
    assert_eq!(metric("abandoned_reassemblies"), 0.0);
    assert_eq!(
        metric("reassemblies"),
        0.0,
        "a message left in the reassembly"
    );
}

#[test]
fn two_threads_receiving_for_one_node_get_each_message_once() {
    const N: usize = 360;
    let (_f, a, b) = pair("two");
    let got = std::sync::Mutex::new(Vec::new());
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| send_all(&a, N));
        for t in 0..2 {
            let (b, got, done) = (&b, &got, &done);
            s.spawn(move || {
                let mut buf = vec![0u8; 4 << 20];
                while done.load(std::sync::atomic::Ordering::Acquire) < N {
                    let wait = Duration::from_micros(if t == 0 { 50 } else { 20_000 });
                    match b.recv_into("b", wait, &mut buf) {
                        Ok(r) => {
                            let data = &buf[..r.len];
                            let i = match data.len() {
                                0..4 => usize::MAX,
                                _ => check(&r, data),
                            };
                            got.lock().unwrap().push(i);
                            done.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        }
                        Err(e) if e.kind() == ErrorKind::Timeout => buf.fill(0xee),
                        Err(e) => panic!("thread {t}: {e}"),
                    }
                }
            });
        }
    });
    let mut got = got.into_inner().unwrap();
    got.sort_unstable();
    let mut want: Vec<usize> = (0..N)
        .map(|i| if shape(i).0 < 4 { usize::MAX } else { i })
        .collect();
    want.sort_unstable();
    assert_eq!(got, want, "each message once");
    let m = b.get_topology_info().unwrap().performance_metrics;
    assert_eq!(m["abandoned_reassemblies"], 0.0);
}

/// A peer that stops inside a large message while the receiver waits for it in
/// `recv_into`: a message from a node of this host still reaches that receive, and the
/// stalled message, once its sender goes on, arrives whole.
#[test]
fn a_sender_stalled_inside_a_message_holds_nothing_back() {
    // The raw peer (its node "raw" known to `r`, which has received one message of it).
    let (f, r, mut s) = raw_peer("stall");
    // A sender of this host without TCP: its messages come through shared memory, which
    // the receive reads itself, not through the engine.
    let good = protocol_with_key(&f.0, Some(test_key()));
    good.register_node(node("g")).unwrap();
    good.start_background_services().unwrap();
    hello(&r, &mut s);
    let mut buf = vec![0u8; 2 << 20];
    // A 1 MiB post in frames of 256 KiB: three whole, and the start of the fourth.
    const FRAGMENT: usize = (256 << 10) - 32;
    const TOTAL: usize = 4 * FRAGMENT;
    let frame = |k: usize| data_frame(77, TOTAL, k * FRAGMENT, &vec![k as u8 + 1; FRAGMENT]);
    for k in 0..3 {
        s.write_all(&frame(k)).unwrap();
    }
    let last = frame(3);
    let cut = 20 + 32 + 1000;
    s.write_all(&last[..cut]).unwrap();
    std::thread::scope(|t| {
        t.spawn(|| {
            good.post("g", "r", b"from the good peer", &SendOptions::default())
                .unwrap();
        });
        // The stalled message cannot complete: what this receive gets is the good peer's.
        let got = r
            .recv_into("r", Duration::from_secs(20), &mut buf)
            .unwrap_or_else(|e| panic!("the stalled message held the receive: {e}"));
        assert_eq!(got.source.as_str(), "g");
        assert_eq!(&buf[..got.len], b"from the good peer");
    });
    let m = r.get_topology_info().unwrap().performance_metrics;
    assert!(
        m["tcp_receive_buffers_taken_back"] >= 1.0,
        "the receive's buffer was never lent: {m:?}"
    );
    // The sender goes on: the message comes whole.
    s.write_all(&last[cut..]).unwrap();
    let got = r.recv_into("r", Duration::from_secs(20), &mut buf).unwrap();
    assert_eq!(got.source.as_str(), "raw");
    assert_eq!(got.len, TOTAL);
    for k in 0..4 {
        let part = &buf[k * FRAGMENT..(k + 1) * FRAGMENT];
        assert!(part.iter().all(|&x| x == k as u8 + 1), "fragment {k}");
    }
    let m = r.get_topology_info().unwrap().performance_metrics;
    assert_eq!(m["abandoned_reassemblies"], 0.0);
    assert_eq!(m["reassemblies"], 0.0);
}

/// A peer that stops inside a frame landing into the buffer of a waiting `recv_into`, for
/// longer than a message may take: the buffer is taken back, the connection closed, the
/// message counted abandoned once, and the same wait goes on to receive another message
/// into its buffer.
#[test]
fn a_sender_that_stops_inside_a_landing_frame_is_dropped_and_the_wait_goes_on() {
    let (f, r, mut s) = raw_peer("expire");
    let good = protocol_with_key(&f.0, Some(test_key()));
    good.register_node(node("g")).unwrap();
    good.start_background_services().unwrap();
    hello(&r, &mut s);
    const TOTAL: usize = 600_000;
    // Its first frame (of 200,000 bytes), then the start of the second.
    const FIRST: usize = 200_000;
    let first = data_frame(5, TOTAL, 0, &vec![9u8; FIRST]);
    let second = data_frame(5, TOTAL, FIRST, &vec![8u8; FIRST]);
    let cut = 20 + 32 + 1000;
    let mut buf = vec![0u8; 1 << 20];
    std::thread::scope(|t| {
        let wait = t.spawn(|| {
            let got = r.recv_into("r", Duration::from_secs(120), &mut buf);
            got.map(|g| (g.source.as_str().to_owned(), buf[..g.len].to_vec()))
        });
        std::thread::sleep(Duration::from_millis(20));
        s.write_all(&first).unwrap();
        s.write_all(&second[..cut]).unwrap();
        // The stall outlasts the reassembly's timeout (30 s): the connection is closed.
        let until = Instant::now() + Duration::from_secs(90);
        while !r
            .host_close_reasons()
            .iter()
            .any(|l| l.contains("stopped inside a frame"))
        {
            assert!(Instant::now() < until, "{:?}", r.host_close_reasons());
            std::thread::sleep(Duration::from_millis(50));
        }
        good.post("g", "r", b"after the stall", &SendOptions::default())
            .unwrap();
        let (source, bytes) = wait.join().unwrap().unwrap();
        assert_eq!(
            (source.as_str(), &bytes[..]),
            ("g", &b"after the stall"[..])
        );
    });
    let m = r.get_topology_info().unwrap().performance_metrics;
    assert_eq!(m["abandoned_reassemblies"], 1.0, "{m:?}");
    assert_eq!(m["reassemblies"], 0.0);
    assert!(
        m["tcp_receive_buffers_taken_back"] >= 1.0,
        "never lent: {m:?}"
    );
}

/// A receiver `r` (node "r", no engine thread) and a raw peer past the handshake whose node
/// 0 ("raw") `r` knows, with one message of it received (which makes its node known to the
/// receive's path).
fn raw_peer(tag: &str) -> (FabricDir, HyperFabricProtocol, std::net::TcpStream) {
    let f = FabricDir(format!("tcp-into-{tag}-{}", std::process::id()));
    let r = tcp_protocol(&f.0, Some(test_key()), true);
    r.register_node(node("r")).unwrap();
    let mut s = std::net::TcpStream::connect(r.listen_address().unwrap()).unwrap();
    s.set_nodelay(true).unwrap();
    handshake::client(
        &mut s,
        &f.0,
        "raw peer",
        Credentials::Key(&test_key()),
        Duration::from_secs(5),
    )
    .unwrap();
    s.write_all(&announcement("raw")).unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while r.transport_to("raw").ok() != Some("tcp") {
        assert!(Instant::now() < until, "the peer's nodes never arrived");
        let _ = r.recv_into("r", Duration::from_millis(1), &mut [0u8; 16]);
    }
    hello(&r, &mut s);
    (f, r, s)
}

/// A small message from the raw peer, received: its node is then known to the receive's
/// path (until this host's nodes change).
fn hello(r: &HyperFabricProtocol, s: &mut std::net::TcpStream) {
    s.write_all(&data_frame(1, 5, 0, b"hello")).unwrap();
    let mut buf = [0u8; 64];
    let got = r.recv_into("r", Duration::from_secs(20), &mut buf).unwrap();
    assert_eq!(&buf[..got.len], b"hello");
}

/// The raw peer's announcement: its node 0 (`id`), and `r` as its node 1.
fn announcement(id: &str) -> Vec<u8> {
    common::announcement(0, id, "r")
}

/// A plain one-way data frame from the raw peer's node 0 to `r` (its node 1): message
/// `id` of `total` bytes, `body` at `offset`.
fn data_frame(id: u64, total: usize, offset: usize, body: &[u8]) -> Vec<u8> {
    let mut m = [0u8; 32];
    m[0..4].copy_from_slice(&1u32.to_le_bytes());
    m[4..12].copy_from_slice(&id.to_le_bytes());
    m[13] = 2;
    m[15] = 16;
    m[16..20].copy_from_slice(&(total as u32).to_le_bytes());
    m[20..24].copy_from_slice(&(offset as u32).to_le_bytes());
    let mut b = header(1, 1, 32 + body.len(), 0, 1).to_vec();
    b.extend_from_slice(&m);
    b.extend_from_slice(body);
    b
}

/// A peer announces its nodes again (as a host does whenever one of its nodes registers or
/// leaves) between two frames of a message landing into the waiting buffer: the message
/// arrives whole. (The pauses between the writes only make the announcement likely to come
/// after the first frame landed; the message must arrive whole whenever it comes.)
#[test]
fn an_announcement_between_frames_of_a_landing_message_loses_nothing() {
    let (_f, r, mut s) = raw_peer("announce");
    const A: usize = 250_000;
    const B: usize = 1_000;
    const C: usize = 40_000;
    const TOTAL: usize = A + B + C;
    let data: Vec<u8> = (0..TOTAL).map(|i| (i * 7 + i / 251) as u8).collect();
    for round in 0..4u64 {
        std::thread::scope(|t| {
            let h = t.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                let got = r.recv_into("r", Duration::from_secs(20), &mut buf);
                got.map(|g| buf[..g.len].to_vec())
            });
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(&data_frame(9 + round, TOTAL, 0, &data[..A]))
                .unwrap();
            std::thread::sleep(Duration::from_millis(1));
            let mut two = announcement("raw");
            two.extend_from_slice(&data_frame(9 + round, TOTAL, A, &data[A..A + B]));
            s.write_all(&two).unwrap();
            s.write_all(&data_frame(9 + round, TOTAL, A + B, &data[A + B..]))
                .unwrap();
            let got = h.join().unwrap();
            let got = got.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(
                got == data,
                "round {round}: {} bytes, not the message",
                got.len()
            );
        });
    }
    let m = r.get_topology_info().unwrap().performance_metrics;
    assert_eq!(m["reassemblies"], 0.0);
    assert_eq!(m["abandoned_reassemblies"], 0.0);
}

/// A handler of another node panics on the thread waiting in `recv_into` (handlers run on
/// whichever thread polls the engine) while large messages land into its buffer: the panic
/// is the handler's error, answered to its requester; it neither unwinds into the receive
/// nor stops the engine, and every message arrives whole and in order.
#[test]
fn a_panicking_handler_on_the_receiving_thread_stops_nothing() {
    const SIZE: usize = 4 << 20;
    const N: usize = 24;
    let f = FabricDir(format!("tcp-into-panic-{}", std::process::id()));
    let a = tcp_protocol(&f.0, Some(test_key()), true);
    let r = tcp_protocol(&f.0, Some(test_key()), false);
    a.register_node(node("a")).unwrap();
    a.start_background_services().unwrap();
    r.register_node(node("b")).unwrap();
    r.register_node(node("h")).unwrap();
    r.on_receive("h", |_| panic!("a handler panics")).unwrap();
    r.connect_host(a.listen_address().unwrap()).unwrap();
    until_tcp(&a, "b");
    // A sender of this host without TCP, to the panicking handler.
    let g = protocol_with_key(&f.0, Some(test_key()));
    g.register_node(node("g")).unwrap();
    g.start_background_services().unwrap();
    let msg = |i: usize| -> Vec<u8> {
        let mut m: Vec<u8> = (0..SIZE).map(|k| (k % 251 + i) as u8).collect();
        m[..4].copy_from_slice(&(i as u32).to_le_bytes());
        m
    };
    std::thread::scope(|t| {
        t.spawn(|| {
            for i in 0..N {
                let o = SendOptions {
                    timeout: Duration::from_secs(60),
                    ..Default::default()
                };
                a.post("a", "b", &msg(i), &o).unwrap();
            }
        });
        let asked = t.spawn(|| {
            let o = SendOptions {
                timeout: Duration::from_secs(60),
                ..Default::default()
            };
            g.send_data("g", "h", b"boom", &o)
        });
        let mut buf = vec![0u8; SIZE];
        for next in 0..N {
            let got = r
                .recv_into("b", Duration::from_secs(30), &mut buf)
                .unwrap_or_else(|e| panic!("after {next} messages: {e}"));
            let i = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
            assert_eq!(i, next, "out of order");
            assert!(buf[..got.len] == msg(i)[..], "message {i} corrupt");
        }
        // The request is answered once the receiving thread polled the engine past it
        // (then, or in the receives below).
        while !asked.is_finished() {
            let _ = r.recv_into("b", Duration::from_millis(5), &mut buf);
        }
        let e = asked.join().unwrap().expect_err("the handler panicked");
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        assert!(e.to_string().contains("a handler panics"), "{e}");
    });
}
