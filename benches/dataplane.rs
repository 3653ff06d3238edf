//! Round trips between two threads pinned to two CPUs, each next to the hardware floor
//! measured in the same run (a cache-line bounce: one atomic word written by each side in
//! turn): the raw ring, then the protocol's `send_data` (answered by a handler on the peer's
//! engine thread) and `post`/`recv`, between two protocol instances that reach each other
//! through shared-memory files exactly as two processes do. Each iteration is one round trip;
//! one-way latency is half of it.

use criterion::{criterion_group, criterion_main, Criterion};
use hyperfabric::fabric::{HyperFabricProtocol, IdleStrategy, ProtocolConfig, SendOptions};
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::ring::{split, Consumer, Producer, Region, SlotHeader};
use hyperfabric::sys::{available_cpus, pin_current_thread};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

fn pin(cpu: usize) {
    if available_cpus() >= 2 {
        pin_current_thread(cpu).unwrap();
    }
}

/// The floor: a cache line handed back and forth.
fn cache_line_bounce(c: &mut Criterion) {
    let line = Arc::new(hyperfabric::sync::CachePadded(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let (l, s) = (line.clone(), stop.clone());
    pin(0);
    let t = std::thread::spawn(move || {
        pin(1);
        let mut expect = 1u64;
        while !s.load(Ordering::Relaxed) {
            if l.0.load(Ordering::Acquire) == expect {
                l.0.store(expect + 1, Ordering::Release);
                expect += 2;
            }
        }
    });
    let mut v = 0u64;
    c.bench_function("floor/cache_line_round_trip", |b| {
        b.iter(|| {
            line.0.store(v + 1, Ordering::Release);
            while line.0.load(Ordering::Acquire) != v + 2 {
                std::hint::spin_loop();
            }
            v += 2;
        })
    });
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
}

fn ring_ping_pong(c: &mut Criterion) {
    for size in [8usize, 64, 1024] {
        let (mut to_p, mut to_c): (Producer<Region>, Consumer<Region>) =
            split(Arc::new(Region::heap(256).unwrap()));
        let (mut back_p, mut back_c) = split(Arc::new(Region::heap(256).unwrap()));
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        pin(0);
        let echo = std::thread::spawn(move || {
            pin(1);
            let payload = [0u8; 1024];
            while !s.load(Ordering::Relaxed) {
                if let Ok(Some(h)) = to_c.try_pop(|h, d| {
                    black_box(d);
                    h
                }) {
                    while back_p.try_push(h, &[&payload[..size]]).is_err() {
                        std::hint::spin_loop();
                    }
                }
            }
        });
        let payload = vec![7u8; size];
        c.bench_function(&format!("ring/round_trip_{size}B"), |b| {
            b.iter(|| {
                while to_p
                    .try_push(
                        SlotHeader {
                            kind: 1,
                            ..Default::default()
                        },
                        &[&payload],
                    )
                    .is_err()
                {
                    std::hint::spin_loop();
                }
                loop {
                    if let Ok(Some(_)) = back_c.try_pop(|_, d| black_box(d.len())) {
                        break;
                    }
                    std::hint::spin_loop();
                }
            })
        });
        stop.store(true, Ordering::Relaxed);
        echo.join().unwrap();
    }
}

fn protocol(fabric: &str, node: &str, core: Option<usize>) -> HyperFabricProtocol {
    let p = HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        idle: IdleStrategy::Spin,
        engine_core: core,
        ..Default::default()
    })
    .unwrap();
    p.register_node(NodeSignature::new(node, HardwareType::CpuServer, 100.0, 0).unwrap())
        .unwrap();
    p
}

fn protocol_round_trips(c: &mut Criterion) {
    let fabric = format!("bench-dataplane-{}", std::process::id());
    let opts = SendOptions::default();
    pin(0);
    // send_data: the peer's pinned engine thread runs the handler.
    {
        let a = protocol(&fabric, "a", None);
        let b = protocol(&fabric, "b", Some(1));
        // The answer is written into the engine's reply buffer (no Vec per request).
        b.on_request("b", |m, reply| {
            reply.write(&m.data);
            Ok(())
        })
        .unwrap();
        b.start_background_services().unwrap();
        for size in [8usize, 64, 1024] {
            let payload = vec![7u8; size];
            c.bench_function(&format!("send_data/round_trip_{size}B"), |bn| {
                bn.iter(|| black_box(a.send_data("a", "b", &payload, &opts).unwrap()))
            });
        }
    }
    // post/recv: a thread pinned to the other core receives and posts back.
    {
        let a = protocol(&fabric, "a", None);
        let b = Arc::new(protocol(&fabric, "b", None));
        let stop = Arc::new(AtomicBool::new(false));
        let (b2, s) = (b.clone(), stop.clone());
        let echo = std::thread::spawn(move || {
            pin(1);
            let o = SendOptions::default();
            while !s.load(Ordering::Relaxed) {
                if let Ok(m) = b2.recv("b", std::time::Duration::from_millis(10)) {
                    b2.post("b", &m.source, &m.data, &o).unwrap();
                }
            }
        });
        for size in [8usize, 64, 1024] {
            let payload = vec![7u8; size];
            c.bench_function(&format!("post_recv/round_trip_{size}B"), |bn| {
                bn.iter(|| {
                    a.post("a", "b", &payload, &opts).unwrap();
                    black_box(a.recv("a", opts.timeout).unwrap())
                })
            });
        }
        stop.store(true, Ordering::Relaxed);
        echo.join().unwrap();
    }
    // Endpoints: the same ping-pong through a resolved pair with a ring of its own each way.
    {
        let a = protocol(&fabric, "a", None);
        let b = Arc::new(protocol(&fabric, "b", None));
        let stop = Arc::new(AtomicBool::new(false));
        let (b2, s) = (b.clone(), stop.clone());
        let echo = std::thread::spawn(move || {
            pin(1);
            let mut back = b2.endpoint("b", "a").unwrap();
            while !s.load(Ordering::Relaxed) {
                if let Ok(m) = b2.recv("b", std::time::Duration::from_millis(10)) {
                    back.post(&m.data).unwrap();
                }
            }
        });
        let mut ep = a.endpoint("a", "b").unwrap();
        for size in [8usize, 64, 1024] {
            let payload = vec![7u8; size];
            c.bench_function(&format!("endpoint_recv/round_trip_{size}B"), |bn| {
                bn.iter(|| {
                    ep.post(&payload).unwrap();
                    black_box(a.recv("a", opts.timeout).unwrap())
                })
            });
        }
        stop.store(true, Ordering::Relaxed);
        echo.join().unwrap();
    }
    let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&fabric));
}

/// `post`/`recv` round trips from a to b through a forwarder f (hosted with b: b's receiving
/// thread's polls forward), with fault tolerance on (sequence numbers, a kept copy of each
/// frame, acknowledgements) and off (best effort): the cost of end-to-end delivery on a
/// forwarded path, in one run.
fn forwarded_round_trips(c: &mut Criterion) {
    pin(0);
    for ft in [true, false] {
        let fabric = format!("bench-forwarded-{}-{ft}", std::process::id());
        let config = |fabric: &str| {
            let mut config = ProtocolConfig {
                fabric_name: Some(fabric.into()),
                idle: IdleStrategy::Spin,
                links: vec![
                    hyperfabric::LinkSpec::new("a", "f").latency_ns(100),
                    hyperfabric::LinkSpec::new("f", "b").latency_ns(100),
                ],
                ..Default::default()
            };
            config.options.enable_fault_tolerance = ft;
            HyperFabricProtocol::with_config(config).unwrap()
        };
        let sig = |id: &str| NodeSignature::new(id, HardwareType::CpuServer, 100.0, 0).unwrap();
        let a = config(&fabric);
        a.register_node(sig("a")).unwrap();
        let b = Arc::new(config(&fabric));
        b.register_node(sig("f")).unwrap();
        b.register_node(sig("b")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (b2, s) = (b.clone(), stop.clone());
        let echo = std::thread::spawn(move || {
            pin(1);
            let o = SendOptions::default();
            while !s.load(Ordering::Relaxed) {
                if let Ok(m) = b2.recv("b", std::time::Duration::from_millis(10)) {
                    b2.post("b", &m.source, &m.data, &o).unwrap();
                }
            }
        });
        let opts = SendOptions::default();
        let name = if ft { "ft_on" } else { "ft_off" };
        for size in [8usize, 1024] {
            let payload = vec![7u8; size];
            c.bench_function(&format!("forwarded_post_recv/{name}_{size}B"), |bn| {
                bn.iter(|| {
                    a.post("a", "b", &payload, &opts).unwrap();
                    black_box(a.recv("a", opts.timeout).unwrap())
                })
            });
        }
        stop.store(true, Ordering::Relaxed);
        echo.join().unwrap();
        drop((a, b));
        let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&fabric));
    }
}

criterion_group!(
    benches,
    cache_line_bounce,
    ring_ping_pong,
    protocol_round_trips,
    forwarded_round_trips,
    cache_line_bounce
);
criterion_main!(benches);
