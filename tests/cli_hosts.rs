//! The commands that attach to a running fabric, across hosts: two `serve --host` processes
//! (h1 hosts a; h2 hosts sw and b; linked a - sw - b), each host with a shared-memory
//! directory of its own, on loopback and in network namespaces. From h1, `nodes`, `ping`,
//! `transfer`, `monitor`, `metrics` and `diagnose` reach h2's nodes and counters; the links
//! between hosts carry counters; clients that come and go leave no error behind; a host
//! whose process is killed is named unreachable.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Hosts {
    dir: tempfile::TempDir,
    fabric: String,
    /// Network namespace of each host, if they have one.
    netns: Option<[String; 2]>,
}

impl Hosts {
    fn new(addresses: [String; 2], netns: Option<[String; 2]>, tag: &str) -> Hosts {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("fabric.key");
        std::fs::write(&key, "5a".repeat(32)).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let fabric = format!("clihosts-{tag}-{}", std::process::id());
        let n = |id: &str, host: &str| {
            format!(
                "  - {{ node_id: {id}, hardware_type: cpu_server, bandwidth_gbps: 100, \
                 latency_ns: 1000, host: {host} }}\n"
            )
        };
        let text = format!(
            "fabric: {{ name: {fabric}, key_file: {}, protocol: {{ enable_ml_routing: true }} }}\n\
             nodes:\n{}{}{}\
             links:\n  - {{ a: a, b: sw }}\n  - {{ a: sw, b: b }}\n\
             hosts:\n  - {{ name: h1, address: \"{}\" }}\n  - {{ name: h2, address: \"{}\" }}\n",
            key.display(),
            n("a", "h1"),
            n("sw", "h2"),
            n("b", "h2"),
            addresses[0],
            addresses[1],
        );
        std::fs::write(dir.path().join("fabric.yaml"), text).unwrap();
        for h in ["h1", "h2"] {
            std::fs::create_dir_all(dir.path().join(format!("shm-{h}"))).unwrap();
        }
        Hosts { dir, fabric, netns }
    }

    fn shm(&self, host: usize) -> PathBuf {
        self.dir.path().join(format!("shm-h{}", host + 1))
    }

    /// `hyperfabric ARGS --config FILE` as host `host` runs it.
    fn command(&self, host: usize, args: &[&str]) -> Command {
        let bin = env!("CARGO_BIN_EXE_hyperfabric");
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns[host], bin]);
                c
            }
            None => Command::new(bin),
        };
        c.args(args)
            .args([
                "--config",
                self.dir.path().join("fabric.yaml").to_str().unwrap(),
            ])
            .env("HF_SHM_DIR", self.shm(host));
        c
    }

    /// Runs a command on h1 to its end: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(0, args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// Runs a command with `--json` on h1 that must succeed; its JSON.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = self.run(&all);
        assert_eq!(code, 0, "{args:?} failed: {out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// `monitor --once --json` until `done` holds of it (the processes publish their
    /// counters twice a second), within 10 s.
    fn monitor_until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.json(&["monitor", "--once", "--interval", "0.1"]);
            if done(&m) {
                return m;
            }
            assert!(Instant::now() < until, "{what}: {m}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `serve --host` for host `host` and waits for its "serving" line.
    fn serve(&self, host: usize) -> Served {
        let name = format!("h{}", host + 1);
        let mut child = self
            .command(host, &["serve", "--host", &name])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("serving fabric"), "{name}: {line}");
        let pid = line
            .split("(process ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line}"));
        Served { child, out, pid }
    }
}

/// A serve process; killed if it is still running when dropped.
struct Served {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    /// The serving process (under `ip netns exec`, not the child itself).
    pid: u32,
}

impl Served {
    fn signal(&self, sig: i32) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(9);
            let _ = self.child.wait();
        }
    }
}

fn node<'a>(nodes: &'a Value, id: &str) -> &'a Value {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {nodes}"))
}

fn link<'a>(m: &'a Value, src: &str, dst: &str) -> Option<&'a Value> {
    m["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["src"] == src && l["dst"] == dst)
}

fn link_bytes(m: &Value, src: &str, dst: &str) -> u64 {
    link(m, src, dst).map_or(0, |l| l["bytes"].as_u64().unwrap())
}

/// Addresses with ports free now on loopback.
fn loopback() -> [String; 2] {
    let l: Vec<std::net::TcpListener> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    [0, 1].map(|i| l[i].local_addr().unwrap().to_string())
}

#[test]
fn commands_on_one_host_reach_the_other_on_loopback() {
    commands_across_hosts(Hosts::new(loopback(), None, "lo"));
}

#[test]
fn commands_on_one_host_reach_the_other_in_network_namespaces() {
    let net = hyperfabric::testbed::Testbed::new(2, false)
        .expect("network namespaces (the tests run as root, with iproute2)");
    let addresses = [0, 1].map(|i| format!("{}:7321", net.address(i)));
    let names = [0, 1].map(|i| net.name(i).to_string());
    commands_across_hosts(Hosts::new(addresses, Some(names), "ns"));
}

fn commands_across_hosts(f: Hosts) {
    let h1 = f.serve(0);
    let h2 = f.serve(1);
    // A tool attached on h2 all along (its client node registered there, connected to h1):
    // h1's commands still reach h2's nodes, through h2's served nodes, never through it.
    let mut watcher = f
        .command(1, &["monitor", "--interval", "1", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // h2's nodes, as h2 sees them: up, in its process.
    let until = Instant::now() + Duration::from_secs(10);
    let nodes = loop {
        let nodes = f.json(&["nodes"]);
        if ["a", "sw", "b"]
            .iter()
            .all(|id| node(&nodes, id)["state"] == "up")
        {
            break nodes;
        }
        assert!(Instant::now() < until, "not all up: {nodes}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(node(&nodes, "a")["pid"], h1.pid, "{nodes}");
    for id in ["sw", "b"] {
        let n = node(&nodes, id);
        assert_eq!(n["pid"], h2.pid, "{n}");
        assert_eq!(n["host"], "h2", "{n}");
        assert!(n["since"].as_f64().unwrap() > 1.7e9, "{n}");
    }

    // Probes to the other host follow the routing table: a, then over TCP to sw, then b.
    let ping = f.json(&["ping", "b", "--count", "3", "--interval", "10"]);
    assert_eq!(ping["received"], 3, "{ping}");
    let route: Vec<&str> = ping["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(route[1..], ["a", "sw", "b"], "{ping}");
    for p in ping["probes"].as_array().unwrap() {
        assert_eq!(p["path"], ping["route"], "{p}");
    }
    let ping = f.json(&["ping", "sw", "--count", "2", "--interval", "10"]);
    assert_eq!(ping["received"], 2, "{ping}");
    let path = ping["probes"][0]["path"].as_array().unwrap();
    assert_eq!(path[1..], [json!("a"), json!("sw")], "{ping}");

    // Transfers both ways between the hosts, every chunk checked.
    let t = f.json(&["transfer", "a", "b", "--size", "64MiB", "--verify"]);
    assert_eq!(
        (&t["verified"], &t["mismatches"]),
        (&16.into(), &0.into()),
        "{t}"
    );
    let t = f.json(&["transfer", "b", "a", "--size", "16MiB", "--verify"]);
    assert_eq!(
        (&t["verified"], &t["mismatches"]),
        (&4.into(), &0.into()),
        "{t}"
    );

    // The links between hosts carry counters: a -> sw as h1's process counts it, sw -> a
    // as h2's does (asked of h2 by the monitor).
    let m = f.monitor_until("counters of the links between hosts", |m| {
        link_bytes(m, "a", "sw") >= 64 << 20 && link_bytes(m, "sw", "a") >= 16 << 20
    });
    for (src, dst) in [("a", "sw"), ("sw", "a")] {
        let l = link(&m, src, dst).unwrap();
        assert!(l["connections"].as_u64().unwrap() >= 1, "{l}");
        assert!(l["capacity"].as_u64().unwrap() > 0, "{l}");
    }
    // sw -> b is a ring of h2, read there.
    assert!(link_bytes(&m, "sw", "b") >= 64 << 20, "{m}");
    assert_eq!(m["hosts"][0]["name"], "h2", "{m}");
    assert_eq!(m["hosts"][0]["reached"], true, "{m}");
    assert!(node(&m["nodes"], "b")["received_bytes"].as_u64().unwrap() >= 64 << 20);
    let processes = m["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 2, "{m}");
    // Clients came and went on both hosts: no message of theirs counted as failed, no ring
    // found corrupt. (`errors` is left out: on a loaded machine a resent fragment of a
    // message already delivered may be refused and counted there.)
    for p in processes {
        for k in ["delivery_failed", "corrupt_channels"] {
            assert_eq!(p["metrics"][k], 0.0, "{k} of {p}");
        }
    }

    // Learned routing (on in the configuration) samples the links between hosts as well:
    // each process its own connection (h1's a -> sw, h2's sw -> a) and h2 its rings.
    f.monitor_until("learned routing sampling every process's links", |m| {
        m["processes"].as_array().unwrap().iter().all(|p| {
            p["metrics"]["learned_links"].as_f64().unwrap_or(0.0) >= 1.0
                && p["metrics"]["learned_scored"].as_f64().unwrap_or(0.0) >= 1.0
        })
    });

    let (code, out, err) = f.run(&["metrics"]);
    assert_eq!(code, 0, "{err}");
    let fab = &f.fabric;
    assert!(
        out.contains(&format!(
            "hyperfabric_link_bytes_total{{fabric=\"{fab}\",src=\"sw\",dst=\"a\"}}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "hyperfabric_process_corrupt_channels{{fabric=\"{fab}\",host=\"h2\",pid=\"{}\"}} 0",
            h2.pid
        )),
        "{out}"
    );

    let d = f.json(&["diagnose", "--probes", "2"]);
    assert_eq!(d["ok"], true, "{d}");
    assert_eq!(d["paths"].as_array().unwrap().len(), 3, "{d}");
    for p in d["paths"].as_array().unwrap() {
        assert_eq!(p["reachable"], true, "{p}");
    }

    // From h2, h1's node is up too.
    let out = f.command(1, &["nodes", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_h2: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(node(&from_h2, "a")["state"], "up", "{from_h2}");
    assert_eq!(node(&from_h2, "a")["pid"], h1.pid, "{from_h2}");
    let _ = watcher.kill();
    let _ = watcher.wait();

    // h2's process killed: its nodes are unreachable, and the diagnosis says why.
    let mut h2 = h2;
    h2.signal(9);
    h2.child.wait().unwrap();
    let nodes = f.json(&["nodes"]);
    for id in ["sw", "b"] {
        assert_eq!(node(&nodes, id)["state"], "unreachable", "{nodes}");
    }
    assert_eq!(node(&nodes, "a")["state"], "up", "{nodes}");
    let (code, out, err) = f.run(&["diagnose", "--probes", "1"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("host h2: not reached"), "{err}");
    // With --json, stdout is the one report, the error on stderr.
    let (code, out, err) = f.run(&["diagnose", "--probes", "1", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let d: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(d["ok"], false, "{d}");
    assert!(
        d["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("host h2: not reached"),
        "{d}"
    );
    assert!(err.contains("host h2: not reached"), "{err}");
    let (code, _, err) = f.run(&["ping", "b", "--count", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("error:"), "{err}");

    // h1 stops cleanly and leaves nothing in its directory.
    let mut h1 = h1;
    h1.signal(15);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut h1.out, &mut rest).unwrap();
    assert!(h1.child.wait().unwrap().success(), "{rest}");
    assert!(!f.shm(0).join(&f.fabric).exists(), "h1 left its directory");
}
