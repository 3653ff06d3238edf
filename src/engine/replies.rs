//! The answers to one endpoint's requests, read without the engine.
//!
//! An endpoint that sends requests owns a second ring beside its own, the *reply ring*
//! (`rp-…`, the endpoint ring's name with another prefix; process memory when the
//! destination is in this process). The destination's process writes the answer to a
//! request that came through the endpoint ring into it (see [`push_reply`]) when the whole
//! answer fits one frame and the ring has room; anything else (large answers, a full ring)
//! goes the engine's way, and the engine hands it to the endpoint's [`Replies`] by the block
//! of ids the request's id belongs to. Whoever waits for one of the endpoint's requests
//! reads the ring under a spin lock: no engine lock, no map lookup when the answer is the
//! next frame. Between two such reads a waiter watches the ring's next slot without the
//! lock ([`Replies::may_have_news`]): an idle look is one load.
//!
//! A reply frame: the slot header (kind `Response`, `Ack` or `Error`, no flags, the source
//! is the answering node), the request id (8 bytes, little-endian), then the answer's bytes
//! (an error: its status code, 4 bytes, and its message). Everything read is checked: a
//! frame of another kind or node, or for an id the endpoint never issued, costs the ring
//! (marked corrupt; the answering side then uses the engine's way): the requests issued
//! until then whose answers were not taken fail with `MalformedFrameError`, later ones are
//! answered the engine's way.

use super::lent::Lent;
use super::send::decode_error;
use super::Peer;
use crate::codec::FrameKind;
use crate::error::{Error, Result};
use crate::ring::{
    Consumer, Doorstep, Producer, PushError, Region, RingMemory, SlotHeader, STATE_CORRUPT,
};
use crate::sync::SpinLock;
use crate::transport::registry::Registry;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

/// Abandoned requests remembered (so their late answers are dropped); beyond them a late
/// answer is held until the endpoint's answers are dropped.
const ABANDONED_MAX: usize = 1 << 16;
/// Bytes of the request id after the slot header of a reply frame.
const ID_LEN: usize = 8;
/// Reply frame flag: no answer, but notice that the answer to the id comes the engine's way.
const FLAG_DETOUR: u8 = 1;

/// An answer: the requester's bytes, or the error it gets.
type Answer = Result<Vec<u8>>;
/// Slots of a reply ring (32 KiB).
pub const REPLY_SLOTS: usize = super::LATENCY_SLOTS;
/// Largest answer sent through a reply ring (what a frame of it holds after the id); larger
/// ones go by the engine (by descriptor).
pub const REPLY_INLINE_MAX: usize = 16_368 - ID_LEN;

/// The answers to one endpoint's requests (see the module documentation).
pub struct Replies {
    state: SpinLock<State>,
    /// The reply ring's slots, and the position its consumer (in `state`) reads next,
    /// stored after every pass: a waiter watches the slot without the lock.
    doorstep: Doorstep<Region>,
    next: AtomicU64,
    /// The highest id issued: an answer to a higher one is forged.
    issued: AtomicU64,
    /// Requests issued (written by the endpoint's one sending thread).
    sent: AtomicU64,
    /// The destination, which every answer comes from.
    dst: Peer,
    /// The process hosting it (pid, start time), when it is another process.
    owner: Option<(u32, u64)>,
    /// The destination is gone: what is still outstanding fails.
    lost: AtomicBool,
    /// A future waits on one of the requests: the engine wakes it.
    watched: AtomicBool,
    /// The lent entries of the endpoint's sends from registered memory.
    lent: Lent,
    /// The endpoint's own ring (its requests go there): a destination that finds it corrupt
    /// drops it with every request it held.
    requests: Option<Arc<Region>>,
    /// The destination dropped the endpoint's ring: what is still outstanding fails.
    dropped_ring: AtomicBool,
}

struct State {
    consumer: Consumer<Region>,
    /// Answers that arrived for requests not waited for yet.
    held: HashMap<u64, Result<Vec<u8>>>,
    /// Requests given up (cancelled, timed out, dropped) whose answer has not arrived.
    abandoned: HashSet<u64>,
    /// Requests whose answer the ring said comes the engine's way (too large for it).
    detoured: HashSet<u64>,
    /// Futures waiting, with the request and its deadline.
    wakers: Vec<(u64, Waker, Option<Instant>)>,
    /// Requests whose outcome was taken or that were abandoned: `sent - finished` are
    /// outstanding, and no more answers than that are held (a process writing answers to
    /// requests that already have theirs gains nothing).
    finished: u64,
    /// Answers dropped: more than requests outstanding, or a ring found corrupt.
    dropped: u64,
    /// The ring was found corrupt when requests up to this id had been issued: answers to
    /// them that it held are lost, and they fail (later ones are answered the engine's way).
    poisoned_at: Option<u64>,
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies")
            .field("dst", &self.dst)
            .field("issued", &self.issued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Replies {
    /// The answers to requests to `dst` (hosted by process `owner`, when another), read
    /// from `consumer`.
    pub fn new(consumer: Consumer<Region>, dst: Peer, owner: Option<(u32, u64)>) -> Replies {
        Replies {
            doorstep: consumer.doorstep(),
            next: AtomicU64::new(consumer.position()),
            state: SpinLock::new(State {
                consumer,
                held: HashMap::default(),
                abandoned: HashSet::default(),
                detoured: HashSet::default(),
                wakers: Vec::new(),
                finished: 0,
                dropped: 0,
                poisoned_at: None,
            }),
            issued: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dst,
            owner,
            lost: AtomicBool::new(false),
            watched: AtomicBool::new(false),
            lent: Lent::default(),
            requests: None,
            dropped_ring: AtomicBool::new(false),
        }
    }

    /// These answers are to requests sent through ring `requests`: when its reader marks it
    /// corrupt (and drops it), the requests still outstanding fail at their waiter's next
    /// liveness check instead of at their deadline.
    pub fn with_request_ring(mut self, requests: Arc<Region>) -> Replies {
        self.requests = Some(requests);
        self
    }

    /// The lent entries of the endpoint's sends from registered memory: a request's entry is
    /// cleared when its outcome is taken or it is abandoned.
    pub fn lent(&self) -> &Lent {
        &self.lent
    }

    /// The destination the requests go to.
    pub fn destination(&self) -> Peer {
        self.dst
    }

    /// Records that request `id` was sent (ids of one endpoint grow). Called by the
    /// endpoint's one sending thread only.
    #[inline]
    pub fn issue(&self, id: u64) {
        // Release: a reader that got the answer to `id` (after the request went out and came
        // back) sees at least `id` here.
        self.issued.store(id, Ordering::Release);
        let sent = self.sent.load(Ordering::Relaxed);
        self.sent.store(sent + 1, Ordering::Release);
    }

    /// The answer to request `id` if it arrived (then it is taken), reading what the ring
    /// holds; the error of a lost destination once it is found gone.
    #[inline]
    pub fn take(&self, id: u64) -> Option<Result<Vec<u8>>> {
        self.take_or_detour(id).0
    }

    /// [`take`](Self::take), and whether the ring said the answer comes the engine's way
    /// (its waiter then drives the engine rather than watch the ring).
    #[inline]
    pub fn take_or_detour(&self, id: u64) -> (Option<Result<Vec<u8>>>, bool) {
        let mut s = self.state.lock();
        let r = self.find(&mut s, id);
        if r.is_some() {
            self.lent.release(id);
            s.finished += 1;
            if !s.detoured.is_empty() {
                s.detoured.remove(&id);
            }
            return (r, false);
        }
        let detour = !s.detoured.is_empty() && s.detoured.contains(&id);
        (None, detour)
    }

    /// [`take`](Self::take) under the lock.
    #[inline]
    fn find(&self, s: &mut State, id: u64) -> Option<Result<Vec<u8>>> {
        if !s.held.is_empty() {
            if let Some(r) = s.held.remove(&id) {
                return Some(r);
            }
        }
        if let Some(r) = self.pump(s, Some(id)) {
            return Some(r);
        }
        if s.poisoned_at.is_some_and(|upto| id <= upto) {
            // Its answer may still come the engine's way: dropped then.
            if s.abandoned.len() < ABANDONED_MAX {
                s.abandoned.insert(id);
            }
            return Some(Err(Error::MalformedFrame(format!(
                "the reply ring of request {id} was found corrupt (written by another \
                 process); its answer was lost"
            ))));
        }
        if self.lost.load(Ordering::Acquire) {
            return Some(Err(self.lost_error()));
        }
        if self.dropped_ring.load(Ordering::Acquire) {
            return Some(Err(Error::MalformedFrame(format!(
                "the destination (node index {}) found the endpoint's ring corrupt (written by \
                 another process) and dropped it with request {id}",
                self.dst.index
            ))));
        }
        None
    }

    /// Reads the ring until the answer to `want` (returned) or its end; other answers are
    /// held. A frame no answer can be, or a ring its reader finds corrupt, poisons it: the
    /// requests issued until then that have no answer yet fail.
    fn pump(&self, s: &mut State, want: Option<u64>) -> Option<Result<Vec<u8>>> {
        let got = self.pump_ring(s, want);
        self.next.store(s.consumer.position(), Ordering::Release);
        got
    }

    /// Whether the reply ring may hold a frame nobody read yet (one load, no lock): what a
    /// waiter asks between two looks that take the lock. An answer that came the engine's
    /// way, or that another waiter moved aside, is not seen here: a waiter still takes a
    /// full look now and then.
    #[inline]
    pub fn may_have_news(&self) -> bool {
        self.doorstep.may_hold(self.next.load(Ordering::Acquire))
    }

    /// [`pump`](Self::pump)'s reading of the ring.
    fn pump_ring(&self, s: &mut State, want: Option<u64>) -> Option<Result<Vec<u8>>> {
        loop {
            let got = s.consumer.try_pop(|h, d| self.read(h, d));
            match got {
                Ok(Some(Ok((got, None)))) => {
                    // The answer comes the engine's way.
                    if (s.detoured.len() as u64) < self.outstanding(s) {
                        s.detoured.insert(got);
                    }
                }
                Ok(Some(Ok((got, Some(r))))) if Some(got) == want => return Some(r),
                Ok(Some(Ok((got, Some(r))))) => {
                    let outstanding = self.outstanding(s);
                    s.hold(got, r, outstanding);
                }
                Ok(Some(Err(why))) => {
                    s.consumer.mark_corrupt(why);
                    s.poison(self.issued.load(Ordering::Acquire));
                    return None;
                }
                Ok(None) => return None,
                Err(_) => {
                    s.poison(self.issued.load(Ordering::Acquire));
                    return None;
                }
            }
        }
    }

    /// Decodes one reply frame: (request id, answer), or why the ring is corrupt.
    fn read(
        &self,
        h: SlotHeader,
        d: &[u8],
    ) -> std::result::Result<(u64, Option<Answer>), &'static str> {
        if h.src != self.dst.index || h.flags & !FLAG_DETOUR != 0 || d.len() < ID_LEN {
            return Err("a reply frame of another node, or shorter than its id");
        }
        let id = u64::from_le_bytes(d[..ID_LEN].try_into().expect("8 bytes"));
        // Read after the frame (Acquire): covers a request another thread sent while this
        // one was reading.
        if id > self.issued.load(Ordering::Acquire) {
            return Err("a reply to a request that was never sent");
        }
        let body = &d[ID_LEN..];
        match FrameKind::from_u8(h.kind) {
            _ if h.flags == FLAG_DETOUR && !body.is_empty() => Err("a detour notice with bytes"),
            Some(FrameKind::Response | FrameKind::Ack | FrameKind::Error)
                if h.flags == FLAG_DETOUR =>
            {
                Ok((id, None))
            }
            Some(FrameKind::Response | FrameKind::Ack) => Ok((id, Some(Ok(body.to_vec())))),
            Some(FrameKind::Error) => Ok((id, Some(Err(decode_error(body))))),
            _ => Err("a reply frame of a kind no answer has"),
        }
    }

    /// Requests sent whose outcome was neither taken nor abandoned.
    fn outstanding(&self, s: &State) -> u64 {
        self.sent.load(Ordering::Acquire) - s.finished
    }

    /// Gives up request `id`: its answer, now or later, is dropped.
    pub fn abandon(&self, id: u64) {
        // First: the caller may reuse the buffer of a send from registered memory at once.
        self.lent.release(id);
        let mut s = self.state.lock();
        s.finished += 1;
        s.detoured.remove(&id);
        if s.held.remove(&id).is_none() && s.abandoned.len() < ABANDONED_MAX {
            s.abandoned.insert(id);
        }
        s.wakers.retain(|w| w.0 != id);
    }

    /// An answer that came the engine's way (from the destination, or an error from a node
    /// on the way).
    pub fn complete(&self, id: u64, result: Result<Vec<u8>>) {
        if id > self.issued.load(Ordering::Acquire) {
            return;
        }
        let mut s = self.state.lock();
        let outstanding = self.outstanding(&s);
        s.hold(id, result, outstanding);
        if self.watched.load(Ordering::Relaxed) {
            s.wake(|w| w.0 == id);
        }
    }

    /// Marks the destination gone: outstanding requests fail, waiting futures are woken.
    pub fn set_lost(&self) {
        self.lost.store(true, Ordering::Release);
        if self.watched.load(Ordering::Relaxed) {
            self.state.lock().wake(|_| true);
        }
    }

    /// Checks that the destination is still the registration the requests went to and its
    /// process lives (reads `/proc`: for a waiter, every few milliseconds, not per poll);
    /// marks it lost otherwise. Returns whether it is lost.
    pub fn check_destination(&self, registry: &Registry) -> bool {
        if !self.dst.is_alive(registry, self.owner) {
            self.set_lost();
        }
        let dropped = self
            .requests
            .as_ref()
            .is_some_and(|r| r.state().load(Ordering::Relaxed) & STATE_CORRUPT != 0);
        if dropped
            && !self.dropped_ring.swap(true, Ordering::AcqRel)
            && self.watched.load(Ordering::Relaxed)
        {
            self.state.lock().wake(|_| true);
        }
        self.is_lost() || dropped
    }

    /// Whether the destination was found gone.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    fn lost_error(&self) -> Error {
        Error::NodeNotFound(format!(
            "destination node (index {}) left the fabric before answering",
            self.dst.index
        ))
    }

    /// Has future `waker` woken when request `id`'s answer may have arrived, or at
    /// `deadline` (by the engine, which [`watches`](super::Engine::watch_replies) these
    /// replies).
    pub fn wake_on(&self, id: u64, waker: &Waker, deadline: Option<Instant>) {
        let mut s = self.state.lock();
        match s.wakers.iter_mut().find(|w| w.0 == id) {
            Some(w) if w.1.will_wake(waker) => w.2 = deadline,
            Some(w) => *w = (id, waker.clone(), deadline),
            None => s.wakers.push((id, waker.clone(), deadline)),
        }
        self.watched.store(true, Ordering::Relaxed);
    }

    /// For the engine: moves what the ring holds into the held answers and wakes the futures
    /// whose answer is there, whose deadline passed by `now`, or all when the destination is
    /// gone or the ring poisoned. Returns whether futures still wait.
    pub(super) fn wake_ready(&self, now: Option<Instant>) -> bool {
        if !self.watched.load(Ordering::Relaxed) {
            return false;
        }
        let Some(mut s) = self.state.try_lock() else {
            return true;
        };
        if s.consumer.has_message() {
            self.pump(&mut s, None);
        }
        if s.poisoned_at.is_some() || self.is_lost() {
            s.wake(|_| true);
        } else {
            let State { held, wakers, .. } = &mut *s;
            let mut i = 0;
            while i < wakers.len() {
                let w = &wakers[i];
                if held.contains_key(&w.0) || now.is_some_and(|n| w.2.is_some_and(|d| d <= n)) {
                    wakers.swap_remove(i).1.wake();
                } else {
                    i += 1;
                }
            }
        }
        let waiting = !s.wakers.is_empty();
        self.watched.store(waiting, Ordering::Relaxed);
        waiting
    }

    /// Answers dropped (held answers past the bound, a corrupt ring).
    pub fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }
}

impl State {
    /// Holds the answer to `id` for its waiter, unless it was abandoned or more answers than
    /// the `outstanding` requests are held already (a second answer to a request).
    fn hold(&mut self, id: u64, r: Result<Vec<u8>>, outstanding: u64) {
        if self.abandoned.remove(&id) {
            return;
        }
        if self.held.len() as u64 >= outstanding {
            self.dropped += 1;
            return;
        }
        self.held.entry(id).or_insert(r);
    }

    /// The ring was found corrupt with requests up to `issued` sent.
    fn poison(&mut self, issued: u64) {
        if self.poisoned_at.is_none() {
            self.dropped += 1;
            self.poisoned_at = Some(issued);
        }
    }

    fn wake(&mut self, which: impl Fn(&(u64, Waker, Option<Instant>)) -> bool) {
        let mut i = 0;
        while i < self.wakers.len() {
            if which(&self.wakers[i]) {
                self.wakers.swap_remove(i).1.wake();
            } else {
                i += 1;
            }
        }
    }
}

/// Writes into a reply ring the notice that the answer (kind `kind`) to request `id` from
/// node `src` comes the engine's way (it is too large for the ring). `false` when it does not
/// fit now (its waiter then finds the answer a little later).
pub(super) fn push_detour(p: &mut Producer<Region>, src: u32, kind: FrameKind, id: u64) -> bool {
    let h = SlotHeader {
        len: 0,
        kind: kind as u8,
        flags: FLAG_DETOUR,
        aux: 0,
        src,
    };
    !p.is_corrupt() && p.try_push(h, &[&id.to_le_bytes()]).is_ok()
}

/// Writes the answer `data` (kind `kind`) to request `id` from node `src` into a reply ring.
/// `false` when it does not go this way: too large, no room, or the ring was found corrupt
/// by its reader.
#[inline]
pub(super) fn push_reply(
    p: &mut Producer<Region>,
    src: u32,
    kind: FrameKind,
    id: u64,
    data: &[u8],
) -> bool {
    // A ring its reader found corrupt is never written again (the push checks the header
    // only when the ring looks full).
    if data.len() > REPLY_INLINE_MAX || p.is_corrupt() {
        return false;
    }
    let h = SlotHeader {
        len: 0,
        kind: kind as u8,
        flags: 0,
        aux: 0,
        src,
    };
    match p.try_push(h, &[&id.to_le_bytes(), data]) {
        Ok(()) => true,
        Err(PushError::Full | PushError::Corrupt | PushError::TooLarge) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_largest_answer_fills_one_frame_of_a_reply_ring() {
        assert_eq!(
            super::REPLY_INLINE_MAX + super::ID_LEN,
            crate::ring::max_payload(super::REPLY_SLOTS)
        );
    }
}
