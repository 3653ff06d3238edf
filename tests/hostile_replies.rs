//! Reply rings (answers to requests sent through endpoints) as a hostile or unlucky user meets
//! them: requests waited for in other threads than the one that sends, `test()` polled at a
//! human pace, far more answers held than the endpoint keeps, futures woken by answers that
//! are not theirs, reply ring slots rewritten by another process, answers at the ring's
//! limits, requests between nodes of one process and to the sending node itself, a
//! destination that leaves and comes back, reply ring files replaced before the destination
//! opens them, destinations killed while requests wait, and a `fork()` child.

mod common;

use common::{child_command, child_var, node, FabricDir};
use hyperfabric::fabric::{wait_all, Completion, HyperFabricProtocol, Request, SendOptions};
use hyperfabric::ring::{Region, RingMemory};
use hyperfabric::ErrorKind;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLE_FABRIC: &str = "HF_HOSTILE_REPLY_FABRIC";

fn fabric(tag: &str) -> FabricDir {
    FabricDir(format!("hostile-rp-{tag}-{}", std::process::id()))
}

fn protocol(fabric: &str, nodes: &[&str]) -> HyperFabricProtocol {
    let p = common::protocol(fabric);
    for n in nodes {
        p.register_node(node(n)).unwrap();
    }
    p
}

/// A server whose node `srv` answers each request with as many bytes as the request's first
/// four name (little-endian), each byte the request's fifth, after sleeping ten times as many
/// milliseconds as its sixth byte says (when there is one).
fn server(fabric: &str) -> HyperFabricProtocol {
    let p = protocol(fabric, &["srv"]);
    p.on_receive("srv", answer).unwrap();
    p.start_background_services().unwrap();
    p
}

fn answer(m: &hyperfabric::fabric::ReceivedMessage) -> hyperfabric::Result<Vec<u8>> {
    let len = u32::from_le_bytes(m.data[..4].try_into().unwrap()) as usize;
    if let Some(&ms) = m.data.get(5) {
        std::thread::sleep(Duration::from_millis(ms as u64 * 10));
    }
    Ok(vec![m.data[4]; len])
}

fn ask(len: u32, fill: u8) -> Vec<u8> {
    let mut v = len.to_le_bytes().to_vec();
    v.push(fill);
    v
}

fn ask_slow(len: u32, fill: u8, ms: u32) -> Vec<u8> {
    let mut v = ask(len, fill);
    v.push((ms / 10) as u8);
    v
}

fn opts(timeout: Duration) -> SendOptions {
    SendOptions {
        timeout,
        ..Default::default()
    }
}

fn root(dir: &FabricDir) -> PathBuf {
    hyperfabric::sys::state_root().join(&dir.0)
}

/// The files of the fabric directory whose names start with `prefix`.
fn files(dir: &FabricDir, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Runs a future to completion on this thread, sleeping until it is woken; returns its
/// output and how many times it was polled.
fn block_on<F: std::future::Future>(f: F, limit: Duration) -> (F::Output, usize) {
    struct Thread(std::thread::Thread);
    impl std::task::Wake for Thread {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Thread(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = Instant::now() + limit;
    let mut polls = 0;
    loop {
        polls += 1;
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return (v, polls);
        }
        assert!(Instant::now() < deadline, "the future was never woken");
        std::thread::park_timeout(Duration::from_secs(1));
    }
}

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

/// For comparison with `seventy_thousand_outstanding_requests_all_get_their_answers`: the
/// same through the engine (`HyperFabricProtocol::send_data_nb`) passes.
#[test]
#[ignore = "comparison: the engine's way holds every answer"]
fn probe_seventy_thousand_through_the_engine() {
    let dir = fabric("heldeng");
    let srv = server(&dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    cli.start_background_services().unwrap();
    const N: u32 = 70_000;
    let mut requests: Vec<Request> = (0..N)
        .map(|i| {
            cli.send_data_nb(
                "cli",
                "srv",
                &ask(2, i as u8),
                &opts(Duration::from_secs(120)),
            )
            .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let done = wait_all(&mut requests, Duration::from_secs(10)).unwrap();
    let failed = done
        .into_iter()
        .enumerate()
        .filter(|(i, c)| !matches!(c, Completion::Done(Ok(v)) if *v == vec![*i as u8; 2]))
        .count();
    assert_eq!(failed, 0);
    drop(srv);
}

/// A request from a node to a node of the same process that has no handler, without
/// background services and without anyone in `recv`: through the engine it is answered (a
/// receipt) at once, through an endpoint it times out. The same before this change (the
/// engine's poll leaves nodes without handler to `recv`); not a reply ring matter.
#[test]
#[ignore = "pre-existing: an endpoint request to a node of this process without handler waits for a recv"]
fn probe_in_process_no_handler_engine_path() {
    let dir = fabric("probe-nh");
    let p = protocol(&dir.0, &["a", "c"]);
    let r = p.send_data("a", "c", b"x", &opts(Duration::from_secs(2)));
    eprintln!("engine path a->c without services: {r:?}");
    let mut ep = p.endpoint("a", "c").unwrap();
    let r = ep.send_data(b"x", &opts(Duration::from_secs(2)));
    eprintln!("endpoint a->c without services: {r:?}");
}

// ---------------------------------------------------------------------------------------
// Destinations and requesters killed.
// ---------------------------------------------------------------------------------------

/// A child whose node `mute` (and `mute2`) takes every request and never answers.
#[test]
#[ignore = "child side of the tests of destinations killed while requests wait"]
fn child_mute() {
    let fabric = child_var(ROLE_FABRIC);
    let p = protocol(&fabric, &["mute"]);
    p.on_receive("mute", |_| {
        println!("got");
        std::thread::sleep(Duration::from_secs(120));
        Ok(Vec::new())
    })
    .unwrap();
    p.start_background_services().unwrap();
    println!("ready");
    common::serve_until_stdin_closes();
}

struct Child {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Child {
    fn spawn(role: &str, fabric: &str) -> Child {
        let mut child = child_command(role)
            .env(ROLE_FABRIC, fabric)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut c = Child { child, lines };
        c.expect("ready");
        c
    }

    fn expect(&mut self, what: &str) {
        assert!(
            self.lines
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.trim_end().ends_with(what)),
            "the child never said {what}"
        );
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The destination process is killed while requests wait for it: one tested every 10 ms
/// (no background services), one in `wait_any` (no background services), one awaited as a
/// future (background services). Each must fail with `NodeNotFoundError` soon (the waiter
/// checks every 50 ms), not at its 60 s timeout.
#[test]
fn requests_to_a_killed_destination_fail_soon_however_they_are_waited_for() {
    let dir = fabric("killed");
    let mut child = Child::spawn("child_mute", &dir.0);
    // Three requesters (protocols of their own: nothing one learns helps another).
    let plain = protocol(&dir.0, &["plain"]);
    let plain2 = protocol(&dir.0, &["plain2"]);
    let served = protocol(&dir.0, &["served"]);
    served.start_background_services().unwrap();
    let long = opts(Duration::from_secs(60));
    let mut ep_plain = plain.endpoint("plain", "mute").unwrap();
    let mut ep_plain2 = plain2.endpoint("plain2", "mute").unwrap();
    let mut ep_served = served.endpoint("served", "mute").unwrap();
    let mut tested = ep_plain.send_data_nb(b"1", &long).unwrap();
    let mut any = vec![ep_plain2.send_data_nb(b"2", &long).unwrap()];
    let future = ep_served.send_data_nb(b"3", &long).unwrap();
    child.expect("got");
    let (tx, rx) = std::sync::mpsc::channel::<(&str, Duration, String)>();
    let killed = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let since = |k: &Arc<std::sync::Mutex<Option<Instant>>>| {
        k.lock().unwrap().map(|t| t.elapsed()).unwrap_or_default()
    };
    std::thread::scope(|s| {
        let (tx1, k1) = (tx.clone(), killed.clone());
        s.spawn(move || {
            let o = loop {
                if let Some(o) = tested.test() {
                    break o;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            tx1.send(("test() every 10 ms", since(&k1), format!("{o:?}")))
                .unwrap();
        });
        let (tx2, k2) = (tx.clone(), killed.clone());
        s.spawn(move || {
            let o = wait_any_loop(&mut any);
            tx2.send(("wait_any", since(&k2), o)).unwrap();
        });
        let (tx3, k3) = (tx.clone(), killed.clone());
        s.spawn(move || {
            let (o, polls) = block_on(future, Duration::from_secs(70));
            tx3.send(("future", since(&k3), format!("{o:?} ({polls} polls)")))
                .unwrap();
        });
        std::thread::sleep(Duration::from_millis(300));
        *killed.lock().unwrap() = Some(Instant::now());
        child.kill();
    });
    drop(tx);
    let mut slow = Vec::new();
    for (how, after, outcome) in rx {
        eprintln!("{how}: {outcome} {after:?} after the kill");
        if !outcome.contains("NodeNotFound") || after > Duration::from_secs(2) {
            slow.push(format!("{how}: {outcome} {after:?} after the kill"));
        }
    }
    assert!(slow.is_empty(), "{slow:#?}");
}

fn wait_any_loop(requests: &mut [Request]) -> String {
    loop {
        match hyperfabric::fabric::wait_any(requests, Duration::from_millis(100)) {
            Ok((_, o)) => return format!("{o:?}"),
            Err(e) if e.kind() == ErrorKind::Timeout => continue,
            Err(e) => return format!("wait_any itself: {e:?}"),
        }
    }
}

/// A child that makes three endpoints to `srv`, asks through each, sends 300 more requests
/// with large answers nobody will read, and waits to be killed.
#[test]
#[ignore = "child side of a_killed_requester_leaves_no_ring_files"]
fn child_requester() {
    let fabric = child_var(ROLE_FABRIC);
    let p = protocol(&fabric, &["req"]);
    let mut eps: Vec<_> = (0..3).map(|_| p.endpoint("req", "srv").unwrap()).collect();
    let mut pending = Vec::new();
    for ep in &mut eps {
        assert_eq!(
            ep.send_data(&ask(4, 1), &opts(Duration::from_secs(10)))
                .unwrap(),
            vec![1u8; 4]
        );
        // HF_HOSTILE_ANSWERS=small|large: all 8 bytes or all 100 KB (default: half each).
        let sizes = std::env::var("HF_HOSTILE_ANSWERS").unwrap_or_default();
        let count = if sizes == "small" { 1000 } else { 100 };
        for i in 0..count {
            let large = match sizes.as_str() {
                "small" => false,
                "large" => true,
                _ => i % 2 == 0,
            };
            let data = ask(if large { 100_000 } else { 8 }, 2);
            let o = opts(Duration::from_secs(60));
            pending.push(if std::env::var("HF_HOSTILE_VIA_ENGINE").is_ok() {
                p.send_data_nb("req", "srv", &data, &o).unwrap()
            } else {
                ep.send_data_nb(&data, &o).unwrap()
            });
        }
    }
    println!("ready");
    common::serve_until_stdin_closes();
    drop(pending);
}

/// The requester is killed with answers on their way to it: the server keeps answering
/// others at once, its background services stop at once, and the requester's ring files
/// (endpoint and reply rings) are removed once it is found dead, like the rest of what it
/// left. (The files go; but the server's engine goes on answering the dead requester's
/// queued requests from its orphaned endpoint ring, and each answer that misses the full
/// reply ring spins 5 s in `send_reply` under the engine lock: other requesters wait 5 to
/// 15 s, and stopping the server takes 25 to 280 s. At the parent commit, with the same
/// child: under 10 ms and 1 ms.)
#[test]
fn a_killed_requester_leaves_no_ring_files() {
    let dir = fabric("reqkilled");
    let srv = server(&dir.0);
    // HF_HOSTILE_CLI_FIRST=1: the other requester registers before the child (it cannot
    // take the dead child's index).
    let early = std::env::var("HF_HOSTILE_CLI_FIRST")
        .is_ok()
        .then(|| protocol(&dir.0, &["cli"]));
    let mut child = Child::spawn("child_requester", &dir.0);
    let pid = child.child.id();
    assert_eq!(files_of(&dir, "rp-", pid).len(), 3);
    assert_eq!(files_of(&dir, "ep-", pid).len(), 3);
    child.kill();
    let killed = Instant::now();
    let cli = early.unwrap_or_else(|| protocol(&dir.0, &["cli"]));
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    let mut slowest = Duration::ZERO;
    loop {
        let t = Instant::now();
        assert_eq!(
            ep.send_data(&ask(64, 3), &opts(Duration::from_secs(30)))
                .unwrap(),
            vec![3u8; 64]
        );
        slowest = slowest.max(t.elapsed());
        let (rp, eps) = (files_of(&dir, "rp-", pid), files_of(&dir, "ep-", pid));
        if rp.is_empty() && eps.is_empty() {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "left: {rp:?} {eps:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("files gone after {:?}", killed.elapsed());
    // The server answers others at once, also while it still holds the dead one's requests.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        ep.send_data(&ask(64, 3), &opts(Duration::from_secs(30)))
            .unwrap();
        slowest = slowest.max(t.elapsed());
    }
    let t = Instant::now();
    drop(srv);
    eprintln!(
        "slowest answer {slowest:?}; the server stopped in {:?}",
        t.elapsed()
    );
    assert!(
        slowest < Duration::from_secs(1),
        "an answer took {slowest:?}"
    );
}

/// The ring files of process `pid` whose names start with `prefix`.
fn files_of(dir: &FabricDir, prefix: &str, pid: u32) -> Vec<PathBuf> {
    files(dir, prefix)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.split(['-', '.']).nth(3) == Some(pid.to_string().as_str())
        })
        .collect()
}

/// A requester that lives but reads none of its answers (300 requests, half with 100 KB
/// answers) makes the server's engine wait 5 s for room per answer it cannot place, and
/// every other requester of that server waits with it. Not this change's doing: through the
/// engine (HF_HOSTILE_VIA_ENGINE=1) it is worse (15 s); reply rings only add room.
#[test]
#[ignore = "pre-existing: a requester that reads nothing stalls its server for everyone"]
fn a_requester_that_reads_nothing_does_not_stall_the_server_for_others() {
    let dir = fabric("noreader");
    let srv = server(&dir.0);
    let _child = Child::spawn("child_requester", &dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        assert_eq!(
            ep.send_data(&ask(64, 3), &opts(Duration::from_secs(30)))
                .unwrap(),
            vec![3u8; 64]
        );
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "an answer took {slowest:?}"
    );
    drop(srv);
}

// ---------------------------------------------------------------------------------------
// A fork() child.
// ---------------------------------------------------------------------------------------

/// A `fork()` child of a process with an endpoint and requests in flight uses them: every
/// call refuses (`InvalidArgumentError`) and nothing it does reaches the destination or
/// costs the parent a message or an answer.
#[test]
fn a_fork_child_cannot_use_the_parents_endpoint_or_requests() {
    fork_child_uses_the_endpoint(false);
}

/// `Endpoint::post_many` has no fork check: in a `fork()` child it returns `Ok` and writes
/// into the parent's ring as a second producer (the message is lost or overwritten by the
/// parent's next one). Not this change's doing: the same at its parent commit.
#[test]
#[ignore = "pre-existing: post_many in a fork() child writes into the parent's ring"]
fn a_fork_child_cannot_post_many_through_the_parents_endpoint() {
    fork_child_uses_the_endpoint(true);
}

fn fork_child_uses_the_endpoint(post_many: bool) {
    let dir = fabric("fork");
    let srv = protocol(&dir.0, &["srv"]);
    let got = Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let got2 = got.clone();
    srv.on_receive("srv", move |m| {
        if m.one_way {
            got2.lock().unwrap().push(m.data.to_vec());
            return Ok(Vec::new());
        }
        answer(m)
    })
    .unwrap();
    srv.start_background_services().unwrap();
    let cli = protocol(&dir.0, &["cli"]);
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    ep.post(b"parent-0").unwrap();
    // Answered after 300 ms: in flight while the child runs.
    let mut inflight = ep
        .send_data_nb(&ask_slow(8, 1, 300), &opts(Duration::from_secs(10)))
        .unwrap();
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (rd, wr) = (fds[0], fds[1]);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // The child: report each outcome on the pipe, then leave without running destructors.
        let mut report = String::new();
        report += &format!("post: {:?}\n", ep.post(b"child-post").map_err(|e| e.kind()));
        if post_many {
            report += &format!(
                "post_many: {:?}\n",
                ep.post_many(&[b"child-many".as_slice()])
                    .map_err(|e| e.kind())
            );
        }
        report += &format!(
            "post_with: {:?}\n",
            ep.post_with(b"child-with", &SendOptions::default())
                .map_err(|e| e.kind())
        );
        report += &format!(
            "send_data: {:?}\n",
            ep.send_data(&ask(1, 1), &opts(Duration::from_millis(500)))
                .map_err(|e| e.kind())
        );
        report += &format!(
            "send_data_nb: {:?}\n",
            ep.send_data_nb(&ask(1, 1), &opts(Duration::from_millis(500)))
                .map(drop)
                .map_err(|e| e.kind())
        );
        report += &format!(
            "test: {:?}\n",
            inflight.test().map(|r| r.map_err(|e| e.kind()))
        );
        report += &format!("wait: {:?}\n", inflight.wait_mut().map_err(|e| e.kind()));
        unsafe {
            libc::write(wr, report.as_ptr().cast(), report.len());
            libc::_exit(0);
        }
    }
    unsafe { libc::close(wr) };
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let mut report = Vec::new();
    {
        use std::io::Read;
        let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(rd) };
        f.read_to_end(&mut report).unwrap();
    }
    let report = String::from_utf8(report).unwrap();
    eprintln!("child: exit status {status}\n{report}");
    // The parent goes on.
    for i in 1..=20u8 {
        ep.post(format!("parent-{i}").as_bytes()).unwrap();
    }
    assert_eq!(inflight.wait_mut().unwrap(), vec![1u8; 8]);
    assert_eq!(
        ep.send_data(&ask(4, 4), &opts(Duration::from_secs(5)))
            .unwrap(),
        vec![4u8; 4]
    );
    std::thread::sleep(Duration::from_millis(200));
    let got: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect();
    let expected: Vec<String> = (0..=20).map(|i| format!("parent-{i}")).collect();
    let mut wrong = Vec::new();
    for line in report.lines() {
        if !line.ends_with("Err(InvalidArgument)") && !line.ends_with("Some(Err(InvalidArgument))")
        {
            wrong.push(format!("child {line}"));
        }
    }
    if got != expected {
        wrong.push(format!("the server got {got:?}"));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    drop(srv);
}

/// A child that sends five requests to `slow` (answered after 300 ms each, with 20 KB: too
/// large for the reply ring) and waits to be killed.
#[test]
#[ignore = "child side of a_new_requester_never_gets_the_answers_of_a_dead_one"]
fn child_asks_slow() {
    let fabric = child_var(ROLE_FABRIC);
    let p = protocol(&fabric, &["req"]);
    let mut ep = p.endpoint("req", "slow").unwrap();
    let pending: Vec<Request> = (0..5u8)
        .map(|i| {
            let data = ask_slow(20_000, 0xd0 + i, 300);
            let o = opts(Duration::from_secs(60));
            if std::env::var("HF_HOSTILE_VIA_ENGINE").is_ok() {
                p.send_data_nb("req", "slow", &data, &o).unwrap()
            } else {
                ep.send_data_nb(&data, &o).unwrap()
            }
        })
        .collect();
    println!("ready");
    common::serve_until_stdin_closes();
    drop(pending);
}

/// A requester process is killed with requests queued at a slow server; a new process's node
/// takes its place (the same index, once the dead one is reclaimed) and asks the server too.
/// Its requests must get their own answers, never the dead requester's (same ids: each
/// process numbers its requests from 1). HF_HOSTILE_VIA_ENGINE=1 in the environment makes
/// the dead child send through the engine instead, for comparison.
///
/// Fails in about one run of three, here and at this change's parent commit alike (not this
/// change's doing): the server answers the dead requester's queued requests to its node
/// index, which the new node took, and the new requester's endpoint takes them by id.
#[test]
#[ignore = "pre-existing, intermittent: a new node at a dead requester's index gets its answers"]
fn a_new_requester_never_gets_the_answers_of_a_dead_one() {
    let dir = fabric("deadids");
    let srv = protocol(&dir.0, &["slow"]);
    srv.on_receive("slow", answer).unwrap();
    srv.start_background_services().unwrap();
    let mut child = Child::spawn("child_asks_slow", &dir.0);
    child.kill();
    let cli = protocol(&dir.0, &["cli"]);
    let mut ep = cli.endpoint("cli", "slow").unwrap();
    let mut wrong = Vec::new();
    for i in 0..8u8 {
        let got = ep.send_data(&ask(64, i), &opts(Duration::from_secs(20)));
        match got {
            Ok(v) if v == vec![i; 64] => {}
            Ok(v) => wrong.push(format!(
                "request {i}: {} bytes of {:#x}",
                v.len(),
                v.first().copied().unwrap_or(0)
            )),
            Err(e) => wrong.push(format!("request {i}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    drop(srv);
}

// ---------------------------------------------------------------------------------------
// A handler that keeps what it was given.
// ---------------------------------------------------------------------------------------

/// A handler keeps clones of the messages it gets (their data read in place in the ring
/// during the call): the clones must own their bytes, whatever the ring holds later. (Keeping
/// the `&Message` itself, or `&m.data`, does not compile: E0521.)
#[test]
fn clones_a_handler_keeps_own_their_bytes() {
    let dir = fabric("clones");
    let srv = protocol(&dir.0, &["srv"]);
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let k = kept.clone();
    srv.on_request("srv", move |m, reply| {
        k.lock().unwrap().push((m.clone(), m.data.clone()));
        reply.write(&m.data[..m.data.len().min(4)]);
        Ok(())
    })
    .unwrap();
    srv.start_background_services().unwrap();
    let cli = protocol(&dir.0, &["cli"]);
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    let msg = |i: u32| -> Vec<u8> {
        let len = [4usize, 40, 48, 49, 1000, 16_000][i as usize % 6];
        (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
    };
    // Many laps of the endpoint ring: the slots the first messages were read from are
    // rewritten many times.
    for i in 0..5_000u32 {
        if i % 2 == 0 {
            ep.post(&msg(i)).unwrap();
        } else {
            let answer = ep
                .send_data(&msg(i), &opts(Duration::from_secs(10)))
                .unwrap();
            assert_eq!(answer, msg(i)[..4]);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while kept.lock().unwrap().len() < 5_000 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    for (i, (m, d)) in kept.lock().unwrap().iter().enumerate() {
        assert_eq!(m.data.as_slice(), msg(i as u32).as_slice(), "message {i}");
        assert_eq!(d.as_slice(), msg(i as u32).as_slice(), "data {i}");
        assert!(!d.is_zero_copy());
    }
    drop(srv);
}
