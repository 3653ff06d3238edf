//! Health: the periodic work of [`Engine::tick`] (request deadlines, heartbeats, the
//! liveness of peers' processes) and failure detection from missed heartbeats.

use super::Engine;
use std::collections::HashSet;

/// Interval of heartbeats and of failure detection.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
/// Heartbeats a node may miss before it is marked down, by default (200 ms: an engine
/// thread that a loaded machine leaves unscheduled for a while is not a failed node).
pub const HEARTBEAT_MISSES: u32 = 20;
/// How long a node of this host may send no heartbeat before it is marked down, by default
/// ([`HEARTBEAT_MISSES`] × [`HEARTBEAT_INTERVAL`]; see `ProtocolConfig::down_after`).
pub const DOWN_AFTER: std::time::Duration =
    std::time::Duration::from_millis(10 * HEARTBEAT_MISSES as u64);
/// The shortest silence limit a protocol accepts: two heartbeats.
pub const DOWN_AFTER_MIN: std::time::Duration = std::time::Duration::from_millis(20);
/// Interval of the timing probes of outbound rings (see [`crate::ring::Probe`]).
const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);
/// Interval of the owner-liveness check (dead processes' nodes are removed, requests to them
/// fail) while requests are pending.
const LIVENESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);
/// Interval of the owner-liveness check otherwise (it reads `/proc` for every peer).
const IDLE_LIVENESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

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
pub(super) struct Timers {
    /// The clock at the last tick: a coarse time for what needs no precision per message.
    pub(super) now: std::time::Instant,
    pub(super) beat: std::time::Instant,
    /// When rings with messages waiting are next marked with a timing probe.
    pub(super) probe: std::time::Instant,
    pub(super) detect: std::time::Instant,
    pub(super) liveness: std::time::Instant,
    /// How long a peer of this host may send no heartbeat before it is marked down.
    pub(super) down_after: std::time::Duration,
}

impl Engine {
    /// Starts or stops heartbeats for the hosted nodes (stopping clears them, so peers judge
    /// the nodes by their process's liveness again instead of marking them down).
    pub fn set_beating(&mut self, on: bool) {
        let was = std::mem::replace(&mut self.beating, on);
        if on {
            if self.watching.is_none() {
                // Without it, a long handler call has its nodes marked down (see
                // `handler_watch`); heartbeats go on without it otherwise.
                self.watching = self.handler_watch.start(self.registry.clone()).ok();
            }
            if !was {
                self.beat_now();
            }
        } else {
            // Stopped before the heartbeats are cleared: it writes none after.
            self.watching = None;
            if was {
                // Peers on other hosts stop judging this process by its silence.
                if let Some(h) = self.hosts.as_ref() {
                    h.stop_beating();
                }
            }
        }
        let now = if on { crate::sys::monotonic_ns() } else { 0 };
        for &i in self.hosted.keys() {
            self.registry.beat(i, now);
        }
        self.timers.beat = std::time::Instant::now() + HEARTBEAT_INTERVAL;
    }

    /// Marks a peer of this host down once it sent no heartbeat for `d` (at least
    /// [`DOWN_AFTER_MIN`]).
    pub fn set_down_after(&mut self, d: std::time::Duration) {
        self.timers.down_after = d.max(DOWN_AFTER_MIN);
    }

    /// Periodic work, run by whoever drives the engine every few hundred polls: fails
    /// requests past their deadline, writes heartbeats (every [`HEARTBEAT_INTERVAL`], when
    /// beating), removes nodes of dead processes and fails requests to them (every 50 ms),
    /// and marks down the peers silent for longer than their limit (and up again
    /// when they resume). Returns the health changes, for the topology.
    pub fn tick(&mut self, now: std::time::Instant) -> Vec<HealthChange> {
        self.timers.now = now;
        self.expire(now);
        if !self.watched.is_empty() {
            self.wake_watched(Some(now));
        }
        if now >= self.timers.probe {
            let t = crate::sys::monotonic_ns();
            for o in self.out.values_mut() {
                o.mark_probe(t);
            }
            self.time_connections(t);
            self.timers.probe = now + PROBE_INTERVAL;
        }
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
        if !self.pending.is_empty() || !self.watched.is_empty() {
            // Requests wait: check liveness often, so they fail fast when a peer dies.
            self.timers.liveness = self.timers.liveness.min(now + LIVENESS_INTERVAL);
        }
        if now < self.timers.detect {
            return Vec::new();
        }
        self.timers.detect = now + HEARTBEAT_INTERVAL;
        if self.hosts.is_some() {
            self.beat_hosts(now);
        }
        if !self.partial.is_empty() {
            self.partial.expire(now);
        }
        self.expire_landings(now);
        if self.gone_inbound {
            self.drop_gone_inbound();
        }
        if self.refresh_peers().is_err() {
            return Vec::new();
        }
        if !self.partial.is_empty()
            || !self.delivery.inn.is_empty()
            || !self.delivery.out.is_empty()
            || !self.delivery.failures.is_empty()
        {
            // Half messages of a sender that is gone never complete, its streams end, and
            // streams to a node that left fail what they keep.
            let remote = self.hosts.as_ref().map(|h| h.directory_handle());
            let peers: HashSet<u32> = self.peers.values().map(|e| e.index).collect();
            let hosted = &self.hosted;
            let live = |s: u32| {
                hosted.contains_key(&s)
                    || peers.contains(&s)
                    || remote
                        .as_ref()
                        .is_some_and(|d| d.live_generation(s).is_some())
            };
            let here = |i: u32| hosted.contains_key(&i);
            if !self.partial.is_empty() {
                self.partial.retain_sources(live);
            }
            if !self.delivery.inn.is_empty() {
                self.delivery.forget_departed_senders(&live, &here);
            }
            // Kept while the destination is away: the first send after it is back (a
            // restarted process under the same id) reports them.
            self.delivery.failures.retain(|&(src, _), _| here(src));
            let gone: Vec<_> = self
                .delivery
                .out
                .keys()
                .filter(|k| !here(k.0) || !live(k.1))
                .copied()
                .collect();
            for key in gone {
                self.end_stream(key);
            }
        }
        if self.delivery.keeps() {
            self.fail_undeliverable(now);
        }
        let limit = self.timers.down_after.as_nanos() as u64;
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
}
