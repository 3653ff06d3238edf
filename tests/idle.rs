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

    // Let the naps grow to their longest, then measure a quiet second.
    std::thread::sleep(Duration::from_millis(500));
    let ticks = cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks() - ticks;
    // SAFETY: sysconf only reads a system value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    assert!(
        used * 100 <= hz * 3,
        "idle engine used {used} ticks of {hz} in one second"
    );

    // A sleeping engine (its nap is 100 ms by now) answers at once: the send rings its bell.
    // Without the bell each answer would wait for the rest of a nap.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        assert_eq!(
            p.send_data("a", "b", b"wake", &SendOptions::default())
                .unwrap(),
            b"wake"
        );
        let took = t0.elapsed();
        assert!(took < Duration::from_millis(10), "woke after {took:?}");
    }
    p.stop_background_services().unwrap();
}
