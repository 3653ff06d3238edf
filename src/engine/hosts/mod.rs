//! Other hosts: the engine's TCP connections (one io_uring [`Reactor`] for all), what each
//! peer process announced, and the channels to and from its nodes.
//!
//! Frames on a connection carry the sending process's node indices. Each side announces
//! every node it knows under its index ([`Announce`]): the nodes it hosts, the other nodes
//! of its host, and the nodes it learned from other connections. The receiver maps every
//! index of a frame onto its own through those announcements before the frame joins an
//! inbound ring, so dispatch, forwarding and answers work as they do on one host. A node of
//! another host gets an index of this process's [`Directory`] (see
//! [`REMOTE_BASE`](crate::transport::tcp::REMOTE_BASE)).
//!
//! Connections arrive authenticated (the handshake ran on another thread) through
//! [`Hosts::sender`]; a connection that closes marks the nodes its peer hosted down, and the
//! requests waiting on them fail.

mod announce;
mod backlog;
mod closed;
mod in_place;
mod inbound;
mod into_buffer;
mod outbound;
mod receipts;
mod straight;
mod timing;

pub(crate) use timing::ProbeCounts;

use super::{Engine, Lane};
use crate::ring::{Producer, Region};
use crate::transport::tcp::control::Announce;
use crate::transport::tcp::{is_remote, ConnId, Directory, Reactor};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(super) use inbound::Waiting;
pub(super) use outbound::TcpOut;
pub use straight::Want;

/// How long a send waits for its connection to take what it queued (see
/// [`Engine::flush_toward`]).
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// What an announcement said of an index: generation, hosted, node id.
type Said = (u64, bool, super::NodeName);

/// An authenticated connection to another process, handed to the engine.
#[derive(Debug)]
pub struct Joined {
    /// The stream, past the handshake.
    pub stream: TcpStream,
    /// Who is at the other end (its address, or the label it gave).
    pub label: String,
}

/// Where authenticated connections wait for the engine to take them. The engine looks at
/// every poll: one load of a flag while nothing waits (a channel's empty receive cost a
/// spinning engine more than a frame's decoding).
#[derive(Debug, Clone, Default)]
pub struct Joins(Arc<JoinQueue>);

/// What [`Joins`] shares: the connections, and whether there are any.
#[derive(Debug, Default)]
struct JoinQueue {
    any: AtomicBool,
    list: Mutex<Vec<Joined>>,
}

impl Joins {
    /// Hands `j` to the engine.
    pub fn send(&self, j: Joined) {
        let mut list = lock(&self.0.list);
        list.push(j);
        self.0.any.store(true, Ordering::Release);
    }

    /// What waits, oldest first (nothing without a lock while the flag is down).
    fn take(&self) -> Vec<Joined> {
        if !self.0.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut list = lock(&self.0.list);
        self.0.any.store(false, Ordering::Relaxed);
        std::mem::take(&mut *list)
    }
}

/// What the engine knows of one connection.
pub(super) struct Link {
    pub(super) label: String,
    /// The peer process's instance (see [`Hosts::instance`]), from its first announcement.
    pub(super) instance: Option<u64>,
    /// The peer's indices, mapped onto this process's.
    pub(super) theirs: FxHashMap<u32, u32>,
    /// This process's indices of the nodes the peer hosts.
    pub(super) hosted: Vec<u32>,
    /// Whether its first announcement arrived.
    pub(super) ready: bool,
    /// When the last frame (or heartbeat) came on it.
    pub(super) heard: std::time::Instant,
    /// Its peer sends heartbeats (its background thread runs): its silence means it stopped.
    pub(super) beats: bool,
    /// Frames of ring kinds taken off it so far, and how many of them the last receipt
    /// sent on it covered (see [`receipts`]).
    pub(super) arrived: u64,
    pub(super) receipted: u64,
    /// Its timing probes (see [`timing`]).
    timing: timing::Timing,
}

/// Sleeps for an idle engine thread that has connections: in `io_uring_enter` on the
/// reactor's ring, woken by data from another host and by the engine's doorbell alike (a
/// futex wait armed on the ring), without holding the reactor (senders go on meanwhile).
pub struct IdleWaiter {
    reactor: Arc<Mutex<Reactor>>,
    fd: std::os::fd::RawFd,
}

impl IdleWaiter {
    /// Sleeps until data arrives, `word` no longer holds `expected` (the doorbell rang),
    /// or `timeout` passes. `false` when the kernel cannot wait on the doorbell in the ring
    /// (the caller then waits on the futex itself).
    pub fn wait(
        &self,
        word: &std::sync::atomic::AtomicU32,
        expected: u32,
        timeout: std::time::Duration,
    ) -> bool {
        {
            let mut r = lock(&self.reactor);
            if r.has_later() {
                // Completions a sender set aside, a landing resumed: the next poll
                // takes them, no sleep.
                return true;
            }
            if !r.arm_bell(word, expected) {
                return false;
            }
            // Connections read directly while the engine spun wake it only with a
            // receive armed.
            r.arm_for_sleep();
        }
        crate::sys::uring::wait_for_completion(self.fd, timeout);
        lock(&self.reactor).woke();
        true
    }
}

/// Counters of the connections between hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// Connections closed because nothing came on them within the silence limit.
    pub silent: u64,
    /// Connections open now.
    pub connections: u64,
    /// Connections closed (by the peer, an error, or a peer's bad frame).
    pub closed: u64,
    /// Frames refused (a bad announcement, a frame naming an unannounced node or one kind
    /// of frame that never crosses hosts): the connection is closed.
    pub refused: u64,
    /// Connections not receiving now because their frames wait for a reader that is
    /// behind (see `engine::hosts::inbound`).
    pub held: u64,
    /// Times a connection stopped receiving for that reason.
    pub holds: u64,
    /// Frames added to their message as they arrived, not through an inbound ring (see
    /// `engine::hosts::in_place`).
    pub in_place: u64,
    /// Of those, frames the kernel received straight into their message.
    pub landed: u64,
    /// Messages handed straight to the receive that polled the engine (see
    /// `engine::hosts::straight`).
    pub handed: u64,
    /// Of those, large messages the kernel received straight into the buffer of the
    /// waiting `recv_into` (see `engine::hosts::into_buffer`).
    pub into_buffers: u64,
    /// Receive buffers taken back from a message landing into them, which then went on
    /// through the reassembly (the wait ended first, or another thread polled).
    pub taken_back: u64,
    /// Notes of one-way messages let go unreceipted because a peer sent no receipts for
    /// too long (see `transport::tcp::reactor::NOTES_LIMIT`).
    pub notes_overflowed: u64,
}

/// The engine's connections to other hosts (see the module documentation).
pub struct Hosts {
    reactor: Arc<Mutex<Reactor>>,
    links: FxHashMap<ConnId, Link>,
    directory: Arc<Directory>,
    incoming: Joins,
    /// The connection of the process hosting each node reached over TCP.
    route: FxHashMap<u32, ConnId>,
    /// Inbound rings of frames that arrived, by (source, destination, lane), mapped.
    rings: FxHashMap<(u32, u32, Lane), Producer<Region>>,
    /// Frames that found their ring full, in arrival order.
    backlog: VecDeque<Waiting>,
    backlog_bytes: usize,
    /// Connections whose receive is paused while their frames wait in the backlog.
    holding: Vec<ConnId>,
    /// Buffers of frames that left the backlog, for the next ones.
    spare: Vec<Vec<u8>>,
    /// What was announced: index -> (generation, hosted, id).
    announced: FxHashMap<u32, Said>,
    announced_epochs: (u64, u64),
    /// Use TCP also toward nodes of this host that a connection hosts.
    force: bool,
    counters: HostCounters,
    /// The message buffers lent to connections landing a frame into them (see
    /// `in_place`): at most one a connection.
    lending: FxHashMap<ConnId, in_place::Lending>,
    /// The message landing into the buffer of a waiting receive, if one is.
    into: Option<into_buffer::Into>,
    /// Why connections closed, newest last (at most a few kept).
    pub(super) reasons: VecDeque<String>,
    /// This process's instance: random, never 0, carried by the headers of its
    /// announcements. Two connections whose announcements carry one instance come from one
    /// process (two processes that dialled each other), which may host a node on both; two
    /// instances hosting one node are two hosts claiming it.
    instance: u64,
    /// A connection on which nothing came for this long is closed (its peer's nodes go
    /// down); heartbeats go out five times as often.
    down_after: std::time::Duration,
    next_beat: std::time::Instant,
    /// When the connections were last read.
    pub(super) reaped: std::time::Instant,
    /// What was sent over connections, by (sending node, next node): kept apart from the
    /// channels, which are made anew when routes change.
    sent: FxHashMap<(u32, u32), Arc<outbound::Sent>>,
    /// Whether this engine sends timing probes on its connections (see [`timing`]).
    probing: bool,
}

/// How long a connection may stay silent before it is taken for dead, by default.
pub const TCP_DOWN_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for Hosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosts")
            .field("links", &self.links.len())
            .finish()
    }
}

impl Hosts {
    /// Connections on `reactor`, their peers' nodes in `directory`. With `force`, nodes of
    /// this host that a connection hosts are reached over it too (a test or benchmark of
    /// TCP on one machine).
    pub fn new(mut reactor: Reactor, directory: Arc<Directory>, force: bool) -> Hosts {
        // Large frames are offered with their message header, which says where they go
        // (see `in_place`).
        reactor.set_landing(crate::engine::MSG_HEADER);
        Hosts {
            reactor: Arc::new(Mutex::new(reactor)),
            links: FxHashMap::default(),
            directory,
            incoming: Joins::default(),
            route: FxHashMap::default(),
            rings: FxHashMap::default(),
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            holding: Vec::new(),
            spare: Vec::new(),
            announced: FxHashMap::default(),
            announced_epochs: (u64::MAX, u64::MAX),
            force,
            counters: HostCounters::default(),
            lending: FxHashMap::default(),
            into: None,
            reasons: VecDeque::new(),
            down_after: TCP_DOWN_AFTER,
            next_beat: std::time::Instant::now(),
            probing: false,
            reaped: std::time::Instant::now(),
            sent: FxHashMap::default(),
            instance: loop {
                let mut b = [0u8; 8];
                // Without the system's randomness, the time and pid still tell processes
                // apart.
                if getrandom::fill(&mut b).is_err() {
                    let t = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64);
                    b = (t ^ (std::process::id() as u64) << 40).to_le_bytes();
                }
                let i = u64::from_le_bytes(b);
                if i != 0 {
                    break i;
                }
            },
        }
    }

    /// Tells every peer that this process stops beating (its background thread stopped):
    /// they no longer judge its connections by their silence.
    pub(super) fn stop_beating(&self) {
        lock(&self.reactor).beat_all(
            crate::transport::tcp::control::KIND_BEAT,
            crate::transport::tcp::control::BEAT_STOP,
        );
    }

    /// Sets how long a connection may stay silent before it is closed (at least 50 ms).
    pub fn set_down_after(&mut self, d: std::time::Duration) {
        self.down_after = d.max(std::time::Duration::from_millis(50));
    }

    /// The rings that frames of the backlog wait for.
    pub(super) fn backlog_keys(&self) -> Vec<(u32, u32, Lane)> {
        let mut keys: Vec<_> = self.backlog.iter().map(|w| w.key()).collect();
        keys.dedup();
        keys
    }

    /// Keeps the inbound rings of frames over TCP whose key `keep` accepts.
    pub(super) fn keep_rings(&mut self, keep: impl Fn((u32, u32, Lane)) -> bool) {
        self.rings.retain(|&k, _| keep(k));
    }

    /// The generation of remote node `index` while it is up.
    pub(super) fn directory_live(&self, index: u32) -> Option<u64> {
        self.directory.live_generation(index)
    }

    /// The directory of other hosts' nodes.
    pub(super) fn directory_handle(&self) -> Arc<Directory> {
        self.directory.clone()
    }

    /// Where authenticated connections are handed to the engine.
    pub fn sender(&self) -> Joins {
        self.incoming.clone()
    }

    /// The receive mode of the reactor, whether a kernel thread polls its ring, and whether
    /// it reads connections directly while the engine spins.
    pub fn mode(&self) -> (crate::transport::tcp::RecvMode, bool, bool) {
        let r = lock(&self.reactor);
        (r.mode(), r.sqpoll(), r.busy_receive())
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// Connects this engine to other hosts through `hosts`.
    pub fn set_hosts(&mut self, hosts: Hosts) {
        // While a handler runs long, the watch thread beats on the connections too.
        self.handler_watch.set_reactor(hosts.reactor.clone());
        self.hosts = Some(hosts);
    }

    /// How the connections to other hosts receive, if there are any.
    pub fn host_mode(&self) -> Option<(crate::transport::tcp::RecvMode, bool, bool)> {
        self.hosts.as_ref().map(Hosts::mode)
    }

    /// The smallest flight the reactor sends zero-copy (`None`: never, or the kernel lacks
    /// them), and what its zero-copy sends did.
    pub fn host_zero_copy(
        &self,
    ) -> Option<(Option<usize>, crate::transport::tcp::reactor::ZcStats)> {
        let h = self.hosts.as_ref()?;
        let r = lock(&h.reactor);
        Some((r.zero_copy_from(), r.zc_stats()))
    }

    /// What an idle engine thread sleeps on when it has connections to other hosts.
    pub fn idle_waiter(&self) -> Option<IdleWaiter> {
        let h = self.hosts.as_ref()?;
        let fd = lock(&h.reactor).ring_fd();
        Some(IdleWaiter {
            reactor: h.reactor.clone(),
            fd,
        })
    }

    /// The counters of the connections to other hosts (zero without them).
    pub fn host_counters(&self) -> HostCounters {
        self.hosts
            .as_ref()
            .map_or_else(HostCounters::default, |h| HostCounters {
                connections: h.links.len() as u64,
                held: h.holding.len() as u64,
                notes_overflowed: lock(&h.reactor).notes_overflowed(),
                ..h.counters
            })
    }

    /// Whether a connection with label `label` is up and its peer's nodes are known.
    pub fn host_ready(&self, label: &str) -> bool {
        self.hosts
            .as_ref()
            .is_some_and(|h| h.links.values().any(|l| l.label == label && l.ready))
    }

    /// Hands the frames queued behind a send in flight on the connection toward `via` to
    /// the kernel, waiting for room in its socket until `until` (at most a few
    /// milliseconds): what a call that sent does before it returns when no engine thread
    /// runs. What is still queued then leaves at the next call that drives the engine.
    pub fn flush_toward(&mut self, via: u32, until: std::time::Instant) {
        let Some(conn) = self.tcp_route(via) else {
            return;
        };
        let reactor = self.hosts.as_ref().expect("routed").reactor.clone();
        let until = until.min(std::time::Instant::now() + FLUSH_WAIT);
        let mut spins = 0u32;
        loop {
            {
                let mut r = lock(&reactor);
                if !r.is_queued(conn) {
                    return;
                }
                r.reap_sends();
                if !r.is_queued(conn) {
                    return;
                }
            }
            spins = spins.wrapping_add(1);
            // The clock now and then: a read costs as much as a look.
            if spins % 256 == 0 && std::time::Instant::now() >= until {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Whether a connection with label `label` is open (its peer's nodes may not be known
    /// yet).
    pub fn host_linked(&self, label: &str) -> bool {
        self.hosts
            .as_ref()
            .is_some_and(|h| h.links.values().any(|l| l.label == label))
    }

    /// Takes the connections handed to the engine (without delivering anything): for a
    /// thread that handed one and must find it linked next.
    pub fn adopt_hosts(&mut self) {
        self.take_joined();
    }

    /// Why the latest connections closed, oldest first.
    pub fn host_close_reasons(&self) -> Vec<String> {
        self.hosts
            .as_ref()
            .map(|h| h.reasons.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The connection that reaches `dst`, when frames to it go over TCP.
    pub(super) fn tcp_route(&self, dst: u32) -> Option<ConnId> {
        let h = self.hosts.as_ref()?;
        if !is_remote(dst) && !h.force {
            return None;
        }
        h.route.get(&dst).copied()
    }

    /// Whether frames to `index` go over TCP (a node of another host, or one of this host
    /// that a connection hosts while TCP is forced).
    pub fn over_tcp(&self, index: u32) -> bool {
        is_remote(index) || self.tcp_route(index).is_some()
    }

    /// The outbound channel to `via` over connection `conn` (what changed in this
    /// process's nodes is announced first: the first frame of a node registered since
    /// names it).
    pub(super) fn tcp_out(
        &mut self,
        conn: ConnId,
        src: u32,
        via: u32,
        lane: Lane,
    ) -> Option<TcpOut> {
        self.announce_changes();
        let h = self.hosts.as_mut()?;
        let sent = h.sent.entry((src, via)).or_default().clone();
        Some(TcpOut::new(h.reactor.clone(), conn, via, lane, sent))
    }

    /// What was sent over connections, by (sending node, next node), with the bytes queued
    /// now on the channels of each pair and their limit (slot-sized units, as a ring's).
    /// Pairs whose nodes are gone are forgotten.
    pub(crate) fn connection_traffic(&mut self) -> Vec<((u32, u32), [u64; 4])> {
        let mut queued: FxHashMap<(u32, u32), (u64, u64)> = FxHashMap::default();
        for ((src, via, _), out) in &self.out {
            if let (true, Some((_, _, q, c))) = (out.is_connection(), out.traffic()) {
                let e = queued.entry((*src, *via)).or_default();
                e.0 += q;
                e.1 += c;
            }
        }
        let known = |e: &Engine, i: u32| e.id_of(i).is_some();
        let Some(h) = self.hosts.as_ref() else {
            return Vec::new();
        };
        let gone: Vec<(u32, u32)> = h
            .sent
            .keys()
            .filter(|&&(s, v)| !known(self, s) || !known(self, v))
            .copied()
            .collect();
        let h = self.hosts.as_mut().expect("checked above");
        for k in gone {
            h.sent.remove(&k);
        }
        let mut out: Vec<((u32, u32), [u64; 4])> = h
            .sent
            .iter()
            .map(|(k, s)| {
                let (m, b) = s.get();
                let (q, c) = queued.get(k).copied().unwrap_or_default();
                (*k, [m, b, q, c])
            })
            .collect();
        out.sort_unstable_by_key(|(k, _)| *k);
        out
    }

    /// The generation of node `index` while it is live: a registry index, or a node of
    /// another host whose connection is up.
    pub(super) fn live_generation(&self, index: u32) -> Option<u64> {
        if is_remote(index) {
            self.hosts
                .as_ref()
                .and_then(|h| h.directory.live_generation(index))
        } else {
            self.registry.live_generation(index)
        }
    }

    /// The node of another host named `id`, while it is up.
    pub(super) fn remote_by_name(&self, id: &str) -> Option<(u32, u64)> {
        let n = self.hosts.as_ref()?.directory.lookup(id)?;
        n.up.then_some((n.index, n.generation))
    }

    /// The id of node `index` of another host.
    pub(super) fn remote_id(&self, index: u32) -> Option<String> {
        let h = self.hosts.as_ref()?;
        h.directory.get(index).map(|n| n.signature.node_id)
    }

    /// One pass over the connections: takes the new ones, announces what changed, reaps
    /// frames into inbound rings. Returns how many frames arrived.
    pub(super) fn poll_hosts(&mut self, want: Option<&mut Want<'_, '_>>) -> usize {
        self.take_joined();
        self.announce_changes();
        let n = self.reap(want);
        if self.hosts.as_ref().is_some_and(|h| !h.backlog.is_empty()) {
            self.flush_backlog();
        }
        self.hold_backlogged();
        n
    }

    fn take_joined(&mut self) {
        let Some(h) = self.hosts.as_mut() else { return };
        let joined = h.incoming.take();
        if joined.is_empty() {
            return;
        }
        let mut added = Vec::new();
        for j in joined {
            match lock(&h.reactor).add(j.stream) {
                Ok(id) => added.push((id, j.label)),
                Err(e) => h.reasons.push_back(format!("{}: {e}", j.label)),
            }
        }
        for (id, label) in &added {
            h.links.insert(
                *id,
                Link {
                    label: label.clone(),
                    instance: None,
                    theirs: FxHashMap::default(),
                    hosted: Vec::new(),
                    ready: false,
                    heard: std::time::Instant::now(),
                    beats: false,
                    arrived: 0,
                    receipted: 0,
                    timing: timing::Timing::new(),
                },
            );
        }
        for (id, _) in added {
            let all = self.announcement(None);
            self.send_announce(Some(id), &Announce::Nodes(all));
        }
        if self.beating {
            // The peer learns at once that this process beats.
            self.beat_now();
        }
    }

    /// Sends heartbeats on every connection (five times per silence limit, while the
    /// background thread runs) and closes the connections whose peer beats and on which
    /// nothing came within the limit: a peer whose process stopped
    /// (SIGSTOP, a frozen machine) or whose host is unreachable while its connection seems
    /// open is taken for dead like one whose connection closed. Run by the periodic tick,
    /// which also sends the receipts due.
    pub(super) fn beat_hosts(&mut self, now: std::time::Instant) {
        self.send_receipts(false);
        let Some(h) = self.hosts.as_mut() else { return };
        if now < h.next_beat || h.links.is_empty() {
            return;
        }
        h.next_beat = now + h.down_after / 5;
        if self.beating {
            lock(&h.reactor).beat_all(crate::transport::tcp::control::KIND_BEAT, 0);
        }
        // Silence is judged over the time this engine read its connections: one that did not
        // (a handler that ran long) has not heard what came meanwhile, and a connection held
        // while its frames wait for room is not read at all.
        let read = h.reaped;
        let holding = &h.holding;
        let silent: Vec<ConnId> = h
            .links
            .iter()
            .filter(|(id, l)| {
                l.beats
                    && !holding.contains(id)
                    && read.saturating_duration_since(l.heard) > h.down_after
            })
            .map(|(&id, _)| id)
            .collect();
        let limit = h.down_after;
        for id in silent {
            if let Some(h) = self.hosts.as_mut() {
                h.counters.silent += 1;
            }
            self.refuse(id, &format!("nothing came on it for {limit:?}"));
        }
    }

    /// Sends a heartbeat on every connection now (the peers learn at once that this process
    /// beats).
    pub(super) fn beat_now(&self) {
        if let Some(h) = self.hosts.as_ref() {
            lock(&h.reactor).beat_all(crate::transport::tcp::control::KIND_BEAT, 0);
        }
    }
}
