//! [`Request`]: a request in flight, completed by testing, waiting or awaiting it, or
//! abandoned by cancelling it; [`wait_any`] and [`wait_all`] wait for several at once (the
//! `MPI_Waitany` / `MPI_Waitall` of the protocol).
//!
//! Waiting for several requests polls their engines the way waiting for one does
//! ([`Inner::poll_until`]): each pass takes each engine's lock once, polls the engine unless
//! its background thread runs, and takes the results that arrived; the clock is read after
//! the first pass and every [`CHECK_EVERY`] passes after that, never per request. Requests
//! of several protocols may be mixed: each pass visits each of their engines.

use super::reply::Liveness;
use super::{lock, Deadline, Inner, CHECK_EVERY, SPIN_POLLS};
use crate::engine::Replies;
use crate::error::{Error, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sent; its outcome has not been taken.
    Pending,
    /// Its outcome was taken (by `test`, a wait, or the future).
    Done,
    /// Abandoned by [`Request::cancel`]: its late response is dropped.
    Cancelled,
}

/// A request in flight, from
/// [`HyperFabricProtocol::send_data_nb`](super::HyperFabricProtocol::send_data_nb):
/// [`test`](Request::test) progresses it without blocking, [`wait`](Request::wait) blocks
/// until its response or error, [`cancel`](Request::cancel) abandons it; as a `Future` it
/// resolves to the same. Without the background engine thread, testing, waiting and polling
/// the future drive the engine; with it, the engine thread wakes the future when the
/// response arrives or the deadline passes. Dropping an unfinished request abandons it (a
/// late response is discarded).
#[must_use = "a request does nothing unless tested, waited for or awaited"]
pub struct Request {
    inner: Arc<Inner>,
    id: u64,
    /// The request's own deadline (the send's timeout): past it the request completes with
    /// `TimeoutError`, whoever looks.
    deadline: Deadline,
    state: State,
    /// The answers of the endpoint the request went through, when it has a reply ring:
    /// the answer is read there, not from the engine.
    replies: Option<Arc<Replies>>,
    /// When its destination was last checked (requests answered through a reply ring).
    liveness: Liveness,
    /// Calls of `test` since the clock was last read.
    tests: u32,
    /// The outcome of a request complete when it was made.
    ready: Option<Result<Vec<u8>>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Request {
    pub(super) fn new(inner: Arc<Inner>, id: u64, deadline: Deadline) -> Request {
        Request {
            inner,
            id,
            deadline,
            state: State::Pending,
            replies: None,
            liveness: Liveness::default(),
            tests: 0,
            ready: None,
        }
    }

    /// A request complete already, with outcome `r`.
    pub(super) fn ready(inner: Arc<Inner>, id: u64, r: Result<Vec<u8>>) -> Request {
        let mut q = Request::new(inner, id, Deadline::after(std::time::Duration::ZERO));
        q.ready = Some(r);
        q
    }

    /// A request whose answer comes through an endpoint's reply ring (`replies`).
    /// The request with its clock started now: the timeout of a non-blocking send counts
    /// from the send, not from the first wait (requests waited for one after the other
    /// must not each get the whole timeout anew).
    pub(super) fn started(mut self) -> Request {
        self.deadline.instant();
        self
    }

    pub(super) fn answered_by(
        inner: Arc<Inner>,
        id: u64,
        deadline: Deadline,
        replies: Arc<Replies>,
    ) -> Request {
        let mut r = Request::new(inner, id, deadline);
        r.replies = Some(replies);
        r
    }

    /// [`test`](Self::test) of a request answered through a reply ring: looks at the ring,
    /// drives the engine once when nobody else does, checks the deadline (as a request
    /// through the engine does) and the destination's liveness (every 50 ms), and every
    /// [`CHECK_EVERY`] calls runs the engine's periodic work when nobody else does.
    fn test_reply(&mut self, replies: &Replies) -> Option<Result<Vec<u8>>> {
        if let Some(r) = replies.take(self.id) {
            return Some(r);
        }
        self.inner.drive_once();
        if let Some(r) = replies.take(self.id) {
            return Some(r);
        }
        let now = Instant::now();
        let (id, deadline, liveness) = (self.id, &mut self.deadline, &mut self.liveness);
        if let Err(e) = self.inner.at_clock(replies, id, (deadline, liveness), now) {
            return Some(Err(e));
        }
        self.tests = self.tests.wrapping_add(1);
        if self.tests % CHECK_EVERY == 0 {
            self.inner.tick_for_waiter(now);
        }
        None
    }

    /// The request id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the request is still in flight: neither completed (its outcome taken) nor
    /// cancelled.
    pub fn is_pending(&self) -> bool {
        self.state == State::Pending
    }

    /// Whether [`cancel`](Self::cancel) abandoned the request.
    pub fn is_cancelled(&self) -> bool {
        self.state == State::Cancelled
    }

    /// `InvalidArgumentError` in a `fork()` child of the process that created the request's
    /// protocol (see [`HyperFabricProtocol::check_process`]).
    ///
    /// [`HyperFabricProtocol::check_process`]: super::HyperFabricProtocol::check_process
    pub fn check_process(&self) -> Result<()> {
        self.inner.check_process()
    }

    /// Why a request that is not pending gives no outcome.
    pub(crate) fn finished(&self) -> Error {
        match self.state {
            State::Cancelled => {
                Error::InvalidArgument(format!("request {} was cancelled", self.id))
            }
            _ => Error::InvalidArgument(format!("request {} already completed", self.id)),
        }
    }

    /// Progresses the request once, without blocking: `Some` with its outcome when it is
    /// complete (then the request is finished: later calls give `None`). A cancelled
    /// request gives `InvalidArgumentError` ("cancelled") every time, and so does any
    /// request in a `fork()` child (see [`check_process`](Self::check_process)).
    pub fn test(&mut self) -> Option<Result<Vec<u8>>> {
        if let Err(e) = self.check_process() {
            return Some(Err(e));
        }
        match self.state {
            State::Pending => {}
            State::Done => return None,
            State::Cancelled => return Some(Err(self.finished())),
        }
        if let Some(r) = self.ready.take() {
            self.state = State::Done;
            return Some(r);
        }
        if let Some(replies) = self.replies.clone() {
            let r = self.test_reply(&replies);
            if r.is_some() {
                self.state = State::Done;
            }
            return r;
        }
        let inner = &self.inner;
        let mut e = lock(&inner.engine);
        if !inner.running.load(Ordering::Acquire) {
            e.poll();
        }
        let deadline = &mut self.deadline;
        let r = e.take_result(self.id).or_else(|| {
            if deadline.passed() {
                e.cancel(self.id);
                Some(Err(timed_out(self.id)))
            } else {
                None
            }
        });
        if r.is_some() {
            self.state = State::Done;
        }
        r
    }

    /// Blocks until the response (or the error) arrives.
    pub fn wait(mut self) -> Result<Vec<u8>> {
        self.wait_mut()
    }

    /// [`wait`](Self::wait) for a request that stays where it is (one of a slice given to
    /// [`wait_any`], say): afterwards it is completed. `InvalidArgumentError` for a request
    /// that already completed or was cancelled.
    pub fn wait_mut(&mut self) -> Result<Vec<u8>> {
        self.check_process()?;
        if self.state != State::Pending {
            return Err(self.finished());
        }
        self.state = State::Done;
        if let Some(r) = self.ready.take() {
            return r;
        }
        match &self.replies {
            Some(replies) => self.inner.wait_reply(replies, self.id, &mut self.deadline),
            None => self.inner.wait(self.id, &mut self.deadline),
        }
    }

    /// Abandons the request: its response, if one comes, is dropped, and
    /// [`test`](Self::test), [`wait`](Self::wait) and the future give
    /// `InvalidArgumentError` ("cancelled"); [`wait_any`] and [`wait_all`] skip it. Returns
    /// whether it was pending (cancelling a completed or cancelled request changes nothing).
    /// The receiver may still have handled the message: cancelling only stops waiting.
    /// `InvalidArgumentError` in a `fork()` child.
    pub fn cancel(&mut self) -> Result<bool> {
        self.check_process()?;
        if self.state != State::Pending {
            return Ok(false);
        }
        self.abandon();
        self.state = State::Cancelled;
        Ok(true)
    }

    /// Forgets the request where its answer would arrive.
    fn abandon(&self) {
        if self.ready.is_some() {
            return;
        }
        match &self.replies {
            Some(replies) => replies.abandon(self.id),
            None => lock(&self.inner.engine).cancel(self.id),
        }
    }
}

/// The error of a request whose own deadline passed.
pub(super) fn timed_out(id: u64) -> Error {
    Error::Timeout(format!("no response to request {id} in time"))
}

impl std::future::Future for Request {
    type Output = Result<Vec<u8>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.check_process()?;
        if self.state != State::Pending {
            return std::task::Poll::Ready(Err(self.finished()));
        }
        if let Some(r) = self.test() {
            return std::task::Poll::Ready(r);
        }
        let at = self.deadline.instant();
        let inner = &self.inner;
        if let Some(replies) = self.replies.clone() {
            if inner.running.load(Ordering::Acquire) {
                // The engine thread wakes the future when the ring holds an answer, when the
                // deadline passes or when the destination is found gone.
                replies.wake_on(self.id, cx.waker(), Some(at));
                lock(&inner.engine).watch_replies(&replies);
                if let Some(r) = replies.take(self.id) {
                    self.state = State::Done;
                    return std::task::Poll::Ready(r);
                }
            } else {
                cx.waker().wake_by_ref();
            }
            return std::task::Poll::Pending;
        }
        let mut e = lock(&inner.engine);
        if inner.running.load(Ordering::Acquire) {
            // The engine thread completes the request, or fails it at its deadline.
            e.set_deadline(self.id, at);
            if e.ready_or_wake(self.id, cx.waker()) {
                cx.waker().wake_by_ref();
            }
        } else {
            // Nobody else drives the engine: ask to be polled again.
            cx.waker().wake_by_ref();
        }
        std::task::Poll::Pending
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.check_process().is_err() {
            // A fork() child's copy: the pending entry is in the parent's engine.
            std::mem::forget(self.inner.clone());
            return;
        }
        if self.state == State::Pending {
            self.abandon();
        }
    }
}

/// What [`wait_all`] found for one request.
#[derive(Debug)]
pub enum Completion {
    /// The request was not pending when the call began (completed or cancelled before):
    /// left as it was.
    Skipped,
    /// Still in flight when the timeout passed: wait for it again, cancel it or drop it.
    Pending,
    /// Completed during the call, with its outcome.
    Done(Result<Vec<u8>>),
}

/// Waits until one of the pending `requests` completes, for at most `timeout` (zero: one
/// look, like `MPI_Testany`), and returns its position and outcome; that request is then
/// completed. Requests that already completed or were cancelled are skipped. A request
/// whose own deadline (its send's timeout) passes completes with `TimeoutError` as its
/// outcome; `Err(TimeoutError)` from the call itself means none completed within
/// `timeout`. `InvalidArgumentError` when none is pending, or in a `fork()` child. Without background services the
/// call drives the engines of the requests' protocols while it waits (handlers of their
/// nodes run in the calling thread).
///
/// ```no_run
/// # use hyperfabric::fabric::{wait_any, HyperFabricProtocol, SendOptions};
/// # use std::time::Duration;
/// # fn f(p: &HyperFabricProtocol) -> hyperfabric::Result<()> {
/// let opts = SendOptions::default();
/// let mut requests = vec![
///     p.send_data_nb("me", "worker-1", b"task 1", &opts)?,
///     p.send_data_nb("me", "worker-2", b"task 2", &opts)?,
/// ];
/// while requests.iter().any(|r| r.is_pending()) {
///     let (i, outcome) = wait_any(&mut requests, Duration::from_secs(10))?;
///     println!("worker {} answered {:?}", i + 1, outcome?);
/// }
/// # Ok(()) }
/// ```
pub fn wait_any(requests: &mut [Request], timeout: Duration) -> Result<(usize, Result<Vec<u8>>)> {
    wait_any_of(
        &mut requests.iter_mut().map(Some).collect::<Vec<_>>(),
        timeout,
    )
}

/// Waits until every pending request of `requests` completes, for at most `timeout`, and
/// returns what happened to each, in order: [`Completion::Done`] with its outcome,
/// [`Completion::Pending`] when the timeout passed first (it stays pending: call again to
/// keep waiting, the completed ones are then skipped), [`Completion::Skipped`] for one that
/// was not pending. A request whose own deadline passes completes with `TimeoutError`.
/// Drives the engines as [`wait_any`] does.
pub fn wait_all(requests: &mut [Request], timeout: Duration) -> Result<Vec<Completion>> {
    wait_all_of(
        &mut requests.iter_mut().map(Some).collect::<Vec<_>>(),
        timeout,
    )
}

/// [`wait_any`] over entries that may be empty (the C API's NULL requests), skipped.
pub(crate) fn wait_any_of(
    requests: &mut [Option<&mut Request>],
    timeout: Duration,
) -> Result<(usize, Result<Vec<u8>>)> {
    for r in requests.iter().flatten() {
        r.check_process()?;
    }
    let pending = requests.iter().flatten().filter(|r| r.is_pending()).count();
    if pending == 0 {
        return Err(Error::InvalidArgument(
            "no request is pending (every entry is empty, completed or cancelled)".into(),
        ));
    }
    let mut first = None;
    drive(requests, timeout, |position, outcome| {
        first = Some((position, outcome));
        true
    });
    first.ok_or_else(|| {
        Error::Timeout(format!(
            "none of the {pending} pending requests completed within {timeout:?}"
        ))
    })
}

/// [`wait_all`] over entries that may be empty (the C API's NULL requests), skipped.
pub(crate) fn wait_all_of(
    requests: &mut [Option<&mut Request>],
    timeout: Duration,
) -> Result<Vec<Completion>> {
    for r in requests.iter().flatten() {
        r.check_process()?;
    }
    let mut out: Vec<Completion> = requests
        .iter()
        .map(|r| match r {
            Some(r) if r.is_pending() => Completion::Pending,
            _ => Completion::Skipped,
        })
        .collect();
    drive(requests, timeout, |position, outcome| {
        out[position] = Completion::Done(outcome);
        false
    });
    Ok(out)
}

/// Polls the engines of the pending `requests` (see the module documentation) until
/// `complete(position, outcome)`, called for each request as it completes, returns true,
/// or none is pending, or `timeout` passes. A request's own deadline is checked with the
/// call's: past it, the request completes with `TimeoutError`, as [`Request::test`] would
/// make it. Without the engine thread, the engines' periodic work runs every
/// [`CHECK_EVERY`] passes (it fails requests to peers that died). Spins, then yields.
fn drive(
    requests: &mut [Option<&mut Request>],
    timeout: Duration,
    mut complete: impl FnMut(usize, Result<Vec<u8>>) -> bool,
) {
    // The distinct engines, and each pending request's position and engine.
    let mut engines: Vec<Arc<Inner>> = Vec::new();
    let mut live: Vec<(usize, usize)> = Vec::new();
    for (position, r) in requests.iter().enumerate() {
        let Some(r) = r.as_deref().filter(|r| r.is_pending()) else {
            continue;
        };
        let k = match engines.iter().position(|e| Arc::ptr_eq(e, &r.inner)) {
            Some(k) => k,
            None => {
                engines.push(r.inner.clone());
                engines.len() - 1
            }
        };
        live.push((position, k));
    }
    let mut deadline = Deadline::after(timeout);
    let mut passes = 0u32;
    while !live.is_empty() {
        passes = passes.wrapping_add(1);
        let check = passes == 1 || passes % CHECK_EVERY == 0;
        for (k, inner) in engines.iter().enumerate() {
            let mut e = lock(&inner.engine);
            let running = inner.running.load(Ordering::Acquire);
            if !running {
                e.poll();
            }
            let mut i = 0;
            while i < live.len() {
                let (position, at) = live[i];
                let Some(r) = requests[position].as_deref_mut().filter(|_| at == k) else {
                    i += 1;
                    continue;
                };
                let found = match &r.replies {
                    _ if r.ready.is_some() => r.ready.take(),
                    Some(replies) => replies.take(r.id),
                    None => e.take_result(r.id),
                };
                let outcome = match found {
                    Some(o) => o,
                    None if check && r.deadline.passed() => {
                        match &r.replies {
                            Some(replies) => replies.abandon(r.id),
                            None => e.cancel(r.id),
                        }
                        Err(timed_out(r.id))
                    }
                    None if check && r.replies.is_some() => {
                        let replies = r.replies.clone().expect("checked");
                        r.liveness.check(inner, &replies, Instant::now());
                        i += 1;
                        continue;
                    }
                    None => {
                        i += 1;
                        continue;
                    }
                };
                r.state = State::Done;
                // In order: the next completion found is the next position.
                live.remove(i);
                if complete(position, outcome) {
                    return;
                }
            }
            if passes % CHECK_EVERY == 0 && !running {
                let changes = e.tick(Instant::now());
                drop(e);
                inner.apply_health(changes);
            }
        }
        if live.is_empty() || (check && deadline.passed()) {
            return;
        }
        if passes < SPIN_POLLS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
