//! Bottleneck analysis: measured link utilisation and loss, route concentration on links, and
//! transit nodes narrower than their links, each with a severity, the routes it affects and a
//! concrete recommendation.

use super::{Metric, RouteGraph, RoutingTables};
use crate::model::BottleneckInfo;
use crate::topology::Topology;

/// Utilisation from which a link is reported.
const UTILIZATION_THRESHOLD: f64 = 0.5;
/// Loss rate from which a link is reported.
const LOSS_THRESHOLD: f64 = 0.01;
/// A link carrying at least this multiple of the mean route load is reported.
const CONCENTRATION_FACTOR: f64 = 2.0;
/// Sample routes listed per bottleneck.
const MAX_AFFECTED_PATHS: usize = 5;
/// Most bottlenecks reported (highest severity first).
const MAX_REPORTED: usize = 20;

/// Analyses `topology` with the route load of `tables` (which must be built from it).
pub fn analyze_bottlenecks(topology: &Topology, tables: &RoutingTables) -> Vec<BottleneckInfo> {
    let g = tables.graph();
    let load = tables.route_load();
    let mut found: Vec<(BottleneckInfo, Vec<u32>)> = Vec::new();
    let pct = |u: f64| (u * 100.0).round();

    let mut measured = std::collections::HashMap::new();
    for l in topology.links() {
        let m = &l.metrics;
        if m.samples == 0 {
            continue;
        }
        let ends = dense_link(g, &l.a, &l.b);
        if let [a, b] = ends[..] {
            measured.insert((a.min(b), a.max(b)), m.utilization);
        }
        if m.utilization >= UTILIZATION_THRESHOLD {
            found.push((
                BottleneckInfo {
                    location: format!("{}<->{}", l.a, l.b),
                    bottleneck_type: "link_utilization".into(),
                    severity: m.utilization.clamp(0.0, 1.0),
                    current_utilization: m.utilization,
                    recommended_action: format!(
                        "add capacity between {} and {} ({} Gbit/s link at {}% utilisation, \
                         {:.1} Gbit/s in use) or enable ML routing to move flows to \
                         alternate paths",
                        l.a,
                        l.b,
                        l.bandwidth_gbps,
                        pct(m.utilization),
                        m.utilized_gbps
                    ),
                    affected_paths: Vec::new(),
                },
                ends.clone(),
            ));
        }
        if m.loss_rate >= LOSS_THRESHOLD {
            found.push((
                BottleneckInfo {
                    location: format!("{}<->{}", l.a, l.b),
                    bottleneck_type: "packet_loss".into(),
                    severity: (m.loss_rate * 10.0).clamp(0.0, 1.0),
                    current_utilization: m.utilization,
                    recommended_action: format!(
                        "check the link between {} and {}: {:.2}% of packets are lost; \
                         replace the cable or port, or take the link down so routes avoid it",
                        l.a,
                        l.b,
                        m.loss_rate * 100.0
                    ),
                    affected_paths: Vec::new(),
                },
                ends,
            ));
        }
    }

    let used: Vec<f64> = load.links.iter().copied().filter(|&c| c > 0.0).collect();
    if !used.is_empty() {
        let mean = used.iter().sum::<f64>() / used.len() as f64;
        for (li, &c) in load.links.iter().enumerate() {
            if c < CONCENTRATION_FACTOR * mean || c < 4.0 {
                continue;
            }
            let (a, b) = g.links[li];
            let (ia, ib) = (g.id(a), g.id(b));
            let utilization = measured.get(&(a, b)).copied().unwrap_or(0.0);
            found.push((
                BottleneckInfo {
                    location: format!("{ia}<->{ib}"),
                    bottleneck_type: "route_concentration".into(),
                    severity: (1.0 - mean / c).clamp(0.0, 1.0),
                    current_utilization: utilization,
                    recommended_action: format!(
                        "{} of {} routes cross {ia}<->{ib} ({:.1}x the mean link): add a \
                         parallel link between {ia} and {ib}, or link their neighbours \
                         directly",
                        round1(c),
                        load.routes,
                        c / mean
                    ),
                    affected_paths: Vec::new(),
                },
                vec![a, b],
            ));
        }
    }

    for x in 0..g.node_count() {
        let transit = round1(load.transit[x]);
        if load.transit[x] <= 0.0 {
            continue;
        }
        let widest_link = g
            .arcs(x as u32)
            .iter()
            .map(|a| a.bandwidth_gbps)
            .fold(0.0, f64::max);
        let own = g.node_bandwidth_gbps[x];
        if own >= widest_link {
            continue;
        }
        found.push((
            BottleneckInfo {
                location: g.id(x as u32).to_string(),
                bottleneck_type: "node_bandwidth".into(),
                severity: (1.0 - own / widest_link).clamp(0.0, 1.0),
                current_utilization: 0.0,
                recommended_action: format!(
                    "{} forwards {transit} routes at {own} Gbit/s while its links carry up to \
                     {widest_link} Gbit/s: upgrade it or add a path around it",
                    g.id(x as u32)
                ),
                affected_paths: Vec::new(),
            },
            vec![x as u32],
        ));
    }

    found.sort_by(|a, b| b.0.severity.total_cmp(&a.0.severity));
    found.truncate(MAX_REPORTED);
    for (info, at) in &mut found {
        info.affected_paths = affected_paths(tables, at);
    }
    found.into_iter().map(|(i, _)| i).collect()
}

/// A route count for messages: whole numbers without decimals, split loads with one.
fn round1(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.1}")
    }
}

fn dense_link(g: &RouteGraph, a: &str, b: &str) -> Vec<u32> {
    match (g.index_of(a), g.index_of(b)) {
        (Some(a), Some(b)) => vec![a, b],
        _ => Vec::new(),
    }
}

/// Up to [`MAX_AFFECTED_PATHS`] table routes that cross `at` (a node, or a link as two nodes).
fn affected_paths(tables: &RoutingTables, at: &[u32]) -> Vec<Vec<String>> {
    let g = tables.graph();
    let mut out = Vec::new();
    if at.is_empty() {
        return out;
    }
    for &s in tables.sources() {
        for d in 0..g.node_count() as u32 {
            if s == d {
                continue;
            }
            let Some(path) = tables.path(s, d, Metric::Latency) else {
                continue;
            };
            let hit = match at {
                [x] => super::intermediates(&path).contains(x),
                [a, b] => path
                    .windows(2)
                    .any(|w| (w[0] == *a && w[1] == *b) || (w[0] == *b && w[1] == *a)),
                _ => false,
            };
            if hit {
                out.push(g.ids_of(&path));
                if out.len() == MAX_AFFECTED_PATHS {
                    return out;
                }
            }
        }
    }
    out
}
