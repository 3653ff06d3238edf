//! A lock-free free list of buffer indices (a Treiber stack) whose state lives in shared
//! memory: a head word `tag:32 | index:32` and one link word per buffer. The tag grows on
//! every successful change, so a head that was popped and pushed back between a reader's load
//! and its compare-exchange (ABA) no longer compares equal.

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Index marking the end of the list.
pub const NIL: u32 = u32::MAX;

/// Where the list's words live.
pub trait FreeListMemory {
    /// Head word: `tag << 32 | index`.
    fn head(&self) -> &AtomicU64;
    /// Link word of buffer `i`: the next index below it.
    fn link(&self, i: u32) -> &AtomicU32;
    /// Free buffers (maintained beside the list, for reporting).
    fn free_count(&self) -> &AtomicU32;
}

fn pack(tag: u32, index: u32) -> u64 {
    (tag as u64) << 32 | index as u64
}

/// Takes a free index, or `None` when every buffer is in use.
pub fn pop<M: FreeListMemory>(m: &M) -> Option<u32> {
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
    m.head()
        .store(pack(0, if count > 0 { 0 } else { NIL }), Ordering::Release);
}

#[cfg(loom)]
mod loom_tests {
    use super::*;

    struct Model {
        head: AtomicU64,
        links: Vec<AtomicU32>,
        free: AtomicU32,
    }

    impl FreeListMemory for Model {
        fn head(&self) -> &AtomicU64 {
            &self.head
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
            let m = std::sync::Arc::new(Model {
                head: AtomicU64::new(0),
                links: (0..3).map(|_| AtomicU32::new(0)).collect(),
                free: AtomicU32::new(0),
            });
            init(&*m, 3);
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
}
