//! Bad input between hosts: a peer that holds the key and then sends garbage, a frame cut
//! off, a frame over the limit, frames that name nodes it never announced or that refer to
//! its memory, a bad announcement, a peer that connects and says nothing, and address blobs
//! of another fabric, version or key. Each is refused with its reason, only its connection
//! is dropped, and a well-behaved peer's requests go on being answered throughout.

mod common;

use common::{announcement, frame_header as header, node, tcp_protocol, test_key, FabricDir};
use hyperfabric::codec::handshake::{self, Credentials};
use hyperfabric::codec::FabricKey;
use hyperfabric::fabric::{HyperFabricProtocol, PeerAddress, SendOptions};
use hyperfabric::transport::tcp::control;
use hyperfabric::ErrorKind;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A fabric under attack: `a` (listening, echoing) and a good peer `b` connected to it.
struct Fabric {
    _dir: FabricDir,
    a: HyperFabricProtocol,
    b: HyperFabricProtocol,
}

impl Fabric {
    fn new(tag: &str) -> Fabric {
        let dir = FabricDir(format!("tcp-hostile-{tag}-{}", std::process::id()));
        let a = tcp_protocol(&dir.0, Some(test_key()), true);
        a.register_node(node("a")).unwrap();
        a.on_receive("a", |m| Ok(m.data.to_vec())).unwrap();
        a.start_background_services().unwrap();
        let b = tcp_protocol(&dir.0, Some(test_key()), false);
        b.register_node(node("b")).unwrap();
        b.connect_host(a.listen_address().unwrap()).unwrap();
        Fabric { _dir: dir, a, b }
    }

    /// The good peer's request is answered.
    fn still_serves(&self) {
        let opts = SendOptions {
            timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let back = self.b.send_data("b", "a", b"still", &opts);
        let why = || {
            format!(
                "closed on a: {:?}; on b: {:?}",
                self.a.host_close_reasons(),
                self.b.host_close_reasons()
            )
        };
        assert_eq!(back.unwrap_or_else(|e| panic!("{e}; {}", why())), b"still");
    }

    fn metric(&self, k: &str) -> f64 {
        self.a.get_topology_info().unwrap().performance_metrics[k]
    }

    /// A connection past the handshake, as a peer that holds the key.
    fn intruder(&self) -> TcpStream {
        let mut s = TcpStream::connect(self.a.listen_address().unwrap()).unwrap();
        handshake::client(
            &mut s,
            &self._dir.0,
            "intruder",
            Credentials::Key(&test_key()),
            Duration::from_secs(5),
        )
        .unwrap();
        s
    }

    /// Waits until `a` closed `s` (reads end or the connection is reset), then checks the
    /// good peer. A connection still open after 30 s fails the test (a read that merely
    /// timed out is not a close: on a loaded machine the engine may take a while).
    fn dropped(&self, mut s: TcpStream, what: &str) {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => break,
                // Its announcement of `a`'s nodes, and the like.
                Ok(_) => {}
            }
            assert!(
                Instant::now() < until,
                "{what}: the connection stayed open; closed on a: {:?}",
                self.a.host_close_reasons()
            );
        }
        self.still_serves();
    }

    /// Waits until metric `k` of `a` reaches `at_least`.
    fn metric_reaches(&self, k: &str, at_least: f64) {
        let until = Instant::now() + Duration::from_secs(10);
        while self.metric(k) < at_least {
            assert!(
                Instant::now() < until,
                "{k} is {} (wanted {at_least})",
                self.metric(k)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
/// Whether `s` is still open: all it has to read read, no end of stream, no reset.
fn open(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let r = loop {
        match s.read(&mut buf) {
            Ok(0) => break false,
            Ok(_) => continue,
            Err(e) => break e.kind() == std::io::ErrorKind::WouldBlock,
        }
    };
    s.set_nonblocking(false).unwrap();
    r
}

/// The reason `a` gives for the latest closed connection contains `what`.
fn reason_mentions(f: &Fabric, what: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let r = f.a.host_close_reasons();
        if r.iter().any(|l| l.contains(what)) {
            return;
        }
        assert!(Instant::now() < until, "no reason with {what:?} in {r:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn garbage_after_the_handshake_drops_that_connection_only() {
    let f = Fabric::new("garbage");
    let mut s = f.intruder();
    s.write_all(&[0x42; 200]).unwrap();
    f.dropped(s, "garbage");
    reason_mentions(&f, "framing");
}

#[test]
fn a_frame_cut_off_is_dropped_with_its_connection() {
    let f = Fabric::new("cut");
    let mut s = f.intruder();
    s.write_all(&header(1, 0, 1000, 0, 0)).unwrap();
    s.write_all(&[0u8; 10]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    f.dropped(s, "cut");
    reason_mentions(&f, "inside a frame");
}

#[test]
fn an_oversized_frame_is_refused_before_its_bytes() {
    let f = Fabric::new("big");
    let mut s = f.intruder();
    s.write_all(&header(1, 0, 1 << 30, 0, 0)).unwrap();
    f.dropped(s, "oversized");
    reason_mentions(&f, "limit");
}

#[test]
fn frames_naming_unknown_nodes_or_this_hosts_memory_are_refused() {
    let f = Fabric::new("frames");
    let before = f.metric("tcp_frames_refused");
    // A descriptor frame (bytes in the sender's shared segment) never crosses hosts.
    let mut s = f.intruder();
    let payload = [0u8; 64];
    s.write_all(&header(1, 4, payload.len(), 0, 0)).unwrap();
    s.write_all(&payload).unwrap();
    f.dropped(s, "descriptor");
    reason_mentions(&f, "memory");
    // An unknown kind.
    let mut s = f.intruder();
    s.write_all(&header(0x77, 0, payload.len(), 0, 0)).unwrap();
    s.write_all(&payload).unwrap();
    f.dropped(s, "kind");
    f.metric_reaches("tcp_frames_refused", before + 2.0);
    // Indices it never announced: dropped and counted, the connection stays.
    let errors = f.metric("errors");
    let mut s = f.intruder();
    s.write_all(&header(1, 1, payload.len(), 77, 78)).unwrap();
    s.write_all(&payload).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while f.metric("errors") <= errors {
        assert!(Instant::now() < until, "the frame was not counted");
        std::thread::sleep(Duration::from_millis(5));
    }
    f.still_serves();
}

#[test]
fn a_bad_announcement_is_refused() {
    let f = Fabric::new("announce");
    let mut s = f.intruder();
    let body = b"not an announcement at all";
    s.write_all(&header(control::KIND_NODES, 0, body.len(), 0, 0))
        .unwrap();
    s.write_all(body).unwrap();
    f.dropped(s, "announcement");
    reason_mentions(&f, "announcement");
    // One that claims a node `a`'s process hosts.
    let mut s = f.intruder();
    let claim = control::Announce::Nodes(vec![control::Announced {
        index: 3,
        generation: 1,
        hosted: true,
        signature: node("a"),
    }])
    .encode()
    .unwrap();
    for (kind, body) in claim {
        s.write_all(&header(kind, 0, body.len(), 0, 0)).unwrap();
        s.write_all(&body).unwrap();
    }
    f.dropped(s, "duplicate");
    reason_mentions(&f, "hosted here and by the peer");
}

#[test]
fn a_silent_peer_is_dropped_at_the_handshake_deadline_and_holds_nothing_up() {
    let f = Fabric::new("silent");
    let refused = f.metric("tcp_handshakes_refused");
    let silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(f.a.listen_address().unwrap()).unwrap())
        .collect();
    // Meanwhile another process connects and the good peer is served.
    let c = tcp_protocol(&f._dir.0, Some(test_key()), false);
    c.register_node(node("c")).unwrap();
    c.connect_host(f.a.listen_address().unwrap()).unwrap();
    // `c` got through while the silent connections were still waiting for their deadline.
    for s in &silent {
        assert!(open(s), "a connection waited behind silent ones");
    }
    f.still_serves();
    for s in silent {
        f.dropped(s, "silent");
    }
    f.metric_reaches("tcp_handshakes_refused", refused + 4.0);
}

#[test]
fn address_blobs_of_another_fabric_version_or_key_are_refused() {
    let f = Fabric::new("blobs");
    let blob = f.a.node_address("a").unwrap();
    let good = PeerAddress::decode(&blob).unwrap();
    assert!(good.tcp.is_some() && good.key_fingerprint.is_some());
    // Another fabric.
    let other = PeerAddress {
        fabric: "elsewhere".into(),
        ..good.clone()
    };
    let e = f.b.insert_peer(&other.encode().unwrap()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // Another version.
    let mut v9 = blob.clone();
    v9[4] = 9;
    let e = f.b.insert_peer(&v9).unwrap_err();
    assert!(e.to_string().contains("version 9"), "{e}");
    // Another key.
    let stranger = PeerAddress {
        key_fingerprint: Some(FabricKey::from_bytes([1; 32]).fingerprint()),
        ..good.clone()
    };
    let e = f.b.insert_peer(&stranger.encode().unwrap()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{e}");
    // The real one works, and the fabric is unaffected.
    assert_eq!(f.b.insert_peer(&blob).unwrap(), "a");
    f.still_serves();
}

/// A node nobody reads from: frames to it fill its inbound ring and the backlog behind it,
/// until the connection stalls. When it leaves, what waited for it goes with it and the
/// connection carries the rest again.
#[test]
fn a_node_that_leaves_with_frames_waiting_for_it_frees_its_connection() {
    let f = Fabric::new("stalled");
    f.a.register_node(node("a2")).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while f.b.transport_to("a2").is_err() {
        assert!(Instant::now() < until, "a2 never announced");
        f.b.progress();
    }
    let opts = SendOptions {
        timeout: Duration::from_millis(200),
        ..Default::default()
    };
    // Until posts find no room five times: the node's queue, its ring, the backlog and the
    // sockets are full.
    let (mut sent, mut full) = (0, 0);
    while full < 5 {
        match f.b.post("b", "a2", &[9u8; 3000], &opts) {
            Ok(()) => sent += 1,
            Err(e) if e.kind() == ErrorKind::Timeout => full += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 1_000_000, "the connection never filled");
    }
    assert!(sent > 100, "{sent}");
    f.a.unregister_node("a2").unwrap();
    f.still_serves();
    assert_eq!(f.metric("tcp_closed"), 0.0);
}

/// A node that leaves while a peer host sends to it costs that node only: its frames in
/// flight are dropped, the connection and the other nodes behind it stay.
#[test]
fn a_node_leaving_while_frames_to_it_travel_leaves_the_connection_up() {
    let f = Fabric::new("leave");
    f.a.register_node(node("a2")).unwrap();
    f.a.on_receive("a2", |m| Ok(m.data.to_vec())).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while f.b.transport_to("a2").is_err() {
        assert!(Instant::now() < until, "a2 never announced");
        f.b.progress();
    }
    // Posts go on from before the node leaves until well after.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let sent = std::thread::scope(|s| {
        let poster = s.spawn(|| {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                if f.b
                    .post("b", "a2", &[7u8; 3000], &SendOptions::default())
                    .is_ok()
                {
                    sent += 1;
                }
            }
            sent
        });
        std::thread::sleep(Duration::from_millis(20));
        f.a.unregister_node("a2").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, std::sync::atomic::Ordering::Release);
        poster.join().unwrap()
    });
    assert!(sent > 0);
    assert_eq!(
        f.metric("tcp_closed"),
        0.0,
        "{:?}",
        f.a.host_close_reasons()
    );
    f.still_serves();
    let e =
        f.b.send_data(
            "b",
            "a2",
            b"?",
            &SendOptions {
                timeout: Duration::from_secs(2),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::NodeNotFound | ErrorKind::Timeout),
        "{e}"
    );
}

/// A node nobody reads, flooded from another host: once its queue is full, only that
/// connection stops receiving (its frames wait, TCP stops its sender), the good peer's requests to another node of the
/// same process are answered meanwhile, and once the node is read every message arrives,
/// once and in order, and the connection receives again.
#[test]
fn a_node_nobody_reads_holds_up_only_the_connection_that_floods_it() {
    let f = Fabric::new("unread");
    f.a.register_node(node("slow")).unwrap();
    let c = tcp_protocol(&f._dir.0, Some(test_key()), false);
    c.register_node(node("c")).unwrap();
    // It beats: `a` judges its connection by its silence (1 s).
    c.start_background_services().unwrap();
    c.connect_host(f.a.listen_address().unwrap()).unwrap();
    // More than the node's queue takes (256 MiB) and what the sockets hold besides.
    const N: u32 = 320;
    let message = |i: u32| -> Vec<u8> {
        let mut m = vec![(i % 251) as u8; 1 << 20];
        m[..4].copy_from_slice(&i.to_le_bytes());
        m
    };
    let flood = std::thread::spawn(move || {
        let opts = SendOptions {
            timeout: Duration::from_secs(120),
            ..Default::default()
        };
        for i in 0..N {
            c.post("c", "slow", &message(i), &opts)
                .unwrap_or_else(|e| panic!("post {i}: {e}"));
        }
        c
    });
    // Once the node's queue is full (256 MiB dispatched to it), its rings are left unread,
    // and the flood's connection stops receiving when a megabyte of its frames waits.
    let until = Instant::now() + Duration::from_secs(60);
    while f.metric("tcp_receives_held") < 1.0 || f.metric("bytes_received") < 256.0 * 1048576.0 {
        assert!(
            Instant::now() < until,
            "the flood was never held: {} bytes received",
            f.metric("bytes_received")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Held for longer than the silence limit: `a` reads nothing from it meanwhile, which
    // is not the peer's silence.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(f.metric("tcp_closed_silent"), 0.0);
    assert_eq!(f.metric("tcp_receives_held"), 1.0);
    f.still_serves();
    for i in 0..N {
        let m =
            f.a.recv("slow", Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert!(m.data == message(i), "message {i} of the flood");
    }
    drop(flood.join().unwrap());
    f.metric_reaches("tcp_receive_holds", 1.0);
    assert_eq!(f.metric("tcp_receives_held"), 0.0);
    f.still_serves();
}

/// A peer that stops inside a large frame of a message (its connection alive): the message
/// the frame is received into counts among the reassemblies meanwhile, and once the peer
/// stalled for the reassembly timeout (30 s) its connection is closed and the message
/// abandoned, as one whose fragments stop coming is.
#[test]
fn a_peer_that_stops_inside_a_large_frame_is_dropped_after_the_reassembly_timeout() {
    let f = Fabric::new("stall");
    let mut s = f.intruder();
    s.write_all(&announcement(0, "stalling", "a")).unwrap();
    // Fragments of a 4 MiB post from node 0 to node 1 in frames of 256 KiB (message
    // header: node, id, hop, priority, data type, hop limit, total, offset, origin), then
    // the start of the fifth.
    const FRAGMENT: usize = (256 << 10) - 32;
    let frame = |k: usize| {
        let mut m = [0u8; 32];
        m[0..4].copy_from_slice(&1u32.to_le_bytes());
        m[4..12].copy_from_slice(&77u64.to_le_bytes());
        m[13] = 2;
        m[15] = 16;
        m[16..20].copy_from_slice(&(4u32 << 20).to_le_bytes());
        m[20..24].copy_from_slice(&((k * FRAGMENT) as u32).to_le_bytes());
        let mut b = header(1, 1, 32 + FRAGMENT, 0, 1).to_vec();
        b.extend_from_slice(&m);
        b.extend(std::iter::repeat_n(k as u8, FRAGMENT));
        b
    };
    for k in 0..4 {
        s.write_all(&frame(k)).unwrap();
    }
    // Once those are in the message (through the inbound ring or not), the fifth frame's
    // start: it is offered with nothing ahead of it, and lent the message.
    f.metric_reaches("bytes_received", (4 * FRAGMENT) as f64);
    s.write_all(&frame(4)[..20 + 32 + 1000]).unwrap();
    f.metric_reaches("reassembly_bytes", (5 * FRAGMENT) as f64);
    assert_eq!(f.metric("reassemblies"), 1.0);
    f.still_serves();
    let until = Instant::now() + Duration::from_secs(60);
    while f.metric("abandoned_reassemblies") < 1.0 || f.metric("reassemblies") > 0.0 {
        assert!(Instant::now() < until, "{:?}", f.a.host_close_reasons());
        std::thread::sleep(Duration::from_millis(50));
    }
    f.dropped(s, "stalled inside a frame");
    reason_mentions(&f, "stopped inside a frame");
}

/// Announces node `id` as hosted by the raw peer on `s`, from process instance `instance`
/// (carried by the announcement's header), with `a` as its node 1.
fn claim(s: &mut TcpStream, instance: u64, id: &str) {
    s.write_all(&announcement(instance, id, "a")).unwrap();
}

/// Two hosts claiming one node: the later claim is refused with its connection (frames of
/// both would mix in one message), while a second connection of the first host's process
/// (the same instance, as when two processes dial each other) may claim it too.
#[test]
fn a_node_claimed_by_two_hosts_is_refused_on_the_second() {
    let f = Fabric::new("claim");
    const FIRST: u64 = 0x1111_2222_3333_4444;
    let mut one = f.intruder();
    claim(&mut one, FIRST, "x");
    let until = Instant::now() + Duration::from_secs(30);
    while f.a.transport_to("x").ok() != Some("tcp") {
        assert!(Instant::now() < until, "x never became known");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut same = f.intruder();
    claim(&mut same, FIRST, "x");
    let mut other = f.intruder();
    claim(&mut other, 0x5555_6666_7777_8888, "x");
    f.dropped(other, "a second host claiming x");
    reason_mentions(&f, "hosted by");
    // Both connections of the first process are still up, and x is still reached.
    f.still_serves();
    assert!(open(&one), "{:?}", f.a.host_close_reasons());
    assert!(open(&same), "{:?}", f.a.host_close_reasons());
    assert_eq!(f.a.transport_to("x").ok(), Some("tcp"));
    // A claim without an instance is no process's: refused too.
    let mut none = f.intruder();
    claim(&mut none, 0, "x");
    f.dropped(none, "a claim of x without an instance");
}

/// More connections that say nothing than handshakes may run at once, held open: a peer
/// that holds the key still connects (the oldest silent one is cut off to make room).
#[test]
fn silent_connections_do_not_lock_out_a_peer_with_the_key() {
    let f = Fabric::new("flood");
    let addr = f.a.listen_address().unwrap();
    let silent: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let c = tcp_protocol(&f._dir.0, Some(test_key()), false);
    c.register_node(node("c")).unwrap();
    c.connect_host(addr)
        .unwrap_or_else(|e| panic!("{e}; {:?}", f.a.host_close_reasons()));
    f.still_serves();
    drop(silent);
}

/// A peer announcing thousands of nodes: the receiver takes them in and goes on serving,
/// its routing tables those of its own nodes only (not of every node it learns of). (With
/// no links declared, the fabric is a full mesh: its graph still grows with the square of
/// its nodes.)
#[test]
fn a_peer_announcing_thousands_of_nodes_stalls_nothing() {
    const N: u32 = 1500;
    let f = Fabric::new("many");
    let mut s = f.intruder();
    let mut nodes: Vec<control::Announced> = (0..N)
        .map(|i| control::Announced {
            index: i,
            generation: 1,
            hosted: true,
            signature: node(&format!("m{i}")),
        })
        .collect();
    nodes.push(control::Announced {
        index: N,
        generation: 1,
        hosted: false,
        signature: node("a"),
    });
    for (kind, body) in control::Announce::Nodes(nodes).encode().unwrap() {
        s.write_all(&header(kind, 0, body.len(), 9, 0)).unwrap();
        s.write_all(&body).unwrap();
    }
    let until = Instant::now() + Duration::from_secs(60);
    while f.a.transport_to(&format!("m{}", N - 1)).ok() != Some("tcp") {
        assert!(Instant::now() < until, "the nodes never became known");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let info = f.a.get_topology_info().unwrap();
    println!(
        "topology info with {} nodes: {:?}",
        info.total_nodes,
        started.elapsed()
    );
    assert!(info.total_nodes as u32 > N, "{}", info.total_nodes);
    assert!(
        info.performance_metrics["table_sources"] <= 2.0,
        "{:?}",
        info.performance_metrics
    );
    f.still_serves();
    assert!(open(&s));
}

/// A peer that names a node another host hosts (as not hosted by it), then sends frames
/// from it: they are dropped and counted, never delivered as that node's.
#[test]
fn frames_from_a_node_the_peer_does_not_host_are_dropped() {
    let f = Fabric::new("speak-for");
    let mut host = f.intruder();
    claim(&mut host, 0x1234, "x");
    let until = Instant::now() + Duration::from_secs(30);
    while f.a.transport_to("x").ok() != Some("tcp") {
        assert!(Instant::now() < until, "x never became known");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The other peer knows x (its index 0) without hosting it, and a as its index 1.
    let mut other = f.intruder();
    let nodes = control::Announce::Nodes(vec![
        control::Announced {
            index: 0,
            generation: 1,
            hosted: false,
            signature: node("x"),
        },
        control::Announced {
            index: 1,
            generation: 1,
            hosted: false,
            signature: node("a"),
        },
    ]);
    for (kind, body) in nodes.encode().unwrap() {
        other
            .write_all(&header(kind, 0, body.len(), 0x5678, 0))
            .unwrap();
        other.write_all(&body).unwrap();
    }
    let before = f.metric("errors");
    // A one-way post of 5 bytes from its index 0 (x) to its index 1 (a).
    let mut m = [0u8; 32];
    m[0..4].copy_from_slice(&1u32.to_le_bytes());
    m[4..12].copy_from_slice(&7u64.to_le_bytes());
    m[13] = 2;
    m[15] = 16;
    m[16..20].copy_from_slice(&5u32.to_le_bytes());
    let mut frame = header(1, 1, 32 + 5, 0, 1).to_vec();
    frame.extend_from_slice(&m);
    frame.extend_from_slice(b"forge");
    other.write_all(&frame).unwrap();
    f.metric_reaches("errors", before + 1.0);
    assert_eq!(f.metric("bytes_received"), 0.0, "delivered as x's");
    f.still_serves();
}
