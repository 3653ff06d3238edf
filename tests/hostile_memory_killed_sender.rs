//! A sender killed while its receiver copies a send from its registered memory. A binary of
//! its own: it checks this process's resident size, which other tests of a binary running
//! at the same time would change.

mod common;

use common::checksum;
use common::memory::*;
use hyperfabric::fabric::SendOptions;
use hyperfabric::ErrorKind;
use std::time::{Duration, Instant};

/// Child of `a_sender_killed_mid_copy_delivers_all_or_nothing`: hosts "tx" and sends
/// `HF_HOSTILE_MEM_BYTES` bytes of a pattern from registered memory to "rx", then waits to
/// be killed.
#[test]
#[ignore = "child process of the killed-sender test, started by it"]
fn child_sends_from_registered_memory() {
    let fabric = common::child_var(CHILD_FABRIC);
    let bytes: usize = common::child_var(CHILD_BYTES).parse().unwrap();
    let p = protocol(&fabric, &["tx"]);
    let mut ep = p.endpoint("tx", "rx").unwrap();
    let data = pattern(bytes, 5);
    let region = register(data.as_ptr(), data.len());
    let opts = SendOptions {
        timeout: Duration::from_secs(120),
        ..Default::default()
    };
    let req = ep.post_mem(&region, 0, bytes, &opts).unwrap();
    println!("posted");
    let _ = req.wait();
    std::thread::sleep(Duration::from_secs(120));
}

/// The resident size of this process.
fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb << 10
}

/// A sender killed while its receiver copies a 256 MiB send from its memory: the receiver
/// delivers the whole message or nothing, never hangs, and keeps no memory of it.
#[test]
fn a_sender_killed_mid_copy_delivers_all_or_nothing() {
    const LEN: usize = 256 << 20;
    let dir = fabric("killtx");
    let rx = std::sync::Arc::new(protocol(&dir.0, &["rx"]));
    let want = checksum(&pattern(LEN, 5));
    let before = rss();
    for delay_ms in [0u64, 5, 10, 20, 40, 1000] {
        let mut child = spawn(
            "child_sends_from_registered_memory",
            &[
                (CHILD_FABRIC, dir.0.as_str()),
                (CHILD_BYTES, &LEN.to_string()),
            ],
            "posted",
        );
        let receiver = {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                let got = rx.recv("rx", Duration::from_secs(2));
                (got.map(|m| (m.data.len(), checksum(&m.data))), t.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let (got, took) = receiver.join().unwrap();
        // A hang would last the sender's 120-s timeout, or for ever; the bound leaves a
        // loaded machine time for a 256 MiB copy begun just before the 2-s deadline.
        assert!(took < Duration::from_secs(30), "the receive took {took:?}");
        match got {
            Ok(m) => assert_eq!(m, (LEN, want), "a partial message was delivered"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout, "{e}"),
        }
        nothing_for(&rx, "rx", Duration::from_millis(100));
    }
    let after = rss();
    assert!(
        after < before + (64 << 20),
        "{} MiB kept",
        (after - before) >> 20
    );
}
