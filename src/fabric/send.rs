//! Sends through the engine: `send_data`, `post` (and coalesced events), the route check made
//! before anything is sent, and the push of a message's fragments that waits for room.

use super::endpoint::named::Prefer;
use super::framing::{data_frame, encode_metadata};
use super::topology::sync_topology;
use super::{lock, Deadline, HyperFabricProtocol, Inner, Request, SendOptions};
use crate::engine::{Engine, Outgoing, Peer};
use crate::error::{Error, Result};
use crate::routing::SendRequirements;
use crate::sync::Backoff;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

impl HyperFabricProtocol {
    /// The reference's `send_data`: delivers `data` to `destination` and returns its
    /// response (a node without handler answers with an empty delivery receipt). Fails
    /// before sending when the route cannot meet the latency constraint; fails with
    /// `TimeoutError` when no answer comes within `opts.timeout`, and with
    /// `NodeNotFoundError` as soon as the destination leaves the fabric.
    pub fn send_data(
        &self,
        source: &str,
        destination: &str,
        data: &[u8],
        opts: &SendOptions,
    ) -> Result<Vec<u8>> {
        // Waited for once the thread's endpoints are free again: a handler that runs in
        // this thread meanwhile (one of another protocol) may send through them.
        self.request_of(source, destination, data, opts)?.wait()
    }

    /// Non-blocking `send_data`: returns once the message is in the ring, with a
    /// [`Request`] to test, wait for, or `.await` (it is a `Future` that needs no particular
    /// runtime). Errors found before sending come back here; the rest from the request.
    /// Its timeout (`opts.timeout`) counts from this call.
    pub fn send_data_nb(
        &self,
        source: &str,
        destination: &str,
        data: &[u8],
        opts: &SendOptions,
    ) -> Result<Request> {
        self.request_of(source, destination, data, opts)
            .map(Request::started)
    }

    /// [`send_data_nb`](Self::send_data_nb) without starting the request's clock (a
    /// blocking `send_data` starts it only if it has to wait).
    fn request_of(
        &self,
        source: &str,
        destination: &str,
        data: &[u8],
        opts: &SendOptions,
    ) -> Result<Request> {
        self.inner.check_sender()?;
        let named = Prefer::of(opts, false).and_then(|prefer| {
            self.with_named((source, destination), prefer, |ep| {
                ep.request_of(data, opts)
            })
        });
        if let Some(sent) = named {
            return sent;
        }
        let (id, deadline) = self.inner.send(source, destination, data, opts, false)?;
        Ok(self.request(id, deadline))
    }

    pub(super) fn request(&self, id: u64, deadline: Deadline) -> Request {
        Request::new(self.inner.clone(), id, deadline)
    }

    /// One-way send: returns once the message is in the destination's ring. The calling
    /// thread keeps an [`Endpoint`](super::Endpoint) per pair it sends to (at most
    /// [`NAMED_ENDPOINTS`](super::NAMED_ENDPOINTS); see
    /// [`ProtocolConfig::endpoints_by_name`](super::ProtocolConfig::endpoints_by_name)), so
    /// a post by name takes the endpoint's path; sends from one thread to one pair (`post`,
    /// `send_data`) stay in order.
    pub fn post(
        &self,
        source: &str,
        destination: &str,
        data: &[u8],
        opts: &SendOptions,
    ) -> Result<()> {
        self.inner.check_sender()?;
        let coalesce = opts.data_type.is_neuromorphic()
            && opts.metadata.is_none()
            && !(opts.compression_enabled || opts.encryption_enabled)
            && data.len() <= crate::engine::SPIKE_EVENT_MAX
            && lock(&self.inner.engine).coalescing().max_events > 1;
        // This thread's endpoint for the pair, when the send takes it (a coalesced event
        // only while the endpoint's ring still holds what was sent before it).
        let named = Prefer::of(opts, coalesce).and_then(|prefer| {
            self.with_named((source, destination), prefer, |ep| {
                if opts.is_default() {
                    ep.post(data)
                } else {
                    ep.post_with(data, opts)
                }
            })
        });
        if let Some(sent) = named {
            return sent;
        }
        if coalesce {
            return self.post_event(source, destination, data, opts);
        }
        self.inner
            .send(source, destination, data, opts, true)
            .map(drop)
    }

    /// Posts a neuromorphic event into its pair's batch (see [`Coalescing`]). With the engine
    /// thread, a batch leaves within the window; without it, at the next call that drives
    /// the engine (`recv`, `progress`, a send, or a later event past the window).
    ///
    /// [`Coalescing`]: crate::engine::Coalescing
    fn post_event(
        &self,
        source: &str,
        destination: &str,
        data: &[u8],
        opts: &SendOptions,
    ) -> Result<()> {
        if self.inner.check_route(source, destination, opts)? {
            // A zone requires sealing: sent on its own, encrypted.
            return self
                .inner
                .send(source, destination, data, opts, true)
                .map(drop);
        }
        let mut deadline = Deadline::after(opts.timeout);
        if self.inner.zones_active.load(Ordering::Acquire) {
            self.inner
                .pace((source, destination), data.len(), &mut deadline)?;
        }
        self.until_room(&mut deadline, destination, |e| {
            let src = e.hosted_index(source)?;
            let dst = e.resolve(destination)?;
            if let Some(failed) = e.take_failure(src, dst.index) {
                // Earlier events (or messages) of the pair were not delivered.
                return Err(failed);
            }
            let first = !e.has_spikes();
            let queued = e.coalesce(
                src,
                dst.index,
                opts.priority,
                opts.data_type,
                data,
                Instant::now(),
            )?;
            if queued && first && self.inner.running.load(Ordering::Acquire) {
                // Wake our engine thread if it sleeps: it sends the batch when the window
                // ends.
                self.inner.registry.ring_bell(src);
            }
            Ok(queued)
        })
    }

    /// Runs `attempt` under the engine lock until it succeeds (`Ok(true)`); while the ring
    /// toward `to` is full it drains this process's own rings (the peer may be waiting on
    /// us) and backs off, until the deadline.
    pub(super) fn until_room(
        &self,
        deadline: &mut Deadline,
        to: impl std::fmt::Display,
        mut attempt: impl FnMut(&mut Engine) -> Result<bool>,
    ) -> Result<()> {
        let mut backoff = Backoff::new();
        loop {
            {
                let mut e = lock(&self.inner.engine);
                if attempt(&mut e)? {
                    return Ok(());
                }
                e.drain();
            }
            if deadline.passed() {
                return Err(Error::Timeout(format!("ring to {to} stayed full")));
            }
            backoff.snooze();
        }
    }
}

impl Inner {
    /// Pushes every fragment of `body`, starting under the engine lock `e` the caller took
    /// (one lock for the common single-fragment send); the lock is released between
    /// fragments, so another thread's urgent message can go in between.
    pub(super) fn push<'a>(
        &'a self,
        e: MutexGuard<'a, Engine>,
        (src, dst): (u32, u32),
        o: &Outgoing<'_>,
        body: &[u8],
        deadline: &mut Deadline,
    ) -> Result<()> {
        let mut offset = 0;
        let r = self.push_from(e, (src, dst), o, body, deadline, &mut offset);
        if r.is_err() && offset > 0 {
            // Sent in part: the caller learns it from the error, not again from the stream.
            lock(&self.engine).abandon_message(src, dst, o);
        }
        r
    }

    /// [`push`](Self::push) from fragment `offset` on, which it advances.
    fn push_from<'a>(
        &'a self,
        mut e: MutexGuard<'a, Engine>,
        (src, dst): (u32, u32),
        o: &Outgoing<'_>,
        body: &[u8],
        deadline: &mut Deadline,
        offset: &mut usize,
    ) -> Result<()> {
        let mut backoff = Backoff::new();
        // While the ring stays full, whether the destination's process died is checked every
        // 10 ms (with or without background services): a dead reader never makes room.
        let mut next_check: Option<Instant> = None;
        loop {
            match e.try_send_from(src, dst, o, body, *offset)? {
                Some((_, true)) => {
                    if !self.running.load(std::sync::atomic::Ordering::Acquire) {
                        if let Ok(via) = e.via(src, dst) {
                            e.flush_toward(via, deadline.instant());
                        }
                    }
                    return Ok(());
                }
                Some((next, false)) => {
                    *offset = next;
                    backoff.reset();
                }
                // Full: drain our own inbound rings, the peer may be waiting on us.
                None => {
                    e.drain();
                    let now = Instant::now();
                    if now >= *next_check.get_or_insert(now) {
                        if e.destination_lost(dst) {
                            return Err(Error::NodeNotFound(format!(
                                "destination node {} is gone (its process died or it left the \
                                 fabric)",
                                e.name_for_errors(dst)
                            )));
                        }
                        next_check = Some(now + Duration::from_millis(10));
                    }
                    if deadline.passed() {
                        return Err(Error::Timeout(format!(
                            "no room toward node {} within the timeout (its ring, or what its \
                             stream may keep for resending, stayed full)",
                            e.name_for_errors(dst)
                        )));
                    }
                    drop(e);
                    backoff.snooze();
                    e = lock(&self.engine);
                    continue;
                }
            }
            drop(e);
            e = lock(&self.engine);
        }
    }

    /// The `post` of an endpoint through the engine whose ends and options need no check
    /// (see [`Endpoint::post`](super::Endpoint::post)): message `id`, one-way with default
    /// options, from hosted node index `src` to `dst`, pushed under one engine lock.
    pub(super) fn post_plain(&self, (src, dst): (u32, u32), id: u64, data: &[u8]) -> Result<()> {
        let opts = SendOptions::default();
        let mut deadline = Deadline::after(opts.timeout);
        let o = data_frame(&opts, id, true, &[], false);
        self.push(lock(&self.engine), (src, dst), &o, data, &mut deadline)
    }

    pub(super) fn endpoints(&self, source: &str, destination: &str) -> Result<(u32, Peer)> {
        let mut e = lock(&self.engine);
        let src = e.hosted_index(source)?;
        let dst = e.resolve(destination)?;
        Ok((src, dst))
    }

    /// Sends a data message (a request unless `one_way`): route check, metadata, framing
    /// when asked, then the push. A plain send takes the engine lock once. Returns the
    /// message id and the deadline, whose clock may have started.
    pub(super) fn send(
        &self,
        source: &str,
        destination: &str,
        data: &[u8],
        opts: &SendOptions,
        one_way: bool,
    ) -> Result<(u64, Deadline)> {
        let mut deadline = Deadline::after(opts.timeout);
        let must_seal = self.check_route(source, destination, opts)?;
        if self.zones_active.load(Ordering::Acquire) {
            self.pace((source, destination), data.len(), &mut deadline)?;
        }
        let opts = &*self.sealed_options(must_seal, opts)?;
        let framing = opts.compression_enabled || opts.encryption_enabled;
        // Not awaited when one-way, but fragments are reassembled by message id.
        let new_id = |e: &mut Engine, dst: &Peer| {
            if one_way {
                e.next_id()
            } else {
                e.new_request(dst)
            }
        };
        let (e, src, dst, metadata, body, framed, id) = if framing {
            // The id first: a sealed frame is bound to it.
            let (src, dst, id) = {
                let mut e = lock(&self.engine);
                let src = e.hosted_index(source)?;
                let dst = e.resolve(destination)?;
                let id = new_id(&mut e, &dst);
                (src, dst, id)
            };
            match self.prepare((src, &dst, id), (source, destination), data, opts) {
                Ok((metadata, body, framed)) => {
                    (lock(&self.engine), src, dst, metadata, body, framed, id)
                }
                Err(err) => {
                    lock(&self.engine).cancel(id);
                    return Err(err);
                }
            }
        } else {
            let metadata = encode_metadata(opts)?;
            let mut e = lock(&self.engine);
            let src = e.hosted_index(source)?;
            let dst = e.resolve(destination)?;
            let id = new_id(&mut e, &dst);
            (
                e,
                src,
                dst,
                metadata,
                std::borrow::Cow::Borrowed(data),
                false,
                id,
            )
        };
        let o = data_frame(opts, id, one_way, &metadata, framed);
        if let Err(err) = self.push(e, (src, dst.index), &o, &body, &mut deadline) {
            if !one_way {
                lock(&self.engine).cancel(id);
            }
            return Err(err);
        }
        Ok((id, deadline))
    }

    /// Drains this process's rings once (unless another thread holds the engine): a sender
    /// waiting for room must not keep a peer that waits for it from making progress.
    pub(super) fn drain(&self) {
        if let Some(mut e) = super::try_lock(&self.engine) {
            e.drain();
        }
    }

    /// Refuses, before anything is sent, a send whose route cannot meet its latency
    /// constraint, quantum rules or zone isolation. Sends without constraints skip it while
    /// no isolating zone exists; the others are answered from the routing tables'
    /// precomputed answers (`RoutingEngine::check_send`), never by a route search. Returns
    /// whether a QUANTUM_SECURE zone requires the send to be encrypted.
    pub(super) fn check_route(
        &self,
        source: &str,
        destination: &str,
        opts: &SendOptions,
    ) -> Result<bool> {
        let constraint = opts
            .latency_constraint_ns
            .or(self.options.default_latency_constraint_ns);
        let zoned = self.zones_active.load(Ordering::Acquire)
            || self.registry.zones_epoch() != self.zones_seen.load(Ordering::Acquire);
        if constraint.is_none()
            && !zoned
            && !opts.requires_quantum_entanglement
            && !opts.data_type.is_quantum()
        {
            return Ok(false);
        }
        sync_topology(self)?;
        let admitted = self.topology.routing().check_send(
            source,
            destination,
            &SendRequirements {
                data_type: opts.data_type,
                latency_constraint_ns: constraint,
                requires_quantum_entanglement: opts.requires_quantum_entanglement,
            },
        )?;
        Ok(admitted.must_encrypt)
    }
}
