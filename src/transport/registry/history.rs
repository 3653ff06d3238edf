//! When nodes came and went: each entry keeps the Unix time of its registration while it is
//! live, and of its node's leaving once free (unregistered, or reclaimed after its process
//! died), with the node's id, until the index is reused. Operators' tools read it to say
//! "up since" and "down since" without a process of their own watching the fabric.

use super::{Registry, FREE, ID_MAX, ID_OFFSET, MAX_NODES};
use crate::sync::atomic::Ordering;

/// A node that left the host: its id and when it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departed {
    /// The node's id.
    pub node_id: String,
    /// When it left (Unix time, ns): its unregistration, or for a node whose process died
    /// its last heartbeat (the time it was found dead when it sent none).
    pub since_unix_ns: u64,
}

/// Unix time now, in ns.
pub(super) fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// When a node whose process died left: its last heartbeat (`CLOCK_MONOTONIC` ns, 0 for
/// none) as Unix time, or now.
pub(super) fn left_at(heartbeat_ns: u64) -> u64 {
    let now = unix_ns();
    let mono = crate::sys::monotonic_ns();
    if heartbeat_ns == 0 || heartbeat_ns > mono {
        return now;
    }
    now.saturating_sub(mono - heartbeat_ns)
}

impl Registry {
    /// Nodes that left the host and whose entries were not reused since, the latest
    /// departure of each id (entries are written by other processes: ids that are not
    /// UTF-8 or too long are skipped).
    pub fn departed(&self) -> Vec<Departed> {
        let _ = self.try_reclaim_dead();
        let mut out: Vec<Departed> = Vec::new();
        for i in 0..MAX_NODES {
            let e = self.entry(i);
            if e.state.load(Ordering::Acquire) != FREE {
                continue;
            }
            let since = e.since.load(Ordering::Relaxed);
            let len = e.id_len.load(Ordering::Relaxed) as usize;
            if since == 0 || len == 0 || len >= ID_MAX {
                continue;
            }
            // SAFETY: the id lies inside the entry (len < ID_MAX); a registration racing
            // with this read can tear it, which the checks below and the LIVE listing
            // (consulted by callers first) absorb: at worst a stale or garbled name.
            let id = unsafe {
                std::slice::from_raw_parts(self.entry_ptr(i).add(ID_OFFSET), len).to_vec()
            };
            let Ok(node_id) = String::from_utf8(id) else {
                continue;
            };
            if node_id.contains('\0') {
                continue;
            }
            match out.iter_mut().find(|d| d.node_id == node_id) {
                Some(d) => d.since_unix_ns = d.since_unix_ns.max(since),
                None => out.push(Departed {
                    node_id,
                    since_unix_ns: since,
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HardwareType, NodeSignature};

    #[test]
    fn a_node_that_leaves_is_remembered_with_its_time_until_reused() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open_in(dir.path()).unwrap();
        let before = unix_ns();
        let a = r
            .register(&NodeSignature::new("a", HardwareType::CpuServer, 10.0, 1).unwrap())
            .unwrap();
        let live = r.lookup("a").unwrap().unwrap();
        assert!(live.since_unix_ns >= before && live.since_unix_ns <= unix_ns());
        assert!(r.departed().is_empty());
        r.unregister(a).unwrap();
        let gone = r.departed();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].node_id, "a");
        assert!(gone[0].since_unix_ns >= live.since_unix_ns);
        // New nodes take entries no node left first; reusing the entry forgets it.
        let b = r
            .register(&NodeSignature::new("b", HardwareType::CpuServer, 10.0, 1).unwrap())
            .unwrap();
        assert_ne!(b, a);
        assert_eq!(r.departed().len(), 1);
        assert!(r.departed().iter().all(|d| d.node_id == "a"));
    }

    #[test]
    fn a_dead_process_leaves_at_its_last_heartbeat() {
        let mono = crate::sys::monotonic_ns();
        let t = left_at(mono.saturating_sub(2_000_000_000));
        let now = unix_ns();
        assert!(
            now - t >= 1_900_000_000 && now - t < 3_000_000_000,
            "{}",
            now - t
        );
        let none = left_at(0);
        assert!(unix_ns() - none < 1_000_000_000);
    }
}
