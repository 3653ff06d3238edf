//! Fabric configuration files: `load_fabric_config` / `save_fabric_config` in YAML.
//!
//! ```yaml
//! fabric: { name: demo, link_policy: auto, protocol: { enable_ml_routing: false } }
//! nodes:  [ { node_id: gpu-01, hardware_type: nvidia_h100, bandwidth_gbps: 400, latency_ns: 100 } ]
//! links:  [ { a: gpu-01, b: switch-01, latency_ns: 250, bandwidth_gbps: 400 } ]
//! zones:  [ { zone_id: ai, zone_type: compute_cluster, isolation_level: medium, max_nodes: 64,
//!             required_bandwidth_gbps: 400, members: [gpu-01] } ]
//! hosts:  [ { name: node-a, address: "10.0.0.1:7100" } ]
//! ```
//!
//! `hosts` lists the processes of a fabric that spans hosts: a node whose `host` names an
//! entry is hosted by the process started for that entry, which listens on its address.
//! Such a fabric needs `fabric.key_file` (a file of 64 hex digits, the fabric key; a
//! relative path is taken from the configuration file's directory) or `fabric.insecure:
//! true` (connections without proof of the key: a trusted network only).
//!
//! Every error is one line, `FILE:LINE: FIELD: what is wrong`, naming the key as a path
//! (`nodes[2].bandwidth_gbps`). Unknown keys are errors. A loaded configuration has been
//! checked completely: building its topology cannot fail.
#![forbid(unsafe_code)]

mod compat;
mod emit;
mod parse;
mod yaml;

use crate::error::{Error, Result};
use crate::model::{FabricZone, HardwareType, IsolationLevel, NodeSignature, ZoneType};
use crate::routing::{RoutingOptions, SourceSet, TopologyManager};
pub use crate::sys::fs::validate_fabric_name;
use crate::topology::{LinkPolicy, LinkSpec, Topology};
pub use compat::ConfigWarning;
use emit::emit;
use parse::{one_line, Cx};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

/// Options of `HyperFabricProtocol`, as in the reference's constructor.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolOptions {
    /// Route on latency predicted from measurements.
    pub enable_ml_routing: bool,
    /// Coherence-deadline and quantum-capable-path routing for quantum traffic.
    pub enable_quantum_optimization: bool,
    /// Delivery guarantees: on routes through forwarders, sequence numbers,
    /// acknowledgements and resends, duplicates refused; straight over TCP, receipts; in
    /// both, senders told of what could not be delivered (`docs/delivery.md`). Off: best
    /// effort.
    pub enable_fault_tolerance: bool,
    /// Latency constraint applied to sends that give none, ns.
    pub default_latency_constraint_ns: Option<u64>,
    /// Buffers in the zero-copy pool.
    pub buffer_pool_size: u32,
    /// Largest frame in a ring, bytes; larger payloads are fragmented. Frames over TCP to
    /// the process hosting the destination carry 256 KiB of body whatever this is.
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
    /// The fabric key's file (64 hex digits), for connections between hosts and encrypted
    /// sends.
    pub key_file: Option<std::path::PathBuf>,
    /// Connections between hosts without the fabric key (a trusted network only).
    pub insecure: bool,
}

impl Default for FabricSection {
    fn default() -> Self {
        FabricSection {
            name: "default".into(),
            link_policy: None,
            protocol: ProtocolOptions::default(),
            key_file: None,
            insecure: false,
        }
    }
}

/// One process of a fabric that spans hosts: the `hosts:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// Its name; nodes whose `host` is this name are hosted by it.
    pub name: String,
    /// Where it listens for the other hosts.
    pub address: std::net::SocketAddr,
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
    /// The processes of a fabric that spans hosts, in order.
    pub hosts: Vec<HostConfig>,
    /// Keys of the original package's layout that were dropped or read under another name,
    /// one line each (`FILE:LINE: FIELD: what became of it`); never written out.
    pub warnings: Vec<String>,
}

impl FabricConfig {
    /// Parses and checks configuration text; `origin` names it in errors (a file name).
    pub fn parse(text: &str, origin: &str) -> Result<FabricConfig> {
        let root = yaml::parse(text)
            .map_err(|e| Error::Config(one_line(&format!("{origin}:{}: {}", e.line, e.message))))?;
        let (root, warnings) = if compat::is_original(&root) {
            compat::translate(root)
        } else {
            (root, Vec::new())
        };
        let cx = Cx { origin };
        let mut cfg = cx.config(&root)?;
        cfg.warnings = warnings
            .iter()
            .map(|w| one_line(&format!("{origin}:{}: {}: {}", w.line, w.field, w.message)))
            .collect();
        if let Some(k) = &cfg.fabric.key_file {
            if k.is_relative() {
                if let Some(dir) = Path::new(origin).parent() {
                    cfg.fabric.key_file = Some(dir.join(k));
                }
            }
        }
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

    /// The entry of `hosts` named `name`.
    pub fn host(&self, name: &str) -> Result<&HostConfig> {
        self.hosts.iter().find(|h| h.name == name).ok_or_else(|| {
            Error::Config(format!(
                "no host {name:?} in the configuration's hosts (it has: {})",
                self.hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// The nodes hosted by the process of host `name`.
    pub fn nodes_of(&self, name: &str) -> Vec<&NodeSignature> {
        self.nodes
            .iter()
            .filter(|n| n.host.as_deref() == Some(name))
            .collect()
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

    /// A [`TopologyManager`] holding the configuration's topology, with tables for every
    /// node.
    pub fn topology_manager(&self) -> Result<TopologyManager> {
        self.topology_manager_for(SourceSet::All)
    }

    /// A [`TopologyManager`] holding the configuration's topology, with tables only for
    /// `sources`: routes from them are answered, and building costs what one source costs
    /// times their number (a query about one path on a large fabric needs one).
    pub fn topology_manager_for(&self, sources: SourceSet) -> Result<TopologyManager> {
        let tm = TopologyManager::with_options(RoutingOptions {
            sources,
            ..self.routing_options()
        });
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
