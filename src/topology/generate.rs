//! Generators of standard HPC topologies (fat-tree, dragonfly, 2-D torus), used by the
//! example configurations, the benchmarks and the tests, and by `hyperfabric topo generate`.

use super::LinkSpec;
use crate::model::{HardwareType, NodeSignature};

/// Nodes and links of a generated topology.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Generated {
    /// Nodes (switches and hosts).
    pub nodes: Vec<NodeSignature>,
    /// Links between them.
    pub links: Vec<LinkSpec>,
}

/// Latency a switch adds, ns.
const SWITCH_NS: u64 = 100;
/// Latency a host adds, ns.
const HOST_NS: u64 = 50;
/// Latency of a cable, ns.
const CABLE_NS: u64 = 200;

impl Generated {
    fn node(&mut self, id: String, hw: HardwareType, bw: f64, lat: u64) {
        self.nodes
            .push(NodeSignature::new(id, hw, bw, lat).expect("generated ids and values are valid"));
    }

    fn link(&mut self, a: &str, b: &str, lat: u64, bw: f64) {
        self.links
            .push(LinkSpec::new(a, b).latency_ns(lat).bandwidth_gbps(bw));
    }

    /// Number of host (non-switch) nodes.
    pub fn hosts(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !n.hardware_type.is_switch())
            .count()
    }
}

/// A k-ary fat-tree (k even, 2..=64): (k/2)² core switches, k pods of k/2 aggregation and k/2
/// edge switches, k/2 hosts per edge switch: k³/4 hosts. All links `gbps`.
pub fn fat_tree(k: usize, gbps: f64) -> Generated {
    assert!(
        k >= 2 && k % 2 == 0 && k <= 64,
        "fat-tree arity must be even, 2..=64"
    );
    let h = k / 2;
    let mut g = Generated::default();
    for c in 0..h * h {
        g.node(
            format!("core-{c}"),
            HardwareType::NetworkSwitch,
            gbps,
            SWITCH_NS,
        );
    }
    for p in 0..k {
        for j in 0..h {
            g.node(
                format!("agg-{p}-{j}"),
                HardwareType::NetworkSwitch,
                gbps,
                SWITCH_NS,
            );
            g.node(
                format!("edge-{p}-{j}"),
                HardwareType::NetworkSwitch,
                gbps,
                SWITCH_NS,
            );
        }
        for e in 0..h {
            for x in 0..h {
                let host = format!("host-{p}-{e}-{x}");
                g.node(host.clone(), HardwareType::CpuServer, gbps, HOST_NS);
                g.link(&host, &format!("edge-{p}-{e}"), CABLE_NS, gbps);
            }
            for j in 0..h {
                g.link(
                    &format!("edge-{p}-{e}"),
                    &format!("agg-{p}-{j}"),
                    CABLE_NS,
                    gbps,
                );
            }
        }
        for j in 0..h {
            for c in 0..h {
                g.link(
                    &format!("agg-{p}-{j}"),
                    &format!("core-{}", j * h + c),
                    CABLE_NS,
                    gbps,
                );
            }
        }
    }
    g
}

/// A dragonfly: `a` routers per group, `p` hosts per router, `h` global links per router,
/// `a·h + 1` groups fully connected by one global link per pair of groups; routers of a group
/// fully meshed. Global links are slower (longer cables) than local ones.
pub fn dragonfly(a: usize, p: usize, h: usize, gbps: f64) -> Generated {
    assert!(
        a >= 1 && h >= 1,
        "dragonfly needs at least one router and global link"
    );
    let groups = a * h + 1;
    let mut g = Generated::default();
    let router = |gi: usize, ri: usize| format!("r-{gi}-{ri}");
    for gi in 0..groups {
        for ri in 0..a {
            g.node(router(gi, ri), HardwareType::NetworkSwitch, gbps, SWITCH_NS);
            for x in 0..p {
                let host = format!("h-{gi}-{ri}-{x}");
                g.node(host.clone(), HardwareType::CpuServer, gbps, HOST_NS);
                g.link(&host, &router(gi, ri), CABLE_NS, gbps);
            }
            for rj in 0..ri {
                g.link(&router(gi, rj), &router(gi, ri), CABLE_NS, gbps);
            }
        }
    }
    // Group pair (i, j), i < j, d = j - i: port d-1 of group i, port groups-d-1 of group j.
    for gi in 0..groups {
        for gj in gi + 1..groups {
            let d = gj - gi;
            let (pi, pj) = (d - 1, groups - d - 1);
            g.link(&router(gi, pi / h), &router(gj, pj / h), 5 * CABLE_NS, gbps);
        }
    }
    g
}

/// An `x` by `y` 2-D torus of hosts (wrap-around links in both dimensions).
pub fn torus(x: usize, y: usize, gbps: f64) -> Generated {
    assert!(x >= 1 && y >= 1, "torus dimensions must be positive");
    let mut g = Generated::default();
    let id = |i: usize, j: usize| format!("n-{i}-{j}");
    for i in 0..x {
        for j in 0..y {
            g.node(id(i, j), HardwareType::CpuServer, gbps, HOST_NS);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for i in 0..x {
        for j in 0..y {
            for (ni, nj) in [((i + 1) % x, j), (i, (j + 1) % y)] {
                let (a, b) = (id(i, j), id(ni, nj));
                if a != b && seen.insert((a.clone().min(b.clone()), a.clone().max(b.clone()))) {
                    g.link(&a, &b, CABLE_NS, gbps);
                }
            }
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_textbook_formulas() {
        let f = fat_tree(4, 100.0);
        assert_eq!(f.hosts(), 16);
        assert_eq!(f.nodes.len(), 16 + 4 + 16);
        assert_eq!(f.links.len(), 3 * 16);
        let f = fat_tree(16, 100.0);
        assert_eq!(f.hosts(), 1024);
        let d = dragonfly(4, 2, 2, 100.0);
        assert_eq!(d.nodes.len(), 9 * 4 * 3);
        assert_eq!(d.links.len(), 9 * (4 * 2 + 6) + 9 * 8 / 2);
        let t = torus(4, 5, 100.0);
        assert_eq!((t.nodes.len(), t.links.len()), (20, 40));
        assert_eq!(torus(2, 1, 1.0).links.len(), 1);
    }
}
