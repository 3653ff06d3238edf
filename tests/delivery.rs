//! End-to-end delivery through forwarders under injected faults: every message arrives
//! exactly once, whole and in order per (source, destination, priority), with fault
//! tolerance on; without it, what the faults hit is lost (best effort).

mod common;

use common::{checksum, node, FabricDir};
use hyperfabric::engine::FaultPlan;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::PacketPriority;
use hyperfabric::LinkSpec;
use std::collections::BTreeMap;
use std::time::Duration;

/// `a` reaches `b` only through `f` (one process hosts all three: every hop is a ring and
/// `f`'s frames pass through the engine's forwarding).
fn chain(fabric: &str, fault_tolerance: bool, faults: &str) -> HyperFabricProtocol {
    let mut config = ProtocolConfig {
        fabric_name: Some(fabric.into()),
        links: vec![
            LinkSpec::new("a", "f").latency_ns(100),
            LinkSpec::new("f", "b").latency_ns(100),
        ],
        faults: Some(FaultPlan::parse(faults).unwrap()),
        ..Default::default()
    };
    config.options.enable_fault_tolerance = fault_tolerance;
    let p = HyperFabricProtocol::with_config(config).unwrap();
    for n in ["a", "f", "b"] {
        p.register_node(node(n)).unwrap();
    }
    p
}

const PRIORITIES: [PacketPriority; 3] = [
    PacketPriority::UltraHigh,
    PacketPriority::Medium,
    PacketPriority::Bulk,
];

/// Message `n` of priority class `class`: its class, number and checksum around bytes of
/// a size from 1 B to 300 KiB (mostly small; large ones travel in several fragments).
fn message(class: u8, n: u64, x: u64) -> Vec<u8> {
    let size = match x % 100 {
        0..=79 => 1 + (x >> 8) % 512,
        80..=97 => 512 + (x >> 8) % 16_000,
        _ => 64_000 + (x >> 8) % 240_000,
    } as usize;
    let mut m = vec![class];
    m.extend_from_slice(&n.to_le_bytes());
    m.extend((0..size).map(|i| (i as u64 ^ x) as u8));
    let sum = checksum(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    m
}

/// Checks message `m`: returns its class and number.
fn check(m: &[u8]) -> (u8, u64) {
    assert!(m.len() >= 17, "a message of {} bytes", m.len());
    let (body, sum) = m.split_at(m.len() - 8);
    assert_eq!(
        checksum(body).to_le_bytes(),
        sum,
        "a message whose bytes changed"
    );
    (body[0], u64::from_le_bytes(body[1..9].try_into().unwrap()))
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Posts `count` messages from a to b (through f), receives them, and returns how many
/// arrived, with the protocol's metrics.
fn run(
    fabric: &str,
    fault_tolerance: bool,
    faults: &str,
    count: u64,
) -> (u64, BTreeMap<String, f64>) {
    let p = chain(fabric, fault_tolerance, faults);
    p.start_background_services().unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = [0u64; 3];
    let mut expected = [0u64; 3];
    let mut received = 0u64;
    let drain = |expected: &mut [u64; 3], received: &mut u64, wait: Duration| {
        while let Ok(m) = p.recv("b", wait) {
            let (class, n) = check(&m.data);
            let want = &mut expected[class as usize];
            if fault_tolerance {
                assert_eq!(
                    n, *want,
                    "class {class}: message {n} came when {want} was due"
                );
            } else {
                assert!(
                    n >= *want,
                    "class {class}: message {n} again or out of order"
                );
            }
            *want = n + 1;
            *received += 1;
        }
    };
    for _ in 0..count {
        let class = (xorshift(&mut x) % 3) as u8;
        let data = message(class, next[class as usize], xorshift(&mut x));
        next[class as usize] += 1;
        let opts = SendOptions {
            priority: PRIORITIES[class as usize],
            ..Default::default()
        };
        p.post("a", "b", &data, &opts).unwrap();
        drain(&mut expected, &mut received, Duration::ZERO);
    }
    drain(&mut expected, &mut received, Duration::from_secs(2));
    if fault_tolerance {
        assert_eq!(expected, next, "messages missing at the end");
    }
    let metrics = p.get_topology_info().unwrap().performance_metrics;
    (received, metrics)
}

#[test]
fn every_post_through_a_faulty_forwarder_arrives_once_whole_and_in_order() {
    let fabric = format!("deliv-ft-{}", std::process::id());
    let _dir = FabricDir(fabric.clone());
    let faults = "seed=11,drop=0.03,duplicate=0.01,corrupt=0.01,reorder=0.01,delay=0.01@1ms";
    let (received, m) = run(&fabric, true, faults, 20_000);
    assert_eq!(received, 20_000);
    for (counter, at_least) in [
        ("faults_dropped", 1.0),
        ("faults_duplicated", 1.0),
        ("faults_corrupted", 1.0),
        ("delivery_resent", 1.0),
        ("delivery_duplicates_refused", 1.0),
        ("delivery_corrupt_refused", 1.0),
    ] {
        assert!(m[counter] >= at_least, "{counter} = {}: {m:?}", m[counter]);
    }
    assert_eq!(m["delivery_failed"], 0.0);
}

#[test]
fn without_fault_tolerance_what_the_faults_drop_is_lost() {
    let fabric = format!("deliv-be-{}", std::process::id());
    let _dir = FabricDir(fabric.clone());
    let (received, m) = run(&fabric, false, "seed=11,drop=0.05", 5_000);
    assert!(m["faults_dropped"] > 0.0);
    assert_eq!(m["delivery_sequenced"], 0.0);
    assert!(
        received < 5_000,
        "{received} of 5000 arrived although frames were dropped"
    );
}

/// The numbers of the messages of `count` posts from a to b that arrive through a forwarder
/// that drops frames by `faults` (fault tolerance off: nothing is sent again).
fn survivors(fabric: &str, faults: &str, count: u32) -> Vec<u32> {
    let p = chain(fabric, false, faults);
    p.start_background_services().unwrap();
    let mut got = Vec::new();
    for i in 0..count {
        p.post("a", "b", &i.to_le_bytes(), &SendOptions::default())
            .unwrap();
        while let Ok(m) = p.recv("b", Duration::ZERO) {
            got.push(u32::from_le_bytes(m.data[..4].try_into().unwrap()));
        }
    }
    // What is still on its way: until nothing more comes for half a second.
    while let Ok(m) = p.recv("b", Duration::from_millis(500)) {
        got.push(u32::from_le_bytes(m.data[..4].try_into().unwrap()));
    }
    got
}

#[test]
fn the_same_seed_drops_the_same_messages() {
    let fabric = format!("deliv-seed-{}", std::process::id());
    let _dirs = [0, 1, 2].map(|i| FabricDir(format!("{fabric}-{i}")));
    let first = survivors(&format!("{fabric}-0"), "seed=5,drop=0.2", 2_000);
    let again = survivors(&format!("{fabric}-1"), "seed=5,drop=0.2", 2_000);
    let other = survivors(&format!("{fabric}-2"), "seed=6,drop=0.2", 2_000);
    assert!(
        (1_500..1_700).contains(&first.len()),
        "{} arrived",
        first.len()
    );
    assert_eq!(first, again, "the same seed dropped other messages");
    assert_ne!(first, other, "another seed dropped the same messages");
}
