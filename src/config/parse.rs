//! Reading a configuration: the checked walk over the YAML tree, with errors that name the
//! file, line and key.

use super::yaml::{Node, Value};
use super::*;

/// Errors are one line: control characters that came from the file are escaped.
pub(super) fn one_line(s: &str) -> String {
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
pub(super) struct Cx<'a> {
    pub(super) origin: &'a str,
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
                let why = if allowed.contains(&key.as_str()) {
                    "given twice".to_string()
                } else {
                    format!("unknown key (expected one of: {})", allowed.join(", "))
                };
                return Err(self.err(*line, &join(&f.path, key), why));
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

    pub(super) fn config(&self, root: &Node) -> Result<FabricConfig> {
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
        if let Some((node, path)) = top.take("hosts") {
            for (i, h) in self.list(node, &path)?.iter().enumerate() {
                let path = format!("hosts[{i}]");
                let host = self.host(h, &path)?;
                if let Some(j) = cfg
                    .hosts
                    .iter()
                    .position(|o| o.name == host.name || o.address == host.address)
                {
                    return Err(self.err(
                        h.line,
                        &path,
                        format!("same name or address as hosts[{j}]"),
                    ));
                }
                cfg.hosts.push(host);
            }
            // Every host runs `serve --host`, which needs a node; every node's host runs.
            for (i, h) in cfg.hosts.iter().enumerate() {
                if !cfg
                    .nodes
                    .iter()
                    .any(|n| n.host.as_deref() == Some(h.name.as_str()))
                {
                    return Err(self.err(
                        node.line,
                        &format!("hosts[{i}]"),
                        format!("no node has host {:?}: a host needs one to run", h.name),
                    ));
                }
            }
            for (i, n) in cfg.nodes.iter().enumerate() {
                if let Some(h) = n.host.as_deref() {
                    if !cfg.hosts.iter().any(|o| o.name == h) {
                        return Err(self.err(
                            node.line,
                            &format!("nodes[{i}].host"),
                            format!("no host {h:?} in hosts"),
                        ));
                    }
                }
            }
            if !cfg.fabric.insecure && cfg.fabric.key_file.is_none() && !cfg.hosts.is_empty() {
                return Err(self.err(
                    node.line,
                    &path,
                    "a fabric across hosts needs fabric.key_file, or fabric.insecure: true",
                ));
            }
        }
        self.finish(top, &["fabric", "nodes", "links", "zones", "hosts"])?;
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
        if let Some(v) = f.take("key_file") {
            s.key_file = Some(self.string(v)?.into());
        }
        if let Some(v) = f.take("insecure") {
            s.insecure = self.boolean(v)?;
        }
        self.finish(
            f,
            &["name", "link_policy", "protocol", "key_file", "insecure"],
        )?;
        Ok(s)
    }

    fn host(&self, node: &Node, path: &str) -> Result<HostConfig> {
        let mut f = self.fields(node, path)?;
        let name_field = self.required(&mut f, "name")?;
        let (line, p) = (name_field.0.line, name_field.1.clone());
        let name = self.string(name_field)?;
        if name.is_empty() || name.len() > 63 {
            return Err(self.err(line, &p, "1 to 63 bytes"));
        }
        let a = self.required(&mut f, "address")?;
        let (line, p) = (a.0.line, a.1.clone());
        let text = self.string(a)?;
        let address = text.parse().map_err(|_| {
            self.err(
                line,
                &p,
                format!("{text:?} is not an address and port like 10.0.0.1:7100"),
            )
        })?;
        self.finish(f, &["name", "address"])?;
        Ok(HostConfig { name, address })
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
    pub(super) fn check_topology(&self, cfg: &FabricConfig, root: &Node) -> Result<()> {
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

pub(super) const PROTOCOL_KEYS: &[&str] = &[
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
