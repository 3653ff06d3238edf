//! Learned routing measures the rings of endpoints, the way `post` and sends by name travel
//! between neighbours: an endpoint's ring to a node of another process is a file of the
//! fabric directory whose header the learning process reads (bytes handed over by
//! descriptor included). An endpoint's ring is its sender's alone: its bytes are the link's
//! load, but what waits in it delays only that sender, so it is not the link's delay.

mod common;

use hyperfabric::fabric::{HyperFabricProtocol, LearnedLink, ProtocolConfig, SendOptions};
use hyperfabric::transport::stats::{ring_traffic, RingKind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn an_endpoints_ring_is_the_links_load_and_its_queue_not_the_links_delay() {
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
    // q reads only once told to.
    let reading = Arc::new(AtomicBool::new(false));
    let drain = {
        let (pq, received, reading) = (pq.clone(), received.clone(), reading.clone());
        common::Stopped::spawn(move |stop| {
            let mut bytes = 0u64;
            while !stop.load(Ordering::Acquire) {
                if !reading.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                if let Ok(m) = pq.recv("q", Duration::from_millis(20)) {
                    bytes += m.data.len() as u64;
                    received.store(bytes, Ordering::Release);
                }
            }
            bytes
        })
    };
    // 64 KiB messages go by descriptor: their data is what the link carries.
    let data = vec![5u8; 64 << 10];
    let mut ep = pp.endpoint("p", "q").unwrap();
    let dir = hyperfabric::sys::state_root().join(&name);
    let endpoint_queue = || -> u64 {
        ring_traffic(&dir)
            .0
            .iter()
            .filter(|r| r.kind == RingKind::Endpoint)
            .map(|r| r.queued_slots)
            .sum()
    };
    // While q reads nothing, its engine moves what comes into its queue until that is full
    // (65,536 messages); then messages wait in the endpoint's ring, for ten samples.
    let small = [1u8; 64];
    let mut posts = hyperfabric::engine::INBOX_MESSAGES as u64;
    for _ in 0..posts {
        ep.post(&small).unwrap();
    }
    // Once q's queue is full, the ring's queue stays as it is.
    let end = Instant::now() + Duration::from_secs(10);
    let mut held = 0;
    while held < 16 || endpoint_queue() != held {
        assert!(
            Instant::now() < end && posts < 1 << 17,
            "q's engine never stopped taking messages: {held} slots queued"
        );
        ep.post(&small).unwrap();
        posts += 1;
        held = endpoint_queue();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut sent = posts * small.len() as u64;
    let from = pp.learned_routing().unwrap().samples + 1;
    let end = Instant::now() + Duration::from_secs(10);
    let (mut queued_bytes, mut delay_ns, mut samples) = (0f64, 0f64, 0);
    while samples < 10 {
        assert!(
            Instant::now() < end,
            "fewer than 10 samples of p -> q in 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
        let l = pp.learned_routing().unwrap();
        if l.samples < from {
            continue;
        }
        let Some(k) = l.links.iter().find(|k| k.src == "p" && k.dst == "q") else {
            continue;
        };
        samples = l.samples - from;
        queued_bytes = queued_bytes.max(k.queued_bytes);
        delay_ns = delay_ns.max(k.measured_delay_ns.unwrap_or(0.0));
    }
    assert_eq!(endpoint_queue(), held, "q read nothing meanwhile");
    // None of it was read as the link's queue or delay: a send of anyone else (another
    // endpoint, the engine's lanes) does not wait behind it.
    assert_eq!(
        queued_bytes, 0.0,
        "the endpoint's queue was read as the link's"
    );
    assert_eq!(
        delay_ns, 0.0,
        "the endpoint's queue was read as the link's delay"
    );
    // Its bytes are the link's load.
    reading.store(true, Ordering::Release);
    let mut burst = || {
        // At most 8 MiB ahead of the reader.
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
    let from = pp.learned_routing().unwrap().samples + 2;
    let (mut seen, mut scored) = (None, false);
    while Instant::now() < end && !(seen.is_some() && scored) {
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
