//! What the registered-memory tests share: protocols that always copy a send from
//! registered memory at its receiver, the endpoint ring files a test forges, regions over a
//! test's own bytes, and child processes that say when they are ready.

use super::{node, FabricDir};
use hyperfabric::fabric::{HyperFabricProtocol, MemoryRegion, ProtocolConfig};
use hyperfabric::ErrorKind;
use std::time::Duration;

/// The environment variables that tell a child process of the memory tests its fabric and
/// how many bytes to send or take.
pub const CHILD_FABRIC: &str = "HF_HOSTILE_MEM_FABRIC";
pub const CHILD_BYTES: &str = "HF_HOSTILE_MEM_BYTES";

pub fn fabric(tag: &str) -> FabricDir {
    FabricDir(format!("hostile-mem-{tag}-{}", std::process::id()))
}

/// A protocol on `fabric` hosting `nodes`, whose sends from registered memory are always
/// copied by their receiver.
pub fn protocol(fabric: &str, nodes: &[&str]) -> HyperFabricProtocol {
    let p = HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        single_copy_from: Some(0),
        ..Default::default()
    })
    .unwrap();
    for n in nodes {
        p.register_node(node(n)).unwrap();
    }
    p
}

pub fn metric(p: &HyperFabricProtocol, k: &str) -> f64 {
    p.get_topology_info().unwrap().performance_metrics[k]
}

pub fn nothing_for(p: &HyperFabricProtocol, node: &str, wait: Duration) {
    match p.recv(node, wait) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout, "{e}"),
        Ok(m) => panic!(
            "{node} got a message nobody sent: {} bytes from {}",
            m.data.len(),
            m.source
        ),
    }
}

/// Registers bytes the caller keeps mapped while the region lives.
pub fn register(addr: *const u8, len: usize) -> MemoryRegion {
    // SAFETY: every caller passes memory it keeps mapped until the region is dropped (or,
    // where a test unmaps it on purpose, sends from it only through the receiver's kernel
    // copy, which fails without a fault).
    unsafe { MemoryRegion::new(addr, len) }.unwrap()
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

// Byte offsets in the first slot of a send from registered memory: slot header (len 4..8,
// kind 8, flags 9, aux 10..12, src 12..16), message header at 16 (dst, id 20..28, hop 28,
// total 32..36, offset 36..40, origin 40..44, reserved 44..48), then the address (48..56),

/// Runs this test binary's ignored test `role` with `env`, and returns once it printed a line
/// ending in `until`.
pub fn spawn(role: &str, env: &[(&str, &str)], until: &str) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut cmd = super::child_command(role);
    cmd.stdout(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    assert!(
        lines.any(|l| l.trim_end().ends_with(until)),
        "child never said {until:?}"
    );
    std::thread::spawn(move || lines.for_each(drop));
    child
}
