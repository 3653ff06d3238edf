//! The free list and its lending records in process memory, for tests: under `--cfg loom`
//! the words are loom atomics and the models below explore every interleaving; otherwise
//! plain tests write corrupt words the way another process could.

use super::lending::{give_back, lend, lent_count, reclaim_lent};
use super::{init, pop, Corrupt, FreeListMemory};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

struct Model {
    head: AtomicU64,
    returned: AtomicU64,
    links: Vec<AtomicU32>,
    lent: Vec<AtomicU32>,
    free: AtomicU32,
    returned_free: AtomicU32,
}

fn model(n: u32) -> Arc<Model> {
    let m = Arc::new(Model {
        head: AtomicU64::new(0),
        returned: AtomicU64::new(0),
        links: (0..n).map(|_| AtomicU32::new(0)).collect(),
        lent: (0..n).map(|_| AtomicU32::new(0)).collect(),
        free: AtomicU32::new(0),
        returned_free: AtomicU32::new(0),
    });
    init(&*m);
    m
}

impl FreeListMemory for Model {
    fn capacity(&self) -> u32 {
        self.links.len() as u32
    }
    fn head(&self) -> &AtomicU64 {
        &self.head
    }
    fn returned(&self) -> &AtomicU64 {
        &self.returned
    }
    fn returned_count(&self) -> &AtomicU32 {
        &self.returned_free
    }
    fn link(&self, i: u32) -> Option<&AtomicU32> {
        self.links.get(i as usize)
    }
    fn lent(&self, i: u32) -> Option<&AtomicU32> {
        self.lent.get(i as usize)
    }
    fn free_count(&self) -> &AtomicU32 {
        &self.free
    }
}

/// Pops until the list is empty, checking that no buffer comes twice and none is lent
/// while free; returns which buffers came.
fn drain(m: &Model) -> Vec<bool> {
    let mut seen = vec![false; m.links.len()];
    while let Some(i) = pop(m).expect("an honest list is never corrupt") {
        assert!(!seen[i as usize], "buffer {i} listed twice");
        assert_eq!(
            m.lent[i as usize].load(Ordering::Relaxed),
            0,
            "{i} free and lent"
        );
        seen[i as usize] = true;
    }
    seen
}

#[cfg(not(loom))]
mod corrupt {
    use super::super::{pop_recent, NIL};
    use super::*;

    #[test]
    fn out_of_range_heads_and_links_are_refused_without_taking_anything() {
        let m = model(4);
        m.head.store(7, Ordering::Relaxed);
        assert_eq!(pop(&*m), Err(Corrupt), "head beyond the pool");
        assert_eq!(m.head.load(Ordering::Relaxed), 7, "a refused head stays");

        let m = model(4);
        m.links[0].store(4, Ordering::Relaxed);
        assert_eq!(pop(&*m), Err(Corrupt), "link beyond the pool");
        assert_eq!(pop_recent(&*m), Err(Corrupt));
        m.links[0].store(1, Ordering::Relaxed);
        assert_eq!(pop(&*m), Ok(Some(0)), "nothing moved while refused");

        let m = model(4);
        m.returned.store(9, Ordering::Relaxed);
        m.head.store(NIL as u64, Ordering::Relaxed);
        assert_eq!(pop(&*m), Err(Corrupt), "return-list head beyond the pool");
        assert_eq!(pop_recent(&*m), Err(Corrupt));
    }

    #[test]
    fn a_cycle_or_a_bad_link_on_the_return_list_ends_the_walk() {
        for bad in [0u32, 1, 2, 1000] {
            let m = model(3);
            let taken: Vec<u32> = (0..3).map(|_| pop(&*m).unwrap().unwrap()).collect();
            for &i in &taken {
                give_back(&*m, i).unwrap();
            }
            // The return list is 2 -> 1 -> 0; point 0 back into the chain (or outside).
            m.links[0].store(bad, Ordering::Relaxed);
            assert_eq!(pop(&*m), Err(Corrupt), "link {bad}");
            assert_eq!(pop(&*m), Ok(None), "the detached chain is not spliced");
        }
        // An honest chain of every buffer is not mistaken for a cycle.
        let m = model(3);
        let taken: Vec<u32> = (0..3).map(|_| pop(&*m).unwrap().unwrap()).collect();
        for &i in &taken {
            give_back(&*m, i).unwrap();
        }
        assert!(drain(&m).iter().all(|&s| s));
    }

    #[test]
    fn lending_records_follow_the_buffer_and_reclaim_once() {
        let m = model(4);
        let a = pop(&*m).unwrap().unwrap();
        let b = pop(&*m).unwrap().unwrap();
        let c = pop(&*m).unwrap().unwrap();
        lend(&*m, a, 41).unwrap();
        lend(&*m, b, 41).unwrap();
        lend(&*m, c, 42).unwrap();
        assert_eq!(lend(&*m, 4, 41), Err(Corrupt));
        assert_eq!(lent_count(&*m), 3);
        give_back(&*m, b).unwrap();
        assert_eq!(lent_count(&*m), 2, "a return clears the record");
        assert_eq!(reclaim_lent(&*m, 0), 0, "0 names no process");
        assert_eq!(reclaim_lent(&*m, 41), 1, "only what 41 still held");
        assert_eq!(reclaim_lent(&*m, 41), 0, "and only once");
        assert_eq!(lent_count(&*m), 1);
        give_back(&*m, c).unwrap();
        let seen = drain(&m);
        assert!(seen.iter().all(|&s| s), "every buffer is back once");
    }
}

#[cfg(loom)]
mod loom_models {
    use super::super::push;
    use super::*;

    fn builder() -> loom::model::Builder {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b
    }

    fn owners(n: usize) -> Arc<Vec<AtomicU32>> {
        Arc::new((0..n).map(|_| AtomicU32::new(0)).collect())
    }

    /// Two threads each take two buffers and give them back while a third ABA-prone
    /// sequence runs; afterwards every buffer is free exactly once and no buffer was held by
    /// two threads at a time.
    #[test]
    fn pop_push_never_hands_out_a_buffer_twice() {
        builder().check(|| {
            let m = model(3);
            let owners = owners(3);
            let threads: Vec<_> = (1..=2u32)
                .map(|t| {
                    let (m, owners) = (m.clone(), owners.clone());
                    loom::thread::spawn(move || {
                        let a = pop(&*m).unwrap();
                        let b = pop(&*m).unwrap();
                        for &i in a.iter().chain(b.iter()) {
                            assert_eq!(
                                owners[i as usize].swap(t, Ordering::Relaxed),
                                0,
                                "buffer {i} handed out twice"
                            );
                        }
                        for &i in a.iter().chain(b.iter()) {
                            owners[i as usize].store(0, Ordering::Relaxed);
                            push(&*m, i).unwrap();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert!(drain(&m).iter().all(|&s| s), "a buffer was lost");
        });
    }

    /// An owner takes buffers while a receiver gives back the one it was handed and takes
    /// another: the return list is spliced into the main list without losing or doubling a
    /// buffer, and the counts add up.
    #[test]
    fn returned_buffers_are_reclaimed_exactly_once() {
        builder().check(|| {
            let m = model(3);
            let handed = pop(&*m).unwrap().unwrap();
            let owners = owners(3);
            let receiver = {
                let (m, owners) = (m.clone(), owners.clone());
                loom::thread::spawn(move || {
                    give_back(&*m, handed).unwrap();
                    if let Some(i) = pop(&*m).unwrap() {
                        assert_eq!(owners[i as usize].swap(2, Ordering::Relaxed), 0);
                        owners[i as usize].store(0, Ordering::Relaxed);
                        give_back(&*m, i).unwrap();
                    }
                })
            };
            let mut mine = Vec::new();
            for _ in 0..2 {
                if let Some(i) = pop(&*m).unwrap() {
                    assert_eq!(owners[i as usize].swap(1, Ordering::Relaxed), 0);
                    mine.push(i);
                }
            }
            for i in mine {
                owners[i as usize].store(0, Ordering::Relaxed);
                push(&*m, i).unwrap();
            }
            receiver.join().unwrap();
            assert!(drain(&m).iter().all(|&s| s), "a buffer was lost");
            assert_eq!(
                m.free.load(Ordering::Relaxed) + m.returned_free.load(Ordering::Relaxed),
                0
            );
        });
    }

    /// A live receiver returns its buffer while two owner threads reclaim what a dead
    /// process held and the owner takes buffers (every buffer is lent at the start, so the
    /// owner's pops race with the return and the reclaims): each dead process's buffer comes
    /// back exactly once, the live receiver's is never reclaimed, and no buffer is popped
    /// while its record still names a process (the clear is ordered before the return).
    #[test]
    fn reclaiming_a_dead_process_returns_its_buffers_once_and_nothing_else() {
        const LIVE: u32 = 5;
        const DEAD: u32 = 7;
        builder().check(|| {
            let m = model(2);
            let live = pop(&*m).unwrap().unwrap();
            let dead = pop(&*m).unwrap().unwrap();
            lend(&*m, live, LIVE).unwrap();
            lend(&*m, dead, DEAD).unwrap();
            let receiver = {
                let m = m.clone();
                loom::thread::spawn(move || give_back(&*m, live).unwrap())
            };
            let other = {
                let m = m.clone();
                loom::thread::spawn(move || reclaim_lent(&*m, DEAD))
            };
            let mine = reclaim_lent(&*m, DEAD);
            let mut taken = Vec::new();
            for _ in 0..2 {
                if let Some(i) = pop(&*m).unwrap() {
                    let record = m.lent[i as usize].load(Ordering::Relaxed);
                    assert_eq!(record, 0, "{i} popped while lent");
                    taken.push(i);
                }
            }
            for i in taken {
                push(&*m, i).unwrap();
            }
            receiver.join().unwrap();
            let theirs = other.join().unwrap();
            assert_eq!(
                mine + theirs,
                1,
                "the dead process's buffer comes back once"
            );
            assert_eq!(lent_count(&*m), 0);
            assert!(drain(&m).iter().all(|&s| s), "a buffer was lost");
        });
    }

    /// A hostile writer stores an out-of-range link while the owner pops: the owner gets a
    /// buffer or `Corrupt`, never an index outside the pool, and returns.
    #[test]
    fn a_concurrent_corrupt_link_never_yields_a_bad_index() {
        builder().check(|| {
            let m = model(2);
            let hostile = {
                let m = m.clone();
                loom::thread::spawn(move || m.links[0].store(1000, Ordering::Relaxed))
            };
            for _ in 0..3 {
                match pop(&*m) {
                    Ok(Some(i)) => assert!(i < 2),
                    Ok(None) | Err(Corrupt) => {}
                }
            }
            hostile.join().unwrap();
        });
    }
}
