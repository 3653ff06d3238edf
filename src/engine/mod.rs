//! The per-process engine: polls the inbound rings of the nodes this process hosts, delivers
//! requests to handlers or inboxes, answers pings, completes pending requests, and owns the
//! outbound rings. Driven by [`Engine::poll`], from the caller's thread or the background
//! service thread.
//!
//! Rings between two nodes of this process live in process memory; rings to and from nodes of
//! other processes are files in the fabric directory, created by the sending side, found by
//! the receiving side when the registry's channel epoch moves.

use crate::buffer::BufferManager;
use crate::ring::{self, Producer, Region};
use crate::transport::channel::{segment_path, Lane, SegmentKey, SegmentMaps};
use crate::transport::memory::InProcess;
use crate::transport::registry::{NodeEntry, Registry};
use crate::transport::shm::SharedMemory;
use crate::transport::{self, Outbound, Transport};
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

mod chunks;
mod coalesce;
mod deferred;
mod delivery;
pub use delivery::{DeliveryCounters, DELIVERY_LIMIT, FLAG_SEQ, KEPT_BYTES, KEPT_FRAMES, SEQ_EXT};
mod dispatch;
mod faults;
pub use faults::{Fault, FaultCounters, FaultPlan, Hop, Injector};
mod forward;
mod frame;
mod handler_watch;
mod health;
mod hosts;
pub use hosts::{HostCounters, Hosts, IdleWaiter, Joined, Joins, Want, TCP_DOWN_AFTER};
mod inbox;
pub mod lent;
mod links;
mod lost;
pub mod mailbox;
mod message;
mod nodes;
pub use nodes::in_handler;
mod poll;
mod reassembly;
pub mod remote;
mod replies;
mod requests;
mod send;

pub use chunks::{CHUNKS, CHUNK_SIZE, DESCRIPTOR_THRESHOLD, SMALL_CHUNKS, SMALL_CHUNK_SIZE};
use coalesce::SpikeBatch;
pub use coalesce::{Coalescing, SPIKE_EVENT_MAX};
use frame::MsgHeader;
pub(crate) use frame::{compact_slot, push_fragment};
pub use frame::{lane_of, Outgoing};
pub use handler_watch::HANDLER_GRACE;
use health::Timers;
pub use health::{HealthChange, DOWN_AFTER, DOWN_AFTER_MIN, HEARTBEAT_INTERVAL, HEARTBEAT_MISSES};
pub use inbox::{INBOX_BYTES, INBOX_MESSAGES};
use mailbox::Mailbox;
pub use message::{
    same_id, Admit, Handler, Leg, Message, NodeName, Peer, Reply, Router, RoutesGeneration,
};
pub use replies::{Replies, REPLY_INLINE_MAX, REPLY_SLOTS};
use requests::Pending;

/// The reply ring of the endpoint ring a frame came from, if it has one (see [`Replies`]).
pub type Back<'a> = Option<&'a mut Producer<Region>>;

/// How a frame reached the engine's dispatch through an endpoint ring: the ring's source (its
/// id, known to the ring) and the endpoint's reply ring, if it has one.
pub struct Via<'a> {
    /// The source node's id.
    pub source: NodeName,
    /// The reply ring.
    pub reply: Back<'a>,
    /// The ring's producing process.
    pub pid: u32,
}

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
/// Slot flag: a compact frame (endpoint rings only): no message header; the payload is the
/// data of a message in one fragment to the ring's node, after its 8-byte id when it is a
/// request (without [`FLAG_ONE_WAY`]); `aux` holds its data type (low byte) and priority
/// (high byte). See [`MsgHeader::of_compact`].
pub const FLAG_COMPACT: u8 = 16;

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

/// Largest fragment of body for frames over TCP to the process that hosts their
/// destination: as large as a connection carries, whatever `max_packet_size` (which sizes
/// the fragments in rings). The kernel cuts the stream into segments anyway; fewer, larger
/// frames are fewer system calls on both sides (a 1 MiB ping-pong took about a quarter
/// less time with fragments of 256 KiB than of 64 KiB), and with the message header beside
/// a power of two of body, a message of 64 KiB or 1 MiB has no short last frame. A message
/// of another priority waits behind at most one such frame on the connection.
const TCP_FRAGMENT: usize = 256 << 10;
const _: () = assert!(TCP_FRAGMENT + MSG_HEADER <= crate::transport::tcp::MAX_FRAME);

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
    consumer: Box<dyn transport::Inbound>,
    /// Fed by a TCP connection: a stream brings frames in bursts, so a pass takes as many
    /// bulk frames from it as latency ones.
    stream: bool,
    /// Its producing side went (its connection closed, or its reader left): read until
    /// drained, then dropped, whatever comes under its key later (a ring made anew).
    retired: bool,
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
    /// Times forwarding stopped at a full ring onward (the frames then wait in the rings
    /// they came in, and their senders for room: back-pressure, nothing dropped).
    pub forward_stalls: u64,
    /// Inbound rings whose next frame waits for room onward now.
    pub forwards_waiting: u64,
    /// Frames of delivery streams (sequenced messages, their acknowledgements) dropped on
    /// the way for want of their node (no route onward, or a node that left or is not yet
    /// announced when the frame came off a connection), mostly around a node that just left:
    /// their sender resends, then reports what was not delivered (not counted in `errors`).
    pub forward_unrouted: u64,
    /// Messages being reassembled now.
    pub reassemblies: u64,
    /// Bytes those hold.
    pub reassembly_bytes: u64,
}

/// The engine state of one process.
pub struct Engine {
    /// Tells this engine's handlers apart from others' ([`nodes::in_handler`]).
    token: usize,
    registry: Arc<Registry>,
    /// The hosted nodes' mailboxes, polled in turn.
    mailboxes: Vec<Arc<Mailbox>>,
    hosted: HashMap<u32, Hosted>,
    by_name: HashMap<String, u32>,
    peers: HashMap<String, NodeEntry>,
    peers_epoch: u64,
    out: HashMap<(u32, u32, Lane), Box<dyn Outbound>>,
    inbound: Vec<Inbound>,
    /// Channels between nodes of this process.
    local: Box<dyn Transport>,
    /// Channels to the other processes of the host.
    host: Box<dyn Transport>,
    /// Registration generation of each remote destination when its rings were made.
    out_generation: HashMap<u32, u64>,
    /// Messages arriving in fragments.
    partial: reassembly::Reassembly,
    max_packet: usize,
    router: Option<Router>,
    /// The routes' generation, read before each next hop (see [`Engine::set_routes_generation`]),
    /// and the one the cached next hops were taken under.
    routes_generation: Option<RoutesGeneration>,
    routes_seen: u64,
    admit: Option<Admit>,
    /// The registry entry whose doorbell wakes this engine (its first hosted node).
    bell: Option<u32>,
    names: HashMap<u32, NodeName>,
    names_epoch: u64,
    /// Next hops by (from, to, leg); cleared when the host's nodes or the routes' generation
    /// change.
    hops: HashMap<(u32, u32, Leg), u32>,
    pending: HashMap<u64, Pending>,
    next_request: u64,
    /// The answers of endpoints of this process, by the block of ids each reserved:
    /// answers that came the engine's way go to them.
    reply_owners: Vec<(u64, u64, Arc<Replies>)>,
    /// Replies a future waits on: woken when an answer may be in.
    watched: Vec<Arc<Replies>>,
    /// The buffer handlers write answers into, reused.
    reply: Reply,
    /// Replies that found no room, sent by later polls.
    deferred: deferred::Queue,
    /// Frames to forward left in their rings for want of room onward.
    held: forward::Held,
    counters: Counters,
    opener: Option<crate::codec::Opener>,
    /// This process's segment of chunks for large messages, made on first use.
    chunks: [Option<(SegmentKey, BufferManager)>; 2],
    /// Segments mapped to read descriptors (this process's own included).
    segments: SegmentMaps,
    /// Keys of the segments this process created, by pool id.
    own_segments: HashMap<u64, SegmentKey>,
    /// This process's pid (buffers sent to nodes it hosts are lent to it) and start time.
    pid: u32,
    start_time: u64,
    /// Neuromorphic events waiting, by (source, destination).
    spikes: HashMap<(u32, u32), SpikeBatch>,
    coalescing: Coalescing,
    /// Whether this engine writes heartbeats (its background thread runs).
    beating: bool,
    /// Heartbeats while a handler runs (see [`handler_watch`]), and its thread while
    /// heartbeats are on.
    handler_watch: Arc<handler_watch::HandlerWatch>,
    watching: Option<handler_watch::Watching>,
    timers: Timers,
    /// Peers marked down (missed heartbeats), with the registration they had.
    down: HashMap<u32, u64>,
    /// Some inbound ring comes from a node that left and still holds messages.
    gone_inbound: bool,
    /// Connections to other hosts, when this engine has them.
    hosts: Option<Hosts>,
    /// End-to-end delivery on routes through forwarders.
    delivery: delivery::Delivery,
    /// Faults injected where this engine forwards (none unless a plan is set).
    faults: faults::Faults,
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
        let registry = Arc::new(registry);
        let pid = crate::sys::process::pid();
        Engine {
            token: nodes::new_token(),
            host: Box::new(SharedMemory::new(registry.clone())),
            registry,
            mailboxes: Vec::new(),
            hosted: HashMap::default(),
            by_name: HashMap::default(),
            peers: HashMap::default(),
            peers_epoch: u64::MAX,
            out: HashMap::default(),
            inbound: Vec::new(),
            local: Box::new(InProcess),
            out_generation: HashMap::default(),
            partial: reassembly::Reassembly::default(),
            max_packet,
            router: None,
            routes_generation: None,
            routes_seen: 0,
            admit: None,
            bell: None,
            names: HashMap::default(),
            names_epoch: u64::MAX,
            hops: HashMap::default(),
            pending: HashMap::default(),
            // Ids of one process never repeat those of an earlier process whose node index
            // this one's nodes may hold: an answer to the earlier one's request is dropped.
            next_request: 1 + (crate::sys::random_u64() >> 2),
            reply_owners: Vec::new(),
            watched: Vec::new(),
            reply: Reply::default(),
            deferred: deferred::Queue::default(),
            held: forward::Held::default(),
            counters: Counters::default(),
            opener,
            chunks: [None, None],
            segments: SegmentMaps::default(),
            own_segments: HashMap::default(),
            pid,
            start_time: crate::sys::process::start_time(pid).unwrap_or(0),
            spikes: HashMap::default(),
            coalescing: Coalescing::default(),
            beating: false,
            handler_watch: Arc::default(),
            watching: None,
            timers: Timers {
                now: std::time::Instant::now(),
                beat: std::time::Instant::now(),
                probe: std::time::Instant::now(),
                detect: std::time::Instant::now(),
                liveness: std::time::Instant::now(),
                down_after: DOWN_AFTER,
            },
            down: HashMap::default(),
            gone_inbound: false,
            hosts: None,
            delivery: delivery::Delivery::default(),
            faults: faults::Faults::default(),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Traffic counters.
    pub fn counters(&self) -> Counters {
        let (lent, lent_bytes) = self.lent_reassemblies();
        Counters {
            abandoned_reassemblies: self.partial.abandoned()
                + self
                    .mailboxes
                    .iter()
                    .map(|m| m.abandoned_assemblies())
                    .sum::<u64>(),
            reassemblies: (self.partial.len() + lent) as u64,
            reassembly_bytes: (self.partial.bytes() + lent_bytes) as u64,
            corrupt_channels: self.counters.corrupt_channels
                + self
                    .mailboxes
                    .iter()
                    .map(|m| m.corrupt_channels())
                    .sum::<u64>(),
            ..self.counters
        }
    }

    /// Sequences what this engine sends through forwarders, keeps it until acknowledged and
    /// sends it again as needed (`enable_fault_tolerance`; see `docs/delivery.md`). Off, such
    /// sends are best effort. Sequenced frames that arrive are handled either way.
    pub fn set_fault_tolerance(&mut self, on: bool) {
        self.delivery.on = on;
    }

    /// Counters of end-to-end delivery.
    pub fn delivery_counters(&self) -> DeliveryCounters {
        self.delivery.counters()
    }

    /// The opener of sealed frames (its counters of refused frames), if a key is set.
    pub fn opener(&self) -> Option<&crate::codec::Opener> {
        self.opener.as_ref()
    }

    /// The registry entry whose doorbell wakes this engine, once it hosts a node.
    pub fn bell(&self) -> Option<u32> {
        self.bell
    }
}
