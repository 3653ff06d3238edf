//! `recv`: takes a hosted node's messages from its mailbox without the engine lock. The
//! thread in `recv` polls the node's endpoint rings itself (a plain frame becomes the message
//! in place, or is copied straight into the caller's buffer by `recv_into`); the engine's own
//! rings (replies, messages routed through other nodes, sends of the protocol's other paths)
//! are polled through the engine when no engine thread runs.

use super::{lock, try_lock, Deadline, HyperFabricProtocol, Inner};
use crate::engine::mailbox::{Mailbox, MessageRef, Received, Rings, Sink};
use crate::engine::{Message, Want};
use crate::error::{Error, Result};
use crate::sync::SpinGuard;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

thread_local! {
    /// The mailboxes this thread received from lately, by protocol instance: `recv` finds
    /// its node's with a string comparison, no lock and no hashing.
    static MAILBOXES: RefCell<Vec<(usize, Arc<Mailbox>)>> = const { RefCell::new(Vec::new()) };
}

/// Mailboxes a thread remembers.
const REMEMBERED: usize = 8;
/// Empty polls of the mailbox between two polls of the engine's rings (when no engine
/// thread runs): the engine's rings carry replies and routed messages, rarer than the
/// endpoint traffic `recv` waits for.
const ENGINE_EVERY: u32 = 64;
/// Polls between two reads of the clock.
const CHECK_EVERY: u32 = 256;
/// Polls spent spinning before the waiting thread yields its core between polls.
const SPIN_POLLS: u32 = 200_000;

impl HyperFabricProtocol {
    /// The oldest message for hosted node `node_id` (one without handler), waiting up to
    /// `timeout` (zero: one look). `NodeNotFoundError` when the node is not hosted here (or
    /// leaves while waiting), `TimeoutError` when nothing arrived. Any number of threads may
    /// receive for one node; each message goes to one of them, and messages of one endpoint
    /// come out in the order they were sent.
    pub fn recv(&self, node_id: &str, timeout: Duration) -> Result<Message> {
        let mut sink = Sink::Message(None);
        let end = self.wait_into(node_id, timeout, &mut sink);
        match sink {
            Sink::Message(Some(m)) => Ok(m),
            _ => Err(end.error(node_id)),
        }
    }

    /// `recv` into the caller's buffer (as `MPI_Recv`): the data of the next message is
    /// copied into `buf`, the rest described in the returned [`Received`]. No allocation for
    /// a message without metadata. A message larger than `buf` fails with
    /// `BufferOverflowError` (its size in the message) and stays the node's next message.
    /// A send from registered memory ([`Endpoint::post_mem`](super::Endpoint::post_mem)) is
    /// copied straight into `buf`; one whose copy then delivers nothing (its sender gave it
    /// up during the copy, or freed part of its memory) may have written `buf`: only the
    /// first [`Received::len`] bytes of a successful call are the message. So may a large
    /// message from another host that the kernel receives straight into `buf` while the
    /// call waits (see the README), when the call ends before it is whole (it is then
    /// delivered by a later call).
    #[inline]
    pub fn recv_into(&self, node_id: &str, timeout: Duration, buf: &mut [u8]) -> Result<Received> {
        let cap = buf.len();
        match self.take_into(node_id, timeout, buf) {
            Into::Got(r) => Ok(r),
            Into::TooLarge(n) => Err(too_large(node_id, n, cap)),
            Into::Nothing(end) => Err(end.error(node_id)),
        }
    }

    /// [`recv_into`](Self::recv_into), with the size of a message too large for `buf` as
    /// `Ok(Err(size))`.
    #[inline]
    pub fn recv_into_or_size(
        &self,
        node_id: &str,
        timeout: Duration,
        buf: &mut [u8],
    ) -> Result<std::result::Result<Received, usize>> {
        match self.take_into(node_id, timeout, buf) {
            Into::Got(r) => Ok(Ok(r)),
            Into::TooLarge(n) => Ok(Err(n)),
            Into::Nothing(end) => Err(end.error(node_id)),
        }
    }

    /// The wait of `recv_into` and what it ended with.
    #[inline(always)]
    fn take_into(&self, node_id: &str, timeout: Duration, buf: &mut [u8]) -> Into {
        let mut sink = Sink::Buffer {
            buf,
            got: None,
            spill: None,
            too_large: None,
        };
        let end = self.wait_into(node_id, timeout, &mut sink);
        match sink {
            Sink::Buffer { got: Some(r), .. } => Into::Got(r),
            Sink::Buffer {
                too_large: Some(n), ..
            } => Into::TooLarge(n),
            _ => Into::Nothing(end),
        }
    }

    /// Receives up to `max` messages of hosted node `node_id` in one call, each lent to `f`
    /// in place (its bytes valid during the call: no copy, no allocation): waits up to
    /// `timeout` for the first, then takes what else is there without waiting. Returns how
    /// many `f` got. The way to drain a stream: one lock and one lookup per batch.
    pub fn recv_batch(
        &self,
        node_id: &str,
        timeout: Duration,
        max: usize,
        mut f: impl FnMut(&MessageRef<'_>),
    ) -> Result<usize> {
        if max == 0 {
            return Err(Error::InvalidArgument("max must be at least 1".into()));
        }
        let mut sink = Sink::Each {
            f: &mut f,
            taken: 0,
            max,
        };
        let end = self.wait_into(node_id, timeout, &mut sink);
        match sink.count() {
            0 => Err(end.error(node_id)),
            n => Ok(n),
        }
    }

    /// Finds `node_id`'s mailbox (this thread's cache first) and waits for a message into
    /// `sink`. Returns how the wait ended when `sink` got nothing (a small value: the
    /// error is built by the caller, off the path of a message).
    #[inline]
    fn wait_into(&self, node_id: &str, timeout: Duration, sink: &mut Sink<'_>) -> End {
        if let Err(e) = self.inner.check_process() {
            return End::Failed(e);
        }
        let key = Arc::as_ptr(&self.inner) as usize;
        let cached = MAILBOXES.with(|c| {
            let c = c.try_borrow().ok()?;
            let (_, mb) = c
                .iter()
                .find(|(k, m)| *k == key && m.id() == node_id && !m.is_closed())?;
            Some(self.inner.wait_for(mb, timeout, sink))
        });
        if let Some(end) = cached {
            return end;
        }
        let mb = match lock(&self.inner.engine).mailbox(node_id) {
            Ok(mb) => mb,
            Err(e) => return End::Failed(e),
        };
        MAILBOXES.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.retain(|(_, m)| !m.is_closed());
                if c.len() >= REMEMBERED {
                    c.remove(0);
                }
                c.push((key, mb.clone()));
            }
        });
        self.inner.wait_for(&mb, timeout, sink)
    }
}

/// What a `recv_into` got.
enum Into {
    Got(Received),
    /// The next message's size, larger than the buffer.
    TooLarge(usize),
    Nothing(End),
}

/// How a wait that took nothing ended.
pub(super) enum End {
    /// Something arrived (or a batch got all it wanted).
    Got,
    /// The timeout passed.
    Timeout,
    /// The node left the fabric.
    Gone,
    /// Refused before waiting.
    Failed(Error),
}

impl End {
    /// The error of a receive for `node_id` that got nothing.
    #[cold]
    #[inline(never)]
    fn error(self, node_id: &str) -> Error {
        match self {
            End::Failed(e) => e,
            End::Gone => Error::NodeNotFound(format!("node {node_id:?} left the fabric")),
            End::Got | End::Timeout => {
                Error::Timeout(format!("nothing arrived for {node_id:?} in time"))
            }
        }
    }
}

/// The error of a `recv_into` whose buffer (`cap` bytes) is smaller than `node_id`'s next
/// message (`size` bytes).
pub(crate) fn too_large(node_id: &str, size: usize, cap: usize) -> Error {
    Error::BufferOverflow(format!(
        "the next message of {node_id:?} has {size} bytes, the buffer {cap}; it stays queued"
    ))
}

impl Inner {
    /// Whether deliveries must pass the zone check (an isolating zone exists, or the zones
    /// changed since the last sync): frames then take the engine's dispatch.
    pub(super) fn zoned(&self) -> bool {
        self.zones_active.load(Ordering::Acquire)
            || self.registry.zones_epoch() != self.zones_seen.load(Ordering::Acquire)
    }

    /// One look into `mb`: its queue, then one frame of its endpoint rings, through `held`:
    /// the ring lock, kept between looks of one `recv` (taken when free, released every
    /// [`ENGINE_EVERY`] looks and on return), so a polling `recv` pays no atomic exchange
    /// per look. Returns whether `sink` got a result in this look.
    #[inline]
    fn look<'m>(
        &self,
        mb: &'m Mailbox,
        held: &mut Option<SpinGuard<'m, Rings>>,
        sink: &mut Sink<'_>,
    ) -> bool {
        let before = sink.count();
        if mb.has_queued() && mb.take_queued(sink) {
            return true;
        }
        if mb.is_handled() {
            return false;
        }
        if held.is_none() {
            *held = mb.try_rings();
            // What the previous holder queued comes before what the rings hold now.
            if held.is_some() && mb.has_queued() && mb.take_queued(sink) {
                return true;
            }
        }
        let Some(rings) = held.as_mut() else {
            return false;
        };
        let deliver = !self.zoned();
        mb.take(
            rings,
            (deliver, false),
            &mut |at, h, d, via| lock(&self.engine).dispatch_frame(at, h, d, via),
            sink,
        );
        // A frame the engine dispatched may have joined the queue.
        sink.count() > before || (mb.has_queued() && mb.take_queued(sink))
    }

    /// Polls the engine's rings (and runs its periodic work every [`CHECK_EVERY`] calls)
    /// unless the engine thread does, or another thread holds the engine. A message for
    /// `mb`'s node that comes over TCP meanwhile may go straight into `sink` (see
    /// `engine::hosts::straight`), or land into its buffer over the polls of `wait`
    /// (`engine::hosts::into_buffer`): not while zone rules are checked at delivery, which
    /// only the dispatch does. Returns whether `sink` got it.
    fn drive_engine(
        &self,
        periodic: bool,
        mb: &Mailbox,
        sink: &mut Sink<'_>,
        wait: &mut Wait,
    ) -> bool {
        if self.running.load(Ordering::Acquire) {
            return false;
        }
        let Some(mut e) = try_lock(&self.engine) else {
            return false;
        };
        let straight = self.tcp.is_some() && !self.zoned();
        let before = sink.count();
        let mut want = Want::new(mb, sink, wait.token);
        // Until `note` says whether the buffer is lent: a poll that lends it and then
        // unwinds (a panic) still has it taken back when the wait is dropped.
        wait.polling = true;
        e.poll_for(straight.then_some(&mut want));
        let got = sink.count() > before;
        wait.note(e.lends_to(wait.token));
        if periodic {
            let changes = e.tick(Instant::now());
            drop(e);
            self.apply_health(changes);
        }
        got
    }

    /// A look that waits for the ring lock when another poller (the engine thread moving
    /// frames to the queue, another receiver between two of its looks) holds it: held for
    /// at most a burst of frames, never while waiting for anything.
    fn look_held<'m>(
        &self,
        mb: &'m Mailbox,
        held: &mut Option<SpinGuard<'m, Rings>>,
        sink: &mut Sink<'_>,
    ) -> bool {
        if held.is_none() && !mb.is_handled() && !mb.is_closed() {
            *held = Some(mb.lock_rings());
        }
        self.look(mb, held, sink)
    }

    /// What else a batch takes after its first message: everything queued or in the rings
    /// now, without waiting for more to arrive (but for the ring lock: a frame another
    /// poller is moving to the queue is there).
    fn take_rest<'m>(
        &self,
        mb: &'m Mailbox,
        held: &mut Option<SpinGuard<'m, Rings>>,
        sink: &mut Sink<'_>,
    ) {
        while sink.wants_more() && self.look_held(mb, held, sink) {}
    }

    /// Waits up to `timeout` for a message of `mb` into `sink`.
    pub(super) fn wait_for(&self, mb: &Mailbox, timeout: Duration, sink: &mut Sink<'_>) -> End {
        // However the wait ends (also by a panic of a handler the engine runs on this
        // thread), `wait` takes its buffer back when dropped.
        let mut wait = Wait::new(self);
        self.wait_lending(mb, timeout, sink, &mut wait)
    }

    /// [`Inner::wait_for`], the buffer of `sink` possibly lent meanwhile (`wait`).
    fn wait_lending(
        &self,
        mb: &Mailbox,
        timeout: Duration,
        sink: &mut Sink<'_>,
        wait: &mut Wait,
    ) -> End {
        let mut held = None;
        if timeout.is_zero() {
            if !self.look(mb, &mut held, sink) {
                held = None;
                if !self.drive_engine(false, mb, sink, wait)
                    && wait.lent.is_none()
                    && !self.look(mb, &mut held, sink)
                    && held.is_none()
                {
                    // Another poller has the rings for a moment: one look means one look
                    // at them, not a miss of what was sent before the call.
                    self.look_held(mb, &mut held, sink);
                }
            }
            self.take_rest(mb, &mut held, sink);
            return match sink.filled() {
                true => End::Got,
                false if mb.is_closed() => End::Gone,
                false => End::Timeout,
            };
        }
        let mut deadline = Deadline::after(timeout);
        let mut polls = 0u32;
        // What comes from other hosts reaches the node only through the engine: it is
        // polled at every other look then.
        let every = if self.tcp.is_some() { 2 } else { ENGINE_EVERY };
        loop {
            // While its buffer is lent to a message landing, nothing else goes into it.
            if wait.lent.is_none() && self.look(mb, &mut held, sink) {
                self.take_rest(mb, &mut held, sink);
                return End::Got;
            }
            polls = polls.wrapping_add(1);
            if wait.lent.is_some() || polls % every == 0 {
                // Let other receivers of the node, and the engine, have the rings.
                held = None;
                let periodic = polls % CHECK_EVERY == 0;
                if self.drive_engine(periodic, mb, sink, wait) {
                    self.take_rest(mb, &mut held, sink);
                    return End::Got;
                }
                if wait.stalled() {
                    // A sender that stopped inside its message does not hold the node's
                    // other messages back: the message goes on through the reassembly.
                    wait.take_back();
                }
                if periodic {
                    if mb.is_closed() {
                        return End::Gone;
                    }
                    if deadline.passed() {
                        return End::Timeout;
                    }
                }
            }
            if polls < SPIN_POLLS {
                std::hint::spin_loop();
            } else {
                // Not with the rings held: a batch of another thread may wait for them.
                held = None;
                std::thread::yield_now();
            }
        }
    }
}

/// How long a message landing into a waiting receive's buffer may go without a byte more
/// before the buffer is taken back (its frames are at most 256 KiB: milliseconds apart
/// only when its sender stalls).
const LENT_PATIENCE: Duration = Duration::from_millis(2);

/// A wait's part in messages landing into its buffer (see `engine::hosts::into_buffer`).
struct Wait<'i> {
    inner: &'i Inner,
    /// The wait's token.
    token: u64,
    /// Since when a message has been landing into the buffer without a byte more, and its
    /// bytes then; `None` while the buffer is not lent.
    lent: Option<(Instant, usize)>,
    /// Whether the buffer was ever lent (it is taken back when the wait ends).
    ever: bool,
    /// A poll of the engine started and its end was not noted: it may have lent the
    /// buffer.
    polling: bool,
}

impl<'i> Wait<'i> {
    fn new(inner: &'i Inner) -> Wait<'i> {
        Wait {
            inner,
            token: Want::next_token(),
            lent: None,
            ever: false,
            polling: false,
        }
    }

    /// After a poll: the bytes in place of the message landing into the buffer, if one is.
    fn note(&mut self, landing: Option<usize>) {
        self.lent = match (landing, self.lent) {
            (None, _) => None,
            (Some(got), Some((since, before))) if got == before => Some((since, got)),
            (Some(got), _) => Some((Instant::now(), got)),
        };
        self.ever |= self.lent.is_some();
        self.polling = false;
    }

    /// Takes the buffer back from a message landing into it, if one does (what came of it
    /// goes on through the engine's reassembly).
    fn take_back(&mut self) {
        if self.ever || self.polling {
            lock(&self.inner.engine).spill_into(Some(self.token));
            self.lent = None;
        }
    }

    /// Whether the message landing into the buffer stopped coming.
    fn stalled(&self) -> bool {
        self.lent
            .is_some_and(|(since, _)| since.elapsed() >= LENT_PATIENCE)
    }
}

impl Drop for Wait<'_> {
    /// The buffer is the caller's again.
    fn drop(&mut self) {
        self.take_back();
    }
}
