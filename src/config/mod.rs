//! Fabric configuration files: `load_fabric_config` / `save_fabric_config` in YAML.
//!
//! ```yaml
//! fabric: { name: demo, link_policy: auto, protocol: { enable_ml_routing: false } }
//! nodes:  [ { node_id: gpu-01, hardware_type: nvidia_h100, bandwidth_gbps: 400, latency_ns: 100 } ]
//! links:  [ { a: gpu-01, b: switch-01, latency_ns: 250, bandwidth_gbps: 400 } ]
//! zones:  [ { zone_id: ai, zone_type: compute_cluster, isolation_level: medium, max_nodes: 64,
//!             required_bandwidth_gbps: 400, members: [gpu-01] } ]
//! ```
//!
//! Every error is one line, `FILE:LINE: FIELD: what is wrong`, naming the key as a path
//! (`nodes[2].bandwidth_gbps`). Unknown keys are errors. A loaded configuration has been
//! checked completely: building its topology cannot fail.
#![forbid(unsafe_code)]

mod yaml;

use crate::error::{Error, Result};
use crate::model::{FabricZone, HardwareType, IsolationLevel, NodeSignature, ZoneType};
use crate::routing::{RoutingOptions, TopologyManager};
pub use crate::sys::fs::validate_fabric_name;
use crate::topology::{LinkPolicy, LinkSpec, Topology};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;
use yaml::{Node, Value};

/// Options of `HyperFabricProtocol`, as in the reference's constructor.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolOptions {
    /// Route on latency predicted from measurements.
    pub enable_ml_routing: bool,
    /// Coherence-deadline and quantum-capable-path routing for quantum traffic.
    pub enable_quantum_optimization: bool,
    /// Detect failed peers and reroute around them.
    pub enable_fault_tolerance: bool,
    /// Latency constraint applied to sends that give none, ns.
    pub default_latency_constraint_ns: Option<u64>,
    /// Buffers in the zero-copy pool.
    pub buffer_pool_size: u32,
    /// Largest frame on the wire, bytes; larger payloads are fragmented.
    pub max_packet_size: u32,
}

impl Default for ProtocolOptions {
    fn default() -> Self {
        ProtocolOptions {
            enable_ml_routing: false,
            enable_quantum_optimization: false,
            enable_fault_tolerance: true,
            default_latency_constraint_ns: None,
            buffer_pool_size: 1000,
            max_packet_size: 65_536,
        }
    }
}

/// Smallest accepted `max_packet_size` (one cache line).
pub const MIN_PACKET_SIZE: u32 = 64;
/// Largest accepted `max_packet_size` (16 MiB).
pub const MAX_PACKET_SIZE: u32 = 16 << 20;

/// The `fabric:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct FabricSection {
    /// Fabric name: 1..=63 of `[A-Za-z0-9._-]`, not starting with `.` (it names a directory).
    pub name: String,
    /// Link policy; absent means the default (explicit when links are declared).
    pub link_policy: Option<LinkPolicy>,
    /// Protocol options.
    pub protocol: ProtocolOptions,
}

impl Default for FabricSection {
    fn default() -> Self {
        FabricSection {
            name: "default".into(),
            link_policy: None,
            protocol: ProtocolOptions::default(),
        }
    }
}

/// A zone with its members.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    /// The zone.
    pub zone: FabricZone,
    /// Member node ids.
    pub members: Vec<String>,
}

/// A whole fabric configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FabricConfig {
    /// The `fabric:` section.
    pub fabric: FabricSection,
    /// Nodes in order.
    pub nodes: Vec<NodeSignature>,
    /// Declared links.
    pub links: Vec<LinkSpec>,
    /// Zones in creation order.
    pub zones: Vec<ZoneConfig>,
}

impl FabricConfig {
    /// Parses and checks configuration text; `origin` names it in errors (a file name).
    pub fn parse(text: &str, origin: &str) -> Result<FabricConfig> {
        let root = yaml::parse(text)
            .map_err(|e| Error::Config(one_line(&format!("{origin}:{}: {}", e.line, e.message))))?;
        let cx = Cx { origin };
        let cfg = cx.config(&root)?;
        cx.check_topology(&cfg, &root)?;
        Ok(cfg)
    }

    /// The configuration as YAML text (what [`save_fabric_config`] writes).
    pub fn to_yaml(&self) -> String {
        emit(self)
    }

    /// The topology the configuration describes.
    pub fn topology(&self) -> Result<Topology> {
        let mut t = Topology::new();
        self.apply(&mut t)?;
        Ok(t)
    }

    fn apply(&self, t: &mut Topology) -> Result<()> {
        for n in &self.nodes {
            t.add_node(n.clone())?;
        }
        for l in &self.links {
            t.add_link(l.clone())?;
        }
        if self.fabric.link_policy.is_some() {
            t.set_link_policy(self.fabric.link_policy);
        }
        for z in &self.zones {
            t.create_zone(z.zone.clone())?;
            for m in &z.members {
                t.assign_to_zone(&z.zone.zone_id, m)?;
            }
        }
        Ok(())
    }

    /// The routing options the protocol section asks for, with tables for every node.
    pub fn routing_options(&self) -> RoutingOptions {
        RoutingOptions {
            enable_ml_optimization: self.fabric.protocol.enable_ml_routing,
            enable_quantum_optimization: self.fabric.protocol.enable_quantum_optimization,
            load_balancing: true,
            ..RoutingOptions::default()
        }
    }

    /// A [`TopologyManager`] holding the configuration's topology.
    pub fn topology_manager(&self) -> Result<TopologyManager> {
        let tm = TopologyManager::with_options(self.routing_options());
        tm.routing().update_topology(|t| self.apply(t))?;
        Ok(tm)
    }
}

/// The reference's `load_fabric_config`: reads and checks a YAML file.
pub fn load_fabric_config(path: impl AsRef<Path>) -> Result<FabricConfig> {
    let path = path.as_ref();
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::Config(format!("{origin}: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("{origin}: file is not valid UTF-8")))?;
    FabricConfig::parse(&text, &origin)
}

/// The reference's `save_fabric_config`: writes `config` as YAML, atomically (a temporary
/// file renamed over `path`). Loading the file gives back an equal configuration.
pub fn save_fabric_config(config: &FabricConfig, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let text = config.to_yaml();
    // Refuse to write what could not be read back.
    FabricConfig::parse(&text, &path.display().to_string())?;
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("renaming to {}", path.display()), e)
    })
}

/// Errors are one line: control characters that came from the file are escaped.
fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Parsing context: the origin to name in errors.
struct Cx<'a> {
    origin: &'a str,
}

/// Keys of a mapping being read; reports unknown keys when done.
struct Fields<'n> {
    path: String,
    line: usize,
    entries: &'n [(String, usize, Node)],
    used: Vec<bool>,
}

impl<'n> Fields<'n> {
    fn take(&mut self, key: &str) -> Option<(&'n Node, String)> {
        let i = self.entries.iter().position(|(k, _, _)| k == key)?;
        self.used[i] = true;
        let node = &self.entries[i].2;
        if node.is_null() {
            return None;
        }
        Some((node, join(&self.path, key)))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Cx<'_> {
    fn err(&self, line: usize, path: &str, msg: impl std::fmt::Display) -> Error {
        Error::Config(one_line(&format!("{}:{line}: {path}: {msg}", self.origin)))
    }

    fn fields<'n>(&self, node: &'n Node, path: &str) -> Result<Fields<'n>> {
        match &node.value {
            Value::Map(entries) => Ok(Fields {
                path: path.to_string(),
                line: node.line,
                entries,
                used: vec![false; entries.len()],
            }),
            _ => Err(self.err(
                node.line,
                if path.is_empty() { "<document>" } else { path },
                format!("expected a mapping, found {}", node.kind()),
            )),
        }
    }

    fn finish(&self, f: Fields<'_>, allowed: &[&str]) -> Result<()> {
        for (i, (key, line, _)) in f.entries.iter().enumerate() {
            if !f.used[i] {
                return Err(self.err(
                    *line,
                    &join(&f.path, key),
                    format!("unknown key (expected one of: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn required<'n>(&self, f: &mut Fields<'n>, key: &str) -> Result<(&'n Node, String)> {
        f.take(key)
            .ok_or_else(|| self.err(f.line, &join(&f.path, key), "required key is missing"))
    }

    fn list<'n>(&self, node: &'n Node, path: &str) -> Result<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Ok(items),
            _ => Err(self.err(
                node.line,
                path,
                format!("expected a list, found {}", node.kind()),
            )),
        }
    }

    fn scalar<'n>(&self, node: &'n Node, path: &str) -> Result<(&'n str, bool)> {
        match &node.value {
            Value::Scalar { text, plain } => Ok((text, *plain)),
            _ => Err(self.err(
                node.line,
                path,
                format!("expected a scalar, found {}", node.kind()),
            )),
        }
    }

    fn string(&self, (node, path): (&Node, String)) -> Result<String> {
        let (text, _) = self.scalar(node, &path)?;
        if text.contains('\0') {
            return Err(self.err(node.line, &path, "must not contain NUL"));
        }
        Ok(text.to_string())
    }

    fn number_text<'n>(&self, node: &'n Node, path: &str) -> Result<&'n str> {
        let (text, plain) = self.scalar(node, path)?;
        if !plain {
            return Err(self.err(
                node.line,
                path,
                format!("expected a number, found the string {text:?}"),
            ));
        }
        Ok(text)
    }

    fn float(&self, (node, path): (&Node, String)) -> Result<f64> {
        let text = self.number_text(node, &path)?;
        let clean = text.replace('_', "");
        // YAML spells infinity and NaN .inf / .nan.
        let v: f64 = match clean.to_ascii_lowercase().trim_start_matches('+') {
            ".inf" => f64::INFINITY,
            "-.inf" => f64::NEG_INFINITY,
            ".nan" => f64::NAN,
            _ => clean.parse().map_err(|_| {
                self.err(
                    node.line,
                    &path,
                    format!("expected a number, found {text:?}"),
                )
            })?,
        };
        if !v.is_finite() {
            return Err(self.err(node.line, &path, format!("must be finite (got {text})")));
        }
        Ok(v)
    }

    fn positive(&self, field: (&Node, String), what: &str) -> Result<f64> {
        let (line, path) = (field.0.line, field.1.clone());
        let v = self.float(field)?;
        if v <= 0.0 {
            return Err(self.err(line, &path, format!("{what} must be positive (got {v})")));
        }
        Ok(v)
    }

    fn non_negative(&self, field: (&Node, String)) -> Result<f64> {
        let (line, path) = (field.0.line, field.1.clone());
        let v = self.float(field)?;
        if v < 0.0 {
            return Err(self.err(line, &path, format!("cannot be negative (got {v})")));
        }
        Ok(v)
    }

    fn unsigned(&self, (node, path): (&Node, String)) -> Result<u64> {
        let text = self.number_text(node, &path)?;
        let clean = text.replace('_', "");
        match clean.parse::<i128>() {
            Ok(v) if v < 0 => {
                Err(self.err(node.line, &path, format!("cannot be negative (got {v})")))
            }
            Ok(v) => u64::try_from(v)
                .map_err(|_| self.err(node.line, &path, format!("{v} is too large"))),
            Err(_) => Err(self.err(
                node.line,
                &path,
                format!("expected a whole number, found {text:?}"),
            )),
        }
    }

    fn bounded(&self, field: (&Node, String), lo: u64, hi: u64) -> Result<u64> {
        let (line, path) = (field.0.line, field.1.clone());
        let v = self.unsigned(field)?;
        if v < lo || v > hi {
            return Err(self.err(line, &path, format!("must be within {lo}..={hi} (got {v})")));
        }
        Ok(v)
    }

    fn boolean(&self, (node, path): (&Node, String)) -> Result<bool> {
        match self.scalar(node, &path)? {
            ("true" | "True" | "TRUE", true) => Ok(true),
            ("false" | "False" | "FALSE", true) => Ok(false),
            (text, _) => Err(self.err(
                node.line,
                &path,
                format!("expected true or false, found {text:?}"),
            )),
        }
    }

    fn parsed<T: FromStr<Err = String>>(&self, (node, path): (&Node, String)) -> Result<T> {
        let (text, _) = self.scalar(node, &path)?;
        text.parse().map_err(|e| self.err(node.line, &path, e))
    }

    fn config(&self, root: &Node) -> Result<FabricConfig> {
        let mut top = self.fields(root, "")?;
        let mut cfg = FabricConfig::default();
        if let Some(f) = top.take("fabric") {
            cfg.fabric = self.fabric(f)?;
        }
        if let Some((node, path)) = top.take("nodes") {
            for (i, n) in self.list(node, &path)?.iter().enumerate() {
                cfg.nodes.push(self.node(n, &format!("nodes[{i}]"))?);
            }
        }
        if let Some((node, path)) = top.take("links") {
            for (i, l) in self.list(node, &path)?.iter().enumerate() {
                cfg.links.push(self.link(l, &format!("links[{i}]"))?);
            }
        }
        if let Some((node, path)) = top.take("zones") {
            for (i, z) in self.list(node, &path)?.iter().enumerate() {
                cfg.zones.push(self.zone(z, &format!("zones[{i}]"))?);
            }
        }
        self.finish(top, &["fabric", "nodes", "links", "zones"])?;
        Ok(cfg)
    }

    fn fabric(&self, (node, path): (&Node, String)) -> Result<FabricSection> {
        let mut f = self.fields(node, &path)?;
        let mut s = FabricSection::default();
        if let Some(v) = f.take("name") {
            let line = v.0.line;
            let p = v.1.clone();
            s.name = self.string(v)?;
            validate_fabric_name(&s.name).map_err(|e| self.err(line, &p, e))?;
        }
        if let Some(v) = f.take("link_policy") {
            s.link_policy = Some(self.parsed(v)?);
        }
        if let Some((pn, pp)) = f.take("protocol") {
            let mut p = self.fields(pn, &pp)?;
            let o = &mut s.protocol;
            if let Some(v) = p.take("enable_ml_routing") {
                o.enable_ml_routing = self.boolean(v)?;
            }
            if let Some(v) = p.take("enable_quantum_optimization") {
                o.enable_quantum_optimization = self.boolean(v)?;
            }
            if let Some(v) = p.take("enable_fault_tolerance") {
                o.enable_fault_tolerance = self.boolean(v)?;
            }
            if let Some(v) = p.take("default_latency_constraint_ns") {
                o.default_latency_constraint_ns = Some(self.bounded(v, 1, u64::MAX)?);
            }
            if let Some(v) = p.take("buffer_pool_size") {
                o.buffer_pool_size = self.bounded(v, 1, 1 << 24)? as u32;
            }
            if let Some(v) = p.take("max_packet_size") {
                o.max_packet_size =
                    self.bounded(v, MIN_PACKET_SIZE as u64, MAX_PACKET_SIZE as u64)? as u32;
            }
            self.finish(p, PROTOCOL_KEYS)?;
        }
        self.finish(f, &["name", "link_policy", "protocol"])?;
        Ok(s)
    }

    fn node(&self, node: &Node, path: &str) -> Result<NodeSignature> {
        let mut f = self.fields(node, path)?;
        let id_field = self.required(&mut f, "node_id")?;
        let (id_line, id_path) = (id_field.0.line, id_field.1.clone());
        let node_id = self.string(id_field)?;
        crate::model::node::validate_node_id(&node_id).map_err(|e| {
            self.err(
                id_line,
                &id_path,
                e.to_string().trim_start_matches("node_id: "),
            )
        })?;
        let hw_field = self.required(&mut f, "hardware_type")?;
        let hw_line = hw_field.0.line;
        let hardware_type: HardwareType = self.parsed(hw_field)?;
        let bandwidth_gbps =
            self.positive(self.required(&mut f, "bandwidth_gbps")?, "Bandwidth")?;
        let latency_ns = self.unsigned(self.required(&mut f, "latency_ns")?)?;
        let opt_f = |f: &mut Fields, k: &str| f.take(k).map(|v| self.non_negative(v)).transpose();
        let opt_u = |f: &mut Fields, k: &str| f.take(k).map(|v| self.unsigned(v)).transpose();
        let opt_s = |f: &mut Fields, k: &str| f.take(k).map(|v| self.string(v)).transpose();
        let memory_gb = opt_f(&mut f, "memory_gb")?;
        let compute_units = opt_u(&mut f, "compute_units")?;
        let power_watts = opt_f(&mut f, "power_watts")?;
        let rack_position = opt_s(&mut f, "rack_position")?;
        let physical_location = opt_s(&mut f, "physical_location")?;
        let quantum_coherence_time_us = f
            .take("quantum_coherence_time_us")
            .map(|v| self.positive(v, "Coherence time"))
            .transpose()?;
        let neuromorphic_neurons = opt_u(&mut f, "neuromorphic_neurons")?;
        let photonic_channels = opt_u(&mut f, "photonic_channels")?;
        let host = opt_s(&mut f, "host")?;
        let metadata = match f.take("metadata") {
            None => None,
            Some((m, mp)) => match yaml::to_json(m) {
                serde_json::Value::Object(map) => Some(map),
                _ => {
                    return Err(self.err(
                        m.line,
                        &mp,
                        format!("expected a mapping, found {}", m.kind()),
                    ))
                }
            },
        };
        self.finish(f, NODE_KEYS)?;
        let sig = NodeSignature {
            node_id,
            hardware_type,
            bandwidth_gbps,
            latency_ns,
            memory_gb,
            compute_units,
            power_watts,
            rack_position,
            physical_location,
            quantum_coherence_time_us,
            neuromorphic_neurons,
            photonic_channels,
            host,
            metadata,
        };
        if hardware_type == HardwareType::QuantumQpu && quantum_coherence_time_us.is_none() {
            return Err(self.err(
                hw_line,
                &join(path, "quantum_coherence_time_us"),
                "Quantum QPU requires coherence time specification",
            ));
        }
        sig.validate().map_err(|e| self.err(node.line, path, e))?;
        Ok(sig)
    }

    fn link(&self, node: &Node, path: &str) -> Result<LinkSpec> {
        let mut f = self.fields(node, path)?;
        let a = self.string(self.required(&mut f, "a")?)?;
        let b = self.string(self.required(&mut f, "b")?)?;
        let latency_ns = f.take("latency_ns").map(|v| self.unsigned(v)).transpose()?;
        let bandwidth_gbps = f
            .take("bandwidth_gbps")
            .map(|v| self.positive(v, "Bandwidth"))
            .transpose()?;
        self.finish(f, &["a", "b", "latency_ns", "bandwidth_gbps"])?;
        Ok(LinkSpec {
            a,
            b,
            latency_ns,
            bandwidth_gbps,
        })
    }

    fn zone(&self, node: &Node, path: &str) -> Result<ZoneConfig> {
        let mut f = self.fields(node, path)?;
        let zone_id = self.string(self.required(&mut f, "zone_id")?)?;
        let zone_type: ZoneType = self.parsed(self.required(&mut f, "zone_type")?)?;
        let isolation_level: IsolationLevel =
            self.parsed(self.required(&mut f, "isolation_level")?)?;
        let max_nodes =
            self.bounded(self.required(&mut f, "max_nodes")?, 1, u32::MAX as u64)? as u32;
        let required_bandwidth_gbps = self.positive(
            self.required(&mut f, "required_bandwidth_gbps")?,
            "Required bandwidth",
        )?;
        let description = f.take("description").map(|v| self.string(v)).transpose()?;
        let quantum_coherence_required = f
            .take("quantum_coherence_required")
            .map(|v| self.boolean(v))
            .transpose()?
            .unwrap_or(false);
        let neuromorphic_optimization = f
            .take("neuromorphic_optimization")
            .map(|v| self.boolean(v))
            .transpose()?
            .unwrap_or(false);
        let mut members = Vec::new();
        if let Some((m, mp)) = f.take("members") {
            for (i, item) in self.list(m, &mp)?.iter().enumerate() {
                members.push(self.string((item, format!("{mp}[{i}]")))?);
            }
        }
        self.finish(f, ZONE_KEYS)?;
        let zone = FabricZone {
            zone_id,
            zone_type,
            isolation_level,
            max_nodes,
            required_bandwidth_gbps,
            description,
            quantum_coherence_required,
            neuromorphic_optimization,
        };
        zone.validate().map_err(|e| self.err(node.line, path, e))?;
        Ok(ZoneConfig { zone, members })
    }

    /// Builds the topology step by step so each failure names the line that caused it.
    fn check_topology(&self, cfg: &FabricConfig, root: &Node) -> Result<()> {
        let lines = SectionLines::of(root);
        let mut t = Topology::new();
        let mut first_line: HashMap<&str, usize> = HashMap::new();
        for (i, n) in cfg.nodes.iter().enumerate() {
            let line = lines.item("nodes", i, "node_id");
            if let Some(first) = first_line.get(n.node_id.as_str()) {
                return Err(self.err(
                    line,
                    &format!("nodes[{i}].node_id"),
                    format!(
                        "duplicate node {:?} (first defined at line {first})",
                        n.node_id
                    ),
                ));
            }
            first_line.insert(&n.node_id, line);
            t.add_node(n.clone())
                .map_err(|e| self.err(line, &format!("nodes[{i}]"), e))?;
        }
        for (i, l) in cfg.links.iter().enumerate() {
            for (end, id) in [("a", &l.a), ("b", &l.b)] {
                if !first_line.contains_key(id.as_str()) {
                    return Err(self.err(
                        lines.item("links", i, end),
                        &format!("links[{i}].{end}"),
                        format!("link to unknown node {id:?}"),
                    ));
                }
            }
            t.add_link(l.clone())
                .map_err(|e| self.err(lines.item("links", i, "a"), &format!("links[{i}]"), e))?;
        }
        if cfg.fabric.link_policy.is_some() {
            t.set_link_policy(cfg.fabric.link_policy);
        }
        for (i, z) in cfg.zones.iter().enumerate() {
            let line = lines.item("zones", i, "zone_id");
            let path = format!("zones[{i}]");
            t.create_zone(z.zone.clone()).map_err(|e| {
                let field = if e.kind() == crate::ErrorKind::DuplicateZone {
                    "zone_id"
                } else {
                    "required_bandwidth_gbps"
                };
                self.err(lines.item("zones", i, field), &join(&path, field), e)
            })?;
            for (k, m) in z.members.iter().enumerate() {
                t.assign_to_zone(&z.zone.zone_id, m).map_err(|e| {
                    self.err(
                        lines.member(i, k).unwrap_or(line),
                        &format!("{path}.members[{k}]"),
                        e,
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// Lines of list items and their keys, for errors found after parsing.
struct SectionLines<'n> {
    root: &'n Node,
}

impl<'n> SectionLines<'n> {
    fn of(root: &'n Node) -> Self {
        SectionLines { root }
    }

    fn items(&self, section: &str) -> Option<&'n [Node]> {
        let Value::Map(entries) = &self.root.value else {
            return None;
        };
        let (_, _, node) = entries.iter().find(|(k, _, _)| k == section)?;
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// Line of `section[i].key`, else of `section[i]`.
    fn item(&self, section: &str, i: usize, key: &str) -> usize {
        let Some(item) = self.items(section).and_then(|it| it.get(i)) else {
            return self.root.line;
        };
        match &item.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _, _)| k == key)
                .map_or(item.line, |(_, _, v)| v.line),
            _ => item.line,
        }
    }

    fn member(&self, zone: usize, k: usize) -> Option<usize> {
        let item = self.items("zones")?.get(zone)?;
        let Value::Map(entries) = &item.value else {
            return None;
        };
        let (_, _, members) = entries.iter().find(|(key, _, _)| key == "members")?;
        match &members.value {
            Value::Seq(m) => m.get(k).map(|n| n.line),
            _ => None,
        }
    }
}

const PROTOCOL_KEYS: &[&str] = &[
    "enable_ml_routing",
    "enable_quantum_optimization",
    "enable_fault_tolerance",
    "default_latency_constraint_ns",
    "buffer_pool_size",
    "max_packet_size",
];

const NODE_KEYS: &[&str] = &[
    "node_id",
    "hardware_type",
    "bandwidth_gbps",
    "latency_ns",
    "memory_gb",
    "compute_units",
    "power_watts",
    "rack_position",
    "physical_location",
    "quantum_coherence_time_us",
    "neuromorphic_neurons",
    "photonic_channels",
    "host",
    "metadata",
];

const ZONE_KEYS: &[&str] = &[
    "zone_id",
    "zone_type",
    "isolation_level",
    "max_nodes",
    "required_bandwidth_gbps",
    "description",
    "quantum_coherence_required",
    "neuromorphic_optimization",
    "members",
];

fn emit(cfg: &FabricConfig) -> String {
    use yaml::{float, flow, quote};
    let mut out = String::new();
    let s = &cfg.fabric;
    let p = &s.protocol;
    let _ = writeln!(out, "fabric:\n  name: {}", quote(&s.name));
    if let Some(lp) = s.link_policy {
        let _ = writeln!(out, "  link_policy: {lp}");
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
    out
}
