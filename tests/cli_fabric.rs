//! `hyperfabric serve` and the commands that attach to the fabric it runs: three serve
//! processes host a, sw and b (linked a - sw - b); `nodes`, `ping` and `transfer` run against
//! them, a node killed with SIGKILL shows as down, and nothing is left in the shared-memory
//! directory once the processes stop.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CONFIG: &str = "\
fabric:
  name: clifab
nodes:
  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }
  - { node_id: sw, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }
  - { node_id: b, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }
links:
  - { a: a, b: sw }
  - { a: sw, b: b }
";

struct Fabric {
    dir: tempfile::TempDir,
}

impl Fabric {
    fn new() -> Fabric {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fabric.yaml"), CONFIG).unwrap();
        Fabric { dir }
    }

    fn shm(&self) -> PathBuf {
        self.dir.path().join("shm")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hyperfabric"));
        c.args(args)
            .args([
                "--config",
                self.dir.path().join("fabric.yaml").to_str().unwrap(),
            ])
            .env("HF_SHM_DIR", self.shm());
        c
    }

    /// Runs a command to its end: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// Runs a command with `--json` that must succeed; its JSON.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = self.run(&all);
        assert_eq!(code, 0, "{args:?} failed: {out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// Starts `serve --nodes nodes` and waits for its "serving" line.
    fn serve(&self, nodes: &str) -> Served {
        let mut child = self
            .command(&["serve", "--nodes", nodes])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let served = Served { child, out };
        assert!(line.starts_with("serving fabric \"clifab\""), "{line}");
        served
    }

    /// The rings and segments in the fabric's directory (not the counters processes
    /// rewrite).
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.shm().join("clifab"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with("pm-"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// A serve process; stopped with SIGTERM (killed if it does not leave) when dropped.
struct Served {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Served {
    fn signal(&self, sig: i32) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then its exit code and the rest of its output.
    fn stop(mut self) -> (i32, String) {
        self.signal(15);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).unwrap();
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, rest)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
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

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn served_nodes_are_listed_pinged_through_the_switch_and_moved_between() {
    let f = Fabric::new();
    let a = f.serve("a");
    let sw = f.serve("sw");
    let b = f.serve("b");

    let nodes = f.json(&["nodes"]);
    assert_eq!(nodes.as_array().unwrap().len(), 3, "{nodes}");
    for (id, s) in [("a", &a), ("sw", &sw), ("b", &b)] {
        let n = node(&nodes, id);
        assert_eq!(n["state"], "up", "{n}");
        assert_eq!(n["pid"], s.child.id(), "{n}");
        assert!(n["since"].as_f64().unwrap() > 1.7e9, "{n}");
    }

    // The probes' path is the routing table's: through the switch.
    let ping = f.json(&["ping", "b", "--count", "3", "--interval", "10"]);
    assert_eq!(ping["received"], 3, "{ping}");
    assert_eq!(ping["loss"], 0.0);
    let route = strings(&ping["route"]);
    assert_eq!(route[1..], ["a", "sw", "b"], "{ping}");
    assert!(route[0].starts_with("_cli-"));
    for p in ping["probes"].as_array().unwrap() {
        assert_eq!(strings(&p["path"]), route, "{p}");
        assert_eq!(p["hops"], 3);
        assert!(p["rtt_ns"].as_u64().unwrap() > 0);
    }
    let rtt = &ping["rtt"];
    assert!(rtt["min_ns"].as_u64() <= rtt["max_ns"].as_u64(), "{rtt}");

    // Clients leave nothing: the files after more commands are those before them.
    let before = f.files();
    let t = f.json(&["transfer", "a", "b", "--size", "256MiB", "--verify"]);
    assert_eq!(t["bytes"], 256u64 << 20, "{t}");
    assert_eq!(t["chunks"], 64);
    assert_eq!(t["verified"], 64, "{t}");
    assert_eq!(t["mismatches"], 0);
    let (code, out, err) = f.run(&["transfer", "b", "a", "--size", "3MB", "--chunk", "1MiB"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("transferred 2.9 MiB from b to a"), "{out}");
    let (code, out, _) = f.run(&["ping", "sw", "--count", "2", "--interval", "1"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("2 probes transmitted, 2 received, 0% loss"),
        "{out}"
    );
    assert_eq!(f.files(), before);
    let nodes = f.json(&["nodes"]);
    assert_eq!(
        nodes.as_array().unwrap().len(),
        3,
        "no client listed: {nodes}"
    );

    // The live topology: the running nodes, the configuration's links.
    let topo = f.json(&["topo", "show", "--fabric", "clifab"]);
    assert_eq!(topo["total_nodes"], 3, "{topo}");
    assert_eq!(topo["total_links"], 2, "{topo}");

    // A diagnosis finds nothing wrong, and probed every node along its route.
    let d = f.json(&["diagnose", "--probes", "2"]);
    assert_eq!(d["ok"], true, "{d}");
    for p in d["paths"].as_array().unwrap() {
        assert_eq!(p["reachable"], true, "{p}");
        assert!(p["latency_ns"].as_u64().unwrap() > 0);
        assert!(p["configured_latency_ns"].as_u64().unwrap() > 0);
    }
    assert_eq!(d["paths"].as_array().unwrap().len(), 3);
    assert_eq!(
        d["tables"].as_array().unwrap().len(),
        4,
        "the client's and 3 processes'"
    );

    // Zones, with the API's rules.
    let (code, out, err) = f.run(&["zones", "create", "train", "--max-nodes", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(f.run(&["zones", "assign", "train", "a"]).0, 0);
    let (code, _, err) = f.run(&["zones", "assign", "train", "b"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("InsufficientResourcesError") && err.contains("full"),
        "{err}"
    );
    let (code, _, err) = f.run(&["zones", "create", "big", "--bandwidth-gbps", "5000"]);
    assert_eq!(code, 1);
    assert!(err.contains("300 Gbit/s"), "{err}");
    let zones = f.json(&["zones"]);
    assert_eq!(zones[0]["zone_id"], "train");
    assert_eq!(strings(&zones[0]["members"]), ["a"]);
    assert_eq!(f.run(&["zones", "delete", "train"]).0, 0);
    assert_eq!(f.json(&["zones", "list"]), serde_json::json!([]));

    // A node killed outright is down, since about when it died.
    let mut b = b;
    b.signal(9);
    b.child.wait().unwrap();
    let nodes = f.json(&["nodes"]);
    let gone = node(&nodes, "b");
    assert_eq!(gone["state"], "down", "{gone}");
    assert!(gone["pid"].is_null());
    assert!(gone["since"].as_f64().unwrap() > 1.7e9, "{gone}");
    assert_eq!(node(&nodes, "a")["state"], "up");
    let (code, _, err) = f.run(&["ping", "b", "--count", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("error:"), "{err}");
    let (code, out, err) = f.run(&["nodes", "status", "b"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("b: down"), "{out}");
    let m = f.json(&["monitor", "--once", "--interval", "0.1"]);
    assert_eq!(node(&m["nodes"], "b")["state"], "down", "{m}");
    let topo = f.json(&["topo", "show", "--fabric", "clifab"]);
    assert_eq!(topo["total_nodes"], 2, "{topo}");
    let report = f.dir.path().join("report.txt");
    let (code, out, err) = f.run(&[
        "diagnose",
        "--probes",
        "1",
        "--output",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("b: configured but not running here (down since"),
        "{err}"
    );
    assert!(out.contains("link sw - b: an end is not running"), "{out}");
    assert_eq!(std::fs::read_to_string(&report).unwrap(), out);
    assert_eq!(m["processes"].as_array().unwrap().len(), 2, "{m}");

    // Stopped by SIGTERM, the others unregister and the last takes the directory away.
    for s in [a, sw] {
        let (code, rest) = s.stop();
        assert_eq!(code, 0, "{rest}");
        assert!(rest.contains("stopped: 1 nodes unregistered"), "{rest}");
    }
    assert!(
        !f.shm().join("clifab").exists(),
        "left behind: {:?}",
        f.files()
    );
}

#[test]
fn commands_refuse_a_fabric_that_is_not_running_and_create_nothing() {
    let f = Fabric::new();
    for args in [
        &["nodes"][..],
        &["ping", "a", "--count", "1"],
        &["transfer", "a", "b", "--size", "1KiB"],
    ] {
        let (code, out, err) = f.run(args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains("is not running on this host"), "{err}");
    }
    assert!(!Path::new(&f.shm().join("clifab")).exists());
    let (code, _, err) = f.run(&["serve", "--nodes", "a,ghost"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("\"ghost\" is not in the configuration"),
        "{err}"
    );
    let (code, _, err) = f.run(&["transfer", "a", "b", "--size", "12 parsecs"]);
    assert_eq!(code, 2, "a bad size is a usage error");
    assert!(err.contains("unknown unit"), "{err}");
}

/// A terminal: the progress bar of `transfer` and the view of `monitor` redraw in place
/// (run under `script`, which gives them a pseudo-terminal).
#[test]
fn on_a_terminal_progress_and_the_live_view_redraw_in_place() {
    let f = Fabric::new();
    let _a = f.serve("a");
    let _b = f.serve("sw,b");
    let exe = env!("CARGO_BIN_EXE_hyperfabric");
    let cfg = f.dir.path().join("fabric.yaml");
    let in_pty = |cmd: String| {
        let out = Command::new("script")
            .args(["-q", "-e", "-c", &cmd, "/dev/null"])
            .env("HF_SHM_DIR", f.shm())
            .stdin(Stdio::null())
            .output()
            .expect("script (util-linux) runs");
        assert!(out.status.success(), "{cmd}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let t = in_pty(format!(
        "{exe} transfer a b --config {} --size 64MiB --chunk 1MiB",
        cfg.display()
    ));
    // indicatif redraws the bar's line: carriage return, erase line.
    let redraws = t.matches("\r\x1b[2K").count();
    assert!(redraws >= 2, "{redraws} redraws: {t:?}");
    assert!(t.contains("MiB/s"), "{t:?}");
    assert!(t.contains("transferred 64.0 MiB from a to b"), "{t:?}");
    let m = in_pty(format!(
        "{exe} monitor --config {} --interval 0.1 --count 3",
        cfg.display()
    ));
    // The alternate screen, three frames each drawn from the top, the screen given back.
    assert!(m.starts_with("\x1b[?1049h"), "{m:?}");
    assert_eq!(m.matches("\x1b[H").count(), 3, "{m:?}");
    assert!(m.contains("a -> sw") || m.contains("sw -> a"), "{m:?}");
    assert!(m.trim_end().ends_with("\x1b[?1049l"), "{m:?}");
}

/// Waits up to `secs` for `child` to exit; kills it and fails when it does not.
fn exits_within(child: &mut Child, secs: u64, what: &str) -> std::process::ExitStatus {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// What a hostile or unlucky neighbour can do: a node that declares links to two nodes (to
/// become a route between them) gets none; a FIFO under a ring's name does not hang the
/// tools that read the directory; a transfer whose source dies ends at once, naming it.
#[test]
fn neighbours_cannot_draw_routes_hang_the_tools_or_leave_a_transfer_waiting() {
    let f = Fabric::new();
    let spy = "  - { node_id: spy, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 1, metadata: { hf_links: [a, b] } }\n";
    let cfg = CONFIG.replace("links:\n", &format!("{spy}links:\n"));
    std::fs::write(f.dir.path().join("fabric.yaml"), cfg).unwrap();
    let a = f.serve("a");
    let _sw = f.serve("sw,b");
    let _spy = f.serve("spy");
    let ping = f.json(&["ping", "b", "--count", "2", "--interval", "1"]);
    assert_eq!(strings(&ping["route"])[1..], ["a", "sw", "b"], "{ping}");
    for p in ping["probes"].as_array().unwrap() {
        assert!(!strings(&p["path"]).contains(&"spy".to_string()), "{p}");
    }

    let fifo = f.shm().join("clifab/ch-77-78-l");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for args in [
        &["monitor", "--once", "--json", "--interval", "0.1"][..],
        &["metrics"],
    ] {
        let mut c = f.command(args).stdout(Stdio::null()).spawn().unwrap();
        let status = exits_within(&mut c, 20, args[0]);
        assert!(status.success(), "{args:?}: {status}");
    }
    let m = f.json(&["monitor", "--once", "--interval", "0.1"]);
    assert_eq!(strings(&m["unreadable_rings"]), ["ch-77-78-l"]);
    std::fs::remove_file(&fifo).unwrap();

    let mut t = f
        .command(&["transfer", "a", "b", "--size", "8GiB", "--chunk", "1MiB"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut progress = String::new();
    BufReader::new(t.stdout.take().unwrap())
        .read_line(&mut progress)
        .unwrap();
    assert!(progress.contains("MiB/s"), "{progress}");
    a.signal(9);
    let status = exits_within(&mut t, 10, "transfer");
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(t.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("a went down during the transfer"), "{err}");
}
