//! `HyperFabricProtocol`: the public orchestrator. It hosts nodes in this process, sends
//! requests and one-way messages to nodes of any process of the host, answers pings, and
//! keeps a topology of the host's nodes for route checks.
#![forbid(unsafe_code)]

mod address;
mod bootstrap;
mod buffers;
mod deadline;
mod direct;
mod endpoint;
mod framing;
mod handshakes;
mod hosts;
mod learning;
mod lifecycle;
mod measure;
mod memory;
mod options;
mod pacing;
mod ping;
mod progress;
mod published;
mod recv;
mod reply;
mod request;
mod send;
mod service;
mod topology;
mod zones;

pub use crate::buffer::MemoryRegion;
pub use crate::engine::mailbox::{MessageRef, Received};
pub use crate::engine::Message as ReceivedMessage;
pub use crate::engine::Reply;
pub use address::{PeerAddress, ADDRESS_MAX};
pub use bootstrap::PMIX_KEY;
pub use direct::DirectReceiver;
pub use endpoint::named::{
    KEPT as NAMED_ENDPOINTS, RENEW_EVERY as NAMED_RENEW_EVERY, WARM as NAMED_WARM,
};
pub use endpoint::Endpoint;
pub use learning::{LearnedLink, LearnedRouting};
pub use measure::measure_network_performance;
pub use options::{IdleStrategy, ProtocolConfig, SendOptions, TcpConfig};
pub use ping::Probe;
pub(crate) use recv::too_large;
pub use request::{wait_all, wait_any, Completion, Request};
pub(crate) use request::{wait_all_of, wait_any_of};
pub use topology::LINKS_KEY;

use crate::codec::{Sealer, SealingKey};
use crate::config::ProtocolOptions;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::routing::TopologyManager;
use crate::sys::process::Origin;
use crate::transport::registry::Registry;
use deadline::Deadline;
use framing::{data_frame, encode_metadata};
use progress::{CHECK_EVERY, SPIN_POLLS};
use service::Service;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use topology::sync_topology;

/// What a protocol and its requests, endpoints and receivers share.
struct Inner {
    engine: Mutex<Engine>,
    /// The engine's token ([`crate::engine::in_handler`]).
    engine_token: usize,
    /// Frames and bytes of endpoints dropped while the engine was held (counted in its
    /// traffic counters when read).
    sent_later: [std::sync::atomic::AtomicU64; 2],
    topology: TopologyManager,
    /// The registry's nodes and zones epochs the topology reflects.
    topology_epoch: Mutex<(u64, u64, u64)>,
    /// Whether a zone with isolation (MEDIUM and above) has members: sends are then checked
    /// against the zone rules, and deliveries too.
    zones_active: Arc<AtomicBool>,
    /// LOW isolation's rate limit: a bucket per (sending node, zone).
    pacers: Mutex<pacing::Pacers>,
    /// The zones epoch of the last topology sync.
    zones_seen: Arc<std::sync::atomic::AtomicU64>,
    /// A registry handle of the protocol's own, so topology sync never needs the engine.
    registry: Arc<Registry>,
    /// Nodes whose direct-channel receiver is open.
    receivers: Arc<Mutex<std::collections::HashSet<u32>>>,
    /// Whether sends by node name take endpoints the calling thread keeps (see
    /// [`ProtocolConfig::endpoints_by_name`]).
    endpoints_by_name: bool,
    links: Vec<crate::topology::LinkSpec>,
    options: ProtocolOptions,
    fabric: String,
    idle: IdleStrategy,
    /// See [`ProtocolConfig::single_copy_from`].
    single_copy_from: Option<usize>,
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
    /// Set when the protocol is dropped: endpoints threads keep for sends by node name
    /// (see `endpoint::named`) are let go at their thread's next such send.
    closed: AtomicBool,
    /// Connections to other hosts, when configured.
    tcp: Option<hosts::Tcp>,
    /// Ring files removed when the protocol is dropped: those of the endpoints threads keep
    /// (a thread that keeps one may never send again).
    ring_files: Mutex<Vec<std::path::PathBuf>>,
    /// Dropped endpoints whose receiver had not taken everything: their files stay until it
    /// has (or the protocol is dropped).
    left_rings: Mutex<
        Vec<(
            std::path::PathBuf,
            crate::ring::Producer<crate::ring::Region>,
        )>,
    >,
    /// What learned routing did, kept by its thread.
    learned: Arc<Mutex<learning::LearnedRouting>>,
    /// Bumped when routes moved: endpoints check their way at their next send (see
    /// `endpoint::reroute`).
    routes_epoch: std::sync::atomic::AtomicU64,
}

/// The number in the name of a ring file this process makes (direct and endpoint rings):
/// unique in the process across every protocol it creates, so an endpoint that outlives
/// its protocol never removes a later protocol's file.
fn next_ring_number() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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

impl Inner {
    /// The epoch of the nodes of other hosts (0 without TCP): moves whenever one is added
    /// or changes state.
    fn remote_epoch(&self) -> u64 {
        self.tcp.as_ref().map_or(0, |t| t.directory.epoch())
    }

    /// The generation of node `index` while it is live: of this host's registry, or of
    /// another host whose connection is up.
    fn live_generation(&self, index: u32) -> Option<u64> {
        if crate::transport::tcp::is_remote(index) {
            self.tcp
                .as_ref()
                .and_then(|t| t.directory.live_generation(index))
        } else {
            self.registry.live_generation(index)
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`lock`] when `m` is free now: `None` when another thread holds it. A lock a panic left
/// poisoned (a handler that panicked on a thread polling the engine) is taken as [`lock`]
/// takes it, not refused forever.
fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

impl HyperFabricProtocol {
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

    /// The engine's traffic counters, with what endpoints dropped while the engine was held
    /// sent ([`Inner::sent_later`]).
    pub(super) fn counters(&self) -> crate::engine::Counters {
        let mut c = lock(&self.engine).counters();
        c.frames_sent += self.sent_later[0].load(std::sync::atomic::Ordering::Relaxed);
        c.bytes_sent += self.sent_later[1].load(std::sync::atomic::Ordering::Relaxed);
        c
    }

    /// [`check_process`](Self::check_process), and `InvalidArgumentError` for a send by
    /// node names from inside a handler of this protocol: the handler runs with the engine
    /// held, and such a send may need the engine (it would wait for it forever). A handler
    /// sends through an [`Endpoint`] made beforehand, or hands the work to another thread.
    #[inline]
    pub(super) fn check_sender(&self) -> Result<()> {
        self.check_process()?;
        if crate::engine::in_handler(self.engine_token) {
            return Err(Error::InvalidArgument(
                "a handler cannot send by node names through the protocol it runs in (it \
                 holds the engine); send through an endpoint made before to a node one hop \
                 away on this host, or from another thread"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Refuses a send through the engine from a handler the engine runs (it holds the
    /// engine: the send would wait for it forever).
    pub(super) fn check_engine_free(&self, destination: &str) -> Result<()> {
        if crate::engine::in_handler(self.engine_token) {
            return Err(Error::InvalidArgument(format!(
                "a handler cannot send to {destination:?} through the protocol it runs in: \
                 the node is reached through the engine (another host, or hops), which the \
                 handler holds; send from another thread"
            )));
        }
        Ok(())
    }
}
