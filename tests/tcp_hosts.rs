//! Nodes of other hosts reached over the io_uring TCP transport. Each "host" here is a
//! process with a fabric directory of its own (`HF_SHM_DIR`), so nothing is shared between
//! them but TCP: three processes started from one configuration file, with a switch node on
//! the third, exchange checked messages, sealed and compressed requests, and survive a host
//! killed with SIGKILL and started again; a process with the wrong key is refused.

mod common;

use common::{checksum, child_command, child_var, node, tcp_protocol, test_key, FabricDir};
use hyperfabric::codec::FabricKey;
use hyperfabric::config::FabricConfig;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions, TcpConfig};
use hyperfabric::model::PacketPriority;
use hyperfabric::ErrorKind;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CONFIG: &str = "HF_TCP_TEST_CONFIG";
const HOST: &str = "HF_TCP_TEST_HOST";

/// Node "a" on `a` (listening; it answers with the bytes reversed, on its engine thread)
/// and node "b" on `b`, connected to it: b's request is answered.
fn answering_pair(a: &HyperFabricProtocol, b: &HyperFabricProtocol) {
    a.register_node(node("a")).unwrap();
    a.on_receive("a", |m| Ok(m.data.iter().rev().copied().collect()))
        .unwrap();
    a.start_background_services().unwrap();
    b.register_node(node("b")).unwrap();
    b.connect_host(a.listen_address().unwrap()).unwrap();
    let back = b
        .send_data("b", "a", b"hello", &SendOptions::default())
        .unwrap();
    assert_eq!(back, b"olleh");
}

#[test]
fn two_protocols_of_one_process_talk_over_tcp() {
    let f = FabricDir(format!("tcp-two-{}", std::process::id()));
    let a = tcp_protocol(&f.0, Some(test_key()), true);
    let b = tcp_protocol(&f.0, Some(test_key()), false);
    answering_pair(&a, &b);
    let info = b.get_topology_info().unwrap();
    assert_eq!(info.performance_metrics["tcp_connections"], 1.0, "{info:?}");
    assert!(info.performance_metrics["bytes_sent"] > 0.0);
}

/// With `sqpoll`, a kernel thread polls each engine's ring: posts of one frame and of
/// several (up to 300 KB, in frames of the largest size a connection carries) and a request
/// cross in order, and the mode says so.
#[test]
fn rings_polled_by_a_kernel_thread_carry_posts_and_requests() {
    let f = FabricDir(format!("tcp-sqpoll-{}", std::process::id()));
    let make = |listen: bool| {
        HyperFabricProtocol::with_config(ProtocolConfig {
            options: hyperfabric::config::ProtocolOptions {
                max_packet_size: 1 << 20,
                ..Default::default()
            },
            fabric_name: Some(f.0.clone()),
            key: Some(test_key()),
            tcp: Some(TcpConfig {
                listen: listen.then(|| "127.0.0.1:0".parse().unwrap()),
                force: true,
                sqpoll: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap()
    };
    let (a, b) = (make(true), make(false));
    for p in [&a, &b] {
        assert_eq!(
            p.transport_mode().as_deref(),
            Some("io_uring multishot, sqpoll")
        );
    }
    answering_pair(&a, &b);
    let sizes: Vec<usize> = (0..40).map(|i| (i * 7919) % 300_000).collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            for (i, &n) in sizes.iter().enumerate() {
                let d: Vec<u8> = (0..n).map(|k| (k ^ i) as u8).collect();
                a.post("a", "b", &d, &SendOptions::default()).unwrap();
            }
        });
        for (i, &n) in sizes.iter().enumerate() {
            let m = b.recv("b", Duration::from_secs(20)).unwrap();
            assert_eq!(m.data.len(), n, "message {i}");
            assert!(m.data.iter().enumerate().all(|(k, &x)| x == (k ^ i) as u8));
        }
    });
}

#[test]
fn a_protocol_without_key_or_insecure_is_refused() {
    let fabric = format!("tcp-nokey-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let e = HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.clone()),
        tcp: Some(TcpConfig::default()),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("insecure"), "{e}");
    // Refused before the fabric's host state was touched.
    assert!(!hyperfabric::sys::state_root().join(&fabric).exists());
}

// ---- three hosts ----------------------------------------------------------------------

/// Nodes: a1, a2 on h1; b1, b2 on h2; s1 (a switch) on h3. Links: a1-b1 directly, a2 and
/// b2 only through s1.
fn write_config(dir: &Path, addresses: [String; 3]) -> PathBuf {
    let key = dir.join("fabric.key");
    std::fs::write(&key, "07".repeat(32)).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&key).unwrap().permissions(),
        0o600,
    );
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let n = |id: &str, host: &str| {
        format!("  - {{ node_id: {id}, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 1000, host: {host} }}\n")
    };
    let text = format!(
        "fabric: {{ name: tcp-three-{pid}, key_file: fabric.key }}\nnodes:\n{}{}{}{}{}\
         links:\n  - {{ a: a1, b: b1 }}\n  - {{ a: a2, b: s1 }}\n  - {{ a: s1, b: b2 }}\n\
         hosts:\n  - {{ name: h1, address: \"{}\" }}\n  - {{ name: h2, address: \"{}\" }}\n  - {{ name: h3, address: \"{}\" }}\n",
        n("a1", "h1"),
        n("a2", "h1"),
        n("b1", "h2"),
        n("b2", "h2"),
        n("s1", "h3"),
        addresses[0],
        addresses[1],
        addresses[2],
        pid = std::process::id(),
    );
    let path = dir.join("fabric.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What node `b1` checks of the stream it receives: per priority, the next sequence number,
/// and the first fault seen.
#[derive(Default)]
struct Stream {
    next: [u32; 5],
    received: u64,
    fault: Option<String>,
}

fn priority_code(p: PacketPriority) -> u8 {
    PacketPriority::ALL.iter().position(|&q| q == p).unwrap() as u8
}

/// A stream message: priority, sequence number, checksum of the filler, filler.
fn stream_message(priority: u8, seq: u32, len: usize, seed: u64) -> Vec<u8> {
    let mut m = vec![priority];
    m.extend_from_slice(&seq.to_le_bytes());
    let filler: Vec<u8> = (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) >> 3) as u8)
        .collect();
    m.extend_from_slice(&checksum(&filler).to_le_bytes());
    m.extend_from_slice(&filler);
    m
}

fn check_stream(s: &mut Stream, m: &[u8]) {
    if s.fault.is_some() {
        return;
    }
    let fault = (|| {
        if m.len() < 13 {
            return Some(format!("a message of {} bytes", m.len()));
        }
        let p = m[0] as usize;
        let seq = u32::from_le_bytes(m[1..5].try_into().unwrap());
        let sum = u64::from_le_bytes(m[5..13].try_into().unwrap());
        if p >= 5 {
            return Some(format!("priority {p}"));
        }
        if seq != s.next[p] {
            return Some(format!(
                "priority {p}: sequence {seq}, expected {}",
                s.next[p]
            ));
        }
        if checksum(&m[13..]) != sum {
            return Some(format!("priority {p} sequence {seq}: checksum differs"));
        }
        s.next[p] += 1;
        None
    })();
    s.received += 1;
    s.fault = fault;
}

fn wait_known(p: &HyperFabricProtocol, ids: &[&str], mine: &[String], within: Duration) {
    let until = Instant::now() + within;
    loop {
        // Known, and through a connection to the process hosting it (a node of another
        // host carries that host's address in its metadata).
        let known = p.topology().unwrap().read(|t| {
            ids.iter().all(|id| {
                t.node(id).is_ok_and(|n| {
                    mine.iter().any(|m| m == id)
                        || n.metadata.as_ref().is_some_and(|m| m.contains_key("host"))
                })
            })
        });
        if known {
            return;
        }
        assert!(Instant::now() < until, "nodes {ids:?} not known in time");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Child side: the process of host `HF_TCP_TEST_HOST` of the file `HF_TCP_TEST_CONFIG`.
/// Prints "@@ready" once every node of the fabric is known, then runs the commands its
/// stdin gives, answering each on one "@@" line.
#[test]
#[ignore = "child process of the tests in this file, started by them"]
fn host_role() {
    let cfg = hyperfabric::config::load_fabric_config(child_var(CONFIG)).unwrap();
    let host = child_var(HOST);
    let p = Arc::new(
        HyperFabricProtocol::with_config(ProtocolConfig::for_host(&cfg, &host).unwrap()).unwrap(),
    );
    let stream = Arc::new(Mutex::new(Stream::default()));
    for n in cfg.nodes_of(&host) {
        p.register_node(n.clone()).unwrap();
        let (stream, id) = (stream.clone(), n.node_id.clone());
        p.on_receive(&n.node_id, move |m| {
            if m.data.starts_with(b"report") {
                let s = stream.lock().unwrap();
                return Ok(
                    format!("{} {}", s.received, s.fault.clone().unwrap_or_default()).into_bytes(),
                );
            }
            if m.data.starts_with(b"stall") {
                std::thread::sleep(Duration::from_secs(30));
            }
            if id == "b1" && m.data.first().is_some_and(|&p| p < 5) {
                check_stream(&mut stream.lock().unwrap(), &m.data);
                return Ok(Vec::new());
            }
            Ok(checksum(&m.data).to_le_bytes().to_vec())
        })
        .unwrap();
    }
    p.start_background_services().unwrap();
    let mine: Vec<String> = cfg
        .nodes_of(&host)
        .iter()
        .map(|n| n.node_id.clone())
        .collect();
    wait_known(
        &p,
        &["a1", "a2", "b1", "b2", "s1"],
        &mine,
        Duration::from_secs(20),
    );
    println!("@@ready");
    for line in std::io::stdin().lines().map_while(Result::ok) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["stream", n] => run_stream(&p, n.parse().unwrap()),
            ["echo", src, dst, len, flags] => echo(&p, src, dst, len.parse().unwrap(), flags),
            ["route", src, dst] => p
                .topology()
                .map(|t| t.shortest_route(src, dst, hyperfabric::routing::Metric::Latency))
                .and_then(|r| r)
                .map(|r| r.path.join(","))
                .unwrap_or_else(|e| format!("error {e}")),
            [what @ ("stall" | "request"), src, dst] => {
                let t0 = Instant::now();
                let opts = SendOptions {
                    timeout: Duration::from_secs(20),
                    ..Default::default()
                };
                match p.send_data(src, dst, what.as_bytes(), &opts) {
                    Ok(_) => "answered".into(),
                    Err(e) => format!("{:?} after {} ms", e.kind(), t0.elapsed().as_millis()),
                }
            }
            ["ping", src, dst] => match p.ping(src, dst, 64, 5000) {
                Ok(r) if r.success => format!("{} {}", r.path.join(","), r.latency_ns),
                Ok(r) => format!("error lost {:?}", r.packet_loss_rate),
                Err(e) => format!("error {e}"),
            },
            ["intrude", addr] => {
                // Another process of the same fabric with the wrong key.
                let q = HyperFabricProtocol::with_config(ProtocolConfig {
                    fabric_name: Some(cfg.fabric.name.clone()),
                    key: Some(FabricKey::from_bytes([9; 32])),
                    tcp: Some(TcpConfig::default()),
                    ..Default::default()
                })
                .unwrap();
                match q.connect_host(addr.parse().unwrap()) {
                    Ok(()) => "connected".into(),
                    Err(e) => format!("{:?} {e}", e.kind()),
                }
            }
            ["counters"] => {
                let m = p.get_topology_info().unwrap().performance_metrics;
                format!(
                    "frames_sent={} handshakes_refused={} errors={} abandoned={} refused={} \
                     closed={} tcp_closed_silent={}",
                    m["frames_sent"],
                    m["tcp_handshakes_refused"],
                    m["errors"],
                    m["abandoned_reassemblies"],
                    m["tcp_frames_refused"],
                    m["tcp_closed"],
                    m["tcp_closed_silent"]
                )
            }
            _ => format!("error unknown command {line:?}"),
        };
        println!("@@{answer}");
        std::io::stdout().flush().unwrap();
    }
}

fn run_stream(p: &HyperFabricProtocol, n: u32) -> String {
    let mut seq = [0u32; 5];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let priority = PacketPriority::ALL[(x % 5) as usize];
        let len = match x >> 60 {
            0 => (x >> 20) as usize % 300_000,
            1..=3 => (x >> 20) as usize % 20_000,
            _ => (x >> 20) as usize % 200,
        };
        let code = priority_code(priority);
        let m = stream_message(code, seq[code as usize], len, x ^ i as u64);
        seq[code as usize] += 1;
        let opts = SendOptions {
            priority,
            ..Default::default()
        };
        if let Err(e) = p.post("a1", "b1", &m, &opts) {
            return format!("error post {i}: {e}");
        }
    }
    // The report is answered once all arrived (or a fault was seen).
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let r = p
            .send_data("a1", "b1", b"report", &SendOptions::default())
            .map(|b| String::from_utf8_lossy(&b).to_string());
        match r {
            // "<received> <fault>": done when all arrived or a fault was seen.
            Ok(r) if r.starts_with(&format!("{n} ")) => return r,
            Ok(r) if r.split_once(' ').is_some_and(|(_, f)| !f.is_empty()) => return r,
            Ok(r) if Instant::now() > until => return format!("timeout {r}"),
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return format!("error report: {e}"),
        }
    }
}

fn echo(p: &HyperFabricProtocol, src: &str, dst: &str, len: usize, flags: &str) -> String {
    // Not a stream message: its first byte is no priority.
    let data: Vec<u8> = (0..len.max(1))
        .map(|i| if i == 0 { 0xEE } else { (i * 13 % 256) as u8 })
        .collect();
    let opts = SendOptions {
        compression_enabled: flags.contains('c'),
        encryption_enabled: flags.contains('e'),
        timeout: Duration::from_secs(20),
        ..Default::default()
    };
    match p.send_data(src, dst, &data, &opts) {
        Ok(b) if b == checksum(&data).to_le_bytes() => "ok".into(),
        Ok(b) => format!("error answer {b:?}"),
        Err(e) => format!("error {e}"),
    }
}

/// A host process of the three-host test.
struct HostProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl HostProc {
    fn start(config: &Path, host: &str, shm: &Path, netns: Option<&str>) -> HostProc {
        let inner = child_command("host_role");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", ns])
                    .arg(inner.get_program())
                    .args(inner.get_args());
                c
            }
            None => inner,
        };
        cmd.env(CONFIG, config)
            .env(HOST, host)
            .env("HF_SHM_DIR", shm)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if let Some((_, a)) = l.split_once("@@") {
                    let _ = tx.send(a.to_string());
                }
            }
        });
        let stdin = child.stdin.take();
        HostProc {
            child,
            stdin,
            lines,
        }
    }

    fn answer(&mut self, within: Duration) -> String {
        match self.lines.recv_timeout(within) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => panic!("no answer within {within:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the host process exited"),
        }
    }

    fn ask(&mut self, command: &str, within: Duration) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        self.answer(within)
    }
}

impl Drop for HostProc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Addresses with ports free now on loopback.
fn loopback() -> [String; 3] {
    let l: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    [0, 1, 2].map(|i| l[i].local_addr().unwrap().to_string())
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn three_hosts_on_loopback() {
    three_hosts(loopback(), None, "lo");
}

#[test]
fn three_hosts_in_network_namespaces() {
    let net = match hyperfabric::testbed::Testbed::new(3, false) {
        Ok(n) => n,
        Err(why) => {
            println!("SKIPPED: this machine does not allow network namespaces: {why}");
            return;
        }
    };
    let addresses = [0, 1, 2].map(|i| format!("{}:7311", net.address(i)));
    let names = [0, 1, 2].map(|i| net.name(i).to_string());
    three_hosts(addresses, Some(names), "ns");
}

/// The three-host scenario on `addresses`, each host in its namespace of `netns` if given.
fn three_hosts(addresses: [String; 3], netns: Option<[String; 3]>, tag: &str) {
    let dir = TempDir(std::env::temp_dir().join(format!("hf-tcp-{tag}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let config = write_config(&dir.0, addresses);
    let ns = |i: usize| netns.as_ref().map(|n| n[i].as_str());
    let cfg: FabricConfig = hyperfabric::config::load_fabric_config(&config).unwrap();
    let shm = |h: &str| {
        let d = dir.0.join(format!("shm-{h}"));
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let mut h1 = HostProc::start(&config, "h1", &shm("h1"), ns(0));
    let mut h2 = HostProc::start(&config, "h2", &shm("h2"), ns(1));
    let mut h3 = HostProc::start(&config, "h3", &shm("h3"), ns(2));
    for h in [&mut h1, &mut h2, &mut h3] {
        assert_eq!(h.answer(Duration::from_secs(30)), "ready");
    }

    // 10,000 messages of random sizes and priorities, checked in order per priority.
    let r = h1.ask("stream 10000", Duration::from_secs(120));
    if r != "10000 " {
        let c1 = h1.ask("counters", Duration::from_secs(10));
        let c2 = h2.ask("counters", Duration::from_secs(10));
        panic!("b1 received/fault: {r}; h1 {c1}; h2 {c2}");
    }

    // Compressed and sealed, large, both ways.
    for (src, dst, len, flags) in [("a1", "b1", 3_000_000, "ce"), ("a1", "b1", 100, "e")] {
        let r = h1.ask(
            &format!("echo {src} {dst} {len} {flags}"),
            Duration::from_secs(60),
        );
        assert_eq!(r, "ok", "{src}->{dst} {len} {flags}");
    }
    assert_eq!(h2.ask("echo b1 a1 200000 c", Duration::from_secs(60)), "ok");

    // Through the switch on the third host: the routing table's path, and the path the
    // ping's probes took (each host on the way recorded itself).
    assert_eq!(h1.ask("route a2 b2", Duration::from_secs(10)), "a2,s1,b2");
    let ping = h1.ask("ping a2 b2", Duration::from_secs(30));
    let (path, latency) = ping.split_once(' ').unwrap();
    assert_eq!(path, "a2,s1,b2", "{ping}");
    assert!(latency.parse::<u64>().unwrap() > 0, "{ping}");
    let direct = h1.ask("ping a1 b1", Duration::from_secs(30));
    assert!(direct.starts_with("a1,b1 "), "{direct}");
    let before = h3.ask("counters", Duration::from_secs(10));
    assert_eq!(h1.ask("echo a2 b2 70000 -", Duration::from_secs(60)), "ok");
    let after = h3.ask("counters", Duration::from_secs(10));
    let sent = |c: &str| -> f64 {
        c.split_whitespace()
            .find_map(|w| w.strip_prefix("frames_sent="))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        sent(&after) > sent(&before),
        "s1 forwarded nothing: {before} / {after}"
    );

    // A process with the wrong key is refused, and counted.
    let r = h3.ask(
        &format!("intrude {}", cfg.host("h1").unwrap().address),
        Duration::from_secs(20),
    );
    assert!(r.starts_with("AuthenticationFailed"), "{r}");
    // The intruder learns of the refusal before h1 counts it: wait for the count.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let c = h1.ask("counters", Duration::from_secs(10));
        if c.contains("handshakes_refused=1") {
            break;
        }
        assert!(Instant::now() < until, "{c}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // h2 killed while a request waits on it: the request fails within a second or so.
    h1.stdin
        .as_mut()
        .map(|s| writeln!(s, "stall a1 b1").and_then(|()| s.flush()))
        .unwrap()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    h2.child.kill().unwrap();
    h2.child.wait().unwrap();
    let r = h1.answer(Duration::from_secs(10));
    assert!(
        r.starts_with("NodeNotFound") || r.starts_with("Timeout"),
        "the pending request ended with {r:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "detected after {:?}",
        t0.elapsed()
    );
    let r = h1.ask("echo a1 b1 10 -", Duration::from_secs(10));
    assert!(r.starts_with("error"), "b1 is down: {r}");

    // h2 back: reachable again from h1, directly and through the switch.
    drop(h2);
    let _ = std::fs::remove_dir_all(shm("h2"));
    let mut h2 = HostProc::start(&config, "h2", &shm("h2"), ns(1));
    assert_eq!(h2.answer(Duration::from_secs(30)), "ready");
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let r = h1.ask("echo a1 b1 1000 -", Duration::from_secs(30));
        if r == "ok" {
            break;
        }
        assert!(Instant::now() < until, "b1 not reachable again: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(h1.ask("echo a2 b2 1000 -", Duration::from_secs(30)), "ok");
    assert_eq!(h2.ask("echo b2 a2 1000 -", Duration::from_secs(30)), "ok");

    // h2 stopped (SIGSTOP: its process and its connections stay, nothing answers): a request
    // to it fails once its connection was silent for a second, and it is down; after
    // SIGCONT it is reachable again.
    let stop = |sig| {
        // SAFETY: kill only sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(h2.child.id() as i32, sig) }, 0);
    };
    stop(libc::SIGSTOP);
    // Every thread of it stopped (state T), not only signalled.
    let stat = format!("/proc/{}/task", h2.child.id());
    let until = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&stat).unwrap().any(|t| {
        let s = std::fs::read_to_string(t.unwrap().path().join("stat")).unwrap_or_default();
        let state = s.rsplit_once(") ").map_or("", |(_, rest)| &rest[..1]);
        state != "T" && state != "t"
    }) {
        assert!(Instant::now() < until, "h2 did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
    let t0 = Instant::now();
    let r = h1.ask("request a1 b1", Duration::from_secs(30));
    assert!(r.starts_with("NodeNotFound"), "{r}");
    eprintln!("a stopped host detected after {:?}", t0.elapsed());
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "detected after {:?}",
        t0.elapsed()
    );
    let c = h1.ask("counters", Duration::from_secs(10));
    assert!(!c.contains("tcp_closed_silent=0"), "{c}");
    stop(libc::SIGCONT);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let r = h1.ask("echo a1 b1 1000 -", Duration::from_secs(30));
        if r == "ok" {
            break;
        }
        assert!(
            Instant::now() < until,
            "b1 not reachable after SIGCONT: {r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Neither process runs an engine thread: a post of several frames leaves within the call
/// (frames queued behind a send in flight go to the kernel before it returns), and the
/// side that only listens takes the connection and announces its nodes meanwhile.
#[test]
fn posts_of_several_frames_leave_without_an_engine_thread() {
    let f = FabricDir(format!("tcp-no-thread-{}", std::process::id()));
    let a = tcp_protocol(&f.0, Some(test_key()), true);
    let b = tcp_protocol(&f.0, Some(test_key()), false);
    a.register_node(node("a")).unwrap();
    b.register_node(node("b")).unwrap();
    b.connect_host(a.listen_address().unwrap()).unwrap();
    let t = std::thread::spawn(move || {
        for i in 0..20 {
            let m = a
                .recv("a", Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("a {i}: {e}"));
            a.post("a", "b", &m.data, &SendOptions::default()).unwrap();
        }
    });
    let data = vec![7u8; 65536];
    for i in 0..20 {
        b.post("b", "a", &data, &SendOptions::default()).unwrap();
        let m = b
            .recv("b", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("b {i}: {e}"));
        assert_eq!(m.data.len(), 65536);
    }
    t.join().unwrap();
}
