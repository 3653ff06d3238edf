//! Precomputed routing tables: for every source node of the table set, for each metric, one
//! [`RouteEntry`] per destination. Entries of all sources live in one flat array laid out
//! `[source slot][metric][destination]`, so a lookup is two dependent loads (the source's
//! slot, then the entry) and one when the caller keeps a [`SourceRoutes`] view.

use super::admission::Admission;
use super::graph::RouteGraph;
use super::search::{Search, SearchOrder, MAX_FIRST_HOPS, NONE};
use super::Metric;
use std::time::Instant;

/// `next_hop` of a destination that cannot be reached.
pub const NO_ROUTE: u32 = u32::MAX;

/// One destination's route from one source under one metric. The tables keep it packed in
/// 24 bytes ([`Stored`]): a path's latency saturates at [`MAX_LATENCY_NS`] (about 39 hours),
/// and equal-cost next hops are kept for the first 2^29 of them.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct RouteEntry {
    /// Path latency in ns (node and link latencies, endpoints included).
    pub latency_ns: u64,
    /// Path bottleneck bandwidth in Gbit/s.
    pub bandwidth_gbps: f64,
    /// Dense index of the next node, [`NO_ROUTE`] when unreachable, the source itself for the
    /// source's own entry.
    pub next_hop: u32,
    /// Links on the path.
    pub hops: u16,
    /// Number of equal-cost next hops in the alternates array (0 or 2..=4, `next_hop` first).
    pub n_alternates: u16,
    /// Start of this entry's equal-cost next hops in the table's alternates array.
    pub alternates_start: u32,
}

/// The largest path latency the tables hold, ns (a longer one is stored as this).
pub const MAX_LATENCY_NS: u64 = (1 << 47) - 1;

/// A [`RouteEntry`] as the tables store it (24 bytes instead of 32: at 3 metrics per
/// destination, a process hosting one node of a 100,000-node fabric keeps 7.3 MB of entries
/// instead of 9.7 MB).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Stored {
    /// The latency in ns (upper 48 bits, signed: all ones when unreachable, so that an
    /// arithmetic shift gives back `u64::MAX`) and the hops (lower 16).
    latency_hops: u64,
    bandwidth_gbps: f64,
    next_hop: u32,
    /// Where the equal-cost next hops start in the alternates (upper 29 bits), and how many
    /// there are (lower 3 bits: 0, or 2 to [`MAX_FIRST_HOPS`]).
    alternates: u32,
}

const _: () = assert!(std::mem::size_of::<Stored>() == 24);
const _: () = assert!(MAX_FIRST_HOPS < 8);
/// Alternates start where an entry's equal-cost next hops are no longer kept.
const MAX_ALTERNATES_START: usize = 1 << 29;

impl Stored {
    fn pack(e: &RouteEntry) -> Stored {
        let latency: i64 = if e.latency_ns == u64::MAX {
            -1
        } else {
            e.latency_ns.min(MAX_LATENCY_NS) as i64
        };
        let (start, n) = (e.alternates_start, e.n_alternates.min(7) as u32);
        Stored {
            latency_hops: (latency << 16) as u64 | e.hops as u64,
            bandwidth_gbps: e.bandwidth_gbps,
            next_hop: e.next_hop,
            alternates: if n < 2 { 0 } else { start << 3 | n },
        }
    }

    #[inline]
    fn unpack(&self) -> RouteEntry {
        RouteEntry {
            latency_ns: ((self.latency_hops as i64) >> 16) as u64,
            bandwidth_gbps: self.bandwidth_gbps,
            next_hop: self.next_hop,
            hops: self.latency_hops as u16,
            n_alternates: (self.alternates & 7) as u16,
            alternates_start: self.alternates >> 3,
        }
    }

    #[inline]
    fn reachable(&self) -> bool {
        self.next_hop != NO_ROUTE
    }
}

impl RouteEntry {
    const UNREACHABLE: RouteEntry = RouteEntry {
        latency_ns: u64::MAX,
        bandwidth_gbps: 0.0,
        next_hop: NO_ROUTE,
        hops: 0,
        n_alternates: 0,
        alternates_start: 0,
    };

    /// Whether the destination is reachable.
    #[inline]
    pub fn reachable(&self) -> bool {
        self.next_hop != NO_ROUTE
    }
}

/// Routing tables for a set of sources over one [`RouteGraph`] snapshot.
#[derive(Debug)]
pub struct RoutingTables {
    graph: std::sync::Arc<RouteGraph>,
    generation: u64,
    n: usize,
    /// Slot of each node in `entries`, or `NO_ROUTE` when it is not a table source.
    slot_of: Vec<u32>,
    sources: Vec<u32>,
    entries: Vec<Stored>,
    /// Predecessors for the latency and hops metrics, `[slot][metric 0|1][dst]`.
    preds: Vec<u32>,
    alternates: Vec<u32>,
    ecmp: bool,
    build_ns: u64,
    /// When the build ended, Unix time in seconds (0: an empty table never built).
    built_at: f64,
    /// Answers of send admission, when computed ([`RoutingTables::with_admission`]).
    admission: Option<Admission>,
}

/// The table of one source: lookups are a single indexed load.
#[derive(Debug, Clone, Copy)]
pub struct SourceRoutes<'a> {
    entries: &'a [Stored],
    alternates: &'a [u32],
    n: usize,
}

impl<'a> SourceRoutes<'a> {
    /// The route to dense index `dst` under `metric`.
    ///
    /// Measured (benches/routing.rs, `lookup/source_view`): one load and one shift, about
    /// 0.1 ns more than indexing a plain array of 24-byte elements.
    #[inline]
    pub fn lookup(&self, dst: u32, metric: Metric) -> RouteEntry {
        self.stored(dst, metric).unpack()
    }

    #[inline]
    fn stored(&self, dst: u32, metric: Metric) -> &'a Stored {
        let i = metric as usize * self.n + dst as usize;
        debug_assert!(i < self.entries.len());
        &self.entries[i]
    }

    /// Every equal-cost next hop toward `dst` (the primary first); empty when unreachable.
    pub fn next_hops(&self, dst: u32, metric: Metric) -> &'a [u32] {
        let s = self.stored(dst, metric);
        let (start, n) = ((s.alternates >> 3) as usize, (s.alternates & 7) as usize);
        if !s.reachable() {
            &[]
        } else if n < 2 {
            std::slice::from_ref(&s.next_hop)
        } else {
            &self.alternates[start..start + n]
        }
    }

    /// The next hop for a flow: one of the equal-cost next hops chosen by `flow_hash`, so a
    /// flow keeps its path and different flows spread over equal-cost links.
    #[inline]
    pub fn next_hop_for_flow(&self, dst: u32, metric: Metric, flow_hash: u64) -> u32 {
        let s = self.stored(dst, metric);
        let n = s.alternates & 7;
        if n < 2 {
            return s.next_hop;
        }
        let k = (flow_hash % n as u64) as usize;
        self.alternates[(s.alternates >> 3) as usize + k]
    }
}

impl RoutingTables {
    /// Tables with no source (what the engine publishes before its first build).
    pub fn empty(graph: std::sync::Arc<RouteGraph>, generation: u64) -> RoutingTables {
        let n = graph.node_count();
        RoutingTables {
            graph,
            generation,
            n,
            slot_of: vec![NO_ROUTE; n],
            sources: Vec::new(),
            entries: Vec::new(),
            preds: Vec::new(),
            alternates: Vec::new(),
            ecmp: false,
            build_ns: 0,
            built_at: 0.0,
            admission: None,
        }
    }

    /// Computes the tables of `sources` (dense indices) over `graph`. With `ecmp`, entries
    /// keep their equal-cost next hops for flow hashing; without, only the primary one.
    pub fn build(
        graph: std::sync::Arc<RouteGraph>,
        sources: &[u32],
        generation: u64,
        ecmp: bool,
    ) -> RoutingTables {
        let started = Instant::now();
        let n = graph.node_count();
        let mut t = RoutingTables::empty(graph.clone(), generation);
        t.ecmp = ecmp;
        t.entries = vec![Stored::pack(&RouteEntry::UNREACHABLE); sources.len() * 3 * n];
        t.preds = vec![NONE; sources.len() * 2 * n];
        let mut search = Search::new(n);
        let mut thresholds: Vec<f64> = Vec::new();
        for (slot, &src) in sources.iter().enumerate() {
            if t.slot_of[src as usize] != NO_ROUTE {
                continue;
            }
            t.slot_of[src as usize] = slot as u32;
            t.sources.push(src);
            for (mi, order) in [(0usize, SearchOrder::Latency), (2, SearchOrder::Hops)] {
                search.run(&graph, src, order, 0.0, None);
                let base = (slot * 3 + mi) * n;
                t.fill(base, &search, src, |_| true);
                let pbase = (slot * 2 + mi / 2) * n;
                t.preds[pbase..pbase + n].copy_from_slice(&search.pred);
            }
            // Widest path, ties by latency: for each distinct widest bandwidth b, the
            // lowest-latency path using only links and nodes of at least b.
            search.widest(&graph, src, None);
            let widest = std::mem::take(&mut search.widest_gbps);
            thresholds.clear();
            thresholds.extend(widest.iter().copied().filter(|&w| w > 0.0));
            thresholds.sort_by(|a, b| b.total_cmp(a));
            thresholds.dedup();
            let base = (slot * 3 + Metric::Bandwidth as usize) * n;
            for &b in &thresholds {
                search.run(&graph, src, SearchOrder::Latency, b, None);
                t.fill(base, &search, src, |v| widest[v as usize] == b);
            }
            search.widest_gbps = widest;
        }
        t.build_ns = started.elapsed().as_nanos() as u64;
        t.built_at = crate::model::unix_now();
        t
    }

    fn fill(&mut self, base: usize, s: &Search, src: u32, take: impl Fn(u32) -> bool) {
        for v in 0..self.n as u32 {
            let vi = v as usize;
            if !s.reached(v) || !take(v) {
                continue;
            }
            let n_first = s.n_first[vi] as usize;
            let mut e = RouteEntry {
                latency_ns: s.latency_ns[vi],
                bandwidth_gbps: s.bandwidth_gbps[vi],
                next_hop: if v == src { src } else { s.first[vi][0] },
                hops: s.hops[vi].min(u16::MAX as u32) as u16,
                n_alternates: 0,
                alternates_start: 0,
            };
            if self.ecmp && n_first > 1 && self.alternates.len() < MAX_ALTERNATES_START {
                e.n_alternates = n_first as u16;
                e.alternates_start = self.alternates.len() as u32;
                self.alternates
                    .extend_from_slice(&s.first[vi][..n_first.min(MAX_FIRST_HOPS)]);
            }
            self.entries[base + vi] = Stored::pack(&e);
        }
    }

    /// These tables with the answers of send admission computed for them (see
    /// [`RoutingTables::admit`]), under quantum rules when `quantum_rules` (the engine's
    /// `enable_quantum_optimization`). Costs one pruned search per source and zone filter
    /// when a HIGH zone has members, and one per source and zone filter with quantum rules;
    /// nothing more otherwise (the latency entries are the answers).
    pub fn with_admission(mut self, quantum_rules: bool) -> RoutingTables {
        let started = Instant::now();
        self.admission = Some(Admission::build(&self, quantum_rules));
        self.build_ns += started.elapsed().as_nanos() as u64;
        self
    }

    pub(crate) fn admission(&self) -> Option<&Admission> {
        self.admission.as_ref()
    }

    /// Slot of a table source in the per-source arrays.
    #[inline]
    pub(crate) fn slot(&self, src: u32) -> Option<usize> {
        match self.slot_of.get(src as usize) {
            Some(&slot) if slot != NO_ROUTE => Some(slot as usize),
            _ => None,
        }
    }

    /// Number of source slots (some may be unused when a source was listed twice).
    pub(crate) fn slot_count(&self) -> usize {
        self.entries.len().checked_div(3 * self.n).unwrap_or(0)
    }

    /// The graph snapshot the tables were computed from.
    pub fn graph(&self) -> &std::sync::Arc<RouteGraph> {
        &self.graph
    }

    /// Change counter the tables reflect.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes the tables take (entries, predecessors, equal-cost next hops, the source
    /// index), not counting the graph they were built over.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        self.entries.capacity() * size_of::<Stored>()
            + self.preds.capacity() * size_of::<u32>()
            + self.alternates.capacity() * size_of::<u32>()
            + self.slot_of.capacity() * size_of::<u32>()
            + self.sources.capacity() * size_of::<u32>()
    }

    /// Dense indices of the table sources.
    pub fn sources(&self) -> &[u32] {
        &self.sources
    }

    /// How long the build took, ns.
    pub fn build_ns(&self) -> u64 {
        self.build_ns
    }

    /// When the build ended (Unix time, s; 0 for tables never built).
    pub fn built_at(&self) -> f64 {
        self.built_at
    }

    /// Total equal-cost alternates stored (for metrics).
    pub fn alternates_len(&self) -> usize {
        self.alternates.len()
    }

    /// The table of `src`, if it is a table source.
    #[inline]
    pub fn source(&self, src: u32) -> Option<SourceRoutes<'_>> {
        let slot = *self.slot_of.get(src as usize)?;
        if slot == NO_ROUTE {
            return None;
        }
        let start = slot as usize * 3 * self.n;
        Some(SourceRoutes {
            entries: &self.entries[start..start + 3 * self.n],
            alternates: &self.alternates,
            n: self.n,
        })
    }

    /// The route from `src` to `dst` under `metric`: two dependent loads.
    #[inline]
    pub fn lookup(&self, src: u32, dst: u32, metric: Metric) -> Option<RouteEntry> {
        let slot = *self.slot_of.get(src as usize)?;
        if slot == NO_ROUTE || dst as usize >= self.n {
            return None;
        }
        let i = (slot as usize * 3 + metric as usize) * self.n + dst as usize;
        debug_assert!(i < self.entries.len());
        Some(self.entries[i].unpack())
    }

    /// The entry of `dst` under `metric` in the table of the source in `slot`.
    #[inline]
    pub(crate) fn entry_at(&self, slot: usize, dst: u32, metric: Metric) -> RouteEntry {
        let i = (slot * 3 + metric as usize) * self.n + dst as usize;
        debug_assert!(i < self.entries.len());
        self.entries[i].unpack()
    }

    /// The node path of the latency or hops route from `src` to `dst` (dense indices).
    /// `None` for the bandwidth metric (its per-destination paths do not form a tree; the
    /// engine recomputes them) and for unreachable destinations.
    pub fn path(&self, src: u32, dst: u32, metric: Metric) -> Option<Vec<u32>> {
        let m = match metric {
            Metric::Latency => 0,
            Metric::Hops => 1,
            Metric::Bandwidth => return None,
        };
        if !self.lookup(src, dst, metric)?.reachable() {
            return None;
        }
        let slot = self.slot_of[src as usize] as usize;
        let preds = &self.preds[(slot * 2 + m) * self.n..(slot * 2 + m + 1) * self.n];
        let mut path = vec![dst];
        let mut v = dst;
        while preds[v as usize] != NONE {
            v = preds[v as usize];
            path.push(v);
        }
        path.reverse();
        debug_assert_eq!(path[0], src);
        Some(path)
    }

    /// Route load of the latency tables: how many (source, destination) routes cross each
    /// link of the graph, and how many each node carries as an intermediate.
    ///
    /// When the tables keep equal-cost next hops and cover every node, a route's unit of
    /// load splits evenly at every hop among that hop's equal-cost next hops, as flow hashing
    /// spreads traffic; otherwise each route follows its primary path.
    pub fn route_load(&self) -> RouteLoad {
        let g = &self.graph;
        let mut out = RouteLoad {
            links: vec![0.0; g.link_count()],
            transit: vec![0.0; self.n],
            routes: 0,
        };
        let link_of: std::collections::HashMap<(u32, u32), usize> =
            g.links.iter().enumerate().map(|(i, &ab)| (ab, i)).collect();
        let add_link = |out: &mut RouteLoad, u: u32, v: u32, w: f64| {
            if let Some(&li) = link_of.get(&(u.min(v), u.max(v))) {
                out.links[li] += w;
            }
        };
        if self.ecmp && self.sources.len() == self.n {
            // Level by level (hops remaining strictly falls along next hops), merging the
            // weight that reaches a node by several equal-cost paths.
            let mut level: Vec<(u32, f64)> = Vec::new();
            let mut next: std::collections::BTreeMap<u32, f64> = Default::default();
            for &src in &self.sources {
                for d in 0..self.n as u32 {
                    if d == src
                        || !self
                            .lookup(src, d, Metric::Latency)
                            .is_some_and(|e| e.reachable())
                    {
                        continue;
                    }
                    out.routes += 1;
                    level.clear();
                    level.push((src, 1.0));
                    while !level.is_empty() {
                        next.clear();
                        for &(u, w) in &level {
                            if u != src {
                                out.transit[u as usize] += w;
                            }
                            let view = self.source(u).expect("every node is a source");
                            let hops = view.next_hops(d, Metric::Latency);
                            let share = w / hops.len() as f64;
                            for &h in hops {
                                add_link(&mut out, u, h, share);
                                if h != d {
                                    *next.entry(h).or_default() += share;
                                }
                            }
                        }
                        level.clear();
                        level.extend(next.iter().map(|(&k, &v)| (k, v)));
                    }
                }
            }
            return out;
        }
        let mut subtree = vec![0u64; self.n];
        for (slot, &src) in self.sources.iter().enumerate() {
            let preds = &self.preds[slot * 2 * self.n..(slot * 2 + 1) * self.n];
            let lat = &self.entries[slot * 3 * self.n..(slot * 3 + 1) * self.n];
            // Children before parents: keys (latency, hops) strictly grow along tree edges.
            let mut order: Vec<u32> = (0..self.n as u32)
                .filter(|&v| v != src && lat[v as usize].reachable())
                .collect();
            // (latency, hops) in the order of their packing.
            order.sort_by_key(|&v| std::cmp::Reverse(lat[v as usize].latency_hops));
            subtree.iter_mut().for_each(|c| *c = 0);
            for &v in &order {
                let vi = v as usize;
                subtree[vi] += 1;
                out.transit[vi] += (subtree[vi] - 1) as f64;
                out.routes += 1;
                let p = preds[vi];
                subtree[p as usize] += subtree[vi];
                add_link(&mut out, p, v, subtree[vi] as f64);
            }
        }
        out
    }
}

/// Route load derived from the latency tables.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteLoad {
    /// Routes crossing each link (indexed like the graph's links); fractional when routes
    /// split over equal-cost paths.
    pub links: Vec<f64>,
    /// Routes each node forwards as an intermediate.
    pub transit: Vec<f64>,
    /// Routes counted (reachable source/destination pairs, source != destination).
    pub routes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_pack_into_24_bytes_and_come_back_whole() {
        let e = RouteEntry {
            latency_ns: 123_456_789,
            bandwidth_gbps: 12.3,
            next_hop: 7,
            hops: 65_535,
            n_alternates: 4,
            alternates_start: (1 << 29) - 1,
        };
        assert_eq!(Stored::pack(&e).unpack(), e);
        let plain = RouteEntry {
            n_alternates: 0,
            alternates_start: 0,
            ..e
        };
        assert_eq!(Stored::pack(&plain).unpack(), plain);
        assert_eq!(
            Stored::pack(&RouteEntry::UNREACHABLE).unpack(),
            RouteEntry::UNREACHABLE
        );
        // A latency beyond what the tables hold saturates; it never reads as unreachable.
        let far = RouteEntry {
            latency_ns: u64::MAX - 1,
            ..e
        };
        assert_eq!(Stored::pack(&far).unpack().latency_ns, MAX_LATENCY_NS);
    }
}
