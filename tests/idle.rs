//! The adaptive engine: idle, it sleeps on its doorbell and costs almost no CPU; a message
//! wakes it at once instead of after its nap.

mod common;

use common::FabricDir;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::{HardwareType, NodeSignature};
use std::time::{Duration, Instant};

/// CPU time of this process (user + system), from /proc/self/stat, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime), counted from 3 after the command name.
    f[14 - 3].parse::<u64>().unwrap() + f[15 - 3].parse::<u64>().unwrap()
}

/// The task directory of this process's engine thread (named "hf-engine").
fn engine_thread() -> std::path::PathBuf {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .map(|t| t.path())
        .find(|t| {
            std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim_end() == "hf-engine")
        })
        .expect("the engine thread runs")
}

/// How many times the engine thread blocked: once at the start of each nap (idle, nothing
/// else in it blocks).
fn naps(task: &std::path::Path) -> u64 {
    let status = std::fs::read_to_string(task.join("status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .expect("a status with context switches")
        .trim()
        .parse()
        .unwrap()
}

/// Waits until the engine thread has just begun a nap of the longest length (50 ms): the
/// eighth nap since `busy`, its count when it last worked (naps double from 1 ms), and one
/// begun since this call.
fn wait_for_a_long_nap(task: &std::path::Path, busy: u64) {
    let target = (busy + 8).max(naps(task) + 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while naps(task) < target {
        assert!(Instant::now() < deadline, "the engine thread never napped");
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn an_idle_engine_sleeps_and_a_message_wakes_it() {
    let fabric = format!("test-idle-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.clone()),
        ..Default::default()
    })
    .unwrap();
    p.register_node(NodeSignature::new("a", HardwareType::CpuServer, 10.0, 1).unwrap())
        .unwrap();
    p.register_node(NodeSignature::new("b", HardwareType::CpuServer, 10.0, 1).unwrap())
        .unwrap();
    p.on_receive("b", |m| Ok(m.data.to_vec())).unwrap();
    p.start_background_services().unwrap();
    assert_eq!(
        p.send_data("a", "b", b"warm", &SendOptions::default())
            .unwrap(),
        b"warm"
    );
    // The thread names itself once it runs, which the answer shows it does.
    let engine = engine_thread();

    // Once the naps are at their longest, measure a quiet second.
    wait_for_a_long_nap(&engine, naps(&engine));
    let ticks = cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks() - ticks;
    // SAFETY: sysconf only reads a system value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    assert!(
        used * 100 <= hz * 3,
        "idle engine used {used} ticks of {hz} in one second"
    );

    // An engine that has just begun a 50 ms nap answers at once: the send rings its bell.
    // Without the bell each answer would wait for the rest of the nap, over 25 ms each time;
    // the median spares the test one answer a loaded machine was slow to schedule.
    let mut busy = naps(&engine);
    let mut took: Vec<Duration> = (0..5)
        .map(|_| {
            wait_for_a_long_nap(&engine, busy);
            let t0 = Instant::now();
            assert_eq!(
                p.send_data("a", "b", b"wake", &SendOptions::default())
                    .unwrap(),
                b"wake"
            );
            let took = t0.elapsed();
            busy = naps(&engine);
            took
        })
        .collect();
    took.sort();
    assert!(
        took[2] < Duration::from_millis(25),
        "answers of a sleeping engine took {took:?}"
    );
    p.stop_background_services().unwrap();
}
