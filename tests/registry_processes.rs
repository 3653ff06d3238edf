//! The host registry across real processes: a node id registered by one process is a
//! duplicate for every other; after kill -9 of its owner the id can be registered again and
//! the dead process's channel files are gone.

mod common;

use common::{child_command, child_var, serve_until_stdin_closes};
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::transport::channel::{ring_path, Lane};
use hyperfabric::transport::registry::Registry;
use hyperfabric::ErrorKind;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

const DIR: &str = "HF_REGISTRY_TEST_DIR";

fn node(id: &str) -> NodeSignature {
    NodeSignature::new(id, HardwareType::CpuServer, 10.0, 1).unwrap()
}

/// Child: registers "held", creates a ring file as its sender would, reports, then waits to
/// be killed (or for its stdin to close, should the parent fail first).
#[test]
#[ignore = "child process of duplicates_across_processes_and_reclaim_after_kill, started by it"]
fn peer_holds_a_node() {
    let dir = child_var(DIR);
    let r = Registry::open_in(std::path::Path::new(&dir)).unwrap();
    let i = r.register(&node("held")).unwrap();
    hyperfabric::ring::Region::create_file(&ring_path(r.dir(), i, 999, Lane::Latency), 64).unwrap();
    println!("registered {i}");
    serve_until_stdin_closes();
}

#[test]
fn duplicates_across_processes_and_reclaim_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = child_command("peer_holds_a_node")
        .env(DIR, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let index: u32 = loop {
        let line = lines.next().expect("child exited early").unwrap();
        // libtest may print "test peer_holds_a_node ... " on the same line first.
        if let Some((_, i)) = line.split_once("registered ") {
            break i.trim().parse().unwrap();
        }
    };
    let r = Registry::open_in(dir.path()).unwrap();
    let e = r.register(&node("held")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DuplicateNode, "{e}");
    assert_eq!(r.lookup("held").unwrap().unwrap().owner_pid, child.id());
    let ring = ring_path(dir.path(), index, 999, Lane::Latency);
    assert!(ring.exists());

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let again = r.register(&node("held")).unwrap();
    assert_eq!(again, index, "the dead owner's index is free again");
    assert!(r.departed().iter().any(|d| d.node_id == "held"));
    assert!(!ring.exists(), "the dead process's ring file was removed");
    assert_eq!(
        r.lookup("held").unwrap().unwrap().owner_pid,
        std::process::id()
    );
}
