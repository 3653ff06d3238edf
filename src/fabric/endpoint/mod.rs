//! Endpoints: a (source, destination) pair resolved once, with a ring of its own.
//!
//! An [`Endpoint`] owns the producing end of one ring into the destination node's mailbox
//! (`ep-<src>-<dst>-<pid>-<n>.<generation>` in the fabric directory, or process memory when
//! this process hosts the destination). Its sends take no lock, look nothing up by name, and
//! allocate nothing: the frame goes from the caller's bytes into the ring; above
//! [`INLINE_MAX`] the bytes are copied once into a chunk of this process's segment
//! and the frame names it. The destination's `recv` reads the ring in place. Messages of one
//! endpoint arrive in the order they were sent; give each sending thread its own endpoint.
//!
//! The frames are the engine's, so everything the protocol's sends do applies: latency
//! constraints, quantum rules and zone isolation are checked (only when one applies: without
//! constraints and isolating zones a send reads two atomics), compression and encryption
//! frame the message, requests are answered by handlers. When the route to the destination
//! goes through another node, the endpoint sends through the engine instead (the engine
//! routes), still in order; so does one whose route moved off the direct link after it was
//! made, until the route comes back (see [`reroute`]).

pub(super) mod named;
mod own;
mod push;
mod registered;
mod reroute;

use super::{
    data_frame, encode_metadata, lock, Deadline, HyperFabricProtocol, Inner, Request, SendOptions,
};
use crate::buffer::BufferManager;
use crate::engine::{fragment_limit, NodeName, Peer, Replies};
use crate::error::{Error, Result};
use crate::ring::{Producer, Region};
use crate::sys::process::Origin;
use crate::transport::channel::{reply_path, Lane, SegmentKey};
use own::OwnRing;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Data larger than this goes by descriptor (a chunk of this process's segment); smaller
/// data is copied through the endpoint's ring. Measured crossover on 2 vCPUs (near
/// placement, touched post/recv): 4 KiB 320 ns inline vs 466 by descriptor, 16 KiB 766 vs
/// 916, 32 KiB 1,988 vs 1,552 (a chunk's acquire, lending and return cost about 150 ns).
pub const INLINE_MAX: usize = 16 << 10;
/// Message ids an endpoint reserves at a time.
const ID_BLOCK: u64 = 4096;
/// How often a send waiting for room checks that the destination still lives.
const LIVENESS_CHECK: Duration = Duration::from_millis(10);

/// The ring an endpoint sends into.
enum Path {
    /// Its own ring to the destination.
    Own {
        producer: Producer<Region>,
        /// The ring's file (`None`: process memory).
        file: Option<PathBuf>,
    },
    /// Through the engine (the route to the destination has hops).
    Engine,
}

/// A resolved (source, destination) pair with a ring of its own: the protocol's fast path.
/// `Send` but not `Sync`: one thread sends through an endpoint at a time. Made by
/// [`HyperFabricProtocol::endpoint`].
pub struct Endpoint {
    inner: Arc<Inner>,
    src: u32,
    src_generation: u64,
    source: NodeName,
    dst: Peer,
    destination: NodeName,
    /// The process hosting the destination (pid, start time) when it is another process.
    dst_owner: Option<(u32, u64)>,
    /// The pid of the destination's process (this one's when it hosts the destination),
    /// which chunks sent by descriptor are lent to.
    lend_to: u32,
    path: Path,
    /// The answers to its requests (endpoints with a ring of their own).
    replies: Option<Arc<Replies>>,
    /// Whether a send with default options needs no check beyond the zones (no default
    /// latency constraint): `post` then takes its shortest way.
    plain_default: bool,
    /// The slot header of a compact frame of `post` (default options).
    post_header: crate::ring::SlotHeader,
    limit: usize,
    nodes_epoch: u64,
    /// The epoch of the nodes of other hosts under which the destination, when it is one
    /// of them, was last found live (see [`Endpoint::post`]).
    remote_epoch: u64,
    /// The routes epoch under which its way was last checked, and the one under which it
    /// found its destination no longer direct, while its ring drains (see [`reroute`]).
    routes_epoch: u64,
    leaving: Option<u64>,
    /// Whether a send through the engine took its bulk lane (LOW, BULK) since the endpoint
    /// last took a ring: that lane too must be drained before it takes one again.
    bulk_lane: bool,
    ids: std::ops::Range<u64>,
    chunks: [Option<(SegmentKey, BufferManager)>; 2],
    sent: (u64, u64),
    /// Whether the destination's process reads this one's memory (sends from registered
    /// memory), found at the first such send.
    cma: Option<bool>,
    /// Kept by a thread for sends by name (see [`named`]): its ring file is listed for
    /// removal with the protocol from the start.
    named: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("source", &self.source)
            .field("destination", &self.destination)
            .field("own_ring", &matches!(self.path, Path::Own { .. }))
            .finish_non_exhaustive()
    }
}

impl HyperFabricProtocol {
    /// An endpoint from hosted node `source` to `destination` (a live node of any process of
    /// the host): resolved now, with a ring of its own, so its sends skip every lookup and
    /// lock. `NodeNotFoundError` for an unknown node, `ZoneIsolationViolationError` when a
    /// zone forbids the pair.
    pub fn endpoint(&self, source: &str, destination: &str) -> Result<Endpoint> {
        self.inner.check_process()?;
        let inner = &self.inner;
        inner.sweep_left_rings();
        if let Some(why) = {
            super::sync_topology(inner)?;
            inner
                .topology
                .read(|t| t.isolation_violation(source, destination))
        } {
            return Err(Error::ZoneIsolationViolation(why));
        }
        let nodes_epoch = inner.registry.nodes_epoch();
        let remote_epoch = inner.remote_epoch();
        // Before the route is read: a move after it is seen at the first send.
        let routes_epoch = inner.routes_epoch();
        let mut e = lock(&inner.engine);
        let src = e.hosted_index(source)?;
        let src_generation = e.hosted_generation(src).unwrap_or(0);
        let dst = e.resolve(destination)?;
        let via = e.via(src, dst.index)?;
        let source = NodeName::intern(source);
        let destination = NodeName::intern(destination);
        let (path, dst_owner, replies) = if via != dst.index || e.over_tcp(via) {
            (Path::Engine, None, None)
        } else {
            let own = OwnRing::make(
                inner,
                &mut e,
                (src, src_generation),
                dst,
                (&source, &destination),
            )?;
            (own.path, own.owner, Some(own.replies))
        };
        let replies = replies.map(Arc::new);
        let ids = match &replies {
            Some(r) => e.reserve_ids_for(ID_BLOCK, r),
            None => e.reserve_ids(ID_BLOCK),
        };
        drop(e);
        if matches!(path, Path::Own { .. }) {
            // Wake the destination's engine: a node with a handler is served by it.
            inner.registry.ring_bell(dst.index);
        }
        Ok(Endpoint {
            inner: inner.clone(),
            src,
            src_generation,
            source,
            dst,
            destination,
            dst_owner,
            lend_to: dst_owner.map_or_else(crate::sys::process::pid, |(pid, _)| pid),
            path,
            replies,
            plain_default: inner.options.default_latency_constraint_ns.is_none(),
            post_header: crate::engine::compact_slot(
                &data_frame(&SendOptions::default(), 0, true, &[], false),
                src,
            ),
            limit: fragment_limit(Lane::Bulk, inner.options.max_packet_size as usize),
            nodes_epoch,
            remote_epoch,
            routes_epoch,
            leaving: None,
            bulk_lane: false,
            ids: ids..ids + ID_BLOCK,
            chunks: [None, None],
            sent: (0, 0),
            cma: None,
            named: false,
        })
    }
}

impl Endpoint {
    /// The source node.
    pub fn source(&self) -> &str {
        self.source.as_str()
    }

    /// The destination node.
    pub fn destination(&self) -> &str {
        self.destination.as_str()
    }

    /// The process of the protocol that made the endpoint (its ring has one producer: a
    /// `fork()` child must not send through it).
    pub fn origin(&self) -> Origin {
        self.inner.origin
    }

    /// One-way send of `data` with default options: returns once it is in the ring.
    #[inline]
    pub fn post(&mut self, data: &[u8]) -> Result<()> {
        // The common case in a few loads: this process, the same ends, no zone or default
        // constraint to check, room in the ring: one compact frame (no id, no options).
        if self.plain_default && self.inner.origin.is_current() && !self.inner.zoned() {
            if let Path::Own { producer, .. } = &mut self.path {
                if self.inner.registry.nodes_epoch() == self.nodes_epoch
                    && self.inner.routes_epoch() == self.routes_epoch
                    && data.len() <= self.limit
                    && data.len() <= INLINE_MAX
                    && producer.try_push(self.post_header, &[data]).is_ok()
                {
                    self.sent.0 += 1;
                    self.sent.1 += data.len() as u64;
                    self.inner.registry.ring_bell(self.dst.index);
                    return Ok(());
                }
            } else if self.inner.routes_epoch() == self.routes_epoch
                && self.check_ends().is_ok()
                && self.remote_current()
            {
                // Through the engine (another host, or hops), without looking either end
                // up by name: the ends are the ones resolved.
                self.inner.check_engine_free(self.destination.as_str())?;
                let id = self.next_id();
                return self.inner.post_plain((self.src, self.dst.index), id, data);
            }
        }
        self.post_with(data, &SendOptions::default())
    }

    /// Whether the destination, when it is a node of another host, is still the live
    /// registration the endpoint resolved (one atomic load while no node of another host
    /// changed).
    #[inline]
    fn remote_current(&mut self) -> bool {
        if !crate::transport::tcp::is_remote(self.dst.index) {
            return true;
        }
        let epoch = self.inner.remote_epoch();
        if epoch == self.remote_epoch {
            return true;
        }
        let live = self.inner.live_generation(self.dst.index) == Some(self.dst.generation);
        if live {
            self.remote_epoch = epoch;
        }
        live
    }

    /// One-way send with `opts` (priority, data type, metadata, compression, encryption,
    /// constraints and timeout as for [`HyperFabricProtocol::post`]; endpoints do not
    /// coalesce neuromorphic events: each is sent at once).
    pub fn post_with(&mut self, data: &[u8], opts: &SendOptions) -> Result<()> {
        self.inner.check_process()?;
        self.follow_routes();
        if matches!(self.path, Path::Engine) {
            return self.through_engine(data, opts, true).map(drop);
        }
        let id = self.next_id();
        self.send(id, data, opts, true)
    }

    /// One-way sends of every message of `batch`, in order, with default options: one check
    /// of the endpoint and one doorbell for the whole batch. Returns once all are in the
    /// ring (an error stops the batch: the messages before it were sent).
    pub fn post_many(&mut self, batch: &[&[u8]]) -> Result<()> {
        self.inner.check_process()?;
        let opts = SendOptions::default();
        self.follow_routes();
        if matches!(self.path, Path::Engine) || self.inner.zoned() {
            for data in batch {
                self.post_with(data, &opts)?;
            }
            return Ok(());
        }
        self.check_ends()?;
        for data in batch {
            let id = self.next_id();
            let o = data_frame(&opts, id, true, &[], false);
            self.push_quiet(&o, data, opts.timeout)?;
        }
        self.inner.registry.ring_bell(self.dst.index);
        Ok(())
    }

    /// `send_data` through the endpoint: waits for the response.
    pub fn send_data(&mut self, data: &[u8], opts: &SendOptions) -> Result<Vec<u8>> {
        self.inner.check_process()?;
        self.follow_routes();
        if matches!(self.path, Path::Engine) {
            return self.request_of(data, opts)?.wait();
        }
        let id = self.issue()?;
        self.send(id, data, opts, false)?;
        let replies = self.replies.as_deref().expect("issued above");
        self.inner
            .wait_reply(replies, id, &mut Deadline::after(opts.timeout))
    }

    /// Non-blocking `send_data` through the endpoint: returns once the request is in the
    /// ring, with a [`Request`] to test or wait for. Its timeout counts from this call.
    pub fn send_data_nb(&mut self, data: &[u8], opts: &SendOptions) -> Result<Request> {
        self.request_of(data, opts).map(Request::started)
    }

    /// [`send_data_nb`](Self::send_data_nb) without starting the request's clock (a
    /// blocking `send_data` starts it only if it has to wait).
    pub(in crate::fabric) fn request_of(
        &mut self,
        data: &[u8],
        opts: &SendOptions,
    ) -> Result<Request> {
        self.inner.check_process()?;
        self.follow_routes();
        if matches!(self.path, Path::Engine) {
            let (id, deadline) = self.through_engine(data, opts, false)?;
            return Ok(self.request(id, deadline));
        }
        let Some(replies) = self.replies.clone() else {
            return Err(Error::InvalidArgument("endpoint without reply ring".into()));
        };
        let id = self.issue()?;
        self.send(id, data, opts, false)?;
        Ok(Request::answered_by(
            self.inner.clone(),
            id,
            Deadline::after(opts.timeout),
            replies,
        ))
    }

    /// A fresh request id, recorded as issued where its answer arrives.
    #[inline]
    fn issue(&mut self) -> Result<u64> {
        let id = self.next_id();
        match &self.replies {
            Some(r) => r.issue(id),
            None => return Err(Error::InvalidArgument("endpoint without reply ring".into())),
        }
        Ok(id)
    }

    fn request(&self, id: u64, deadline: Deadline) -> Request {
        Request::new(self.inner.clone(), id, deadline)
    }

    fn through_engine(
        &mut self,
        data: &[u8],
        opts: &SendOptions,
        one_way: bool,
    ) -> Result<(u64, Deadline)> {
        self.inner.check_engine_free(self.destination.as_str())?;
        self.bulk_lane |= !opts.priority.is_latency_lane();
        self.inner.send(
            self.source.as_str(),
            self.destination.as_str(),
            data,
            opts,
            one_way,
        )
    }

    #[inline]
    fn next_id(&mut self) -> u64 {
        if let Some(id) = self.ids.next() {
            return id;
        }
        let first = {
            let mut e = lock(&self.inner.engine);
            match &self.replies {
                Some(r) => e.reserve_ids_for(ID_BLOCK, r),
                None => e.reserve_ids(ID_BLOCK),
            }
        };
        self.ids = first + 1..first + ID_BLOCK;
        first
    }

    /// Whether both ends are still the registrations the endpoint was made for (checked
    /// when the host's nodes changed: one atomic load otherwise).
    #[inline]
    fn check_ends(&mut self) -> Result<()> {
        let epoch = self.inner.registry.nodes_epoch();
        if epoch == self.nodes_epoch {
            return Ok(());
        }
        let reg = &self.inner.registry;
        if reg.get(self.src).map(|e| e.generation) != Some(self.src_generation) {
            return Err(Error::NodeNotFound(format!(
                "source node {} left the fabric",
                self.source
            )));
        }
        if self.inner.live_generation(self.dst.index) != Some(self.dst.generation) {
            return Err(Error::NodeNotFound(format!(
                "destination node {} left the fabric",
                self.destination
            )));
        }
        self.nodes_epoch = epoch;
        Ok(())
    }

    fn dst_alive(&self) -> bool {
        if crate::transport::tcp::is_remote(self.dst.index) {
            return self.inner.live_generation(self.dst.index) == Some(self.dst.generation);
        }
        self.dst.is_alive(&self.inner.registry, self.dst_owner)
    }

    /// Whether a send with `opts` has nothing to check, encode or frame: no metadata, codec,
    /// latency constraint (its own or the protocol's default) or quantum rule, and no zone
    /// that isolates.
    #[inline]
    fn plain(&self, opts: &SendOptions) -> bool {
        opts.metadata.is_none()
            && !(opts.compression_enabled || opts.encryption_enabled)
            && opts.latency_constraint_ns.is_none()
            && self.inner.options.default_latency_constraint_ns.is_none()
            && !opts.requires_quantum_entanglement
            && !opts.data_type.is_quantum()
            && !self.inner.zoned()
    }

    /// Checks, frames (when asked) and pushes one message through the own ring.
    #[inline]
    fn send(&mut self, id: u64, data: &[u8], opts: &SendOptions, one_way: bool) -> Result<()> {
        self.check_ends()?;
        if self.plain(opts) {
            // Nothing to check, encode or frame: the caller's bytes go into the ring.
            return self.push(
                &data_frame(opts, id, one_way, &[], false),
                data,
                opts.timeout,
            );
        }
        self.send_checked(id, data, opts, one_way)
    }

    /// [`Endpoint::send`] when a check, metadata or a codec frame applies.
    fn send_checked(
        &mut self,
        id: u64,
        data: &[u8],
        opts: &SendOptions,
        one_way: bool,
    ) -> Result<()> {
        let inner = &self.inner;
        let checked = opts.latency_constraint_ns.is_some()
            || inner.options.default_latency_constraint_ns.is_some()
            || opts.requires_quantum_entanglement
            || opts.data_type.is_quantum()
            || inner.zoned();
        let must_seal =
            checked && inner.check_route(self.source.as_str(), self.destination.as_str(), opts)?;
        if checked
            && inner
                .zones_active
                .load(std::sync::atomic::Ordering::Acquire)
        {
            let mut deadline = Deadline::after(opts.timeout);
            let ends = (self.source.as_str(), self.destination.as_str());
            inner.pace(ends, data.len(), &mut deadline)?;
        }
        let opts = &*inner.sealed_options(must_seal, opts)?;
        let (metadata, body, framed) = if opts.compression_enabled || opts.encryption_enabled {
            inner.prepare(
                (self.src, &self.dst, id),
                (&self.source, &self.destination),
                data,
                opts,
            )?
        } else {
            (
                encode_metadata(opts)?,
                std::borrow::Cow::Borrowed(data),
                false,
            )
        };
        self.push(
            &data_frame(opts, id, one_way, &metadata, framed),
            &body,
            opts.timeout,
        )
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if self.inner.check_process().is_err() {
            // A fork() child's copy: the ring and its file are the parent's.
            std::mem::forget(self.inner.clone());
            return;
        }
        if self.sent.0 > 0 {
            // Not waiting for the engine: a handler that drops an endpoint it kept does so
            // while the engine is held.
            match self.inner.engine.try_lock() {
                Ok(mut e) => e.count_sent(self.sent.0, self.sent.1),
                Err(_) => {
                    let later = &self.inner.sent_later;
                    later[0].fetch_add(self.sent.0, std::sync::atomic::Ordering::Relaxed);
                    later[1].fetch_add(self.sent.1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        if let Path::Own {
            mut producer,
            file: Some(file),
        } = std::mem::replace(&mut self.path, Path::Engine)
        {
            if self.named {
                self.inner.unlist(&file);
            }
            if producer.is_drained() {
                // The receiver keeps its mappings; nobody finds the rings again.
                remove_ring_files(&self.inner.registry, &file);
            } else {
                // The receiver may not have found the ring yet: its files stay until it took
                // everything (see `Inner::sweep_left_rings`), so what it holds is still read.
                lock(&self.inner.left_rings).push((file, producer));
            }
        }
    }
}

/// Removes an endpoint's ring file and its reply ring's, and tells the host that channels
/// changed: the receiver looks, and lets go of the rings once it took what they hold, and
/// observers of the directory (learned routing) stop reading them.
pub(super) fn remove_ring_files(
    registry: &crate::transport::registry::Registry,
    file: &std::path::Path,
) {
    let _ = std::fs::remove_file(file);
    if let Some(answers) = reply_path(file) {
        let _ = std::fs::remove_file(answers);
    }
    registry.bump_channels_epoch();
}

impl Inner {
    /// Removes the ring files of dropped endpoints whose receivers took everything since
    /// (the receiver then lets go of its mappings). Run whenever an endpoint is made, so
    /// threads that come and go leave at most the rings not read yet.
    pub(super) fn sweep_left_rings(&self) {
        let mut left = lock(&self.left_rings);
        if left.is_empty() {
            return;
        }
        left.retain_mut(|(file, producer)| {
            let drained = producer.is_drained();
            if drained {
                remove_ring_files(&self.registry, file);
            }
            !drained
        });
    }
}
