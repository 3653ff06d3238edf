//! The per-process engine: polls the inbound rings of the nodes this process hosts, delivers
//! requests to handlers or inboxes, answers pings, completes pending requests, and owns the
//! outbound rings. Driven by [`Engine::poll`], from the caller's thread or the background
//! service thread.
//!
//! Rings between two nodes of this process live in process memory; rings to and from nodes of
//! other processes are files in the fabric directory, created by the sending side, found by
//! the receiving side when the registry's channel epoch moves.

use crate::buffer::{BufferManager, Payload, ZeroCopyBuffer};
use crate::codec::FrameKind;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{DataType, NodeSignature, PacketPriority};
use crate::ring::{self, Consumer, Producer, PushError, Region, SlotHeader};
use crate::transport::channel::{
    parse_ring_name, ring_path, segment_path, Descriptor, Lane, SegmentKey, SegmentMaps,
};
use crate::transport::registry::{NodeEntry, Registry};
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

mod frame;
mod inbox;
mod lost;
pub mod mailbox;
mod reassembly;

pub(crate) use frame::push_fragment;
use frame::MsgHeader;
pub use frame::{lane_of, Outgoing};
pub use inbox::{INBOX_BYTES, INBOX_MESSAGES};
use mailbox::Mailbox;

/// Bytes of the message header inside a ring payload: destination (4), message id (8), hop
/// count, priority, data type, hop limit (1 each), body length (4), fragment offset (4),
/// origin (4), reserved (4). The slot header's source is the previous hop; the origin is the
/// node that sent the message.
pub const MSG_HEADER: usize = 32;
/// Hops a message may take.
pub const HOP_LIMIT: u8 = 16;
/// Slots of a latency-lane ring (32 KiB).
pub const LATENCY_SLOTS: usize = 512;
/// Slots of a bulk-lane ring (64 KiB). A pair of idle channels (both directions, both lanes,
/// with their header pages) takes 208 KiB of shared memory.
pub const BULK_SLOTS: usize = 1024;
/// Largest message (metadata + data), 1 GiB.
pub const MAX_MESSAGE: usize = 1 << 30;
/// Slot flag: no response expected.
pub const FLAG_ONE_WAY: u8 = 1;
/// Slot flag: the data is a codec frame (compressed and/or sealed), decoded on arrival.
pub const FLAG_FRAMED: u8 = 2;
/// Slot flag: after the message header comes a descriptor (segment key, buffer index, byte
/// count) of bytes in the sender's shared segment, then inline bytes; the fragment is the
/// inline bytes followed by the buffer's.
pub const FLAG_DESCRIPTOR: u8 = 4;
/// Slot flag: the data is a batch of coalesced events (see [`Outgoing::coalesced`]).
pub const FLAG_COALESCED: u8 = 8;
/// Largest event that is coalesced.
pub const SPIKE_EVENT_MAX: usize = 256;
/// Largest batch of coalesced events, in bytes.
const SPIKE_BATCH_BYTES: usize = 8 << 10;
/// Data larger than this travels by descriptor: copied once into a chunk of the sender's
/// segment, read in place by the receiver (below it, the copy through the ring is cheaper).
pub const DESCRIPTOR_THRESHOLD: usize = 2 << 10;
/// Bytes of a chunk of the engine's segment (the data one descriptor fragment carries).
pub const CHUNK_SIZE: usize = 1 << 20;
/// Chunks in the engine's segment of large chunks. The file is sparse: only written pages
/// take memory, and the free list hands out the most recently used chunk first.
pub const CHUNKS: usize = 64;
/// Bytes of a small chunk: data of at most this size takes one from the segment of small
/// chunks, so many messages in flight do not hold large chunks.
pub const SMALL_CHUNK_SIZE: usize = 64 << 10;
/// Chunks in the segment of small chunks (sparse too).
pub const SMALL_CHUNKS: usize = 256;
/// Interval of heartbeats and of failure detection.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
/// Heartbeats a node may miss before it is marked down (200 ms: an engine thread that a
/// loaded machine leaves unscheduled for a while is not a failed node).
pub const HEARTBEAT_MISSES: u32 = 20;
/// Interval of the owner-liveness check (dead processes' nodes are removed, requests to them
/// fail) while requests are pending.
const LIVENESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);
/// Interval of the owner-liveness check otherwise (it reads `/proc` for every peer).
const IDLE_LIVENESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// Bulk frames taken per ring per poll, after every latency-lane frame.
const BULK_BUDGET: usize = 4;

/// Largest message one send carries (fragmented across frames as needed).
pub fn max_message() -> usize {
    MAX_MESSAGE
}

/// Slots of a ring on `lane`.
fn lane_slots(lane: Lane) -> usize {
    match lane {
        Lane::Latency => LATENCY_SLOTS,
        Lane::Bulk => BULK_SLOTS,
    }
}

/// Largest fragment of body on `lane` for frames limited to `max_packet` bytes.
pub fn fragment_limit(lane: Lane, max_packet: usize) -> usize {
    (ring::max_payload(lane_slots(lane)) - MSG_HEADER)
        .min(max_packet.max(MSG_HEADER + 64) - MSG_HEADER)
}

/// A node id as delivered messages carry it: interned (each distinct id is stored once for
/// the life of the process), so naming the source and destination of a message costs neither
/// an allocation nor an atomic reference count.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(&'static str);

impl NodeName {
    /// The interned name `s`.
    pub fn intern(s: &str) -> NodeName {
        let s = s.split('\0').next().unwrap_or_default();
        static NAMES: std::sync::Mutex<Option<std::collections::HashSet<&'static str>>> =
            std::sync::Mutex::new(None);
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let set = names.get_or_insert_with(Default::default);
        if let Some(&n) = set.get(s) {
            return NodeName(n);
        }
        let n: &'static str = Box::leak(format!("{s}\0").into_boxed_str());
        // Stored with a NUL after the id (never inside: `s` was cut at one), so a pointer to
        // it is also a C string for the C API.
        let n = &n[..s.len()];
        set.insert(n);
        NodeName(n)
    }

    /// The id.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl From<&str> for NodeName {
    fn from(s: &str) -> NodeName {
        NodeName::intern(s)
    }
}

impl From<String> for NodeName {
    fn from(s: String) -> NodeName {
        NodeName::intern(&s)
    }
}

impl std::ops::Deref for NodeName {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl std::borrow::Borrow<str> for NodeName {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl std::fmt::Debug for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0, f)
    }
}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<str> for NodeName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for NodeName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for NodeName {
    fn eq(&self, other: &String) -> bool {
        self.0 == other.as_str()
    }
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Sending node id.
    pub source: NodeName,
    /// Receiving node id.
    pub destination: NodeName,
    /// Payload: owned, or (large messages and buffers sent by descriptor) read in place from
    /// the sender's shared segment, which gets the buffer back when the message is dropped.
    pub data: Payload,
    /// Kind of data.
    pub data_type: DataType,
    /// QoS class.
    pub priority: PacketPriority,
    /// Metadata sent with it (JSON object bytes; empty when none).
    pub metadata: Vec<u8>,
    /// Message id (requests: the id their response carries).
    pub request_id: u64,
    /// Whether the sender waits for a response.
    pub one_way: bool,
}

/// A live node of the host as the hot path needs it: where to send, and which registration
/// of that index (a new registration of the index is another node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Dense index.
    pub index: u32,
    /// Registration generation of the index.
    pub generation: u64,
}

/// A node's request handler: gets the message, returns the response payload.
pub type Handler = Box<dyn FnMut(&Message) -> Result<Vec<u8>> + Send>;

/// Decides at delivery whether a message from one node (id) to another, sealed or not, may be
/// delivered: `None` admits it, else the error kind and reason it is refused with.
pub type Admit = Box<dyn FnMut(&str, &str, bool) -> Option<(ErrorKind, String)> + Send>;

/// Gives the next hop from one node toward another (node ids), `None` when there is no route.
pub type Router = Box<dyn FnMut(&str, &str) -> Option<String> + Send>;

struct Hosted {
    id: NodeName,
    /// Registration generation (sealed frames for this node are bound to it).
    generation: u64,
    handler: Option<Handler>,
    mailbox: Arc<Mailbox>,
}

struct Inbound {
    src: u32,
    dst: u32,
    lane: Lane,
    consumer: Consumer<Region>,
}

struct Pending {
    dst: u32,
    dst_generation: u64,
    result: Option<Result<Vec<u8>>>,
    /// Woken when the result arrives (a `Future` waiting on the request).
    waker: Option<std::task::Waker>,
    /// When the request fails with a timeout, if it has a deadline.
    deadline: Option<std::time::Instant>,
}

impl Pending {
    fn complete(&mut self, result: Result<Vec<u8>>) {
        if self.result.is_none() {
            self.result = Some(result);
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }
}

/// Traffic counters of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// Messages pushed into rings.
    pub frames_sent: u64,
    /// Messages taken from rings.
    pub frames_received: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Inbound rings found corrupt (dropped; their sender gets `MalformedFrameError`).
    pub corrupt_channels: u64,
    /// Half-received messages freed before completion (sender gone, too many, or stale).
    pub abandoned_reassemblies: u64,
    /// Messages being reassembled now.
    pub reassemblies: u64,
    /// Bytes those hold.
    pub reassembly_bytes: u64,
}

/// The engine state of one process.
pub struct Engine {
    registry: Arc<Registry>,
    /// The hosted nodes' mailboxes, polled in turn.
    mailboxes: Vec<Arc<Mailbox>>,
    hosted: HashMap<u32, Hosted>,
    by_name: HashMap<String, u32>,
    peers: HashMap<String, NodeEntry>,
    peers_epoch: u64,
    out: HashMap<(u32, u32, Lane), Producer<Region>>,
    inbound: Vec<Inbound>,
    /// Inbound rings by (source, destination, lane), with the inode of their file (0 for
    /// rings in process memory): a new file under the same name is a new incarnation.
    opened: HashMap<(u32, u32, Lane), u64>,
    /// Registration generation of each remote destination when its rings were made.
    out_generation: HashMap<u32, u64>,
    /// Messages arriving in fragments.
    partial: reassembly::Reassembly,
    max_packet: usize,
    router: Option<Router>,
    admit: Option<Admit>,
    /// The registry entry whose doorbell wakes this engine (its first hosted node).
    bell: Option<u32>,
    names: HashMap<u32, NodeName>,
    names_epoch: u64,
    /// Next hops by (from, to); cleared when the host's nodes change.
    hops: HashMap<(u32, u32), u32>,
    channels_epoch: u64,
    pending: HashMap<u64, Pending>,
    next_request: u64,
    counters: Counters,
    opener: Option<crate::codec::Opener>,
    /// This process's segment of chunks for large messages, made on first use.
    chunks: [Option<(SegmentKey, BufferManager)>; 2],
    /// Segments mapped to read descriptors (this process's own included).
    segments: SegmentMaps,
    /// Keys of the segments this process created, by pool id.
    own_segments: HashMap<u64, SegmentKey>,
    start_time: u64,
    /// Neuromorphic events waiting, by (source, destination).
    spikes: HashMap<(u32, u32), SpikeBatch>,
    coalescing: Coalescing,
    /// Whether this engine writes heartbeats (its background thread runs).
    beating: bool,
    timers: Timers,
    /// Peers marked down (missed heartbeats), with the registration they had.
    down: HashMap<u32, u64>,
    /// Some inbound ring comes from a node that left and still holds messages.
    gone_inbound: bool,
}

/// A node whose heartbeats stopped (down) or came back (up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChange {
    /// Node id.
    pub node: String,
    /// Whether it is up now.
    pub up: bool,
}

/// When the periodic work of [`Engine::tick`] is next due.
#[derive(Debug)]
struct Timers {
    /// The clock at the last tick: a coarse time for what needs no precision per message.
    now: std::time::Instant,
    beat: std::time::Instant,
    detect: std::time::Instant,
    liveness: std::time::Instant,
}

/// Neuromorphic events waiting to go out together.
struct SpikeBatch {
    bytes: Vec<u8>,
    events: usize,
    since: std::time::Instant,
    priority: PacketPriority,
    data_type: DataType,
}

/// When events are coalesced: the first event waits at most `window` for others, and a batch
/// goes out at `max_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalescing {
    /// Longest wait of the first event of a batch.
    pub window: std::time::Duration,
    /// Events per batch at most (0 or 1: no coalescing).
    pub max_events: usize,
}

impl Default for Coalescing {
    /// 1 µs or 64 events.
    fn default() -> Coalescing {
        Coalescing {
            window: std::time::Duration::from_micros(1),
            max_events: 64,
        }
    }
}

/// What one attempt to send a chunk by descriptor did.
enum ChunkPush {
    /// Sent; the offset after the fragment.
    Sent(usize),
    /// The ring has no room now.
    Full,
    /// No free chunk: send this fragment through the ring instead.
    NoChunk,
}

/// A message's data while it is delivered: borrowed from the ring, or owned.
enum Body<'a> {
    Borrowed(&'a [u8]),
    Owned(Payload),
}

impl Body<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Borrowed(b) => b,
            Body::Owned(p) => p,
        }
    }

    fn into_payload(self) -> Payload {
        match self {
            Body::Borrowed(b) => Payload::copy_from(b),
            Body::Owned(p) => p,
        }
    }
}

impl Drop for Engine {
    /// Unlinks this process's segments (mappings of them stay valid where still held).
    fn drop(&mut self) {
        for m in &self.mailboxes {
            m.close();
        }
        for &key in self.own_segments.values() {
            let _ = std::fs::remove_file(segment_path(self.registry.dir(), key));
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("hosted", &self.hosted.len())
            .field("inbound", &self.inbound.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Engine {
    /// An engine on the registry of its fabric; `opener` decodes sealed frames; frames carry
    /// at most `max_packet` bytes.
    pub fn new(
        registry: Registry,
        opener: Option<crate::codec::Opener>,
        max_packet: usize,
    ) -> Engine {
        Engine {
            registry: Arc::new(registry),
            mailboxes: Vec::new(),
            hosted: HashMap::default(),
            by_name: HashMap::default(),
            peers: HashMap::default(),
            peers_epoch: u64::MAX,
            out: HashMap::default(),
            inbound: Vec::new(),
            opened: HashMap::default(),
            out_generation: HashMap::default(),
            partial: reassembly::Reassembly::default(),
            max_packet,
            router: None,
            admit: None,
            bell: None,
            names: HashMap::default(),
            names_epoch: u64::MAX,
            hops: HashMap::default(),
            channels_epoch: u64::MAX,
            pending: HashMap::default(),
            next_request: 1,
            counters: Counters::default(),
            opener,
            chunks: [None, None],
            segments: SegmentMaps::default(),
            own_segments: HashMap::default(),
            start_time: crate::sys::process::start_time(crate::sys::process::pid()).unwrap_or(0),
            spikes: HashMap::default(),
            coalescing: Coalescing::default(),
            beating: false,
            timers: Timers {
                now: std::time::Instant::now(),
                beat: std::time::Instant::now(),
                detect: std::time::Instant::now(),
                liveness: std::time::Instant::now(),
            },
            down: HashMap::default(),
            gone_inbound: false,
        }
    }

    /// Sets when neuromorphic events are coalesced.
    pub fn set_coalescing(&mut self, c: Coalescing) {
        self.coalescing = c;
    }

    /// The coalescing settings.
    pub fn coalescing(&self) -> Coalescing {
        self.coalescing
    }

    /// Queues a one-way neuromorphic event (at most [`SPIKE_EVENT_MAX`] bytes) from `src` to
    /// `dst` into the batch of that pair, which goes out as one frame when it holds
    /// `max_events` events, when its first event has waited `window` (checked here and by
    /// every poll), or before any other message of the pair. `Ok(false)`: the ring has no room
    /// for the full batch now (poll, then retry).
    pub fn coalesce(
        &mut self,
        src: u32,
        dst: u32,
        priority: PacketPriority,
        data_type: DataType,
        event: &[u8],
        now: std::time::Instant,
    ) -> Result<bool> {
        if event.len() > SPIKE_EVENT_MAX {
            return Err(Error::InvalidArgument(format!(
                "an event of {} bytes is too large to coalesce (at most {SPIKE_EVENT_MAX})",
                event.len()
            )));
        }
        let key = (src, dst);
        let flush_first = self.spikes.get(&key).is_some_and(|b| {
            b.priority != priority
                || b.data_type != data_type
                || b.bytes.len() + 4 + event.len() > SPIKE_BATCH_BYTES
                || now.duration_since(b.since) >= self.coalescing.window
        });
        if flush_first && !self.flush_batch(key)? {
            return Ok(false);
        }
        let b = self.spikes.entry(key).or_insert_with(|| SpikeBatch {
            bytes: Vec::with_capacity(1024),
            events: 0,
            since: now,
            priority,
            data_type,
        });
        b.bytes
            .extend_from_slice(&(event.len() as u32).to_le_bytes());
        b.bytes.extend_from_slice(event);
        b.events += 1;
        if b.events >= self.coalescing.max_events {
            // Queued either way; a full ring leaves the batch for the next poll.
            self.flush_batch(key)?;
        }
        Ok(true)
    }

    /// Sends the batch of a pair as one frame. `Ok(false)` when the ring is full (the batch
    /// stays).
    fn flush_batch(&mut self, key: (u32, u32)) -> Result<bool> {
        let Some(b) = self.spikes.remove(&key) else {
            return Ok(true);
        };
        let id = self.next_id();
        let o = Outgoing {
            kind: FrameKind::Data,
            request_id: id,
            priority: b.priority,
            data_type: b.data_type,
            one_way: true,
            metadata: &[],
            framed: false,
            coalesced: true,
        };
        match self.try_send_from(key.0, key.1, &o, &b.bytes, 0) {
            Ok(Some(_)) => Ok(true),
            Ok(None) => {
                self.spikes.insert(key, b);
                Ok(false)
            }
            Err(e) => {
                self.counters.errors += b.events as u64;
                Err(e)
            }
        }
    }

    /// Sends the batches whose window passed by `now` (every batch with `None`). Returns
    /// whether none is left behind by a full ring.
    pub fn flush_spikes(&mut self, now: Option<std::time::Instant>) -> bool {
        let due: Vec<(u32, u32)> = self
            .spikes
            .iter()
            .filter(|(_, b)| {
                now.is_none_or(|n| n.duration_since(b.since) >= self.coalescing.window)
            })
            .map(|(&k, _)| k)
            .collect();
        let mut all = true;
        for k in due {
            all &= self.flush_batch(k).unwrap_or(true);
        }
        all
    }

    /// Whether events wait to be coalesced.
    pub fn has_spikes(&self) -> bool {
        !self.spikes.is_empty()
    }

    /// Starts or stops heartbeats for the hosted nodes (stopping clears them, so peers judge
    /// the nodes by their process's liveness again instead of marking them down).
    pub fn set_beating(&mut self, on: bool) {
        self.beating = on;
        let now = if on { crate::sys::monotonic_ns() } else { 0 };
        for &i in self.hosted.keys() {
            self.registry.beat(i, now);
        }
        self.timers.beat = std::time::Instant::now() + HEARTBEAT_INTERVAL;
    }

    /// Periodic work, run by whoever drives the engine every few hundred polls: fails
    /// requests past their deadline, writes heartbeats (every [`HEARTBEAT_INTERVAL`], when
    /// beating), removes nodes of dead processes and fails requests to them (every 50 ms),
    /// and marks down the peers that missed [`HEARTBEAT_MISSES`] heartbeats (and up again
    /// when they resume). Returns the health changes, for the topology.
    pub fn tick(&mut self, now: std::time::Instant) -> Vec<HealthChange> {
        self.timers.now = now;
        self.expire(now);
        if self.beating && now >= self.timers.beat {
            let t = crate::sys::monotonic_ns();
            for &i in self.hosted.keys() {
                self.registry.beat(i, t);
            }
            self.timers.beat = now + HEARTBEAT_INTERVAL;
        }
        if now >= self.timers.liveness {
            self.fail_lost_peers();
            self.timers.liveness = now + IDLE_LIVENESS_INTERVAL;
        }
        if !self.pending.is_empty() {
            // Requests wait: check liveness often, so they fail fast when a peer dies.
            self.timers.liveness = self.timers.liveness.min(now + LIVENESS_INTERVAL);
        }
        if now < self.timers.detect {
            return Vec::new();
        }
        self.timers.detect = now + HEARTBEAT_INTERVAL;
        if !self.partial.is_empty() {
            self.partial.expire(now);
        }
        if self.gone_inbound {
            self.drop_gone_inbound();
        }
        if self.refresh_peers().is_err() {
            return Vec::new();
        }
        if !self.partial.is_empty() {
            // Half messages of a sender that is gone never complete.
            let (hosted, peers) = (&self.hosted, &self.peers);
            self.partial.retain_sources(|s| {
                hosted.contains_key(&s) || peers.values().any(|e| e.index == s)
            });
        }
        let limit = HEARTBEAT_INTERVAL.as_nanos() as u64 * HEARTBEAT_MISSES as u64;
        let t = crate::sys::monotonic_ns();
        let mut changes = Vec::new();
        for e in self.peers.values() {
            if self.hosted.contains_key(&e.index) {
                continue;
            }
            let beat = self.registry.heartbeat(e.index);
            let stale = beat != 0 && t.saturating_sub(beat) > limit;
            let was_down = self.down.get(&e.index) == Some(&e.generation);
            if stale != was_down {
                if stale {
                    self.down.insert(e.index, e.generation);
                } else {
                    self.down.remove(&e.index);
                }
                changes.push(HealthChange {
                    node: e.signature.node_id.clone(),
                    up: !stale,
                });
            }
        }
        // Nodes that left are no longer tracked.
        let peers = &self.peers;
        self.down
            .retain(|i, g| peers.values().any(|e| e.index == *i && e.generation == *g));
        if !changes.is_empty() {
            self.hops.clear();
        }
        changes
    }

    /// A pool of `pool_size` buffers of `buffer_size` bytes in a new shared segment of this
    /// process: its buffers can be sent to any node of the host by descriptor.
    pub fn create_pool(&mut self, pool_size: usize, buffer_size: usize) -> Result<BufferManager> {
        // Numbered per process, not per engine: two protocols of one process on one fabric
        // must not name (and so replace) each other's segments.
        static NEXT_SEGMENT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let key = SegmentKey {
            pid: crate::sys::process::pid(),
            n: NEXT_SEGMENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            start: self.start_time,
        };
        let path = segment_path(self.registry.dir(), key);
        let _ = std::fs::remove_file(&path);
        let pool =
            BufferManager::create_shared_tagged(&path, pool_size, buffer_size, key.to_tag())?;
        self.own_segments.insert(pool.pool_id(), key);
        self.segments.insert(key, pool.clone());
        Ok(pool)
    }

    /// Whether pool `pool_id` is a shared segment of this engine.
    pub fn owns_pool(&self, pool_id: u64) -> bool {
        self.own_segments.contains_key(&pool_id)
    }

    /// The segment of chunks that fits `len` bytes (made on first use).
    pub(crate) fn chunk_pool(&mut self, len: usize) -> Result<(SegmentKey, BufferManager)> {
        let (class, count, size) = if len <= SMALL_CHUNK_SIZE {
            (0, SMALL_CHUNKS, SMALL_CHUNK_SIZE)
        } else {
            (1, CHUNKS, CHUNK_SIZE)
        };
        if self.chunks[class].is_none() {
            let pool = self.create_pool(count, size)?;
            let key = self.own_segments[&pool.pool_id()];
            self.chunks[class] = Some((key, pool));
        }
        Ok(self.chunks[class].clone().expect("made above"))
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Traffic counters.
    pub fn counters(&self) -> Counters {
        Counters {
            abandoned_reassemblies: self.partial.abandoned(),
            reassemblies: self.partial.len() as u64,
            reassembly_bytes: self.partial.bytes() as u64,
            corrupt_channels: self.counters.corrupt_channels
                + self
                    .mailboxes
                    .iter()
                    .map(|m| m.corrupt_channels())
                    .sum::<u64>(),
            ..self.counters
        }
    }

    /// Registers a node hosted by this process.
    pub fn register(&mut self, node: &NodeSignature) -> Result<u32> {
        let index = self.registry.register(node)?;
        let generation = self.registry.get(index).map_or(0, |e| e.generation);
        let bell = *self.bell.get_or_insert(index);
        self.registry.set_bell(index, bell);
        let mailbox = Arc::new(Mailbox::new(
            self.registry.clone(),
            (index, generation),
            NodeName::from(node.node_id.as_str()),
        ));
        self.hosted.insert(
            index,
            Hosted {
                id: NodeName::from(node.node_id.as_str()),
                generation,
                handler: None,
                mailbox: mailbox.clone(),
            },
        );
        self.mailboxes.push(mailbox);
        self.by_name.insert(node.node_id.clone(), index);
        Ok(index)
    }

    /// Removes a node hosted by this process, its rings and its queued messages.
    pub fn unregister(&mut self, node_id: &str) -> Result<()> {
        let index = self.hosted_index(node_id)?;
        self.registry.unregister(index)?;
        if let Some(h) = self.hosted.remove(&index) {
            h.mailbox.close();
        }
        self.mailboxes.retain(|m| m.node() != index);
        self.by_name.remove(node_id);
        self.out.retain(|&(s, d, _), _| s != index && d != index);
        self.inbound.retain(|i| i.dst != index);
        self.opened.retain(|&(s, d, _), _| s != index && d != index);
        self.partial.drop_source(index);
        if self.bell == Some(index) {
            // Move the doorbell to a node that stays.
            self.bell = self.hosted.keys().next().copied();
            if let Some(b) = self.bell {
                for &i in self.hosted.keys() {
                    self.registry.set_bell(i, b);
                }
            }
        }
        Ok(())
    }

    /// The index of a node this process hosts.
    pub fn hosted_index(&self, node_id: &str) -> Result<u32> {
        self.by_name.get(node_id).copied().ok_or_else(|| {
            Error::NodeNotFound(format!("node {node_id:?} is not hosted by this process"))
        })
    }

    /// The registration generation of a node this process hosts.
    pub fn hosted_generation(&self, index: u32) -> Option<u64> {
        self.hosted.get(&index).map(|h| h.generation)
    }

    /// The opener of sealed frames (its counters of refused frames), if a key is set.
    pub fn opener(&self) -> Option<&crate::codec::Opener> {
        self.opener.as_ref()
    }

    /// Ids of the nodes this process hosts.
    pub fn hosted_ids(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// Sets (or clears) a node's request handler.
    pub fn set_handler(&mut self, node_id: &str, handler: Option<Handler>) -> Result<()> {
        let i = self.hosted_index(node_id)?;
        let h = self.hosted.get_mut(&i).expect("indexed");
        h.mailbox.set_handled(handler.is_some());
        h.handler = handler;
        Ok(())
    }

    /// Takes the oldest queued message of a hosted node.
    pub fn take_inbox(&mut self, node_id: &str) -> Result<Option<Message>> {
        let i = self.hosted_index(node_id)?;
        Ok(self.hosted.get(&i).expect("indexed").mailbox.next_queued())
    }

    /// The mailbox of a hosted node: `recv` takes from it without the engine.
    pub fn mailbox(&self, node_id: &str) -> Result<Arc<Mailbox>> {
        let i = self.hosted_index(node_id)?;
        Ok(self.hosted.get(&i).expect("indexed").mailbox.clone())
    }

    /// The mailbox of hosted node `index`.
    pub fn mailbox_of(&self, index: u32) -> Option<Arc<Mailbox>> {
        self.hosted.get(&index).map(|h| h.mailbox.clone())
    }

    /// Handles a frame a mailbox did not deliver itself (see [`Mailbox::take`]).
    pub fn dispatch_frame(&mut self, at: u32, h: SlotHeader, payload: &[u8]) {
        self.dispatch(at, h, payload);
    }

    /// The registry entry whose doorbell wakes this engine, once it hosts a node.
    pub fn bell(&self) -> Option<u32> {
        self.bell
    }

    /// Sets the router that picks next hops (without one, every destination is direct).
    pub fn set_router(&mut self, router: Option<Router>) {
        self.router = router;
        self.hops.clear();
    }

    /// Sets (or clears) the delivery check of data messages.
    pub fn set_admit(&mut self, admit: Option<Admit>) {
        self.admit = admit;
    }

    /// Forgets cached next hops (after a topology change).
    pub fn clear_routes(&mut self) {
        self.hops.clear();
    }

    /// The id of node `index`, from a cache that is dropped whenever the host's nodes change
    /// (reading the registry entry decodes its signature: too slow for every message).
    fn name_of(&mut self, index: u32) -> NodeName {
        let epoch = self.registry.nodes_epoch();
        if epoch != self.names_epoch {
            self.names.clear();
            self.names_epoch = epoch;
        }
        if let Some(n) = self.names.get(&index) {
            return *n;
        }
        let name = NodeName::from(self.id_of(index).unwrap_or_else(|| format!("#{index}")));
        self.names.insert(index, name);
        name
    }

    fn id_of(&self, index: u32) -> Option<String> {
        self.hosted
            .get(&index)
            .map(|h| h.id.to_string())
            .or_else(|| {
                self.peers
                    .values()
                    .find(|e| e.index == index)
                    .map(|e| e.signature.node_id.clone())
            })
            .or_else(|| self.registry.get(index).map(|e| e.signature.node_id))
    }

    /// The next hop from `from` toward `to`: `to` itself without a router, else the router's
    /// answer (cached), `None` when it knows no route.
    fn next_hop(&mut self, from: u32, to: u32) -> Option<u32> {
        if self.router.is_none() || from == to {
            return Some(to);
        }
        let _ = self.refresh_peers();
        if let Some(&h) = self.hops.get(&(from, to)) {
            return Some(h);
        }
        let next = match (self.id_of(from), self.id_of(to)) {
            (Some(f), Some(t)) => {
                let router = self.router.as_mut().expect("checked above");
                router(&f, &t).and_then(|n| {
                    self.by_name
                        .get(&n)
                        .copied()
                        .or_else(|| self.peers.get(&n).map(|e| e.index))
                })
            }
            _ => None,
        };
        if let Some(hop) = next {
            self.hops.insert((from, to), hop);
        }
        next
    }

    /// The next hop from `src` toward `dst`, or `NoRouteFoundError`.
    pub(crate) fn via(&mut self, src: u32, dst: u32) -> Result<u32> {
        self.next_hop(src, dst).ok_or_else(|| {
            Error::NoRouteFound(format!(
                "no route from node index {src} to node index {dst}"
            ))
        })
    }

    fn refresh_peers(&mut self) -> Result<()> {
        let epoch = self.registry.nodes_epoch();
        if epoch != self.peers_epoch {
            self.hops.clear();
            let before: Vec<(u32, u64, u32, u64)> = self
                .peers
                .values()
                .map(|e| (e.index, e.generation, e.owner_pid, e.owner_start))
                .collect();
            self.peers = self
                .registry
                .list()?
                .into_iter()
                .map(|e| (e.signature.node_id.clone(), e))
                .collect();
            self.peers_epoch = epoch;
            self.forget_gone_peers(&before);
            // Rings to a destination that left, or came back as a new registration, lead
            // nowhere: drop them so the next send makes new ones.
            let live: HashMap<u32, u64> = self
                .peers
                .values()
                .map(|e| (e.index, e.generation))
                .collect();
            let stale: Vec<u32> = self
                .out_generation
                .iter()
                .filter(|(d, g)| live.get(d) != Some(g))
                .map(|(&d, _)| d)
                .collect();
            for d in stale {
                self.out_generation.remove(&d);
                self.out.retain(|&(_, dst, _), _| dst != d);
            }
        }
        Ok(())
    }

    /// Every live node of the host, by id.
    pub fn peers(&mut self) -> Result<&HashMap<String, NodeEntry>> {
        self.refresh_peers()?;
        Ok(&self.peers)
    }

    /// The registry entry of any live node of the host.
    pub fn resolve(&mut self, node_id: &str) -> Result<Peer> {
        self.refresh_peers()?;
        self.peers
            .get(node_id)
            .map(|e| Peer {
                index: e.index,
                generation: e.generation,
            })
            .ok_or_else(|| {
                Error::NodeNotFound(format!("node {node_id:?} is not registered in this fabric"))
            })
    }

    /// A fresh message id (one-way messages need one too: fragments are reassembled by it).
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    /// Counts frames and payload bytes an endpoint pushed into its own ring.
    pub fn count_sent(&mut self, frames: u64, bytes: u64) {
        self.counters.frames_sent += frames;
        self.counters.bytes_sent += bytes;
    }

    /// Whether this process hosts node `index`.
    pub fn hosts(&self, index: u32) -> bool {
        self.hosted.contains_key(&index)
    }

    /// Reserves `n` consecutive message ids (an endpoint's block); returns the first.
    pub fn reserve_ids(&mut self, n: u64) -> u64 {
        let id = self.next_request;
        self.next_request += n;
        id
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

    fn producer(&mut self, src: u32, dst: u32, lane: Lane) -> Result<&mut Producer<Region>> {
        if !self.out.contains_key(&(src, dst, lane)) {
            let slots = lane_slots(lane);
            let producer = if self.hosted.contains_key(&dst) {
                let (p, c) = ring::split(Arc::new(Region::heap(slots)?));
                self.inbound.push(Inbound {
                    src,
                    dst,
                    lane,
                    consumer: c,
                });
                self.opened.insert((src, dst, lane), 0);
                p
            } else {
                let path = ring_path(self.registry.dir(), src, dst, lane);
                // A file left by an earlier holder of this index is stale.
                let _ = std::fs::remove_file(&path);
                let region = Region::create_file(&path, slots)?;
                // Always recorded, so the ring is dropped once the index holds another
                // registration (a reply to a node this engine never looked up would otherwise
                // keep going to the ring of the index's earlier holder). A destination that
                // is not live gets a generation no entry has: dropped at the next change.
                let g = self.registry.get(dst).map_or(u64::MAX, |e| e.generation);
                self.out_generation.insert(dst, g);
                self.registry.bump_channels_epoch();
                ring::split(Arc::new(region)).0
            };
            self.out.insert((src, dst, lane), producer);
        }
        Ok(self.out.get_mut(&(src, dst, lane)).expect("inserted"))
    }

    /// The pid of the process hosting node `index` when it is another process of the host.
    pub(crate) fn owner_of(&self, index: u32) -> Option<u32> {
        if self.hosted.contains_key(&index) {
            return None;
        }
        self.peers
            .values()
            .find(|e| e.index == index)
            .map(|e| e.owner_pid)
    }

    /// Pushes the fragment of the body `o.metadata ‖ data` that starts at `offset`, on the
    /// lane of `o.priority`. Returns the offset after it and whether the message is complete,
    /// or `None` when the ring is full (poll, then retry). A message that fits one frame is
    /// one fragment.
    pub fn try_send_from(
        &mut self,
        src: u32,
        dst: u32,
        o: &Outgoing<'_>,
        data: &[u8],
        offset: usize,
    ) -> Result<Option<(usize, bool)>> {
        let total = o.metadata.len() + data.len();
        if total > MAX_MESSAGE {
            return Err(Error::InvalidArgument(format!(
                "message of {total} bytes exceeds the largest message ({MAX_MESSAGE} bytes)"
            )));
        }
        // Events queued for this pair go first: nothing overtakes them.
        if offset == 0
            && !o.coalesced
            && !self.spikes.is_empty()
            && !self.flush_batch((src, dst))?
        {
            return Ok(None);
        }
        let lane = lane_of(o.priority);
        let by_descriptor = data.len() > DESCRIPTOR_THRESHOLD
            && matches!(o.kind, FrameKind::Data | FrameKind::Response);
        if by_descriptor {
            match self.try_push_chunk(src, dst, o, data, offset)? {
                ChunkPush::Sent(end) => return Ok(Some((end, end == total))),
                ChunkPush::Full => return Ok(None),
                ChunkPush::NoChunk => {}
            }
        }
        let limit = fragment_limit(lane, self.max_packet);
        let via = self.via(src, dst)?;
        let p = self.producer(src, via, lane)?;
        match push_fragment(p, (src, dst), o, data, offset, limit) {
            Ok(end) => {
                self.registry.ring_bell(via);
                self.counters.frames_sent += 1;
                self.counters.bytes_sent += (end - offset) as u64;
                Ok(Some((end, end == total)))
            }
            Err(PushError::Full) => Ok(None),
            Err(PushError::Corrupt) => Err(self.drop_corrupt(src, via, lane)),
            Err(PushError::TooLarge) => {
                Err(Error::InvalidArgument("fragment exceeds the ring".into()))
            }
        }
    }

    /// Sends the fragment at `offset` by descriptor: the metadata not yet sent travels
    /// inline, up to [`CHUNK_SIZE`] bytes of data are copied into a chunk of this process's
    /// segment.
    fn try_push_chunk(
        &mut self,
        src: u32,
        dst: u32,
        o: &Outgoing<'_>,
        data: &[u8],
        offset: usize,
    ) -> Result<ChunkPush> {
        let m = o.metadata.len();
        let inline = &o.metadata[offset.min(m)..];
        let ds = offset.saturating_sub(m);
        let de = data.len().min(ds + CHUNK_SIZE);
        let via = self.via(src, dst)?;
        let lane = lane_of(o.priority);
        // Room first: a chunk filled for a full ring would be copied again.
        let p = self.producer(src, via, lane)?;
        if !p.has_room(MSG_HEADER + Descriptor::LEN + inline.len()) {
            if p.is_corrupt() {
                return Err(self.drop_corrupt(src, via, lane));
            }
            return Ok(ChunkPush::Full);
        }
        let (key, pool) = self.chunk_pool(de - ds)?;
        let Ok(mut chunk) = pool.acquire() else {
            return Ok(ChunkPush::NoChunk);
        };
        let n = de - ds;
        chunk.as_mut_slice()[..n].copy_from_slice(&data[ds..de]);
        chunk.set_len(n)?;
        let Ok((index, len)) = chunk.into_pooled() else {
            return Ok(ChunkPush::NoChunk);
        };
        let end = offset + inline.len() + len;
        let total = m + data.len();
        self.push_descriptor(
            (src, via, dst),
            o,
            (offset, total),
            (key, index, len),
            inline,
            &pool,
        )?;
        Ok(ChunkPush::Sent(end))
    }

    /// Pushes a descriptor fragment of a message of `total` bytes (room checked by the
    /// caller). On failure the buffer goes back to `pool`.
    fn push_descriptor(
        &mut self,
        (src, via, dst): (u32, u32, u32),
        o: &Outgoing<'_>,
        (offset, total): (usize, usize),
        (key, index, len): (SegmentKey, u32, usize),
        inline: &[u8],
        pool: &BufferManager,
    ) -> Result<()> {
        let hdr = o.header(src, dst, offset, total);
        let desc = Descriptor {
            key,
            index,
            len: len as u32,
        }
        .encode();
        let slot = o.slot(src, FLAG_DESCRIPTOR);
        let lane = lane_of(o.priority);
        // Lent to the destination's process (forwarders pass the descriptor on untouched):
        // if it dies holding the buffer, this engine takes it back.
        if let Some(pid) = self.owner_of(dst) {
            let _ = pool.lend(index, pid);
        }
        let pushed = self
            .producer(src, via, lane)
            .map(|p| p.try_push(slot, &[&hdr, &desc, inline]));
        match pushed {
            Ok(Ok(())) => {
                self.registry.ring_bell(via);
                self.counters.frames_sent += 1;
                self.counters.bytes_sent += (inline.len() + len) as u64;
                Ok(())
            }
            other => {
                let _ = pool.release_descriptor(&crate::buffer::BufferDescriptor {
                    index,
                    len: len as u32,
                });
                match other {
                    Err(e) => Err(e),
                    _ => Err(Error::InvalidArgument(
                        "descriptor frame did not fit the ring".into(),
                    )),
                }
            }
        }
    }

    /// Sends a buffer of a pool made by [`Engine::create_pool`] by descriptor (metadata
    /// inline). `Ok(false)` when the ring has no room now (the buffer stays in `buf`); on
    /// success the receiver owns the buffer and returns it to the pool.
    pub fn try_send_buffer(
        &mut self,
        src: u32,
        dst: u32,
        o: &Outgoing<'_>,
        buf: &mut Option<ZeroCopyBuffer>,
    ) -> Result<bool> {
        let Some(b) = buf.as_ref() else {
            return Err(Error::InvalidArgument("no buffer to send".into()));
        };
        let key = b
            .pool_id()
            .and_then(|id| self.own_segments.get(&id).copied())
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "the buffer does not come from a shared pool of this protocol".into(),
                )
            })?;
        let pool = self
            .segments
            .get(&key)
            .expect("own segments are mapped")
            .clone();
        let via = self.via(src, dst)?;
        let lane = lane_of(o.priority);
        let p = self.producer(src, via, lane)?;
        if !p.has_room(MSG_HEADER + Descriptor::LEN + o.metadata.len()) {
            if p.is_corrupt() {
                return Err(self.drop_corrupt(src, via, lane));
            }
            return Ok(false);
        }
        let b = buf.take().expect("checked above");
        let (index, len) = b
            .into_pooled()
            .map_err(|_| Error::InvalidArgument("the buffer is not pooled".into()))?;
        let total = o.metadata.len() + len;
        self.push_descriptor(
            (src, via, dst),
            o,
            (0, total),
            (key, index, len),
            o.metadata,
            &pool,
        )?;
        Ok(true)
    }

    fn discover(&mut self) {
        let Some(rd) = self.registry.channels_changed(&mut self.channels_epoch) else {
            return;
        };
        for e in rd.flatten() {
            let Some((src, dst, lane)) = e.file_name().to_str().and_then(parse_ring_name) else {
                continue;
            };
            if !self.hosted.contains_key(&dst) {
                continue;
            }
            let ino = e
                .metadata()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .unwrap_or(0);
            let key = (src, dst, lane);
            match self.opened.get(&key) {
                Some(&known) if known == ino => continue,
                // The sender restarted under the same index: its old ring is gone.
                Some(_) => self.inbound.retain(|i| (i.src, i.dst, i.lane) != key),
                None => {}
            }
            if let Ok(region) = Region::open_file(&e.path()) {
                self.inbound.push(Inbound {
                    src,
                    dst,
                    lane,
                    consumer: ring::split(Arc::new(region)).1,
                });
                self.opened.insert(key, ino);
            }
            self.forget_stale_rings_to(src);
        }
    }

    /// Drops the rings to `node` made for an earlier registration of its index. A new ring
    /// from `node` may come from a new registration, which replies must reach, and sends do
    /// not check the registry's nodes epoch (replies would otherwise go to the ring of the
    /// index's earlier holder until the next periodic refresh).
    fn forget_stale_rings_to(&mut self, node: u32) {
        let Some(&made_for) = self.out_generation.get(&node) else {
            return;
        };
        if self.registry.get(node).map(|e| e.generation) != Some(made_for) {
            self.out_generation.remove(&node);
            self.out.retain(|&(_, dst, _), _| dst != node);
        }
    }

    /// One pass over the inbound rings: delivers what arrived, each frame read in place in
    /// its ring. Returns how many messages.
    pub fn poll(&mut self) -> usize {
        self.discover();
        if !self.spikes.is_empty() {
            self.flush_spikes(Some(std::time::Instant::now()));
        }
        // Rings made while delivering (replies between nodes of this process) land in
        // `self.inbound` and join the others after the pass.
        let mut inbound = std::mem::take(&mut self.inbound);
        let mut n = 0;
        let mut corrupt = false;
        // Latency lanes first and fully (up to 64 frames a ring), then a few frames of each
        // bulk lane: an urgent message never waits behind a bulk transfer.
        for pass in [Lane::Latency, Lane::Bulk] {
            let budget = if pass == Lane::Latency {
                64
            } else {
                BULK_BUDGET
            };
            for i in inbound.iter_mut().filter(|i| i.lane == pass) {
                let at = i.dst;
                if self.hosted.get(&at).is_some_and(|h| h.mailbox.is_full()) {
                    // Back-pressure: the reader of `at` is behind.
                    continue;
                }
                for _ in 0..budget {
                    match i.consumer.try_pop(|h, d| self.dispatch(at, h, d)) {
                        Ok(Some(())) => n += 1,
                        Ok(None) => break,
                        Err(_) => {
                            corrupt = true;
                            break;
                        }
                    }
                }
            }
        }
        if corrupt {
            // The ring is marked in its header (its producer is refused from now on) and is
            // not read again; `opened` keeps its inode so it is not picked up again.
            let before = inbound.len();
            inbound.retain(|i| i.consumer.corruption().is_none());
            self.counters.corrupt_channels += (before - inbound.len()) as u64;
            self.counters.errors += (before - inbound.len()) as u64;
        }
        inbound.append(&mut self.inbound);
        self.inbound = inbound;
        n + self.poll_mailboxes(false)
    }

    /// [`Engine::poll`], and the endpoint rings of nodes without handler too (their
    /// messages join the nodes' queues): for a sender waiting for room, whose peer may be
    /// waiting for this process to read.
    pub fn drain(&mut self) -> usize {
        self.poll() + self.poll_mailboxes(true)
    }

    /// Takes what the endpoint rings of hosted nodes with handlers hold (`all`, or when the
    /// engine's own thread runs: of every hosted node), through the full dispatch (handlers, replies, forwarding; data for
    /// `recv` joins the node's queue). Nodes without handler are otherwise left to `recv`,
    /// which reads their rings in place; a mailbox that a `recv` is polling now is skipped.
    fn poll_mailboxes(&mut self, all: bool) -> usize {
        if self.mailboxes.is_empty() {
            return 0;
        }
        let mailboxes = std::mem::take(&mut self.mailboxes);
        let mut n = 0;
        for mb in &mailboxes {
            // With its own thread, the engine serves every node (requests to a node without
            // handler need their receipt even while nobody is in `recv`).
            if !mb.is_handled() && (!(all || self.beating) || mb.is_full()) {
                continue;
            }
            let Some(mut rings) = mb.try_rings() else {
                continue;
            };
            for _ in 0..64 {
                let took = mb.take(
                    &mut rings,
                    false,
                    &mut |at, h, d| self.dispatch(at, h, d),
                    &mut mailbox::Sink::Message(None),
                );
                if !took {
                    break;
                }
                n += 1;
            }
        }
        // Nodes registered while delivering joined `self.mailboxes`.
        let mut added = std::mem::replace(&mut self.mailboxes, mailboxes);
        self.mailboxes.append(&mut added);
        n
    }

    /// Handles one frame that arrived at hosted node `at`: forwards it when it is for another
    /// node, else delivers it.
    fn dispatch(&mut self, at: u32, h: SlotHeader, payload: &[u8]) {
        if payload.len() < MSG_HEADER {
            return;
        }
        self.counters.frames_received += 1;
        let m = MsgHeader::decode(payload);
        let dst = m.dst;
        // A frame for another node travels on along its route, even when this process hosts
        // that node too (the hop is real: a ring between the two nodes).
        if dst != at {
            self.forward(at, h, payload);
            return;
        }
        // Replies and errors go back to the origin, not to the previous hop.
        let h = SlotHeader { src: m.origin, ..h };
        let request_id = m.id;
        let priority = m.priority();
        let data_type = DataType::from_u32(m.data_type as u32).unwrap_or_default();
        let (total, offset) = (m.total as usize, m.offset as usize);
        let one_way = h.flags & FLAG_ONE_WAY != 0;
        // The fragment: bytes in the ring, then (descriptor frames) bytes in a buffer of the
        // sender's segment, which this payload now owns.
        let (inline, shared) = if h.flags & FLAG_DESCRIPTOR != 0 {
            match self.take_descriptor(&payload[MSG_HEADER..]) {
                Ok((inline, shared)) => (inline, Some(shared)),
                Err(e) => {
                    self.counters.errors += 1;
                    if !one_way && FrameKind::from_u8(h.kind) == Some(FrameKind::Data) {
                        self.answer_error(dst, h.src, request_id, e.kind(), &e.to_string());
                    }
                    return;
                }
            }
        } else {
            (&payload[MSG_HEADER..], None)
        };
        let fragment_len = inline.len() + shared.as_ref().map_or(0, |s| s.len());
        self.counters.bytes_received += fragment_len as u64;
        let meta_len = h.aux as usize;
        let (mut metadata, mut data): (Vec<u8>, Body<'_>) = if offset == 0 && fragment_len == total
        {
            // The whole message in one fragment: no reassembly, no copy of a shared buffer.
            match shared {
                None if meta_len <= inline.len() => (
                    inline[..meta_len].to_vec(),
                    Body::Borrowed(&inline[meta_len..]),
                ),
                Some(s) if meta_len == inline.len() => (inline.to_vec(), Body::Owned(s)),
                _ => {
                    self.counters.errors += 1;
                    return;
                }
            }
        } else {
            // Reassembly: fragments of one message arrive in order on one ring.
            let key = (h.src, request_id, h.kind);
            let shared_bytes: &[u8] = shared.as_deref().unwrap_or(&[]);
            let step = self.partial.add(
                key,
                (offset, total),
                &[inline, shared_bytes],
                MAX_MESSAGE,
                self.timers.now,
            );
            drop(shared);
            let whole = match step {
                reassembly::Step::More => return,
                reassembly::Step::Rejected => {
                    self.counters.errors += 1;
                    return;
                }
                reassembly::Step::Done(whole) => whole,
            };
            if meta_len > whole.len() {
                self.counters.errors += 1;
                return;
            }
            (
                whole[..meta_len].to_vec(),
                Body::Owned(Payload::from_vec_at(whole, meta_len)),
            )
        };
        let reply = |kind| Outgoing {
            kind,
            request_id,
            priority,
            data_type,
            one_way: true,
            metadata: &[],
            framed: false,
            coalesced: false,
        };
        let mut sealed = false;
        if h.flags & FLAG_FRAMED != 0 {
            // The ring's envelope, which a sealed frame must have been sealed in.
            let envelope = crate::codec::Envelope {
                origin: h.src,
                destination: dst,
                destination_generation: self.hosted_generation(dst).unwrap_or(0),
                kind: h.kind,
                request_id,
            };
            let open = self.opener.as_mut().map(|o| (o, &envelope));
            match crate::codec::decode_frame(data.bytes(), open, max_message()) {
                Ok(f) => {
                    sealed = f.header.flags & crate::codec::flags::ENCRYPTED != 0;
                    metadata = f.metadata;
                    data = Body::Owned(Payload::from_vec(f.payload));
                }
                Err(e) => {
                    // Dropped, counted, and the sender told.
                    self.counters.errors += 1;
                    if !one_way {
                        self.answer_error(dst, h.src, request_id, e.kind(), &e.to_string());
                    }
                    return;
                }
            }
        }
        match FrameKind::from_u8(h.kind) {
            Some(FrameKind::Data) => {
                let source = self.name_of(h.src);
                if let Some(admit) = self.admit.as_mut() {
                    let to = self.hosted.get(&dst).map_or("", |n| n.id.as_str());
                    if let Some((kind, why)) = admit(&source, to, sealed) {
                        // Dropped at delivery, counted, and the sender told.
                        self.counters.errors += 1;
                        if !one_way {
                            self.answer_error(dst, h.src, request_id, kind, &why);
                        }
                        return;
                    }
                }
                let Some(node) = self.hosted.get_mut(&dst) else {
                    if !one_way {
                        let msg =
                            format!("node index {dst} is not hosted by the receiving process");
                        self.answer_error(dst, h.src, request_id, ErrorKind::NodeNotFound, &msg);
                    }
                    return;
                };
                if h.flags & FLAG_COALESCED != 0 {
                    // A batch of events: each is a message of its own, in order.
                    let mut rest = data.bytes();
                    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
                        let len = u32::from_le_bytes(*len) as usize;
                        let Some(event) = tail.get(..len) else {
                            self.counters.errors += 1;
                            break;
                        };
                        rest = &tail[len..];
                        let msg = Message {
                            source,
                            destination: node.id,
                            data: Payload::copy_from(event),
                            data_type,
                            priority,
                            metadata: Vec::new(),
                            request_id,
                            one_way: true,
                        };
                        match node.handler.as_mut() {
                            Some(handler) => {
                                let _ = handler(&msg);
                            }
                            None => node.mailbox.push(msg),
                        }
                    }
                    return;
                }
                let msg = Message {
                    source,
                    destination: node.id,
                    data: data.into_payload(),
                    data_type,
                    priority,
                    metadata,
                    request_id,
                    one_way,
                };
                match node.handler.as_mut() {
                    Some(handler) if !one_way => match handler(&msg) {
                        Ok(resp) => self.send_reply(dst, h.src, &reply(FrameKind::Response), &resp),
                        Err(e) => {
                            self.counters.errors += 1;
                            self.answer_error(dst, h.src, request_id, e.kind(), &e.to_string());
                        }
                    },
                    Some(handler) => {
                        let _ = handler(&msg);
                    }
                    None => {
                        node.mailbox.push(msg);
                        if !one_way {
                            self.send_reply(dst, h.src, &reply(FrameKind::Ack), &[]);
                        }
                    }
                }
            }
            Some(FrameKind::Ping) if self.hosted.contains_key(&dst) => {
                // The pong carries the path the ping took, with this node at its end.
                let mut path = metadata;
                path.extend_from_slice(&dst.to_le_bytes());
                let pong = Outgoing {
                    metadata: &path,
                    ..reply(FrameKind::Pong)
                };
                self.send_reply(dst, h.src, &pong, data.bytes());
            }
            // Answers count only from the node the request went to (ids are per process, so
            // another node could name the same id); errors may come from a node on the way.
            Some(FrameKind::Pong) => {
                if let Some(p) = self.pending.get_mut(&request_id).filter(|p| p.dst == h.src) {
                    p.complete(Ok(metadata));
                }
            }
            Some(FrameKind::Response | FrameKind::Ack) => {
                if let Some(p) = self.pending.get_mut(&request_id).filter(|p| p.dst == h.src) {
                    p.complete(Ok(match data {
                        Body::Borrowed(b) => b.to_vec(),
                        Body::Owned(p) => p.into_vec(),
                    }));
                }
            }
            Some(FrameKind::Error) => {
                if let Some(p) = self.pending.get_mut(&request_id) {
                    p.complete(Err(decode_error(data.bytes())));
                }
            }
            _ => {}
        }
    }

    /// Splits a descriptor fragment (after the message header) into its inline bytes and the
    /// buffer it names, which the returned payload owns.
    fn take_descriptor<'p>(&mut self, rest: &'p [u8]) -> Result<(&'p [u8], Payload)> {
        let d = Descriptor::decode(rest)
            .ok_or_else(|| Error::MalformedFrame("descriptor frame too short".into()))?;
        let payload = self.segments.take(self.registry.dir(), &d)?;
        Ok((&rest[Descriptor::LEN..], payload))
    }

    /// Passes a frame on toward its destination. A ping single-frame records `at` in its
    /// path (the metadata); a frame past its hop limit or without a route is dropped and, if
    /// its sender waits, answered with an error.
    fn forward(&mut self, at: u32, h: SlotHeader, payload: &[u8]) {
        let mut m = MsgHeader::decode(payload);
        let next = if m.hop >= m.hop_limit {
            Err("hop limit reached")
        } else {
            self.next_hop(at, m.dst).ok_or("no route onward")
        };
        let next = match next {
            Ok(next) => next,
            Err(why) => {
                self.counters.errors += 1;
                self.release_descriptor(h, payload);
                let answer = h.flags & FLAG_ONE_WAY == 0
                    && FrameKind::from_u8(h.kind) == Some(FrameKind::Data);
                if answer {
                    self.answer_error(at, m.origin, m.id, ErrorKind::NoRouteFound, why);
                }
                return;
            }
        };
        m.hop += 1;
        let body = &payload[MSG_HEADER..];
        let total = m.total as usize;
        let meta_len = (h.aux as usize).min(body.len());
        let mut slot = SlotHeader { src: at, ..h };
        let record = FrameKind::from_u8(h.kind) == Some(FrameKind::Ping) && body.len() == total;
        let at_bytes = at.to_le_bytes();
        if record {
            // Both come from shared memory: a path that no longer fits is dropped.
            let (Some(aux), Some(total)) = (slot.aux.checked_add(4), m.total.checked_add(4)) else {
                self.counters.errors += 1;
                return;
            };
            slot.aux = aux;
            m.total = total;
        }
        let hdr = m.encode();
        let parts: [&[u8]; 4] = if record {
            [&hdr, &body[..meta_len], &at_bytes, &body[meta_len..]]
        } else {
            [&hdr, body, &[], &[]]
        };
        let lane = lane_of(m.priority());
        let mut stalled = None;
        loop {
            let pushed = match self.producer(at, next, lane) {
                Ok(p) => p.try_push(slot, &parts),
                Err(_) => Err(PushError::TooLarge),
            };
            match pushed {
                Ok(()) => {
                    self.registry.ring_bell(next);
                    self.counters.frames_sent += 1;
                    return;
                }
                Err(PushError::Full) if !stalled_too_long(&mut stalled) => std::hint::spin_loop(),
                Err(e) => {
                    if e == PushError::Corrupt {
                        let _ = self.drop_corrupt(at, next, lane);
                    }
                    self.counters.errors += 1;
                    self.release_descriptor(h, payload);
                    return;
                }
            }
        }
    }

    /// Returns the buffer of a descriptor frame that is dropped to its pool.
    fn release_descriptor(&mut self, h: SlotHeader, payload: &[u8]) {
        if h.flags & FLAG_DESCRIPTOR != 0 {
            drop(self.take_descriptor(&payload[MSG_HEADER..]));
        }
    }

    fn answer_error(
        &mut self,
        from: u32,
        to: u32,
        request_id: u64,
        kind: ErrorKind,
        message: &str,
    ) {
        let mut body = kind.status_code().to_le_bytes().to_vec();
        body.extend_from_slice(message.as_bytes());
        let o = Outgoing {
            kind: FrameKind::Error,
            request_id,
            priority: PacketPriority::High,
            data_type: DataType::ControlMessage,
            one_way: true,
            metadata: &[],
            framed: false,
            coalesced: false,
        };
        self.send_reply(from, to, &o, &body);
    }

    /// Sends a reply (all its fragments), waiting for room while the ring back is full.
    /// Gives up after [`STALL_LIMIT`] without progress: the requester then times out.
    fn send_reply(&mut self, from: u32, to: u32, o: &Outgoing<'_>, data: &[u8]) {
        let mut offset = 0;
        let mut stalled = None;
        loop {
            match self.try_send_from(from, to, o, data, offset) {
                Ok(Some((_, true))) => return,
                Ok(Some((next, false))) => {
                    offset = next;
                    stalled = None;
                }
                Ok(None) if !stalled_too_long(&mut stalled) => std::hint::spin_loop(),
                _ => {
                    self.counters.errors += 1;
                    return;
                }
            }
        }
    }
}

/// How long the engine waits for room in a full ring when it forwards or replies.
const STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a ring has stayed full for [`STALL_LIMIT`] since `since` (set on the first call:
/// the clock is read only once a push had to wait).
fn stalled_too_long(since: &mut Option<std::time::Instant>) -> bool {
    let now = std::time::Instant::now();
    now.duration_since(*since.get_or_insert(now)) > STALL_LIMIT
}

fn decode_error(body: &[u8]) -> Error {
    if body.len() < 4 {
        return Error::MalformedFrame("error frame without a status".into());
    }
    let code = i32::from_le_bytes(body[0..4].try_into().expect("4 bytes"));
    let msg = String::from_utf8_lossy(&body[4..]).into_owned();
    match ErrorKind::from_status_code(code) {
        Some(kind) => Error::new(kind, msg),
        None => Error::MalformedFrame(format!("unknown status {code}: {msg}")),
    }
}
