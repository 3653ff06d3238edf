//! Ring ping-pong between two threads pinned to two CPUs, next to the hardware floor measured
//! in the same run: a cache-line bounce (one atomic word written by each side in turn).
//! Each iteration is one round trip; one-way latency is half of it.

use criterion::{criterion_group, criterion_main, Criterion};
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
                if let Some(h) = to_c.try_pop(|h, d| {
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
                    if back_c.try_pop(|_, d| black_box(d.len())).is_some() {
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

criterion_group!(
    benches,
    cache_line_bounce,
    ring_ping_pong,
    cache_line_bounce
);
criterion_main!(benches);
