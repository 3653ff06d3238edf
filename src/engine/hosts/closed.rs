//! What a connection that closes takes down: its peer's nodes unreached (routes move to
//! another connection that hosts them, or they are down), their channels dropped, requests
//! waiting on them failed, and the one-way messages it carried unconfirmed reported.

use super::lock;
use crate::engine::Engine;
use crate::error::Error;
use crate::transport::tcp::{is_remote, ConnId};

impl Engine {
    /// Closes connection `id` for `why` (a bad frame from its peer).
    pub(super) fn refuse(&mut self, id: ConnId, why: &str) {
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
    pub(super) fn closed(&mut self, id: ConnId, why: &str) {
        let Some(h) = self.hosts.as_mut() else { return };
        let Some(link) = h.links.remove(&id) else {
            return;
        };
        h.counters.closed += 1;
        h.reasons.push_back(format!("{}: {why}", link.label));
        while h.reasons.len() > 8 {
            h.reasons.pop_front();
        }
        // Frames that arrived whole and wait for room are still delivered.
        // Channels on the closed connection lead nowhere.
        self.out
            .retain(|&(_, dst, _), _| !link.hosted.contains(&dst));
        let named: Vec<u32> = link.theirs.values().copied().collect();
        self.unreceipted(id);
        let lost = self.unreached(id, &named);
        self.lost_remote(&lost);
    }

    /// Of `nodes`, which connection `from` no longer vouches for (it closed, or withdrew
    /// them), those now unreached: a node another connection hosts moves its route there;
    /// a node `from` hosted and no other connection hosts is down, and so is a node only
    /// `from` named. Returns the unreached.
    pub(super) fn unreached(&mut self, from: ConnId, nodes: &[u32]) -> Vec<u32> {
        let Some(h) = self.hosts.as_mut() else {
            return Vec::new();
        };
        let mut lost = Vec::new();
        for &n in nodes {
            let mut others = h.links.iter().filter(|(c, _)| **c != from);
            let host = others
                .clone()
                .find(|(_, l)| l.hosted.contains(&n))
                .map(|(c, _)| *c);
            let named = others.any(|(_, l)| l.theirs.values().any(|&m| m == n));
            let routed = h.route.get(&n).copied();
            if routed.is_some_and(|c| c != from && h.links.contains_key(&c)) {
                continue;
            }
            if let Some(c) = host {
                h.route.insert(n, c);
            } else if routed.is_some() {
                h.route.remove(&n);
                lost.push(n);
            } else if !named && is_remote(n) {
                // Known only through the connection that let it go.
                lost.push(n);
            }
        }
        let remote: Vec<u32> = lost.iter().copied().filter(|&i| is_remote(i)).collect();
        let mut gone = h.directory.set_down(&remote);
        gone.extend(lost.iter().filter(|&&i| !is_remote(i)));
        gone
    }

    /// Forgets the inbound rings of frames over TCP to `node`, which this process no longer
    /// hosts (their reader went with it): the frames of the backlog for them are dropped
    /// instead of holding up the rest of their connection.
    pub(in crate::engine) fn forget_tcp_rings(&mut self, node: u32) {
        let Some(h) = self.hosts.as_mut() else { return };
        h.rings.retain(|&(_, dst, _), _| dst != node);
        self.retire_tcp_inbound();
        let Some(h) = self.hosts.as_mut() else { return };
        // Dropped here, not left for the next flush: one held up behind another ring would
        // otherwise reach a node registered later under the same index.
        let before = h.backlog.len();
        h.backlog.retain(|w| w.destination() != node);
        h.backlog_bytes = h.backlog.iter().map(|w| w.bytes.len()).sum();
        self.counters.errors += (before - h.backlog.len()) as u64;
        self.flush_backlog();
    }

    /// Marks retired the inbound rings of frames over TCP whose producing side was just
    /// dropped: `drop_gone_inbound` drops them once drained.
    fn retire_tcp_inbound(&mut self) {
        let Some(h) = self.hosts.as_ref() else { return };
        let mut any = false;
        for r in self.inbound.iter_mut().filter(|r| r.stream && !r.retired) {
            if !h.rings.contains_key(&(r.src, r.dst, r.lane)) {
                r.retired = true;
                any = true;
            }
        }
        self.gone_inbound |= any;
    }

    /// Nodes reached over TCP that are gone: their channels are dropped and the requests
    /// waiting on them fail.
    pub(super) fn lost_remote(&mut self, nodes: &[u32]) {
        if nodes.is_empty() {
            return;
        }
        self.hops.clear();
        self.out.retain(|&(_, dst, _), _| !nodes.contains(&dst));
        if let Some(h) = self.hosts.as_mut() {
            // Their inbound rings go once drained (`drop_gone_inbound`); one made anew
            // takes their frames when they come back.
            let waiting: Vec<u32> = h.backlog.iter().map(|w| w.source()).collect();
            h.rings
                .retain(|&(src, _, _), _| !nodes.contains(&src) || waiting.contains(&src));
            self.retire_tcp_inbound();
        }
        for &n in nodes {
            self.out_generation.remove(&n);
            self.partial.drop_source(n);
        }
        let names: Vec<(u32, String)> = nodes
            .iter()
            .map(|&n| (n, self.name_for_errors(n)))
            .collect();
        for p in self.pending.values_mut() {
            if let Some((_, name)) = names.iter().find(|(n, _)| *n == p.dst) {
                if p.result.is_none() {
                    p.complete(Err(Error::NodeNotFound(format!(
                        "the connection to the host of node {name} closed before it answered"
                    ))));
                }
            }
        }
        if !self.watched.is_empty() {
            self.wake_watched(None);
        }
    }
}
