//! Learned routing from live traffic: two disjoint paths from a to b, through switch
//! processes s1 (1 us, 2 Gbit/s links) and s2 (10 us, 1 Gbit/s links). This process hosts a
//! and x, whose only link is to s1; s1, s2 and b are `hyperfabric serve` processes that
//! forward on the configured figures.
//!
//! Bulk from x to b crosses s1. With `enable_ml_routing`, probes from a to b (latency
//! sends, whose paths are recorded hop by hop) move to s2 within 500 ms of the bulk's start,
//! without any `update_link_metrics` call, stay there while it lasts, and come back to s1
//! within a few seconds of its end. Without the option they stay on s1 throughout.

mod common;

use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::{DataType, PacketPriority};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tests of this file run one at a time: the timings of one must not be the other's load.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config(name: &str, ml: bool) -> String {
    format!(
        "\
fabric:
  name: {name}
  protocol: {{ enable_ml_routing: {ml} }}
nodes:
  - {{ node_id: a, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}
  - {{ node_id: x, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}
  - {{ node_id: s1, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}
  - {{ node_id: s2, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}
  - {{ node_id: b, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}
links:
  - {{ a: a, b: s1, latency_ns: 1000, bandwidth_gbps: 2 }}
  - {{ a: s1, b: b, latency_ns: 1000, bandwidth_gbps: 2 }}
  - {{ a: x, b: s1, latency_ns: 1000, bandwidth_gbps: 2 }}
  - {{ a: a, b: s2, latency_ns: 10000, bandwidth_gbps: 1 }}
  - {{ a: s2, b: b, latency_ns: 10000, bandwidth_gbps: 1 }}
"
    )
}

/// A serve process; stopped with SIGTERM when dropped (it then removes its nodes and
/// rings), killed if it has not ended within 10 s. Its stdout stays open: it says when it
/// stopped.
struct Served(
    Child,
    #[allow(dead_code)] BufReader<std::process::ChildStdout>,
);

impl Drop for Served {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child's pid, which it keeps until waited for.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes the fabric's host state when dropped, after every process left it (the last
/// serve process to stop removes it already).
struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = HyperFabricProtocol::remove_fabric(&self.0);
        let root = std::env::var_os("HF_SHM_DIR").map_or_else(
            // SAFETY: getuid(2) cannot fail.
            || format!("/dev/shm/hyperfabric-{}", unsafe { libc::getuid() }).into(),
            std::path::PathBuf::from,
        );
        if !std::thread::panicking() {
            assert!(
                !root.join(&self.0).exists(),
                "fabric {} left behind",
                self.0
            );
        }
    }
}

fn serve(config: &std::path::Path, node: &str) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hyperfabric"))
        .args(["serve", "--nodes", node, "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("serving"), "{node}: {line}");
    Served(child, out)
}

/// The fabric: switches and b served, a and x hosted here.
struct Fabric {
    p: Arc<HyperFabricProtocol>,
    config: std::path::PathBuf,
    _served: Vec<Served>,
    _removed: Removed,
    _dir: tempfile::TempDir,
}

impl Fabric {
    fn new(ml: bool) -> Fabric {
        let name = format!(
            "learn-{}-{}",
            if ml { "on" } else { "off" },
            std::process::id()
        );
        let dir = tempfile::tempdir().unwrap();
        let learning = dir.path().join("fabric.yaml");
        std::fs::write(&learning, config(&name, ml)).unwrap();
        // The switches forward on the configured figures in both runs.
        let switches = dir.path().join("switches.yaml");
        std::fs::write(&switches, config(&name, false)).unwrap();
        let served = ["s1", "s2", "b"]
            .iter()
            .map(|n| serve(&switches, n))
            .collect();
        let cfg = hyperfabric::config::load_fabric_config(&learning).unwrap();
        let p =
            HyperFabricProtocol::with_config(ProtocolConfig::from_config(&cfg).unwrap()).unwrap();
        for n in cfg
            .nodes
            .iter()
            .filter(|n| ["a", "x"].contains(&&*n.node_id))
        {
            p.register_node(n.clone()).unwrap();
        }
        p.start_background_services().unwrap();
        Fabric {
            p: Arc::new(p),
            config: learning,
            _served: served,
            _removed: Removed(name),
            _dir: dir,
        }
    }

    /// The path of one latency probe from a to b.
    fn probe(&self) -> Vec<String> {
        self.p
            .probe("a", "b", 64, PacketPriority::High, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("probe a -> b: {e}"))
            .path
    }

    /// Probes until `f` holds for a probe's path (at most `limit`): when it first did.
    fn probe_until(&self, limit: Duration, f: impl Fn(&[String]) -> bool) -> Option<Instant> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if f(&self.probe()) {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Probes for `d`: each path and when it was seen.
    fn probe_for(&self, d: Duration) -> Vec<(Instant, Vec<String>)> {
        let end = Instant::now() + d;
        let mut seen = Vec::new();
        while Instant::now() < end {
            seen.push((Instant::now(), self.probe()));
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    }

    /// Posts 1 MiB bulk messages from x to b until stopped.
    fn bulk(&self) -> common::Stopped<u64> {
        let p = self.p.clone();
        common::Stopped::spawn(move |flag| {
            let data = vec![7u8; 1 << 20];
            let opts = SendOptions {
                data_type: DataType::Generic,
                priority: PacketPriority::Bulk,
                ..SendOptions::default()
            };
            let mut sent = 0u64;
            while !flag.load(Ordering::Acquire) {
                p.post("x", "b", &data, &opts).unwrap();
                sent += 1;
            }
            sent
        })
    }

    /// `hyperfabric monitor --once` (`--json` when `json`): its output.
    fn monitor(&self, json: bool) -> String {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hyperfabric"));
        c.args(["monitor", "--once", "--config"]).arg(&self.config);
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn metric(&self, name: &str) -> f64 {
        self.p.get_topology_info().unwrap().performance_metrics[name]
    }
}

/// Records every sample learned routing takes (set `HF_LEARN_RECORD` to a file): one line
/// per link direction and sample,
/// `src,dst,capacity_gbps,utilisation,queued_bytes,measured_delay_ns` (the delay empty when
/// none was measured), for the model's tests.
struct Recorder {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Recorder {
    fn start(f: &Fabric, path: std::ffi::OsString) -> Recorder {
        let (p, stop) = (f.p.clone(), Arc::new(AtomicBool::new(false)));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out =
                String::from("src,dst,capacity_gbps,utilisation,queued_bytes,measured_delay_ns\n");
            let mut last = 0;
            while !flag.load(Ordering::Acquire) {
                let l = p.learned_routing().unwrap();
                if l.samples != last {
                    last = l.samples;
                    for k in &l.links {
                        let d = k.measured_delay_ns.map(|d| format!("{d:.0}"));
                        out += &format!(
                            "{},{},{},{:.6},{:.0},{}\n",
                            k.src,
                            k.dst,
                            k.capacity_gbps,
                            k.utilisation,
                            k.queued_bytes,
                            d.unwrap_or_default()
                        );
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            std::fs::write(path, out).unwrap();
        });
        Recorder { stop, thread }
    }

    fn finish(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap();
    }
}

fn via(path: &[String], switch: &str) -> bool {
    path.len() == 3 && path[0] == "a" && path[1] == switch && path[2] == "b"
}

/// Route changes seen in a run of probes: when each happened.
fn changes(seen: &[(Instant, Vec<String>)]) -> Vec<Instant> {
    seen.windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| w[1].0)
        .collect()
}

#[test]
fn bulk_through_s1_moves_latency_sends_to_s2_and_back_only_with_learned_routing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Off: routes depend only on the configured figures.
    {
        let f = Fabric::new(false);
        assert!(f
            .probe_until(Duration::from_secs(10), |p| via(p, "s1"))
            .is_some());
        let bulk = f.bulk();
        let seen = f.probe_for(Duration::from_secs(2));
        let mib = bulk.stop();
        let off_s1 = seen.iter().filter(|(_, p)| !via(p, "s1")).count();
        println!(
            "option off: {} probes during {mib} MiB of bulk, {off_s1} not via s1",
            seen.len()
        );
        assert_eq!(
            off_s1,
            0,
            "{:?}",
            seen.iter().map(|s| &s.1).collect::<Vec<_>>()
        );
        assert!(mib > 0);
        assert!(f.p.learned_routing().is_none());
        assert!(!f
            .p
            .get_topology_info()
            .unwrap()
            .performance_metrics
            .contains_key("route_changes"));
    }
    // On.
    let f = Fabric::new(true);
    assert!(f
        .probe_until(Duration::from_secs(10), |p| via(p, "s1"))
        .is_some());
    // Idle links for a while: the route stays on s1.
    let idle = f.probe_for(Duration::from_millis(500));
    assert!(idle.iter().all(|(_, p)| via(p, "s1")));
    let recorder = std::env::var_os("HF_LEARN_RECORD").map(|path| Recorder::start(&f, path));
    let start = Instant::now();
    let bulk = f.bulk();
    let moved = f
        .probe_until(Duration::from_secs(5), |p| via(p, "s2"))
        .expect("latency sends never moved to s2 under bulk through s1");
    let to_move = moved.duration_since(start);
    // Steady load: the route holds.
    let steady = f.probe_for(Duration::from_secs(4));
    let stopped = Instant::now();
    let mib = bulk.stop();
    let back = f
        .probe_until(Duration::from_secs(10), |p| via(p, "s1"))
        .expect("latency sends never came back to s1 after the bulk");
    let to_return = back.duration_since(stopped);
    // A second of idle links after the return, for the trace.
    if let Some(r) = recorder {
        std::thread::sleep(Duration::from_secs(1));
        r.finish();
    }
    let flaps = changes(&steady);
    let learned = f.p.learned_routing().unwrap();
    let (learned_error, fixed_error) = (learned.learned_error_ns, learned.fixed_error_ns);
    println!(
        "option on: {mib} MiB of bulk; moved to s2 after {} ms; {} route changes in 4 s of \
         steady load ({} probes, {} via s2); back to s1 {} ms after the bulk stopped; \
         hand-overs {}, route changes {}, samples {}; mean absolute prediction error \
         learned {:.0} ns, fixed M/M/1 {:.0} ns",
        to_move.as_millis(),
        flaps.len(),
        steady.len(),
        steady.iter().filter(|(_, p)| via(p, "s2")).count(),
        to_return.as_millis(),
        learned.handovers,
        learned.route_changes,
        learned.samples,
        learned_error,
        fixed_error,
    );
    for l in &learned.links {
        println!("  {l:?}");
    }
    assert!(
        to_move <= Duration::from_millis(500),
        "moved after {to_move:?}"
    );
    // No route changes more often than once per 2 s under steady load (seen by probes
    // every 10 ms or so: a change shows up to a probe's round trip late).
    let mut last = moved;
    for c in &flaps {
        assert!(
            c.duration_since(last) >= Duration::from_millis(1_950),
            "route changed twice within 2 s under steady load"
        );
        last = *c;
    }
    assert!(
        to_return <= Duration::from_secs(5),
        "came back after {to_return:?}"
    );
    assert!(f.metric("route_changes") >= 2.0);
    // `monitor` shows them, from the counters this process publishes twice a second.
    let end = Instant::now() + Duration::from_secs(10);
    let published = loop {
        let v: serde_json::Value = serde_json::from_str(&f.monitor(true)).unwrap();
        let me = v["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == std::process::id())
            .map(|p| p["metrics"]["route_changes"].as_f64().unwrap_or(0.0));
        if me.is_some_and(|c| c >= 2.0) || Instant::now() > end {
            break me;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(published.is_some_and(|c| c >= 2.0), "{published:?}");
    let text = f.monitor(false);
    let line = format!("learned routing in process {} (a, x):", std::process::id());
    assert!(text.contains(&line), "{text}");
    assert!(f.metric("learned_handovers") >= 2.0);
    assert!(f.metric("learned_samples") > 0.0);
}

/// A connection to another host is timed by echoes queued behind its data: bulk posted over
/// it gives queueing delays, on which the sampler scores both models.
#[test]
fn connections_to_other_hosts_are_timed_by_echoes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!("learn-tcp-{}", std::process::id());
    let _removed = Removed(name.clone());
    let cfg = common::learning_pair(&name);
    let side = |listen: bool| {
        let mut c = ProtocolConfig::from_config(&cfg).unwrap();
        c.key = Some(common::test_key());
        c.tcp = Some(hyperfabric::fabric::TcpConfig {
            listen: listen.then(|| "127.0.0.1:0".parse().unwrap()),
            // Over TCP although both run on this host.
            force: true,
            ..Default::default()
        });
        Arc::new(HyperFabricProtocol::with_config(c).unwrap())
    };
    let (ps, qs) = (side(false), side(true));
    qs.register_node(cfg.nodes[1].clone()).unwrap();
    qs.start_background_services().unwrap();
    ps.register_node(cfg.nodes[0].clone()).unwrap();
    ps.connect_host(qs.listen_address().unwrap()).unwrap();
    ps.start_background_services().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while ps.transport_to("q").ok() != Some("tcp") {
        assert!(Instant::now() < until, "q never reached over TCP");
        std::thread::sleep(Duration::from_millis(5));
    }
    let drain = {
        let q = qs.clone();
        common::Stopped::spawn(move |flag| {
            let mut n = 0u64;
            while !flag.load(Ordering::Acquire) {
                n += q.recv("q", Duration::from_millis(20)).is_ok() as u64;
            }
            n
        })
    };
    let data = vec![3u8; 1 << 20];
    let opts = SendOptions {
        priority: PacketPriority::Bulk,
        ..SendOptions::default()
    };
    let end = Instant::now() + Duration::from_secs(20);
    let mut most = 0.0f64;
    let seen = loop {
        for _ in 0..8 {
            ps.post("p", "q", &data, &opts).unwrap();
        }
        let l = ps.learned_routing().unwrap();
        let pq = l
            .links
            .iter()
            .find(|k| k.src == "p" && k.dst == "q")
            .cloned();
        if let Some(d) = pq.as_ref().and_then(|k| k.measured_delay_ns) {
            most = most.max(d);
        }
        let timed = pq.as_ref().is_some_and(|k| k.errors.scored >= 5);
        if timed && most >= QUEUED_NS || Instant::now() > end {
            break pq;
        }
    };
    let taken = drain.stop();
    let pq = seen.expect("p -> q never sampled");
    assert!(pq.errors.scored >= 5 && pq.utilisation > 0.0, "{pq:?}");
    // MiBs queued on a connection of loopback's speed hold an echo back for a millisecond
    // or more (0.8-4.6 ms measured here): far above its round trip with nothing queued.
    assert!(
        most >= QUEUED_NS,
        "bulk never held an echo back: at most {most} ns, {pq:?}"
    );
    assert!(taken > 0);
}

/// Queueing delay that bulk on a connection must show (see its test).
const QUEUED_NS: f64 = 100_000.0;
