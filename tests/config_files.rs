//! Configuration files: the examples load, configurations round-trip exactly, and every kind
//! of bad input gets a one-line error naming file, line and field (from the library and from
//! the CLI, which exits non-zero), never a panic.

use hyperfabric::config::{load_fabric_config, save_fabric_config, FabricConfig};
use hyperfabric::ErrorKind;
use std::path::Path;
use std::process::Command;

const EXAMPLES: &[&str] = &[
    "examples/ai-cluster.yaml",
    "examples/fat-tree-k4.yaml",
    "examples/torus-2d.yaml",
];

fn root(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn examples_load_and_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for ex in EXAMPLES.iter().chain(&["tests/data/ok-small.yaml"]) {
        let cfg = load_fabric_config(root(ex)).unwrap_or_else(|e| panic!("{ex}: {e}"));
        let out = dir.path().join("out.yaml");
        save_fabric_config(&cfg, &out).unwrap();
        let again = load_fabric_config(&out).unwrap();
        assert_eq!(cfg, again, "{ex} did not round-trip");
        // Saving is deterministic: the second save writes the same text.
        assert_eq!(std::fs::read_to_string(&out).unwrap(), again.to_yaml());
        cfg.topology().unwrap();
    }
}

#[test]
fn values_are_read_as_written() {
    let cfg = load_fabric_config(root("tests/data/ok-small.yaml")).unwrap();
    assert_eq!(cfg.fabric.name, "small");
    assert_eq!(cfg.fabric.link_policy, Some(hyperfabric::LinkPolicy::Auto));
    assert!(cfg.fabric.protocol.enable_ml_routing);
    assert!(cfg.fabric.protocol.enable_fault_tolerance);
    assert_eq!(
        cfg.fabric.protocol.default_latency_constraint_ns,
        Some(5000)
    );
    assert_eq!(cfg.nodes[0].node_id, "cpu 1");
    assert_eq!(cfg.nodes[0].latency_ns, 1000);
    assert_eq!(cfg.nodes[0].bandwidth_gbps, 100.5);
    let meta = cfg.nodes[0].metadata.as_ref().unwrap();
    assert_eq!(meta["slots"], serde_json::json!([1, 2]));
    assert_eq!(meta["on"], serde_json::json!(true));
    assert_eq!(meta["none"], serde_json::Value::Null);
    assert_eq!(cfg.nodes[2].node_id, "true");
    assert_eq!(cfg.nodes[2].rack_position.as_deref(), Some("007"));
    assert_eq!(cfg.nodes[2].bandwidth_gbps, 100.0);
    assert_eq!(
        cfg.zones[0].zone.description.as_deref(),
        Some("a \"quoted\" zone: yes")
    );
    let t = cfg.topology().unwrap();
    assert_eq!(t.link_count(), 3, "auto policy links every pair");
}

/// (what, file text, expected line, text the message must contain)
const BAD: &[(&str, &str, usize, &str)] = &[
    ("unknown hardware type",
     "nodes:\n  - node_id: a\n    hardware_type: nvidia_h200\n    bandwidth_gbps: 1\n    latency_ns: 1\n",
     3, "nodes[0].hardware_type: unknown hardware type \"nvidia_h200\""),
    ("negative bandwidth",
     "nodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: 1 }\n  - node_id: b\n    hardware_type: cpu_server\n    bandwidth_gbps: -5\n    latency_ns: 1\n",
     5, "nodes[1].bandwidth_gbps: Bandwidth must be positive"),
    ("negative latency",
     "nodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: -1 }\n",
     2, "nodes[0].latency_ns: cannot be negative"),
    ("link to a missing node",
     "nodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: 1 }\nlinks:\n  - a: a\n    b: ghost\n",
     5, "links[0].b: link to unknown node \"ghost\""),
    ("duplicate node",
     "nodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: 1 }\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: 1 }\n",
     3, "nodes[1].node_id: duplicate node \"a\" (first defined at line 2)"),
    ("duplicate zone",
     "nodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 1 }\nzones:\n  - { zone_id: z, zone_type: storage_tier, isolation_level: low, max_nodes: 1, required_bandwidth_gbps: 1 }\n  - { zone_id: z, zone_type: storage_tier, isolation_level: low, max_nodes: 1, required_bandwidth_gbps: 1 }\n",
     5, "zones[1].zone_id: zone \"z\" already exists"),
    ("QPU without coherence time",
     "nodes:\n  - node_id: q\n    hardware_type: quantum_qpu\n    bandwidth_gbps: 10\n    latency_ns: 1\n",
     3, "nodes[0].quantum_coherence_time_us: Quantum QPU requires coherence time specification"),
    ("YAML syntax error",
     "nodes:\n  - { node_id: a, hardware_type: cpu_server ]\nlinks: []\n",
     2, "YAML syntax error"),
    ("unknown key",
     "fabric:\n  name: x\n  protocl: {}\n",
     3, "fabric.protocl: unknown key"),
    ("unknown top-level key",
     "nodez: []\n",
     1, "nodez: unknown key"),
    ("missing required key",
     "nodes:\n  - node_id: a\n    hardware_type: cpu_server\n    latency_ns: 1\n",
     2, "nodes[0].bandwidth_gbps: required key is missing"),
    ("string where a number goes",
     "nodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: \"fast\", latency_ns: 1 }\n",
     2, "nodes[0].bandwidth_gbps: expected a number"),
    ("infinite bandwidth",
     "nodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: .inf, latency_ns: 1 }\n",
     2, "must be finite"),
    ("over-long node id",
     "nodes:\n  - { node_id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: 1 }\n",
     2, "at most 63 allowed"),
    ("zone member missing",
     "nodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 1 }\nzones:\n  - zone_id: z\n    zone_type: storage_tier\n    isolation_level: low\n    max_nodes: 1\n    required_bandwidth_gbps: 1\n    members:\n      - a\n      - b\n",
     11, "zones[0].members[1]"),
    ("zone without capacity",
     "nodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 10, latency_ns: 1 }\nzones:\n  - { zone_id: z, zone_type: storage_tier, isolation_level: low, max_nodes: 1, required_bandwidth_gbps: 11 }\n",
     4, "zones[0].required_bandwidth_gbps"),
    ("bad link policy",
     "fabric: { link_policy: mesh }\n",
     1, "fabric.link_policy: unknown link policy \"mesh\""),
    ("bad fabric name",
     "fabric: { name: ../etc }\n",
     1, "fabric.name"),
    ("packet size out of range",
     "fabric: { protocol: { max_packet_size: 10 } }\n",
     1, "fabric.protocol.max_packet_size: must be within 64..=16777216"),
    ("not a mapping",
     "- a\n- b\n",
     1, "expected a mapping"),
    ("a host without nodes",
     "fabric: { insecure: true }\nnodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: 1, host: h1 }\nhosts:\n  - { name: h1, address: \"127.0.0.1:7000\" }\n  - { name: h2, address: \"127.0.0.1:7001\" }\n",
     5, "hosts[1]: no node has host \"h2\""),
    ("a node on a host not listed",
     "fabric: { insecure: true }\nnodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: 1, host: h1 }\n  - { node_id: b, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: 1, host: h9 }\nhosts:\n  - { name: h1, address: \"127.0.0.1:7000\" }\n",
     6, "nodes[1].host: no host \"h9\" in hosts"),
    ("alias",
     "nodes:\n  - &n { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: 1 }\n  - *n\n",
     2, "not supported"),
];

#[test]
fn bad_input_gets_one_line_errors_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    for (what, text, line, needle) in BAD {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, text).unwrap();
        let err = load_fabric_config(&path).expect_err(what);
        assert_eq!(err.kind(), ErrorKind::Config, "{what}");
        let msg = err.to_string();
        let prefix = format!("{}:{line}: ", path.display());
        assert!(
            msg.starts_with(&prefix),
            "{what}: {msg:?} should start with {prefix:?}"
        );
        assert!(
            msg.contains(needle),
            "{what}: {msg:?} should contain {needle:?}"
        );
        assert!(!msg.contains('\n'), "{what}: not one line: {msg:?}");

        // The CLI prints the same line and exits non-zero.
        let out = Command::new(env!("CARGO_BIN_EXE_hyperfabric"))
            .args(["config", "validate"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{what}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(
            stderr.contains(&prefix) && stderr.contains(needle),
            "{what}: {stderr}"
        );
    }
}

#[test]
fn unreadable_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let e = load_fabric_config(&missing).unwrap_err();
    assert!(e.to_string().starts_with(&missing.display().to_string()));
    let binary = dir.path().join("bin.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    assert!(load_fabric_config(&binary)
        .unwrap_err()
        .to_string()
        .contains("UTF-8"));
    assert_eq!(
        FabricConfig::parse("", "empty").unwrap(),
        FabricConfig::default()
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

    /// Corrupted configurations are errors, never panics, and errors stay one line.
    #[test]
    fn corrupted_configs_never_panic(
        cut in 0usize..4000,
        len in 0usize..40,
        insert in "[ -~\n]{0,12}",
    ) {
        let text = std::fs::read_to_string(root("examples/ai-cluster.yaml")).unwrap();
        let mut chars: Vec<char> = text.chars().collect();
        let at = cut.min(chars.len());
        let end = (at + len).min(chars.len());
        chars.splice(at..end, insert.chars());
        let mutated: String = chars.into_iter().collect();
        if let Err(e) = FabricConfig::parse(&mutated, "m.yaml") {
            proptest::prop_assert!(e.to_string().starts_with("m.yaml:"));
            proptest::prop_assert!(!e.to_string().contains('\n'));
        }
    }
}

/// The original package's layout: what has a meaning is read where the native layout has it,
/// every other key is a warning naming its line, and `migrate`'s output loads back equal
/// without warnings.
#[test]
fn the_original_layout_loads_with_a_warning_for_each_key_without_meaning() {
    let path = root("examples/original-layout.yaml");
    let cfg = load_fabric_config(&path).unwrap();
    let p = &cfg.fabric.protocol;
    assert_eq!(cfg.fabric.name, "original-cluster");
    assert!(p.enable_ml_routing && p.enable_quantum_optimization && p.enable_fault_tolerance);
    assert_eq!(p.default_latency_constraint_ns, Some(1_000_000));
    assert_eq!((p.buffer_pool_size, p.max_packet_size), (2000, 131_072));
    assert_eq!(cfg.nodes.len(), 3);
    assert_eq!(cfg.zones[0].members, ["gpu-01", "gpu-02"]);
    let text = std::fs::read_to_string(&path).unwrap();
    let line_of = |key: &str| {
        1 + text
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("{key}:")))
            .unwrap()
    };
    let warned: Vec<(usize, &str)> = cfg
        .warnings
        .iter()
        .map(|w| {
            let rest = w.strip_prefix(&format!("{}:", path.display())).unwrap();
            let (line, rest) = rest.split_once(": ").unwrap();
            (line.parse().unwrap(), rest.split(':').next().unwrap())
        })
        .collect();
    let mut want: Vec<(usize, &str)> = [
        (
            "enable_neuromorphic_routing",
            "routing.enable_neuromorphic_routing",
        ),
        ("algorithm", "routing.algorithm"),
        ("route_cache_ttl_seconds", "routing.route_cache_ttl_seconds"),
        (
            "enable_auto_optimization",
            "topology.enable_auto_optimization",
        ),
        ("enabled", "monitoring.enabled"),
        ("interval_seconds", "monitoring.interval_seconds"),
        ("metrics_port", "monitoring.metrics_port"),
        ("enable_ml_optimization", "enable_ml_routing"),
    ]
    .iter()
    .map(|(key, field)| (line_of(key), *field))
    .collect();
    want.sort();
    assert_eq!(warned, want, "{:#?}", cfg.warnings);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("native.yaml");
    save_fabric_config(&cfg, &out).unwrap();
    let again = load_fabric_config(&out).unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(
        FabricConfig {
            warnings: Vec::new(),
            ..cfg
        },
        again
    );
}

#[test]
fn the_original_layout_still_refuses_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let write = |text: &str| {
        let p = dir.path().join("f.yaml");
        std::fs::write(&p, text).unwrap();
        p
    };
    let node =
        "nodes:\n  - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 1, latency_ns: 1 }\n";
    // One option set to two values by its two names.
    let e = load_fabric_config(write(&format!(
        "enable_ml_routing: false\nrouting:\n  enable_ml_optimization: true\n{node}"
    )))
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.to_string()
            .contains(":3: fabric.protocol.enable_ml_routing: given twice"),
        "{e}"
    );
    // A typo at the top level is no key of either layout.
    let e =
        load_fabric_config(write(&format!("buffer_pool_size: 10\nnodez: []\n{node}"))).unwrap_err();
    assert!(e.to_string().contains(":2: nodez: unknown key"), "{e}");
    // Values are checked as in the native layout.
    let e = load_fabric_config(write(&format!("max_packet_size: 1\n{node}"))).unwrap_err();
    assert!(
        e.to_string()
            .contains(":1: fabric.protocol.max_packet_size"),
        "{e}"
    );
}
