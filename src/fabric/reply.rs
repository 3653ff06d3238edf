//! Waiting for the answer to a request sent through an endpoint: read from the endpoint's
//! reply ring ([`Replies`]) by the waiting thread, without the engine lock.
//!
//! A waiter still drives the engine when no engine thread runs (the progress rule: handlers
//! of this process's nodes answer while it waits), but only every [`DRIVE_EVERY`] looks and
//! only when the engine lock is free, so the look at the reply ring stays a few loads. Every
//! [`CHECK_EVERY`] looks it reads the clock: the deadline, the engine's periodic work, and
//! every [`LIVENESS_EVERY`] whether the destination still lives (a destination that died
//! fails the request with `NodeNotFoundError`, as requests through the engine do).

use super::request::timed_out;
use super::{Deadline, Inner, CHECK_EVERY, SPIN_POLLS};
use crate::engine::Replies;
use crate::error::Result;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Looks at the reply ring between two engine passes of a waiter (without engine thread).
const DRIVE_EVERY: u32 = 64;
/// Looks at the reply ring alone between two full looks of a waiter.
const FULL_LOOK_EVERY: u32 = 16;
/// Looks after which an answer is deemed slow (a few microseconds).
const SLOW_ANSWER: u32 = 256;
/// Looks between two engine passes once the answer is slow.
const DRIVE_EVERY_LATER: u32 = 4;
/// How often a waiter checks that the destination's process lives (reads `/proc`).
pub(super) const LIVENESS_EVERY: Duration = Duration::from_millis(50);

/// When a waiter last checked the destination.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Liveness {
    next: Option<Instant>,
}

impl Liveness {
    /// Checks the destination of `replies` when [`LIVENESS_EVERY`] passed since the last
    /// check (the first call only starts the clock).
    pub(super) fn check(&mut self, inner: &Inner, replies: &Replies, now: Instant) {
        match self.next {
            Some(at) if now < at => {}
            Some(_) => {
                replies.check_destination(&inner.registry);
                self.next = Some(now + LIVENESS_EVERY);
            }
            None => self.next = Some(now + LIVENESS_EVERY),
        }
    }
}

impl Inner {
    /// One engine pass for a waiter when no engine thread runs and the engine is free: its
    /// rings and every mailbox (a request to a node of this process without handler needs
    /// its receipt from this process's engine).
    #[inline]
    pub(super) fn drive_once(&self) {
        if !self.running.load(Ordering::Acquire) {
            if let Some(mut e) = super::try_lock(&self.engine) {
                e.drain();
            }
        }
    }

    /// The engine's periodic work for a waiter when no engine thread runs.
    pub(super) fn tick_for_waiter(&self, now: Instant) {
        if !self.running.load(Ordering::Acquire) {
            let changes = super::lock(&self.engine).tick(now);
            self.apply_health(changes);
        }
    }

    /// What a waiter for request `id` does when it has read the clock: gives the request
    /// up (`TimeoutError`) once its deadline passed, else checks its destination (every
    /// [`LIVENESS_EVERY`]; a lost one fails the request at the next look).
    pub(super) fn at_clock(
        &self,
        replies: &Replies,
        id: u64,
        (deadline, liveness): (&mut Deadline, &mut Liveness),
        now: Instant,
    ) -> Result<()> {
        if deadline.passed_at(now) {
            replies.abandon(id);
            return Err(timed_out(id));
        }
        liveness.check(self, replies, now);
        Ok(())
    }

    /// Waits for the answer to request `id` of the endpoint whose answers `replies` takes.
    pub(super) fn wait_reply(
        &self,
        replies: &Replies,
        id: u64,
        deadline: &mut Deadline,
    ) -> Result<Vec<u8>> {
        let mut looks = 0u32;
        let mut liveness = Liveness::default();
        let mut detour = false;
        loop {
            // A full look (under the answers' lock) when the ring shows a new frame, and
            // every few looks for answers that come another way.
            if detour || looks % FULL_LOOK_EVERY == 0 || replies.may_have_news() {
                let answer;
                (answer, detour) = replies.take_or_detour(id);
                if let Some(r) = answer {
                    return r;
                }
            }
            looks = looks.wrapping_add(1);
            // An answer the ring said comes the engine's way (a large one), or that has not
            // come within a few hundred looks: drive the engine more often.
            let every = if detour {
                1
            } else if looks < SLOW_ANSWER {
                DRIVE_EVERY
            } else {
                DRIVE_EVERY_LATER
            };
            if looks % every == 0 {
                self.drive_once();
                if looks % CHECK_EVERY == 0 {
                    // A full look first: an answer the engine put aside since the last one
                    // is taken, not given up at the deadline.
                    if let (Some(r), _) = replies.take_or_detour(id) {
                        return r;
                    }
                    let now = Instant::now();
                    self.at_clock(replies, id, (deadline, &mut liveness), now)?;
                    self.tick_for_waiter(now);
                }
            }
            if looks < SPIN_POLLS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}
