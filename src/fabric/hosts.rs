//! Other hosts: the listener that accepts connections, the dialer that keeps connections to
//! configured peers, and [`HyperFabricProtocol::connect_host`]. Every connection is
//! authenticated by the handshake (`codec::handshake`) on a thread of its own before the
//! engine gets it, so a peer that connects and goes silent holds nothing but that thread
//! until the handshake's deadline.

use super::{lock, HyperFabricProtocol, Inner, TcpConfig};
use crate::codec::handshake::{self, Credentials};
use crate::codec::FabricKey;
use crate::engine::{Hosts, Joined, Joins};
use crate::error::{Error, Result};
use crate::transport::tcp::{Directory, Reactor};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(3);
/// How long [`HyperFabricProtocol::connect_host`] waits for the peer's nodes.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// Pause of the listener and the dialer between looks.
const LOOK: Duration = Duration::from_millis(5);
/// Pause of the dialer between attempts at a host that is not up.
const REDIAL: Duration = Duration::from_millis(200);

/// What a protocol with TCP holds.
pub(super) struct Tcp {
    pub(super) directory: Arc<Directory>,
    joined: Joins,
    /// This process's label: its listen address, else its pid.
    label: String,
    listen: Option<SocketAddr>,
    key: Option<FabricKey>,
    force: bool,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Connections refused by the handshake (wrong key, another fabric, garbage, silence).
    pub(super) refused: Arc<AtomicU64>,
    /// Handshakes in progress.
    handshakes: super::handshakes::Handshakes,
    /// Why the latest handshakes failed.
    pub(super) refusals: Arc<Mutex<Vec<String>>>,
}

impl Tcp {
    /// Sets up the engine's side (`hosts`) and binds the listener; threads start with
    /// [`start`].
    pub(super) fn new(
        config: &TcpConfig,
        key: Option<&FabricKey>,
        max_frame: usize,
    ) -> Result<(Tcp, Hosts, Option<TcpListener>)> {
        if key.is_none() && !config.insecure {
            return Err(Error::Config(
                "connections between hosts need a fabric key (ProtocolConfig.key, or `key` in \
                 the configuration file), or the fabric marked insecure"
                    .into(),
            ));
        }
        let directory = Arc::new(Directory::default());
        let sqpoll = config.sqpoll || super::options::sqpoll_from_env()?;
        let mut reactor = Reactor::new(max_frame, None, sqpoll)?;
        reactor.set_zero_copy(super::options::zero_copy_from_env(config.zerocopy)?);
        reactor.set_busy_receive(super::options::busy_receive_from_env(config.busy_receive)?);
        let mut hosts = Hosts::new(reactor, directory.clone(), config.force);
        hosts.set_down_after(super::options::down_after_from_env(config.down_after)?);
        let listener = match config.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .map_err(|e| Error::io(format!("listening for other hosts on {addr}"), e))?,
            ),
            None => None,
        };
        let listen = match &listener {
            Some(l) => Some(
                l.local_addr()
                    .map_err(|e| Error::io("reading the listen address", e))?,
            ),
            None => None,
        };
        let label = format!("pid {}", std::process::id());
        let mut tcp = Tcp {
            directory,
            joined: hosts.sender(),
            label,
            listen,
            key: key.cloned(),
            force: config.force,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
            refused: Arc::new(AtomicU64::new(0)),
            handshakes: Default::default(),
            refusals: Arc::new(Mutex::new(Vec::new())),
        };
        if let Some(a) = tcp.advertised() {
            tcp.label = a.to_string();
        }
        Ok((tcp, hosts, listener))
    }

    /// The address other hosts reach this process at: the listen address, or where it
    /// listens on every interface, `HF_TCP_ADDRESS` or the address of the interface that
    /// routes outward (loopback on a machine without a route).
    pub(super) fn advertised(&self) -> Option<SocketAddr> {
        let l = self.listen?;
        if !l.ip().is_unspecified() {
            return Some(l);
        }
        let ip = std::env::var("HF_TCP_ADDRESS")
            .ok()
            .and_then(|a| a.parse().ok())
            .or_else(|| {
                // Connecting a UDP socket sends nothing: it only picks the source address.
                let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
                s.connect("192.0.2.1:9").ok()?;
                s.local_addr().ok().map(|a| a.ip())
            })
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        Some(SocketAddr::new(ip, l.port()))
    }

    /// The fingerprint of the fabric key, if there is one.
    pub(super) fn fingerprint(&self) -> Option<[u8; 8]> {
        self.key.as_ref().map(|k| k.fingerprint())
    }

    /// Whether nodes of this host are reached over TCP too.
    pub(super) fn forced(&self) -> bool {
        self.force
    }

    fn credentials(&self) -> Credentials<'_> {
        match &self.key {
            Some(k) => Credentials::Key(k),
            None => Credentials::Insecure,
        }
    }

    fn refusal(&self, why: String) {
        refusal(&self.refused, &self.refusals, why);
    }

    /// Stops the listener and dialer threads.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
    }
}

fn refusal(count: &AtomicU64, reasons: &Mutex<Vec<String>>, why: String) {
    count.fetch_add(1, Ordering::Relaxed);
    let mut r = lock(reasons);
    if r.len() >= 8 {
        r.remove(0);
    }
    r.push(why);
}

/// Starts the listener (if `listener`) and the dialer of `peers`.
pub(super) fn start(
    inner: &Arc<Inner>,
    listener: Option<TcpListener>,
    peers: Vec<SocketAddr>,
) -> Result<()> {
    let tcp = inner.tcp.as_ref().expect("started with TCP");
    if let Some(l) = listener {
        l.set_nonblocking(true)
            .map_err(|e| Error::io("setting up the listener", e))?;
        let weak = Arc::downgrade(inner);
        let stop = tcp.stop.clone();
        let t = std::thread::Builder::new()
            .name("hf-listen".into())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match l.accept() {
                        Ok((s, from)) => {
                            let Some(inner) = weak.upgrade() else { return };
                            accept_one(&inner, s, from);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(LOOK)
                        }
                        Err(_) => std::thread::sleep(LOOK),
                    }
                }
            })
            .map_err(|e| Error::io("starting the listener thread", e))?;
        lock(&tcp.threads).push(t);
    }
    if !peers.is_empty() {
        let weak = Arc::downgrade(inner);
        let stop = tcp.stop.clone();
        let t = std::thread::Builder::new()
            .name("hf-dial".into())
            .spawn(move || dial_loop(weak, stop, peers))
            .map_err(|e| Error::io("starting the dialer thread", e))?;
        lock(&tcp.threads).push(t);
    }
    Ok(())
}

/// Runs the server's handshake with a new connection on a thread of its own (at most
/// [`HANDSHAKES`](super::handshakes::HANDSHAKES) at once: beyond them the oldest unfinished
/// one is cut off, so a flood of connections that say nothing costs neither threads nor
/// descriptors beyond them, and does not lock out a peer that completes its handshake).
fn accept_one(inner: &Arc<Inner>, mut s: TcpStream, from: SocketAddr) {
    let tcp = inner.tcp.as_ref().expect("listening with TCP");
    let Some((slot, cut)) = tcp.handshakes.enter(&s, from) else {
        tcp.refusal(format!("{from}: refused, no second handle for its socket"));
        return;
    };
    if let Some((old, after)) = cut {
        tcp.refusal(format!(
            "{old}: cut off after {} ms without finishing its handshake, to make room",
            after.as_millis()
        ));
    }
    let weak = Arc::downgrade(inner);
    let (fabric, key, joined) = (inner.fabric.clone(), tcp.key.clone(), tcp.joined.clone());
    let (refused, refusals) = (tcp.refused.clone(), tcp.refusals.clone());
    let spawned = std::thread::Builder::new()
        .name("hf-handshake".into())
        .spawn(move || {
            let _ = s.set_nonblocking(false);
            let credentials = match &key {
                Some(k) => Credentials::Key(k),
                None => Credentials::Insecure,
            };
            match handshake::server(&mut s, &fabric, credentials, HANDSHAKE) {
                Ok(session) => {
                    let label = if session.peer_label.is_empty() {
                        from.to_string()
                    } else {
                        session.peer_label
                    };
                    joined.send(Joined { stream: s, label });
                    // Taken (and this side's nodes announced) now, also by a protocol whose
                    // engine runs only inside calls.
                    if let Some(inner) = weak.upgrade() {
                        lock(&inner.engine).adopt_hosts();
                    }
                }
                Err(e) => refusal(&refused, &refusals, format!("{from}: {e}")),
            }
            drop(slot);
        });
    if spawned.is_err() {
        // The closure, and its slot, were dropped with the failed spawn.
        tcp.refusal(format!("{from}: no thread for its handshake"));
    }
}

/// Keeps a connection to each of `peers`: dials those not connected, again after theirs
/// drops.
fn dial_loop(weak: std::sync::Weak<Inner>, stop: Arc<AtomicBool>, peers: Vec<SocketAddr>) {
    let mut next_try: Vec<Instant> = vec![Instant::now(); peers.len()];
    while !stop.load(Ordering::Acquire) {
        let Some(inner) = weak.upgrade() else { return };
        for (i, &addr) in peers.iter().enumerate() {
            if Instant::now() < next_try[i] || lock(&inner.engine).host_linked(&addr.to_string()) {
                continue;
            }
            match dial(&inner, addr) {
                // The engine takes the connection now, so the next look finds it linked.
                Ok(_) => lock(&inner.engine).adopt_hosts(),
                Err(_) => next_try[i] = Instant::now() + REDIAL,
            }
        }
        drop(inner);
        std::thread::sleep(LOOK * 4);
    }
}

/// Connects to `addr` and runs the client's handshake; the engine gets the connection.
fn dial(inner: &Inner, addr: SocketAddr) -> Result<String> {
    let tcp = inner
        .tcp
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument("this protocol has no TCP configured".into()))?;
    let mut s = TcpStream::connect_timeout(&addr, HANDSHAKE)
        .map_err(|e| Error::io(format!("connecting to {addr}"), e))?;
    match handshake::client(
        &mut s,
        &inner.fabric,
        &tcp.label,
        tcp.credentials(),
        HANDSHAKE,
    ) {
        Ok(_) => {
            let label = addr.to_string();
            tcp.joined.send(Joined {
                stream: s,
                label: label.clone(),
            });
            Ok(label)
        }
        Err(e) => {
            tcp.refusal(format!("{addr}: {e}"));
            Err(e)
        }
    }
}

impl HyperFabricProtocol {
    /// Connects to the process listening on `addr` (see [`TcpConfig::listen`]) and waits
    /// until its nodes are known here: from then on they are sent to by name like this
    /// host's. Fails with `AuthenticationError` when either side refuses the other's key,
    /// `DuplicateNodeError` when both host a node of the same id, `IOError` when nothing
    /// listens there, `TimeoutError` when the peer does not announce its nodes in time.
    pub fn connect_host(&self, addr: SocketAddr) -> Result<()> {
        self.inner.check_process()?;
        let label = dial(&self.inner, addr)?;
        let until = Instant::now() + CONNECT_WAIT;
        loop {
            {
                let mut e = lock(&self.inner.engine);
                if !self.inner.running.load(Ordering::Acquire) {
                    e.poll();
                }
                if e.host_ready(&label) {
                    return Ok(());
                }
                if !e.host_linked(&label) {
                    if let Some(why) = e
                        .host_close_reasons()
                        .into_iter()
                        .rev()
                        .find(|r| r.starts_with(&label))
                    {
                        if why.contains("hosted here and by the peer") {
                            return Err(Error::DuplicateNode(why));
                        }
                        return Err(Error::io(
                            format!("connection to {why}"),
                            std::io::ErrorKind::ConnectionAborted.into(),
                        ));
                    }
                }
            }
            if Instant::now() >= until {
                return Err(Error::Timeout(format!(
                    "{addr} did not announce its nodes within {CONNECT_WAIT:?}"
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The address this protocol accepts other hosts' connections on, if it listens (the
    /// address it advertises when it listens on every interface).
    pub fn listen_address(&self) -> Option<SocketAddr> {
        self.inner.tcp.as_ref().and_then(|t| t.advertised())
    }

    /// How connections to other hosts receive, if TCP is configured: `"io_uring multishot"`
    /// (a multishot receive into provided buffers) or `"io_uring single"` (one receive at a
    /// time), then `", sqpoll"` when a kernel thread polls the ring (see
    /// [`super::TcpConfig::sqpoll`]); with busy receives (see
    /// [`super::TcpConfig::busy_receive`]) `"busy receive, io_uring provided buffers"` or
    /// `"busy receive, io_uring single"` (connections are read with plain `recv` while
    /// the engine spins, see `transport::tcp::reactor::direct`).
    pub fn transport_mode(&self) -> Option<String> {
        self.inner.tcp.as_ref()?;
        lock(&self.inner.engine)
            .host_mode()
            .map(|(m, sqpoll, busy)| {
                use crate::transport::tcp::RecvMode;
                let s = match (m, busy) {
                    (RecvMode::Multishot, false) => "io_uring multishot",
                    (RecvMode::Single, false) => "io_uring single",
                    (RecvMode::Multishot, true) => "busy receive, io_uring provided buffers",
                    (RecvMode::Single, true) => "busy receive, io_uring single",
                };
                match sqpoll {
                    true => format!("{s}, sqpoll"),
                    false => s.to_string(),
                }
            })
    }

    /// Zero-copy sends to other hosts (see [`super::TcpConfig::zerocopy`]), if TCP is
    /// configured: the smallest flight sent zero-copy (`None`: never, or the kernel lacks
    /// them), and what they did so far (how many the kernel copied anyway).
    pub fn tcp_zero_copy(
        &self,
    ) -> Option<(Option<usize>, crate::transport::tcp::reactor::ZcStats)> {
        self.inner.tcp.as_ref()?;
        lock(&self.inner.engine).host_zero_copy()
    }

    /// Why the latest connections to other hosts were refused (at the handshake) or closed
    /// (by a peer, an error, or a peer's bad frame), a few of each, oldest first.
    pub fn host_close_reasons(&self) -> Vec<String> {
        let Some(t) = &self.inner.tcp else {
            return Vec::new();
        };
        let mut r = lock(&t.refusals).clone();
        r.extend(lock(&self.inner.engine).host_close_reasons());
        r
    }

    /// What carries messages from this process to node `id` now: `"in-process"` (a node
    /// this protocol hosts), `"shared memory"` (another process of this host) or `"tcp"`.
    /// `NodeNotFoundError` for a node not known here.
    pub fn transport_to(&self, id: &str) -> Result<&'static str> {
        self.inner.check_process()?;
        let mut e = lock(&self.inner.engine);
        let peer = e.resolve(id)?;
        Ok(if e.hosts(peer.index) {
            "in-process"
        } else if e.over_tcp(peer.index) {
            "tcp"
        } else {
            "shared memory"
        })
    }

    /// Waits until node `id`, announced by a connection, is known here.
    pub(super) fn wait_for_remote(&self, id: &str) -> Result<()> {
        let until = Instant::now() + CONNECT_WAIT;
        loop {
            {
                let mut e = lock(&self.inner.engine);
                if !self.inner.running.load(Ordering::Acquire) {
                    e.poll();
                }
                // Known, and reached over a connection (a node of this host under forced
                // TCP is known from the registry before its process announces it).
                if e.resolve(id).is_ok_and(|p| e.over_tcp(p.index)) {
                    return Ok(());
                }
            }
            if Instant::now() >= until {
                return Err(Error::NodeNotFound(format!(
                    "node {id:?} is not hosted by the process its address names"
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
