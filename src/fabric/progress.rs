//! Driving the engine from the caller's thread: [`HyperFabricProtocol::progress`], and the
//! polling of a call that waits for a result, with the periodic work when no engine thread
//! runs.

use super::{lock, sync_topology, Deadline, HyperFabricProtocol, Inner};
use crate::engine::Engine;
use crate::error::Result;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Polls of a waiting call between two reads of the clock (a clock read costs as much as a
/// poll of an empty ring); its deadline and the engine's periodic work are checked then.
pub(super) const CHECK_EVERY: u32 = 256;
/// Polls a waiting call spends spinning before it yields its core between polls (about
/// 70 us here). An answer that takes longer comes from an engine that slept: woken by our
/// send, the scheduler often puts it on our core, where a waiter that kept spinning held it
/// off for the whole spin (200,000 polls made a probe of a sleeping peer take 3.5 ms
/// instead of 0.7 on two cores).
pub(super) const SPIN_POLLS: u32 = 4_096;
/// Polls a waiting call makes per hold of the engine lock.
const POLLS_PER_LOCK: u32 = 16;

impl HyperFabricProtocol {
    /// One engine pass in the caller's thread; returns the messages handled. Every 256th
    /// call also runs the periodic work (deadlines, liveness of peers, failure detection).
    /// In a `fork()` child of the process that created the protocol it does nothing and
    /// returns 0 (see [`check_process`](Self::check_process)).
    pub fn progress(&self) -> usize {
        if !self.inner.origin.is_current() {
            return 0;
        }
        let mut e = lock(&self.inner.engine);
        let n = e.poll();
        // A count, not a lock: racing callers may lose an increment (the work then runs a
        // little later), which costs less than a read-modify-write per call.
        let calls = self.inner.progress_calls.load(Ordering::Relaxed);
        self.inner
            .progress_calls
            .store(calls.wrapping_add(1), Ordering::Relaxed);
        if calls % 256 == 255 {
            let changes = e.tick(Instant::now());
            drop(e);
            self.inner.apply_health(changes);
        }
        n
    }
}

impl Inner {
    /// Marks nodes down or up in the host topology (routes are rebuilt without the down
    /// ones; the engine's cached next hops follow the routes' generation) and tells the
    /// endpoints.
    pub(super) fn apply_health(&self, changes: Vec<crate::engine::HealthChange>) {
        if changes.is_empty() {
            return;
        }
        let _ = sync_topology(self);
        for c in &changes {
            let _ = self.topology.set_node_health(&c.node, c.up);
        }
        self.routes_moved();
    }

    pub(super) fn wait(&self, request_id: u64, deadline: &mut Deadline) -> Result<Vec<u8>> {
        self.poll_until(deadline, |e| e.take_result(request_id))
            .unwrap_or_else(|| {
                lock(&self.engine).cancel(request_id);
                Err(super::request::timed_out(request_id))
            })
    }

    /// Polls the engine (unless its thread runs) until `ready` gives a value or `deadline`
    /// passes (`None`). Every few hundred polls it reads the clock (a clock read costs as
    /// much as a poll of an empty ring) and, without the engine thread, runs the engine's
    /// periodic work. Spins at first, then yields the CPU.
    #[inline]
    pub(super) fn poll_until<T>(
        &self,
        deadline: &mut Deadline,
        mut ready: impl FnMut(&mut Engine) -> Option<T>,
    ) -> Option<T> {
        let mut polls = 0u32;
        loop {
            {
                let mut e = lock(&self.engine);
                // A few polls per lock: other threads get the engine between them, and a
                // spinning waiter does not pay two atomic operations per poll.
                for _ in 0..POLLS_PER_LOCK {
                    if !self.running.load(Ordering::Acquire) {
                        e.poll();
                    }
                    if let Some(r) = ready(&mut e) {
                        return Some(r);
                    }
                    polls = polls.wrapping_add(1);
                    if polls % CHECK_EVERY == 0 || polls >= SPIN_POLLS {
                        break;
                    }
                    std::hint::spin_loop();
                }
                if polls % CHECK_EVERY == 0 {
                    if deadline.passed() {
                        return None;
                    }
                    let now = Instant::now();
                    if !self.running.load(Ordering::Acquire) {
                        let changes = e.tick(now);
                        drop(e);
                        self.apply_health(changes);
                    }
                }
            }
            if polls < SPIN_POLLS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}
