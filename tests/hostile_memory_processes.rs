//! Sends from registered memory when things go wrong around them: senders that give a send
//! up while its receiver copies it and rewrite the bytes at once, receivers killed in the
//! middle of a copy (a sender killed in one: `hostile_memory_killed_sender.rs`), memory unmapped while a send is in flight, zero lengths and overflowing
//! ranges, a region in a fork() child, and 64 sends in flight to a receiver that dies,
//! waited for with `wait_all`.

mod common;

use common::memory::*;
use common::node;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::ErrorKind;
use std::time::{Duration, Instant};

const SOON: Duration = Duration::from_secs(5);

/// How a round of the give-up race lets its send go.
#[derive(Debug, Clone, Copy)]
enum GiveUp {
    Cancel,
    Drop,
    Deadline,
    Wait,
}

/// A sender that gives each send up (cancel, drop, its deadline) at a random moment while
/// its receiver copies it, and rewrites the bytes at once: no message is ever delivered with
/// a byte written after the give-up, every send that completed was delivered whole, and no
/// request hangs.
#[test]
fn a_send_given_up_mid_copy_is_never_delivered_with_later_bytes() {
    let dir = fabric("race");
    let tx = protocol(&dir.0, &["a"]);
    let rx = std::sync::Arc::new(protocol(&dir.0, &["b"]));
    const LEN: usize = 16 << 20;
    const ROUNDS: u32 = 300;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let receiver = {
        let (rx, stop) = (rx.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; LEN];
            let mut seen = Vec::new();
            let mut turn = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                turn += 1;
                let got = if turn % 2 == 0 {
                    rx.recv_into("b", Duration::from_millis(50), &mut buf)
                        .map(|g| buf[..g.len].to_vec())
                } else {
                    rx.recv("b", Duration::from_millis(50))
                        .map(|m| m.data.to_vec())
                };
                match got {
                    Ok(bytes) => {
                        let first = bytes[0];
                        let mixed = bytes.iter().position(|&b| b != first);
                        seen.push((bytes.len(), first, mixed));
                    }
                    Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout, "{e}"),
                }
            }
            seen
        })
    };
    let mut data = vec![0u8; LEN];
    let region = register(data.as_ptr(), data.len());
    let mut ep = tx.endpoint("a", "b").unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut completed = Vec::new();
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let value = (round % 250) as u8 + 1;
        data.fill(value);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let how = [GiveUp::Cancel, GiveUp::Drop, GiveUp::Deadline, GiveUp::Wait][rng as usize % 4];
        let delay = Duration::from_micros(rng % 3000);
        let opts = SendOptions {
            timeout: match how {
                GiveUp::Deadline => delay.max(Duration::from_micros(1)),
                _ => Duration::from_secs(10),
            },
            ..Default::default()
        };
        let t = Instant::now();
        let mut req = ep.post_mem(&region, 0, LEN, &opts).unwrap();
        let spin = Instant::now();
        while spin.elapsed() < delay {
            std::hint::spin_loop();
        }
        let ok = match how {
            GiveUp::Cancel => match req.test() {
                Some(r) => r.is_ok(),
                None => {
                    assert!(req.cancel().unwrap());
                    false
                }
            },
            GiveUp::Drop => {
                drop(req);
                false
            }
            GiveUp::Deadline | GiveUp::Wait => match req.wait() {
                Ok(_) => true,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Timeout, "{how:?}: {e}");
                    assert!(matches!(how, GiveUp::Deadline), "{how:?}: {e}");
                    false
                }
            },
        };
        // The buffer is the sender's again: rewritten at once.
        data.fill(0);
        slowest = slowest.max(t.elapsed());
        if ok {
            completed.push(value);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Release);
    let seen = receiver.join().unwrap();
    assert!(
        slowest < Duration::from_secs(5),
        "a round took {slowest:?}: a request hung"
    );
    for (len, first, mixed) in &seen {
        assert_eq!(*len, LEN);
        assert!(
            mixed.is_none() && *first != 0,
            "a message with bytes written after its send was given up: first byte {first}, \
             first differing byte at {mixed:?}"
        );
    }
    let delivered: Vec<u8> = seen.iter().map(|s| s.1).collect();
    let mut at = 0;
    for v in &completed {
        match delivered[at..].iter().position(|d| d == v) {
            Some(k) => at += k + 1,
            None => panic!("a send that completed (value {v}) was never delivered"),
        }
    }
}

/// Child of the killed-receiver tests: hosts "rx"; with `HF_HOSTILE_MEM_BYTES` set, takes
/// messages into a buffer of that size (each copy a long one), else reads nothing; until it
/// is killed.
#[test]
#[ignore = "child process of the killed-receiver tests, started by them"]
fn child_hosts_a_receiver() {
    let fabric = common::child_var(CHILD_FABRIC);
    let p = protocol(&fabric, &["rx"]);
    println!("ready");
    match std::env::var(CHILD_BYTES) {
        Ok(n) => {
            let mut buf = vec![0u8; n.parse().unwrap()];
            loop {
                if let Ok(g) = p.recv_into("rx", Duration::from_secs(60), &mut buf) {
                    println!("got {}", g.len);
                }
            }
        }
        Err(_) => std::thread::sleep(Duration::from_secs(120)),
    }
}

/// A receiver killed with 64 sends from registered memory in flight to it: `wait_all` sees
/// every one fail with `NodeNotFoundError` within about a second, their lent words are
/// free again, and the endpoint says the destination is gone.
#[test]
fn a_receiver_killed_with_sends_in_flight_fails_them_fast() {
    let dir = fabric("killrx");
    let mut child = spawn(
        "child_hosts_a_receiver",
        &[(CHILD_FABRIC, dir.0.as_str())],
        "ready",
    );
    let tx = protocol(&dir.0, &["tx"]);
    let mut ep = tx.endpoint("tx", "rx").unwrap();
    let data = pattern(1 << 20, 3);
    let region = register(data.as_ptr(), data.len());
    let opts = SendOptions {
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let mut reqs: Vec<_> = (0..64)
        .map(|i| ep.post_mem(&region, i, data.len() - i, &opts).unwrap())
        .collect();
    assert_eq!(
        ep.post_mem(&region, 0, 10, &opts).unwrap_err().kind(),
        ErrorKind::BufferExhausted
    );
    let killed = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    let done = hyperfabric::fabric::wait_all(&mut reqs, Duration::from_secs(10)).unwrap();
    let took = killed.elapsed();
    for (i, c) in done.into_iter().enumerate() {
        match c {
            hyperfabric::fabric::Completion::Done(Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::NodeNotFound, "{i}: {e}")
            }
            other => panic!("request {i}: {other:?}"),
        }
    }
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    match ep.post_mem(&region, 0, 10, &opts) {
        Ok(r) => assert_eq!(r.wait().unwrap_err().kind(), ErrorKind::NodeNotFound),
        Err(e) => assert_eq!(e.kind(), ErrorKind::NodeNotFound, "{e}"),
    }
}

/// A receiver killed while it copies a 256 MiB send: the sender's request fails within
/// about a second.
#[test]
fn a_receiver_killed_mid_copy_fails_the_send_fast() {
    const LEN: usize = 256 << 20;
    let dir = fabric("killrx-copy");
    let mut child = spawn(
        "child_hosts_a_receiver",
        &[
            (CHILD_FABRIC, dir.0.as_str()),
            (CHILD_BYTES, &LEN.to_string()),
        ],
        "ready",
    );
    let tx = protocol(&dir.0, &["tx"]);
    let mut ep = tx.endpoint("tx", "rx").unwrap();
    let data = pattern(LEN, 3);
    let region = register(data.as_ptr(), data.len());
    let opts = SendOptions {
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let req = ep.post_mem(&region, 0, LEN, &opts).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let killed = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    let r = req.wait();
    let took = killed.elapsed();
    if let Err(e) = r {
        assert_eq!(e.kind(), ErrorKind::NodeNotFound, "{e}");
    }
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

/// An anonymous mapping of `len` bytes, unmapped by the test itself.
fn map(len: usize) -> *mut u8 {
    // SAFETY: a new private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p.cast()
}

/// Zero-length sends (at the start and at the end of a region) are posted, complete at
/// once and arrive empty; offsets and lengths that overflow are refused.
#[test]
fn zero_lengths_and_overflowing_ranges() {
    let dir = fabric("zero");
    let tx = protocol(&dir.0, &["a"]);
    let rx = protocol(&dir.0, &["b"]);
    let data = pattern(4096, 1);
    let region = register(data.as_ptr(), data.len());
    let mut ep = tx.endpoint("a", "b").unwrap();
    let opts = SendOptions::default();
    for offset in [0, 100, 4096] {
        let mut r = ep.post_mem(&region, offset, 0, &opts).unwrap();
        assert_eq!(r.test().unwrap().unwrap(), Vec::<u8>::new());
        let m = rx.recv("b", SOON).unwrap();
        assert!(m.data.is_empty());
    }
    for (offset, len) in [
        (4097, 0),
        (usize::MAX, 0),
        (usize::MAX, usize::MAX),
        (1, usize::MAX),
        (0, usize::MAX),
        (4096, 1),
    ] {
        let e = ep.post_mem(&region, offset, len, &opts).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{offset}+{len}");
    }
    // Larger than the largest message: refused by the sender.
    let big = map((1 << 30) + 4096);
    {
        let huge = register(big, (1 << 30) + 4096);
        let e = ep.post_mem(&huge, 0, (1 << 30) + 1, &opts).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
    // SAFETY: the mapping made above, not used after.
    unsafe { libc::munmap(big.cast(), (1 << 30) + 4096) };
}

/// Half of a region unmapped while a send from it is in flight: the receiver's copy fails
/// part way, nothing is delivered, the sender hears of it, and the endpoint goes on.
#[test]
fn memory_unmapped_in_flight_fails_the_send() {
    let dir = fabric("unmap");
    let tx = protocol(&dir.0, &["a"]);
    let rx = protocol(&dir.0, &["b"]);
    let len = 4 << 20;
    let p = map(len);
    // SAFETY: the mapping just made, `len` bytes.
    unsafe { std::ptr::write_bytes(p, 0xab, len) };
    let mut ep = tx.endpoint("a", "b").unwrap();
    let opts = SendOptions::default();
    {
        let region = register(p, len);
        let req = ep.post_mem(&region, 0, len, &opts).unwrap();
        // SAFETY: the second half of the mapping, not used after (this process).
        unsafe { libc::munmap(p.add(len / 2).cast(), len / 2) };
        let mut buf = vec![0u8; len];
        let e = rx
            .recv_into("b", Duration::from_millis(300), &mut buf)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert_eq!(req.wait().unwrap_err().kind(), ErrorKind::Io);
        let req = ep.post_mem(&region, 0, len / 2, &opts).unwrap();
        let got = rx.recv_into("b", SOON, &mut buf).unwrap();
        assert_eq!(got.len, len / 2);
        assert!(buf[..len / 2].iter().all(|&b| b == 0xab));
        assert!(req.wait().is_ok());
    }
    // SAFETY: the first half, still mapped.
    unsafe { libc::munmap(p.cast(), len / 2) };
}

/// A send given up before its receiver looked is not copied: the receiver's buffer is left
/// as it was.
#[test]
fn a_send_given_up_leaves_the_receive_buffer_alone() {
    let dir = fabric("given-up-buffer");
    let tx = protocol(&dir.0, &["a"]);
    let rx = protocol(&dir.0, &["b"]);
    let mut data = vec![0xabu8; 1 << 20];
    let region = register(data.as_ptr(), data.len());
    let mut ep = tx.endpoint("a", "b").unwrap();
    let mut req = ep
        .post_mem(&region, 0, data.len(), &SendOptions::default())
        .unwrap();
    assert!(req.cancel().unwrap());
    data.fill(0xee);
    let mut buf = vec![0x11u8; 1 << 20];
    let e = rx
        .recv_into("b", Duration::from_millis(300), &mut buf)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let written = buf.iter().filter(|&&b| b != 0x11).count();
    assert_eq!(
        written, 0,
        "a receive that got nothing wrote {written} bytes of its buffer"
    );
}

/// A region used in a fork() child: refused there, with the child's own protocol too; the
/// parent's send in flight is not disturbed by the child dropping its copy.
#[test]
fn a_region_in_a_fork_child_is_refused() {
    let dir = fabric("fork");
    let tx = protocol(&dir.0, &["a"]);
    let rx = protocol(&dir.0, &["b"]);
    let data = pattern(1 << 20, 6);
    let region = register(data.as_ptr(), data.len());
    let mut ep = tx.endpoint("a", "b").unwrap();
    let req = ep
        .post_mem(&region, 0, data.len(), &SendOptions::default())
        .unwrap();
    let name = dir.0.clone();
    // SAFETY: the child only calls this library and leaves with _exit; a failed check is a
    // bit of its exit code.
    let child = unsafe { libc::fork() };
    assert!(child >= 0);
    if child == 0 {
        let mut failed = 0;
        if ep.post_mem(&region, 0, 10, &SendOptions::default()).is_ok() {
            failed |= 1;
        }
        let own = HyperFabricProtocol::with_config(ProtocolConfig {
            fabric_name: Some(name),
            single_copy_from: Some(0),
            ..Default::default()
        });
        match own.and_then(|p| {
            p.register_node(node("c"))?;
            let mut e = p.endpoint("c", "b")?;
            e.post_mem(&region, 0, 10, &SendOptions::default())
        }) {
            Err(e) if e.kind() == ErrorKind::InvalidArgument => {}
            _ => failed |= 2,
        }
        drop(req);
        drop(ep);
        // SAFETY: leaves the child without running the parent's destructors again.
        unsafe { libc::_exit(failed) };
    }
    let mut status = 0;
    // SAFETY: reaps the child forked above.
    unsafe { libc::waitpid(child, &mut status, 0) };
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 0);
    let m = rx.recv("b", SOON).unwrap();
    assert!(m.data[..] == data[..]);
    assert!(req.wait().is_ok());
}
