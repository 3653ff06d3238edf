//! Zero-copy buffers: the reference's write/read semantics and errors, pool exhaustion and
//! return, concurrent acquire/release, a buffer filled by one process and read in place by
//! another through a descriptor, and buffers lent to a process killed while it holds them.

mod common;

use common::{child_command, child_var};
use hyperfabric::buffer::{BufferDescriptor, BufferManager, ZeroCopyBuffer};
use hyperfabric::ErrorKind;
use std::path::PathBuf;

#[test]
fn write_and_read_with_offsets_compression_and_errors() {
    let mut b = ZeroCopyBuffer::new(64, false, true).unwrap();
    assert!(b.encryption_enabled());
    assert_eq!(b.write_data(b"abc", 10, false).unwrap(), 3);
    assert_eq!(b.len(), 13);
    assert_eq!(b.read_data(3, 10, false).unwrap(), b"abc");
    assert_eq!(b.read_data(2, 0, false).unwrap(), [0, 0]);
    let e = b.read_data(4, 10, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferUnderflow);
    let e = b.write_data(&[1; 60], 10, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferOverflow);
    assert_eq!(
        b.read_data(3, 10, false).unwrap(),
        b"abc",
        "a failed write changes nothing"
    );
    assert_eq!(
        b.write_data(&[], usize::MAX, false).unwrap_err().kind(),
        ErrorKind::BufferOverflow
    );
    assert_eq!(
        b.read_data(usize::MAX, 1, false).unwrap_err().kind(),
        ErrorKind::BufferUnderflow
    );

    // Compressed data is read back by its original length, as it was written; what the
    // write stored (its compressed length) is not needed, and data written after it does
    // not disturb it.
    let mut c = ZeroCopyBuffer::new(4096, false, false).unwrap();
    let text = b"all-reduce ".repeat(200);
    let n = c.write_data(&text, 0, true).unwrap();
    assert!(n < text.len() / 4, "{n}");
    assert_eq!(c.write_data(b"tail", n, false).unwrap(), 4);
    assert_eq!(c.read_data(text.len(), 0, true).unwrap(), text);
    assert_eq!(c.read_data(10, 0, true).unwrap(), &text[..10], "a prefix");
    assert_eq!(
        c.read_data(text.len() + 1, 0, true).unwrap_err().kind(),
        ErrorKind::BufferUnderflow,
        "more than was written"
    );
    assert_eq!(
        c.read_data(n, 0, false).unwrap().len(),
        n,
        "the stored bytes"
    );
    assert_eq!(c.read_data(4, n, false).unwrap(), b"tail");
    // A second compressed write further on is found at its own offset.
    let words = b"gradient ".repeat(50);
    let m = c.write_data(&words, n + 4, true).unwrap();
    assert_eq!(c.read_data(words.len(), n + 4, true).unwrap(), words);
    // Bytes that are not a compressed block, and a block cut by the end of the data.
    assert_eq!(
        c.read_data(4, n, true).unwrap_err().kind(),
        ErrorKind::MalformedFrame
    );
    c.set_len(n + 4 + m - 1).unwrap();
    assert_eq!(
        c.read_data(words.len(), n + 4, true).unwrap_err().kind(),
        ErrorKind::BufferUnderflow
    );
    // Buffers that compress by default.
    let mut d = ZeroCopyBuffer::new(4096, true, false).unwrap();
    d.write_data(&text, 0, false).unwrap();
    assert_eq!(d.read_data(text.len(), 0, false).unwrap(), text);
    assert_eq!(
        ZeroCopyBuffer::new(0, false, false).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn pools_hand_out_each_buffer_once_and_take_them_back() {
    let pool = BufferManager::new(3, 100).unwrap();
    assert_eq!(pool.buffer_size(), 128, "rounded up to cache lines");
    let held: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    assert_eq!(
        pool.acquire().unwrap_err().kind(),
        ErrorKind::BufferExhausted
    );
    assert_eq!(pool.available(), 0);
    drop(held);
    assert_eq!(pool.available(), 3);
    assert!(BufferManager::new(0, 10).is_err());
    assert!(BufferManager::new(10, 0).is_err());
}

#[test]
fn concurrent_acquire_release_never_shares_a_buffer() {
    let pool = BufferManager::new(8, 64).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let pool = pool.clone();
            s.spawn(move || {
                for i in 0..20_000u32 {
                    let Ok(mut b) = pool.acquire() else { continue };
                    let stamp = [t, (i & 0xff) as u8, t, (i >> 8) as u8];
                    b.write_data(&stamp, 0, false).unwrap();
                    std::hint::spin_loop();
                    assert_eq!(
                        b.read_data(4, 0, false).unwrap(),
                        stamp,
                        "buffer shared between threads"
                    );
                }
            });
        }
    });
    assert_eq!(pool.available(), 8);
}

const ROLE: &str = "HF_BUFFER_TEST_POOL";

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

/// Child: maps the pool, reads the buffer named in its environment in place, releases it.
#[test]
#[ignore = "child process of a_buffer_filled_in_one_process_is_read_in_place_by_another, started by it"]
fn peer_reads_descriptor() {
    let path = child_var(ROLE);
    let index: u32 = child_var("HF_BUFFER_INDEX").parse().unwrap();
    let len: u32 = child_var("HF_BUFFER_LEN").parse().unwrap();
    let pool = BufferManager::open_shared(std::path::Path::new(&path)).unwrap();
    let d = BufferDescriptor { index, len };
    let data = pool.read_descriptor(&d).unwrap();
    assert_eq!(data.len(), len as usize);
    assert!(
        data.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "bytes differ"
    );
    pool.release_descriptor(&d).unwrap();
    assert!(pool
        .read_descriptor(&BufferDescriptor { index: 99, len: 1 })
        .is_err());
}

#[test]
fn a_buffer_filled_in_one_process_is_read_in_place_by_another() {
    let path = PathBuf::from("/dev/shm").join(format!("hf-pool-test-{}", std::process::id()));
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(path.clone());
    let pool = BufferManager::create_shared(&path, 4, 1 << 20).unwrap();
    let mut b = pool.acquire().unwrap();
    for (i, byte) in b.as_mut_slice().iter_mut().enumerate() {
        *byte = pattern(i);
    }
    b.set_len(1 << 20).unwrap();
    let d = b.into_descriptor().unwrap();
    assert_eq!(
        pool.available(),
        3,
        "in flight until the receiver releases it"
    );
    let status = child_command("peer_reads_descriptor")
        .env(ROLE, &path)
        .env("HF_BUFFER_INDEX", d.index.to_string())
        .env("HF_BUFFER_LEN", d.len.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(pool.available(), 4, "the receiver returned the buffer");
    assert!(BufferManager::open_shared(&PathBuf::from("/dev/shm/does-not-exist")).is_err());
}

const HOLDER: &str = "HF_BUFFER_TEST_HOLDER";

/// Child: maps the pool, takes the buffers named by the "index len seed" lines on stdin as
/// payloads read in place, checks their bytes, returns the first one, reports how many it
/// holds, and waits to be killed.
#[test]
#[ignore = "child process of buffers_lent_to_a_killed_process_come_back_once, started by it"]
fn peer_holds_lent_buffers() {
    let path = child_var(HOLDER);
    let pool = BufferManager::open_shared(std::path::Path::new(&path)).unwrap();
    let mut held = Vec::new();
    for line in std::io::stdin().lines() {
        let words: Vec<usize> = line
            .unwrap()
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        let (index, len, seed) = (words[0], words[1], words[2]);
        let p = pool.take_payload(index as u32, 0, len).unwrap();
        assert!(p.is_zero_copy());
        assert!(
            p.iter().enumerate().all(|(i, &b)| b == pattern(i + seed)),
            "bytes differ"
        );
        held.push(p);
    }
    held.remove(0);
    println!("holding {}", held.len());
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// A receiver killed while it holds buffers it was lent: the owner takes exactly those back
/// (not the one it returned, not while it runs, not twice), and every buffer is free again.
#[test]
fn buffers_lent_to_a_killed_process_come_back_once() {
    use std::io::{BufRead, Write};
    let path = PathBuf::from("/dev/shm").join(format!("hf-lend-test-{}", std::process::id()));
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(path.clone());
    let pool = BufferManager::create_shared(&path, 8, 4096).unwrap();
    let mut child = child_command("peer_holds_lent_buffers")
        .env(HOLDER, &path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut to_child = child.stdin.take().unwrap();
    for seed in 0..5 {
        let mut b = pool.acquire().unwrap();
        for (i, byte) in b.as_mut_slice()[..3000].iter_mut().enumerate() {
            *byte = pattern(i + seed);
        }
        b.set_len(3000).unwrap();
        let (index, len) = b.into_pooled().unwrap();
        pool.lend(index, pid).unwrap();
        writeln!(to_child, "{index} {len} {seed}").unwrap();
    }
    drop(to_child);
    // The harness prints its own lines around the child's report.
    let report = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(|l| l.ok())
        .find_map(|l| l.find("holding").map(|i| l[i..].trim_end().to_owned()));
    assert_eq!(
        report.as_deref(),
        Some("holding 4"),
        "the child took the buffers"
    );
    assert_eq!(pool.lent_count(), 4, "the returned one is no longer lent");
    assert_eq!(pool.available(), 4);
    assert_eq!(
        pool.reclaim_lent(pid),
        0,
        "nothing is taken from a live process"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        pool.available(),
        4,
        "a dead process returns nothing by itself"
    );
    assert_eq!(pool.reclaim_lent(pid), 4);
    assert_eq!(pool.available(), 8);
    assert_eq!(pool.lent_count(), 0);
    assert_eq!(pool.reclaim_lent(pid), 0, "a second call takes nothing");
    assert_eq!(pool.available(), 8);
    let all: Vec<_> = (0..8).map(|_| pool.acquire().unwrap()).collect();
    let mut indices: Vec<u32> = all
        .into_iter()
        .map(|b| b.into_pooled().unwrap().0)
        .collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), 8, "each buffer is free once");
}
