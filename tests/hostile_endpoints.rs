//! Endpoints as an unlucky or hostile user meets them: endpoint rings whose shared memory
//! another process rewrote (slot lengths, message headers, descriptors), files planted in the
//! fabric directory under endpoint names, senders and receivers killed in the middle of their
//! traffic, sizes at every boundary, many senders and receivers with buffers too small, and
//! nodes that leave and come back while endpoints to them are in use. Nothing delivers a
//! message nobody sent, reads outside a ring, hangs, or keeps what a dead process left.

mod common;

use common::rings::{endpoint_with_file, forge, root};
use common::{node, FabricDir};
use hyperfabric::fabric::{HyperFabricProtocol, SendOptions};
use hyperfabric::ErrorKind;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fabric(tag: &str) -> FabricDir {
    FabricDir(format!("hostile-ep-{tag}-{}", std::process::id()))
}

fn protocol(fabric: &str, nodes: &[&str]) -> HyperFabricProtocol {
    let p = common::protocol(fabric);
    for n in nodes {
        p.register_node(node(n)).unwrap();
    }
    p
}

/// (src, dst, generation) of an endpoint ring file's name.
fn ends(file: &Path) -> (u32, u32, u64) {
    let name = file.file_name().unwrap().to_str().unwrap();
    let (rest, generation) = name.strip_prefix("ep-").unwrap().split_once('.').unwrap();
    let v: Vec<u32> = rest.split('-').map(|x| x.parse().unwrap()).collect();
    (v[0], v[1], generation.parse().unwrap())
}

fn metric(p: &HyperFabricProtocol, k: &str) -> f64 {
    p.get_topology_info().unwrap().performance_metrics[k]
}

fn nothing_for(p: &HyperFabricProtocol, node: &str, wait: Duration) {
    match p.recv(node, wait) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout, "{e}"),
        Ok(m) => panic!(
            "{node} got a message nobody sent: {} bytes from {}",
            m.data.len(),
            m.source
        ),
    }
}

// Byte offsets in a message's first slot: slot header (seq 0..4, len 4..8, kind 8, flags 9,
// aux 10..12, src 12..16), then the message header (dst, id, hop, priority, data type, hop
// limit, total, offset, origin) at 16.
const SLOT_LEN: usize = 4;
const SLOT_KIND: usize = 8;
const SLOT_FLAGS: usize = 9;
const SLOT_SRC: usize = 12;
const MSG_DST: usize = 16;
const MSG_TOTAL: usize = 16 + 16;
const MSG_OFFSET: usize = 16 + 20;
const MSG_ORIGIN: usize = 16 + 24;
const DESC_INDEX: usize = 16 + 32 + 16;
const DESC_LEN: usize = 16 + 32 + 20;

#[test]
fn a_forged_slot_length_costs_only_that_endpoint() {
    let dir = fabric("len");
    let tx = protocol(&dir.0, &["a", "c"]);
    let rx = protocol(&dir.0, &["b"]);
    let (mut ep, file) = endpoint_with_file(&dir, &tx, "a", "b");
    let mut other = tx.endpoint("c", "b").unwrap();
    ep.post(b"first").unwrap();
    forge(&file, 0, SLOT_LEN, &60_000u32.to_le_bytes());
    nothing_for(&rx, "b", Duration::from_millis(300));
    assert_eq!(metric(&rx, "corrupt_channels"), 1.0);
    other.post(b"other").unwrap();
    let m = rx.recv("b", Duration::from_secs(5)).unwrap();
    assert_eq!((m.source.as_str(), &m.data[..]), ("c", &b"other"[..]));
    let err = (0..4096)
        .find_map(|_| ep.post(&[0u8; 64]).err())
        .expect("the sender learns its ring was dropped");
    assert_eq!(err.kind(), ErrorKind::MalformedFrame, "{err}");
    // A new endpoint of the same pair works.
    let mut again = tx.endpoint("a", "b").unwrap();
    again.post(b"again").unwrap();
    let m = rx.recv("b", Duration::from_secs(5)).unwrap();
    assert_eq!((m.source.as_str(), &m.data[..]), ("a", &b"again"[..]));
}

/// Message headers rewritten in place: a frame that claims another origin, another
/// destination, another sending node, a kind or flags an endpoint never writes, or a length
/// that contradicts its own bytes is not delivered, and its ring is dropped and counted.
#[test]
fn forged_message_headers_are_never_delivered() {
    let dir = fabric("hdr");
    let tx = protocol(&dir.0, &["a", "c"]);
    let rx = protocol(&dir.0, &["b", "d"]);
    // Indices from the ring names.
    let (_, f_ad) = endpoint_with_file(&dir, &tx, "a", "d");
    let (_, f_cb) = endpoint_with_file(&dir, &tx, "c", "b");
    let (ia, id, _) = ends(&f_ad);
    let (ic, _, _) = ends(&f_cb);
    let u32le = |v: u32| v.to_le_bytes().to_vec();
    let forgeries: Vec<(&str, usize, Vec<u8>)> = vec![
        ("origin", MSG_ORIGIN, u32le(ic)),
        ("destination", MSG_DST, u32le(id)),
        ("slot source", SLOT_SRC, u32le(ic)),
        ("origin and slot source", SLOT_SRC, u32le(ic)),
        ("total below the bytes", MSG_TOTAL, u32le(3)),
        ("offset past the total", MSG_OFFSET, u32le(1 << 20)),
        ("kind", SLOT_KIND, vec![0x7e]),
        ("flags", SLOT_FLAGS, vec![0x81]),
    ];
    let mut corrupt = 0.0;
    for (what, at, bytes) in forgeries {
        let (mut ep, file) = endpoint_with_file(&dir, &tx, "a", "b");
        assert_eq!(ends(&file).0, ia);
        // A request with metadata: its frame has a message header (a message without
        // metadata travels as a compact frame, whose bytes after the slot header are data,
        // after the id for a request).
        let mut with_metadata = serde_json::Map::new();
        with_metadata.insert("k".into(), serde_json::Value::from(1));
        let opts = SendOptions {
            metadata: Some(with_metadata),
            ..SendOptions::default()
        };
        let _abandoned = ep.send_data_nb(b"sixteen bytes!!!", &opts).unwrap();
        forge(&file, 0, at, &bytes);
        if what == "origin and slot source" {
            forge(&file, 0, MSG_ORIGIN, &bytes);
        }
        nothing_for(&rx, "b", Duration::from_millis(300));
        nothing_for(&rx, "d", Duration::from_millis(50));
        corrupt += 1.0;
        assert_eq!(metric(&rx, "corrupt_channels"), corrupt, "{what}");
        // Other senders keep working.
        let mut other = tx.endpoint("c", "b").unwrap();
        other.post(what.as_bytes()).unwrap();
        let m = rx.recv("b", Duration::from_secs(5)).unwrap();
        assert_eq!((m.source.as_str(), &m.data[..]), ("c", what.as_bytes()));
    }
}

/// A compact request (no message header: its id, then its data) whose length was rewritten
/// to less than its id is not delivered, and costs the ring.
#[test]
fn a_compact_request_shorter_than_its_id_is_never_delivered() {
    let dir = fabric("compact");
    let tx = protocol(&dir.0, &["a", "c"]);
    let rx = protocol(&dir.0, &["b"]);
    let (mut ep, file) = endpoint_with_file(&dir, &tx, "a", "b");
    let _abandoned = ep
        .send_data_nb(b"request", &SendOptions::default())
        .unwrap();
    forge(&file, 0, SLOT_LEN, &4u32.to_le_bytes());
    nothing_for(&rx, "b", Duration::from_millis(300));
    assert_eq!(metric(&rx, "corrupt_channels"), 1.0);
    let mut other = tx.endpoint("c", "b").unwrap();
    other.post(b"still here").unwrap();
    let m = rx.recv("b", Duration::from_secs(5)).unwrap();
    assert_eq!(&m.data[..], b"still here");
}

/// Descriptor fields rewritten: a buffer index or length outside the sender's pool, or a
/// segment that does not exist, delivers nothing and costs the ring.
#[test]
fn forged_descriptors_are_never_delivered() {
    let dir = fabric("desc");
    let tx = protocol(&dir.0, &["a", "c"]);
    let rx = protocol(&dir.0, &["b"]);
    let forgeries: Vec<(&str, usize, Vec<u8>)> = vec![
        ("index", DESC_INDEX, 1_000_000u32.to_le_bytes().to_vec()),
        // Inside the segment, but a buffer its owner never lent (free, or another's).
        ("a buffer not lent", DESC_INDEX, 7u32.to_le_bytes().to_vec()),
        ("length", DESC_LEN, (64u32 << 20).to_le_bytes().to_vec()),
        ("segment", 16 + 32, 1u32.to_le_bytes().to_vec()),
    ];
    let mut corrupt = 0.0;
    for (what, at, bytes) in forgeries {
        let (mut ep, file) = endpoint_with_file(&dir, &tx, "a", "b");
        // Above the inline bound: the frame carries a descriptor.
        ep.post(&[7u8; 20_000]).unwrap();
        forge(&file, 0, at, &bytes);
        nothing_for(&rx, "b", Duration::from_millis(300));
        corrupt += 1.0;
        assert_eq!(metric(&rx, "corrupt_channels"), corrupt, "{what}");
        let mut other = tx.endpoint("c", "b").unwrap();
        other.post(&[9u8; 20_000]).unwrap();
        let m = rx.recv("b", Duration::from_secs(5)).unwrap();
        assert_eq!((m.source.as_str(), m.data.len()), ("c", 20_000));
        assert!(m.data.iter().all(|&x| x == 9));
    }
}

/// Files planted under endpoint names: a wrong name, a wrong generation, a file too small, a
/// huge file of zeros, a symbolic link to another node's ring, a FIFO and a directory. The
/// receiver skips them all at once, its own endpoints keep working, and the ring the link
/// points to is not read by the wrong node.
#[test]
fn planted_endpoint_files_are_skipped() {
    let dir = fabric("plant");
    let tx = protocol(&dir.0, &["a", "c"]);
    let rx = protocol(&dir.0, &["b", "d"]);
    let (mut to_d, f_ad) = endpoint_with_file(&dir, &tx, "a", "d");
    let (mut to_b, f_ab) = endpoint_with_file(&dir, &tx, "a", "b");
    let (ia, ib, gb) = ends(&f_ab);
    let r = root(&dir);
    let name = |n: u32, g: u64| r.join(format!("ep-{ia}-{ib}-4000000-{n}.{g}"));
    std::fs::write(r.join(format!("ep-{ia}-{ib}-x-1.{gb}")), b"junk").unwrap();
    std::fs::write(name(1, gb + 7), b"junk").unwrap();
    std::fs::write(name(2, gb), b"tiny").unwrap();
    std::fs::File::create(name(3, gb))
        .unwrap()
        .set_len(1 << 31)
        .unwrap();
    std::os::unix::fs::symlink(&f_ad, name(4, gb)).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(name(5, gb))
        .status()
        .unwrap()
        .success());
    std::fs::create_dir(name(6, gb)).unwrap();
    // A hard link to another node's ring: the same inode under this node's name.
    std::fs::hard_link(&f_ad, name(7, gb)).unwrap();
    // A new endpoint makes the receiver look at the directory again.
    let mut from_c = tx.endpoint("c", "b").unwrap();
    let t = Instant::now();
    for i in 0..50u32 {
        to_d.post(&i.to_le_bytes()).unwrap();
        to_b.post(&i.to_le_bytes()).unwrap();
        from_c.post(&i.to_le_bytes()).unwrap();
    }
    let mut from = std::collections::HashMap::<String, Vec<u32>>::new();
    for _ in 0..100 {
        let m = rx.recv("b", Duration::from_secs(5)).unwrap();
        let v = u32::from_le_bytes(m.data[..4].try_into().unwrap());
        from.entry(m.source.to_string()).or_default().push(v);
    }
    nothing_for(&rx, "b", Duration::from_millis(200));
    let all: Vec<u32> = (0..50).collect();
    assert_eq!(from["a"], all);
    assert_eq!(from["c"], all);
    for i in 0..50u32 {
        let m = rx.recv("d", Duration::from_secs(5)).unwrap();
        assert_eq!(
            (m.source.as_str(), &m.data[..]),
            ("a", &i.to_le_bytes()[..])
        );
    }
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

const CHILD_FABRIC: &str = "HF_HOSTILE_EP_FABRIC";
const CHILD_BYTES: &str = "HF_HOSTILE_EP_BYTES";

/// Child of `a_sender_killed_mid_post_leaves_nothing_behind`: hosts "tx", makes an endpoint
/// to "rx" and posts one message of `HF_HOSTILE_EP_BYTES` bytes (which blocks on the full
/// ring until it is killed).
#[test]
#[ignore = "child process of the killed-sender test, started by it"]
fn child_posts_a_large_message() {
    let fabric = common::child_var(CHILD_FABRIC);
    let bytes: usize = common::child_var(CHILD_BYTES).parse().unwrap();
    let p = protocol(&fabric, &["tx"]);
    let mut ep = p.endpoint("tx", "rx").unwrap();
    let big = vec![0xabu8; bytes];
    println!("posting");
    let r = ep.post_with(
        &big,
        &SendOptions {
            timeout: Duration::from_secs(120),
            ..Default::default()
        },
    );
    println!("posted {r:?}");
    std::thread::sleep(Duration::from_secs(120));
}

/// Child of `a_receiver_killed_while_endpoints_post_fails_them_fast`: hosts "rx" and reads
/// nothing until it is killed.
#[test]
#[ignore = "child process of the killed-receiver test, started by it"]
fn child_hosts_a_silent_receiver() {
    let fabric = common::child_var(CHILD_FABRIC);
    let _p = protocol(&fabric, &["rx"]);
    println!("ready");
    std::thread::sleep(Duration::from_secs(120));
}

fn spawn(role: &str, env: &[(&str, &str)], until: &str) -> std::process::Child {
    let mut cmd = common::child_command(role);
    cmd.stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    assert!(
        lines.any(|l| l.trim_end().ends_with(until)),
        "child never said {until:?}"
    );
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// This process's mappings of files whose names contain `needle`.
fn mappings_of(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// A sender killed while one 80 MiB post through its endpoint is half in the ring (64 MiB
/// by descriptor, the rest inline): no part of it is delivered, the half message is freed,
/// and the dead sender's ring and segment are unmapped.
#[test]
fn a_sender_killed_mid_post_leaves_nothing_behind() {
    let dir = fabric("killtx");
    let rx = protocol(&dir.0, &["rx"]);
    let mut child = spawn(
        "child_posts_a_large_message",
        &[
            (CHILD_FABRIC, dir.0.as_str()),
            (CHILD_BYTES, &(80usize << 20).to_string()),
        ],
        "posting",
    );
    let pid = child.id();
    // The ring fills (nobody reads yet) and the post waits for room: kill it there.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match rx.recv("rx", Duration::from_millis(100)) {
            Ok(m) => panic!("a half message was delivered: {} bytes", m.data.len()),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout, "{e}"),
        }
        let seg = mappings_of(&format!("seg-{pid}-"));
        let ring = mappings_of(&format!("-{pid}-0."));
        let partial = metric(&rx, "reassembly_bytes");
        if seg.is_empty() && ring.is_empty() && partial == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "10 s after the sender died: segments {seg:?}, rings {ring:?}, {partial} bytes \
             of a half message"
        );
    }
}

/// A receiver killed while endpoints post to it, without background services anywhere:
/// inline and descriptor posts fail with `NodeNotFoundError` within a second.
#[test]
fn a_receiver_killed_while_endpoints_post_fails_them_fast() {
    let dir = fabric("killrx");
    let mut child = spawn(
        "child_hosts_a_silent_receiver",
        &[(CHILD_FABRIC, dir.0.as_str())],
        "ready",
    );
    let tx = Arc::new(protocol(&dir.0, &["t1", "t2"]));
    let posters: Vec<_> = [("t1", 100usize), ("t2", 5000usize)]
        .into_iter()
        .map(|(src, len)| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut ep = tx.endpoint(src, "rx").unwrap();
                let opts = SendOptions {
                    timeout: Duration::from_secs(30),
                    ..Default::default()
                };
                let data = vec![1u8; len];
                loop {
                    if let Err(e) = ep.post_with(&data, &opts) {
                        return (e, Instant::now());
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    for p in posters {
        let (e, at) = p.join().unwrap();
        assert_eq!(e.kind(), ErrorKind::NodeNotFound, "{e}");
        let took = at.saturating_duration_since(killed);
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }
    // A request through a new endpoint fails as fast.
    let t = Instant::now();
    let err = tx.endpoint("t1", "rx").map(drop).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NodeNotFound, "{err}");
    assert!(t.elapsed() < Duration::from_secs(1));
}

/// Every size boundary, through an endpoint to another protocol and one in process, received
/// with `recv` and with `recv_into` into a buffer of exactly the size and one byte short.
#[test]
fn sizes_at_every_boundary_arrive_intact() {
    let dir = fabric("sizes");
    let tx = protocol(&dir.0, &["a", "local"]);
    let rx = protocol(&dir.0, &["b"]);
    let limit = hyperfabric::engine::fragment_limit(
        hyperfabric::transport::channel::Lane::Bulk,
        tx.options().max_packet_size as usize,
    );
    let t = hyperfabric::engine::DESCRIPTOR_THRESHOLD;
    let c = hyperfabric::engine::CHUNK_SIZE;
    let sizes = [
        0,
        1,
        47,
        48,
        49,
        t - 1,
        t,
        t + 1,
        limit - 1,
        limit,
        limit + 1,
        c - 1,
        c,
        c + 1,
        3 * c + 5,
    ];
    let fill = |n: usize| (0..n).map(|i| (i * 31 + n) as u8).collect::<Vec<u8>>();
    for (p, src, dst) in [(&rx, "a", "b"), (&tx, "a", "local")] {
        let mut ep = tx.endpoint(src, dst).unwrap();
        for &n in &sizes {
            let data = fill(n);
            ep.post(&data).unwrap();
            let m = p.recv(dst, Duration::from_secs(5)).unwrap();
            assert_eq!(m.data.len(), n, "{src}->{dst}");
            assert!(m.data[..] == data[..], "{n} bytes {src}->{dst}");
            ep.post(&data).unwrap();
            if n > 0 {
                let mut short = vec![0u8; n - 1];
                let e = p
                    .recv_into(dst, Duration::from_secs(5), &mut short)
                    .unwrap_err();
                assert_eq!(e.kind(), ErrorKind::BufferOverflow, "{e}");
            }
            let mut buf = vec![0u8; n];
            let got = p.recv_into(dst, Duration::from_secs(5), &mut buf).unwrap();
            assert_eq!((got.len, got.source.as_str()), (n, src));
            assert!(buf == data, "{n} bytes {src}->{dst} by recv_into");
        }
        nothing_for(p, dst, Duration::from_millis(100));
    }
}

/// Four threads post through endpoints of their own (sizes inline, at the descriptor
/// threshold and by chunk) while two threads `recv` and two `recv_into` buffers too small for
/// most messages: every message arrives once, intact, each sender's in order per receiver.
#[test]
fn many_endpoints_and_receivers_with_small_buffers() {
    const EACH: u32 = 1500;
    let dir = fabric("mix");
    let tx = Arc::new(protocol(&dir.0, &["a"]));
    let rx = Arc::new(protocol(&dir.0, &["b"]));
    let lens = [0usize, 8, 2047, 2048, 2049, 40_000];
    let msg = move |t: u32, s: u32| -> Vec<u8> {
        let n = lens[(s as usize + t as usize) % lens.len()].max(8);
        let mut m = Vec::with_capacity(n);
        m.extend_from_slice(&t.to_le_bytes());
        m.extend_from_slice(&s.to_le_bytes());
        m.resize(n, (s % 251) as u8);
        m
    };
    let receivers: Vec<_> = (0..4)
        .map(|k| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let mut seen: Vec<(u32, u32)> = Vec::new();
                let mut buf = vec![0u8; 64];
                loop {
                    let got = if k < 2 {
                        rx.recv("b", Duration::from_millis(1500))
                            .map(|m| m.data.to_vec())
                    } else {
                        rx.recv_into("b", Duration::from_millis(1500), &mut buf)
                            .map(|r| buf[..r.len].to_vec())
                    };
                    match got {
                        Ok(d) => {
                            let t = u32::from_le_bytes(d[0..4].try_into().unwrap());
                            let s = u32::from_le_bytes(d[4..8].try_into().unwrap());
                            assert!(d == msg(t, s), "message {t}/{s} damaged");
                            seen.push((t, s));
                        }
                        Err(e) if e.kind() == ErrorKind::BufferOverflow => std::thread::yield_now(),
                        Err(e) if e.kind() == ErrorKind::Timeout => return seen,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let senders: Vec<_> = (0..4u32)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut ep = tx.endpoint("a", "b").unwrap();
                for s in 0..EACH {
                    ep.post(&msg(t, s)).unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let mut all = Vec::new();
    for r in receivers {
        let seen = r.join().unwrap();
        for t in 0..4 {
            let mine: Vec<u32> = seen.iter().filter(|x| x.0 == t).map(|x| x.1).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "sender {t} reordered");
        }
        all.extend(seen);
    }
    all.sort_unstable();
    let want: Vec<(u32, u32)> = (0..4)
        .flat_map(|t| (0..EACH).map(move |s| (t, s)))
        .collect();
    assert_eq!(all.len(), want.len(), "lost or doubled");
    assert!(all == want, "lost or doubled");
}

/// Nodes that leave and come back: an endpoint to a node that left fails with
/// `NodeNotFoundError` (also once the id is registered again: it was made for the earlier
/// registration), messages sent before it left never reach the new one, and an endpoint
/// whose own source left fails the same way. In process and across protocols.
#[test]
fn endpoints_outlive_neither_end() {
    let dir = fabric("rereg");
    let tx = protocol(&dir.0, &["a"]);
    let rx = protocol(&dir.0, &["b"]);
    for (p, dst) in [(&rx, "b"), (&tx, "l")] {
        if dst == "l" {
            tx.register_node(node("l")).unwrap();
        }
        let mut ep = tx.endpoint("a", dst).unwrap();
        ep.post(b"before").unwrap();
        p.unregister_node(dst).unwrap();
        assert_eq!(ep.post(b"x").unwrap_err().kind(), ErrorKind::NodeNotFound);
        p.register_node(node(dst)).unwrap();
        assert_eq!(ep.post(b"x").unwrap_err().kind(), ErrorKind::NodeNotFound);
        nothing_for(p, dst, Duration::from_millis(200));
        let mut fresh = tx.endpoint("a", dst).unwrap();
        fresh.post(b"after").unwrap();
        let m = p.recv(dst, Duration::from_secs(5)).unwrap();
        assert_eq!(&m.data[..], b"after");
    }
    let mut ep = tx.endpoint("a", "b").unwrap();
    tx.unregister_node("a").unwrap();
    let e = ep.post(b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NodeNotFound, "{e}");
    tx.register_node(node("a")).unwrap();
    let e = ep.post(b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NodeNotFound, "{e}");
    drop(ep);
    nothing_for(&rx, "b", Duration::from_millis(200));
}

/// A node that leaves and comes back while another thread posts to it through endpoints
/// (made again after each failure): no crash, no hang, and every message delivered to the
/// node was sent to its current registration.
#[test]
fn a_node_that_churns_while_endpoints_post() {
    let dir = fabric("churn");
    let tx = Arc::new(protocol(&dir.0, &["a"]));
    let rx = Arc::new(protocol(&dir.0, &["b"]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poster = {
        let (tx, stop) = (tx.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut ep) = tx.endpoint("a", "b") else {
                    continue;
                };
                while ep.post(&[3u8; 3000]).is_ok() {
                    sent += 1;
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                }
            }
            sent
        })
    };
    for _ in 0..30 {
        let _ = rx.recv("b", Duration::from_millis(20));
        rx.unregister_node("b").unwrap();
        std::thread::sleep(Duration::from_millis(2));
        rx.register_node(node("b")).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(poster.join().unwrap() > 0);
    while let Ok(m) = rx.recv("b", Duration::from_millis(100)) {
        assert!(m.data.iter().all(|&x| x == 3) && m.data.len() == 3000);
    }
}
