//! `topo show`: the topology of a configuration as tables (nodes, links, zones, routes,
//! metrics and bottlenecks).

use super::table;
use hyperfabric::config::FabricConfig;
use hyperfabric::{Error, TopologyManager};

pub(super) fn show(
    cfg: &FabricConfig,
    tm: &TopologyManager,
    info: &hyperfabric::TopologyInfo,
) -> Result<(), Error> {
    let (policy, links) = tm.read(|t| (t.link_policy(), t.links()));
    println!(
        "fabric {:?}: {} nodes, {} links ({} policy), {} zones, {} quantum, {} neuromorphic",
        cfg.fabric.name,
        info.total_nodes,
        info.total_links,
        policy,
        info.zones.len(),
        info.quantum_enabled_nodes,
        info.neuromorphic_nodes
    );
    println!("\nnodes");
    let rows: Vec<Vec<String>> = tm.read(|t| {
        t.nodes()
            .map(|n| {
                let zones: Vec<&str> = t
                    .zones()
                    .iter()
                    .filter(|z| z.members.contains(&n.node_id))
                    .map(|z| z.zone.zone_id.as_str())
                    .collect();
                vec![
                    n.node_id.clone(),
                    n.hardware_type.to_string(),
                    n.bandwidth_gbps.to_string(),
                    n.latency_ns.to_string(),
                    n.host.clone().unwrap_or_else(|| "-".into()),
                    if zones.is_empty() {
                        "-".into()
                    } else {
                        zones.join(",")
                    },
                ]
            })
            .collect()
    });
    table(
        &[
            "node_id",
            "hardware_type",
            "bandwidth_gbps",
            "latency_ns",
            "host",
            "zones",
        ],
        &rows,
    );
    println!("\nlinks");
    const MAX_LINK_ROWS: usize = 64;
    let rows: Vec<Vec<String>> = links
        .iter()
        .take(MAX_LINK_ROWS)
        .map(|l| {
            vec![
                format!("{} <-> {}", l.a, l.b),
                l.latency_ns.to_string(),
                l.bandwidth_gbps.to_string(),
                if l.declared { "declared" } else { "auto" }.into(),
                if l.up { "up" } else { "down" }.into(),
            ]
        })
        .collect();
    table(
        &["link", "latency_ns", "bandwidth_gbps", "origin", "state"],
        &rows,
    );
    if links.len() > MAX_LINK_ROWS {
        println!("  ... {} more", links.len() - MAX_LINK_ROWS);
    }
    if !info.zones.is_empty() {
        println!("\nzones");
        let rows: Vec<Vec<String>> = tm.read(|t| {
            t.zones()
                .iter()
                .map(|z| {
                    vec![
                        z.zone.zone_id.clone(),
                        z.zone.zone_type.to_string(),
                        z.zone.isolation_level.to_string(),
                        format!("{}/{}", z.members.len(), z.zone.max_nodes),
                        z.zone.required_bandwidth_gbps.to_string(),
                        z.members.iter().cloned().collect::<Vec<_>>().join(","),
                    ]
                })
                .collect()
        });
        table(
            &[
                "zone_id",
                "zone_type",
                "isolation",
                "members",
                "reserved_gbps",
                "member ids",
            ],
            &rows,
        );
    }
    println!("\nperformance_metrics");
    print_metrics_and_bottlenecks(info);
    Ok(())
}

/// The metrics table (values without trailing zeros), then the bottlenecks.
pub(super) fn print_metrics_and_bottlenecks(info: &hyperfabric::TopologyInfo) {
    let rows: Vec<Vec<String>> = info
        .performance_metrics
        .iter()
        .map(|(k, v)| {
            vec![
                k.clone(),
                format!("{v:.3}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string(),
            ]
        })
        .collect();
    table(&["metric", "value"], &rows);
    println!("\nbottlenecks");
    print_bottlenecks(&info.bottlenecks);
}

pub(super) fn print_bottlenecks(b: &[hyperfabric::BottleneckInfo]) {
    if b.is_empty() {
        println!("  none found");
        return;
    }
    let rows: Vec<Vec<String>> = b
        .iter()
        .map(|x| {
            vec![
                x.location.clone(),
                x.bottleneck_type.clone(),
                format!("{:.2}", x.severity),
                format!("{:.0}%", x.current_utilization * 100.0),
                x.affected_paths.len().to_string(),
            ]
        })
        .collect();
    table(
        &[
            "location",
            "type",
            "severity",
            "utilization",
            "sample paths",
        ],
        &rows,
    );
    for x in b {
        println!("  - {}: {}", x.location, x.recommended_action);
    }
}
