//! Exact single-source searches over a [`RouteGraph`].
//!
//! Path latency is `node(src) + Σ (link + node(next))`, so every node on the path counts,
//! endpoints included; path bandwidth is the minimum over its links and nodes. Latencies are
//! non-negative, so zero-latency cycles exist; the lexicographic keys below include the hop
//! count, which makes every key strictly grow along a path and keeps hop-by-hop forwarding
//! loop-free.

use super::graph::RouteGraph;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Most equal-cost first hops kept per destination.
pub const MAX_FIRST_HOPS: usize = 4;

/// Marks an unreachable node in `pred` and in first hops.
pub(crate) const NONE: u32 = u32::MAX;

/// Which lexicographic key a search minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchOrder {
    /// (latency, hops).
    Latency,
    /// (hops, latency).
    Hops,
}

/// Reusable state of one search; vectors are indexed by dense node index.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Path latency, `u64::MAX` when unreachable.
    pub latency_ns: Vec<u64>,
    /// Links on the path.
    pub hops: Vec<u32>,
    /// Bottleneck bandwidth of the path found (not maximised unless by [`Search::widest`]).
    pub bandwidth_gbps: Vec<f64>,
    /// Predecessor on the path, `u32::MAX` for the source and unreachable nodes.
    pub pred: Vec<u32>,
    /// First hops of all equal-cost paths (up to [`MAX_FIRST_HOPS`]); `[0]` is the one of
    /// the `pred` path.
    pub first: Vec<[u32; MAX_FIRST_HOPS]>,
    /// How many entries of `first` are valid.
    pub n_first: Vec<u8>,
    /// Widest-path bandwidth from the last [`Search::widest`], 0 when unreachable.
    pub widest_gbps: Vec<f64>,
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    wide_heap: BinaryHeap<(u64, u32)>,
    done: Vec<bool>,
}

impl Search {
    /// A search sized for `n` nodes.
    pub fn new(n: usize) -> Search {
        let mut s = Search::default();
        s.resize(n);
        s
    }

    fn resize(&mut self, n: usize) {
        self.latency_ns.clear();
        self.latency_ns.resize(n, u64::MAX);
        self.hops.clear();
        self.hops.resize(n, u32::MAX);
        self.bandwidth_gbps.clear();
        self.bandwidth_gbps.resize(n, 0.0);
        self.pred.clear();
        self.pred.resize(n, NONE);
        self.first.clear();
        self.first.resize(n, [NONE; MAX_FIRST_HOPS]);
        self.n_first.clear();
        self.n_first.resize(n, 0);
        self.done.clear();
        self.done.resize(n, false);
    }

    /// Whether `v` was reached by the last [`Search::run`].
    pub fn reached(&self, v: u32) -> bool {
        self.latency_ns[v as usize] != u64::MAX
    }

    /// Lexicographic shortest paths from `src` by `order`, over links and nodes of at least
    /// `min_bandwidth_gbps`, with intermediates restricted to `allowed` (endpoints are always
    /// allowed; the source itself must meet the bandwidth floor).
    pub fn run(
        &mut self,
        g: &RouteGraph,
        src: u32,
        order: SearchOrder,
        min_bandwidth_gbps: f64,
        allowed: Option<&[bool]>,
    ) {
        self.resize(g.node_count());
        let s = src as usize;
        if !g.up[s] || g.node_bandwidth_gbps[s] < min_bandwidth_gbps {
            return;
        }
        let key = |lat: u64, hops: u32| match order {
            SearchOrder::Latency => (lat, hops as u64),
            SearchOrder::Hops => (hops as u64, lat),
        };
        self.latency_ns[s] = g.node_latency_ns[s];
        self.hops[s] = 0;
        self.bandwidth_gbps[s] = g.node_bandwidth_gbps[s];
        self.heap.clear();
        self.heap.push(Reverse((
            key(self.latency_ns[s], 0).0,
            key(self.latency_ns[s], 0).1,
            src,
        )));
        while let Some(Reverse((k1, k2, u))) = self.heap.pop() {
            let ui = u as usize;
            if self.done[ui] || (k1, k2) != key(self.latency_ns[ui], self.hops[ui]) {
                continue;
            }
            self.done[ui] = true;
            if u != src && allowed.is_some_and(|a| !a[ui]) {
                continue;
            }
            let (lat_u, hops_u, bw_u) =
                (self.latency_ns[ui], self.hops[ui], self.bandwidth_gbps[ui]);
            for arc in g.arcs(u) {
                let v = arc.to as usize;
                if self.done[v]
                    || arc.bandwidth_gbps < min_bandwidth_gbps
                    || g.node_bandwidth_gbps[v] < min_bandwidth_gbps
                {
                    continue;
                }
                let lat = lat_u
                    .saturating_add(arc.latency_ns)
                    .saturating_add(g.node_latency_ns[v]);
                let hops = hops_u + 1;
                let new = key(lat, hops);
                let old = key(self.latency_ns[v], self.hops[v]);
                if self.latency_ns[v] == u64::MAX || new < old {
                    self.latency_ns[v] = lat;
                    self.hops[v] = hops;
                    self.bandwidth_gbps[v] =
                        bw_u.min(arc.bandwidth_gbps).min(g.node_bandwidth_gbps[v]);
                    self.pred[v] = u;
                    if u == src {
                        self.first[v] = [arc.to, NONE, NONE, NONE];
                        self.n_first[v] = 1;
                    } else {
                        self.first[v] = self.first[ui];
                        self.n_first[v] = self.n_first[ui];
                    }
                    self.heap.push(Reverse((new.0, new.1, arc.to)));
                } else if new == old {
                    // Equal cost: merge the first hops of this path into v's set.
                    let (from, count): ([u32; MAX_FIRST_HOPS], usize) = if u == src {
                        ([arc.to, NONE, NONE, NONE], 1)
                    } else {
                        (self.first[ui], self.n_first[ui] as usize)
                    };
                    for &h in &from[..count] {
                        let n = self.n_first[v] as usize;
                        if n < MAX_FIRST_HOPS && !self.first[v][..n].contains(&h) {
                            self.first[v][n] = h;
                            self.n_first[v] += 1;
                        }
                    }
                }
            }
        }
    }

    /// Widest (maximin bandwidth) paths from `src` into `widest_gbps`, with intermediates
    /// restricted to `allowed`.
    pub fn widest(&mut self, g: &RouteGraph, src: u32, allowed: Option<&[bool]>) {
        let n = g.node_count();
        self.widest_gbps.clear();
        self.widest_gbps.resize(n, 0.0);
        self.done.clear();
        self.done.resize(n, false);
        let s = src as usize;
        if !g.up[s] {
            return;
        }
        // Positive finite f64 order like their bit patterns.
        self.widest_gbps[s] = g.node_bandwidth_gbps[s];
        self.wide_heap.clear();
        self.wide_heap.push((self.widest_gbps[s].to_bits(), src));
        while let Some((bits, u)) = self.wide_heap.pop() {
            let ui = u as usize;
            if self.done[ui] || bits != self.widest_gbps[ui].to_bits() {
                continue;
            }
            self.done[ui] = true;
            if u != src && allowed.is_some_and(|a| !a[ui]) {
                continue;
            }
            let w_u = self.widest_gbps[ui];
            for arc in g.arcs(u) {
                let v = arc.to as usize;
                let w = w_u.min(arc.bandwidth_gbps).min(g.node_bandwidth_gbps[v]);
                if !self.done[v] && w > self.widest_gbps[v] {
                    self.widest_gbps[v] = w;
                    self.wide_heap.push((w.to_bits(), arc.to));
                }
            }
        }
    }

    /// The dense path from the source of the last [`Search::run`] to `dst`.
    pub fn path(&self, dst: u32) -> Option<Vec<u32>> {
        if !self.reached(dst) {
            return None;
        }
        let mut path = vec![dst];
        let mut v = dst;
        while self.pred[v as usize] != NONE {
            v = self.pred[v as usize];
            path.push(v);
        }
        path.reverse();
        Some(path)
    }
}
