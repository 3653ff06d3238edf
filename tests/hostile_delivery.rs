//! Sequenced frames forged by another process of the same user, written into a ring of the
//! fabric: what one can do to a stream is bounded (docs/delivery.md, "Not covered yet").

mod common;

use common::{node, FabricDir};
use hyperfabric::codec::id_tag;
use hyperfabric::engine::FaultPlan;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::PacketPriority;
use hyperfabric::ring::{split, Region, SlotHeader};
use hyperfabric::transport::channel::{ring_path, Lane};
use hyperfabric::transport::registry::Registry;
use hyperfabric::LinkSpec;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cfg(fabric: &str, faults: Option<&str>) -> ProtocolConfig {
    ProtocolConfig {
        fabric_name: Some(fabric.into()),
        links: vec![
            LinkSpec::new("a", "f").latency_ns(100),
            LinkSpec::new("f", "b").latency_ns(100),
        ],
        faults: faults.map(|f| FaultPlan::parse(f).unwrap()),
        ..Default::default()
    }
}

fn metric(p: &HyperFabricProtocol, name: &str) -> f64 {
    p.get_topology_info().unwrap().performance_metrics[name]
}

fn dest_tag(name: &str, g: u64) -> u32 {
    id_tag(name) ^ (g as u32) ^ ((g >> 32) as u32).rotate_left(16)
}

/// A frame of kind 1 (data), sequenced and one-way, from `origin` to `dst`.
#[allow(clippy::too_many_arguments)]
fn forged_data(
    origin: (u32, &str),
    dst: (u32, &str, u64),
    priority: u8,
    seq: u32,
    incarnation: u64,
    body: &[u8],
) -> (SlotHeader, Vec<u8>) {
    let slot = SlotHeader {
        len: 0,
        kind: 1,
        flags: 128 | 1,
        aux: 0,
        src: origin.0,
    };
    let mut hdr = [0u8; 32];
    hdr[0..4].copy_from_slice(&dst.0.to_le_bytes());
    hdr[13] = priority;
    hdr[14] = 0;
    hdr[15] = 16;
    hdr[16..20].copy_from_slice(&(body.len() as u32).to_le_bytes());
    hdr[24..28].copy_from_slice(&origin.0.to_le_bytes());
    let mut c = crc32fast::Hasher::new();
    c.update(&id_tag(origin.1).to_le_bytes());
    c.update(&dest_tag(dst.1, dst.2).to_le_bytes());
    c.update(&[slot.kind, slot.flags]);
    c.update(&slot.aux.to_le_bytes());
    c.update(&hdr[4..12]);
    c.update(&hdr[13..24]);
    c.update(&hdr[28..32]);
    c.update(&seq.to_le_bytes());
    c.update(&incarnation.to_le_bytes());
    c.update(body);
    let crc = c.finalize();
    let mut p = hdr.to_vec();
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&crc.to_le_bytes());
    p.extend_from_slice(&incarnation.to_le_bytes());
    p.extend_from_slice(body);
    (slot, p)
}

/// Writes frames into a new ring file `ch-<src>-<dst>-l` as its producer (the hostile process).
fn inject(fabric: &str, src: u32, dst: u32, frames: &[(SlotHeader, Vec<u8>)]) {
    let reg = Registry::open(fabric).unwrap();
    let path = ring_path(reg.dir(), src, dst, Lane::Latency);
    let _ = std::fs::remove_file(&path);
    let region = Region::create_file(&path, 64).unwrap();
    let (mut prod, _cons) = split(Arc::new(region));
    for (s, p) in frames {
        prod.try_push(*s, &[p]).unwrap();
    }
    reg.bump_channels_epoch();
    reg.ring_bell(dst);
}

/// A frame whose incarnation lies far in the future (a valid checksum: the names and the
/// registry's generation are readable by any process of the user) is refused: it does not
/// take the stream over, and the real sender's posts that follow arrive, in order.
#[test]
fn a_forged_incarnation_from_the_far_future_is_refused() {
    let dir = FabricDir(format!("hostile-delivery-inc-{}", std::process::id()));
    let tx = HyperFabricProtocol::with_config(cfg(&dir.0, None)).unwrap();
    tx.register_node(node("a")).unwrap();
    tx.register_node(node("f")).unwrap();
    let rx = HyperFabricProtocol::with_config(cfg(&dir.0, None)).unwrap();
    rx.register_node(node("b")).unwrap();
    tx.start_background_services().unwrap();
    rx.start_background_services().unwrap();
    let opts = SendOptions {
        priority: PacketPriority::Medium,
        ..Default::default()
    };
    tx.post("a", "b", b"first", &opts).unwrap();
    let m = rx.recv("b", Duration::from_secs(5)).unwrap();
    assert_eq!(&m.data[..], b"first");
    assert!(metric(&tx, "delivery_sequenced") >= 1.0, "not sequenced");

    let reg = Registry::open(&dir.0).unwrap();
    let a = reg.lookup("a").unwrap().unwrap();
    let b = reg.lookup("b").unwrap().unwrap();
    let frame = forged_data(
        (a.index, "a"),
        (b.index, "b", b.generation),
        PacketPriority::Medium as u8,
        1,
        u64::MAX - 1,
        b"forged",
    );
    let stale = metric(&rx, "delivery_stale_refused");
    inject(&dir.0, a.index, b.index, &[frame]);
    let until = Instant::now() + Duration::from_secs(10);
    while metric(&rx, "delivery_stale_refused") == stale {
        assert!(Instant::now() < until, "the forged frame was not refused");
        std::thread::sleep(Duration::from_millis(2));
    }
    for i in 0..5u8 {
        tx.post("a", "b", &[b'x', i], &opts).unwrap();
    }
    for i in 0..5u8 {
        let m = rx.recv("b", Duration::from_secs(5)).unwrap();
        assert_eq!(
            &m.data[..],
            &[b'x', i],
            "the real stream after a forged frame"
        );
    }
}
