//! Rings in shared memory between two real processes: the test binary re-runs itself as the
//! peer (selected by an environment variable), maps the same file and checks every byte.

mod common;

use common::{child_command, child_var};
use hyperfabric::ring::{split, Consumer, Producer, PushError, Region, SlotHeader};
use hyperfabric::sync::Backoff;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLE: &str = "HF_RING_TEST_ROLE";
const PATH: &str = "HF_RING_TEST_PATH";
const MESSAGES: u64 = 100_000;

fn shm_dir() -> PathBuf {
    let d = Path::new("/dev/shm");
    if d.is_dir() {
        d.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Deterministic pseudo-random payload for message `i`: length and bytes derive from `i`.
fn payload(i: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = (x % 3000) as usize;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

// Waiting sides back off to yielding: on a machine with fewer free cores than the two
// processes, a side that only spins holds the core its peer needs to make progress.

fn push(p: &mut Producer<Region>, h: SlotHeader, data: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut backoff = Backoff::new();
    loop {
        match p.try_push(h, &[data]) {
            Ok(()) => return,
            Err(PushError::Full) if Instant::now() < deadline => backoff.snooze(),
            Err(e) => panic!("push failed: {e:?}"),
        }
    }
}

fn pop<R>(c: &mut Consumer<Region>, mut f: impl FnMut(SlotHeader, &[u8]) -> R) -> R {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut backoff = Backoff::new();
    loop {
        if let Some(r) = c.try_pop(&mut f).expect("ring not corrupt") {
            return r;
        }
        assert!(Instant::now() < deadline, "peer went silent");
        backoff.snooze();
    }
}

/// Runs in the child: "consumer" takes MESSAGES from the ring file and checks each, "echo"
/// sends every message back through a second ring until one of kind 2.
#[test]
#[ignore = "child process of the cross-process tests in this file, started by them"]
fn peer_role() {
    let path = PathBuf::from(child_var(PATH));
    let region = Arc::new(Region::open_file(&path).unwrap());
    match child_var(ROLE).as_str() {
        "consumer" => {
            let (_, mut c) = split(region);
            for i in 0..MESSAGES {
                let (src, sum, len) = pop(&mut c, |h, d| (h.src as u64, checksum(d), d.len()));
                let want = payload(i);
                assert_eq!(
                    (src, len, sum),
                    (i as u32 as u64, want.len(), checksum(&want)),
                    "message {i}"
                );
            }
            assert!(!c.has_message(), "extra message");
            println!("consumed {MESSAGES}");
        }
        "echo" => {
            // Second ring file: path + ".back".
            let back = Arc::new(Region::open_file(&path.with_extension("back")).unwrap());
            let (_, mut c) = split(region);
            let (mut p, _) = split(back);
            loop {
                let (h, data) = pop(&mut c, |h, d| (h, d.to_vec()));
                push(&mut p, h, &data);
                if h.kind == 2 {
                    break;
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, path: &Path) -> std::process::Child {
    child_command("peer_role")
        .env(ROLE, role)
        .env(PATH, path)
        .spawn()
        .unwrap()
}

struct Cleanup(Vec<PathBuf>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn a_hundred_thousand_random_messages_cross_processes_intact() {
    let path = shm_dir().join(format!("hf-ring-test-{}-stream", std::process::id()));
    let _cleanup = Cleanup(vec![path.clone()]);
    let region = Arc::new(Region::create_file(&path, 256).unwrap());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let mut child = spawn("consumer", &path);
    let (mut p, _) = split(region);
    for i in 0..MESSAGES {
        let h = SlotHeader {
            kind: 1,
            src: i as u32,
            ..Default::default()
        };
        push(&mut p, h, &payload(i));
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "consumer failed: {status}");
}

#[test]
fn request_and_echo_cross_processes() {
    let base = shm_dir().join(format!("hf-ring-test-{}-echo", std::process::id()));
    let back_path = base.with_extension("back");
    let _cleanup = Cleanup(vec![base.clone(), back_path.clone()]);
    let out = Arc::new(Region::create_file(&base, 128).unwrap());
    let back = Arc::new(Region::create_file(&back_path, 128).unwrap());
    let mut child = spawn("echo", &base);
    let (mut p, _) = split(out);
    let (_, mut c) = split(back);
    for i in 0..2_000u64 {
        let data = payload(i);
        let last = i == 1_999;
        let h = SlotHeader {
            kind: if last { 2 } else { 1 },
            src: i as u32,
            aux: 9,
            flags: 3,
            len: 0,
        };
        push(&mut p, h, &data);
        let (got_h, got) = pop(&mut c, |h, d| (h, d.to_vec()));
        assert_eq!(
            (got_h.src, got_h.aux, got_h.flags, got_h.kind),
            (h.src, 9, 3, h.kind)
        );
        assert_eq!(got, data);
    }
    assert!(child.wait().unwrap().success());
}

#[test]
fn opening_garbage_is_an_error() {
    let path = shm_dir().join(format!("hf-ring-test-{}-garbage", std::process::id()));
    let _cleanup = Cleanup(vec![path.clone()]);
    std::fs::write(&path, vec![7u8; 8192]).unwrap();
    assert!(Region::open_file(&path)
        .unwrap_err()
        .to_string()
        .contains("not a ring"));
    std::fs::write(&path, b"short").unwrap();
    assert!(Region::open_file(&path).is_err());
    assert!(
        Region::create_file(&path, 64).is_err(),
        "an existing file is not overwritten"
    );
    assert!(Region::heap(3).is_err());
    assert!(Region::heap(1 << 30).is_err());
}
