//! What a protocol is configured with ([`ProtocolConfig`], [`IdleStrategy`]) and what each
//! send is ([`SendOptions`]).

use crate::codec::FabricKey;
use crate::config::ProtocolOptions;
use crate::model::{DataType, PacketPriority};
use std::time::Duration;

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
#[derive(Debug, Clone)]
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
    /// From how many bytes a send from registered memory is copied once by its receiver,
    /// straight from the sender's memory (`process_vm_readv`); smaller sends are posted
    /// through shared memory. `None` (default): measured once per process at the first such
    /// send (the kernel's copy against two copies through shared memory; on virtual machines
    /// where it never wins, every send is posted). `Some(0)`: always.
    pub single_copy_from: Option<usize>,
    /// Whether `post`, `send_data` and `send_data_nb` by node names go through an endpoint
    /// that the calling thread keeps for the pair (default: yes; at most
    /// [`NAMED_ENDPOINTS`](super::NAMED_ENDPOINTS) per thread, a ring file each). Off, they
    /// take the engine's lock and rings, as an application with many short-lived threads
    /// or thousands of pairs per thread may prefer.
    pub endpoints_by_name: bool,
    /// Connections to processes on other hosts (off by default: only this host's nodes are
    /// reached).
    pub tcp: Option<TcpConfig>,
    /// Faults to inject where this process forwards frames, for tests (see
    /// `docs/faults.md`). `None` (default): the plan of the `HF_FAULTS` environment
    /// variable, if set; none otherwise. A protocol that injects faults says so on standard
    /// error when it starts.
    pub faults: Option<crate::engine::FaultPlan>,
    /// How long a node of this host may send no heartbeat before this process marks it
    /// down and routes around it (default 200 ms, at least 20 ms; `HF_DOWN_AFTER_MS`
    /// amends it). A process that died is found by the liveness check whatever this says;
    /// this catches one that stopped (SIGSTOP, an engine thread that never runs). Nodes
    /// on other hosts: [`TcpConfig::down_after`].
    pub down_after: Duration,
}

/// How a protocol reaches processes on other hosts (see
/// [`HyperFabricProtocol::connect_host`](super::HyperFabricProtocol::connect_host)).
#[derive(Debug, Clone, PartialEq)]
pub struct TcpConfig {
    /// Address to accept connections on (`0.0.0.0:7000`; port 0 picks a free one, see
    /// [`HyperFabricProtocol::listen_address`](super::HyperFabricProtocol::listen_address)).
    /// None: this process only connects to others.
    pub listen: Option<std::net::SocketAddr>,
    /// Hosts to connect to at start, and again whenever their connection drops.
    pub peers: Vec<std::net::SocketAddr>,
    /// Accept peers without a fabric key. Without a key and without this, creating the
    /// protocol fails: an open port on a shared cluster would let anyone inject messages.
    /// Both sides must agree (a keyed side refuses an insecure one).
    pub insecure: bool,
    /// Reach nodes of this host over TCP too when a connection hosts them (tests and
    /// benchmarks of the TCP path on one machine).
    pub force: bool,
    /// Submission and completion by a kernel thread that polls the engine's io_uring
    /// (`IORING_SETUP_SQPOLL`; also set by `HF_TCP_SQPOLL=1` in the environment): receives complete without
    /// this process entering the kernel, at the cost of a thread that spins while there is
    /// traffic (it sleeps after [`SQPOLL_IDLE`](crate::transport::tcp::reactor::SQPOLL_IDLE)
    /// without work). Refused with an error where the kernel refuses it.
    pub sqpoll: bool,
    /// When large flights of frames (queued while a socket was full) go out as zero-copy
    /// sends (`IORING_OP_SEND_ZC`, where the kernel has it; see
    /// [`zero_copy_from_env`] for the environment's say). By default from
    /// [`ZC_DEFAULT_MIN`](crate::transport::tcp::reactor::ZC_DEFAULT_MIN) bytes, and a
    /// connection whose kernel copies them anyway (a peer on this host) turns them off.
    pub zerocopy: crate::transport::tcp::reactor::ZeroCopy,
    /// While the engine spins, connections that just received are read with plain
    /// non-blocking `recv` calls at every poll instead of through receives armed on the
    /// io_uring (which cost each message a wake-up of the ring and a kernel entry to run
    /// it); a connection quiet for a few hundred polls, and every connection before the
    /// engine sleeps, gets its receive armed again. On by default (not with `sqpoll`);
    /// `HF_TCP_BUSY_RECEIVE=0|1` in the environment overrides it. See
    /// [`crate::transport::tcp::reactor::DIRECT_MAX`].
    pub busy_receive: bool,
    /// A connection whose peer sends heartbeats and on which nothing came (no frame, no
    /// heartbeat) for this long is closed and its peer's nodes are marked down, their
    /// requests failed and routes rebuilt around them: a process that stopped or a host cut
    /// off is detected although its connection seems open. Heartbeats go out five times as
    /// often while the background services thread runs (and while a handler runs long);
    /// a process without that thread sends none and is not judged by its silence (its death
    /// is still seen when its connection closes). Default
    /// [`TCP_DOWN_AFTER`](crate::engine::TCP_DOWN_AFTER), 1 s; at least 50 ms.
    pub down_after: std::time::Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            listen: None,
            peers: Vec::new(),
            insecure: false,
            force: false,
            sqpoll: false,
            zerocopy: Default::default(),
            busy_receive: true,
            down_after: crate::engine::TCP_DOWN_AFTER,
        }
    }
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            options: ProtocolOptions::default(),
            fabric_name: None,
            idle: IdleStrategy::default(),
            engine_core: None,
            key: None,
            links: Vec::new(),
            coalescing: crate::engine::Coalescing::default(),
            single_copy_from: None,
            endpoints_by_name: true,
            tcp: None,
            faults: None,
            down_after: crate::engine::DOWN_AFTER,
        }
    }
}

impl TcpConfig {
    /// The TCP configuration the environment asks for, for programs that do not set one:
    /// `HF_TRANSPORT=tcp` turns it on (listening on `HF_TCP_LISTEN`, default `0.0.0.0:0`,
    /// and reaching nodes of this host over TCP too when a connection hosts them);
    /// `HF_TCP_INSECURE=1` accepts peers without a key. `None` without `HF_TRANSPORT`;
    /// `ConfigError` for a value it does not know.
    pub fn from_env() -> crate::Result<Option<TcpConfig>> {
        let bad = |var: &str, v: &str, want: &str| {
            crate::Error::Config(format!("{var}={v:?}: expected {want}"))
        };
        match std::env::var("HF_TRANSPORT").ok().as_deref() {
            None | Some("") | Some("shm") => return Ok(None),
            Some("tcp") => {}
            Some(v) => return Err(bad("HF_TRANSPORT", v, "tcp or shm")),
        }
        let listen = match std::env::var("HF_TCP_LISTEN") {
            Ok(v) => v
                .parse()
                .map_err(|_| bad("HF_TCP_LISTEN", &v, "an address and port like 0.0.0.0:7100"))?,
            Err(_) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let insecure = env_flag("HF_TCP_INSECURE")?;
        Ok(Some(TcpConfig {
            listen: Some(listen),
            peers: Vec::new(),
            insecure,
            force: true,
            ..Default::default()
        }))
    }
}

/// `d` as `HF_TCP_DOWN_AFTER_MS` (milliseconds, at least 50) amends it: how long a silent
/// connection lives (see [`TcpConfig::down_after`]). `ConfigError` for another value.
pub fn down_after_from_env(d: Duration) -> crate::Result<Duration> {
    millis_from_env("HF_TCP_DOWN_AFTER_MS", d, 50)
}

/// `d` as `HF_DOWN_AFTER_MS` (milliseconds, at least 20) amends it: how long a node of this
/// host may be silent (see [`ProtocolConfig::down_after`]). `ConfigError` for another value.
pub fn host_down_after_from_env(d: Duration) -> crate::Result<Duration> {
    millis_from_env("HF_DOWN_AFTER_MS", d, 20)
}

/// `d` as environment variable `var` (milliseconds, at least `min`) amends it.
fn millis_from_env(var: &str, d: Duration, min: u64) -> crate::Result<Duration> {
    match std::env::var(var).ok().as_deref() {
        None | Some("") => Ok(d),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms >= min => Ok(Duration::from_millis(ms)),
            _ => Err(crate::Error::Config(format!(
                "{var}={v:?}: expected milliseconds, at least {min}"
            ))),
        },
    }
}

/// `HF_TCP_SQPOLL`: whether the engine's io_uring is polled by a kernel thread (see
/// [`TcpConfig::sqpoll`]).
pub fn sqpoll_from_env() -> crate::Result<bool> {
    env_flag("HF_TCP_SQPOLL")
}

/// `zc` as the environment amends it: `HF_TCP_ZEROCOPY_MIN` is `off` or the smallest flight
/// in bytes sent zero-copy; `HF_TCP_ZEROCOPY_ALWAYS=1` keeps zero-copy sends on connections
/// whose kernel copies them (to measure them on one host). `ConfigError` for other values.
pub fn zero_copy_from_env(
    mut zc: crate::transport::tcp::reactor::ZeroCopy,
) -> crate::Result<crate::transport::tcp::reactor::ZeroCopy> {
    match std::env::var("HF_TCP_ZEROCOPY_MIN").ok().as_deref() {
        None | Some("") => {}
        Some("off") => zc.min = None,
        Some(v) => {
            zc.min = Some(v.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
                crate::Error::Config(format!(
                    "HF_TCP_ZEROCOPY_MIN={v:?}: expected off or a number of bytes from 1"
                ))
            })?)
        }
    }
    zc.always |= env_flag("HF_TCP_ZEROCOPY_ALWAYS")?;
    Ok(zc)
}

/// `HF_TCP_BUSY_RECEIVE` over `configured` (see [`TcpConfig::busy_receive`]).
pub fn busy_receive_from_env(configured: bool) -> crate::Result<bool> {
    match std::env::var("HF_TCP_BUSY_RECEIVE").ok().as_deref() {
        None | Some("") => Ok(configured),
        Some(_) => env_flag("HF_TCP_BUSY_RECEIVE"),
    }
}

/// Environment variable `var` as a flag: unset, empty or `0` is off, `1` is on, anything
/// else a `ConfigError`.
fn env_flag(var: &str) -> crate::Result<bool> {
    match std::env::var(var).ok().as_deref() {
        None | Some("") | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(v) => Err(crate::Error::Config(format!(
            "{var}={v:?}: expected 0 or 1"
        ))),
    }
}

impl ProtocolConfig {
    /// The configuration of the process of host `host` of a configuration file's `hosts`
    /// section: its fabric, options, links and key; it listens on the host's address and
    /// connects to the hosts listed before it (again whenever a connection drops; those
    /// listed after it connect to it).
    pub fn for_host(cfg: &crate::config::FabricConfig, host: &str) -> crate::Result<Self> {
        let me = cfg.host(host)?;
        let before = cfg.hosts.iter().take_while(|h| h.name != me.name);
        Ok(ProtocolConfig {
            tcp: Some(TcpConfig {
                listen: Some(me.address),
                peers: before.map(|h| h.address).collect(),
                insecure: cfg.fabric.insecure,
                ..Default::default()
            }),
            ..ProtocolConfig::from_config(cfg)?
        })
    }

    /// The protocol of a process of the fabric `cfg` on one host: its options, name, key
    /// (`fabric.key_file`, read now) and links.
    pub fn from_config(cfg: &crate::config::FabricConfig) -> crate::Result<Self> {
        let key = match &cfg.fabric.key_file {
            Some(path) => Some(FabricKey::from_file(path)?),
            None => None,
        };
        Ok(ProtocolConfig {
            options: cfg.fabric.protocol.clone(),
            fabric_name: Some(cfg.fabric.name.clone()),
            key,
            links: cfg.links.clone(),
            ..Default::default()
        })
    }
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

/// The timeout of [`SendOptions::default`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

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
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl SendOptions {
    /// Whether these are the default options (a few comparisons, no allocation).
    #[inline]
    pub(crate) fn is_default(&self) -> bool {
        self.data_type == DataType::Generic
            && self.priority == PacketPriority::Medium
            && self.latency_constraint_ns.is_none()
            && !self.requires_quantum_entanglement
            && !self.compression_enabled
            && !self.encryption_enabled
            && self.metadata.is_none()
            && self.timeout == DEFAULT_TIMEOUT
    }
}
