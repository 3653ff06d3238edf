//! Reply rings (answers to requests sent through endpoints) as a hostile or unlucky user meets
//! them: requests waited for in other threads than the one that sends, `test()` polled at a
//! human pace, far more answers held than the endpoint keeps, futures woken by answers that
//! are not theirs, reply ring slots rewritten by another process, answers at the ring's
//! limits, requests between nodes of one process and to the sending node itself, a
//! destination that leaves and comes back, and reply ring files replaced before the
//! destination opens them.

mod common;

use common::node;
use common::replies::*;
use hyperfabric::fabric::{wait_all, Completion, Request};
use hyperfabric::ring::{Region, RingMemory};
use hyperfabric::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Requests sent by one thread and waited for by others.
// ---------------------------------------------------------------------------------------

/// Every tenth answer is too large for the reply ring (it comes the engine's way): whoever
/// waits for it reads the reply ring to its end meanwhile.
fn answer_len(i: u32) -> usize {
    if i % 10 == 0 {
        20_000
    } else {
        8
    }
}

/// One thread sends through the endpoint (it must: `Endpoint` is not `Sync`) and hands each
/// `Request` to waiter threads, the pattern of a dispatcher with workers (or of an async
/// runtime whose tasks run on several threads). No request may fail as corrupt: nobody
/// forges anything here.
#[test]
fn requests_waited_for_in_other_threads_never_fail_as_corrupt() {
    let dir = fabric("threads");
    let srv = server(&dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u32, Request)>(64);
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let bad = Arc::new(AtomicUsize::new(0));
    let first_bad = Arc::new(std::sync::Mutex::new(None::<String>));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let (rx, bad, first_bad) = (rx.clone(), bad.clone(), first_bad.clone());
            std::thread::spawn(move || loop {
                let Ok((i, r)) = rx.lock().unwrap().recv() else {
                    return;
                };
                let t = Instant::now();
                let o = r.wait();
                if t.elapsed() > Duration::from_millis(200) {
                    eprintln!(
                        "request {i} took {:?}: {:?}",
                        t.elapsed(),
                        o.as_ref().map(|v| v.len())
                    );
                }
                match o {
                    Ok(v) if v == vec![i as u8; answer_len(i)] => {}
                    other => {
                        bad.fetch_add(1, Ordering::Relaxed);
                        first_bad
                            .lock()
                            .unwrap()
                            .get_or_insert(format!("request {i}: {other:?}"));
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut sent = 0u32;
    while started.elapsed() < Duration::from_secs(20) && bad.load(Ordering::Relaxed) == 0 {
        let r = ep
            .send_data_nb(
                &ask(answer_len(sent) as u32, sent as u8),
                &opts(Duration::from_secs(5)),
            )
            .unwrap();
        tx.send((sent, r)).unwrap();
        sent += 1;
    }
    drop(tx);
    for w in waiters {
        w.join().unwrap();
    }
    let bad = bad.load(Ordering::Relaxed);
    assert_eq!(
        bad,
        0,
        "{bad} of {sent} requests failed, the first: {}",
        first_bad.lock().unwrap().clone().unwrap_or_default()
    );
    drop(srv);
}

// ---------------------------------------------------------------------------------------
// Deadlines and liveness seen through `test()` and futures.
// ---------------------------------------------------------------------------------------

/// `test()` called every 10 ms (an application that does other work between looks) on a
/// request of 200 ms to a destination that does not answer in time: the request must
/// time out near its 200 ms, as requests through the engine do.
#[test]
fn a_request_tested_now_and_then_times_out_at_its_deadline() {
    let dir = fabric("testpace");
    let srv = server(&dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    // The handler sleeps 2 s, past the request's 200 ms.
    let mut r = ep
        .send_data_nb(&ask_slow(1, 1, 2000), &opts(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let outcome = loop {
        if let Some(o) = r.test() {
            break o;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never completed"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    // The same through the engine (a plain send_data_nb of the protocol), for comparison.
    let mut e = cli
        .send_data_nb(
            "cli",
            "srv",
            &ask_slow(1, 1, 2000),
            &opts(Duration::from_millis(200)),
        )
        .unwrap();
    let started_e = Instant::now();
    let outcome_e = loop {
        if let Some(o) = e.test() {
            break o;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took_e = started_e.elapsed();
    eprintln!("endpoint: {outcome:?} after {took:?}; engine: {outcome_e:?} after {took_e:?}");
    assert!(
        took < Duration::from_millis(1000) && outcome.is_err(),
        "endpoint request of 200 ms completed after {took:?} with {outcome:?} (engine: {took_e:?})"
    );
    drop(srv);
}

/// A future awaiting an answer that takes a while is woken by the engine whenever the
/// endpoint holds an answer to *another* request that nobody takes yet: it should be polled
/// a handful of times, not thousands.
#[test]
fn a_future_is_not_woken_over_and_over_by_an_answer_that_is_not_its_own() {
    let dir = fabric("wakes");
    let srv = server(&dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    cli.start_background_services().unwrap();
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    // Answered at once, never looked at during the wait below.
    let other = ep
        .send_data_nb(&ask(4, 1), &opts(Duration::from_secs(20)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // Answered after 250 ms.
    let slow = ep
        .send_data_nb(&ask_slow(4, 2, 250), &opts(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let (got, polls) = block_on(slow, Duration::from_secs(20));
    assert_eq!(got.unwrap(), vec![2u8; 4]);
    eprintln!("polled {polls} times in {:?}", started.elapsed());
    assert!(
        polls < 50,
        "a future waiting 250 ms was polled {polls} times"
    );
    assert_eq!(other.wait().unwrap(), vec![1u8; 4]);
    drop(srv);
}

/// A future with background services running on a destination that does not answer in
/// time: it completes with `TimeoutError` near its deadline.
#[test]
fn a_future_times_out_near_its_deadline() {
    let dir = fabric("futto");
    let srv = server(&dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    cli.start_background_services().unwrap();
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    let r = ep
        .send_data_nb(&ask_slow(1, 1, 2000), &opts(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let (got, polls) = block_on(r, Duration::from_secs(20));
    let took = started.elapsed();
    eprintln!("{got:?} after {took:?}, {polls} polls");
    assert_eq!(got.map_err(|e| e.kind()), Err(ErrorKind::Timeout));
    assert!(
        took < Duration::from_millis(600),
        "timed out after {took:?}"
    );
    assert!(polls < 50, "polled {polls} times");
    // The late answer is dropped, and the next request is answered right.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        ep.send_data(&ask(3, 9), &opts(Duration::from_secs(5)))
            .unwrap(),
        vec![9u8; 3]
    );
    drop(srv);
}

// ---------------------------------------------------------------------------------------
// Many answers outstanding.
// ---------------------------------------------------------------------------------------

/// 70,000 requests sent before any is waited for, with the requester's engine thread
/// running (it takes the answers that come the engine's way and holds them for the
/// endpoint): every one must get its answer, as requests through the engine do.
#[test]
fn seventy_thousand_outstanding_requests_all_get_their_answers() {
    let dir = fabric("held");
    let srv = server(&dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    cli.start_background_services().unwrap();
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    const N: u32 = 70_000;
    let mut requests: Vec<Request> = (0..N)
        .map(|i| {
            ep.send_data_nb(&ask(2, i as u8), &opts(Duration::from_secs(120)))
                .unwrap()
        })
        .collect();
    // Let every answer arrive before anyone looks.
    std::thread::sleep(Duration::from_secs(3));
    let done = wait_all(&mut requests, Duration::from_secs(10)).unwrap();
    let mut failed = 0;
    let mut first = None;
    for (i, c) in done.into_iter().enumerate() {
        match c {
            Completion::Done(Ok(v)) if v == vec![i as u8; 2] => {}
            other => {
                failed += 1;
                first.get_or_insert(format!("request {i}: {other:?}"));
            }
        }
    }
    assert_eq!(
        failed, 0,
        "{failed} of {N} requests without answer; first: {first:?}"
    );
    drop(srv);
}

/// Answers of every size around the reply ring's bound (16 KiB, and the ring's own limit a
/// few bytes below it), mixed with small ones, sent before any is waited for and taken in
/// reverse order.
#[test]
fn answers_around_the_reply_ring_limits_arrive_whole() {
    let dir = fabric("limits");
    let srv = server(&dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    let sizes: Vec<u32> = (16_340..16_400)
        .chain([0, 1, 40, 48, 49, 4096, 32 << 10, 1 << 20])
        .collect();
    let mut requests: Vec<(u32, Request)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            (
                len,
                ep.send_data_nb(&ask(len, i as u8), &opts(Duration::from_secs(20)))
                    .unwrap(),
            )
        })
        .collect();
    for (i, (len, r)) in requests.iter_mut().enumerate().rev() {
        assert_eq!(
            r.wait_mut().unwrap(),
            vec![i as u8; *len as usize],
            "answer of {len} bytes"
        );
    }
    // One at a time too.
    for &len in &sizes {
        assert_eq!(
            ep.send_data(&ask(len, 5), &opts(Duration::from_secs(20)))
                .unwrap(),
            vec![5u8; len as usize],
            "answer of {len} bytes"
        );
    }
    drop(srv);
}

// ---------------------------------------------------------------------------------------
// Another process rewrites the reply ring.
// ---------------------------------------------------------------------------------------

/// Answers sit unread in the reply ring; another process rewrites the slot header of the
/// second (a length past the ring). The ring is lost with the answers after it: their
/// requests must fail at once (`MalformedFrameError`, as for a frame that fails the reply
/// checks), not wait for their timeouts.
#[test]
fn answers_lost_to_a_rewritten_slot_header_fail_at_once() {
    let mut wrong = Vec::new();
    for (what, offset, bytes) in [
        // The slot header: len at 4..8, kind 8, flags 9, aux 10..12, src 12..16.
        (
            "length past the ring",
            4usize,
            (u32::MAX - 7).to_le_bytes().to_vec(),
        ),
        ("another node", 12, 4242u32.to_le_bytes().to_vec()),
    ] {
        let dir = fabric("rewritten");
        let srv = server(&dir.0);
        let cli = protocol(&dir.0, &["cli"]);
        let mut ep = cli.endpoint("cli", "srv").unwrap();
        let reply = files(&dir, "rp-");
        assert_eq!(reply.len(), 1);
        // Five answers of one slot each (8 bytes of id, 8 of data), in slots 0..5.
        let mut requests: Vec<Request> = (0..5u8)
            .map(|i| {
                ep.send_data_nb(&ask(8, i), &opts(Duration::from_secs(4)))
                    .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let region = Region::open_file(&reply[0]).unwrap();
        // SAFETY: inside the slot array; the test plays the process that writes where it
        // must not.
        unsafe { region.write(1, offset, &bytes) };
        let mut outcomes = Vec::new();
        for r in requests.iter_mut() {
            let started = Instant::now();
            let o = r.wait_mut();
            outcomes.push((o.map_err(|e| e.kind()), started.elapsed()));
        }
        eprintln!("{what}: {outcomes:?}");
        assert_eq!(outcomes[0].0, Ok(vec![0u8; 8]), "{what}");
        for (i, (o, took)) in outcomes.iter().enumerate().skip(1) {
            if !(*o == Err(ErrorKind::MalformedFrame) && *took < Duration::from_secs(1)) {
                wrong.push(format!(
                    "{what}: request {i} ended with {o:?} after {took:?}"
                ));
            }
        }
        drop(srv);
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

// ---------------------------------------------------------------------------------------
// Nodes of one process.
// ---------------------------------------------------------------------------------------

/// Requests from a node to itself and to another node of the same process (rings in process
/// memory), with and without background services, with and without handler, small and
/// large answers, synchronous and not.
#[test]
fn requests_between_nodes_of_one_process_and_to_oneself() {
    for services in [false, true] {
        let dir = fabric("inproc");
        let p = protocol(&dir.0, &["a", "b", "c"]);
        p.on_receive("a", answer).unwrap();
        p.on_receive("b", answer).unwrap();
        if services {
            p.start_background_services().unwrap();
        }
        let mut to_self = p.endpoint("a", "a").unwrap();
        let mut to_b = p.endpoint("a", "b").unwrap();
        let mut to_c = p.endpoint("a", "c").unwrap(); // no handler: answered by a receipt
        for len in [0u32, 1, 100, 16_000, 16_384, 16_385, 200_000] {
            for ep in [&mut to_self, &mut to_b] {
                let o = opts(Duration::from_secs(10));
                assert_eq!(
                    ep.send_data(&ask(len, 3), &o).unwrap(),
                    vec![3u8; len as usize],
                    "{ep:?} {len} services {services}"
                );
                let mut rs: Vec<Request> = (0..50u8)
                    .map(|i| ep.send_data_nb(&ask(len, i), &o).unwrap())
                    .collect();
                for (i, r) in rs.iter_mut().enumerate().rev() {
                    assert_eq!(r.wait_mut().unwrap(), vec![i as u8; len as usize]);
                }
            }
            if !services {
                // Without the engine thread, a node without handler is served by `recv` only
                // (an endpoint request to it waits for one; see probe_in_process_no_handler_engine_path).
                continue;
            }
            assert_eq!(
                to_c.send_data(&ask(len, 3), &opts(Duration::from_secs(10)))
                    .unwrap(),
                Vec::<u8>::new()
            );
            assert_eq!(
                p.recv("c", Duration::from_secs(5)).unwrap().data.to_vec(),
                ask(len, 3)
            );
        }
        // A future on a request to oneself.
        if services {
            let r = to_self
                .send_data_nb(&ask(7, 7), &opts(Duration::from_secs(10)))
                .unwrap();
            assert_eq!(
                block_on(r, Duration::from_secs(10)).0.unwrap(),
                vec![7u8; 7]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// A destination that leaves and comes back.
// ---------------------------------------------------------------------------------------

/// The destination unregisters while requests wait and registers again under the same
/// name with another handler: the old requests fail (`NodeNotFoundError`), the old endpoint
/// refuses, a new endpoint gets the new node's answers, never an old one.
#[test]
fn a_destination_that_comes_back_never_answers_new_requests_with_old_answers() {
    let dir = fabric("comeback");
    let srv = protocol(&dir.0, &["srv"]);
    srv.on_receive("srv", answer).unwrap();
    srv.start_background_services().unwrap();
    let cli = protocol(&dir.0, &["cli"]);
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    for round in 0..20u8 {
        // The handler sleeps 50 ms: the node leaves while it answers, or before.
        let mut old: Vec<Request> = (0..4u8)
            .map(|i| {
                ep.send_data_nb(&ask_slow(16, i, 20), &opts(Duration::from_secs(10)))
                    .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(round as u64 % 3 * 10));
        assert!(srv.unregister_node("srv").unwrap());
        srv.register_node(node("srv")).unwrap();
        srv.on_receive("srv", |m| Ok([b"new:".as_slice(), &m.data[..]].concat()))
            .unwrap();
        for (i, r) in old.iter_mut().enumerate() {
            match r.wait_mut() {
                Ok(v) => assert_eq!(v, vec![i as u8; 16], "round {round}: old request {i}"),
                Err(e) => assert_eq!(e.kind(), ErrorKind::NodeNotFound, "round {round}: {e}"),
            }
        }
        let e = ep
            .send_data(b"x", &opts(Duration::from_secs(2)))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NodeNotFound, "{e}");
        let e = ep.post(b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NodeNotFound, "{e}");
        ep = cli.endpoint("cli", "srv").unwrap();
        for i in 0..20u8 {
            assert_eq!(
                ep.send_data(&[i, 1, 2, 3, 4], &opts(Duration::from_secs(10)))
                    .unwrap(),
                [b"new:".as_slice(), &[i, 1, 2, 3, 4]].concat(),
                "round {round}"
            );
        }
        srv.on_receive("srv", answer).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Reply ring files replaced before the destination opens them.
// ---------------------------------------------------------------------------------------

/// Before the destination's engine finds a new endpoint, its reply ring file is replaced by
/// a FIFO, a symbolic link, a directory, an empty file or a ring of the wrong size: the
/// destination must not block or crash, and answers must still come (the engine's way).
#[test]
fn a_replaced_reply_ring_file_costs_nothing_but_the_fast_way() {
    for what in [
        "fifo",
        "symlink",
        "directory",
        "empty",
        "small ring",
        "gone",
    ] {
        let dir = fabric("replaced");
        // The server does not run its engine yet: it finds the endpoint later.
        let srv = protocol(&dir.0, &["srv"]);
        srv.on_receive("srv", answer).unwrap();
        let cli = protocol(&dir.0, &["cli"]);
        let mut ep = cli.endpoint("cli", "srv").unwrap();
        let reply = files(&dir, "rp-");
        assert_eq!(reply.len(), 1, "{what}");
        let path = &reply[0];
        std::fs::remove_file(path).unwrap();
        match what {
            "fifo" => {
                let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            }
            "symlink" => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
            "directory" => std::fs::create_dir(path).unwrap(),
            "empty" => drop(std::fs::File::create(path).unwrap()),
            "small ring" => drop(Region::create_file(path, 2).unwrap()),
            _ => {}
        }
        srv.start_background_services().unwrap();
        let started = Instant::now();
        for i in 0..20u32 {
            assert_eq!(
                ep.send_data(&ask(i * 100, 4), &opts(Duration::from_secs(5)))
                    .unwrap(),
                vec![4u8; i as usize * 100],
                "{what}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        drop(ep);
        let _ = std::fs::remove_dir(path);
        let _ = std::fs::remove_file(path);
        drop(srv);
    }
}

/// A request from a node to a node of the same process that has no handler, without
/// background services and without anyone in `recv`: the waiting requester drives its
/// engine, which gives the receipt (an empty answer), through the engine and through an
/// endpoint alike.
#[test]
fn a_request_to_a_node_of_this_process_without_handler_gets_its_receipt() {
    let dir = fabric("nohandler");
    let p = protocol(&dir.0, &["a", "c"]);
    let r = p.send_data("a", "c", b"x", &opts(Duration::from_secs(5)));
    assert_eq!(r.unwrap(), Vec::<u8>::new());
    let mut ep = p.endpoint("a", "c").unwrap();
    let r = ep.send_data(b"y", &opts(Duration::from_secs(5)));
    assert_eq!(r.unwrap(), Vec::<u8>::new());
    // Both requests are queued for `recv`, in order.
    assert_eq!(&p.recv("c", Duration::from_secs(1)).unwrap().data[..], b"x");
    assert_eq!(&p.recv("c", Duration::from_secs(1)).unwrap().data[..], b"y");
}

/// A request whose frame another process rewrote before its destination read it: the
/// destination drops the endpoint's ring as corrupt, and the request fails at its waiter's
/// next liveness check with `MalformedFrameError`, not at its deadline.
#[test]
fn a_request_in_a_ring_its_destination_dropped_fails_at_once() {
    let dir = fabric("dropped-ring");
    let tx = protocol(&dir.0, &["a"]);
    let rx = protocol(&dir.0, &["b"]);
    let (mut ep, file) = common::rings::endpoint_with_file(&dir, &tx, "a", "b");
    let req = ep
        .send_data_nb(b"hello", &opts(Duration::from_secs(20)))
        .unwrap();
    // The slot header's flags: no frame an endpoint writes has them all.
    common::rings::forge(&file, 0, 9, &[0xff]);
    let e = rx.recv("b", Duration::from_millis(100)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    let started = Instant::now();
    assert_eq!(req.wait().unwrap_err().kind(), ErrorKind::MalformedFrame);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Later sends through it are refused at once.
    let e = ep
        .send_data(b"again", &opts(Duration::from_secs(20)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MalformedFrame);
}
