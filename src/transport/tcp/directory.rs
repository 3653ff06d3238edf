//! [`Directory`]: the nodes of other hosts that this process knows, under indices of their
//! own ([`REMOTE_BASE`] and up, never a registry index), shared by the engine (which learns
//! them from its connections) and the protocol (whose topology lists them).
//!
//! A node's index is derived from its id ([`index_for`]), so every process of a host gives
//! a node of another host the same index: a frame that one process passes to another
//! through a ring of the host (a client forwarding through a served node toward another
//! host) names its destination and origin as the receiving process knows them. Two ids
//! whose indices collide in one process (a chance of about n^2 / 6.4e9 for n nodes it knows:
//! 1.6e-4 for a thousand) take the next free index there; that index is then this
//! process's own, and a frame another process of the host passes it for that node is
//! misread (see `docs/wire.md`).

use crate::model::NodeSignature;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// First index of a node of another host (registry indices are below it).
pub const REMOTE_BASE: u32 = 1 << 30;

/// Whether `index` names a node of another host.
#[inline]
pub fn is_remote(index: u32) -> bool {
    index >= REMOTE_BASE
}

/// A node of another host.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteNode {
    /// Its index in this process.
    pub index: u32,
    /// Its signature, as its host announced it.
    pub signature: NodeSignature,
    /// Its registration generation on its host.
    pub generation: u64,
    /// The label of the process hosting it (its address), empty while only known through
    /// others.
    pub host: String,
    /// Whether a connection that reaches it (its host's, or one that forwards toward it) is
    /// up.
    pub up: bool,
}

#[derive(Default)]
struct Table {
    /// In the order they became known.
    nodes: Vec<RemoteNode>,
    by_name: HashMap<String, u32>,
    /// Index -> position in `nodes`.
    by_index: HashMap<u32, usize>,
}

/// Indices a node of another host may take: [`REMOTE_BASE`] up to `u32::MAX - 1`.
const SPAN: u32 = u32::MAX - REMOTE_BASE;

/// The index node `id` takes in every process of a host (FNV-1a of its id in the span of
/// remote indices), unless another id took it first there.
pub fn index_for(id: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    REMOTE_BASE + (h % u64::from(SPAN)) as u32
}

impl Table {
    fn at(&self, index: u32) -> Option<&RemoteNode> {
        self.by_index.get(&index).map(|&i| &self.nodes[i])
    }

    fn at_mut(&mut self, index: u32) -> Option<&mut RemoteNode> {
        let i = *self.by_index.get(&index)?;
        Some(&mut self.nodes[i])
    }
}

/// The nodes of other hosts (see the module documentation). Indices are never reused: a
/// node that comes back keeps its index with its new generation.
#[derive(Default)]
pub struct Directory {
    table: Mutex<Table>,
    epoch: AtomicU64,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl Directory {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves whenever a node is added or changes state.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Every node known, up or down.
    pub fn list(&self) -> Vec<RemoteNode> {
        self.table().nodes.clone()
    }

    /// The node at `index`.
    pub fn get(&self, index: u32) -> Option<RemoteNode> {
        self.table().at(index).cloned()
    }

    /// The node named `id`.
    pub fn lookup(&self, id: &str) -> Option<RemoteNode> {
        let t = self.table();
        let &i = t.by_name.get(id)?;
        t.at(i).cloned()
    }

    /// The generation of node `index` while it is up.
    pub fn live_generation(&self, index: u32) -> Option<u64> {
        let t = self.table();
        t.at(index).filter(|n| n.up).map(|n| n.generation)
    }

    /// Records node `signature` (generation `generation`, hosted by `host`, empty when not
    /// known) as up; returns its index. A node known before keeps its index.
    pub fn upsert(&self, signature: &NodeSignature, generation: u64, host: &str) -> u32 {
        let mut t = self.table();
        let changed;
        let index = match t.by_name.get(&signature.node_id).copied() {
            Some(index) => {
                let n = t.at_mut(index).expect("named nodes have an index");
                let host = if host.is_empty() { &n.host } else { host }.to_string();
                changed = !n.up || n.generation != generation || n.host != host;
                n.up = true;
                n.generation = generation;
                n.host = host;
                n.signature = signature.clone();
                index
            }
            None => {
                let mut index = index_for(&signature.node_id);
                while t.by_index.contains_key(&index) {
                    index = if index == u32::MAX - 1 {
                        REMOTE_BASE
                    } else {
                        index + 1
                    };
                }
                let at = t.nodes.len();
                t.by_index.insert(index, at);
                t.nodes.push(RemoteNode {
                    index,
                    signature: signature.clone(),
                    generation,
                    host: host.to_string(),
                    up: true,
                });
                t.by_name.insert(signature.node_id.clone(), index);
                changed = true;
                index
            }
        };
        drop(t);
        if changed {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        index
    }

    /// Marks the nodes `indices` down; returns those that were up.
    pub fn set_down(&self, indices: &[u32]) -> Vec<u32> {
        let mut t = self.table();
        let mut downed = Vec::new();
        for &index in indices {
            if let Some(n) = t.at_mut(index) {
                if n.up {
                    n.up = false;
                    downed.push(index);
                }
            }
        }
        drop(t);
        if !downed.is_empty() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        downed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HardwareType;

    #[test]
    fn a_node_keeps_its_index_across_down_and_up() {
        let d = Directory::default();
        let sig = NodeSignature::new("gpu-1", HardwareType::CpuServer, 100.0, 1000).unwrap();
        let e0 = d.epoch();
        let i = d.upsert(&sig, 3, "10.0.0.2:7000");
        assert!(is_remote(i));
        assert!(d.epoch() > e0);
        assert_eq!(d.live_generation(i), Some(3));
        let e1 = d.epoch();
        assert_eq!(d.upsert(&sig, 3, ""), i);
        assert_eq!(d.epoch(), e1, "nothing changed");
        assert_eq!(d.lookup("gpu-1").unwrap().host, "10.0.0.2:7000");
        assert_eq!(d.set_down(&[i, i + 7]), vec![i]);
        assert_eq!(d.live_generation(i), None);
        assert!(d.set_down(&[i]).is_empty());
        assert_eq!(d.upsert(&sig, 4, "10.0.0.2:7000"), i);
        assert_eq!(d.live_generation(i), Some(4));
        assert_eq!(d.get(5), None);
        assert_eq!(d.list().len(), 1);
    }

    #[test]
    fn indices_follow_ids_the_same_in_every_process() {
        let sig = |id: &str| NodeSignature::new(id, HardwareType::CpuServer, 100.0, 1).unwrap();
        // Two processes that learn the same nodes in different orders.
        let (d1, d2) = (Directory::default(), Directory::default());
        let ids = ["sw", "b", "_cli-42", "gpu-7"];
        let one: Vec<u32> = ids.iter().map(|id| d1.upsert(&sig(id), 1, "")).collect();
        let two: Vec<u32> = ids
            .iter()
            .rev()
            .map(|id| d2.upsert(&sig(id), 1, ""))
            .collect();
        let two: Vec<u32> = two.into_iter().rev().collect();
        assert_eq!(one, two);
        for (id, i) in ids.iter().zip(&one) {
            assert_eq!(*i, index_for(id));
            assert!(is_remote(*i) && *i < u32::MAX);
            assert_eq!(d1.get(*i).unwrap().signature.node_id, *id);
        }
    }
}
