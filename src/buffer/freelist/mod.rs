//! A lock-free free list of buffer indices (a Treiber stack) whose state lives in shared
//! memory: a head word `tag:32 | index:32` and one link word per buffer. The tag grows on
//! every successful change, so a head that was popped and pushed back between a reader's load
//! and its compare-exchange (ABA) no longer compares equal.
//!
//! Buffers that other processes release (received by descriptor) go to a second stack, the
//! return list, on its own cache line: a receiver releasing buffer after buffer keeps that
//! line in its own cache, and the owner's pops never touch it until the main list runs dry;
//! then one exchange takes the whole return list, which is spliced into the main list. Each
//! side writes its own lines, so a stream of buffers costs no cache-line ping-pong per buffer.
//!
//! Every word is shared with other processes, so none is trusted: the algorithm only ever
//! stores `NIL` or an index below [`FreeListMemory::capacity`] into a head or a link, and any
//! other value read back is [`Corrupt`]; a chain is never followed for more steps than the
//! pool has buffers (an honest chain holds each buffer once, so a longer one is a cycle).
//! Retry loops repeat only when another thread's compare-exchange succeeded in between; none
//! waits for a value to appear. The checks compare values already loaded, so they touch no
//! extra cache line. Measured with callgrind, with them and the pool's corrupt-state check:
//! acquire and drop of a buffer went from 91 to 108 instructions; a hand-over (acquire,
//! `into_pooled`, `take_payload`, drop of the payload, which also clears the lending record)
//! from 203 to 218, 7%.
//!
//! [`lending`] records which process holds each buffer handed out by descriptor.

pub mod lending;

#[cfg(test)]
mod model;

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Index marking the end of the list.
pub const NIL: u32 = u32::MAX;

/// A head or link held a value the algorithm never stores (an index outside the pool), or a
/// chain was longer than the pool (a cycle): another process wrote the shared words. The
/// operation took nothing from the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Where the list's words live.
pub trait FreeListMemory {
    /// Buffers: valid indices are `0..capacity()` (at most `NIL - 1`).
    fn capacity(&self) -> u32;
    /// Head word: `tag << 32 | index`.
    fn head(&self) -> &AtomicU64;
    /// Head word of the return list.
    fn returned(&self) -> &AtomicU64;
    /// Buffers on the return list (maintained beside it, for reporting).
    fn returned_count(&self) -> &AtomicU32;
    /// Link word of buffer `i` (the next index below it); `None` when `i >= capacity()`.
    fn link(&self, i: u32) -> Option<&AtomicU32>;
    /// Lending record of buffer `i` (see [`lending`]); `None` when `i >= capacity()`.
    fn lent(&self, i: u32) -> Option<&AtomicU32>;
    /// Free buffers (maintained beside the list, for reporting).
    fn free_count(&self) -> &AtomicU32;
}

fn pack(tag: u32, index: u32) -> u64 {
    (tag as u64) << 32 | index as u64
}

/// The tag after `head`'s; wraps (the tag only has to differ from recent ones, and any value
/// may have been written by another process).
fn next_tag(head: u64) -> u32 {
    ((head >> 32) as u32).wrapping_add(1)
}

/// Whether `index` could have been stored by the algorithm.
fn valid<M: FreeListMemory>(m: &M, index: u32) -> bool {
    index == NIL || index < m.capacity()
}

/// Takes a free index (from the main list, else from what was returned); `Ok(None)` when
/// every buffer is in use.
pub fn pop<M: FreeListMemory>(m: &M) -> Result<Option<u32>, Corrupt> {
    match pop_main(m)? {
        Some(i) => Ok(Some(i)),
        None => reclaim(m),
    }
}

/// Takes the buffer returned last if any (its bytes are likely still in cache: what matters
/// for large buffers), else one of the main list.
pub fn pop_recent<M: FreeListMemory>(m: &M) -> Result<Option<u32>, Corrupt> {
    if m.returned().load(Ordering::Relaxed) as u32 != NIL {
        if let Some(i) = reclaim(m)? {
            return Ok(Some(i));
        }
    }
    pop_main(m)
}

/// Moves the whole return list to the main list and takes its first buffer.
fn reclaim<M: FreeListMemory>(m: &M) -> Result<Option<u32>, Corrupt> {
    let mut head = m.returned().load(Ordering::Relaxed);
    let first = loop {
        let index = head as u32;
        if index == NIL {
            return Ok(None);
        }
        // Checked before the exchange, so a bad head stays where it is and nothing moves.
        if !valid(m, index) {
            return Err(Corrupt);
        }
        let new = pack(next_tag(head), NIL);
        // Acquire pairs with the Release of every `give_back` on the chain taken.
        match m
            .returned()
            .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => break index,
            Err(h) => head = h,
        }
    };
    // The chain is ours now: count it and find its end, at most `capacity` buffers. On a bad
    // link the chain stays detached (its buffers are lost to this pool, which is marked
    // corrupt by the caller): splicing it would put the bad value on the main list.
    let rest = m.link(first).ok_or(Corrupt)?.load(Ordering::Relaxed);
    let mut n = 1;
    let mut tail = rest;
    if rest != NIL {
        loop {
            n += 1;
            if n > m.capacity() {
                return Err(Corrupt);
            }
            let next = m.link(tail).ok_or(Corrupt)?.load(Ordering::Relaxed);
            if next == NIL {
                break;
            }
            tail = next;
        }
    }
    m.returned_count().fetch_sub(n, Ordering::Relaxed);
    if rest != NIL {
        // Splice rest..=tail onto the main list in one exchange (`tail` was checked above).
        let tail_link = m.link(tail).ok_or(Corrupt)?;
        let mut head = m.head().load(Ordering::Relaxed);
        loop {
            tail_link.store(head as u32, Ordering::Relaxed);
            let new = pack(next_tag(head), rest);
            match m
                .head()
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        m.free_count().fetch_add(n - 1, Ordering::Relaxed);
    }
    Ok(Some(first))
}

/// Puts `index` on the return list. The caller owns `index` and has cleared its lending
/// record ([`lending::give_back`] is the way in).
fn push_returned<M: FreeListMemory>(m: &M, index: u32) -> Result<(), Corrupt> {
    let link = m.link(index).ok_or(Corrupt)?;
    let mut head = m.returned().load(Ordering::Relaxed);
    loop {
        link.store(head as u32, Ordering::Relaxed);
        let new = pack(next_tag(head), index);
        // Release: the link above, the cleared lending record and every read of the buffer
        // happen-before its next owner.
        match m
            .returned()
            .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => {
                m.returned_count().fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(h) => head = h,
        }
    }
}

fn pop_main<M: FreeListMemory>(m: &M) -> Result<Option<u32>, Corrupt> {
    let mut head = m.head().load(Ordering::Acquire);
    loop {
        let index = head as u32;
        if index == NIL {
            return Ok(None);
        }
        // May read a link that another thread is rewriting after popping `index`; the tag
        // then differs and the compare-exchange below fails. Such a link still holds a value
        // the algorithm stored, so an invalid one is corruption either way, and is refused
        // before it could become the head.
        let next = m.link(index).ok_or(Corrupt)?.load(Ordering::Relaxed);
        if !valid(m, next) {
            return Err(Corrupt);
        }
        let new = pack(next_tag(head), next);
        // Acquire pairs with the Release of the push that made `index` free, so the previous
        // owner's writes to the buffer happen-before ours.
        match m
            .head()
            .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                m.free_count().fetch_sub(1, Ordering::Relaxed);
                return Ok(Some(index));
            }
            Err(h) => head = h,
        }
    }
}

/// Returns `index` to the list. The caller owned it (popped it and has not pushed it since)
/// and did not lend it (or took it back with [`lending::reclaim_lent`]). `Err` only when
/// `index` is out of range.
pub fn push<M: FreeListMemory>(m: &M, index: u32) -> Result<(), Corrupt> {
    let link = m.link(index).ok_or(Corrupt)?;
    let mut head = m.head().load(Ordering::Relaxed);
    loop {
        link.store(head as u32, Ordering::Relaxed);
        let new = pack(next_tag(head), index);
        // Release: the link above and every write to the buffer happen-before the next pop.
        match m
            .head()
            .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => {
                m.free_count().fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(h) => head = h,
        }
    }
}

/// Links `0..capacity` into a full list with no buffer lent (fresh memory, no concurrent
/// user).
pub fn init<M: FreeListMemory>(m: &M) {
    let count = m.capacity();
    for i in 0..count {
        if let (Some(link), Some(lent)) = (m.link(i), m.lent(i)) {
            link.store(if i + 1 < count { i + 1 } else { NIL }, Ordering::Relaxed);
            lent.store(0, Ordering::Relaxed);
        }
    }
    m.free_count().store(count, Ordering::Relaxed);
    m.returned_count().store(0, Ordering::Relaxed);
    m.returned().store(pack(0, NIL), Ordering::Release);
    m.head()
        .store(pack(0, if count > 0 { 0 } else { NIL }), Ordering::Release);
}
