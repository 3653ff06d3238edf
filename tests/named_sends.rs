//! Sends by node name take endpoints that each thread keeps: messages from one thread to one
//! pair stay in order while the pair moves between the engine's rings and its own, the
//! endpoints a thread keeps are bounded, and their ring files go with the protocol.

mod common;

use common::rings::ep_files;
use common::{node, protocol, FabricDir};
use hyperfabric::fabric::{SendOptions, NAMED_ENDPOINTS, NAMED_WARM};
use hyperfabric::model::DataType;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

/// Message `i`: its number, then filler; every seventh is compressed (a codec frame, through
/// the same ring as the others).
fn post(p: &hyperfabric::fabric::HyperFabricProtocol, i: u32) {
    let opts = SendOptions {
        compression_enabled: i % 7 == 0,
        ..Default::default()
    };
    let mut data = i.to_le_bytes().to_vec();
    data.resize(4 + (i as usize % 300), b'z');
    p.post("src", "dst", &data, &opts).unwrap();
}

fn expect(p: &hyperfabric::fabric::HyperFabricProtocol, range: std::ops::Range<u32>) {
    for i in range {
        let m = p.recv("dst", WAIT).unwrap();
        assert_eq!(m.data[..4], i.to_le_bytes(), "message {i} out of order");
        assert_eq!(m.data.len(), 4 + (i as usize % 300));
    }
}

#[test]
fn posts_by_name_keep_their_order_while_the_pair_changes_rings() {
    let fabric = format!("test-named-order-{}", std::process::id());
    let _dir = FabricDir(fabric.clone());
    let p = protocol(&fabric);
    for id in ["src", "dst", "warm"] {
        p.register_node(node(id)).unwrap();
    }
    // The thread's first sends by name take the engine.
    for _ in 0..NAMED_WARM {
        p.post("src", "warm", b"warm", &SendOptions::default())
            .unwrap();
    }
    let sinks: Vec<String> = (0..NAMED_ENDPOINTS).map(|i| format!("x{i}")).collect();
    for s in &sinks {
        p.register_node(node(s)).unwrap();
    }
    // One unread message to each sink: this thread keeps as many endpoints as it may, and
    // none of them is drained.
    for s in &sinks {
        p.post("src", s, b"unread", &SendOptions::default())
            .unwrap();
    }
    // So the pair's first messages take the engine's rings (had they taken a ring of
    // their own, later ones would overtake them below).
    (0..100).for_each(|i| post(&p, i));
    // A sink read empty: its endpoint may be let go, but the engine's rings of the pair
    // still hold messages (and a new endpoint is made only every so many sends).
    p.recv("x0", WAIT).unwrap();
    assert!(p.recv("x0", Duration::ZERO).is_err());
    (100..200).for_each(|i| post(&p, i));
    expect(&p, 0..50);
    (200..300).for_each(|i| post(&p, i));
    expect(&p, 50..300);
    assert!(p.recv("dst", Duration::ZERO).is_err());
    (300..400).for_each(|i| post(&p, i));
    expect(&p, 300..400);
    assert!(p.recv("dst", Duration::ZERO).is_err());
}

/// Coalesced neuromorphic events go the engine's way, everything else the endpoint's, and
/// a request waits behind the posts before it: one thread's sends to one pair, mixed and
/// read in bursts, arrive in the order they were made.
#[test]
fn mixed_sends_by_name_of_one_pair_arrive_in_order() {
    let fabric = format!("test-named-mixed-{}", std::process::id());
    let _dir = FabricDir(fabric.clone());
    let p = protocol(&fabric);
    for id in ["src", "dst"] {
        p.register_node(node(id)).unwrap();
    }
    let spike = SendOptions {
        data_type: DataType::NeuromorphicSpike,
        ..Default::default()
    };
    let pool = p.create_buffer_manager(64, 64).unwrap();
    let take = |p: &hyperfabric::fabric::HyperFabricProtocol, i: u32, of: u32| {
        let m = p.recv("dst", WAIT).unwrap();
        assert_eq!(
            m.data[..4],
            i.to_le_bytes(),
            "message {i} of {of} out of order"
        );
        assert_eq!(m.data.len(), 16);
    };
    let (mut next, mut expected) = (0u32, 0u32);
    for round in 0..200u32 {
        for k in 0..10 {
            let i = next;
            next += 1;
            let neuro = (round % 3 == 0) != (k % 4 == 0);
            let data = [i.to_le_bytes().as_slice(), &[0u8; 12]].concat();
            if neuro {
                p.post("src", "dst", &data, &spike).unwrap();
            } else if k == 5 && round % 2 == 0 {
                // A buffer of the process's pool: the engine's to send by descriptor.
                let mut b = pool.acquire().unwrap();
                b.write_data(&data, 0, false).unwrap();
                p.post_buffer("src", "dst", b, &SendOptions::default())
                    .unwrap();
            } else if k == 9 {
                // A request: answered by the receipt once `dst` has it, after the rest.
                let r = p
                    .send_data_nb("src", "dst", &data, &SendOptions::default())
                    .unwrap();
                drop(r);
            } else {
                p.post("src", "dst", &data, &SendOptions::default())
                    .unwrap();
            }
        }
        // Read some now and then: the pair's rings drain, and it changes ways.
        if round % 7 == 3 {
            p.progress();
        }
        if round % 5 == 1 {
            let upto = (expected + 25).min(next);
            while expected < upto {
                take(&p, expected, next);
                expected += 1;
            }
        }
    }
    while expected < next {
        take(&p, expected, next);
        expected += 1;
    }
    assert!(p.recv("dst", Duration::ZERO).is_err());
}

/// A thread that posts over more pairs than it keeps endpoints for does not make a ring per
/// send: past the limit, new pairs take the engine, and an endpoint is given up for one
/// only every so many sends.
#[test]
fn a_thread_over_many_pairs_keeps_its_endpoints() {
    let fabric = format!("test-named-many-{}", std::process::id());
    let dir = FabricDir(fabric.clone());
    // Another engine, which takes every message into its queues (its rings drain).
    let far = protocol(&fabric);
    let sinks: Vec<String> = (0..NAMED_ENDPOINTS + 8).map(|i| format!("k{i}")).collect();
    for s in &sinks {
        far.register_node(node(s)).unwrap();
    }
    far.start_background_services().unwrap();
    let p = protocol(&fabric);
    p.register_node(node("a")).unwrap();
    let rounds = 200;
    for _ in 0..rounds {
        for s in &sinks {
            p.post("a", s, b"round", &SendOptions::default()).unwrap();
        }
    }
    for s in &sinks {
        for _ in 0..rounds {
            assert_eq!(far.recv(s, WAIT).unwrap().data, b"round");
        }
    }
    // Ring numbers count the rings this process made.
    let made = ep_files(&dir)
        .iter()
        .filter_map(|f| {
            let name = f.file_name()?.to_str()?;
            hyperfabric::transport::channel::parse_endpoint_name(name)
        })
        .map(|((_, _, _, n), _)| n)
        .max()
        .unwrap();
    let sends = (rounds * sinks.len()) as u32;
    assert!(
        ep_files(&dir).len() <= NAMED_ENDPOINTS,
        "{:?}",
        ep_files(&dir)
    );
    assert!(
        made < (NAMED_ENDPOINTS as u32) + sends / hyperfabric::fabric::NAMED_RENEW_EVERY + 8,
        "{made} rings made for {sends} sends"
    );
}

#[test]
fn endpoints_kept_for_sends_by_name_leave_with_the_protocol() {
    let fabric = format!("test-named-files-{}", std::process::id());
    let dir = FabricDir(fabric.clone());
    // Another engine (rings to it are files), which keeps the fabric's directory and takes
    // what arrives into its queue (the sender's rings drain, so pairs move to endpoints).
    let keeper = protocol(&fabric);
    keeper.register_node(node("keeper")).unwrap();
    keeper.start_background_services().unwrap();
    let p = std::sync::Arc::new(protocol(&fabric));
    p.register_node(node("a")).unwrap();
    // Posts until this thread's endpoint (the `files`-th ring) exists; returns how many.
    let root = common::rings::root(&dir);
    let send = move |p: &hyperfabric::fabric::HyperFabricProtocol, files: usize| {
        let mut n = 0;
        let rings = || {
            std::fs::read_dir(&root)
                .unwrap()
                .filter(|e| {
                    let e = e.as_ref().unwrap();
                    e.file_name().to_str().unwrap().starts_with("ep-")
                })
                .count()
        };
        while rings() < files {
            p.post("a", "keeper", b"m", &SendOptions::default())
                .unwrap();
            n += 1;
            assert!(n < 100_000, "no endpoint after {n} posts");
        }
        n
    };
    let mut sent = send(&p, 1);
    let (done, go) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let thread = {
        let p = p.clone();
        std::thread::spawn(move || {
            let n = send(&p, 2);
            drop(p);
            done.0.send(n).unwrap();
            // The thread lives on, idle, with its endpoint kept.
            go.1.recv().unwrap();
        })
    };
    sent += done.1.recv().unwrap();
    assert_eq!(ep_files(&dir).len(), 2);
    for _ in 0..sent {
        assert_eq!(keeper.recv("keeper", WAIT).unwrap().data, b"m");
    }
    let p = std::sync::Arc::into_inner(p).expect("the thread let go of the protocol");
    drop(p);
    // The idle thread still keeps its endpoint, but not its file.
    assert_eq!(ep_files(&dir), Vec::<std::path::PathBuf>::new());
    go.0.send(()).unwrap();
    thread.join().unwrap();
    assert!(keeper.recv("keeper", Duration::ZERO).is_err());
}

/// An endpoint dropped before its receiver found its ring leaves the ring's file until the
/// receiver took everything: nothing sent is lost, and the file goes afterwards.
#[test]
fn a_dropped_endpoint_leaves_its_ring_until_it_is_read() {
    let fabric = format!("test-named-left-{}", std::process::id());
    let dir = FabricDir(fabric.clone());
    let far = protocol(&fabric);
    far.register_node(node("far")).unwrap();
    let p = protocol(&fabric);
    p.register_node(node("a")).unwrap();
    let mut ep = p.endpoint("a", "far").unwrap();
    ep.post(b"sent before the drop").unwrap();
    drop(ep);
    assert_eq!(ep_files(&dir).len(), 1);
    assert_eq!(far.recv("far", WAIT).unwrap().data, b"sent before the drop");
    assert!(far.recv("far", Duration::ZERO).is_err());
    // Read: the next endpoint this process makes removes it.
    let ep = p.endpoint("a", "far").unwrap();
    assert_eq!(ep_files(&dir).len(), 1);
    drop(ep);
    assert_eq!(ep_files(&dir), Vec::<std::path::PathBuf>::new());
}

/// Events queued for a pair go before a buffer sent to it by descriptor, with sends by name
/// through the thread's endpoints or through the engine.
#[test]
fn a_buffer_waits_behind_the_events_queued_before_it() {
    for by_name in [true, false] {
        let fabric = format!("test-named-spikebuf-{}-{by_name}", std::process::id());
        let _dir = FabricDir(fabric.clone());
        let p = if by_name {
            protocol(&fabric)
        } else {
            common::engine_protocol(&fabric)
        };
        for id in ["src", "dst"] {
            p.register_node(node(id)).unwrap();
        }
        let pool = p.create_buffer_manager(4, 64).unwrap();
        let spike = SendOptions {
            data_type: DataType::NeuromorphicSpike,
            ..Default::default()
        };
        p.post("src", "dst", b"1: event", &spike).unwrap();
        let mut b = pool.acquire().unwrap();
        b.write_data(b"2: buffer", 0, false).unwrap();
        p.post_buffer("src", "dst", b, &SendOptions::default())
            .unwrap();
        assert_eq!(p.recv("dst", WAIT).unwrap().data, b"1: event");
        assert_eq!(p.recv("dst", WAIT).unwrap().data, b"2: buffer");
    }
}
