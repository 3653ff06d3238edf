//! Request bookkeeping: message ids, the pending requests awaiting a response, their
//! deadlines and the wakers of the futures waiting on them.

use super::{Engine, Peer, Replies};
use crate::error::{Error, Result};
use std::sync::Arc;

pub(super) struct Pending {
    pub(super) dst: u32,
    pub(super) dst_generation: u64,
    pub(super) result: Option<Result<Vec<u8>>>,
    /// Woken when the result arrives (a `Future` waiting on the request).
    pub(super) waker: Option<std::task::Waker>,
    /// When the request fails with a timeout, if it has a deadline.
    pub(super) deadline: Option<std::time::Instant>,
}

impl Pending {
    pub(super) fn complete(&mut self, result: Result<Vec<u8>>) {
        if self.result.is_none() {
            self.result = Some(result);
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }
}

impl Engine {
    /// A fresh message id (one-way messages need one too: fragments are reassembled by it).
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    /// Reserves `n` consecutive message ids (an endpoint's block); returns the first.
    pub fn reserve_ids(&mut self, n: u64) -> u64 {
        let id = self.next_request;
        self.next_request += n;
        id
    }

    /// Reserves `n` consecutive message ids for an endpoint whose answers `replies` takes
    /// (answers to them that come the engine's way go there); returns the first.
    pub fn reserve_ids_for(&mut self, n: u64, replies: &Arc<Replies>) -> u64 {
        // Blocks of endpoints that are gone, with no request left that could be answered.
        self.reply_owners
            .retain(|(_, _, r)| Arc::strong_count(r) > 1);
        let first = self.reserve_ids(n);
        self.reply_owners.push((first, first + n, replies.clone()));
        first
    }

    /// An answer to request `id` that no pending request of the engine expects: the
    /// endpoint that reserved its id gets it (from `from`, the node that answered; `None`
    /// for an error, which a node on the way may send).
    pub(super) fn answer_endpoint(&mut self, id: u64, from: Option<u32>, result: Result<Vec<u8>>) {
        let owner = self
            .reply_owners
            .iter()
            .find(|(first, end, _)| (*first..*end).contains(&id));
        if let Some((_, _, r)) = owner {
            if from.is_none_or(|f| f == r.destination().index) {
                r.complete(id, result);
            }
        }
    }

    /// Has the engine wake the futures waiting on `replies` (see [`Replies::wake_on`]).
    pub fn watch_replies(&mut self, replies: &Arc<Replies>) {
        if !self.watched.iter().any(|r| Arc::ptr_eq(r, replies)) {
            self.watched.push(replies.clone());
        }
    }

    /// Wakes the futures whose answers may be in (and, with `now`, those past their
    /// deadline); forgets replies nobody waits on.
    pub(super) fn wake_watched(&mut self, now: Option<std::time::Instant>) {
        self.watched.retain(|r| r.wake_ready(now));
    }

    /// Marks lost the endpoints' destinations that left (their waiters fail).
    pub(super) fn fail_lost_endpoints(&mut self) {
        let registry = &self.registry;
        for (_, _, r) in &self.reply_owners {
            if !r.is_lost()
                && registry.live_generation(r.destination().index)
                    != Some(r.destination().generation)
            {
                r.set_lost();
            }
        }
    }

    /// A fresh request id, registered as pending for `dst`.
    pub fn new_request(&mut self, dst: &Peer) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        self.pending.insert(
            id,
            Pending {
                dst: dst.index,
                dst_generation: dst.generation,
                result: None,
                waker: None,
                deadline: None,
            },
        );
        id
    }

    /// The result of a pending request, once it arrived (removes it).
    pub fn take_result(&mut self, request_id: u64) -> Option<Result<Vec<u8>>> {
        if self.pending.get(&request_id)?.result.is_some() {
            return self.pending.remove(&request_id)?.result;
        }
        None
    }

    /// Abandons a pending request (timeout).
    pub fn cancel(&mut self, request_id: u64) {
        self.pending.remove(&request_id);
    }

    /// Whether a request's result arrived; if not, `waker` is woken when it does (or when
    /// the request fails). Returns `true` also for a request that is not pending.
    pub fn ready_or_wake(&mut self, request_id: u64, waker: &std::task::Waker) -> bool {
        match self.pending.get_mut(&request_id) {
            Some(p) if p.result.is_none() => {
                if !p.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    p.waker = Some(waker.clone());
                }
                false
            }
            _ => true,
        }
    }

    /// Gives a pending request a deadline, after which [`Engine::expire`] fails it.
    pub fn set_deadline(&mut self, request_id: u64, deadline: std::time::Instant) {
        if let Some(p) = self.pending.get_mut(&request_id) {
            p.deadline = Some(deadline);
        }
    }

    /// Fails with `TimeoutError` the pending requests whose deadline passed by `now`.
    pub fn expire(&mut self, now: std::time::Instant) {
        for (id, p) in self.pending.iter_mut() {
            if p.result.is_none() && p.deadline.is_some_and(|d| d <= now) {
                p.complete(Err(Error::Timeout(format!(
                    "no response to request {id} in time"
                ))));
            }
        }
    }

    /// Fails a pending request with `error` (its waiter sees it next).
    pub fn fail(&mut self, request_id: u64, error: Error) {
        if let Some(p) = self.pending.get_mut(&request_id) {
            p.complete(Err(error));
        }
    }
}
