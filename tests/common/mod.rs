//! What the tests that run several processes share: the child side of a two-process test (the
//! test binary re-run as one of its own ignored tests, chosen by environment variables), a
//! peer process that serves until its stdin closes, and a fabric directory removed when the
//! test ends, also when it fails. Each test file uses part of it.
#![allow(dead_code)]

pub mod memory;
pub mod replies;
pub mod rings;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// This test binary re-run as its test `name` alone, including it although it is ignored.
/// Child sides are `#[ignore]`d so that a plain `cargo test` does not count them as passing
/// tests: run without their parent's environment they would test nothing.
pub fn child_command(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ]);
    cmd
}

/// The value of `var`, which a parent test sets for its child process. A child side run by
/// hand (`cargo test -- --ignored`) has none and fails here rather than pass untested.
#[track_caller]
pub fn child_var(var: &str) -> String {
    match std::env::var(var) {
        Ok(value) => value,
        Err(_) => panic!(
            "{var} is not set: this test is the child side of a two-process test and runs \
             only when its parent test starts it"
        ),
    }
}

/// A peer process. Dropping it closes its stdin (peers serve until then), waits up to five
/// seconds for it to leave, then kills it.
pub struct Peer(pub Child);

impl Peer {
    /// Writes one line to the peer's stdin (peers that wait for a go-ahead read it).
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.0.stdin.as_mut().expect("the peer's stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs this test binary's ignored `peer_role` test in a new process with `env`, and returns
/// once it printed "ready". Its later output is read and dropped, so it never meets a closed
/// pipe.
pub fn spawn_peer(env: &[(&str, &str)]) -> Peer {
    let mut cmd = child_command("peer_role");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest may print "test peer_role ... " on the same line first.
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.trim_end().ends_with("ready"));
    assert!(ready, "peer exited before it was ready");
    std::thread::spawn(move || lines.for_each(drop));
    Peer(child)
}

/// Blocks until the parent closes this child's stdin (or dies): how peers serve "until told".
pub fn serve_until_stdin_closes() {
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
}

/// Removes a test fabric's directory when dropped, also when the test fails.
pub struct FabricDir(pub String);

impl Drop for FabricDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&self.0));
    }
}

/// A protocol on test fabric `fabric`, with a fabric key if given, and sends by node name
/// through the calling thread's endpoints (`endpoints_by_name`) or the engine's rings.
fn protocol_of(
    fabric: &str,
    key: Option<hyperfabric::codec::FabricKey>,
    endpoints_by_name: bool,
) -> hyperfabric::fabric::HyperFabricProtocol {
    hyperfabric::fabric::HyperFabricProtocol::with_config(hyperfabric::fabric::ProtocolConfig {
        fabric_name: Some(fabric.into()),
        key,
        endpoints_by_name,
        ..Default::default()
    })
    .unwrap()
}

/// A protocol on test fabric `fabric` with the default options and, if given, a fabric key.
pub fn protocol_with_key(
    fabric: &str,
    key: Option<hyperfabric::codec::FabricKey>,
) -> hyperfabric::fabric::HyperFabricProtocol {
    protocol_of(fabric, key, true)
}

/// A protocol on test fabric `fabric` with the default options.
pub fn protocol(fabric: &str) -> hyperfabric::fabric::HyperFabricProtocol {
    protocol_of(fabric, None, true)
}

/// A protocol whose sends by node name take the engine's rings rather than endpoints the
/// calling thread keeps: for tests of what those rings carry.
pub fn engine_protocol_with_key(
    fabric: &str,
    key: Option<hyperfabric::codec::FabricKey>,
) -> hyperfabric::fabric::HyperFabricProtocol {
    protocol_of(fabric, key, false)
}

/// [`engine_protocol_with_key`] without a key.
pub fn engine_protocol(fabric: &str) -> hyperfabric::fabric::HyperFabricProtocol {
    protocol_of(fabric, None, false)
}

/// The fabric key the tests that encrypt share.
pub fn test_key() -> hyperfabric::codec::FabricKey {
    hyperfabric::codec::FabricKey::from_bytes([7u8; 32])
}

/// A CPU server node of 100 Gbit/s and 10 ns.
pub fn node(id: &str) -> hyperfabric::model::NodeSignature {
    hyperfabric::model::NodeSignature::new(
        id,
        hyperfabric::model::HardwareType::CpuServer,
        100.0,
        10,
    )
    .unwrap()
}

/// FNV-1a of `data`: the checksum test messages carry.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A protocol on test fabric `fabric` with TCP (listening on a free loopback port when
/// `listen`), reaching the nodes of this host over TCP too (two protocols of one test then
/// talk as two hosts would).
pub fn tcp_protocol(
    fabric: &str,
    key: Option<hyperfabric::codec::FabricKey>,
    listen: bool,
) -> hyperfabric::fabric::HyperFabricProtocol {
    hyperfabric::fabric::HyperFabricProtocol::with_config(hyperfabric::fabric::ProtocolConfig {
        fabric_name: Some(fabric.into()),
        key,
        tcp: Some(loopback_tcp(listen)),
        ..Default::default()
    })
    .unwrap()
}

/// A protocol on test fabric `fabric` for a test of processes that meet over TCP only (each
/// with a fabric directory of its own): listening on a free loopback port when `listen`,
/// dialing `peers` (again whenever their connection drops), with the silence limit
/// `down_after` when given.
pub fn host_protocol(
    fabric: &str,
    listen: bool,
    peers: Vec<std::net::SocketAddr>,
    down_after: Option<Duration>,
) -> hyperfabric::fabric::HyperFabricProtocol {
    let mut tcp = hyperfabric::fabric::TcpConfig {
        listen: listen.then(|| "127.0.0.1:0".parse().unwrap()),
        peers,
        ..Default::default()
    };
    if let Some(d) = down_after {
        tcp.down_after = d;
    }
    hyperfabric::fabric::HyperFabricProtocol::with_config(hyperfabric::fabric::ProtocolConfig {
        fabric_name: Some(fabric.into()),
        key: Some(test_key()),
        tcp: Some(tcp),
        ..Default::default()
    })
    .unwrap()
}

/// TCP on loopback (listening on a free port when `listen`) that reaches the nodes of this
/// host over TCP too.
pub fn loopback_tcp(listen: bool) -> hyperfabric::fabric::TcpConfig {
    hyperfabric::fabric::TcpConfig {
        listen: listen.then(|| "127.0.0.1:0".parse().unwrap()),
        force: true,
        ..Default::default()
    }
}

/// Waits until `p` reaches node `to` over TCP (until the connection's announcement, the
/// node of the other protocol is reached through shared memory: both run on this host).
pub fn until_tcp(p: &hyperfabric::fabric::HyperFabricProtocol, to: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while p.transport_to(to).ok() != Some("tcp") {
        assert!(Instant::now() < until, "{:?}", p.transport_to(to));
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The header of a frame on a TCP connection between hosts, for tests that play a peer by
/// hand: `len` bytes of payload of `kind` with `flags`, from the sender's node `src` to its
/// node `dst`, on the latency lane.
pub fn frame_header(kind: u8, flags: u8, len: usize, src: u32, dst: u32) -> [u8; 20] {
    hyperfabric::transport::tcp::FrameHeader {
        slot: hyperfabric::ring::SlotHeader {
            len: len as u32,
            kind,
            flags,
            aux: 0,
            src,
        },
        dst,
        lane: hyperfabric::transport::channel::Lane::Latency,
    }
    .encode()
}

/// The announcement of a peer played by hand: its node 0 `hosted` (hosted by it), and the
/// receiver's node `receiver` as its node 1, from process instance `instance` (carried by
/// the frames' headers; 0 says none).
pub fn announcement(instance: u64, hosted: &str, receiver: &str) -> Vec<u8> {
    use hyperfabric::transport::tcp::control::{Announce, Announced};
    let nodes = Announce::Nodes(vec![
        Announced {
            index: 0,
            generation: 1,
            hosted: true,
            signature: node(hosted),
        },
        Announced {
            index: 1,
            generation: 1,
            hosted: false,
            signature: node(receiver),
        },
    ]);
    let mut out = Vec::new();
    for (kind, body) in nodes.encode().unwrap() {
        let h = frame_header(
            kind,
            0,
            body.len(),
            instance as u32,
            (instance >> 32) as u32,
        );
        out.extend_from_slice(&h);
        out.extend_from_slice(&body);
    }
    out
}

/// Fabric `name`, learning routes (`enable_ml_routing`), of nodes p and q joined by a
/// 1 Gbit/s link.
pub fn learning_pair(name: &str) -> hyperfabric::config::FabricConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fabric.yaml");
    std::fs::write(
        &path,
        format!(
            "fabric:\n  name: {name}\n  protocol: {{ enable_ml_routing: true }}\nnodes:\n\
             \x20 - {{ node_id: p, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}\n\
             \x20 - {{ node_id: q, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}\n\
             links:\n  - {{ a: p, b: q, latency_ns: 1000, bandwidth_gbps: 1 }}\n"
        ),
    )
    .unwrap();
    hyperfabric::config::load_fabric_config(&path).unwrap()
}

/// A thread that runs until its flag is set: set, and the thread joined, by
/// [`Stopped::stop`] or when dropped (also when the test fails), so what the thread holds
/// (a protocol) is gone before the fabric is removed, and nothing of it outlives the test.
pub struct Stopped<T> {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<T>>,
}

impl<T: Send + 'static> Stopped<T> {
    /// Runs `f` on a thread of its own; `f` returns once the flag it is given is set.
    pub fn spawn(f: impl FnOnce(&std::sync::atomic::AtomicBool) -> T + Send + 'static) -> Self {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = flag.clone();
        Stopped {
            flag,
            thread: Some(std::thread::spawn(move || f(&seen))),
        }
    }

    /// Sets the flag and joins the thread: what it returned.
    pub fn stop(mut self) -> T {
        self.flag.store(true, std::sync::atomic::Ordering::Release);
        self.thread.take().expect("joined once").join().unwrap()
    }
}

impl<T> Drop for Stopped<T> {
    fn drop(&mut self) {
        self.flag.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
