//! Sends by node name through endpoints that each thread keeps: `post("a", "b", ..)` and
//! `send_data` (C `hf_post`, `hf_send_data`) find this thread's endpoint from `a` to `b`
//! with a few string comparisons and send through its ring, as [`Endpoint::post`] does,
//! instead of taking the engine's lock and the engine's ring (which a receiver without
//! engine thread polls only now and then). Off with `ProtocolConfig::endpoints_by_name`.
//!
//! Order. Sends from one thread to one pair stay in order: a pair moves from the engine's
//! rings to its endpoint only once the engine's rings from `a` to `b` hold nothing unread
//! (and no neuromorphic batch of the pair waits), and back (for a coalesced neuromorphic
//! event) only once the endpoint's ring is drained; until then the send takes the way the
//! pair is on. A send by name made while this thread is already inside one (a handler run
//! by a send that waits for room) takes the engine.
//!
//! A thread's first [`WARM`] sends by name take the engine. A pair one of whose nodes
//! registered again (or left) since its endpoint was made stays on the engine for that thread.
//!
//! Resources. A thread keeps at most [`KEPT`] endpoints (a ring file of 64 KiB and a reply
//! ring each). With all of them taken, a new pair takes the engine; one endpoint whose ring
//! is drained is let go for it at most every [`RENEW_EVERY`] sends by name, so threads that
//! cycle over many pairs do not make a ring per send. Endpoints of a dropped protocol are let
//! go at their thread's next send by name or when the thread ends; their ring files are
//! removed when the protocol is dropped.

use super::{Endpoint, Path};
use crate::engine::same_id;
use crate::error::{ErrorKind, Result};
use crate::fabric::{lock, HyperFabricProtocol, Inner};
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Endpoints a thread keeps for sends by name.
pub const KEPT: usize = 32;
/// Sends by name between two endpoints let go for new pairs, when a thread keeps [`KEPT`].
pub const RENEW_EVERY: u32 = 4096;
/// Sends by name a thread makes through the engine before it makes endpoints: a thread that
/// sends a message or two and ends (one per request, say) costs no ring file.
pub const WARM: u32 = 8;

/// A pair a thread sends to by name.
struct Named {
    source: Box<str>,
    destination: Box<str>,
    ep: Endpoint,
    /// Whether the pair's sends take `ep` now (else the engine's rings).
    own: bool,
    /// A node of the pair registered again (or left) since `ep` was made: the pair stays on
    /// the engine from then on.
    stale: bool,
}

#[derive(Default)]
struct Kept {
    /// Most recently used first.
    list: Vec<Named>,
    /// Sends by name since an endpoint was last let go for a new pair.
    since_renew: u32,
    /// Sends by name of this thread (up to [`WARM`]).
    sends: u32,
    /// [`DROPPED`] when the list was last pruned.
    dropped_seen: u64,
}

impl Kept {
    /// Lets go of the endpoints of dropped protocols, and forgets (without dropping them)
    /// those a `fork()` child inherited: their rings and files are the parent's.
    fn prune(&mut self) {
        self.dropped_seen = DROPPED.load(Ordering::Acquire);
        let mut i = 0;
        while i < self.list.len() {
            let inner = &self.list[i].ep.inner;
            if !inner.origin.is_current() {
                std::mem::forget(self.list.swap_remove(i));
            } else if inner.closed.load(Ordering::Acquire) {
                self.list.remove(i);
            } else {
                i += 1;
            }
        }
    }
}

thread_local! {
    static NAMED: RefCell<Kept> = RefCell::new(Kept::default());
}

impl Endpoint {
    /// Whether everything sent through its own ring was taken (an endpoint through the
    /// engine has no ring of its own).
    fn is_drained(&mut self) -> bool {
        match &mut self.path {
            Path::Own { producer, .. } => producer.is_drained(),
            Path::Engine => true,
        }
    }
}

/// Which way a send by name prefers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::fabric) enum Prefer {
    /// The pair's endpoint.
    Endpoint,
    /// The engine (a neuromorphic event it coalesces, a buffer it sends by descriptor).
    Engine,
}

impl Prefer {
    /// How a send with `opts` that the engine would rather carry (`engine`) goes: `None` for
    /// one of the bulk lane (LOW, BULK), which always takes the engine's bulk ring (the
    /// latency lane overtakes it there, and an endpoint has one ring for all priorities).
    pub(in crate::fabric) fn of(opts: &crate::fabric::SendOptions, engine: bool) -> Option<Prefer> {
        if !opts.priority.is_latency_lane() {
            None
        } else if engine {
            Some(Prefer::Engine)
        } else {
            Some(Prefer::Endpoint)
        }
    }
}

/// Protocols dropped in this process so far: a thread that sees it change lets go of the
/// endpoints it keeps for them (and of the protocols' memory with them).
static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl HyperFabricProtocol {
    /// Runs `f` with this thread's endpoint from `source` to `destination` when the send
    /// takes it (see the module documentation). `None`: the send takes the engine; so it
    /// does after any error in making the endpoint (the engine's path reports it), and when a
    /// node of the pair left or registered again since the endpoint was made (the engine
    /// resolves the names anew).
    pub(in crate::fabric) fn with_named<R>(
        &self,
        (source, destination): (&str, &str),
        prefer: Prefer,
        f: impl FnOnce(&mut Endpoint) -> Result<R>,
    ) -> Option<Result<R>> {
        if !self.inner.endpoints_by_name {
            return None;
        }
        // `try_with`: a protocol dropped by another thread-local's destructor sends nothing
        // through this one once it is gone.
        NAMED
            .try_with(|kept| {
                let mut kept = kept.try_borrow_mut().ok()?;
                let kept = &mut *kept;
                if DROPPED.load(Ordering::Relaxed) != kept.dropped_seen {
                    kept.prune();
                }
                kept.since_renew = kept.since_renew.saturating_add(1);
                if kept.sends < WARM {
                    kept.sends += 1;
                    return None;
                }
                let found = kept.list.iter().position(|n| {
                    Arc::ptr_eq(&n.ep.inner, &self.inner)
                        && same_id(&n.source, source)
                        && same_id(&n.destination, destination)
                });
                let i = match found {
                    Some(i) => i,
                    None if prefer == Prefer::Engine => return None,
                    None => self.keep(kept, (source, destination))?,
                };
                if i > 0 {
                    let n = kept.list.remove(i);
                    kept.list.insert(0, n);
                }
                let n = &mut kept.list[0];
                if n.stale {
                    return None;
                }
                if n.ep.check_ends().is_err() {
                    // A node of the pair left or registered again: the engine resolves the
                    // names anew (and reports a node that is gone), and keeps the pair's
                    // order across the new registration as it always did.
                    n.stale = true;
                    n.own = false;
                    return None;
                }
                if !self.takes_endpoint(n, prefer) {
                    return None;
                }
                let result = f(&mut n.ep);
                if let Err(e) = &result {
                    if matches!(
                        e.kind(),
                        ErrorKind::NodeNotFound | ErrorKind::MalformedFrame
                    ) {
                        // The destination died, or its receiver dropped the ring as corrupt:
                        // what the ring held is lost, as the error says; a new one next time.
                        kept.list.remove(0);
                    }
                }
                Some(result)
            })
            .ok()
            .flatten()
    }

    /// Whether a send of pair `n` that prefers `prefer` takes its endpoint, moving the pair
    /// between the endpoint and the engine when nothing sent the other way is unread.
    fn takes_endpoint(&self, n: &mut Named, prefer: Prefer) -> bool {
        match (n.own, prefer) {
            (true, Prefer::Endpoint) => true,
            (false, Prefer::Engine) => false,
            (true, Prefer::Engine) => {
                // Sent through the endpoint (not coalesced) until its ring is drained.
                n.own = !n.ep.is_drained();
                n.own
            }
            (false, Prefer::Endpoint) => {
                let (src, dst) = (n.ep.src, n.ep.dst.index);
                n.own = lock(&self.inner.engine).drained_toward(src, dst);
                n.own
            }
        }
    }

    /// Makes the endpoint of a pair this thread keeps none of, at the front of the list;
    /// `None` when the pair takes the engine for now.
    fn keep(&self, kept: &mut Kept, (source, destination): (&str, &str)) -> Option<usize> {
        if kept
            .list
            .first()
            .is_some_and(|n| !n.ep.inner.origin.is_current())
        {
            // A fork() child's first send by name: what the thread kept is the parent's.
            kept.prune();
        }
        if kept.list.len() >= KEPT {
            if kept.since_renew < RENEW_EVERY {
                return None;
            }
            let last = kept
                .list
                .iter_mut()
                .rposition(|n| !n.own || n.ep.is_drained())?;
            kept.list.remove(last);
            kept.since_renew = 0;
        }
        {
            let mut e = lock(&self.inner.engine);
            let src = e.hosted_index(source).ok()?;
            let dst = e.resolve(destination).ok()?;
            if e.over_tcp(dst.index) {
                // A connection orders everything sent on it: the engine's path is as fast.
                return None;
            }
            if !e.drained_toward(src, dst.index) {
                return None;
            }
        }
        let mut ep = self.endpoint(source, destination).ok()?;
        if let Path::Own {
            file: Some(file), ..
        } = &ep.path
        {
            lock(&self.inner.ring_files).push(file.clone());
            ep.named = true;
        }
        kept.list.insert(
            0,
            Named {
                source: source.into(),
                destination: destination.into(),
                ep,
                own: true,
                stale: false,
            },
        );
        Some(0)
    }
}

impl Inner {
    /// Takes the ring file of a named endpoint that is let go off the list of files removed
    /// with the protocol.
    pub(super) fn unlist(&self, file: &std::path::Path) {
        lock(&self.ring_files).retain(|f| f != file);
    }
}

/// Lets go of this thread's endpoints of protocol `inner` and removes the ring files of
/// every thread's (the protocol is being dropped; the other threads let theirs go later).
pub(in crate::fabric) fn forget(inner: &Arc<Inner>) {
    DROPPED.fetch_add(1, Ordering::Release);
    let mine: Vec<Named> = NAMED
        .try_with(|kept| match kept.try_borrow_mut() {
            Ok(mut kept) => {
                let (mine, others) = std::mem::take(&mut kept.list)
                    .into_iter()
                    .partition(|n| Arc::ptr_eq(&n.ep.inner, inner));
                kept.list = others;
                mine
            }
            Err(_) => Vec::new(),
        })
        .unwrap_or_default();
    // Dropped outside the borrow.
    drop(mine);
    for file in std::mem::take(&mut *lock(&inner.ring_files)) {
        super::remove_ring_files(&inner.registry, &file);
    }
    for (file, _) in std::mem::take(&mut *lock(&inner.left_rings)) {
        super::remove_ring_files(&inner.registry, &file);
    }
}
