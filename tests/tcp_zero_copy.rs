//! Zero-copy sends under a locked-memory limit: their pages count against the user's limit
//! until the kernel lets go of them, and a send the limit refuses must be sent again
//! plainly, never close the connection. Run by a child process as an unprivileged user with
//! a small `RLIMIT_MEMLOCK` (root is exempt from it).

mod common;

use common::child_var;
use hyperfabric::ring::SlotHeader;
use hyperfabric::transport::channel::Lane;
use hyperfabric::transport::tcp::reactor::ZeroCopy;
use hyperfabric::transport::tcp::{Event, FrameHeader, Reactor, RecvMode};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

const MAX: usize = 256 << 10;

fn header(i: u32, len: usize) -> FrameHeader {
    FrameHeader {
        slot: SlotHeader {
            len: len as u32,
            kind: 1,
            flags: 0,
            aux: 0,
            src: i,
        },
        dst: 1,
        lane: Lane::Bulk,
    }
}

/// Frame `i`: up to 256 KiB, its bytes name it.
fn payload(i: u32) -> Vec<u8> {
    let len = [200_000, 65_536, 1, 262_144, 90_001][i as usize % 5];
    (0..len)
        .map(|k| (k as u32 ^ i.wrapping_mul(7)) as u8)
        .collect()
}

#[test]
fn zero_copy_sends_refused_by_the_locked_memory_limit_are_sent_plainly() {
    // The unprivileged user may not reach this build's directory (a checkout under /root):
    // it runs a copy of this test binary from a directory of its own.
    let dir = std::env::temp_dir().join(format!("hf-zc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("child");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("prlimit")
        .args([
            "--memlock=1048576:1048576",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
        ])
        .arg("--clear-groups")
        .arg(&exe)
        .args([
            "--exact",
            "child_under_a_locked_memory_limit",
            "--ignored",
            "--nocapture",
        ])
        .env("HF_ZC_CHILD", "1")
        .output()
        .expect("prlimit and setpriv (util-linux) run the child");
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
#[ignore = "the child side of zero_copy_sends_refused_by_the_locked_memory_limit_are_sent_plainly"]
fn child_under_a_locked_memory_limit() {
    child_var("HF_ZC_CHILD");
    let mut a = Reactor::new(MAX, Some(RecvMode::Single), false).expect("a ring within 1 MiB");
    let mut b = Reactor::new(MAX, Some(RecvMode::Single), false).expect("a ring within 1 MiB");
    // Every flight zero-copy, kept on although loopback copies: their pages pile up
    // against the limit.
    a.set_zero_copy(ZeroCopy {
        min: Some(1),
        always: true,
    });
    if a.zero_copy_from().is_none() {
        eprintln!("no zero-copy sends on this kernel: nothing to refuse");
        return;
    }
    // Six connections whose readers wait: each has a zero-copy flight stuck in the full
    // socket, its pages pinned, more than the limit allows together.
    const CONNS: usize = 6;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut ids = Vec::new();
    for _ in 0..CONNS {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        ids.push((a.add(c).unwrap(), b.add(s).unwrap()));
    }
    let n = 300u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = vec![0u32; CONNS];
    for (k, &(ca, _)) in ids.iter().enumerate() {
        loop {
            assert!(Instant::now() < deadline, "connection {k} never filled");
            let p = payload(sent[k]);
            if !a.send(ca, &header(sent[k], p.len()), &[&p]).unwrap() {
                break;
            }
            sent[k] += 1;
        }
    }
    let readers: Vec<_> = ids.iter().map(|&(_, cb)| cb).collect();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u32; CONNS];
        while got.iter().any(|&g| g < n) {
            assert!(Instant::now() < deadline, "got {got:?} of {n}");
            b.wait(Duration::from_millis(5), &mut |from, e| {
                let k = readers
                    .iter()
                    .position(|&r| r == from)
                    .expect("a known connection");
                match e {
                    Event::Frame(h, data) => {
                        let i = got[k];
                        assert_eq!(h, header(i, data.len()), "frame {i} of {k}");
                        assert!(data == payload(i).as_slice(), "bytes of frame {i} of {k}");
                        got[k] += 1;
                    }
                    Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
                    Event::Closed(why) => panic!("{k} closed after {} frames: {why}", got[k]),
                }
            });
        }
        b
    });
    while sent.iter().any(|&s| s < n) || ids.iter().any(|&(ca, _)| !a.is_flushed(ca)) {
        assert!(
            Instant::now() < deadline,
            "stuck at {sent:?}: {:?}",
            a.zc_stats()
        );
        let mut progress = false;
        for (k, &(ca, _)) in ids.iter().enumerate() {
            if sent[k] < n {
                let p = payload(sent[k]);
                if a.send(ca, &header(sent[k], p.len()), &[&p]).unwrap() {
                    sent[k] += 1;
                    progress = true;
                }
            }
        }
        if !progress {
            a.wait(Duration::from_millis(5), &mut |_, e| {
                panic!("the sending side saw {e:?}")
            });
        }
    }
    drop(reader.join().unwrap());
    let z = a.zc_stats();
    println!("{z:?}");
    assert!(z.sends > 0, "{z:?}");
    assert_eq!(z.refused, 1, "the limit refused a send: {z:?}");
    assert!(a.zero_copy_from().is_none(), "plain sends after a refusal");
}
