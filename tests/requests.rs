//! Non-blocking requests: many in flight at once, completed by `test` or `wait` in any
//! order, and the `Future` form, driven by a tiny executor written here (no runtime): with
//! the background engine thread it is woken by that thread, not polled in a loop, and it
//! resolves to a timeout at its deadline.

mod common;

use common::FabricDir;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
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
