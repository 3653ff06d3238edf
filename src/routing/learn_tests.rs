use super::*;

/// A small deterministic generator (xorshift64*), so the trace is the same in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A load trace of a ring link as the data plane sees it: bursts of traffic at random rates
/// (from a tenth to twice what the consumer drains) with idle gaps, into a ring of `ring`
/// bytes whose consumer drains `drain` bytes/s (not the declared capacity: a consumer
/// copies slower than the link's figure says). Sampled every 50 ms as the learned router
/// samples: utilisation of the declared capacity over the interval, bytes queued at the
/// end, and the queueing delay a probe marked then measures (the time to drain what is
/// queued, plus 5 µs, with ±20 % of noise; 0 when nothing is queued).
fn trace(capacity_gbps: f64, drain: f64, ring: f64, samples: usize) -> Vec<LoadSample> {
    const DT: f64 = 1e-4;
    const STEPS: usize = 500;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut queued, mut rate, mut left) = (0.0f64, 0.0, 0usize);
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let mut carried = 0.0;
        for _ in 0..STEPS {
            if left == 0 {
                // Periods of 5 to 500 ms; a third of them idle.
                left = 50 + (rng.next() * 4950.0) as usize;
                rate = if rng.next() < 0.33 {
                    0.0
                } else {
                    drain * (0.1 + 1.9 * rng.next())
                };
            }
            left -= 1;
            let accepted = (rate * DT).min(ring - queued + drain * DT);
            carried += accepted;
            queued = (queued + accepted - drain * DT).clamp(0.0, ring);
        }
        let utilisation = carried * 8.0 / (capacity_gbps * 1e9 * DT * STEPS as f64);
        // As the sampler reads it: nothing queued, no probe, no delay.
        let delay = if queued > 0.0 {
            (5_000.0 + queued / drain * 1e9) * (0.8 + 0.4 * rng.next())
        } else {
            0.0
        };
        out.push(LoadSample {
            utilisation,
            queued_bytes: queued,
            delay_ns: Some(delay),
        });
    }
    out
}

#[test]
fn the_learned_model_predicts_a_load_trace_better_than_the_fixed_one() {
    // A 10 Gbit/s link whose consumer drains 0.8 GB/s, through a 4 MiB ring: 2,000 samples
    // (100 s of 50 ms intervals).
    let samples = trace(10.0, 0.8e9, 4.0 * 1048576.0, 2000);
    let busy = samples.iter().filter(|s| s.queued_bytes > 65536.0).count();
    assert!(
        busy > 200 && busy < 1800,
        "the trace has both loaded and idle spells ({busy} of 2000 loaded)"
    );
    let mut m = LinkLearner::new(10.0);
    for s in &samples {
        m.observe(s);
    }
    let e = m.errors();
    println!(
        "trace of {} samples: mean absolute error learned {:.0} us, fixed M/M/1 {:.0} us",
        e.scored,
        e.learned_mean_ns / 1e3,
        e.fixed_mean_ns / 1e3
    );
    assert_eq!(e.scored, 2000);
    assert!(
        e.learned_mean_ns < 0.5 * e.fixed_mean_ns,
        "learned {} ns vs fixed {} ns",
        e.learned_mean_ns,
        e.fixed_mean_ns
    );
    assert!(m.trusted());
    // Having learned, it predicts a full ring's delay within a quarter of the truth, where
    // the fixed model (which sees only utilisation) is off by far more.
    let full = LoadSample {
        utilisation: 0.7,
        queued_bytes: 4.0 * 1048576.0,
        delay_ns: None,
    };
    let truth = 5_000.0 + 4.0 * 1048576.0 / 0.8e9 * 1e9;
    let p = m.predict_ns(&full);
    assert!((p - truth).abs() < 0.25 * truth, "{p} vs {truth}");
    assert!((m.fixed_ns(&full) - truth).abs() > 0.5 * truth);
}

#[test]
fn until_it_has_earned_it_the_fixed_model_answers() {
    let mut m = LinkLearner::new(100.0);
    let s = LoadSample {
        utilisation: 0.5,
        queued_bytes: 0.0,
        delay_ns: Some(1_000_000.0),
    };
    // M/M/1 at rho 0.5: one 64 KiB frame at 100 Gbit/s, 5,243 ns.
    assert_eq!(m.predict_ns(&s).round(), 5243.0);
    assert!(!m.trusted());
    for _ in 0..MIN_SCORED {
        m.observe(&s);
    }
    // Now it has seen 1 ms at this load, again and again, where the fixed model says 5 us.
    assert!(m.trusted());
    assert!(m.predict_ns(&s) > 500_000.0);
    // A sample without a measured delay teaches nothing.
    let before = m.errors();
    m.observe(&LoadSample {
        delay_ns: None,
        ..s
    });
    assert_eq!(m.errors(), before);
}

#[test]
fn samples_that_are_not_numbers_do_not_break_the_model() {
    let mut m = LinkLearner::new(0.0);
    for s in [
        LoadSample {
            utilisation: f64::NAN,
            queued_bytes: f64::INFINITY,
            delay_ns: Some(f64::MAX),
        },
        LoadSample {
            utilisation: -1.0,
            queued_bytes: -5.0,
            delay_ns: Some(-3.0),
        },
        LoadSample {
            utilisation: 1e300,
            queued_bytes: 1e300,
            delay_ns: Some(1e300),
        },
    ] {
        m.observe(&s);
        let p = m.predict_ns(&s);
        assert!(p.is_finite() && p >= 0.0, "{p}");
    }
    // An idle link sampled for a long time: the model stays finite and bounded.
    let idle = LoadSample {
        utilisation: 0.0,
        queued_bytes: 0.0,
        delay_ns: Some(2_000.0),
    };
    for _ in 0..100_000 {
        m.observe(&idle);
    }
    let p = m.predict_ns(&idle);
    assert!(p.is_finite() && p < 1_000.0, "{p}");
}

/// A trace recorded by `tests/learned_routing.rs` (`HF_LEARN_RECORD`): every link direction
/// of its fabric, sampled every 50 ms while 1 MiB bulk messages crossed s1 for about 4 s,
/// before and after.
const RECORDED: &str = include_str!("../../tests/data/learned_link_trace.csv");

#[test]
fn the_learned_model_predicts_a_recorded_trace_better_than_the_fixed_one() {
    let mut models: std::collections::BTreeMap<(String, String), LinkLearner> = Default::default();
    for line in RECORDED.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| f[i].parse::<f64>().unwrap();
        let s = LoadSample {
            utilisation: num(3),
            queued_bytes: num(4),
            delay_ns: (!f[5].is_empty()).then(|| num(5)),
        };
        models
            .entry((f[0].to_string(), f[1].to_string()))
            .or_insert_with(|| LinkLearner::new(num(2)))
            .observe(&s);
    }
    let (mut n, mut learned, mut fixed) = (0u64, 0.0, 0.0);
    for ((src, dst), m) in &models {
        let e = m.errors();
        println!(
            "{src} -> {dst}: {} samples, mean absolute error learned {:.1} us, fixed {:.1} us",
            e.scored,
            e.learned_mean_ns / 1e3,
            e.fixed_mean_ns / 1e3
        );
        n += e.scored;
        learned += e.learned_mean_ns * e.scored as f64;
        fixed += e.fixed_mean_ns * e.scored as f64;
    }
    let (learned, fixed) = (learned / n as f64, fixed / n as f64);
    println!(
        "all {n} samples: learned {:.1} us, fixed {:.1} us",
        learned / 1e3,
        fixed / 1e3
    );
    assert!(n > 500);
    assert!(learned < fixed, "learned {learned} ns vs fixed {fixed} ns");
}
