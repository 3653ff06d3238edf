//! Sends from registered memory whose frames a hostile process rewrites in the ring: fields
//! that contradict each other, flags an endpoint never writes, addresses of bad memory or of
//! bytes beside the send, the lent entry, the id, and a ring file renamed to name another
//! process and its secret. Each costs only its ring or delivers nothing; nothing faults.

mod common;

use common::memory::*;
use common::rings::{endpoint_with_file, forge, root};

use hyperfabric::fabric::SendOptions;
use hyperfabric::ErrorKind;
use std::time::Duration;

// length (56..64) and lent entry address (64..72) of the bytes in the sender.
const SLOT_LEN: usize = 4;
const SLOT_FLAGS: usize = 9;
const SLOT_AUX: usize = 10;
const MSG_ID: usize = 20;
const MSG_HOP: usize = 28;
const MSG_TOTAL: usize = 32;
const MSG_OFFSET: usize = 36;
const REMOTE_ADDR: usize = 48;
const REMOTE_LEN: usize = 56;
const REMOTE_ENTRY: usize = 64;

const SOON: Duration = Duration::from_secs(5);

/// What a forgery is called, and the bytes it writes at which offsets of the frame.
type Forgery = (&'static str, Vec<(usize, Vec<u8>)>);

fn u32le(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn u64le(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Frames of sends from registered memory whose fields contradict each other or that carry
/// flags an endpoint never writes (the receiver's internal "already copied" flag among
/// them) are not delivered, cost their ring, and leave every other sender alone.
#[test]
fn forged_remote_frames_that_contradict_themselves_cost_their_ring() {
    let dir = fabric("shape");
    let tx = protocol(&dir.0, &["a", "c"]);
    let rx = protocol(&dir.0, &["b"]);
    let data = pattern(4096, 1);
    let region = register(data.as_ptr(), data.len());
    let big = (1u64 << 30) + 1;
    let forgeries: Vec<Forgery> = vec![
        (
            "a length past the largest message",
            vec![(MSG_TOTAL, u32le(big as u32)), (REMOTE_LEN, u64le(big))],
        ),
        (
            "a length of 4 GiB - 1",
            vec![
                (MSG_TOTAL, u32le(u32::MAX)),
                (REMOTE_LEN, u64le(u32::MAX as u64)),
            ],
        ),
        (
            "a length the header does not have",
            vec![(REMOTE_LEN, u64le(4095))],
        ),
        (
            "a total the bytes do not have",
            vec![(MSG_TOTAL, u32le(4097))],
        ),
        (
            "a length above 4 GiB",
            vec![(REMOTE_LEN, u64le((1 << 32) + 4096))],
        ),
        ("id 0", vec![(MSG_ID, u64le(0))]),
        ("an offset", vec![(MSG_OFFSET, u32le(1))]),
        ("a hop", vec![(MSG_HOP, vec![1])]),
        ("metadata", vec![(SLOT_AUX, vec![1, 0])]),
        ("a slot shorter", vec![(SLOT_LEN, u32le(32 + 23))]),
        ("a slot longer", vec![(SLOT_LEN, u32le(32 + 25))]),
        ("and one-way", vec![(SLOT_FLAGS, vec![32 | 1])]),
        ("and a descriptor", vec![(SLOT_FLAGS, vec![32 | 4])]),
        ("and framed", vec![(SLOT_FLAGS, vec![32 | 2])]),
        ("and compact", vec![(SLOT_FLAGS, vec![32 | 16])]),
        ("and read", vec![(SLOT_FLAGS, vec![32 | 64])]),
        ("read alone", vec![(SLOT_FLAGS, vec![64])]),
        ("read and one-way", vec![(SLOT_FLAGS, vec![64 | 1])]),
    ];
    let opts = SendOptions {
        timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let mut corrupt = 0.0;
    for (what, fields) in forgeries {
        let (mut ep, file) = endpoint_with_file(&dir, &tx, "a", "b");
        let req = ep.post_mem(&region, 0, data.len(), &opts).unwrap();
        for (at, bytes) in &fields {
            forge(&file, 0, *at, bytes);
        }
        nothing_for(&rx, "b", Duration::from_millis(100));
        corrupt += 1.0;
        assert_eq!(metric(&rx, "corrupt_channels"), corrupt, "{what}");
        assert!(req.wait().is_err(), "{what}");
        let mut other = tx.endpoint("c", "b").unwrap();
        let r = other.post_mem(&region, 0, 100, &opts).unwrap();
        let m = rx.recv("b", SOON).unwrap();
        assert_eq!(
            (m.source.as_str(), &m.data[..]),
            ("c", &data[..100]),
            "{what}"
        );
        assert!(r.wait().is_ok());
    }
}

/// Frames whose fields agree but name memory other than their send's (an unmapped or
/// wrapping address, a lent entry nowhere or inside the bytes, a length past the mapping) or
/// a send its sender did not make (an id its entry does not hold) deliver nothing and copy
/// nothing; the ring goes on, nothing faults, and the request of the rewritten send fails.
#[test]
fn forged_remote_frames_naming_bad_memory_deliver_nothing() {
    let dir = fabric("memory");
    let tx = protocol(&dir.0, &["a"]);
    let rx = protocol(&dir.0, &["b"]);
    let data = pattern(64 << 10, 2);
    let region = register(data.as_ptr(), data.len());
    let max = 1u64 << 30;
    let forgeries: Vec<Forgery> = vec![
        ("an unmapped address", vec![(REMOTE_ADDR, u64le(8))]),
        (
            "an address that wraps",
            vec![(REMOTE_ADDR, u64le(u64::MAX - 100))],
        ),
        (
            "a kernel address",
            vec![(REMOTE_ADDR, u64le(0xffff_8000_0000_0000))],
        ),
        ("an entry nowhere", vec![(REMOTE_ENTRY, u64le(8))]),
        (
            "an entry that wraps",
            vec![(REMOTE_ENTRY, u64le(u64::MAX - 3))],
        ),
        (
            "an entry in the bytes",
            vec![(REMOTE_ENTRY, u64le(data.as_ptr() as u64))],
        ),
        (
            "the largest message past the mapping",
            vec![(MSG_TOTAL, u32le(max as u32)), (REMOTE_LEN, u64le(max))],
        ),
        ("an id its entry does not hold", vec![(MSG_ID, u64le(1))]),
    ];
    let opts = SendOptions {
        timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let (mut ep, file) = endpoint_with_file(&dir, &tx, "a", "b");
    // Each frame takes two slots (16 + 32 + 24 bytes), one after the other.
    let mut slot = 0;
    for (what, fields) in forgeries {
        for into in [false, true] {
            let req = ep.post_mem(&region, 0, data.len(), &opts).unwrap();
            for (at, bytes) in &fields {
                forge(&file, slot, *at, bytes);
            }
            slot += 2;
            let mut buf = vec![0u8; 128 << 10];
            let got = if into {
                rx.recv_into("b", Duration::from_millis(100), &mut buf)
                    .map(|g| g.len)
            } else {
                rx.recv("b", Duration::from_millis(100))
                    .map(|m| m.data.len())
            };
            match got {
                Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout, "{what}: {e}"),
                Ok(n) => panic!("{what}: a forged send delivered {n} bytes"),
            }
            assert!(
                buf.iter().all(|&b| b == 0),
                "{what}: copied into the buffer"
            );
            assert!(req.wait().is_err(), "{what}");
            assert_eq!(metric(&rx, "corrupt_channels"), 0.0, "{what}");
        }
    }
    // The ring goes on.
    let r = ep.post_mem(&region, 0, 1000, &opts).unwrap();
    let m = rx.recv("b", SOON).unwrap();
    assert_eq!(&m.data[..], &data[..1000]);
    assert!(r.wait().is_ok());
}

/// A frame of a send in flight rewritten to name other bytes of the sender (memory it never
/// registered, a secret beside the region): the receiver copies nothing it was not sent.
#[test]
fn a_forged_frame_cannot_read_memory_beside_the_send() {
    let dir = fabric("beside");
    let tx = protocol(&dir.0, &["a"]);
    let rx = protocol(&dir.0, &["b"]);
    let data = pattern(4096, 1);
    let secret = vec![0x5eu8; 4096];
    let region = register(data.as_ptr(), data.len());
    let opts = SendOptions {
        timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let (mut ep, file) = endpoint_with_file(&dir, &tx, "a", "b");
    let mut slot = 0;
    for (what, addr, len) in [
        ("a secret", secret.as_ptr() as u64, 4096u64),
        ("part of a secret", secret.as_ptr() as u64 + 1024, 2048),
        ("more than the send", data.as_ptr() as u64, 8192),
        ("less than the send", data.as_ptr() as u64, 100),
    ] {
        let req = ep.post_mem(&region, 0, data.len(), &opts).unwrap();
        forge(&file, slot, REMOTE_ADDR, &u64le(addr));
        forge(&file, slot, REMOTE_LEN, &u64le(len));
        forge(&file, slot, MSG_TOTAL, &u32le(len as u32));
        slot += 2;
        if let Ok(m) = rx.recv("b", Duration::from_millis(100)) {
            panic!(
                "{what}: the receiver copied {} bytes the sender did not send{}",
                m.data.len(),
                if m.data.iter().all(|&b| b == 0x5e) {
                    " (the secret)"
                } else {
                    ""
                }
            );
        }
        assert!(req.wait().is_err(), "{what}");
    }
    assert_eq!(metric(&rx, "corrupt_channels"), 0.0);
    let req = ep.post_mem(&region, 0, 100, &opts).unwrap();
    assert_eq!(&rx.recv("b", SOON).unwrap().data[..], &data[..100]);
    assert!(req.wait().is_ok());
}

const SECRET_WORD: u64 = 0x1234_5678_9abc_def0;

/// Child of `a_ring_file_naming_another_process_reads_nothing_of_it`: holds a secret and a
/// word of known value, prints their addresses, and waits until its stdin closes.
#[test]
#[ignore = "child process of the ring-naming test, started by it"]
fn child_holds_a_secret() {
    let secret = vec![0x5eu8; 4096];
    let word = Box::new(SECRET_WORD);
    println!(
        "secret {} {}",
        secret.as_ptr() as u64,
        &*word as *const u64 as u64
    );
    common::serve_until_stdin_closes();
    drop((secret, word));
}

/// A ring file renamed to name another process (the name carries the producer's pid), its
/// frame rewritten to name a secret of that process and a word there whose value it takes
/// as its id: the receiver delivers nothing of that process's memory.
#[test]
fn a_ring_file_naming_another_process_reads_nothing_of_it() {
    use std::io::{BufRead, BufReader};
    let dir = fabric("rename");
    let mut cmd = common::child_command("child_holds_a_secret");
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let victim = common::Peer(child);
    let mut lines = BufReader::new(out).lines().map_while(Result::ok);
    let line = lines
        .by_ref()
        .find_map(|l| l.rsplit_once("secret ").map(|(_, v)| v.to_owned()))
        .expect("the child printed its addresses");
    std::thread::spawn(move || lines.for_each(drop));
    let (secret, word) = line.trim().split_once(' ').unwrap();
    let (secret, word): (u64, u64) = (secret.parse().unwrap(), word.parse().unwrap());
    let tx = protocol(&dir.0, &["a"]);
    let rx = protocol(&dir.0, &["b"]);
    let data = pattern(4096, 1);
    let region = register(data.as_ptr(), data.len());
    let opts = SendOptions {
        timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let (mut ep, file) = endpoint_with_file(&dir, &tx, "a", "b");
    let req = ep.post_mem(&region, 0, data.len(), &opts).unwrap();
    forge(&file, 0, REMOTE_ADDR, &u64le(secret));
    forge(&file, 0, REMOTE_ENTRY, &u64le(word));
    forge(&file, 0, MSG_ID, &u64le(SECRET_WORD));
    // ep-<src>-<dst>-<pid>-<n>.<generation>, with the victim's pid.
    let name = file.file_name().unwrap().to_str().unwrap();
    let (ends, generation) = name.split_once('.').unwrap();
    let mut parts: Vec<String> = ends.split('-').map(str::to_owned).collect();
    parts[3] = victim.0.id().to_string();
    std::fs::rename(
        &file,
        root(&dir).join(format!("{}.{generation}", parts.join("-"))),
    )
    .unwrap();
    if let Ok(m) = rx.recv("b", Duration::from_millis(100)) {
        panic!(
            "the receiver delivered {} bytes of another process{}",
            m.data.len(),
            if m.data.iter().all(|&b| b == 0x5e) {
                " (its secret)"
            } else {
                ""
            }
        );
    }
    assert!(req.wait().is_err());
    drop(victim);
}
