//! [`Directory`]: the nodes of other hosts that this process knows, under indices of their
//! own ([`REMOTE_BASE`] and up, never a registry index), shared by the engine (which learns
//! them from its connections) and the protocol (whose topology lists them).

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
    nodes: Vec<RemoteNode>,
    by_name: HashMap<String, u32>,
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
        let i = index.checked_sub(REMOTE_BASE)? as usize;
        self.table().nodes.get(i).cloned()
    }

    /// The node named `id`.
    pub fn lookup(&self, id: &str) -> Option<RemoteNode> {
        let t = self.table();
        let &i = t.by_name.get(id)?;
        t.nodes.get((i - REMOTE_BASE) as usize).cloned()
    }

    /// The generation of node `index` while it is up.
    pub fn live_generation(&self, index: u32) -> Option<u64> {
        let i = index.checked_sub(REMOTE_BASE)? as usize;
        let t = self.table();
        t.nodes.get(i).filter(|n| n.up).map(|n| n.generation)
    }

    /// Records node `signature` (generation `generation`, hosted by `host`, empty when not
    /// known) as up; returns its index. A node known before keeps its index.
    pub fn upsert(&self, signature: &NodeSignature, generation: u64, host: &str) -> u32 {
        let mut t = self.table();
        let changed;
        let index = match t.by_name.get(&signature.node_id).copied() {
            Some(index) => {
                let n = &mut t.nodes[(index - REMOTE_BASE) as usize];
                let host = if host.is_empty() { &n.host } else { host }.to_string();
                changed = !n.up || n.generation != generation || n.host != host;
                n.up = true;
                n.generation = generation;
                n.host = host;
                n.signature = signature.clone();
                index
            }
            None => {
                let index = REMOTE_BASE + t.nodes.len() as u32;
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
            if let Some(n) = index
                .checked_sub(REMOTE_BASE)
                .and_then(|i| t.nodes.get_mut(i as usize))
            {
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
}
