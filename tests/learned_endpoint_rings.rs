//! Learned routing measures the rings of endpoints, the way `post` and sends by name travel
//! between neighbours: an endpoint's ring to a node of another process is a file of the
//! fabric directory whose header the learning process reads (bytes handed over by
//! descriptor included), and whose timing probes the receiving engine marks, since the
//! endpoint sends from its caller's thread and marks none.

mod common;

use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig};
use hyperfabric::transport::stats::{ring_traffic, RingKind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A thread draining `q` until its flag is set; set and joined when dropped (also when the
/// test fails), so the protocol it holds is gone before the fabric is removed.
struct Drain(Arc<AtomicBool>, Option<std::thread::JoinHandle<u64>>);

impl Drain {
    fn stop(mut self) -> u64 {
        self.0.store(true, Ordering::Release);
        self.1.take().map_or(0, |t| t.join().unwrap())
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

/// Fabric `name`, learning routes, of nodes p and q joined by a 1 Gbit/s link.
fn two_nodes(name: &str) -> hyperfabric::config::FabricConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fabric.yaml");
    std::fs::write(
        &path,
        format!(
            "fabric:\n  name: {name}\n  protocol: {{ enable_ml_routing: true }}\nnodes:\n\
             \x20 - {{ node_id: p, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}\n\
             \x20 - {{ node_id: q, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }}\n\
             links:\n  - {{ a: p, b: q, latency_ns: 1000, bandwidth_gbps: 1 }}\n"
        ),
    )
    .unwrap();
    hyperfabric::config::load_fabric_config(&path).unwrap()
}

#[test]
fn an_endpoints_ring_to_another_process_is_sampled_with_its_descriptors_and_probes() {
    let name = format!("learn-epr-{}", std::process::id());
    let _removed = common::FabricDir(name.clone());
    let cfg = two_nodes(&name);
    let make =
        || HyperFabricProtocol::with_config(ProtocolConfig::from_config(&cfg).unwrap()).unwrap();
    // Two protocols of this process: q's rings are files, as between processes.
    let (pp, pq) = (make(), Arc::new(make()));
    pp.register_node(cfg.nodes[0].clone()).unwrap();
    pq.register_node(cfg.nodes[1].clone()).unwrap();
    pq.start_background_services().unwrap();
    pp.start_background_services().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let drain = {
        let (stop, pq, received) = (stop.clone(), pq.clone(), received.clone());
        Drain(
            stop.clone(),
            Some(std::thread::spawn(move || {
                let mut bytes = 0u64;
                while !stop.load(Ordering::Acquire) {
                    if let Ok(m) = pq.recv("q", Duration::from_millis(20)) {
                        bytes += m.data.len() as u64;
                        received.store(bytes, Ordering::Release);
                        // A slow reader: messages wait in the ring, and probes time them.
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                bytes
            })),
        )
    };
    // 64 KiB messages go by descriptor: their data is what the link carries.
    let data = vec![5u8; 64 << 10];
    let mut ep = pp.endpoint("p", "q").unwrap();
    let mut sent = 0u64;
    let mut burst = || {
        // At most 8 MiB ahead of the reader: what waits is the ring's, not a queue of
        // hundreds of megabytes in q's mailbox.
        let end = Instant::now() + Duration::from_secs(10);
        while sent.saturating_sub(received.load(Ordering::Acquire)) > 8 << 20 {
            assert!(Instant::now() < end, "q stopped reading");
            std::thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..32 {
            ep.post(&data).unwrap();
            sent += data.len() as u64;
        }
    };
    burst();
    // Samples wholly after the endpoint was made.
    let from = pp.learned_routing().unwrap().samples + 2;
    let end = Instant::now() + Duration::from_secs(10);
    let dir = hyperfabric::sys::state_root().join(&name);
    let endpoint_probes = || -> u64 {
        ring_traffic(&dir)
            .0
            .iter()
            .filter(|r| r.kind == RingKind::Endpoint)
            .map(|r| r.probes)
            .sum()
    };
    let mut seen = None;
    let mut scored = false;
    while Instant::now() < end && !(seen.is_some() && scored && endpoint_probes() >= 1) {
        burst();
        let l = pp.learned_routing().unwrap();
        if l.samples < from {
            continue;
        }
        if let Some(k) = l.links.iter().find(|k| k.src == "p" && k.dst == "q") {
            if k.utilisation > 0.0 {
                seen = Some(k.clone());
            }
            scored |= k.errors.scored >= 1;
        }
    }
    let pq_link = seen.expect("p -> q never sampled with traffic through the endpoint");
    assert!(pq_link.utilisation.is_finite(), "{pq_link:?}");
    assert!(
        scored,
        "the endpoint's ring gave no sample to score: {pq_link:?}"
    );
    // The ring's header counts the data handed over by descriptor, not only the frames.
    let (rings, _) = ring_traffic(&dir);
    let ep_bytes: u64 = rings
        .iter()
        .filter(|r| r.kind == RingKind::Endpoint)
        .map(|r| r.bytes)
        .sum();
    assert!(
        ep_bytes >= sent,
        "endpoint rings counted {ep_bytes} of {sent} bytes"
    );
    // Its probes were marked by q's engine and completed as q read.
    assert!(
        endpoint_probes() >= 1,
        "no probe completed on the endpoint's ring"
    );
    drop(ep);
    let got = drain.stop();
    assert!(got > 0);
    drop(pp);
}

/// Two nodes of one process with a direct channel between them: the channel's ring is a file,
/// the rest of their traffic (the engine's rings and endpoints' rings, in memory) is not; a
/// sample counts both.
#[test]
fn a_direct_channel_does_not_hide_the_rings_in_memory_beside_it() {
    let name = format!("learn-dcm-{}", std::process::id());
    let _removed = common::FabricDir(name.clone());
    let cfg = two_nodes(&name);
    let p = HyperFabricProtocol::with_config(ProtocolConfig::from_config(&cfg).unwrap()).unwrap();
    for n in &cfg.nodes {
        p.register_node(n.clone()).unwrap();
    }
    p.start_background_services().unwrap();
    // One message through a direct channel: its ring file stays, idle.
    let mut direct = p.open_sender("p", "q").unwrap();
    let mut receiver = p.open_receiver("q").unwrap();
    direct.send(b"once", Duration::from_secs(5)).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while receiver.try_recv_with(|_, _| ()).is_none() {
        assert!(Instant::now() < end, "the direct message never came");
    }
    let data = vec![3u8; 64 << 10];
    let round = || {
        for _ in 0..16 {
            p.send_data(
                "p",
                "q",
                &data,
                &hyperfabric::fabric::SendOptions::default(),
            )
            .unwrap();
        }
        for _ in 0..16 {
            assert_eq!(
                p.recv("q", Duration::from_secs(10)).unwrap().data.len(),
                data.len()
            );
        }
    };
    round();
    let from = p.learned_routing().unwrap().samples + 2;
    let end = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        round();
        let l = p.learned_routing().unwrap();
        let pq = l
            .links
            .iter()
            .find(|k| k.src == "p" && k.dst == "q" && k.utilisation > 0.0)
            .cloned();
        if (l.samples >= from && pq.is_some()) || Instant::now() > end {
            break pq.filter(|_| l.samples >= from);
        }
    };
    seen.expect("p -> q read as idle beside its direct channel");
    drop((direct, receiver));
}
