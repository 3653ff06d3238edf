//! Routing benchmarks: table lookup next to a plain array index of the same size, full table
//! rebuilds (1,024-host k=16 fat-tree, all sources; one source of a 10,000-node torus),
//! lookups while the route service rebuilds, and the per-message send check with and without
//! a latency constraint.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use hyperfabric::routing::{
    CostModel, Metric, RouteGraph, RoutingEngine, RoutingOptions, RoutingTables, SendRequirements,
};
use hyperfabric::topology::generate::{self, Generated};
use hyperfabric::topology::Topology;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn topology(g: &Generated) -> Topology {
    let mut t = Topology::new();
    for n in &g.nodes {
        t.add_node(n.clone()).unwrap();
    }
    for l in &g.links {
        t.add_link(l.clone()).unwrap();
    }
    t
}

/// Pseudo-random (src, dst) pairs, fixed seed.
fn pairs(n: usize, count: usize) -> Vec<(u32, u32)> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % n as u64) as u32, ((x >> 32) % n as u64) as u32)
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let t = topology(&generate::fat_tree(16, 100.0));
    let graph = Arc::new(RouteGraph::build(&t, CostModel::Static));
    let n = graph.node_count();
    let all: Vec<u32> = (0..n as u32).collect();
    let tables = RoutingTables::build(graph, &all, 1, true);
    // Baseline: a plain array of entries with the same footprint (3 metrics per source, 24
    // bytes each, as the tables store them).
    let plain = vec![[1u64, 0, 0]; n * n * 3];
    let ps = pairs(n, 4096);
    let mut g = c.benchmark_group("lookup");
    g.throughput(criterion::Throughput::Elements(ps.len() as u64));
    g.bench_function("plain_array_index", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for &(s, d) in &ps {
                acc = acc.wrapping_add(plain[(s as usize * 3) * n + d as usize][0]);
            }
            black_box(acc)
        })
    });
    g.bench_function("tables_lookup", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for &(s, d) in &ps {
                acc = acc.wrapping_add(tables.lookup(s, d, Metric::Latency).unwrap().latency_ns);
            }
            black_box(acc)
        })
    });
    let view = tables.source(0).unwrap();
    g.bench_function("source_view", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for &(_, d) in &ps {
                acc = acc.wrapping_add(view.lookup(d, Metric::Latency).latency_ns);
            }
            black_box(acc)
        })
    });
    g.bench_function("plain_array_index_one_source", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for &(_, d) in &ps {
                acc = acc.wrapping_add(plain[d as usize][0]);
            }
            black_box(acc)
        })
    });
    g.finish();
}

fn rebuild(c: &mut Criterion) {
    let mut g = c.benchmark_group("rebuild");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    let fat = topology(&generate::fat_tree(16, 100.0));
    g.bench_function("fat_tree_k16_1024_hosts_all_sources", |b| {
        b.iter(|| {
            let graph = Arc::new(RouteGraph::build(&fat, CostModel::Static));
            let all: Vec<u32> = (0..graph.node_count() as u32).collect();
            black_box(RoutingTables::build(graph, &all, 1, true))
        })
    });
    let torus = topology(&generate::torus(100, 100, 100.0));
    g.bench_function("torus_10000_nodes_one_source", |b| {
        b.iter_batched(
            || Arc::new(RouteGraph::build(&torus, CostModel::Static)),
            |graph| black_box(RoutingTables::build(graph, &[0], 1, true)),
            BatchSize::LargeInput,
        )
    });
    // A process's tables on a fabric of ~100,000 nodes: a dragonfly of 129 groups of 16
    // routers with 48 hosts each (101,136 nodes), tables of the hosted nodes only.
    let big = topology(&generate::dragonfly(16, 48, 8, 100.0));
    let graph = Arc::new(RouteGraph::build(&big, CostModel::Static));
    let hosted: Vec<u32> = (0..4)
        .map(|i| graph.node_count() as u32 - 1 - i * 997)
        .collect();
    for sources in [&hosted[..1], &hosted[..]] {
        let t = RoutingTables::build(graph.clone(), sources, 1, true);
        eprintln!(
            "dragonfly {} nodes, {} hosted: tables {:.1} MB",
            graph.node_count(),
            sources.len(),
            t.memory_bytes() as f64 / 1e6
        );
        let name = format!("dragonfly_101k_nodes_{}_hosted", sources.len());
        g.bench_function(name, |b| {
            b.iter(|| black_box(RoutingTables::build(graph.clone(), sources, 1, true)))
        });
    }
    g.finish();
}

/// Lookups through the engine (atomic snapshot load + lookup) while the route service
/// rebuilds the k=16 fat-tree's tables back to back.
fn lookup_during_rebuild(c: &mut Criterion) {
    let g = generate::fat_tree(16, 100.0);
    // With two CPUs or more: the route service (spawned by the engine, inheriting this
    // thread's affinity) and the thread that triggers rebuilds share CPU 1; lookups run on
    // CPU 0, so a stall seen there is not the scheduler sharing a core.
    let pinned = hyperfabric::sys::available_cpus() >= 2;
    if pinned {
        hyperfabric::sys::pin_current_thread(1).unwrap();
    }
    let engine = RoutingEngine::new(RoutingOptions::default());
    if pinned {
        hyperfabric::sys::pin_current_thread(0).unwrap();
    }
    engine
        .update_topology(|t| {
            for n in &g.nodes {
                t.add_node(n.clone())?;
            }
            for l in &g.links {
                t.add_link(l.clone())?;
            }
            Ok(())
        })
        .unwrap();
    let n = engine.current_tables().unwrap().graph().node_count();
    let ps = pairs(n, 4096);
    let one = |e: &RoutingEngine| {
        let t = e.tables();
        let mut acc = 0u64;
        for &(s, d) in &ps {
            acc = acc.wrapping_add(t.lookup(s, d, Metric::Latency).map_or(0, |x| x.latency_ns));
        }
        acc
    };
    println!(
        "lookup_during_rebuild: batches of {} lookups over 5 s, no rebuild: {}",
        ps.len(),
        batch_stats(&|| one(&engine))
    );
    let mut grp = c.benchmark_group("lookup_during_rebuild");
    grp.throughput(criterion::Throughput::Elements(ps.len() as u64));
    grp.bench_function("idle", |b| b.iter(|| black_box(one(&engine))));

    let stop = AtomicBool::new(false);
    let rebuilds = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            if pinned {
                hyperfabric::sys::pin_current_thread(1).unwrap();
            }
            let mut up = false;
            while !stop.load(Ordering::Relaxed) {
                engine
                    .update_topology(|t| t.set_link_state("host-0-0-0", "edge-0-0", up))
                    .unwrap();
                up = !up;
                engine.current_tables().unwrap();
                rebuilds.fetch_add(1, Ordering::Relaxed);
            }
        });
        grp.bench_function("rebuilding", |b| b.iter(|| black_box(one(&engine))));
        // Worst single batch while rebuilds run: a lock would show as a stall of a whole rebuild.
        let before = rebuilds.load(Ordering::Relaxed);
        let stats = batch_stats(&|| one(&engine));
        let done = rebuilds.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        println!(
            "lookup_during_rebuild: batches of {} lookups over 5 s, {done} rebuilds ({:.0} ms each): {stats}",
            ps.len(),
            5000.0 / done.max(1) as f64,
        );
    });
    grp.finish();
}

/// The per-message send check on the k=16 fat-tree (1,024 hosts), over 1,024 random host
/// pairs: without a constraint and with one every pair meets (so both admit), by node id
/// (`RoutingEngine::check_send`, what the protocol calls) and by dense index
/// (`RoutingTables::admit`); a refused send (which formats its error); and, for scale, the
/// route search a constrained check used to run per message.
fn send_check(c: &mut Criterion) {
    let g = generate::fat_tree(16, 100.0);
    let engine = RoutingEngine::new(RoutingOptions::default());
    engine
        .update_topology(|t| {
            for n in &g.nodes {
                t.add_node(n.clone())?;
            }
            for l in &g.links {
                t.add_link(l.clone())?;
            }
            Ok(())
        })
        .unwrap();
    let tables = engine.current_tables().unwrap();
    let graph = tables.graph().clone();
    let hosts: Vec<&str> = g
        .nodes
        .iter()
        .map(|n| n.node_id.as_str())
        .filter(|id| id.starts_with("host-"))
        .collect();
    let ps: Vec<(&str, &str)> = pairs(hosts.len(), 1024)
        .into_iter()
        .map(|(a, b)| (hosts[a as usize], hosts[b as usize]))
        .collect();
    let dense: Vec<(u32, u32)> = ps
        .iter()
        .map(|(s, d)| (graph.index_of(s).unwrap(), graph.index_of(d).unwrap()))
        .collect();
    // Host to host across pods is 1,800 ns: every pair meets 4 µs, and none meets 500 ns.
    let free = SendRequirements::default();
    let bound = SendRequirements {
        latency_constraint_ns: Some(4_000),
        ..free
    };
    let strict = SendRequirements {
        latency_constraint_ns: Some(500),
        ..free
    };
    for req in [free, bound] {
        assert!(ps
            .iter()
            .all(|(s, d)| engine.check_send(s, d, &req).is_ok()));
    }
    let by_id = |req: &SendRequirements| {
        let req = black_box(req);
        let mut acc = 0u64;
        for &(s, d) in &ps {
            acc = acc.wrapping_add(engine.check_send(s, d, req).map_or(1, |a| a.latency_ns));
        }
        acc
    };
    let by_index = |req: &SendRequirements| {
        let req = black_box(req);
        let mut acc = 0u64;
        for &(s, d) in &dense {
            acc = acc.wrapping_add(match tables.admit(s, d, req) {
                Some(Ok(a)) => a.latency_ns,
                _ => 1,
            });
        }
        acc
    };
    let mut grp = c.benchmark_group("send_check");
    grp.throughput(criterion::Throughput::Elements(ps.len() as u64));
    grp.bench_function("unconstrained", |b| b.iter(|| black_box(by_id(&free))));
    grp.bench_function("constrained", |b| b.iter(|| black_box(by_id(&bound))));
    grp.bench_function("unconstrained_by_index", |b| {
        b.iter(|| black_box(by_index(&free)))
    });
    grp.bench_function("constrained_by_index", |b| {
        b.iter(|| black_box(by_index(&bound)))
    });
    grp.bench_function("constrained_refused", |b| {
        b.iter(|| black_box(by_id(&strict)))
    });
    let few = &ps[..16];
    grp.throughput(criterion::Throughput::Elements(few.len() as u64));
    grp.bench_function("route_search_per_message", |b| {
        b.iter(|| {
            for &(s, d) in few {
                black_box(engine.route(&bound.request(s, d)).unwrap().latency_ns);
            }
        })
    });
    grp.finish();
}

/// Runs `f` back to back for 5 s; quantiles of its duration and how many runs exceeded 1 ms.
fn batch_stats(f: &dyn Fn() -> u64) -> String {
    let mut batches = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let t0 = Instant::now();
        black_box(f());
        batches.push(t0.elapsed());
    }
    batches.sort();
    let q = |p: f64| batches[((batches.len() - 1) as f64 * p) as usize];
    format!(
        "p50 {:?} p99 {:?} p99.9 {:?} max {:?} ({} runs, {} over 1 ms)",
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0),
        batches.len(),
        batches
            .iter()
            .filter(|b| **b > Duration::from_millis(1))
            .count()
    )
}

criterion_group!(benches, lookup, rebuild, lookup_during_rebuild, send_check);
criterion_main!(benches);
