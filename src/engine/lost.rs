//! What the engine holds for peers, and when it lets go: destinations whose process died,
//! rings their receivers found corrupt, and everything kept for nodes that left (half-received
//! messages, inbound rings, mappings of their segments, buffers lent to their processes).

use super::{Engine, Lane, Leg};

/// How often a node that something waits for (a reply kept for later, a frame to forward)
/// is checked for being unreachable (see [`Engine::unreachable`]).
pub(super) const GONE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(1);
use crate::error::Error;

impl Engine {
    /// Frees what this process holds for nodes that left since `before` (index, generation,
    /// owner pid and start): their half-received messages, their inbound rings (once
    /// drained), the mappings of their processes' segments when those processes died, and the
    /// buffers of this process's pools lent to those processes.
    pub(super) fn forget_gone_peers(&mut self, before: &[(u32, u64, u32, u64)]) {
        let peers = &self.peers;
        let gone: Vec<(u32, u32, u64)> = before
            .iter()
            .filter(|(i, g, _, _)| !peers.values().any(|e| e.index == *i && e.generation == *g))
            .map(|&(i, _, pid, start)| (i, pid, start))
            .collect();
        // Segments of processes that died, also of ones never seen among the peers (a
        // sender's descriptors can arrive before this engine looked at the registry).
        self.segments.retain_live(crate::sys::process::pid());
        if gone.is_empty() {
            return;
        }
        for &(index, _, _) in &gone {
            self.partial.drop_source(index);
            self.host.forget(index);
            self.local.forget(index);
        }
        self.gone_inbound = true;
        self.drop_gone_inbound();
        let own = crate::sys::process::pid();
        let dead: Vec<(u32, u64)> = gone
            .iter()
            .filter(|(_, pid, start)| *pid != own && !crate::sys::process::alive(*pid, *start))
            .map(|&(_, pid, start)| (pid, start))
            .collect();
        if !dead.is_empty() {
            self.segments.retain_live(own);
            crate::transport::channel::remove_dead_segments(self.registry.dir());
            // Buffers of this process's pools that the dead processes held come back.
            for key in self.own_segments.values() {
                if let Some(pool) = self.segments.get(key) {
                    for &(pid, _) in &dead {
                        pool.reclaim_lent(pid);
                    }
                }
            }
        }
    }

    /// The inbound rings this engine reads now (from nodes of this host and over TCP).
    pub fn inbound_rings(&self) -> usize {
        self.inbound.len()
    }

    /// Drops inbound rings whose sender is no longer a node of the host, once they hold no
    /// message (what a sender pushed before it died is still delivered).
    pub(super) fn drop_gone_inbound(&mut self) {
        let peers = &self.peers;
        let hosted = &self.hosted;
        let remote = self.hosts.as_ref().map(|h| h.directory_handle());
        let live = |i: u32| {
            hosted.contains_key(&i)
                || peers.values().any(|e| e.index == i)
                || remote
                    .as_ref()
                    .is_some_and(|d| d.live_generation(i).is_some())
        };
        // A ring that frames of the backlog still wait for stays until they are in it.
        let waiting = self
            .hosts
            .as_ref()
            .map(|h| h.backlog_keys())
            .unwrap_or_default();
        // A retired ring of frames over TCP goes once drained, also when its sender came back
        // under the same index (a ring made anew takes its frames): kept, such rings piled up
        // with every reconnection of a peer.
        let before = self.inbound.len();
        self.inbound.retain(|r| {
            live(r.src) && !r.retired
                || r.consumer.has_message()
                || waiting.contains(&(r.src, r.dst, r.lane))
        });
        self.gone_inbound = self.inbound.iter().any(|r| !live(r.src) || r.retired);
        if self.inbound.len() != before {
            // The producing side of a ring of frames over TCP goes with its reader: a frame of
            // the sender when it returns gets a ring that is read.
            let inbound = &self.inbound;
            if let Some(h) = self.hosts.as_mut() {
                h.keep_rings(|key| {
                    inbound
                        .iter()
                        .any(|r| r.stream && (r.src, r.dst, r.lane) == key)
                });
            }
        }
    }

    /// Fails the pending requests whose destination is gone (unregistered, or its process
    /// died). Returns how many failed.
    pub fn fail_lost_peers(&mut self) -> usize {
        // Never waits on the registry lock: a process stopped while holding it must not
        // stop this engine's traffic.
        let _ = self.registry.try_reclaim_dead();
        let mut n = self.fail_corrupt_channels();
        self.fail_lost_endpoints();
        for p in self.pending.values_mut() {
            if p.result.is_some() {
                continue;
            }
            let alive = if crate::transport::tcp::is_remote(p.dst) {
                self.hosts.as_ref().and_then(|h| h.directory_live(p.dst)) == Some(p.dst_generation)
            } else {
                self.registry
                    .get(p.dst)
                    .is_some_and(|e| e.generation == p.dst_generation)
            };
            if !alive {
                p.complete(Err(Error::NodeNotFound(format!(
                    "destination node (index {}) left the fabric before answering",
                    p.dst
                ))));
                n += 1;
            }
        }
        n
    }

    /// Whether what this engine holds for node `index` (replies kept for later, frames to
    /// forward) can no longer reach it: the node is gone ([`Engine::destination_lost`]), or
    /// another registration took its index since its rings were made. Reads `/proc`: at most
    /// every [`GONE_CHECK_EVERY`] while something waits.
    pub(super) fn unreachable(&mut self, index: u32) -> bool {
        self.destination_lost(index) || self.ring_outlived(index)
    }

    /// Whether node `index` is gone: not registered, or its process died (then its entry is
    /// reclaimed now if the registry lock is free). Reads the registry and `/proc`: for a
    /// sender that waits, not per message.
    pub fn destination_lost(&mut self, index: u32) -> bool {
        if self.hosted.contains_key(&index) {
            return false;
        }
        if crate::transport::tcp::is_remote(index) {
            return self.live_generation(index).is_none();
        }
        let lost = self
            .registry
            .get(index)
            .is_none_or(|e| !crate::sys::process::alive(e.owner_pid, e.owner_start));
        if lost {
            let _ = self.registry.try_reclaim_dead();
        }
        lost
    }

    /// Drops outbound rings whose receiver marked them corrupt and fails the requests that
    /// went through them with `MalformedFrameError` (their frames will never be read).
    pub(super) fn fail_corrupt_channels(&mut self) -> usize {
        let corrupt: Vec<(u32, u32, Lane)> = self
            .out
            .iter()
            .filter(|(_, p)| p.is_corrupt())
            .map(|(&k, _)| k)
            .collect();
        if corrupt.is_empty() {
            return 0;
        }
        let mut n = 0;
        for (src, via, lane) in corrupt {
            let _ = self.drop_corrupt(src, via, lane);
            let name = self.name_for_errors(via);
            let hops = &self.hops;
            // Through a forwarder with fault tolerance on, a request's frames are kept by
            // its stream and sent again along the next route: it does not fail here.
            let resent = self.delivery.on;
            for p in self.pending.values_mut() {
                let through =
                    p.dst == via || !resent && hops.get(&(src, p.dst, Leg::First)) == Some(&via);
                if p.result.is_none() && through {
                    p.complete(Err(Error::MalformedFrame(format!(
                        "the channel to node {name} was found corrupt by its receiver; the \
                         request was not read"
                    ))));
                    n += 1;
                }
            }
        }
        n
    }

    /// Forgets the ring `src` -> `via` on `lane` that its receiver found corrupt (the next send
    /// makes a new one) and says so.
    #[cold]
    pub(super) fn drop_corrupt(&mut self, src: u32, via: u32, lane: Lane) -> Error {
        self.out.remove(&(src, via, lane));
        self.counters.errors += 1;
        Error::MalformedFrame(format!(
            "the channel from node {} to node {} was found corrupt by its receiver and \
             dropped; a new one is made on the next send",
            self.name_for_errors(src),
            self.name_for_errors(via)
        ))
    }
}
