//! The `hyperfabric` command line: JSON shapes, agreement with the library, exit codes.

use serde_json::Value;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hyperfabric"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Held by the tests that start fabrics of several processes with engines spinning on both
/// cores (bench, demo, demo across hosts): run together on a two-core machine, they starve
/// one another's engine threads past the 200 ms after which a node without heartbeats is
/// marked down, and a demo's send then fails with `NoRouteFoundError`.
static SPINNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn spinning() -> std::sync::MutexGuard<'static, ()> {
    SPINNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn json_line(stdout: &str) -> Value {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one JSON object: {stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

#[test]
fn topo_path_json_is_one_object_that_agrees_with_the_library() {
    let cfg = "examples/ai-cluster.yaml";
    for metric in ["latency", "bandwidth", "hops"] {
        let (code, out, err) = run(&[
            "topo",
            "path",
            "--config",
            cfg,
            "--metric",
            metric,
            "--json",
            "gpu-01",
            "storage-01",
        ]);
        assert_eq!(code, 0, "{err}");
        let v = json_line(&out);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys.len(), 4);
        for k in ["path", "latency_ns", "bandwidth_gbps", "hops"] {
            assert!(keys.contains(&k), "{k} missing in {v}");
        }
        let tm = hyperfabric::config::load_fabric_config(cfg)
            .unwrap()
            .topology_manager()
            .unwrap();
        let r = tm
            .shortest_route("gpu-01", "storage-01", metric.parse().unwrap())
            .unwrap();
        assert_eq!(v["path"], serde_json::json!(r.path));
        assert_eq!(v["latency_ns"], r.latency_ns);
        assert_eq!(v["bandwidth_gbps"], r.bandwidth_gbps);
        assert_eq!(v["hops"], r.hops);
    }
    // Example: gpu-01 -> switch-01 -> storage-01 = 100 + 250 + 50 + 500 + 2000 ns.
    let (_, out, _) = run(&["topo", "path", "--json", "gpu-01", "storage-01"]);
    let v = json_line(&out);
    assert_eq!(
        v["path"],
        serde_json::json!(["gpu-01", "switch-01", "storage-01"])
    );
    assert_eq!(v["latency_ns"], 2900);
    assert_eq!(v["bandwidth_gbps"], 200.0);
    assert_eq!(v["hops"], 2);
}

#[test]
fn failures_exit_non_zero_with_the_exception_name() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["topo", "path", "--json", "gpu-01", "nope"],
            "NodeNotFoundError",
        ),
        (
            &[
                "topo",
                "path",
                "--json",
                "--max-latency-ns",
                "100",
                "gpu-01",
                "storage-01",
            ],
            "LatencyConstraintViolationError",
        ),
        (
            &["topo", "path", "--json", "gpu-01", "qpu-01"],
            "ZoneIsolationViolationError",
        ),
        (
            &[
                "topo",
                "path",
                "--json",
                "--data-type",
                "quantum_state",
                "--max-latency-ns",
                "1000000",
                "ctl-01",
                "qpu-01",
            ],
            "",
        ),
        (
            &["topo", "path", "--json", "--entangled", "ctl-01", "qpu-01"],
            "QuantumCoherenceError",
        ),
        (
            &[
                "topo",
                "path",
                "--json",
                "--min-bandwidth-gbps",
                "500",
                "gpu-01",
                "storage-01",
            ],
            "NoRouteFoundError",
        ),
        (
            &[
                "topo",
                "path",
                "--json",
                "--metric",
                "cost",
                "gpu-01",
                "storage-01",
            ],
            "InvalidArgumentError",
        ),
        (
            &[
                "topo",
                "path",
                "--json",
                "--data-type",
                "video",
                "gpu-01",
                "storage-01",
            ],
            "InvalidArgumentError",
        ),
        (
            &["topo", "show", "--json", "--config", "does/not/exist.yaml"],
            "ConfigError",
        ),
    ];
    for (args, kind) in cases {
        let (code, out, _) = run(args);
        if kind.is_empty() {
            assert_eq!(code, 0, "{args:?}: {out}");
            continue;
        }
        assert_eq!(code, 1, "{args:?}");
        let v = json_line(&out);
        assert_eq!(v["error"]["kind"], *kind, "{args:?}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (code, _, err) = run(&["topo", "path", "gpu-01", "nope"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: NodeNotFoundError: "), "{err}");
}

#[test]
fn topo_show_json_uses_reference_field_names() {
    let (code, out, err) = run(&[
        "topo",
        "show",
        "--json",
        "--config",
        "examples/ai-cluster.yaml",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    for k in [
        "total_nodes",
        "total_links",
        "zones",
        "bottlenecks",
        "performance_metrics",
        "quantum_enabled_nodes",
        "neuromorphic_nodes",
        "timestamp",
    ] {
        assert!(v.get(k).is_some(), "{k} missing");
    }
    assert_eq!(v["total_nodes"], 9);
    assert_eq!(v["total_links"], 10);
    assert_eq!(v["quantum_enabled_nodes"], 1);
    assert_eq!(v["zones"][2]["isolation_level"], "high");
    let (code, out, _) = run(&["topo", "show"]);
    assert_eq!(code, 0);
    assert!(out.contains("bottlenecks") && out.contains("gpu-01"));
}

#[test]
fn analyze_detect_and_generate() {
    let (code, out, _) = run(&["topo", "analyze", "--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let first = &v.as_array().unwrap()[0];
    for k in [
        "location",
        "bottleneck_type",
        "severity",
        "current_utilization",
        "recommended_action",
        "affected_paths",
    ] {
        assert!(first.get(k).is_some(), "{k} missing");
    }
    let (code, out, _) = run(&["detect", "--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["hardware_type"], "cpu_server");
    // What io_uring offers: every feature named, the kernel's release, a reason only
    // when there is no ring.
    let (code, out, _) = run(&["detect", "--transport", "--json"]);
    assert_eq!(code, 0);
    let t: Value = serde_json::from_str(&out).unwrap();
    for k in [
        "send_zc",
        "recv_multishot",
        "buffer_ring",
        "sqpoll",
        "enter_timeout",
        "available",
    ] {
        assert!(t[k].is_boolean(), "{k} missing in {t}");
    }
    assert!(!t["kernel"].as_str().unwrap().is_empty());
    assert_eq!(t["error"].is_null(), t["available"] == true);
    let (code, out, _) = run(&["detect"]);
    assert_eq!(code, 0);
    assert!(out.contains("io_uring (TCP transport), kernel"), "{out}");
    let (code, out, _) = run(&[
        "topo",
        "generate",
        "dragonfly",
        "--a",
        "2",
        "--p",
        "1",
        "--h",
        "1",
    ]);
    assert_eq!(code, 0);
    let cfg = hyperfabric::config::FabricConfig::parse(&out, "generated").unwrap();
    assert_eq!(cfg.nodes.len(), 3 * 2 * 2);
    let (code, _, err) = run(&["topo", "generate", "fat-tree", "--k", "3"]);
    assert_eq!(code, 1);
    assert!(err.contains("even"));
}

#[test]
fn bench_runs_two_processes_and_reports_against_the_floor() {
    let _spinning = spinning();
    // The directory of a bench killed before it removed it goes with the next run; one
    // whose process lives stays.
    let root = hyperfabric::sys::state_root();
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dead = root.join(format!("bench-{}", gone.id()));
    let live = root.join(format!("bench-{}", std::process::id()));
    for d in [&dead, &live] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("ring"), b"left behind").unwrap();
    }
    let (code, out, err) = run(&[
        "bench", "latency", "--sizes", "8,100", "--iters", "200", "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!dead.exists(), "{dead:?} left behind");
    assert!(live.join("ring").exists());
    std::fs::remove_dir_all(&live).unwrap();
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for (row, size) in rows.iter().zip([8, 100]) {
        assert_eq!(row["size"], size);
        let (p50, p99, floor) = (
            row["p50_ns"].as_f64().unwrap(),
            row["p99_ns"].as_f64().unwrap(),
            row["floor_ns"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p99 >= p50 && floor > 0.0, "{row}");
        assert!(["near", "far", "mixed"].contains(&row["placement"].as_str().unwrap()));
        // p50 and floor are printed rounded to the nanosecond; the ratio uses the exact ones
        // (and is itself rounded to 0.01).
        let ratio = row["ratio"].as_f64().unwrap();
        let (lo, hi) = (
            (p50 - 0.5) / (floor + 0.5),
            (p50 + 0.5) / (floor - 0.5).max(0.5),
        );
        assert!(ratio >= lo - 0.01 && ratio <= hi + 0.01, "{row}");
    }
    let (code, out, err) = run(&[
        "bench",
        "bandwidth",
        "--sizes",
        "4096",
        "--iters",
        "500",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let row: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        row["gbytes_per_s"].as_f64().unwrap() > 0.0
            && row["memcpy_gbytes_per_s"].as_f64().unwrap() > 0.0
    );
    let (code, out, _) = run(&["bench", "latency", "--cores", "0,0", "--json"]);
    assert_eq!(code, 1);
    assert!(out.contains("InvalidArgumentError"));
    let (code, _, _) = run(&["bench", "latency", "--sizes", "2000000000", "--json"]);
    assert_eq!(code, 1);
}

/// Width and height of a PNG whose chunks are whole (signature, IHDR first, IEND last,
/// every length inside the file).
fn png_size(b: &[u8]) -> Option<(u32, u32)> {
    let be = |at: usize| Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?));
    if b.get(..8)? != b"\x89PNG\r\n\x1a\n" || b.get(12..16)? != b"IHDR" {
        return None;
    }
    let mut at = 8;
    let mut last = [0u8; 4];
    while at < b.len() {
        let len = be(at)? as usize;
        last.copy_from_slice(b.get(at + 4..at + 8)?);
        at = at.checked_add(12 + len)?;
    }
    (at == b.len() && &last == b"IEND").then_some((be(16)?, be(20)?))
}

#[test]
fn bench_plots_latency_with_the_floor_and_a_peers_table_and_bandwidth_into_pngs() {
    let _spinning = spinning();
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.md");
    std::fs::write(
        &peers,
        "| system | 8 B | 4 KiB |\n|---|---|---|\n| UCX tag_lat | 176 | 671 |\n",
    )
    .unwrap();
    let lat = dir.path().join("lat.png");
    let (code, _, err) = run(&[
        "bench",
        "latency",
        "--sizes",
        "8,4096",
        "--iters",
        "200",
        "--plot",
        lat.to_str().unwrap(),
        "--peers",
        peers.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let png = std::fs::read(&lat).unwrap();
    assert_eq!(png_size(&png), Some((1000, 640)));
    assert!(png.len() > 10_000, "{} bytes: an empty canvas?", png.len());
    let bw = dir.path().join("bw.png");
    let (code, _, err) = run(&[
        "bench",
        "bandwidth",
        "--sizes",
        "4096,65536",
        "--iters",
        "300",
        "--plot",
        bw.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(png_size(&std::fs::read(&bw).unwrap()), Some((1000, 640)));
    // A peers table that does not read is refused before anything is measured.
    std::fs::write(&peers, "nothing").unwrap();
    let (code, _, err) = run(&[
        "bench",
        "latency",
        "--plot",
        lat.to_str().unwrap(),
        "--peers",
        peers.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no table"), "{err}");
}

#[test]
fn demo_runs_the_example_cluster_across_processes_and_cleans_up() {
    let _spinning = spinning();
    let (code, out, err) = run(&["demo"]);
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(out.contains("9 nodes hosted by 5 processes"), "{out}");
    // Beside the pings of five processes sharing the cores, the pinned two-process figure.
    assert!(
        out.contains("pinned, for comparison: two processes on cores 0 and 1"),
        "{out}"
    );
    if hyperfabric::sys::available_cpus() < 5 {
        assert!(out.contains("5 processes share"), "{out}");
    }
    assert!(out.contains("gpu-01 -> gpu-02 "), "direct route: {out}");
    assert!(
        out.contains("gpu-01 -> switch-01 -> storage-01"),
        "switched route: {out}"
    );
    assert!(
        out.contains("gpu-01 -> switch-01 -> photonic-01 -> qpu-01"),
        "{out}"
    );
    assert_eq!(
        out.matches(" ok\n").count(),
        4,
        "four checked transfers: {out}"
    );
    assert!(
        out.contains("the urgent message overtook the bulk transfer"),
        "{out}"
    );
    assert!(
        out.contains("refused before sending: LatencyConstraintViolationError"),
        "{out}"
    );
    assert!(out.contains("bottlenecks"));
    let left: Vec<_> = std::fs::read_dir(hyperfabric::sys::state_root())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().into_string().unwrap())
                .filter(|n| n.starts_with("ai-cluster-demo-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `demo --hosts 3`: the demo across three network namespaces, every message over TCP, and
/// nothing left behind (namespaces, fabric directories). Without the rights to make
/// namespaces (as another user), a clear refusal.
#[test]
fn demo_across_hosts_runs_over_tcp_and_cleans_up() {
    let _spinning = spinning();
    let namespaces = || {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("hfN-"))
            .count()
    };
    if real_uid() != 0 {
        println!("SKIPPED: demo --hosts makes network namespaces, which needs root here");
        return;
    }
    let before = namespaces();
    let (code, out, err) = run(&["demo", "--hosts", "3"]);
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(out.contains("3 hosts: this process at 10.231."), "{out}");
    assert!(out.contains("9 nodes hosted by 3 processes"), "{out}");
    assert!(
        out.contains("gpu-01 -> switch-01 -> "),
        "routes through the switch: {out}"
    );
    assert_eq!(
        out.matches(" ok\n").count(),
        4,
        "four checked transfers: {out}"
    );
    assert!(out.contains("tcp_connections"), "{out}");
    assert!(
        out.contains("the urgent message overtook the bulk transfer"),
        "{out}"
    );
    assert_eq!(namespaces(), before, "namespaces left behind");
    // Another user may not make namespaces: told so, nothing made.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_hyperfabric"))
        .args(["demo", "--hosts", "2"])
        .env("HF_SHM_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("needs root or CAP_NET_ADMIN"), "{err}");
    assert_eq!(namespaces(), before);
}

/// This process's real uid.
fn real_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap()
}

/// `topo show --format`: Graphviz that `dot` renders (switches as ellipses, every link an
/// edge), YAML that loads back as the same topology, JSON as `--json`.
#[test]
fn topo_show_formats_render_and_load_back() {
    let (code, dot, err) = run(&["topo", "show", "--format", "dot"]);
    assert_eq!(code, 0, "{err}");
    assert!(dot.starts_with("graph \"ai-cluster\" {"), "{dot}");
    assert!(
        dot.contains(
            "\"switch-01\" [label=\"switch-01\\nnetwork_switch\\n800 Gbit/s\", shape=ellipse];"
        ),
        "{dot}"
    );
    let cfg = hyperfabric::config::load_fabric_config(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ai-cluster.yaml"),
    )
    .unwrap();
    assert_eq!(dot.matches(" -- ").count(), cfg.links.len());
    let mut render = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("graphviz's dot (scripts/deps.sh installs it)");
    use std::io::Write;
    render
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let out = render.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(
        svg.contains("<svg") && svg.contains("<title>qpu&#45;01</title>"),
        "{svg}"
    );

    let (code, yaml, err) = run(&["topo", "show", "--format", "yaml"]);
    assert_eq!(code, 0, "{err}");
    let again = hyperfabric::config::FabricConfig::parse(&yaml, "shown.yaml").unwrap();
    assert_eq!(again.nodes, cfg.nodes);
    assert_eq!(again.links.len(), cfg.links.len());
    assert_eq!(again.zones.len(), cfg.zones.len());

    let (_, a, _) = run(&["topo", "show", "--format", "json"]);
    let (_, b, _) = run(&["topo", "show", "--json"]);
    let (a, b): (Value, Value) = (
        serde_json::from_str(&a).unwrap(),
        serde_json::from_str(&b).unwrap(),
    );
    assert_eq!(a["total_nodes"], b["total_nodes"]);
    assert_eq!(a["total_links"], 10);
}
