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
//! routes), still in order.

use super::{lock, Deadline, HyperFabricProtocol, Inner, Request, SendOptions};
use crate::buffer::BufferManager;
use crate::codec::FrameKind;
use crate::engine::{
    compact_slot, fragment_limit, push_fragment, NodeName, Outgoing, Peer, BULK_SLOTS, CHUNK_SIZE,
    FLAG_DESCRIPTOR, MSG_HEADER,
};
use crate::error::{Error, Result};
use crate::ring::{self, Producer, PushError, Region};
use crate::sync::Backoff;
use crate::sys::process::Origin;
use crate::transport::channel::{endpoint_path, Descriptor, Lane, SegmentKey};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    path: Path,
    limit: usize,
    nodes_epoch: u64,
    ids: std::ops::Range<u64>,
    chunks: [Option<(SegmentKey, BufferManager)>; 2],
    sent: (u64, u64),
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
        if let Some(why) = {
            super::sync_topology(inner)?;
            inner
                .topology
                .read(|t| t.isolation_violation(source, destination))
        } {
            return Err(Error::ZoneIsolationViolation(why));
        }
        let nodes_epoch = inner.registry.nodes_epoch();
        let mut e = lock(&inner.engine);
        let src = e.hosted_index(source)?;
        let src_generation = e.hosted_generation(src).unwrap_or(0);
        let dst = e.resolve(destination)?;
        let via = e.via(src, dst.index)?;
        let source = NodeName::intern(source);
        let destination = NodeName::intern(destination);
        let ids = e.reserve_ids(ID_BLOCK);
        let (path, dst_owner) = if via != dst.index {
            (Path::Engine, None)
        } else if let Some(mb) = e.mailbox_of(dst.index) {
            let (producer, consumer) = ring::split(Arc::new(Region::heap(BULK_SLOTS)?));
            mb.hand_over(src, source, consumer);
            (
                Path::Own {
                    producer,
                    file: None,
                },
                None,
            )
        } else {
            let entry = inner
                .registry
                .get(dst.index)
                .filter(|x| {
                    x.generation == dst.generation
                        && crate::sys::process::alive(x.owner_pid, x.owner_start)
                })
                .ok_or_else(|| {
                    Error::NodeNotFound(format!("node {destination} left the fabric"))
                })?;
            let n = inner
                .next_direct
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let file = endpoint_path(
                inner.registry.dir(),
                (src, dst.index, dst.generation),
                crate::sys::process::pid(),
                n,
            );
            let _ = std::fs::remove_file(&file);
            let region = Region::create_file(&file, BULK_SLOTS)?;
            let h = region.header();
            h.destination_generation
                .store(dst.generation, std::sync::atomic::Ordering::Relaxed);
            h.destination
                .store(dst.index as u64 + 1, std::sync::atomic::Ordering::Release);
            inner.registry.bump_channels_epoch();
            (
                Path::Own {
                    producer: ring::split(Arc::new(region)).0,
                    file: Some(file),
                },
                Some((entry.owner_pid, entry.owner_start)),
            )
        };
        drop(e);
        if path_is_own(&path) {
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
            path,
            limit: fragment_limit(Lane::Bulk, inner.options.max_packet_size as usize),
            nodes_epoch,
            ids: ids..ids + ID_BLOCK,
            chunks: [None, None],
            sent: (0, 0),
        })
    }
}

fn path_is_own(p: &Path) -> bool {
    matches!(p, Path::Own { .. })
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
        self.post_with(data, &SendOptions::default())
    }

    /// One-way send with `opts` (priority, data type, metadata, compression, encryption,
    /// constraints and timeout as for [`HyperFabricProtocol::post`]; endpoints do not
    /// coalesce neuromorphic events: each is sent at once).
    pub fn post_with(&mut self, data: &[u8], opts: &SendOptions) -> Result<()> {
        self.inner.check_process()?;
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
        let opts = SendOptions::default();
        if matches!(self.path, Path::Engine) || self.inner.zoned() {
            for data in batch {
                self.post_with(data, &opts)?;
            }
            return Ok(());
        }
        self.check_ends()?;
        for data in batch {
            let id = self.next_id();
            let o = Outgoing {
                kind: FrameKind::Data,
                request_id: id,
                priority: opts.priority,
                data_type: opts.data_type,
                one_way: true,
                metadata: &[],
                framed: false,
                coalesced: false,
            };
            self.push_quiet(&o, data, opts.timeout)?;
        }
        self.inner.registry.ring_bell(self.dst.index);
        Ok(())
    }

    /// `send_data` through the endpoint: waits for the response.
    pub fn send_data(&mut self, data: &[u8], opts: &SendOptions) -> Result<Vec<u8>> {
        self.send_data_nb(data, opts)?.wait()
    }

    /// Non-blocking `send_data` through the endpoint: returns once the request is in the
    /// ring, with a [`Request`] to test or wait for.
    pub fn send_data_nb(&mut self, data: &[u8], opts: &SendOptions) -> Result<Request> {
        self.inner.check_process()?;
        if matches!(self.path, Path::Engine) {
            let (id, deadline) = self.through_engine(data, opts, false)?;
            return Ok(self.request(id, deadline));
        }
        let id = lock(&self.inner.engine).new_request(&self.dst);
        let deadline = Deadline::after(opts.timeout);
        if let Err(e) = self.send(id, data, opts, false) {
            lock(&self.inner.engine).cancel(id);
            return Err(e);
        }
        Ok(self.request(id, deadline))
    }

    fn request(&self, id: u64, deadline: Deadline) -> Request {
        Request::new(self.inner.clone(), id, deadline)
    }

    fn through_engine(
        &self,
        data: &[u8],
        opts: &SendOptions,
        one_way: bool,
    ) -> Result<(u64, Deadline)> {
        super::send_through_engine(
            &self.inner,
            (self.source.as_str(), self.destination.as_str()),
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
        let first = lock(&self.inner.engine).reserve_ids(ID_BLOCK);
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
        if reg.get(self.dst.index).map(|e| e.generation) != Some(self.dst.generation) {
            return Err(Error::NodeNotFound(format!(
                "destination node {} left the fabric",
                self.destination
            )));
        }
        self.nodes_epoch = epoch;
        Ok(())
    }

    fn dst_alive(&self) -> bool {
        self.inner
            .registry
            .get(self.dst.index)
            .is_some_and(|e| e.generation == self.dst.generation)
            && self
                .dst_owner
                .is_none_or(|(pid, start)| crate::sys::process::alive(pid, start))
    }

    /// Checks, frames (when asked) and pushes one message through the own ring.
    #[inline]
    fn send(&mut self, id: u64, data: &[u8], opts: &SendOptions, one_way: bool) -> Result<()> {
        self.check_ends()?;
        let inner = &self.inner;
        let plain = opts.metadata.is_none()
            && !(opts.compression_enabled || opts.encryption_enabled)
            && opts.latency_constraint_ns.is_none()
            && inner.options.default_latency_constraint_ns.is_none()
            && !opts.requires_quantum_entanglement
            && !opts.data_type.is_quantum();
        if plain && !inner.zoned() {
            // Nothing to check, encode or frame: the caller's bytes go into the ring.
            let o = Outgoing {
                kind: FrameKind::Data,
                request_id: id,
                priority: opts.priority,
                data_type: opts.data_type,
                one_way,
                metadata: &[],
                framed: false,
                coalesced: false,
            };
            return self.push(&o, data, opts.timeout);
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
        let opts = &*inner.sealed_options(must_seal, opts)?;
        let (metadata, body, framed) = if opts.compression_enabled || opts.encryption_enabled {
            inner.prepare((self.src, &self.dst, id), data, opts)?
        } else {
            (
                super::encode_metadata(opts)?,
                std::borrow::Cow::Borrowed(data),
                false,
            )
        };
        let o = Outgoing {
            kind: FrameKind::Data,
            request_id: id,
            priority: opts.priority,
            data_type: opts.data_type,
            one_way,
            metadata: &metadata,
            framed,
            coalesced: false,
        };
        self.push(&o, &body, opts.timeout)
    }

    /// Pushes every fragment of `o.metadata ‖ body`, waiting while the ring is full, then
    /// rings the destination's doorbell.
    #[inline]
    fn push(&mut self, o: &Outgoing<'_>, body: &[u8], timeout: Duration) -> Result<()> {
        self.push_quiet(o, body, timeout)?;
        self.inner.registry.ring_bell(self.dst.index);
        Ok(())
    }

    /// [`Endpoint::push`] without the doorbell.
    #[inline]
    fn push_quiet(&mut self, o: &Outgoing<'_>, body: &[u8], timeout: Duration) -> Result<()> {
        let total = o.metadata.len() + body.len();
        if total > crate::engine::MAX_MESSAGE {
            return Err(Error::InvalidArgument(format!(
                "message of {total} bytes exceeds the largest message ({} bytes)",
                crate::engine::MAX_MESSAGE
            )));
        }
        // Inline only what one frame carries (a small `max_packet_size` lowers the bound).
        let by_descriptor =
            body.len() > INLINE_MAX.min(self.limit.max(crate::engine::DESCRIPTOR_THRESHOLD));
        if !by_descriptor && o.metadata.is_empty() && body.len() <= self.limit {
            // One inline fragment: header and bytes straight into the ring; a one-way plain
            // message as a compact frame (no message header: the ring says who to whom).
            if let Path::Own { producer, .. } = &mut self.path {
                let compact = o.one_way && o.kind == FrameKind::Data && !o.framed && !o.coalesced;
                let hdr = o.header(self.src, self.dst.index, 0, total);
                let pushed = if compact {
                    producer.try_push(compact_slot(o, self.src), &[body])
                } else {
                    producer.try_push(o.slot(self.src, 0), &[&hdr, body])
                };
                match pushed {
                    Ok(()) => {
                        self.sent.0 += 1;
                        self.sent.1 += total as u64;
                        return Ok(());
                    }
                    Err(PushError::Full) => {}
                    Err(PushError::Corrupt) => return Err(self.corrupt()),
                    Err(PushError::TooLarge) => {
                        return Err(Error::InvalidArgument(
                            "fragment exceeds the endpoint's ring".into(),
                        ))
                    }
                }
            }
        }
        let mut offset = 0;
        // Set on the first wait: a send that finds room reads no clock.
        let mut waiting: Option<(Instant, Instant)> = None;
        let mut backoff = Backoff::new();
        loop {
            let pushed = if by_descriptor {
                self.try_push_chunk(o, body, offset)?
            } else {
                None
            };
            let pushed = match pushed {
                Some(p) => p,
                None => self.try_push_inline(o, body, offset)?,
            };
            match pushed {
                Some(end) => {
                    self.sent.0 += 1;
                    self.sent.1 += (end - offset) as u64;
                    offset = end;
                    if end == total {
                        return Ok(());
                    }
                    backoff.reset();
                }
                None => {
                    self.wait_for_room(&mut waiting, timeout)?;
                    backoff.snooze();
                }
            }
        }
    }

    /// One inline fragment; `None` when the ring is full.
    fn try_push_inline(
        &mut self,
        o: &Outgoing<'_>,
        body: &[u8],
        offset: usize,
    ) -> Result<Option<usize>> {
        let Path::Own { producer, .. } = &mut self.path else {
            unreachable!("engine-path endpoints do not push themselves")
        };
        match push_fragment(
            producer,
            (self.src, self.dst.index),
            o,
            body,
            offset,
            self.limit,
        ) {
            Ok(end) => Ok(Some(end)),
            Err(PushError::Full) => Ok(None),
            Err(PushError::Corrupt) => Err(self.corrupt()),
            Err(PushError::TooLarge) => Err(Error::InvalidArgument(
                "fragment exceeds the endpoint's ring".into(),
            )),
        }
    }

    /// One descriptor fragment: the metadata not yet sent inline, up to [`CHUNK_SIZE`]
    /// bytes of data copied into a chunk. `Some(None)` when the ring is full, `None` when
    /// no chunk is free (the fragment then goes inline).
    fn try_push_chunk(
        &mut self,
        o: &Outgoing<'_>,
        body: &[u8],
        offset: usize,
    ) -> Result<Option<Option<usize>>> {
        let m = o.metadata.len();
        let inline = &o.metadata[offset.min(m)..];
        let ds = offset.saturating_sub(m);
        let de = body.len().min(ds + CHUNK_SIZE);
        {
            let Path::Own { producer, .. } = &mut self.path else {
                unreachable!("engine-path endpoints do not push themselves")
            };
            // Room first: a chunk filled for a full ring would be copied again.
            if !producer.has_room(MSG_HEADER + Descriptor::LEN + inline.len()) {
                if producer.is_corrupt() {
                    return Err(self.corrupt());
                }
                return Ok(Some(None));
            }
        }
        let class = usize::from(de - ds > crate::engine::SMALL_CHUNK_SIZE);
        if self.chunks[class].is_none() {
            self.chunks[class] = Some(lock(&self.inner.engine).chunk_pool(de - ds)?);
        }
        let (key, pool) = self.chunks[class].as_ref().expect("made above");
        let Ok(mut chunk) = pool.acquire() else {
            return Ok(None);
        };
        let n = de - ds;
        chunk.as_mut_slice()[..n].copy_from_slice(&body[ds..de]);
        chunk.set_len(n)?;
        let Ok((index, len)) = chunk.into_pooled() else {
            return Ok(None);
        };
        if let Some((pid, _)) = self.dst_owner {
            // If the destination's process dies holding the chunk, the engine takes it back.
            let _ = pool.lend(index, pid);
        }
        let total = m + body.len();
        let hdr = o.header(self.src, self.dst.index, offset, total);
        let desc = Descriptor {
            key: *key,
            index,
            len: len as u32,
        }
        .encode();
        let pool = pool.clone();
        let Path::Own { producer, .. } = &mut self.path else {
            unreachable!("engine-path endpoints do not push themselves")
        };
        match producer.try_push(o.slot(self.src, FLAG_DESCRIPTOR), &[&hdr, &desc, inline]) {
            Ok(()) => Ok(Some(Some(offset + inline.len() + len))),
            Err(e) => {
                let _ = pool.release_descriptor(&crate::buffer::BufferDescriptor {
                    index,
                    len: len as u32,
                });
                match e {
                    PushError::Corrupt => Err(self.corrupt()),
                    _ => Err(Error::InvalidArgument(
                        "descriptor frame did not fit the ring".into(),
                    )),
                }
            }
        }
    }

    /// The ring is full: drains this process's own rings (the destination may be waiting
    /// for us to read), checks every 10 ms that the destination lives, and fails at the
    /// deadline.
    fn wait_for_room(
        &mut self,
        waiting: &mut Option<(Instant, Instant)>,
        timeout: Duration,
    ) -> Result<()> {
        self.inner.drain();
        let now = Instant::now();
        let (end, check) = waiting.get_or_insert((now + timeout, now));
        if now >= *check {
            if !self.dst_alive() {
                return Err(Error::NodeNotFound(format!(
                    "destination node {} is gone (its process died or it left the fabric)",
                    self.destination
                )));
            }
            *check = now + LIVENESS_CHECK;
        }
        if now >= *end {
            return Err(Error::Timeout(format!(
                "ring to {} stayed full",
                self.destination
            )));
        }
        Ok(())
    }

    fn corrupt(&self) -> Error {
        Error::MalformedFrame(format!(
            "the receiver of {} found the endpoint's ring corrupt and dropped it",
            self.destination
        ))
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
            lock(&self.inner.engine).count_sent(self.sent.0, self.sent.1);
        }
        if let Path::Own {
            file: Some(file), ..
        } = &self.path
        {
            // The receiver keeps its mapping and reads what is left; nobody finds the ring
            // again.
            let _ = std::fs::remove_file(file);
        }
    }
}
