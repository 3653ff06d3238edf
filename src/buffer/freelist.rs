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

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Index marking the end of the list.
pub const NIL: u32 = u32::MAX;

/// Where the list's words live.
pub trait FreeListMemory {
    /// Head word: `tag << 32 | index`.
    fn head(&self) -> &AtomicU64;
    /// Head word of the return list.
    fn returned(&self) -> &AtomicU64;
    /// Buffers on the return list (maintained beside it, for reporting).
    fn returned_count(&self) -> &AtomicU32;
    /// Link word of buffer `i`: the next index below it.
    fn link(&self, i: u32) -> &AtomicU32;
    /// Free buffers (maintained beside the list, for reporting).
    fn free_count(&self) -> &AtomicU32;
}

fn pack(tag: u32, index: u32) -> u64 {
    (tag as u64) << 32 | index as u64
}

/// Takes a free index (from the main list, else from what was returned), or `None` when
/// every buffer is in use.
pub fn pop<M: FreeListMemory>(m: &M) -> Option<u32> {
    pop_main(m).or_else(|| reclaim(m))
}

/// Takes the buffer returned last if any (its bytes are likely still in cache: what matters
/// for large buffers), else one of the main list.
pub fn pop_recent<M: FreeListMemory>(m: &M) -> Option<u32> {
    if m.returned().load(Ordering::Relaxed) as u32 != NIL {
        if let Some(i) = reclaim(m) {
            return Some(i);
        }
    }
    pop_main(m)
}

/// Moves the whole return list to the main list and takes its first buffer.
fn reclaim<M: FreeListMemory>(m: &M) -> Option<u32> {
    let mut head = m.returned().load(Ordering::Relaxed);
    let first = loop {
        let index = head as u32;
        if index == NIL {
            return None;
        }
        let new = pack((head >> 32) as u32 + 1, NIL);
        // Acquire pairs with the Release of every `give_back` on the chain taken.
        match m
            .returned()
            .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => break index,
            Err(h) => head = h,
        }
    };
    // The chain is ours now: count it and find its end.
    let mut n = 1;
    let rest = m.link(first).load(Ordering::Relaxed);
    let mut tail = rest;
    if rest != NIL {
        n += 1;
        loop {
            let next = m.link(tail).load(Ordering::Relaxed);
            if next == NIL {
                break;
            }
            tail = next;
            n += 1;
        }
    }
    m.returned_count().fetch_sub(n, Ordering::Relaxed);
    if rest != NIL {
        // Splice rest..=tail onto the main list in one exchange.
        let mut head = m.head().load(Ordering::Relaxed);
        loop {
            m.link(tail).store(head as u32, Ordering::Relaxed);
            let new = pack((head >> 32) as u32 + 1, rest);
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
    Some(first)
}

/// Returns a buffer received from another process (or thread) to the return list; the
/// caller owns `index` (it came by descriptor).
pub fn give_back<M: FreeListMemory>(m: &M, index: u32) {
    let mut head = m.returned().load(Ordering::Relaxed);
    loop {
        m.link(index).store(head as u32, Ordering::Relaxed);
        let new = pack((head >> 32) as u32 + 1, index);
        // Release: the link above and every read of the buffer happen-before its next owner.
        match m
            .returned()
            .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => {
                m.returned_count().fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(h) => head = h,
        }
    }
}

fn pop_main<M: FreeListMemory>(m: &M) -> Option<u32> {
    let mut head = m.head().load(Ordering::Acquire);
    loop {
        let index = head as u32;
        if index == NIL {
            return None;
        }
        // May read a link that another thread is rewriting after popping `index`; the tag
        // then differs and the compare-exchange below fails.
        let next = m.link(index).load(Ordering::Relaxed);
        let new = pack((head >> 32) as u32 + 1, next);
        // Acquire pairs with the Release of the push that made `index` free, so the previous
        // owner's writes to the buffer happen-before ours.
        match m
            .head()
            .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                m.free_count().fetch_sub(1, Ordering::Relaxed);
                return Some(index);
            }
            Err(h) => head = h,
        }
    }
}

/// Returns `index` to the list. The caller owned it (popped it and has not pushed it since).
pub fn push<M: FreeListMemory>(m: &M, index: u32) {
    let mut head = m.head().load(Ordering::Relaxed);
    loop {
        m.link(index).store(head as u32, Ordering::Relaxed);
        let new = pack((head >> 32) as u32 + 1, index);
        // Release: the link above and every write to the buffer happen-before the next pop.
        match m
            .head()
            .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => {
                m.free_count().fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(h) => head = h,
        }
    }
}

/// Links `0..count` into a full list (fresh memory, no concurrent user).
pub fn init<M: FreeListMemory>(m: &M, count: u32) {
    for i in 0..count {
        m.link(i)
            .store(if i + 1 < count { i + 1 } else { NIL }, Ordering::Relaxed);
    }
    m.free_count().store(count, Ordering::Relaxed);
    m.returned_count().store(0, Ordering::Relaxed);
    m.returned().store(pack(0, NIL), Ordering::Release);
    m.head()
        .store(pack(0, if count > 0 { 0 } else { NIL }), Ordering::Release);
}

#[cfg(loom)]
mod loom_tests {
    use super::*;

    struct Model {
        head: AtomicU64,
        returned: AtomicU64,
        links: Vec<AtomicU32>,
        free: AtomicU32,
        returned_free: AtomicU32,
    }

    fn model(n: u32) -> std::sync::Arc<Model> {
        let m = std::sync::Arc::new(Model {
            head: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            links: (0..n).map(|_| AtomicU32::new(0)).collect(),
            free: AtomicU32::new(0),
            returned_free: AtomicU32::new(0),
        });
        init(&*m, n);
        m
    }

    impl FreeListMemory for Model {
        fn head(&self) -> &AtomicU64 {
            &self.head
        }
        fn returned(&self) -> &AtomicU64 {
            &self.returned
        }
        fn returned_count(&self) -> &AtomicU32 {
            &self.returned_free
        }
        fn link(&self, i: u32) -> &AtomicU32 {
            &self.links[i as usize]
        }
        fn free_count(&self) -> &AtomicU32 {
            &self.free
        }
    }

    /// Two threads each take two buffers and give them back while a third ABA-prone
    /// sequence runs; afterwards every buffer is free exactly once and no buffer was held by
    /// two threads at a time.
    #[test]
    fn pop_push_never_hands_out_a_buffer_twice() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let m = model(3);
            let owners: std::sync::Arc<Vec<loom::sync::atomic::AtomicU32>> = std::sync::Arc::new(
                (0..3)
                    .map(|_| loom::sync::atomic::AtomicU32::new(0))
                    .collect(),
            );
            let threads: Vec<_> = (1..=2u32)
                .map(|t| {
                    let (m, owners) = (m.clone(), owners.clone());
                    loom::thread::spawn(move || {
                        let a = pop(&*m);
                        let b = pop(&*m);
                        for &i in a.iter().chain(b.iter()) {
                            assert_eq!(
                                owners[i as usize].swap(t, Ordering::Relaxed),
                                0,
                                "buffer {i} handed out twice"
                            );
                        }
                        for &i in a.iter().chain(b.iter()) {
                            owners[i as usize].store(0, Ordering::Relaxed);
                            push(&*m, i);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let mut seen = vec![false; 3];
            while let Some(i) = pop(&*m) {
                assert!(!seen[i as usize], "buffer {i} listed twice");
                seen[i as usize] = true;
            }
            assert!(seen.iter().all(|&s| s), "a buffer was lost");
        });
    }

    /// An owner takes buffers while a receiver gives back the one it was handed and takes
    /// another: the return list is spliced into the main list without losing or doubling a
    /// buffer, and the counts add up.
    #[test]
    fn returned_buffers_are_reclaimed_exactly_once() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let m = model(3);
            let handed = pop(&*m).unwrap();
            let owners: std::sync::Arc<Vec<loom::sync::atomic::AtomicU32>> = std::sync::Arc::new(
                (0..3)
                    .map(|_| loom::sync::atomic::AtomicU32::new(0))
                    .collect(),
            );
            let receiver = {
                let (m, owners) = (m.clone(), owners.clone());
                loom::thread::spawn(move || {
                    give_back(&*m, handed);
                    if let Some(i) = pop(&*m) {
                        assert_eq!(owners[i as usize].swap(2, Ordering::Relaxed), 0);
                        owners[i as usize].store(0, Ordering::Relaxed);
                        give_back(&*m, i);
                    }
                })
            };
            let mut mine = Vec::new();
            for _ in 0..2 {
                if let Some(i) = pop(&*m) {
                    assert_eq!(owners[i as usize].swap(1, Ordering::Relaxed), 0);
                    mine.push(i);
                }
            }
            for i in mine {
                owners[i as usize].store(0, Ordering::Relaxed);
                push(&*m, i);
            }
            receiver.join().unwrap();
            let mut seen = vec![false; 3];
            while let Some(i) = pop(&*m) {
                assert!(!seen[i as usize], "buffer {i} listed twice");
                seen[i as usize] = true;
            }
            assert!(seen.iter().all(|&s| s), "a buffer was lost");
            assert_eq!(
                m.free.load(Ordering::Relaxed) + m.returned_free.load(Ordering::Relaxed),
                0
            );
        });
    }
}
