//! [`Request`]: a request in flight, completed by testing, waiting or awaiting it.

use super::{lock, Deadline, Inner};
use crate::error::{Error, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A request in flight, from
/// [`HyperFabricProtocol::send_data_nb`](super::HyperFabricProtocol::send_data_nb):
/// [`test`](Request::test) progresses it without blocking, [`wait`](Request::wait) blocks
/// until its response or error; as a `Future` it resolves to the same. Without the
/// background engine thread, testing, waiting and polling the future drive the engine; with
/// it, the engine thread wakes the future when the response arrives or the deadline passes.
/// Dropping an unfinished request abandons it (a late response is discarded).
#[must_use = "a request does nothing unless tested, waited for or awaited"]
pub struct Request {
    inner: Arc<Inner>,
    id: u64,
    deadline: Deadline,
    done: bool,
}

impl Request {
    pub(super) fn new(inner: Arc<Inner>, id: u64, deadline: Deadline) -> Request {
        Request {
            inner,
            id,
            deadline,
            done: false,
        }
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// The request id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Progresses the request once, without blocking: `Some` with its outcome when it is
    /// complete (then the request is finished: later calls give `None`).
    pub fn test(&mut self) -> Option<Result<Vec<u8>>> {
        if self.done {
            return None;
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
                Some(Err(Error::Timeout(format!(
                    "no response to request {} in time",
                    self.id
                ))))
            } else {
                None
            }
        });
        self.done = r.is_some();
        r
    }

    /// Blocks until the response (or the error) arrives.
    pub fn wait(mut self) -> Result<Vec<u8>> {
        if self.done {
            return Err(Error::InvalidArgument(format!(
                "request {} already completed",
                self.id
            )));
        }
        self.done = true;
        self.inner.wait(self.id, &mut self.deadline)
    }
}

impl std::future::Future for Request {
    type Output = Result<Vec<u8>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if self.done {
            return std::task::Poll::Ready(Err(Error::InvalidArgument(format!(
                "request {} already completed",
                self.id
            ))));
        }
        if let Some(r) = self.test() {
            return std::task::Poll::Ready(r);
        }
        let at = self.deadline.instant();
        let inner = &self.inner;
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
        if !self.done {
            lock(&self.inner.engine).cancel(self.id);
        }
    }
}
