//! What the reply ring tests share: a test fabric, a server whose node `srv` answers with
//! the size and fill a request names, and a way to run a future to its end.

use super::{node, FabricDir};
use hyperfabric::fabric::{HyperFabricProtocol, SendOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ROLE_FABRIC: &str = "HF_HOSTILE_REPLY_FABRIC";

pub fn fabric(tag: &str) -> FabricDir {
    FabricDir(format!("hostile-rp-{tag}-{}", std::process::id()))
}

pub fn protocol(fabric: &str, nodes: &[&str]) -> HyperFabricProtocol {
    let p = super::protocol(fabric);
    for n in nodes {
        p.register_node(node(n)).unwrap();
    }
    p
}

/// A server whose node `srv` answers each request with as many bytes as the request's first
/// four name (little-endian), each byte the request's fifth, after sleeping ten times as many
/// milliseconds as its sixth byte says (when there is one).
pub fn server(fabric: &str) -> HyperFabricProtocol {
    let p = protocol(fabric, &["srv"]);
    p.on_receive("srv", answer).unwrap();
    p.start_background_services().unwrap();
    p
}

pub fn answer(m: &hyperfabric::fabric::ReceivedMessage) -> hyperfabric::Result<Vec<u8>> {
    let len = u32::from_le_bytes(m.data[..4].try_into().unwrap()) as usize;
    if let Some(&ms) = m.data.get(5) {
        std::thread::sleep(Duration::from_millis(ms as u64 * 10));
    }
    Ok(vec![m.data[4]; len])
}

pub fn ask(len: u32, fill: u8) -> Vec<u8> {
    let mut v = len.to_le_bytes().to_vec();
    v.push(fill);
    v
}

pub fn ask_slow(len: u32, fill: u8, ms: u32) -> Vec<u8> {
    let mut v = ask(len, fill);
    v.push((ms / 10) as u8);
    v
}

pub fn opts(timeout: Duration) -> SendOptions {
    SendOptions {
        timeout,
        ..Default::default()
    }
}

pub fn root(dir: &FabricDir) -> PathBuf {
    hyperfabric::sys::state_root().join(&dir.0)
}

/// The files of the fabric directory whose names start with `prefix`.
pub fn files(dir: &FabricDir, prefix: &str) -> Vec<PathBuf> {
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
pub fn block_on<F: std::future::Future>(f: F, limit: Duration) -> (F::Output, usize) {
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
