//! `topo show --format dot|yaml`, and `topo show --fabric NAME`: the topology of a running
//! fabric (its live nodes, the configuration's links and the fabric's zones) as a protocol
//! that hosts no node sees it.

use super::attach::registry;
use hyperfabric::config::{FabricConfig, ZoneConfig};
use hyperfabric::fabric::HyperFabricProtocol;
use hyperfabric::{Error, TopologyManager};
use std::fmt::Write as _;

/// How `topo show` prints.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Format {
    /// Tables.
    Table,
    /// The topology report as JSON.
    Json,
    /// The topology as a configuration (nodes, links, zones) that loads back.
    Yaml,
    /// Graphviz: `hyperfabric topo show --format dot | dot -Tpng -o fabric.png`.
    Dot,
}

/// A protocol attached to the running fabric `fabric` of `cfg`, hosting nothing.
pub fn live(cfg: &FabricConfig, fabric: &str) -> Result<HyperFabricProtocol, Error> {
    registry(fabric)?;
    super::attach::protocol(cfg, fabric)
}

/// `s` for inside a quoted DOT string.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", esc(s))
}

/// The topology in Graphviz's language: a node per node (switches as ellipses), an edge per
/// link labelled with its latency and capacity, links that are down dashed.
pub fn dot(name: &str, tm: &TopologyManager) -> String {
    let mut out = format!(
        "graph {} {{\n  node [shape=box, fontname=\"sans-serif\"];\n",
        quote(name)
    );
    tm.read(|t| {
        for n in t.nodes() {
            let hw = n.hardware_type.as_str();
            let shape = if hw.contains("switch") || hw.contains("interconnect") {
                ", shape=ellipse"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {} [label=\"{}\\n{hw}\\n{} Gbit/s\"{shape}];",
                quote(&n.node_id),
                esc(&n.node_id),
                n.bandwidth_gbps
            );
        }
        for l in t.links() {
            let _ = writeln!(
                out,
                "  {} -- {} [label={}{}];",
                quote(&l.a),
                quote(&l.b),
                quote(&format!("{} ns, {} Gbit/s", l.latency_ns, l.bandwidth_gbps)),
                if l.up { "" } else { ", style=dashed" }
            );
        }
        for z in t.zones() {
            let _ = writeln!(
                out,
                "  subgraph {} {{ label={}; {} }}",
                quote(&format!("cluster_{}", z.zone.zone_id)),
                quote(&format!(
                    "zone {} ({})",
                    z.zone.zone_id, z.zone.isolation_level
                )),
                z.members
                    .iter()
                    .map(|m| quote(m))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    });
    out.push_str("}\n");
    out
}

/// The topology as a configuration: `cfg`'s fabric section, the topology's nodes, declared
/// links and zones.
pub fn yaml(cfg: &FabricConfig, tm: &TopologyManager) -> String {
    let mut c = FabricConfig {
        fabric: cfg.fabric.clone(),
        hosts: cfg.hosts.clone(),
        ..FabricConfig::default()
    };
    tm.read(|t| {
        c.nodes = t.nodes().cloned().collect();
        c.links = t.declared_links();
        c.zones = t
            .zones()
            .iter()
            .map(|z| ZoneConfig {
                zone: z.zone.clone(),
                members: z.members.iter().cloned().collect(),
            })
            .collect();
    });
    c.to_yaml()
}
