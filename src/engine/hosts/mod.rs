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

mod inbound;
mod outbound;

use super::{Engine, Lane};
use crate::error::{Error, Result};
use crate::model::NodeSignature;
use crate::ring::{Producer, Region};
use crate::transport::tcp::control::{Announce, Announced};
use crate::transport::tcp::{is_remote, ConnId, Directory, Reactor};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

pub(super) use inbound::Waiting;
pub(super) use outbound::TcpOut;

/// An authenticated connection to another process, handed to the engine.
#[derive(Debug)]
pub struct Joined {
    /// The stream, past the handshake.
    pub stream: TcpStream,
    /// Who is at the other end (its address, or the label it gave).
    pub label: String,
}

/// What the engine knows of one connection.
pub(super) struct Link {
    pub(super) label: String,
    /// The peer's indices, mapped onto this process's.
    pub(super) theirs: FxHashMap<u32, u32>,
    /// This process's indices of the nodes the peer hosts.
    pub(super) hosted: Vec<u32>,
    /// Whether its first announcement arrived.
    pub(super) ready: bool,
}

/// Counters of the connections between hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// Connections open now.
    pub connections: u64,
    /// Connections closed (by the peer, an error, or a peer's bad frame).
    pub closed: u64,
    /// Frames refused (a bad announcement, a frame naming an unannounced node or one kind
    /// of frame that never crosses hosts): the connection is closed.
    pub refused: u64,
}

/// The engine's connections to other hosts (see the module documentation).
pub struct Hosts {
    reactor: Arc<Mutex<Reactor>>,
    links: FxHashMap<ConnId, Link>,
    directory: Arc<Directory>,
    incoming: Receiver<Joined>,
    sender: Sender<Joined>,
    /// The connection of the process hosting each node reached over TCP.
    route: FxHashMap<u32, ConnId>,
    /// Inbound rings of frames that arrived, by (source, destination, lane), mapped.
    rings: FxHashMap<(u32, u32, Lane), Producer<Region>>,
    /// Frames that found their ring full, in arrival order.
    backlog: VecDeque<Waiting>,
    backlog_bytes: usize,
    /// Buffers of frames that left the backlog, for the next ones.
    spare: Vec<Vec<u8>>,
    /// What was announced: index -> (generation, hosted).
    announced: FxHashMap<u32, (u64, bool)>,
    announced_epochs: (u64, u64),
    /// Use TCP also toward nodes of this host that a connection hosts.
    force: bool,
    counters: HostCounters,
    /// Why connections closed, newest last (at most a few kept).
    pub(super) reasons: VecDeque<String>,
}

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
    pub fn new(reactor: Reactor, directory: Arc<Directory>, force: bool) -> Hosts {
        let (sender, incoming) = std::sync::mpsc::channel();
        Hosts {
            reactor: Arc::new(Mutex::new(reactor)),
            links: FxHashMap::default(),
            directory,
            incoming,
            sender,
            route: FxHashMap::default(),
            rings: FxHashMap::default(),
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            spare: Vec::new(),
            announced: FxHashMap::default(),
            announced_epochs: (u64::MAX, u64::MAX),
            force,
            counters: HostCounters::default(),
            reasons: VecDeque::new(),
        }
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
    pub fn sender(&self) -> Sender<Joined> {
        self.sender.clone()
    }

    /// The receive mode of the reactor.
    pub fn mode(&self) -> crate::transport::tcp::RecvMode {
        lock(&self.reactor).mode()
    }
}

pub(super) fn lock(r: &Mutex<Reactor>) -> std::sync::MutexGuard<'_, Reactor> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// Connects this engine to other hosts through `hosts`.
    pub fn set_hosts(&mut self, hosts: Hosts) {
        self.hosts = Some(hosts);
    }

    /// How the connections to other hosts receive, if there are any.
    pub fn host_mode(&self) -> Option<crate::transport::tcp::RecvMode> {
        self.hosts.as_ref().map(Hosts::mode)
    }

    /// The counters of the connections to other hosts (zero without them).
    pub fn host_counters(&self) -> HostCounters {
        self.hosts
            .as_ref()
            .map_or_else(HostCounters::default, |h| HostCounters {
                connections: h.links.len() as u64,
                ..h.counters
            })
    }

    /// Whether a connection with label `label` is up and its peer's nodes are known.
    pub fn host_ready(&self, label: &str) -> bool {
        self.hosts
            .as_ref()
            .is_some_and(|h| h.links.values().any(|l| l.label == label && l.ready))
    }

    /// Hands the frames queued behind sends in flight to the kernel, waiting (for room in
    /// the sockets) until `until`: what a call that sent must do before it returns when no
    /// engine thread runs. `false` when frames are still queued at `until`.
    pub fn flush_hosts(&mut self, until: std::time::Instant) -> bool {
        let Some(h) = self.hosts.as_ref() else {
            return true;
        };
        let reactor = h.reactor.clone();
        let mut spins = 0u32;
        loop {
            spins = spins.wrapping_add(1);
            {
                let mut r = lock(&reactor);
                if !r.has_queued() {
                    return true;
                }
                r.reap_sends();
                if !r.has_queued() {
                    return true;
                }
            }
            // The clock now and then: a read costs as much as a look.
            if spins % 256 == 0 && std::time::Instant::now() >= until {
                return false;
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

    /// The outbound channel to `via` over connection `conn`.
    pub(super) fn tcp_out(&self, conn: ConnId, via: u32, lane: Lane) -> Option<TcpOut> {
        let h = self.hosts.as_ref()?;
        Some(TcpOut::new(h.reactor.clone(), conn, via, lane))
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
    pub(super) fn poll_hosts(&mut self) -> usize {
        self.take_joined();
        self.announce_changes();
        let n = self.reap();
        if self.hosts.as_ref().is_some_and(|h| !h.backlog.is_empty()) {
            self.flush_backlog();
        }
        n
    }

    fn take_joined(&mut self) {
        let Some(h) = self.hosts.as_mut() else { return };
        let mut added = Vec::new();
        while let Ok(j) = h.incoming.try_recv() {
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
                    theirs: FxHashMap::default(),
                    hosted: Vec::new(),
                    ready: false,
                },
            );
        }
        for (id, _) in added {
            let all = self.announcement(None);
            self.send_announce(Some(id), &Announce::Nodes(all));
        }
    }

    /// Every node this process knows, as announced: hosted ones flagged. With `only`,
    /// those whose (generation, hosted) differs from it.
    fn announcement(&mut self, only: Option<&FxHashMap<u32, (u64, bool)>>) -> Vec<Announced> {
        let _ = self.refresh_peers();
        let mut out = Vec::new();
        let mut push = |index: u32, generation: u64, hosted: bool, sig: &NodeSignature| {
            if only.is_none_or(|a| a.get(&index) != Some(&(generation, hosted))) {
                out.push(Announced {
                    index,
                    generation,
                    hosted,
                    signature: sig.clone(),
                });
            }
        };
        for e in self.peers.values() {
            push(
                e.index,
                e.generation,
                self.hosted.contains_key(&e.index),
                &e.signature,
            );
        }
        if let Some(h) = &self.hosts {
            for n in h.directory.list().iter().filter(|n| n.up) {
                push(n.index, n.generation, false, &n.signature);
            }
        }
        out
    }

    /// Announces to every connection what changed since the last announcement.
    fn announce_changes(&mut self) {
        let Some(h) = self.hosts.as_ref() else { return };
        let epochs = (self.registry.nodes_epoch(), h.directory.epoch());
        if epochs == h.announced_epochs {
            return;
        }
        let before = h.announced.clone();
        let changed = self.announcement(Some(&before));
        let now: FxHashMap<u32, (u64, bool)> = {
            let all = self.announcement(None);
            all.iter()
                .map(|a| (a.index, (a.generation, a.hosted)))
                .collect()
        };
        let gone: Vec<u32> = before
            .keys()
            .filter(|i| !now.contains_key(i))
            .copied()
            .collect();
        if !changed.is_empty() {
            self.send_announce(None, &Announce::Nodes(changed));
        }
        if !gone.is_empty() {
            self.send_announce(None, &Announce::Gone(gone));
        }
        let h = self.hosts.as_mut().expect("checked above");
        h.announced = now;
        h.announced_epochs = epochs;
    }

    /// Queues announcement `a` on connection `to`, or on all.
    fn send_announce(&mut self, to: Option<ConnId>, a: &Announce) {
        let Some(h) = self.hosts.as_mut() else { return };
        let frames = match a.encode() {
            Ok(f) => f,
            Err(e) => {
                h.reasons.push_back(format!("announcing nodes: {e}"));
                return;
            }
        };
        let ids: Vec<ConnId> = match to {
            Some(id) => vec![id],
            None => h.links.keys().copied().collect(),
        };
        let mut r = lock(&h.reactor);
        for id in ids {
            for (kind, body) in &frames {
                let fh = crate::transport::tcp::FrameHeader {
                    slot: crate::ring::SlotHeader {
                        len: body.len() as u32,
                        kind: *kind,
                        flags: 0,
                        aux: 0,
                        src: 0,
                    },
                    dst: 0,
                    lane: Lane::Latency,
                };
                // A connection whose queue is full this long is stuck: closed, so its
                // peer reconnects and learns everything again.
                if !matches!(r.send(id, &fh, &[body]), Ok(true)) {
                    r.close(id);
                }
            }
        }
    }

    /// Applies announcement `a` from connection `id`; an error closes it.
    fn apply_announce(&mut self, id: ConnId, a: Announce) -> Result<()> {
        let mut mapped = Vec::new();
        match a {
            Announce::Nodes(nodes) => {
                for n in nodes {
                    let id_str = n.signature.node_id.as_str();
                    let mine = if let Some(&i) = self.by_name.get(id_str) {
                        if n.hosted {
                            return Err(Error::DuplicateNode(format!(
                                "node {id_str:?} is hosted here and by the peer host too"
                            )));
                        }
                        i
                    } else if let Some(e) = self.peers.get(id_str) {
                        e.index
                    } else {
                        let h = self.hosts.as_ref().expect("announce without hosts");
                        let label = if n.hosted {
                            h.links.get(&id).map_or("", |l| l.label.as_str())
                        } else {
                            ""
                        };
                        h.directory.upsert(&n.signature, n.generation, label)
                    };
                    mapped.push((n.index, mine, n.hosted));
                }
                let h = self.hosts.as_mut().expect("announce without hosts");
                let Some(link) = h.links.get_mut(&id) else {
                    return Ok(());
                };
                for (theirs, mine, hosted) in mapped {
                    link.theirs.insert(theirs, mine);
                    if hosted {
                        if !link.hosted.contains(&mine) {
                            link.hosted.push(mine);
                        }
                        // Two processes that dialled each other have two connections: frames
                        // keep the one they took (switching would reorder them).
                        let open = |c: &ConnId| *c != id && lock(&h.reactor).is_open(*c);
                        if !h.route.get(&mine).is_some_and(open) {
                            h.route.insert(mine, id);
                        }
                    }
                }
                link.ready = true;
                self.hops.clear();
            }
            Announce::Gone(indices) => {
                let h = self.hosts.as_mut().expect("announce without hosts");
                let Some(link) = h.links.get_mut(&id) else {
                    return Ok(());
                };
                let mut down = Vec::new();
                for i in indices {
                    if let Some(mine) = link.theirs.remove(&i) {
                        if let Some(p) = link.hosted.iter().position(|&x| x == mine) {
                            link.hosted.swap_remove(p);
                            h.route.remove(&mine);
                            down.push(mine);
                        }
                    }
                }
                let downed = h.directory.set_down(&down);
                self.lost_remote(&downed);
            }
        }
        Ok(())
    }

    /// Closes connection `id` for `why` (a bad frame from its peer).
    fn refuse(&mut self, id: ConnId, why: &str) {
        if self
            .hosts
            .as_ref()
            .is_some_and(|h| !h.links.contains_key(&id))
        {
            return;
        }
        if let Some(h) = self.hosts.as_mut() {
            h.counters.refused += 1;
            let label = h.links.get(&id).map_or("?", |l| l.label.as_str());
            h.reasons.push_back(format!("{label}: {why}"));
            lock(&h.reactor).close(id);
        }
    }

    /// Forgets connection `id`, which closed: its peer's nodes are down.
    fn closed(&mut self, id: ConnId, why: &str) {
        let Some(h) = self.hosts.as_mut() else { return };
        let Some(link) = h.links.remove(&id) else {
            return;
        };
        h.counters.closed += 1;
        h.reasons.push_back(format!("{}: {why}", link.label));
        while h.reasons.len() > 8 {
            h.reasons.pop_front();
        }
        // A node another connection hosts too moves to it; the others are down.
        let mut gone = Vec::new();
        for &i in &link.hosted {
            if h.route.get(&i).is_some_and(|c| *c != id) {
                continue;
            }
            match h.links.iter().find(|(_, l)| l.hosted.contains(&i)) {
                Some((&other, _)) => {
                    h.route.insert(i, other);
                }
                None => {
                    h.route.remove(&i);
                    gone.push(i);
                }
            }
        }
        let remote: Vec<u32> = gone.iter().copied().filter(|&i| is_remote(i)).collect();
        let mut lost = h.directory.set_down(&remote);
        lost.extend(gone.iter().filter(|&&i| !is_remote(i)));
        h.backlog.retain(|w| w.conn != id);
        h.backlog_bytes = h.backlog.iter().map(|w| w.bytes.len()).sum();
        // Channels on the closed connection lead nowhere.
        self.out
            .retain(|&(_, dst, _), _| !link.hosted.contains(&dst));
        self.lost_remote(&lost);
    }

    /// Nodes reached over TCP that are gone: their channels are dropped and the requests
    /// waiting on them fail.
    fn lost_remote(&mut self, nodes: &[u32]) {
        if nodes.is_empty() {
            return;
        }
        self.hops.clear();
        self.out.retain(|&(_, dst, _), _| !nodes.contains(&dst));
        for &n in nodes {
            self.out_generation.remove(&n);
            self.partial.drop_source(n);
        }
        for p in self.pending.values_mut() {
            if p.result.is_none() && nodes.contains(&p.dst) {
                p.complete(Err(Error::NodeNotFound(format!(
                    "the connection to the host of node index {} closed before it answered",
                    p.dst
                ))));
            }
        }
        if !self.watched.is_empty() {
            self.wake_watched(None);
        }
    }
}
