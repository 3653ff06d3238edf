//! Learned routing measures the rings of endpoints, the way `post` and sends by name travel
//! between neighbours: an endpoint's ring to a node of another process is a file of the
//! fabric directory whose header the learning process reads (bytes handed over by
//! descriptor included), and whose timing probes the receiving engine marks, since the
//! endpoint sends from its caller's thread and marks none.

mod common;

use hyperfabric::fabric::{HyperFabricProtocol, LearnedLink, ProtocolConfig, SendOptions};
use hyperfabric::transport::stats::{ring_traffic, RingKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn an_endpoints_ring_to_another_process_is_sampled_with_its_descriptors_and_probes() {
    let name = format!("learn-epr-{}", std::process::id());
    let _removed = common::FabricDir(name.clone());
    let cfg = common::learning_pair(&name);
    let make =
        || HyperFabricProtocol::with_config(ProtocolConfig::from_config(&cfg).unwrap()).unwrap();
    // Two protocols of this process: q's rings are files, as between processes.
    let (pp, pq) = (make(), Arc::new(make()));
    pp.register_node(cfg.nodes[0].clone()).unwrap();
    pq.register_node(cfg.nodes[1].clone()).unwrap();
    pq.start_background_services().unwrap();
    pp.start_background_services().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let drain = {
        let (pq, received) = (pq.clone(), received.clone());
        common::Stopped::spawn(move |stop| {
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
        })
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

/// Sends 16 messages of 64 KiB from p to q by name and receives them, until learned routing
/// reports p -> q with traffic and a sample scored since the first round, in samples taken
/// wholly after it (a thread's first sends by name take the engine's rings, the rest the
/// endpoint it keeps for the pair, whose ring in memory is what is measured then).
fn sampled_and_scored(p: &HyperFabricProtocol) -> Option<LearnedLink> {
    let data = vec![3u8; 64 << 10];
    let round = || {
        for _ in 0..16 {
            p.send_data("p", "q", &data, &SendOptions::default())
                .unwrap();
        }
        // q takes what it was sent, so the ring never stays full however late the sampler is.
        for _ in 0..16 {
            let m = p.recv("q", Duration::from_secs(10)).unwrap();
            assert_eq!(m.data.len(), data.len());
        }
    };
    round();
    let from = p.learned_routing().unwrap().samples + 2;
    let end = Instant::now() + Duration::from_secs(10);
    // Samples scored by then (some of the engine's rings) do not count.
    let mut scored_before = None;
    while Instant::now() < end {
        round();
        let l = p.learned_routing().unwrap();
        let pq = l
            .links
            .iter()
            .find(|k| k.src == "p" && k.dst == "q")
            .cloned();
        if l.samples < from {
            continue;
        }
        let before = *scored_before.get_or_insert(pq.as_ref().map_or(0, |k| k.errors.scored));
        // Sampled with traffic, and scored since: the samples carry delays (probes completed,
        // or nothing queued), which the models are scored on.
        if let Some(k) = pq.filter(|k| k.utilisation > 0.0 && k.errors.scored > before) {
            return Some(k);
        }
    }
    None
}

/// A protocol hosting p and q of a learning pair's fabric (named `prefix-<pid>`), its
/// background services started, after the guard that removes the fabric (bound in this
/// order, the protocol is dropped first).
fn both_nodes(prefix: &str) -> (common::FabricDir, HyperFabricProtocol) {
    let name = format!("{prefix}-{}", std::process::id());
    let removed = common::FabricDir(name.clone());
    let cfg = common::learning_pair(&name);
    let p = HyperFabricProtocol::with_config(ProtocolConfig::from_config(&cfg).unwrap()).unwrap();
    for n in &cfg.nodes {
        p.register_node(n.clone()).unwrap();
    }
    p.start_background_services().unwrap();
    (removed, p)
}

/// Links whose rings live in a process's memory (both nodes hosted by it) have no ring
/// file: learned routing reads them from the engine's counts (its own rings and its
/// endpoints'), as it reads its connections to other hosts.
#[test]
fn links_inside_one_process_are_sampled_from_its_engine() {
    let (_removed, p) = both_nodes("learn-own");
    let pq = sampled_and_scored(&p).expect("p -> q never sampled with traffic and scored");
    assert!(
        pq.utilisation.is_finite() && pq.capacity_gbps == 1.0 && pq.predicted_delay_ns.is_finite(),
        "{pq:?}"
    );
}

/// Two nodes of one process with a direct channel between them: the channel's ring is a file,
/// the rest of their traffic (the engine's rings and endpoints' rings, in memory) is not; a
/// sample counts both.
#[test]
fn a_direct_channel_does_not_hide_the_rings_in_memory_beside_it() {
    let (_removed, p) = both_nodes("learn-dcm");
    // One message through a direct channel: its ring file stays, idle.
    let mut direct = p.open_sender("p", "q").unwrap();
    let mut receiver = p.open_receiver("q").unwrap();
    direct.send(b"once", Duration::from_secs(5)).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while receiver.try_recv_with(|_, _| ()).is_none() {
        assert!(Instant::now() < end, "the direct message never came");
    }
    sampled_and_scored(&p).expect("p -> q read as idle beside its direct channel");
    drop((direct, receiver));
}
