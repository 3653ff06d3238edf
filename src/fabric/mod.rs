//! `HyperFabricProtocol`: the public orchestrator. It hosts nodes in this process, sends
//! requests and one-way messages to nodes of any process of the host, answers pings, and
//! keeps a topology of the host's nodes for route checks.
#![forbid(unsafe_code)]

mod address;
mod endpoint;
mod recv;
mod request;

pub use crate::engine::mailbox::{MessageRef, Received};
pub use endpoint::Endpoint;
pub use request::{wait_all, wait_any, Completion, Request};
pub(crate) use request::{wait_all_of, wait_any_of};

pub use address::{PeerAddress, ADDRESS_MAX};

use crate::codec::{
    self, Envelope, FabricKey, FrameKind, FrameOptions, Opener, Sealer, SealingKey, WireHeader,
};
use crate::config::ProtocolOptions;
use crate::engine::{Engine, Handler, Message, Outgoing, Peer};
use crate::error::{Error, Result};
use crate::model::{
    unix_now, DataType, FabricZone, NodeSignature, PacketPriority, PingResult, TopologyInfo,
};
use crate::routing::SendRequirements;
use crate::sync::Backoff;
use crate::sys::process::Origin;
use crate::topology::TopologyManager;
use crate::transport::registry::{NodeEntry, Registry};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::engine::Message as ReceivedMessage;

/// Polls of a waiting call between two reads of the clock (a clock read costs as much as a
/// poll of an empty ring); its deadline and the engine's periodic work are checked then.
const CHECK_EVERY: u32 = 256;
/// Polls a waiting call spends spinning before it yields its core between polls.
const SPIN_POLLS: u32 = 200_000;

/// How the background engine thread waits when there is nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdleStrategy {
    /// Poll without pause (lowest latency; one core busy).
    Spin,
    /// Spin, then yield, then sleep in short steps (an idle process uses almost no CPU).
    #[default]
    Adaptive,
}

/// Everything a protocol instance is configured with.
#[derive(Debug, Clone, Default)]
pub struct ProtocolConfig {
    /// The reference's constructor options.
    pub options: ProtocolOptions,
    /// Fabric name (its host state lives in `/dev/shm/hyperfabric-<uid>/<name>/`).
    pub fabric_name: Option<String>,
    /// Idle strategy of the background thread.
    pub idle: IdleStrategy,
    /// Core the background thread is pinned to.
    pub engine_core: Option<usize>,
    /// Key for encrypted sends (all processes of the fabric need the same).
    pub key: Option<FabricKey>,
    /// Links between the host's nodes. None: every pair is linked directly. With links,
    /// messages follow routes over them, forwarded by the processes hosting the nodes on the
    /// way (each must run its engine).
    pub links: Vec<crate::topology::LinkSpec>,
    /// When neuromorphic events posted to the same destination are coalesced into one frame
    /// (default: within 1 µs, or 64 events).
    pub coalescing: crate::engine::Coalescing,
}

/// Per-send options: the reference's `send_data` keyword arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct SendOptions {
    /// Kind of data.
    pub data_type: DataType,
    /// QoS class.
    pub priority: PacketPriority,
    /// Refuse to send if the route is slower than this (ns).
    pub latency_constraint_ns: Option<u64>,
    /// Route across quantum-capable nodes only.
    pub requires_quantum_entanglement: bool,
    /// Compress the payload (kept only when smaller).
    pub compression_enabled: bool,
    /// Seal the payload with the fabric key.
    pub encryption_enabled: bool,
    /// Metadata delivered with the message.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// How long to wait for the response.
    pub timeout: Duration,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            data_type: DataType::Generic,
            priority: PacketPriority::Medium,
            latency_constraint_ns: None,
            requires_quantum_entanglement: false,
            compression_enabled: false,
            encryption_enabled: false,
            metadata: None,
            timeout: Duration::from_secs(5),
        }
    }
}

struct Service {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

struct Inner {
    engine: Mutex<Engine>,
    topology: TopologyManager,
    /// The registry's nodes and zones epochs the topology reflects.
    topology_epoch: Mutex<(u64, u64)>,
    /// Whether a zone with isolation (MEDIUM and above) has members: sends are then checked
    /// against the zone rules, and deliveries too.
    zones_active: Arc<AtomicBool>,
    /// The zones epoch of the last topology sync.
    zones_seen: Arc<std::sync::atomic::AtomicU64>,
    /// A registry handle of the protocol's own, so topology sync never needs the engine.
    registry: Arc<Registry>,
    /// Nodes whose direct-channel receiver is open.
    receivers: Arc<Mutex<std::collections::HashSet<u32>>>,
    /// Direct rings this process made (their names are unique per process).
    next_direct: std::sync::atomic::AtomicU32,
    links: Vec<crate::topology::LinkSpec>,
    options: ProtocolOptions,
    fabric: String,
    idle: IdleStrategy,
    engine_core: Option<usize>,
    /// The fabric key, expanded once, bound to the fabric name.
    sealing: Option<Arc<SealingKey>>,
    /// One sealer per hosted node that sent sealed frames, for the node's registration:
    /// its nonce counter only moves forward, which the receivers' replay windows rely on.
    sealers: Mutex<rustc_hash::FxHashMap<u32, Sealer>>,
    running: AtomicBool,
    service: Mutex<Option<Service>>,
    progress_calls: std::sync::atomic::AtomicU32,
    /// The process that created the protocol. A `fork()` child gets a copy of the engine
    /// without its thread, with locks as they were at the fork, and with rings whose other
    /// end is the parent's: every method refuses to run there (one atomic load).
    origin: Origin,
}

/// The reference's `HyperFabricProtocol`.
///
/// Progress: with [`start_background_services`](Self::start_background_services) an engine
/// thread delivers messages, runs handlers and answers requests. Without it the engine moves
/// only inside calls: those that wait ([`send_data`](Self::send_data), [`Request::wait`],
/// [`wait_any`], [`wait_all`], [`recv`](Self::recv), [`ping`](Self::ping)) drive it until
/// they return, [`Request::test`] and [`progress`](Self::progress) make one pass, and a
/// send finding a full ring drains this process's rings; handlers run on the thread that
/// drives the engine.
///
/// A protocol belongs to the process that created it (see
/// [`check_process`](Self::check_process)): in a `fork()` child its methods, and those of
/// its requests and endpoints, fail with `InvalidArgumentError`.
pub struct HyperFabricProtocol {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HyperFabricProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperFabricProtocol")
            .field("fabric", &self.inner.fabric)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HyperFabricProtocol {
    /// A protocol instance on fabric `default` with the reference's default options.
    pub fn new() -> Result<HyperFabricProtocol> {
        HyperFabricProtocol::with_config(ProtocolConfig::default())
    }

    /// A protocol instance with `config`.
    pub fn with_config(config: ProtocolConfig) -> Result<HyperFabricProtocol> {
        let fabric = config
            .fabric_name
            .clone()
            .unwrap_or_else(|| "default".into());
        let registry = Registry::open(&fabric)?;
        let o = &config.options;
        if o.buffer_pool_size == 0 || o.max_packet_size < crate::config::MIN_PACKET_SIZE {
            return Err(Error::InvalidArgument(format!(
                "buffer_pool_size must be positive and max_packet_size at least {}",
                crate::config::MIN_PACKET_SIZE
            )));
        }
        let topology = TopologyManager::with_options(crate::routing::RoutingOptions {
            enable_ml_optimization: o.enable_ml_routing,
            enable_quantum_optimization: o.enable_quantum_optimization,
            load_balancing: true,
            ..Default::default()
        });
        let sealing = match &config.key {
            Some(k) => Some(SealingKey::new(k, &fabric)?),
            None => None,
        };
        let mut engine = Engine::new(
            registry,
            sealing.as_ref().map(Opener::new),
            config.options.max_packet_size as usize,
        );
        engine.set_coalescing(config.coalescing);
        let inner = Arc::new(Inner {
            engine: Mutex::new(engine),
            topology,
            topology_epoch: Mutex::new((u64::MAX, u64::MAX)),
            zones_active: Arc::new(AtomicBool::new(false)),
            zones_seen: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            registry: Arc::new(Registry::open(&fabric)?),
            receivers: Arc::new(Mutex::new(Default::default())),
            next_direct: std::sync::atomic::AtomicU32::new(0),
            links: config.links.clone(),
            options: config.options.clone(),
            fabric,
            idle: config.idle,
            engine_core: config.engine_core,
            sealing,
            sealers: Mutex::new(Default::default()),
            running: AtomicBool::new(false),
            service: Mutex::new(None),
            progress_calls: std::sync::atomic::AtomicU32::new(0),
            origin: Origin::current(),
        });
        if !inner.links.is_empty() {
            // Only the configured links exist, even while some of their nodes are missing.
            inner
                .topology
                .set_link_policy(Some(crate::topology::LinkPolicy::Explicit))?;
            // Next hops come from the latency routing tables of the host topology.
            let weak = Arc::downgrade(&inner);
            lock(&inner.engine).set_router(Some(Box::new(move |from: &str, to: &str| {
                let inner = weak.upgrade()?;
                sync_topology(&inner).ok()?;
                let route = inner
                    .topology
                    .shortest_route(from, to, crate::routing::Metric::Latency)
                    .ok()?;
                route.path.get(1).cloned()
            })));
        }
        // Deliveries are checked against the zone rules while isolating zones exist (one
        // atomic load per message otherwise).
        let (active, seen) = (inner.zones_active.clone(), inner.zones_seen.clone());
        let zones_registry = Registry::open(&inner.fabric)?;
        let weak = Arc::downgrade(&inner);
        lock(&inner.engine).set_admit(Some(Box::new(move |from: &str, to: &str, sealed| {
            if !active.load(Ordering::Acquire)
                && zones_registry.zones_epoch() == seen.load(Ordering::Acquire)
            {
                return None;
            }
            let inner = weak.upgrade()?;
            sync_topology(&inner).ok()?;
            inner.topology.read(|t| {
                if let Some(why) = t.isolation_violation(from, to) {
                    return Some((crate::ErrorKind::ZoneIsolationViolation, why));
                }
                let zone = t.encryption_zone(from, to).filter(|_| !sealed)?;
                Some((
                    crate::ErrorKind::ZoneIsolationViolation,
                    format!("zone {zone:?} is quantum_secure: its traffic must be encrypted"),
                ))
            })
        })));
        Ok(HyperFabricProtocol { inner })
    }

    /// The reference's `create_zone`: a zone of the whole fabric (every process of the host
    /// enforces it). `DuplicateZoneError` when the id exists, `InsufficientResourcesError`
    /// when the host's nodes cannot carry its bandwidth next to the other zones'
    /// reservations, `InvalidZoneError` for an invalid specification.
    pub fn create_zone(&self, zone: FabricZone) -> Result<bool> {
        self.inner.check_process()?;
        zone.validate()?;
        self.sync_topology()?;
        let tm = &self.inner.topology;
        self.inner.registry.update_zones(|t| {
            if t.zones.iter().any(|z| z.zone_id == zone.zone_id) {
                return Err(Error::DuplicateZone(format!(
                    "zone {:?} already exists",
                    zone.zone_id
                )));
            }
            // Admission against the host's nodes and the other zones.
            if tm.read(|t| t.zone(&zone.zone_id).is_err()) {
                tm.create_zone(zone.clone())?;
            }
            t.zones.push(zone.clone());
            Ok(())
        })?;
        self.sync_topology()?;
        Ok(true)
    }

    /// Deletes a zone of the fabric (`ZoneNotFoundError`); its members stay.
    pub fn delete_zone(&self, zone_id: &str) -> Result<bool> {
        self.inner.check_process()?;
        self.inner.registry.update_zones(|t| {
            let pos = t
                .zones
                .iter()
                .position(|z| z.zone_id == zone_id)
                .ok_or_else(|| Error::ZoneNotFound(format!("zone {zone_id:?} does not exist")))?;
            t.zones.remove(pos);
            t.members.remove(zone_id);
            Ok(())
        })?;
        self.sync_topology()?;
        Ok(true)
    }

    /// Makes a registered node (of any process) a member of a zone: `ZoneNotFoundError`,
    /// `NodeNotFoundError`, `InsufficientResourcesError` when the zone is full,
    /// `InvalidZoneError` when the zone needs quantum coherence the node lacks.
    pub fn assign_to_zone(&self, zone_id: &str, node_id: &str) -> Result<bool> {
        self.inner.check_process()?;
        self.sync_topology()?;
        let tm = &self.inner.topology;
        self.inner.registry.update_zones(|t| {
            if !t.zones.iter().any(|z| z.zone_id == zone_id) {
                return Err(Error::ZoneNotFound(format!(
                    "zone {zone_id:?} does not exist"
                )));
            }
            tm.assign_to_zone(zone_id, node_id)?;
            t.members
                .entry(zone_id.to_string())
                .or_default()
                .insert(node_id.to_string());
            Ok(())
        })?;
        self.sync_topology()?;
        Ok(true)
    }

    /// Removes a node from a zone (`ZoneNotFoundError`; `NodeNotFoundError` when it was not a
    /// member).
    pub fn unassign_from_zone(&self, zone_id: &str, node_id: &str) -> Result<bool> {
        self.inner.check_process()?;
        self.inner.registry.update_zones(|t| {
            if !t.zones.iter().any(|z| z.zone_id == zone_id) {
                return Err(Error::ZoneNotFound(format!(
                    "zone {zone_id:?} does not exist"
                )));
            }
            let removed = t
                .members
                .get_mut(zone_id)
                .is_some_and(|m| m.remove(node_id));
            if !removed {
                return Err(Error::NodeNotFound(format!(
                    "node {node_id:?} is not a member of zone {zone_id:?}"
                )));
            }
            Ok(())
        })?;
        self.sync_topology()?;
        Ok(true)
    }

    /// The address blob of hosted node `node_id`: what another process passes to
    /// [`insert_peer`](Self::insert_peer) to reach it (MPI, PMIx or a file carry it). At most
    /// [`ADDRESS_MAX`] bytes: magic, version, the host's boot id, the fabric name and the node
    /// id.
    pub fn node_address(&self, node_id: &str) -> Result<Vec<u8>> {
        self.inner.check_process()?;
        lock(&self.inner.engine).hosted_index(node_id)?;
        PeerAddress {
            host: host_id()?,
            fabric: self.inner.fabric.clone(),
            node: node_id.to_string(),
        }
        .encode()
    }

    /// Takes another process's address blob (from [`node_address`](Self::node_address)) and
    /// returns the node id to send to. The peer must be on this host and fabric (the TCP
    /// transport between hosts is not here yet: `NoRouteFoundError`) and registered
    /// (`NodeNotFoundError`); a blob that does not decode is `InvalidArgumentError`.
    pub fn insert_peer(&self, blob: &[u8]) -> Result<String> {
        self.inner.check_process()?;
        let PeerAddress { host, fabric, node } = PeerAddress::decode(blob)?;
        if host != host_id()? {
            return Err(Error::NoRouteFound(format!(
                "node {node:?} is on another host: only nodes of this host are reachable until \
                 the TCP transport exists"
            )));
        }
        if fabric != self.inner.fabric {
            return Err(Error::InvalidArgument(format!(
                "address blob: node {node:?} is on fabric {fabric:?}, this protocol on {:?}",
                self.inner.fabric
            )));
        }
        lock(&self.inner.engine).resolve(&node)?;
        Ok(node)
    }

    /// Deletes the host state of fabric `name` (`/dev/shm/hyperfabric-<uid>/<name>/`) once no
    /// process hosts a node in it: call it after the last protocol of the fabric is dropped.
    /// Returns whether it was deleted (`false` while nodes are registered).
    pub fn remove_fabric(name: &str) -> Result<bool> {
        Registry::remove_if_unused(name)
    }

    /// `Ok` in the process that created the protocol; `InvalidArgumentError` ("this
    /// protocol was created by process N; after fork() create a new one") in a `fork()`
    /// child of it. The child has a copy of the engine without its thread, locks in
    /// whatever state the parent's threads left them, and the parent's ends of rings that
    /// other processes read: every method that uses the protocol (and its requests and
    /// endpoints) makes this check first and fails there instead of corrupting the
    /// parent's state, and dropping the protocol in the child releases nothing of it. A
    /// child that wants to communicate creates a protocol of its own.
    pub fn check_process(&self) -> Result<()> {
        self.inner.check_process()
    }

    /// The fabric name.
    pub fn fabric_name(&self) -> &str {
        &self.inner.fabric
    }

    /// The protocol options.
    pub fn options(&self) -> &ProtocolOptions {
        &self.inner.options
    }

    /// The topology of the host's nodes (kept in step with the registry).
    pub fn topology(&self) -> Result<&TopologyManager> {
        self.inner.check_process()?;
        self.sync_topology()?;
        Ok(&self.inner.topology)
    }

    fn sync_topology(&self) -> Result<()> {
        sync_topology(&self.inner)
    }

    /// Registers a node hosted by this process. `DuplicateNodeError` when any process of the
    /// fabric already hosts the id; `InvalidNodeError` for an invalid signature.
    pub fn register_node(&self, node: NodeSignature) -> Result<bool> {
        self.inner.check_process()?;
        let index = lock(&self.inner.engine).register(&node)?;
        // A sealer left from an earlier registration of the index is for another generation.
        lock(&self.inner.sealers).remove(&index);
        self.sync_topology()?;
        Ok(true)
    }

    /// Removes a node this process hosts.
    pub fn unregister_node(&self, node_id: &str) -> Result<bool> {
        self.inner.check_process()?;
        let mut e = lock(&self.inner.engine);
        let index = e.hosted_index(node_id)?;
        e.unregister(node_id)?;
        drop(e);
        lock(&self.inner.sealers).remove(&index);
        self.sync_topology()?;
        Ok(true)
    }

    /// Sets the request handler of a hosted node: it returns the response to `send_data`.
    /// Without a handler, requests are queued for [`recv`](Self::recv) and answered with a
    /// delivery receipt (an empty response).
    pub fn on_receive(
        &self,
        node_id: &str,
        handler: impl FnMut(&Message) -> Result<Vec<u8>> + Send + 'static,
    ) -> Result<()> {
        self.inner.check_process()?;
        lock(&self.inner.engine).set_handler(node_id, Some(Box::new(handler) as Handler))
    }

    /// Removes a node's handler.
    pub fn clear_handler(&self, node_id: &str) -> Result<()> {
        self.inner.check_process()?;
        lock(&self.inner.engine).set_handler(node_id, None)
    }

    /// One engine pass in the caller's thread; returns the messages handled. Every 256th
    /// call also runs the periodic work (deadlines, liveness of peers, failure detection).
    /// In a `fork()` child of the process that created the protocol it does nothing and
    /// returns 0 (see [`check_process`](Self::check_process)).
    pub fn progress(&self) -> usize {
        if !self.inner.origin.is_current() {
            return 0;
        }
        let mut e = lock(&self.inner.engine);
        let n = e.poll();
        if self.inner.progress_calls.fetch_add(1, Ordering::Relaxed) % 256 == 255 {
            let changes = e.tick(Instant::now());
            drop(e);
            self.inner.apply_health(changes);
        }
        n
    }

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
        self.send_data_nb(source, destination, data, opts)?.wait()
    }

    /// Non-blocking `send_data`: returns once the message is in the ring, with a
    /// [`Request`] to test, wait for, or `.await` (it is a `Future` that needs no particular
    /// runtime). Errors found before sending come back here; the rest from the request.
    pub fn send_data_nb(
        &self,
        source: &str,
        destination: &str,
        data: &[u8],
        opts: &SendOptions,
    ) -> Result<Request> {
        self.inner.check_process()?;
        let (id, deadline) = self.inner.send(source, destination, data, opts, false)?;
        Ok(self.request(id, deadline))
    }

    fn request(&self, id: u64, deadline: Deadline) -> Request {
        Request::new(self.inner.clone(), id, deadline)
    }

    /// One-way send: returns once the message is in the destination's ring.
    pub fn post(
        &self,
        source: &str,
        destination: &str,
        data: &[u8],
        opts: &SendOptions,
    ) -> Result<()> {
        self.inner.check_process()?;
        let coalesce = opts.data_type.is_neuromorphic()
            && opts.metadata.is_none()
            && !(opts.compression_enabled || opts.encryption_enabled)
            && data.len() <= crate::engine::SPIKE_EVENT_MAX
            && lock(&self.inner.engine).coalescing().max_events > 1;
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
        self.until_room(&mut deadline, destination, |e| {
            let src = e.hosted_index(source)?;
            let dst = e.resolve(destination)?;
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
    fn until_room(
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

    /// Opens a direct channel from hosted node `source` to `destination` (a live node of any
    /// process of the host): the lock-free fast path. Its [`Sender`] pushes into a ring of its
    /// own, which the destination's [`DirectReceiver`] polls; no lock, lookup, route or
    /// allocation per message. No zone, constraint, compression or encryption applies, and
    /// messages do not keep order with `post`/`send_data` ones. `NodeNotFoundError` for an
    /// unknown node; `ZoneIsolationViolationError` when a zone forbids the pair.
    ///
    /// [`Sender`]: crate::transport::direct::Sender
    pub fn open_sender(
        &self,
        source: &str,
        destination: &str,
    ) -> Result<crate::transport::direct::Sender> {
        self.inner.check_process()?;
        let (src, dst) = self.inner.endpoints(source, destination)?;
        if self
            .inner
            .check_route(source, destination, &SendOptions::default())?
        {
            return Err(Error::ZoneIsolationViolation(format!(
                "{source:?} -> {destination:?} crosses a quantum_secure zone: direct channels \
                 are not encrypted"
            )));
        }
        let n = self.inner.next_direct.fetch_add(1, Ordering::Relaxed);
        crate::transport::direct::Sender::create(
            self.inner.registry.clone(),
            (src, dst.index, dst.generation),
            n,
        )
    }

    /// The receiver of every direct channel to hosted node `node`. One per node at a time
    /// (`InvalidArgumentError` while another is open); it is polled by the thread that owns
    /// it, never by the engine.
    pub fn open_receiver(&self, node: &str) -> Result<DirectReceiver> {
        self.inner.check_process()?;
        let index = lock(&self.inner.engine).hosted_index(node)?;
        if !lock(&self.inner.receivers).insert(index) {
            return Err(Error::InvalidArgument(format!(
                "node {node:?} already has an open direct receiver"
            )));
        }
        Ok(DirectReceiver {
            receiver: crate::transport::direct::Receiver::new(self.inner.registry.clone(), index),
            claims: self.inner.receivers.clone(),
            names: Default::default(),
            origin: self.inner.origin,
        })
    }

    /// A `BufferManager` whose buffers live in a shared segment of this process: a buffer
    /// filled here and passed to [`send_buffer`](Self::send_buffer) or
    /// [`post_buffer`](Self::post_buffer) reaches any node of the host without a copy (the
    /// receiver reads the same pages, and the buffer returns to this pool when the received
    /// message is dropped).
    pub fn create_buffer_manager(
        &self,
        pool_size: usize,
        buffer_size: usize,
    ) -> Result<crate::buffer::BufferManager> {
        self.inner.check_process()?;
        lock(&self.inner.engine).create_pool(pool_size, buffer_size)
    }

    /// `send_data` of a buffer's data by descriptor (zero copy) when the buffer comes from
    /// [`create_buffer_manager`](Self::create_buffer_manager) and neither compression nor
    /// encryption is asked (by `opts` or by the buffer); otherwise its bytes are sent as by
    /// `send_data`. The buffer is consumed either way.
    pub fn send_buffer(
        &self,
        source: &str,
        destination: &str,
        buffer: crate::buffer::ZeroCopyBuffer,
        opts: &SendOptions,
    ) -> Result<Vec<u8>> {
        self.inner.check_process()?;
        match self.send_buffer_as(source, destination, buffer, opts, false)? {
            BufferSend::Descriptor(id, deadline) => self.request(id, deadline).wait(),
            BufferSend::Bytes(response) => Ok(response.unwrap_or_default()),
        }
    }

    /// `post` of a buffer (zero copy under the conditions of
    /// [`send_buffer`](Self::send_buffer)).
    pub fn post_buffer(
        &self,
        source: &str,
        destination: &str,
        buffer: crate::buffer::ZeroCopyBuffer,
        opts: &SendOptions,
    ) -> Result<()> {
        self.inner.check_process()?;
        self.send_buffer_as(source, destination, buffer, opts, true)
            .map(drop)
    }

    /// Sends a buffer by descriptor when it can travel so, else its bytes (sealed when the
    /// buffer, the options or a zone ask for it) through `send_data` / `post`.
    fn send_buffer_as(
        &self,
        source: &str,
        destination: &str,
        buffer: crate::buffer::ZeroCopyBuffer,
        opts: &SendOptions,
        one_way: bool,
    ) -> Result<BufferSend> {
        let (src, dst) = self.inner.endpoints(source, destination)?;
        let by_descriptor = self.descriptor_options(&buffer, opts).is_some()
            && !self.inner.check_route(source, destination, opts)?;
        if !by_descriptor {
            let opts = SendOptions {
                encryption_enabled: opts.encryption_enabled || buffer.encryption_enabled(),
                ..opts.clone()
            };
            let data = buffer.as_slice();
            return if one_way {
                self.post(source, destination, data, &opts)
                    .map(|()| BufferSend::Bytes(None))
            } else {
                self.send_data(source, destination, data, &opts)
                    .map(|r| BufferSend::Bytes(Some(r)))
            };
        }
        let mut deadline = Deadline::after(opts.timeout);
        let metadata = encode_metadata(opts)?;
        let id = {
            let mut e = lock(&self.inner.engine);
            if one_way {
                e.next_id()
            } else {
                e.new_request(&dst)
            }
        };
        let o = Outgoing {
            kind: FrameKind::Data,
            request_id: id,
            priority: opts.priority,
            data_type: opts.data_type,
            one_way,
            metadata: &metadata,
            framed: false,
            coalesced: false,
        };
        if let Err(e) = self.push_buffer(src, dst.index, &o, buffer, &mut deadline) {
            if !one_way {
                lock(&self.inner.engine).cancel(id);
            }
            return Err(e);
        }
        Ok(BufferSend::Descriptor(id, deadline))
    }

    /// `opts` when `buffer` can travel by descriptor.
    fn descriptor_options<'o>(
        &self,
        buffer: &crate::buffer::ZeroCopyBuffer,
        opts: &'o SendOptions,
    ) -> Option<&'o SendOptions> {
        let plain =
            !(opts.compression_enabled || opts.encryption_enabled || buffer.encryption_enabled());
        let shared = buffer
            .pool_id()
            .is_some_and(|id| lock(&self.inner.engine).owns_pool(id));
        (plain && shared).then_some(opts)
    }

    fn push_buffer(
        &self,
        src: u32,
        dst: u32,
        o: &Outgoing<'_>,
        buffer: crate::buffer::ZeroCopyBuffer,
        deadline: &mut Deadline,
    ) -> Result<()> {
        let mut buffer = Some(buffer);
        self.until_room(deadline, format_args!("node index {dst}"), |e| {
            e.try_send_buffer(src, dst, o, &mut buffer)
        })
    }

    /// The reference's `ping`: probes of `packet_size` bytes; `latency_ns` is the median
    /// round trip / 2, `bandwidth_gbps` the bytes a pipelined burst of probes moved (both
    /// ways) per second, `packet_loss_rate` the share of probes that timed out.
    pub fn ping(
        &self,
        source: &str,
        destination: &str,
        packet_size: usize,
        timeout_ms: u64,
    ) -> Result<PingResult> {
        self.inner.check_process()?;
        const PROBES: usize = 16;
        const BURST: usize = 16;
        if packet_size > crate::engine::max_message() {
            return Err(Error::InvalidArgument(format!(
                "packet_size {packet_size} exceeds the largest frame ({})",
                crate::engine::max_message()
            )));
        }
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let (src, dst) = self.inner.endpoints(source, destination)?;
        let payload = vec![0xa5u8; packet_size];
        // The path starts with the source; each forwarder and the destination append theirs.
        let origin = src.to_le_bytes();
        let probe = |request_id| Outgoing {
            kind: FrameKind::Ping,
            request_id,
            priority: PacketPriority::High,
            data_type: DataType::ControlMessage,
            one_way: false,
            metadata: &origin,
            framed: false,
            coalesced: false,
        };
        let mut path_indices: Vec<u32> = Vec::new();
        let mut rtts = Vec::with_capacity(PROBES);
        let mut lost = 0;
        for _ in 0..PROBES {
            let id = lock(&self.inner.engine).new_request(&dst);
            let start = Instant::now();
            let mut deadline = Deadline::at(start + timeout);
            let e = lock(&self.inner.engine);
            match self
                .inner
                .push(e, (src, dst.index), &probe(id), &payload, &mut deadline)
                .and_then(|_| self.inner.wait(id, &mut deadline))
            {
                Ok(path) => {
                    rtts.push(start.elapsed().as_nanos() as u64);
                    path_indices = path
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                }
                Err(e) if e.kind() == crate::ErrorKind::Timeout => lost += 1,
                Err(e) => return Err(e),
            }
        }
        let mut bandwidth_gbps = 0.0;
        if !rtts.is_empty() {
            let start = Instant::now();
            let mut deadline = Deadline::at(start + timeout);
            let mut ids = Vec::with_capacity(BURST);
            for _ in 0..BURST {
                let id = lock(&self.inner.engine).new_request(&dst);
                let e = lock(&self.inner.engine);
                self.inner
                    .push(e, (src, dst.index), &probe(id), &payload, &mut deadline)?;
                ids.push(id);
            }
            let mut ok = 0;
            for id in ids {
                if self.inner.wait(id, &mut deadline).is_ok() {
                    ok += 1;
                }
            }
            let secs = start.elapsed().as_secs_f64();
            bandwidth_gbps =
                (ok * 2 * (packet_size + crate::engine::MSG_HEADER)) as f64 * 8.0 / secs / 1e9;
        }
        rtts.sort_unstable();
        Ok(PingResult {
            source: source.to_string(),
            destination: destination.to_string(),
            latency_ns: rtts.get(rtts.len() / 2).map_or(0, |r| r / 2),
            bandwidth_gbps,
            path: path_indices
                .iter()
                .map(|&i| {
                    self.inner
                        .registry
                        .get(i)
                        .map_or_else(|| format!("#{i}"), |e| e.signature.node_id)
                })
                .collect(),
            packet_loss_rate: lost as f64 / PROBES as f64,
            timestamp: unix_now(),
            success: !rtts.is_empty(),
        })
    }

    /// Topology state, with the engine's traffic counters in `performance_metrics`.
    pub fn get_topology_info(&self) -> Result<TopologyInfo> {
        self.inner.check_process()?;
        self.sync_topology()?;
        let mut info = self.inner.topology.topology_info()?;
        let c = lock(&self.inner.engine).counters();
        let m = &mut info.performance_metrics;
        m.insert("frames_sent".into(), c.frames_sent as f64);
        m.insert("frames_received".into(), c.frames_received as f64);
        m.insert("bytes_sent".into(), c.bytes_sent as f64);
        m.insert("bytes_received".into(), c.bytes_received as f64);
        m.insert("errors".into(), c.errors as f64);
        m.insert("corrupt_channels".into(), c.corrupt_channels as f64);
        m.insert(
            "abandoned_reassemblies".into(),
            c.abandoned_reassemblies as f64,
        );
        m.insert("reassemblies".into(), c.reassemblies as f64);
        m.insert("reassembly_bytes".into(), c.reassembly_bytes as f64);
        if let Some(o) = lock(&self.inner.engine).opener() {
            // Sealed frames dropped at this process: not authentic, or replayed.
            m.insert("sealed_refused".into(), o.refused() as f64);
            m.insert("sealed_replays_refused".into(), o.replays_refused() as f64);
        }
        Ok(info)
    }

    /// Starts the engine thread (pinned to `engine_core` when set): from now on messages are
    /// delivered and answered without the caller calling [`progress`](Self::progress).
    pub fn start_background_services(&self) -> Result<()> {
        self.inner.check_process()?;
        let mut service = lock(&self.inner.service);
        if service.is_some() {
            return Ok(());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (inner, stop2) = (self.inner.clone(), stop.clone());
        let core = self.inner.engine_core;
        let thread = std::thread::Builder::new()
            .name("hf-engine".into())
            .spawn(move || {
                if let Some(c) = core {
                    let _ = crate::sys::pin_current_thread(c);
                }
                // Adaptive: spin for a few thousand empty polls, then sleep on the process's
                // doorbell (a futex in the registry that senders ring after writing to one of
                // our rings), with a timeout that doubles up to MAX_NAP: a sleeping engine
                // beats every 50 ms, well inside the 200 ms after which peers mark its nodes
                // down, and wakes 20 times a second. The periodic work (heartbeats, failure
                // detection, deadlines)
                // runs every millisecond at most, checked after every poll that did work (a
                // poll can copy megabytes), every 256 empty ones, and around naps.
                const SPIN_POLLS: u32 = 2_000;
                const FIRST_NAP: Duration = Duration::from_millis(1);
                const MAX_NAP: Duration = Duration::from_millis(50);
                const TICK: Duration = Duration::from_millis(1);
                let mut idle = 0u32;
                let mut nap = FIRST_NAP;
                let mut polls = 0u32;
                let mut next_tick = Instant::now();
                let mut busy = false;
                while !stop2.load(Ordering::Acquire) {
                    polls = polls.wrapping_add(1);
                    if busy || polls % 256 == 0 || idle >= SPIN_POLLS {
                        let now = Instant::now();
                        if now >= next_tick {
                            let changes = lock(&inner.engine).tick(now);
                            inner.apply_health(changes);
                            next_tick = now + TICK;
                        }
                    }
                    busy = lock(&inner.engine).poll() > 0;
                    if busy {
                        idle = 0;
                        nap = FIRST_NAP;
                        continue;
                    }
                    idle = idle.saturating_add(1);
                    if inner.idle == IdleStrategy::Spin || idle < SPIN_POLLS {
                        std::hint::spin_loop();
                        continue;
                    }
                    let bell = lock(&inner.engine).bell();
                    match bell.and_then(|b| inner.registry.bell_words(b)) {
                        Some((word, sleeping)) => {
                            // Announce the sleep, then look once more: a sender that wrote
                            // before seeing the flag is found here, one that wrote after
                            // rings the bell.
                            sleeping.store(1, Ordering::SeqCst);
                            // Senders only order their writes before reading the flag
                            // (sys::fence): this fences them all.
                            crate::sys::fence::heavy();
                            let token = word.load(Ordering::SeqCst);
                            if lock(&inner.engine).poll() == 0 {
                                crate::sys::futex_wait(word, token, nap);
                                nap = (nap * 2).min(MAX_NAP);
                            } else {
                                idle = 0;
                                nap = FIRST_NAP;
                            }
                            sleeping.store(0, Ordering::Release);
                        }
                        None => std::thread::sleep(nap),
                    }
                }
            })
            .map_err(|e| Error::io("starting the engine thread", e))?;
        lock(&self.inner.engine).set_beating(true);
        self.inner.running.store(true, Ordering::Release);
        *service = Some(Service { stop, thread });
        Ok(())
    }

    /// Stops the engine thread (pending requests are then progressed by their callers).
    pub fn stop_background_services(&self) -> Result<()> {
        self.inner.check_process()?;
        let taken = lock(&self.inner.service).take();
        if let Some(s) = taken {
            s.stop.store(true, Ordering::Release);
            let _ = s.thread.join();
            let mut e = lock(&self.inner.engine);
            e.set_beating(false);
            e.flush_spikes(None);
            self.inner.running.store(false, Ordering::Release);
        }
        Ok(())
    }
}

impl Drop for HyperFabricProtocol {
    fn drop(&mut self) {
        if !self.inner.origin.is_current() {
            // A fork() child's copy: the engine thread, the nodes and the rings are the
            // parent's, and the locks may be held by threads the child does not have.
            // Nothing is released (the memory is the child's copy and goes with it).
            std::mem::forget(self.inner.clone());
            return;
        }
        let _ = self.stop_background_services();
        let mut e = lock(&self.inner.engine);
        // Events still waiting to be coalesced go out.
        e.flush_spikes(None);
        for id in e.hosted_ids() {
            let _ = e.unregister(&id);
        }
    }
}

/// The error of a protocol used in a `fork()` child of process `pid`, which created it.
#[cold]
pub(crate) fn forked(pid: u32) -> Error {
    Error::InvalidArgument(format!(
        "this protocol was created by process {pid}; after fork() create a new one"
    ))
}

impl Inner {
    /// `InvalidArgumentError` in a `fork()` child of the process that created the protocol
    /// (one atomic load otherwise).
    #[inline]
    pub(super) fn check_process(&self) -> Result<()> {
        if self.origin.is_current() {
            Ok(())
        } else {
            Err(forked(self.origin.pid()))
        }
    }

    /// Pushes every fragment of `body`, starting under the engine lock `e` the caller took
    /// (one lock for the common single-fragment send); the lock is released between
    /// fragments, so another thread's urgent message can go in between.
    pub(super) fn push<'a>(
        &'a self,
        mut e: MutexGuard<'a, Engine>,
        (src, dst): (u32, u32),
        o: &Outgoing<'_>,
        body: &[u8],
        deadline: &mut Deadline,
    ) -> Result<()> {
        let mut offset = 0;
        let mut backoff = Backoff::new();
        // While the ring stays full, whether the destination's process died is checked every
        // 10 ms (with or without background services): a dead reader never makes room.
        let mut next_check: Option<Instant> = None;
        loop {
            match e.try_send_from(src, dst, o, body, offset)? {
                Some((_, true)) => return Ok(()),
                Some((next, false)) => {
                    offset = next;
                    backoff.reset();
                }
                // Full: drain our own inbound rings, the peer may be waiting on us.
                None => {
                    e.drain();
                    let now = Instant::now();
                    if now >= *next_check.get_or_insert(now) {
                        if e.destination_lost(dst) {
                            return Err(Error::NodeNotFound(format!(
                                "destination node index {dst} is gone (its process died or it \
                                 left the fabric)"
                            )));
                        }
                        next_check = Some(now + Duration::from_millis(10));
                    }
                    drop(e);
                    if deadline.passed() {
                        return Err(Error::Timeout(format!(
                            "ring to node index {dst} stayed full"
                        )));
                    }
                    backoff.snooze();
                    e = lock(&self.engine);
                    continue;
                }
            }
            drop(e);
            e = lock(&self.engine);
        }
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
            match self.prepare((src, &dst, id), data, opts) {
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
        if let Ok(mut e) = self.engine.try_lock() {
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

    /// `opts` with encryption on when a zone requires it (`ZoneIsolationViolationError`
    /// without a fabric key).
    pub(super) fn sealed_options<'o>(
        &self,
        must_seal: bool,
        opts: &'o SendOptions,
    ) -> Result<std::borrow::Cow<'o, SendOptions>> {
        if !must_seal || opts.encryption_enabled {
            return Ok(std::borrow::Cow::Borrowed(opts));
        }
        if self.sealing.is_none() {
            return Err(Error::ZoneIsolationViolation(
                "a quantum_secure zone requires encryption and no fabric key is configured".into(),
            ));
        }
        Ok(std::borrow::Cow::Owned(SendOptions {
            encryption_enabled: true,
            ..opts.clone()
        }))
    }

    /// Encodes metadata and, when compression or encryption is asked, frames metadata and
    /// payload together (sealed for message `id` from `src` to `dst`); returns (metadata,
    /// body, framed).
    pub(super) fn prepare<'d>(
        &self,
        (src, dst, id): (u32, &Peer, u64),
        data: &'d [u8],
        opts: &SendOptions,
    ) -> Result<(Vec<u8>, std::borrow::Cow<'d, [u8]>, bool)> {
        let metadata = encode_metadata(opts)?;
        if !(opts.compression_enabled || opts.encryption_enabled) {
            // Plain sends go from the caller's buffer straight into the ring.
            return Ok((metadata, std::borrow::Cow::Borrowed(data), false));
        }
        let mut h = WireHeader::new(FrameKind::Data, src, dst.index);
        h.priority = opts.priority;
        h.data_type = opts.data_type;
        h.request_id = id;
        let mut out = Vec::with_capacity(
            codec::HEADER_LEN + metadata.len() + data.len() + codec::SEAL_OVERHEAD,
        );
        let mut sealers = lock(&self.sealers);
        let seal = if opts.encryption_enabled {
            let key = self.sealing.as_ref().ok_or_else(|| {
                Error::InvalidArgument(
                    "encryption requested but no fabric key is configured".into(),
                )
            })?;
            let sealer = match sealers.entry(src) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let generation =
                        lock(&self.engine).hosted_generation(src).ok_or_else(|| {
                            Error::NodeNotFound(format!("node index {src} is not hosted here"))
                        })?;
                    v.insert(Sealer::new(key, src, generation, random_u64()))
                }
            };
            let envelope = Envelope {
                origin: src,
                destination: dst.index,
                destination_generation: dst.generation,
                kind: FrameKind::Data as u8,
                request_id: id,
            };
            Some((sealer, envelope))
        } else {
            None
        };
        codec::encode_frame(
            h,
            &metadata,
            data,
            FrameOptions {
                compress: opts.compression_enabled,
                seal,
            },
            &mut out,
        )?;
        Ok((Vec::new(), std::borrow::Cow::Owned(out), true))
    }

    /// Marks nodes down or up in the host topology (routes are rebuilt without the down
    /// ones) and drops the engine's cached next hops.
    fn apply_health(&self, changes: Vec<crate::engine::HealthChange>) {
        if changes.is_empty() {
            return;
        }
        let _ = sync_topology(self);
        for c in &changes {
            let _ = self.topology.set_node_health(&c.node, c.up);
        }
        lock(&self.engine).clear_routes();
    }

    fn wait(&self, request_id: u64, deadline: &mut Deadline) -> Result<Vec<u8>> {
        self.poll_until(deadline, |e| e.take_result(request_id))
            .unwrap_or_else(|| {
                lock(&self.engine).cancel(request_id);
                Err(Error::Timeout(format!(
                    "no response to request {request_id} in time"
                )))
            })
    }

    /// Polls the engine (unless its thread runs) until `ready` gives a value or `deadline`
    /// passes (`None`). Every few hundred polls it reads the clock (a clock read costs as
    /// much as a poll of an empty ring) and, without the engine thread, runs the engine's
    /// periodic work. Spins at first, then yields the CPU.
    fn poll_until<T>(
        &self,
        deadline: &mut Deadline,
        mut ready: impl FnMut(&mut Engine) -> Option<T>,
    ) -> Option<T> {
        let mut polls = 0u32;
        loop {
            {
                let mut e = lock(&self.engine);
                if !self.running.load(Ordering::Acquire) {
                    e.poll();
                }
                if let Some(r) = ready(&mut e) {
                    return Some(r);
                }
                polls = polls.wrapping_add(1);
                if polls % CHECK_EVERY == 0 {
                    if deadline.passed() {
                        return None;
                    }
                    let now = Instant::now();
                    if !self.running.load(Ordering::Acquire) {
                        let changes = e.tick(now);
                        drop(e);
                        self.apply_health(changes);
                    }
                }
            }
            if polls < SPIN_POLLS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Brings the topology in step with the registry: the host's live nodes, and the configured
/// links between them. Uses the protocol's own registry handle, never the engine, so the
/// engine's router may call it.
fn sync_topology(inner: &Inner) -> Result<()> {
    let mut seen = lock(&inner.topology_epoch);
    let epoch = (inner.registry.nodes_epoch(), inner.registry.zones_epoch());
    if *seen == epoch {
        return Ok(());
    }
    let peers: Vec<NodeEntry> = inner.registry.list()?;
    let tm = &inner.topology;
    let known: Vec<String> = tm.read(|t| t.nodes().map(|n| n.node_id.clone()).collect());
    for id in &known {
        if !peers.iter().any(|p| &p.signature.node_id == id) {
            tm.remove_node(id)?;
        }
    }
    for p in &peers {
        if !known.contains(&p.signature.node_id) {
            tm.add_node(p.signature.clone())?;
        }
    }
    let present = |id: &str| peers.iter().any(|p| p.signature.node_id == id);
    for l in &inner.links {
        if present(&l.a)
            && present(&l.b)
            && !tm.read(|t| {
                t.declared_links()
                    .iter()
                    .any(|d| (d.a == l.a && d.b == l.b) || (d.a == l.b && d.b == l.a))
            })
        {
            tm.add_link(l.clone())?;
        }
    }
    sync_zones(inner, &present)?;
    *seen = epoch;
    inner.zones_seen.store(epoch.1, Ordering::Release);
    Ok(())
}

/// Brings the topology's zones and memberships in step with the fabric's zone table (members
/// that are not registered now join when they are).
fn sync_zones(inner: &Inner, present: &dyn Fn(&str) -> bool) -> Result<()> {
    let table = inner.registry.zones()?;
    let tm = &inner.topology;
    let local: Vec<crate::model::FabricZone> =
        tm.read(|t| t.zones().iter().map(|z| z.zone.clone()).collect());
    for z in &local {
        if !table.zones.contains(z) {
            tm.delete_zone(&z.zone_id)?;
        }
    }
    for z in &table.zones {
        if !local.contains(z) {
            // Admitted by the process that created it; this view may count capacity
            // differently while nodes come and go, so it is taken as given.
            let _ = tm.create_zone(z.clone());
        }
        let want: Vec<&String> = table
            .members
            .get(&z.zone_id)
            .map(|m| m.iter().filter(|id| present(id)).collect())
            .unwrap_or_default();
        let have: Vec<String> = tm.read(|t| {
            t.zone(&z.zone_id)
                .map(|s| s.members.iter().cloned().collect())
                .unwrap_or_default()
        });
        for id in &have {
            if !want.contains(&id) {
                tm.unassign_from_zone(&z.zone_id, id)?;
            }
        }
        for id in want {
            if !have.contains(id) {
                let _ = tm.assign_to_zone(&z.zone_id, id);
            }
        }
    }
    let active = tm.read(|t| {
        t.zones().iter().any(|z| {
            z.zone.isolation_level >= crate::model::IsolationLevel::Medium && !z.members.is_empty()
        })
    });
    inner.zones_active.store(active, Ordering::Release);
    Ok(())
}

/// The receiver of a node's direct channels (see [`HyperFabricProtocol::open_receiver`]);
/// derefs to [`crate::transport::direct::Receiver`].
pub struct DirectReceiver {
    receiver: crate::transport::direct::Receiver,
    claims: Arc<Mutex<std::collections::HashSet<u32>>>,
    names: rustc_hash::FxHashMap<u32, crate::engine::NodeName>,
    /// The process of the protocol that opened it (a `fork()` child must not poll the
    /// parent's rings: each has one consumer).
    origin: Origin,
}

impl DirectReceiver {
    /// The id of node `index` (a source given by `try_recv_with`), cached.
    pub fn node_name(&mut self, index: u32) -> Option<crate::engine::NodeName> {
        if let Some(n) = self.names.get(&index) {
            return Some(*n);
        }
        let name = crate::engine::NodeName::intern(
            &self.receiver_registry().get(index)?.signature.node_id,
        );
        self.names.insert(index, name);
        Some(name)
    }

    /// The process of the protocol that opened the receiver.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    fn receiver_registry(&self) -> &Registry {
        self.receiver.registry()
    }
}

impl std::fmt::Debug for DirectReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.receiver.fmt(f)
    }
}

impl std::ops::Deref for DirectReceiver {
    type Target = crate::transport::direct::Receiver;
    fn deref(&self) -> &Self::Target {
        &self.receiver
    }
}

impl std::ops::DerefMut for DirectReceiver {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.receiver
    }
}

impl Drop for DirectReceiver {
    fn drop(&mut self) {
        if !self.origin.is_current() {
            // A fork() child's copy: the claim is the parent's.
            return;
        }
        lock(&self.claims).remove(&self.receiver.node());
    }
}

/// The reference's `measure_network_performance`: for `duration`, pings every other live node
/// of the host from each node this protocol hosts (64-byte probes, one destination after the
/// other, round after round) and reports, as a map of metric names to values: the pairs and
/// probes measured, the latency (mean, min, median, max of the pings' median one-way
/// latencies, ns), the mean burst bandwidth (Gbit/s), the probe loss rate, and the engine's
/// traffic over the period (frames and bytes per second). A destination that fails to answer
/// counts as lost probes, not as an error. `NodeNotFoundError` when this protocol hosts no
/// node.
pub fn measure_network_performance(
    protocol: &HyperFabricProtocol,
    duration: Duration,
) -> Result<std::collections::BTreeMap<String, f64>> {
    protocol.check_process()?;
    let sources = lock(&protocol.inner.engine).hosted_ids();
    if sources.is_empty() {
        return Err(Error::NodeNotFound(
            "measure_network_performance needs a node hosted by this protocol".into(),
        ));
    }
    let before = lock(&protocol.inner.engine).counters();
    let start = Instant::now();
    let (mut latencies, mut bandwidths) = (Vec::new(), Vec::new());
    let (mut probes, mut lost, mut pairs) = (0.0f64, 0.0f64, std::collections::BTreeSet::new());
    loop {
        let peers: Vec<String> = protocol
            .inner
            .registry
            .list()?
            .into_iter()
            .map(|e| e.signature.node_id)
            .collect();
        for src in &sources {
            for dst in peers.iter().filter(|d| *d != src) {
                if start.elapsed() >= duration && !latencies.is_empty() {
                    break;
                }
                match protocol.ping(src, dst, 64, 1000) {
                    Ok(r) => {
                        probes += 16.0;
                        lost += r.packet_loss_rate * 16.0;
                        if r.success {
                            latencies.push(r.latency_ns as f64);
                            bandwidths.push(r.bandwidth_gbps);
                            pairs.insert((src.clone(), dst.clone()));
                        }
                    }
                    Err(e) if e.kind() == crate::ErrorKind::NodeNotFound => {}
                    Err(_) => {
                        probes += 16.0;
                        lost += 16.0;
                    }
                }
            }
        }
        if start.elapsed() >= duration || peers.len() < 2 {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let after = lock(&protocol.inner.engine).counters();
    latencies.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let mut m = std::collections::BTreeMap::new();
    m.insert("duration_s".into(), secs);
    m.insert("pairs_measured".into(), pairs.len() as f64);
    m.insert("probes".into(), probes);
    m.insert(
        "packet_loss_rate".into(),
        if probes > 0.0 { lost / probes } else { 0.0 },
    );
    m.insert("avg_latency_ns".into(), mean(&latencies));
    m.insert(
        "min_latency_ns".into(),
        latencies.first().copied().unwrap_or(0.0),
    );
    m.insert(
        "p50_latency_ns".into(),
        latencies.get(latencies.len() / 2).copied().unwrap_or(0.0),
    );
    m.insert(
        "max_latency_ns".into(),
        latencies.last().copied().unwrap_or(0.0),
    );
    m.insert("avg_bandwidth_gbps".into(), mean(&bandwidths));
    m.insert(
        "frames_per_s".into(),
        (after.frames_sent + after.frames_received - before.frames_sent - before.frames_received)
            as f64
            / secs,
    );
    m.insert(
        "bytes_per_s".into(),
        (after.bytes_sent + after.bytes_received - before.bytes_sent - before.bytes_received)
            as f64
            / secs,
    );
    Ok(m)
}

/// This host's identity: its boot id (a fresh random id at every boot of the kernel).
fn host_id() -> Result<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io("reading /proc/sys/kernel/random/boot_id", e))
}

/// How a buffer went out: by descriptor (the message id and its deadline), or as bytes
/// through `send_data` / `post` (the response of a request).
enum BufferSend {
    Descriptor(u64, Deadline),
    Bytes(Option<Vec<u8>>),
}

/// A deadline whose clock starts the first time it is consulted: reading the clock costs as
/// much as sending a small message, so calls that finish at once never read it (a timeout
/// then counts from the first moment the call had to wait).
#[derive(Debug, Clone, Copy)]
struct Deadline {
    timeout: Duration,
    at: Option<Instant>,
}

/// The longest timeout a deadline counts (a century): `Duration::MAX` as a timeout means no
/// bound, and adding it to an `Instant` would overflow.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Deadline {
    fn after(timeout: Duration) -> Deadline {
        Deadline {
            timeout: timeout.min(FOREVER),
            at: None,
        }
    }

    fn at(at: Instant) -> Deadline {
        Deadline {
            timeout: Duration::ZERO,
            at: Some(at),
        }
    }

    fn instant(&mut self) -> Instant {
        let timeout = self.timeout;
        *self.at.get_or_insert_with(|| Instant::now() + timeout)
    }

    fn passed(&mut self) -> bool {
        let now = Instant::now();
        let timeout = self.timeout;
        now >= *self.at.get_or_insert(now + timeout)
    }
}

/// The metadata of a send as JSON bytes (empty without metadata), at most
/// [`codec::MAX_METADATA`] bytes.
fn encode_metadata(opts: &SendOptions) -> Result<Vec<u8>> {
    let metadata = match &opts.metadata {
        Some(m) => {
            serde_json::to_vec(m).map_err(|e| Error::InvalidArgument(format!("metadata: {e}")))?
        }
        None => Vec::new(),
    };
    if metadata.len() > codec::MAX_METADATA {
        return Err(Error::InvalidArgument(format!(
            "metadata is {} bytes encoded, at most {} allowed",
            metadata.len(),
            codec::MAX_METADATA
        )));
    }
    Ok(metadata)
}

/// 64 random bits from the kernel (nonce counters start here).
fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        u64::from_le_bytes(b)
    } else {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
    }
}

/// A send through the engine (for endpoints whose route has hops).
fn send_through_engine(
    inner: &Inner,
    (source, destination): (&str, &str),
    data: &[u8],
    opts: &SendOptions,
    one_way: bool,
) -> Result<(u64, Deadline)> {
    inner.send(source, destination, data, opts, one_way)
}
