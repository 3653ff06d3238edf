//! Lending records: the process each buffer handed out by descriptor is lent to, so that what
//! a receiver held when it died goes back to the pool.
//!
//! Each buffer has a record word ([`FreeListMemory::lent`]): the pid of the process it is
//! lent to, or 0. A buffer's life:
//!
//! 1. free (on a list, record 0), popped by the owner: held (record 0);
//! 2. [`lend`]: the holder stores the receiver's pid, then publishes the descriptor;
//! 3. [`give_back`] by the receiver: clears the record, then pushes the buffer on the return
//!    list; or, once the receiver is dead, [`reclaim_lent`] by the owner: a compare-exchange
//!    of the record from that pid to 0, then a push on the main list.
//!
//! Invariant: a buffer on a list has record 0. Step 2 happens only to a held buffer; step 3
//! clears before it pushes, and its Release (the return list's, or the main list's) carries
//! the cleared record to whoever pops the buffer next, so no owner sees a buffer both free
//! and lent. Hence a record naming a dead process names a buffer on no list that nobody
//! reads any more, and the compare-exchange lets exactly one caller push it, however many
//! call [`reclaim_lent`] at once.
//!
//! Cost on the fast path: one Relaxed store per lend and one per return, each to the cache
//! line that already holds the buffer's link word (the sender's pop read it, the receiver's
//! return writes it), so no extra line moves between processes. Measured with callgrind:
//! `BufferManager::lend` adds 6 instructions to the 218 of a whole hand-over (acquire,
//! `into_pooled`, `take_payload`, drop of the payload), 3%.
//!
//! What the records cannot tell: a receiver killed between the two stores of `give_back` (a
//! window of a few instructions) leaves its buffer neither lent nor free, lost to the pool;
//! and a pid names a process only until the kernel reuses it, so the caller must reclaim a
//! dead process's buffers before it lends to a new process with the same pid.

use super::{push, push_returned, Corrupt, FreeListMemory};
use crate::sync::atomic::Ordering;

/// Bit of a lending record set by the receiver that took the buffer ([`claim`]): a second
/// descriptor naming the same buffer (forged, or replayed) finds it set and is refused. Pids
/// are below 2^31, so the bit never belongs to one.
pub const TAKEN: u32 = 1 << 31;

/// The receiver `pid` takes buffer `index` from a descriptor: only a buffer lent to it and not
/// taken yet (a compare-exchange from `pid` to `pid | TAKEN`). `false` for a buffer that is
/// free, held by its owner, lent to another process, or taken already: a descriptor its
/// owner did not publish for this receiver.
pub fn claim<M: FreeListMemory>(m: &M, index: u32, pid: u32) -> bool {
    m.lent(index).is_some_and(|r| {
        r.compare_exchange(pid, pid | TAKEN, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    })
}

/// Records that buffer `index`, which the caller holds, is lent to the process `pid` (not 0).
/// Call it before publishing the descriptor; a receiver that passes the buffer on calls it
/// again with the next receiver's pid. `Err` only when `index` is out of range.
pub fn lend<M: FreeListMemory>(m: &M, index: u32, pid: u32) -> Result<(), Corrupt> {
    debug_assert_ne!(pid, 0, "0 means not lent");
    // Relaxed: the descriptor's publication (a Release the receiver Acquires before it can
    // return the buffer) orders this store before the receiver's clear.
    m.lent(index).ok_or(Corrupt)?.store(pid, Ordering::Relaxed);
    Ok(())
}

/// Returns a buffer received by descriptor: clears its lending record, then pushes it on the
/// return list (whose Release publishes the cleared record with the buffer). The caller owns
/// `index`. `Err` only when `index` is out of range.
pub fn give_back<M: FreeListMemory>(m: &M, index: u32) -> Result<(), Corrupt> {
    m.lent(index).ok_or(Corrupt)?.store(0, Ordering::Relaxed);
    push_returned(m, index)
}

/// Puts every buffer lent to `pid` back on the free list and returns how many; `pid` must
/// be a process that is dead (it can no longer read or return them). Exactly once per
/// buffer, also when several threads call it at once. O(capacity); `pid` 0 takes nothing.
pub fn reclaim_lent<M: FreeListMemory>(m: &M, pid: u32) -> usize {
    if pid == 0 {
        return 0;
    }
    let mut n = 0;
    for i in 0..m.capacity() {
        let Some(record) = m.lent(i) else { break };
        // The compare-exchange reads the latest record: a buffer returned before the
        // process died reads 0 here and stays where it is. Relaxed: the dead process will
        // not touch the buffer again, and `push` publishes it with Release.
        let now = record.load(Ordering::Relaxed);
        if now & !TAKEN == pid
            && record
                .compare_exchange(now, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            && push(m, i).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Buffers lent now (records that are not 0). O(capacity): for tests and metrics.
pub fn lent_count<M: FreeListMemory>(m: &M) -> usize {
    (0..m.capacity())
        .filter_map(|i| m.lent(i))
        .filter(|r| r.load(Ordering::Relaxed) != 0)
        .count()
}
