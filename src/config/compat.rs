//! The original package's configuration layout, read as the native one: its protocol
//! options at the top level (the constructor's keywords, `default_latency_constraint_ns`
//! and the others), and sections after its classes' constructors (`routing` for the routing
//! engine, `buffers` for the buffer manager, `topology` for the topology manager) and a
//! `monitoring` section. What has a meaning here is moved where the native layout has it;
//! every other key is dropped with a warning naming its line, instead of refusing the file.
//! `hyperfabric config migrate` writes the native layout.

use super::yaml::{Node, Value};

/// A key of the file that has no meaning here, or was read under another name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Line of the key (1-based).
    pub line: usize,
    /// The key's path (`monitoring.metrics_port`).
    pub field: String,
    /// What became of it.
    pub message: String,
}

/// The protocol options, at the top level in the original layout.
use super::parse::PROTOCOL_KEYS as PROTOCOL;

/// Top-level keys only the original layout has.
const SECTIONS: &[&str] = &[
    "fabric_name",
    "routing",
    "buffers",
    "topology",
    "monitoring",
];

/// Whether `root` uses the original layout (some of its top-level keys are the original's).
pub(super) fn is_original(root: &Node) -> bool {
    match &root.value {
        Value::Map(entries) => entries
            .iter()
            .any(|(k, _, _)| PROTOCOL.contains(&k.as_str()) || SECTIONS.contains(&k.as_str())),
        _ => false,
    }
}

/// Rewrites the original layout's keys into the native layout; the warnings say what was
/// dropped and what moved. Native keys are left for the checks of the native layout.
pub(super) fn translate(root: Node) -> (Node, Vec<ConfigWarning>) {
    let Value::Map(entries) = root.value else {
        return (root, Vec::new());
    };
    let mut warnings = Vec::new();
    let mut warn = |line: usize, field: String, message: &str| {
        warnings.push(ConfigWarning {
            line,
            field,
            message: message.to_string(),
        })
    };
    let mut top: Vec<(String, usize, Node)> = Vec::new();
    // Keys that go into `fabric` and `fabric.protocol`.
    let mut fabric: Vec<(String, usize, Node)> = Vec::new();
    let mut protocol: Vec<(String, usize, Node)> = Vec::new();
    for (key, line, value) in entries {
        match key.as_str() {
            k if PROTOCOL.contains(&k) => protocol.push((key, line, value)),
            "fabric_name" => fabric.push(("name".into(), line, value)),
            "routing" | "buffers" | "topology" | "monitoring" => {
                let Value::Map(inner) = value.value else {
                    warn(line, key, "not a mapping: ignored");
                    continue;
                };
                for (k, l, v) in inner {
                    let field = format!("{key}.{k}");
                    match (key.as_str(), k.as_str()) {
                        ("routing", "enable_ml_optimization") => {
                            protocol.push(("enable_ml_routing".into(), l, v))
                        }
                        ("routing", "enable_quantum_optimization") => protocol.push((k, l, v)),
                        ("routing", "enable_neuromorphic_routing") => warn(
                            l,
                            field,
                            "ignored: neuromorphic events are coalesced by their data type \
                             (send with a neuromorphic data type), there is no switch for it",
                        ),
                        ("buffers", "pool_size") => {
                            protocol.push(("buffer_pool_size".into(), l, v))
                        }
                        ("buffers", "buffer_size") => {
                            protocol.push(("max_packet_size".into(), l, v))
                        }
                        ("topology", "enable_auto_optimization") => warn(
                            l,
                            field,
                            "ignored: routes are rebuilt after every change of the topology \
                             anyway",
                        ),
                        ("monitoring", _) => warn(
                            l,
                            field,
                            "ignored: a configuration does not monitor; `hyperfabric \
                             monitor` and `hyperfabric metrics` read a running fabric",
                        ),
                        _ => warn(l, field, "ignored: no meaning here"),
                    }
                }
            }
            _ => top.push((key, line, value)),
        }
    }
    // The same option twice (a top-level keyword and its section's name for it): the same
    // value is said once more, a different one is left for the native checks to refuse.
    let mut kept: Vec<(String, usize, Node)> = Vec::new();
    for (k, l, v) in protocol {
        match kept.iter().find(|(kk, _, _)| *kk == k) {
            Some((_, first, fv)) if fv.value == v.value => warnings.push(ConfigWarning {
                line: l,
                field: k.clone(),
                message: format!("the same as line {first}"),
            }),
            _ => kept.push((k, l, v)),
        }
    }
    let protocol = kept;
    if !fabric.is_empty() || !protocol.is_empty() {
        let line = protocol
            .first()
            .or(fabric.first())
            .map_or(1, |(_, l, _)| *l);
        // A native `fabric` section written beside the original keys: its entries stay, and
        // the native checks refuse a key given twice.
        let mut section = match top.iter().position(|(k, _, _)| k == "fabric") {
            Some(i) if matches!(top[i].2.value, Value::Map(_)) => match top.remove(i).2.value {
                Value::Map(m) => m,
                _ => unreachable!("matched above"),
            },
            // Not a mapping: left for the native checks to refuse.
            Some(_) => {
                return (
                    Node {
                        line: root.line,
                        value: Value::Map(top),
                    },
                    warnings,
                )
            }
            None => Vec::new(),
        };
        section.extend(fabric);
        if !protocol.is_empty() {
            match section.iter_mut().find(|(k, _, _)| k == "protocol") {
                Some((
                    _,
                    _,
                    Node {
                        value: Value::Map(m),
                        ..
                    },
                )) => m.extend(protocol),
                _ => section.push((
                    "protocol".into(),
                    line,
                    Node {
                        line,
                        value: Value::Map(protocol),
                    },
                )),
            }
        }
        top.insert(
            0,
            (
                "fabric".into(),
                line,
                Node {
                    line,
                    value: Value::Map(section),
                },
            ),
        );
    }
    warnings.sort_by_key(|w| w.line);
    (
        Node {
            line: root.line,
            value: Value::Map(top),
        },
        warnings,
    )
}
