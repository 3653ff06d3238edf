//! Measurement helpers for `hyperfabric bench`: the hardware floor (a cache line bounced
//! between two pinned threads, memcpy bandwidth), quantiles, and the placement verdict.
//!
//! On 2-vCPU virtual machines the two vCPUs drift between a near and a far placement on the
//! host, which changes small-message latency 3-5x; every result therefore carries the floor
//! measured right before and right after it, and is compared with that floor only.

use hyperfabric::sync::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One-way floor below which a placement counts as near, ns.
pub const NEAR_FLOOR_NS: f64 = 100.0;

/// Placement of the two cores during a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Both floors near.
    Near,
    /// Both floors far.
    Far,
    /// The placement changed during the measurement.
    Mixed,
}

/// The verdict from the floors measured before and after.
pub fn placement(before_ns: f64, after_ns: f64) -> Placement {
    match (before_ns < NEAR_FLOOR_NS, after_ns < NEAR_FLOOR_NS) {
        (true, true) => Placement::Near,
        (false, false) => Placement::Far,
        _ => Placement::Mixed,
    }
}

/// The `q` quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Median one-way latency of a cache line bounced between `core_a` (this thread is moved
/// there) and `core_b`: `trips` round trips in batches of 64, median batch / 64 / 2.
pub fn cache_line_floor_ns(core_a: usize, core_b: usize, trips: usize) -> hyperfabric::Result<f64> {
    hyperfabric::sys::pin_current_thread(core_a)?;
    let line = Arc::new(CachePadded(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let (l, s) = (line.clone(), stop.clone());
    let echo = std::thread::spawn(move || -> hyperfabric::Result<()> {
        hyperfabric::sys::pin_current_thread(core_b)?;
        let mut expect = 1u64;
        while !s.load(Ordering::Relaxed) {
            if l.0.load(Ordering::Acquire) == expect {
                l.0.store(expect + 1, Ordering::Release);
                expect += 2;
            }
        }
        Ok(())
    });
    const BATCH: usize = 64;
    let mut v = 0u64;
    let mut batches = Vec::with_capacity(trips / BATCH + 1);
    for b in 0..(trips / BATCH).max(4) + 4 {
        let t0 = Instant::now();
        for _ in 0..BATCH {
            line.0.store(v + 1, Ordering::Release);
            while line.0.load(Ordering::Acquire) != v + 2 {
                std::hint::spin_loop();
            }
            v += 2;
        }
        if b >= 4 {
            batches.push(t0.elapsed().as_nanos() as f64 / BATCH as f64 / 2.0);
        }
    }
    stop.store(true, Ordering::Relaxed);
    echo.join()
        .map_err(|_| hyperfabric::Error::InvalidArgument("floor thread panicked".into()))??;
    batches.sort_by(f64::total_cmp);
    Ok(quantile(&batches, 0.5))
}

/// Cheap timestamps for per-iteration latencies: a clock read through the vDSO costs about
/// as much as a small message, so on x86_64 with an invariant TSC the time-stamp counter is
/// read instead (calibrated against the monotonic clock); elsewhere `Instant`.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    origin: Instant,
    /// Nanoseconds per tick; 0 when ticks are `Instant` nanoseconds.
    ns_per_tick: f64,
}

impl Stopwatch {
    /// Calibrates for about 20 ms.
    pub fn new() -> Stopwatch {
        let origin = Instant::now();
        let invariant = cfg!(target_arch = "x86_64")
            && std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
                c.split_whitespace().any(|w| w == "constant_tsc")
                    && c.split_whitespace().any(|w| w == "nonstop_tsc")
            });
        let mut s = Stopwatch {
            origin,
            ns_per_tick: 0.0,
        };
        if invariant {
            let (t0, c0) = (Instant::now(), tsc());
            while t0.elapsed() < std::time::Duration::from_millis(20) {
                std::hint::spin_loop();
            }
            let (ns, ticks) = (t0.elapsed().as_nanos() as f64, tsc().wrapping_sub(c0));
            if ticks > 0 {
                s.ns_per_tick = ns / ticks as f64;
            }
        }
        s
    }

    /// A timestamp.
    #[inline]
    pub fn ticks(&self) -> u64 {
        if self.ns_per_tick > 0.0 {
            tsc()
        } else {
            self.origin.elapsed().as_nanos() as u64
        }
    }

    /// Nanoseconds between two timestamps.
    pub fn ns_between(&self, start: u64, end: u64) -> f64 {
        let d = end.wrapping_sub(start) as f64;
        if self.ns_per_tick > 0.0 {
            d * self.ns_per_tick
        } else {
            d
        }
    }
}

impl Default for Stopwatch {
    fn default() -> Stopwatch {
        Stopwatch::new()
    }
}

#[inline]
fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions; it reads the time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// memcpy bandwidth of `size`-byte copies on this core, GB/s (median of 16 runs).
pub fn memcpy_gbytes_per_s(size: usize) -> f64 {
    let src = vec![1u8; size.max(1)];
    let mut dst = vec![0u8; size.max(1)];
    let reps = ((64 << 20) / size.max(1)).clamp(1, 100_000);
    let mut runs = Vec::new();
    for _ in 0..16 {
        let t0 = Instant::now();
        for _ in 0..reps {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        }
        runs.push((reps * size) as f64 / t0.elapsed().as_secs_f64() / 1e9);
    }
    runs.sort_by(f64::total_cmp);
    quantile(&runs, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_quantiles() {
        assert_eq!(placement(40.0, 50.0), Placement::Near);
        assert_eq!(placement(200.0, 190.0), Placement::Far);
        assert_eq!(placement(40.0, 190.0), Placement::Mixed);
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), 2.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert!(memcpy_gbytes_per_s(4096) > 0.0);
    }
}
