//! Direct channels between two processes: every message of 10,000 random sizes (0 up to the
//! inline limit) comes back intact and in order through a peer that echoes it, a 1 MiB buffer
//! travels both ways by descriptor and returns to its pool, and misuse gets clear errors.

mod common;

use common::{child_var, node, protocol, spawn_peer, FabricDir};
use hyperfabric::transport::direct::{max_inline, Received};
use hyperfabric::ErrorKind;
use std::time::{Duration, Instant};

const ROLE: &str = "HF_DIRECT_TEST_ROLE";
const FABRIC: &str = "HF_DIRECT_TEST_FABRIC";

/// Echoes every message back to `d-a` (buffers as buffers of its own pool) until a message
/// of one byte 0xff arrives.
#[test]
#[ignore = "child process of direct_channels_carry_messages_and_buffers_between_processes, started by it"]
fn peer_role() {
    assert_eq!(child_var(ROLE), "echo");
    let p = protocol(&child_var(FABRIC));
    p.register_node(node("d-b")).unwrap();
    let mut rx = p.open_receiver("d-b").unwrap();
    let pool = p.create_buffer_manager(2, 1 << 20).unwrap();
    println!("ready");
    let mut tx = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let got = rx.try_recv_with(|_, m| match m {
            Received::Inline(b) => (b.to_vec(), false),
            Received::Buffer(p) => (p.to_vec(), true),
        });
        let Some((data, buffer)) = got else {
            std::hint::spin_loop();
            continue;
        };
        if data == [0xff] {
            return;
        }
        let tx = tx.get_or_insert_with(|| p.open_sender("d-b", "d-a").unwrap());
        if buffer {
            let mut b = pool.acquire().unwrap();
            b.write_data(&data, 0, false).unwrap();
            let mut b = Some(b);
            while !tx.try_send_buffer(&mut b).unwrap() {}
        } else {
            while !tx.try_send(&data).unwrap() {}
        }
    }
}

fn recv(rx: &mut hyperfabric::fabric::DirectReceiver) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = rx.try_recv_with(|_, m| match m {
            Received::Inline(b) => (b.to_vec(), false),
            Received::Buffer(p) => (p.to_vec(), true),
        }) {
            return r;
        }
        assert!(Instant::now() < deadline, "nothing came back");
    }
}

#[test]
fn direct_channels_carry_messages_and_buffers_between_processes() {
    let fabric = format!("test-direct-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let p = protocol(&fabric);
    p.register_node(node("d-a")).unwrap();
    let mut rx = p.open_receiver("d-a").unwrap();
    assert_eq!(
        p.open_receiver("d-a").unwrap_err().kind(),
        ErrorKind::InvalidArgument,
        "one receiver per node"
    );
    assert_eq!(
        p.open_sender("d-a", "nobody").unwrap_err().kind(),
        ErrorKind::NodeNotFound
    );
    let _peer = spawn_peer(&[(ROLE, "echo"), (FABRIC, &fabric)]);
    let mut tx = p.open_sender("d-a", "d-b").unwrap();
    assert_eq!(
        tx.try_send(&vec![0u8; max_inline() + 1])
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );

    // Ten thousand messages, a window of up to 8 in flight, each checked on return.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut sent = std::collections::VecDeque::new();
    for i in 0..10_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = if i % 100 == 0 {
            max_inline()
        } else {
            (x % 300) as usize
        };
        let msg: Vec<u8> = (0..len).map(|k| (k as u64 ^ x) as u8).collect();
        while !tx.try_send(&msg).unwrap() {
            let back = recv(&mut rx);
            assert_eq!(back, (sent.pop_front().unwrap(), false));
        }
        sent.push_back(msg);
        if sent.len() == 8 {
            let back = recv(&mut rx);
            assert_eq!(back, (sent.pop_front().unwrap(), false));
        }
    }
    while let Some(m) = sent.pop_front() {
        assert_eq!(recv(&mut rx), (m, false));
    }

    // A 1 MiB buffer by descriptor, and back; ours returns to our pool.
    let pool = p.create_buffer_manager(2, 1 << 20).unwrap();
    let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let mut b = pool.acquire().unwrap();
    b.write_data(&data, 0, false).unwrap();
    let mut b = Some(b);
    assert!(tx.try_send_buffer(&mut b).unwrap());
    assert_eq!(recv(&mut rx), (data, true));
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.available() < 2 {
        assert!(Instant::now() < deadline, "the buffer never came back");
        std::thread::yield_now();
    }
    // A standalone buffer cannot travel by descriptor.
    let mut own = Some(hyperfabric::buffer::ZeroCopyBuffer::new(8, false, false).unwrap());
    assert_eq!(
        tx.try_send_buffer(&mut own).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(tx.peer_alive());
    assert!(tx.try_send(&[0xff]).unwrap());
    drop(rx);
    let _again = p.open_receiver("d-a").unwrap();
}
