//! The fork rule: a protocol, and the requests and endpoints made with it, belong to the
//! process that created it. In a real `fork()` child every call on them fails with
//! `InvalidArgumentError` naming the parent's pid (none blocks on a lock the parent's engine
//! thread held at the fork), dropping them releases nothing of the parent's, and a protocol
//! the child creates works. The parent's nodes, pending request and endpoint are unharmed.

mod common;

use common::FabricDir;
use hyperfabric::fabric::{wait_any, HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::ErrorKind;
use std::time::{Duration, Instant};

fn protocol(fabric: &str, node: &str) -> HyperFabricProtocol {
    let p = HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        ..Default::default()
    })
    .unwrap();
    p.register_node(node_signature(node)).unwrap();
    p
}

fn node_signature(node: &str) -> NodeSignature {
    NodeSignature::new(node, HardwareType::CpuServer, 100.0, 10).unwrap()
}

/// Waits for `pid` for at most 30 s (a child stuck on a lock is killed): its exit code.
fn wait_child(pid: libc::pid_t) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut status = 0;
        // SAFETY: `status` is a live local; WNOHANG returns at once.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(libc::WIFEXITED(status), "the child died: status {status}");
            return libc::WEXITSTATUS(status);
        }
        if Instant::now() > deadline {
            // SAFETY: kills and reaps the child this test forked.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child hung (a lock of the parent's engine?)");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `r` is the fork rule's error naming process `parent`.
fn refused<T>(r: hyperfabric::Result<T>, parent: u32) -> bool {
    match r {
        Err(e) => {
            let text = e.to_string();
            e.kind() == ErrorKind::InvalidArgument
                && text.contains(&format!("created by process {parent}"))
                && text.contains("after fork() create a new one")
        }
        Ok(_) => false,
    }
}

#[test]
fn a_forked_child_cannot_use_its_parents_protocol_and_the_parent_is_unharmed() {
    let fabric = format!("test-fork-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let a = protocol(&fabric, "a");
    a.on_receive("a", |m| Ok(m.data.iter().rev().copied().collect()))
        .unwrap();
    // The engine thread runs (and takes the engine lock) while the process forks.
    a.start_background_services().unwrap();
    // b has no handler and nobody drives its engine: a's request to it stays pending.
    let b = protocol(&fabric, "b");
    let opts = SendOptions::default();
    let mut pending = a.send_data_nb("a", "b", b"held", &opts).unwrap();
    // An endpoint whose ring b has not found yet, and a shared pool with a buffer the
    // parent holds: the child must not remove the one's file nor return the other.
    let mut endpoint = a.endpoint("a", "b").unwrap();
    let pool = a.create_buffer_manager(4, 1 << 16).unwrap();
    let mut held = pool.acquire().unwrap();
    held.write_data(b"pooled", 0, false).unwrap();
    // A direct channel with a message waiting: the child must neither send through the
    // parent's sender nor take the message from the parent's receiver.
    let mut direct_tx = a.open_sender("a", "b").unwrap();
    let mut direct_rx = b.open_receiver("b").unwrap();
    assert!(direct_tx.try_send(b"before fork").unwrap());
    let parent = std::process::id();

    // SAFETY: the child only calls this library and leaves with _exit (no printing, no
    // test harness); a failed check is a bit of its exit code.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        let mut failed = 0u8;
        let mut check = |bit: u8, ok: bool| {
            if !ok {
                failed |= 1 << bit;
            }
        };
        check(0, refused(a.check_process(), parent));
        check(0, refused(a.send_data("a", "b", b"x", &opts), parent));
        check(0, refused(a.post("a", "b", b"x", &opts), parent));
        check(0, refused(a.recv("a", Duration::ZERO), parent));
        check(0, refused(a.register_node(node_signature("c")), parent));
        check(0, refused(a.stop_background_services(), parent));
        check(1, a.progress() == 0);
        check(2, refused(pending.test().unwrap(), parent));
        check(2, refused(pending.wait_mut(), parent));
        check(2, refused(pending.cancel(), parent));
        check(
            2,
            refused(
                wait_any(std::slice::from_mut(&mut pending), opts.timeout),
                parent,
            ),
        );
        check(3, refused(endpoint.post(b"x"), parent));
        check(3, refused(a.endpoint("a", "b"), parent));
        check(5, pool.acquire().is_err() && held.check_process().is_err());
        check(
            6,
            direct_tx
                .try_send(b"x")
                .is_err_and(|e| e.kind() == ErrorKind::InvalidArgument),
        );
        check(6, direct_rx.try_recv_with(|_, _| ()).is_none());
        // Dropping the parent's values here must leave its nodes, rings, segments, buffers
        // and request alone.
        drop(held);
        drop(pool);
        drop(endpoint);
        drop(direct_tx);
        drop(direct_rx);
        drop(pending);
        drop(a);
        drop(b);
        // A protocol of the child's own works: it reaches the parent's node.
        let works = HyperFabricProtocol::with_config(ProtocolConfig {
            fabric_name: Some(fabric.clone()),
            ..Default::default()
        })
        .and_then(|p| {
            p.register_node(node_signature("child"))?;
            p.send_data("child", "a", b"hello", &opts)
        });
        check(4, works.ok().as_deref() == Some(&b"olleh"[..]));
        // SAFETY: ends the child without the parent's atexit handlers or the harness.
        unsafe { libc::_exit(failed as i32) };
    }
    let code = wait_child(child);
    assert_eq!(
        code, 0,
        "failed in the child (bits): 0 protocol calls not refused, 1 progress, 2 request, \
         3 endpoint, 4 a new protocol, 5 the shared pool, 6 the direct channel"
    );

    // The parent is unharmed: its nodes are registered, its endpoint and pending request
    // work, and the child's node left with the child's protocol.
    let names: Vec<String> = b
        .topology()
        .unwrap()
        .read(|t| t.nodes().map(|n| n.node_id.clone()).collect());
    assert!(
        names.contains(&"a".to_string()) && !names.contains(&"child".to_string()),
        "{names:?}"
    );
    assert_eq!(b.send_data("b", "a", b"abc", &opts).unwrap(), b"cba");
    assert_eq!(pool.available(), 3, "the held buffer is still held");
    // A large message goes by a chunk of a's segment: the file is still there to open.
    let large = vec![7u8; 100_000];
    endpoint.post(&large).unwrap();
    a.post_buffer("a", "b", held, &opts).unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(b.recv("b", Duration::from_secs(5)).unwrap().data.to_vec());
    }
    got.sort_by_key(|m| m.len());
    assert_eq!(got, [b"held".to_vec(), b"pooled".to_vec(), large]);
    assert_eq!(
        pending.wait_mut().unwrap(),
        b"",
        "the receipt of the pending request"
    );
    // The direct channel's message is still the parent's to take, and its sender works.
    assert!(direct_tx.try_send(b"after fork").unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut direct = Vec::new();
    while direct.len() < 2 && Instant::now() < deadline {
        if let Some(m) = direct_rx.try_recv_with(|_, m| m.bytes().to_vec()) {
            direct.push(m);
        }
    }
    assert_eq!(direct, [b"before fork".to_vec(), b"after fork".to_vec()]);
}
