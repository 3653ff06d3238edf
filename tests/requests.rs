//! Non-blocking requests: many in flight at once, completed by `test` or `wait` in any
//! order, and the `Future` form, driven by a tiny executor written here (no runtime): with
//! the background engine thread it is woken by that thread, not polled in a loop, and it
//! resolves to a timeout at its deadline. `wait_any` and `wait_all` over several requests
//! (held ones stay pending through timeouts, completed ones are skipped), `cancel`, and the
//! progress rule: waiting drives the engines of every protocol it waits on, a thread in
//! `progress` serves its process, and handlers run on the thread that drives the engine.

mod common;

use common::FabricDir;
use hyperfabric::fabric::{
    wait_all, wait_any, Completion, HyperFabricProtocol, ProtocolConfig, SendOptions,
};
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::ErrorKind;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

fn protocol(fabric: &str, node: &str) -> HyperFabricProtocol {
    let p = HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        ..Default::default()
    })
    .unwrap();
    p.register_node(NodeSignature::new(node, HardwareType::CpuServer, 100.0, 10).unwrap())
        .unwrap();
    p
}

/// Wakes a parked thread and counts wake-ups.
struct Unpark {
    thread: std::thread::Thread,
    wakes: AtomicUsize,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Runs a future to completion on this thread; returns its output and how many times it
/// was polled.
fn block_on<F: Future>(f: F) -> (F::Output, usize) {
    let unpark = Arc::new(Unpark {
        thread: std::thread::current(),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return (v, polls);
        }
        std::thread::park_timeout(Duration::from_secs(10));
    }
}

#[test]
fn requests_complete_by_test_wait_and_await() {
    let fabric = format!("test-requests-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let a = protocol(&fabric, "a");
    let b = protocol(&fabric, "b");
    // "slow" is answered only once this test releases it: its request stays pending for as
    // long as the test needs, however slow the machine.
    let (release, released) = std::sync::mpsc::channel::<()>();
    b.on_receive("b", move |m| {
        if m.data == b"slow" {
            // A test that fails drops the sender, which releases the handler too.
            let _ = released.recv();
        }
        Ok(m.data.iter().rev().copied().collect())
    })
    .unwrap();
    b.start_background_services().unwrap();
    let opts = SendOptions::default();

    // Ten in flight at once; completed in reverse order, half by test, half by wait.
    let mut reqs: Vec<_> = (0..10u8)
        .map(|i| {
            let data = vec![i, i + 1, i + 2];
            (
                data.clone(),
                a.send_data_nb("a", "b", &data, &opts).unwrap(),
            )
        })
        .collect();
    while let Some((data, mut r)) = reqs.pop() {
        let expect: Vec<u8> = data.iter().rev().copied().collect();
        if data[0] % 2 == 0 {
            let got = loop {
                if let Some(got) = r.test() {
                    break got;
                }
            };
            assert_eq!(got.unwrap(), expect);
            assert!(r.test().is_none(), "a finished request gives nothing more");
        } else {
            assert_eq!(r.wait().unwrap(), expect);
        }
    }
    // Errors found before sending come back at once.
    assert_eq!(
        a.send_data_nb("a", "nobody", b"x", &opts)
            .unwrap_err()
            .kind(),
        ErrorKind::NodeNotFound
    );

    // Without the engine thread the future asks to be polled again (it drives the engine).
    let (got, _) = block_on(a.send_data_nb("a", "b", b"abc", &opts).unwrap());
    assert_eq!(got.unwrap(), b"cba");

    // With it, the engine thread wakes the future: a handful of polls, not a spin.
    a.start_background_services().unwrap();
    let (got, polls) = block_on(a.send_data_nb("a", "b", b"xyz", &opts).unwrap());
    assert_eq!(got.unwrap(), b"zyx");
    assert!(polls <= 3, "polled {polls} times");

    // A deadline passes while the handler holds the request: the engine thread fails it (no
    // answer can come before the release), not before the deadline.
    let quick = SendOptions {
        timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let t0 = Instant::now();
    let (got, polls) = block_on(a.send_data_nb("a", "b", b"slow", &quick).unwrap());
    let took = t0.elapsed();
    assert_eq!(got.unwrap_err().kind(), ErrorKind::Timeout);
    // Not before the deadline, and woken by the engine thread then rather than found by the
    // executor's fallback poll 10 s later.
    assert!(
        took >= quick.timeout && took < Duration::from_secs(5),
        "timed out after {took:?}"
    );
    assert!(polls <= 3, "polled {polls} times");
    release.send(()).unwrap();

    // A dropped request is abandoned: its late response (released after the drop) comes back
    // right before the next answer and does not disturb it.
    drop(a.send_data_nb("a", "b", b"slow", &opts).unwrap());
    release.send(()).unwrap();
    assert_eq!(a.send_data("a", "b", b"12", &opts).unwrap(), b"21");
}

/// A node whose handler answers with the request reversed, holds requests that start with
/// "slow" until the test releases them, and refuses "fail".
fn answering(fabric: &str, node: &str) -> (HyperFabricProtocol, std::sync::mpsc::Sender<()>) {
    let p = protocol(fabric, node);
    let (release, released) = std::sync::mpsc::channel::<()>();
    p.on_receive(node, move |m| {
        if m.data.starts_with(b"slow") {
            // A test that fails drops the sender, which releases the handler too.
            let _ = released.recv();
        }
        if m.data == b"fail" {
            return Err(hyperfabric::Error::InvalidNode("refused".into()));
        }
        Ok(m.data.iter().rev().copied().collect())
    })
    .unwrap();
    p.start_background_services().unwrap();
    (p, release)
}

#[test]
fn wait_any_returns_each_request_as_it_completes_and_wait_all_collects_them() {
    let fabric = format!("test-wait-any-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let a = protocol(&fabric, "a");
    // "slow" requests to b stay pending until released; c answers at once.
    let (_b, release_b) = answering(&fabric, "b");
    let (_c, _release_c) = answering(&fabric, "c");
    let opts = SendOptions::default();
    let send = |to: &str, data: &[u8]| a.send_data_nb("a", to, data, &opts).unwrap();

    let mut reqs = vec![send("b", b"slow"), send("c", b"fast")];
    let (i, got) = wait_any(&mut reqs, Duration::from_secs(10)).unwrap();
    assert_eq!((i, got.unwrap()), (1, b"tsaf".to_vec()));
    assert!(!reqs[1].is_pending() && reqs[0].is_pending());
    // The held one cannot complete: the call times out, and the request stays pending.
    let t0 = Instant::now();
    let e = wait_any(&mut reqs, Duration::from_millis(50)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert!(reqs[0].is_pending());
    // Zero: one look.
    let e = wait_any(&mut reqs, Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    release_b.send(()).unwrap();
    // No bound of the call's own (the request's send timeout still bounds it).
    let (i, got) = wait_any(&mut reqs, Duration::MAX).unwrap();
    assert_eq!((i, got.unwrap()), (0, b"wols".to_vec()));
    // Nothing left to wait for.
    let e = wait_any(&mut reqs, Duration::from_secs(10)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        wait_any(&mut [], Duration::ZERO).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );

    // wait_all: each outcome at its position, a handler's refusal as that request's error.
    // While b holds its request, calls with a short timeout report it pending and the
    // completed ones once, then skip them.
    let mut reqs = vec![
        send("c", b"x1"),
        send("c", b"fail"),
        send("b", b"slow"),
        send("c", b"x2"),
    ];
    let mut outcomes: Vec<Option<hyperfabric::Result<Vec<u8>>>> = (0..4).map(|_| None).collect();
    let t0 = Instant::now();
    while [0, 1, 3].iter().any(|&i| outcomes[i].is_none()) {
        assert!(t0.elapsed() < Duration::from_secs(10), "c never answered");
        for (i, c) in wait_all(&mut reqs, Duration::from_millis(20))
            .unwrap()
            .into_iter()
            .enumerate()
        {
            match c {
                Completion::Done(r) => {
                    assert!(outcomes[i].is_none(), "request {i} completed twice");
                    outcomes[i] = Some(r);
                }
                Completion::Pending => assert!(reqs[i].is_pending()),
                Completion::Skipped => assert!(outcomes[i].is_some(), "{i} skipped"),
            }
        }
        assert!(outcomes[2].is_none(), "the held request cannot complete");
    }
    assert_eq!(outcomes[0].take().unwrap().unwrap(), b"1x");
    assert_eq!(
        outcomes[1].take().unwrap().unwrap_err().kind(),
        ErrorKind::InvalidNode
    );
    assert_eq!(outcomes[3].take().unwrap().unwrap(), b"2x");
    release_b.send(()).unwrap();
    let all = wait_all(&mut reqs, Duration::from_secs(10)).unwrap();
    assert!(
        matches!(&all[2], Completion::Done(Ok(r)) if r == b"wols"),
        "{all:?}"
    );
    assert!([0, 1, 3]
        .iter()
        .all(|&i| matches!(all[i], Completion::Skipped)));
    assert!(reqs.iter().all(|r| !r.is_pending()));
}

#[test]
fn a_cancelled_request_gives_a_clear_error_and_its_late_response_is_dropped() {
    let fabric = format!("test-cancel-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let a = protocol(&fabric, "a");
    let (_b, release_b) = answering(&fabric, "b");
    let opts = SendOptions::default();

    let mut held = a.send_data_nb("a", "b", b"slow", &opts).unwrap();
    let other = a.send_data_nb("a", "b", b"next", &opts).unwrap();
    assert!(held.cancel().unwrap());
    assert!(held.is_cancelled() && !held.is_pending());
    assert!(!held.cancel().unwrap(), "a second cancel changes nothing");
    let e = held.test().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("cancelled"), "{e}");
    assert!(held
        .wait_mut()
        .unwrap_err()
        .to_string()
        .contains("cancelled"));
    // Waiting on it and the one behind it: only the one behind counts.
    let mut both = [held, other];
    release_b.send(()).unwrap();
    let (i, got) = wait_any(&mut both, Duration::from_secs(10)).unwrap();
    assert_eq!((i, got.unwrap()), (1, b"txen".to_vec()));
    let [held, mut done] = both;
    assert!(matches!(
        block_on(held).0.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    ));
    // The cancelled request's answer came and was dropped: the next request gets its own.
    assert_eq!(a.send_data("a", "b", b"12", &opts).unwrap(), b"21");
    assert!(
        !done.cancel().unwrap(),
        "a completed request is not cancelled"
    );
    assert!(done.test().is_none());
}

#[test]
fn waiting_drives_the_engines_of_every_protocol_it_waits_on() {
    let fabric = format!("test-wait-drives-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    // No background services anywhere: each handler runs on whichever thread drives its
    // engine.
    let ran_on = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = protocol(&fabric, "a");
    let b = protocol(&fabric, "b");
    for (p, node) in [(&a, "a"), (&b, "b")] {
        let ran_on = ran_on.clone();
        p.on_receive(node, move |m| {
            ran_on.lock().unwrap().push(std::thread::current().id());
            Ok(m.data.to_vec())
        })
        .unwrap();
    }
    let opts = SendOptions::default();
    let mut reqs = vec![a.send_data_nb("a", "b", b"to b", &opts).unwrap()];
    // Waiting on a's request drives a's engine only: b's handler never runs, since nobody
    // drives b's engine.
    let e = wait_any(&mut reqs, Duration::from_millis(100)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(ran_on.lock().unwrap().is_empty());
    // With one of b's requests in the same wait, both engines are driven by this thread.
    reqs.push(b.send_data_nb("b", "a", b"to a", &opts).unwrap());
    let all = wait_all(&mut reqs, Duration::from_secs(10)).unwrap();
    assert!(
        matches!(&all[0], Completion::Done(Ok(r)) if r == b"to b"),
        "{all:?}"
    );
    assert!(
        matches!(&all[1], Completion::Done(Ok(r)) if r == b"to a"),
        "{all:?}"
    );
    let me = std::thread::current().id();
    assert_eq!(*ran_on.lock().unwrap(), vec![me, me]);

    // A thread that calls progress on b's protocol serves b: a's wait completes, and b's
    // handler runs on that thread.
    ran_on.lock().unwrap().clear();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                b.progress();
            }
            std::thread::current().id()
        });
        let got = a.send_data("a", "b", b"served", &opts);
        stop.store(true, Ordering::Relaxed);
        let server = server.join().unwrap();
        assert_eq!(got.unwrap(), b"served");
        assert_eq!(*ran_on.lock().unwrap(), vec![server]);
    });
}
