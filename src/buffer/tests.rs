//! Pools whose shared words another process wrote over (simulated by writing the file at the
//! offsets the layout documents), and lending records as the mapping holds them.

use super::{BufferManager, POOL_MAGIC};
use crate::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const HEAD: u64 = 128;
const RECORDS: u64 = 4096;

fn shared(count: usize) -> (tempfile::TempDir, PathBuf, BufferManager) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool");
    let pool = BufferManager::create_shared(&path, count, 256).unwrap();
    (dir, path, pool)
}

/// Writes `bytes` at `offset` of the pool file, as another process mapping it could.
fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn peek_u32(path: &Path, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut b, offset)
        .unwrap();
    u32::from_le_bytes(b)
}

fn assert_corrupt_refusal(pool: &BufferManager) {
    let e = pool.acquire().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferExhausted);
    assert!(e.to_string().contains("corrupt"), "{e}");
    assert!(pool.is_corrupt());
}

#[test]
fn a_head_outside_the_pool_fails_acquire_and_marks_the_pool_for_every_process() {
    let (_dir, path, pool) = shared(4);
    poke(&path, HEAD, &(5u64 << 32 | 1000).to_le_bytes());
    assert_corrupt_refusal(&pool);
    assert_eq!(pool.corruptions(), 1);
    assert!(BufferManager::open_shared(&path).unwrap().is_corrupt());
    // The mark stays: a list that was written over is not trusted again.
    poke(&path, HEAD, &0u64.to_le_bytes());
    assert_corrupt_refusal(&pool);
    assert_eq!(pool.corruptions(), 1, "refused before the list is read");
}

#[test]
fn a_link_outside_the_pool_is_not_followed() {
    let (_dir, path, pool) = shared(4);
    poke(&path, RECORDS, &99u32.to_le_bytes());
    assert_corrupt_refusal(&pool);
    assert_eq!(pool.available(), 4, "nothing was taken");
    assert_eq!(
        peek_u32(&path, HEAD),
        0,
        "the head did not move to the bad link"
    );
}

#[test]
fn a_cycle_on_the_return_list_does_not_hang_the_owner() {
    let (_dir, path, pool) = shared(4);
    let held: Vec<u32> = (0..4)
        .map(|_| pool.acquire().unwrap().into_pooled().unwrap().0)
        .collect();
    for &i in &held {
        pool.release_descriptor(&super::BufferDescriptor { index: i, len: 0 })
            .unwrap();
    }
    // The return list runs 3 -> 2 -> 1 -> 0; make 0 lead back to 2.
    poke(&path, RECORDS, &2u32.to_le_bytes());
    let (tx, rx) = std::sync::mpsc::channel();
    let owner = pool.clone();
    std::thread::spawn(move || tx.send(owner.acquire().map(drop)).unwrap());
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("acquire follows a cycle");
    assert_eq!(got.unwrap_err().kind(), ErrorKind::BufferExhausted);
    assert!(pool.is_corrupt());
}

#[test]
fn hostile_counters_do_not_overflow_available() {
    let (_dir, path, pool) = shared(4);
    poke(&path, 16, &u32::MAX.to_le_bytes());
    assert_eq!(pool.available(), 4);
}

#[test]
fn another_format_version_is_refused() {
    let (_dir, path, _pool) = shared(2);
    let mut old = POOL_MAGIC.to_le_bytes();
    old[7] = 2;
    poke(&path, 0, &old);
    let e = BufferManager::open_shared(&path).unwrap_err();
    assert!(e.to_string().contains("format version"), "{e}");
}

#[test]
fn the_lending_record_sits_beside_the_link_and_is_cleared_on_return() {
    let (_dir, path, pool) = shared(4);
    let (index, _) = pool.acquire().unwrap().into_pooled().unwrap();
    pool.lend(index, 31337).unwrap();
    assert_eq!(peek_u32(&path, RECORDS + 8 * index as u64 + 4), 31337);
    assert_eq!(pool.lent_count(), 1);
    // The receiver's side: the payload's drop clears the record and returns the buffer.
    let receiver = BufferManager::open_shared(&path).unwrap();
    drop(receiver.take_payload(index, 0, 0).unwrap());
    assert_eq!(peek_u32(&path, RECORDS + 8 * index as u64 + 4), 0);
    assert_eq!(pool.lent_count(), 0);
    assert_eq!(pool.available(), 4);

    let e = pool.lend(4, 31337).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        pool.lend(0, 0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn nothing_is_reclaimed_from_a_live_process_or_pid_zero() {
    let (_dir, _path, pool) = shared(4);
    let me = std::process::id();
    let (a, _) = pool.acquire().unwrap().into_pooled().unwrap();
    pool.lend(a, me).unwrap();
    assert_eq!(pool.reclaim_lent(me), 0, "this process still reads it");
    assert_eq!(pool.reclaim_lent(0), 0, "0 names no process");
    assert_eq!(pool.lent_count(), 1);
    assert_eq!(pool.available(), 3);
}

#[test]
fn concurrent_reclaims_of_a_dead_process_return_each_buffer_once() {
    let (_dir, _path, pool) = shared(16);
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    for _ in 0..12 {
        let (i, _) = pool.acquire().unwrap().into_pooled().unwrap();
        pool.lend(i, dead).unwrap();
    }
    child.wait().unwrap();
    let total: usize = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| s.spawn(|| pool.reclaim_lent(dead)))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(total, 12);
    assert_eq!(pool.available(), 16);
    assert_eq!(pool.lent_count(), 0);
    let all: Vec<_> = (0..16).map(|_| pool.acquire().unwrap()).collect();
    let mut seen: Vec<u32> = all
        .into_iter()
        .map(|b| b.into_pooled().unwrap().0)
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 16, "no buffer is on the list twice");
}

#[test]
fn a_receiver_takes_only_a_buffer_lent_to_it_and_only_once() {
    let (_dir, path, pool) = shared(4);
    let receiver = BufferManager::open_shared(&path).unwrap();
    let (index, _) = pool.acquire().unwrap().into_pooled().unwrap();
    // Not lent yet, or lent to another process: refused, and nothing changes.
    assert!(receiver.take_lent_payload(index, 8, 4242).is_err());
    pool.lend(index, 777).unwrap();
    assert!(receiver.take_lent_payload(index, 8, 4242).is_err());
    pool.lend(index, 4242).unwrap();
    // A free buffer is never lent.
    let free = (0..4).find(|&i| i != index).unwrap();
    assert!(receiver.take_lent_payload(free, 8, 4242).is_err());
    // A length past the buffer is refused and leaves the buffer lent.
    assert!(receiver.take_lent_payload(index, 1 << 30, 4242).is_err());
    let taken = receiver.take_lent_payload(index, 8, 4242).unwrap();
    // A second descriptor naming it (a copy of the first) is refused while it is held.
    assert!(receiver.take_lent_payload(index, 8, 4242).is_err());
    drop(taken);
    assert_eq!(pool.lent_count(), 0);
    assert_eq!(pool.available(), 4);
    // After its return it is free again: refused.
    assert!(receiver.take_lent_payload(index, 8, 4242).is_err());
}
