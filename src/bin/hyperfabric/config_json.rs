//! `config show --json`: the configuration as it is read, as one JSON object of the native
//! layout's shape (the keys of `docs/config.md`), with the warnings of its loading.

use hyperfabric::config::FabricConfig;
use serde_json::{json, Value};

pub fn of(cfg: &FabricConfig) -> Value {
    let f = &cfg.fabric;
    let p = &f.protocol;
    json!({
        "fabric": {
            "name": f.name,
            "link_policy": f.link_policy.map(|l| l.to_string()),
            "protocol": {
                "enable_ml_routing": p.enable_ml_routing,
                "enable_quantum_optimization": p.enable_quantum_optimization,
                "enable_fault_tolerance": p.enable_fault_tolerance,
                "default_latency_constraint_ns": p.default_latency_constraint_ns,
                "buffer_pool_size": p.buffer_pool_size,
                "max_packet_size": p.max_packet_size,
            },
            "key_file": f.key_file.as_ref().map(|k| k.display().to_string()),
            "insecure": f.insecure,
        },
        "nodes": cfg.nodes,
        "links": cfg.links,
        "zones": cfg.zones.iter().map(|z| {
            let mut v = serde_json::to_value(&z.zone).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("members".into(), json!(z.members));
            }
            v
        }).collect::<Vec<_>>(),
        "hosts": cfg.hosts.iter().map(|h| json!({
            "name": h.name,
            "address": h.address.to_string(),
        })).collect::<Vec<_>>(),
        "warnings": cfg.warnings,
    })
}
