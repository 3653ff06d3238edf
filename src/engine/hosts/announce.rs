//! What two processes tell each other on a connection: every node each knows, under its
//! index (announced whole when the connection starts, then as differences), and what the
//! receiver does with it: its map of the peer's indices, the routes to the nodes the peer
//! hosts, the nodes it no longer names.

use super::{lock, Hosts, Said};
use crate::engine::{Engine, Lane};
use crate::error::{Error, Result};
use crate::model::NodeSignature;
use crate::transport::tcp::control::{Announce, Announced};
use crate::transport::tcp::ConnId;
use rustc_hash::FxHashMap;

impl Engine {
    /// Every node this process knows, as announced: hosted ones flagged. With `only`,
    /// those whose (generation, hosted) differs from it.
    pub(super) fn announcement(&mut self, only: Option<&FxHashMap<u32, Said>>) -> Vec<Announced> {
        let _ = self.refresh_peers();
        let mut out = Vec::new();
        let mut push = |index: u32, generation: u64, hosted: bool, sig: &NodeSignature| {
            let said = (
                generation,
                hosted,
                crate::engine::NodeName::intern(&sig.node_id),
            );
            if only.is_none_or(|a| a.get(&index) != Some(&said)) {
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
    pub(super) fn announce_changes(&mut self) {
        let Some(h) = self.hosts.as_ref() else { return };
        let epochs = (self.registry.nodes_epoch(), h.directory.epoch());
        if epochs == h.announced_epochs {
            return;
        }
        let before = h.announced.clone();
        // One listing: a node registered meanwhile is in both what is sent and what is
        // recorded as sent, or in neither.
        let all = self.announcement(None);
        let now: FxHashMap<u32, Said> = all
            .iter()
            .map(|a| {
                let id = crate::engine::NodeName::intern(&a.signature.node_id);
                (a.index, (a.generation, a.hosted, id))
            })
            .collect();
        let changed: Vec<Announced> = all
            .into_iter()
            .filter(|a| before.get(&a.index) != now.get(&a.index))
            .collect();
        // Indices no longer used, and those now holding another node (withdrawn first,
        // so the receiver never maps the old node's frames onto the new one).
        let gone: Vec<u32> = before
            .iter()
            .filter(|(i, b)| now.get(i).is_none_or(|n| n.2 != b.2))
            .map(|(&i, _)| i)
            .collect();
        if !gone.is_empty() {
            self.send_announce(None, &Announce::Gone(gone));
        }
        if !changed.is_empty() {
            self.send_announce(None, &Announce::Nodes(changed));
        }
        let h = self.hosts.as_mut().expect("checked above");
        h.announced = now;
        h.announced_epochs = epochs;
    }

    /// Queues announcement `a` on connection `to`, or on all.
    pub(super) fn send_announce(&mut self, to: Option<ConnId>, a: &Announce) {
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
                // The header's node fields carry this process's instance.
                let fh = crate::transport::tcp::FrameHeader {
                    slot: crate::ring::SlotHeader {
                        len: body.len() as u32,
                        kind: *kind,
                        flags: 0,
                        aux: 0,
                        src: h.instance as u32,
                    },
                    dst: (h.instance >> 32) as u32,
                    lane: Lane::Latency,
                };
                // Past the queue limits: a peer that reads slowly still learns which
                // nodes exist (a closed connection is reported by the reactor).
                let _ = r.send_control(id, &fh, body);
            }
        }
    }

    /// Applies announcement `a` from connection `id`, whose peer process is `instance`
    /// (the instance its header carries); an error closes it.
    pub(super) fn apply_announce(&mut self, id: ConnId, instance: u64, a: Announce) -> Result<()> {
        let mut mapped = Vec::new();
        if let Some(link) = self.hosts.as_mut().and_then(|h| h.links.get_mut(&id)) {
            if link.instance.is_some_and(|i| i != instance) {
                return Err(Error::MalformedFrame(
                    "announcements of one connection from two process instances".into(),
                ));
            }
            link.instance = Some(instance);
        }
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
                    } else if let Some(e) = self.peers.get(id_str).filter(|e| {
                        // An entry of a process that died is no claim: the node moved.
                        !n.hosted || crate::sys::process::alive(e.owner_pid, e.owner_start)
                    }) {
                        let force = self.hosts.as_ref().is_some_and(|h| h.force);
                        if n.hosted && !force {
                            return Err(Error::DuplicateNode(format!(
                                "node {id_str:?} is hosted by another process of this host and \
                                 by the peer host too"
                            )));
                        }
                        e.index
                    } else {
                        let h = self.hosts.as_ref().expect("announce without hosts");
                        if n.hosted {
                            h.check_claim(id, instance, id_str)?;
                        }
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
                let mut rerouted = Vec::new();
                // Nodes whose host's connection closed: their messages in progress came on
                // it, and are not finished by another's frames.
                let mut moved = Vec::new();
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
                            if h.route.insert(mine, id).is_some_and(|old| old != id) {
                                moved.push(mine);
                            }
                            rerouted.push(mine);
                        }
                    }
                }
                link.ready = true;
                self.hops.clear();
                // A channel made before the route (a ring of this host, when TCP is forced)
                // is not used for it: frames sized for a connection would not fit it.
                self.out.retain(|&(_, via, _), _| !rerouted.contains(&via));
                for m in moved {
                    self.partial.drop_source(m);
                }
            }
            Announce::Gone(indices) => {
                let h = self.hosts.as_mut().expect("announce without hosts");
                let Some(link) = h.links.get_mut(&id) else {
                    return Ok(());
                };
                let mut withdrawn = Vec::new();
                for i in indices {
                    if let Some(mine) = link.theirs.remove(&i) {
                        if let Some(p) = link.hosted.iter().position(|&x| x == mine) {
                            link.hosted.swap_remove(p);
                        }
                        withdrawn.push(mine);
                    }
                }
                let lost = self.unreached(id, &withdrawn);
                self.lost_remote(&lost);
            }
        }
        Ok(())
    }
}

impl Hosts {
    /// Whether connection `id`, whose peer process is `instance`, may host node `name`: not
    /// while another open connection, from another process, hosts it (two hosts claiming
    /// one node would mix their frames). An instance of 0 (none said) is no process's.
    fn check_claim(&self, id: ConnId, instance: u64, name: &str) -> Result<()> {
        let Some(node) = self.directory.lookup(name) else {
            return Ok(());
        };
        let Some(&via) = self.route.get(&node.index).filter(|&&via| via != id) else {
            return Ok(());
        };
        let Some(other) = self.links.get(&via) else {
            return Ok(());
        };
        let same = other.instance.is_some_and(|i| i != 0 && i == instance);
        if same || !lock(&self.reactor).is_open(via) {
            return Ok(());
        }
        Err(Error::DuplicateNode(format!(
            "node {name:?} is hosted by {} and by the peer host too",
            other.label
        )))
    }
}
