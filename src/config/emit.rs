//! Writing a configuration as YAML that loads back equal.

use super::yaml;
use super::*;

pub(super) fn emit(cfg: &FabricConfig) -> String {
    use yaml::{float, flow, quote};
    let mut out = String::new();
    let s = &cfg.fabric;
    let p = &s.protocol;
    let _ = writeln!(out, "fabric:\n  name: {}", quote(&s.name));
    if let Some(lp) = s.link_policy {
        let _ = writeln!(out, "  link_policy: {lp}");
    }
    if let Some(k) = &s.key_file {
        let _ = writeln!(out, "  key_file: {}", quote(&k.display().to_string()));
    }
    if s.insecure {
        let _ = writeln!(out, "  insecure: true");
    }
    let _ = writeln!(out, "  protocol:");
    let _ = writeln!(out, "    enable_ml_routing: {}", p.enable_ml_routing);
    let _ = writeln!(
        out,
        "    enable_quantum_optimization: {}",
        p.enable_quantum_optimization
    );
    let _ = writeln!(
        out,
        "    enable_fault_tolerance: {}",
        p.enable_fault_tolerance
    );
    if let Some(c) = p.default_latency_constraint_ns {
        let _ = writeln!(out, "    default_latency_constraint_ns: {c}");
    }
    let _ = writeln!(out, "    buffer_pool_size: {}", p.buffer_pool_size);
    let _ = writeln!(out, "    max_packet_size: {}", p.max_packet_size);

    let _ = writeln!(
        out,
        "nodes:{}",
        if cfg.nodes.is_empty() { " []" } else { "" }
    );
    for n in &cfg.nodes {
        let _ = writeln!(out, "  - node_id: {}", quote(&n.node_id));
        let _ = writeln!(out, "    hardware_type: {}", n.hardware_type);
        let _ = writeln!(out, "    bandwidth_gbps: {}", float(n.bandwidth_gbps));
        let _ = writeln!(out, "    latency_ns: {}", n.latency_ns);
        let floats = [
            ("memory_gb", n.memory_gb),
            ("power_watts", n.power_watts),
            ("quantum_coherence_time_us", n.quantum_coherence_time_us),
        ];
        for (k, v) in floats {
            if let Some(v) = v {
                let _ = writeln!(out, "    {k}: {}", float(v));
            }
        }
        let ints = [
            ("compute_units", n.compute_units),
            ("neuromorphic_neurons", n.neuromorphic_neurons),
            ("photonic_channels", n.photonic_channels),
        ];
        for (k, v) in ints {
            if let Some(v) = v {
                let _ = writeln!(out, "    {k}: {v}");
            }
        }
        let strings = [
            ("rack_position", &n.rack_position),
            ("physical_location", &n.physical_location),
            ("host", &n.host),
        ];
        for (k, v) in strings {
            if let Some(v) = v {
                let _ = writeln!(out, "    {k}: {}", quote(v));
            }
        }
        if let Some(m) = &n.metadata {
            let _ = writeln!(
                out,
                "    metadata: {}",
                flow(&serde_json::Value::Object(m.clone()))
            );
        }
    }

    let _ = writeln!(
        out,
        "links:{}",
        if cfg.links.is_empty() { " []" } else { "" }
    );
    for l in &cfg.links {
        let mut parts = vec![format!("a: {}", quote(&l.a)), format!("b: {}", quote(&l.b))];
        if let Some(v) = l.latency_ns {
            parts.push(format!("latency_ns: {v}"));
        }
        if let Some(v) = l.bandwidth_gbps {
            parts.push(format!("bandwidth_gbps: {}", float(v)));
        }
        let _ = writeln!(out, "  - {{ {} }}", parts.join(", "));
    }

    let _ = writeln!(
        out,
        "zones:{}",
        if cfg.zones.is_empty() { " []" } else { "" }
    );
    for z in &cfg.zones {
        let zz = &z.zone;
        let _ = writeln!(out, "  - zone_id: {}", quote(&zz.zone_id));
        let _ = writeln!(out, "    zone_type: {}", zz.zone_type);
        let _ = writeln!(out, "    isolation_level: {}", zz.isolation_level);
        let _ = writeln!(out, "    max_nodes: {}", zz.max_nodes);
        let _ = writeln!(
            out,
            "    required_bandwidth_gbps: {}",
            float(zz.required_bandwidth_gbps)
        );
        if let Some(d) = &zz.description {
            let _ = writeln!(out, "    description: {}", quote(d));
        }
        if zz.quantum_coherence_required {
            let _ = writeln!(out, "    quantum_coherence_required: true");
        }
        if zz.neuromorphic_optimization {
            let _ = writeln!(out, "    neuromorphic_optimization: true");
        }
        let members: Vec<String> = z.members.iter().map(|m| quote(m)).collect();
        let _ = writeln!(out, "    members: [{}]", members.join(", "));
    }
    if !cfg.hosts.is_empty() {
        let _ = writeln!(out, "hosts:");
        for h in &cfg.hosts {
            let _ = writeln!(
                out,
                "  - {{ name: {}, address: {} }}",
                quote(&h.name),
                quote(&h.address.to_string())
            );
        }
    }
    out
}
