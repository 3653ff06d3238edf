//! When nodes left: a log of the last [`DEPARTURES`] departures (the node's id and the Unix
//! time it left: its unregistration, or for a node whose process died its last heartbeat),
//! one slot per id, in the registry's first page after the header. Written under the
//! registry lock; read without it, and checked like everything else another process wrote.
//! Operators' tools read it to say "down since" without a process of their own watching.

use super::{Registry, ID_MAX, PAGE};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Departures kept.
pub const DEPARTURES: usize = 32;
/// Where the log starts in the first page: its counter, then the slots.
const LOG_OFFSET: usize = 512;
const SLOT_OFFSET: usize = LOG_OFFSET + 8;
/// A slot: the time (u64), the id's length (u32), 4 bytes of padding, the id.
const SLOT: usize = 16 + ID_MAX;
const _: () = assert!(SLOT_OFFSET + DEPARTURES * SLOT <= PAGE);

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
    fn log_counter(&self) -> &AtomicU64 {
        // SAFETY: LOG_OFFSET is 8-aligned and inside the first page of the mapping (checked
        // length), which holds only the header before it.
        unsafe { &*(self.map.as_ptr().add(LOG_OFFSET) as *const AtomicU64) }
    }

    /// Slot `k`: its time, its id's length, and a pointer to its id bytes.
    fn slot(&self, k: usize) -> (&AtomicU64, &AtomicU32, *mut u8) {
        assert!(k < DEPARTURES);
        // SAFETY: the slot lies inside the first page (asserted above and at compile time),
        // its time 8-aligned and its length 4-aligned.
        unsafe {
            let p = self.map.as_ptr().add(SLOT_OFFSET + k * SLOT);
            (
                &*(p as *const AtomicU64),
                &*(p.add(8) as *const AtomicU32),
                p.add(16),
            )
        }
    }

    /// Logs that the node of entry `index` left at `since` (Unix ns). Caller holds the
    /// registry lock.
    pub(super) fn record_departure(&self, index: usize, since: u64) {
        let e = self.entry(index);
        let len = (e.id_len.load(Ordering::Relaxed) as usize).min(ID_MAX - 1);
        // SAFETY: the id lies inside entry `index`; the caller holds the lock, under which
        // ids are written.
        let id =
            unsafe { std::slice::from_raw_parts(self.entry_ptr(index).add(super::ID_OFFSET), len) };
        // The id's own slot if it left before, else the next in turn.
        let k = (0..DEPARTURES)
            .find(|&k| self.slot_id(k).as_deref() == Some(id))
            .unwrap_or_else(|| {
                let n = self.log_counter().fetch_add(1, Ordering::Relaxed);
                (n % DEPARTURES as u64) as usize
            });
        let (time, id_len, bytes) = self.slot(k);
        // Readers see a torn slot as one whose length and id disagree with its time at
        // worst; the time goes last.
        time.store(0, Ordering::Release);
        // SAFETY: `len` < ID_MAX bytes into the slot's id field; writers hold the lock.
        unsafe { std::ptr::copy_nonoverlapping(id.as_ptr(), bytes, len) };
        id_len.store(len as u32, Ordering::Release);
        time.store(since, Ordering::Release);
    }

    fn slot_id(&self, k: usize) -> Option<Vec<u8>> {
        let (time, id_len, bytes) = self.slot(k);
        let len = id_len.load(Ordering::Acquire) as usize;
        if time.load(Ordering::Acquire) == 0 || len == 0 || len >= ID_MAX {
            return None;
        }
        // SAFETY: `len` < ID_MAX bytes of the slot's id field, inside the mapping. A writer
        // may be changing them (it holds the lock, this reader does not): the bytes are
        // checked before use.
        Some(unsafe { std::slice::from_raw_parts(bytes, len) }.to_vec())
    }

    /// The nodes that left the host, the latest departure of each of the last
    /// [`DEPARTURES`] ids (slots another process wrote badly are skipped).
    pub fn departed(&self) -> Vec<Departed> {
        let _ = self.try_reclaim_dead();
        let mut out: Vec<Departed> = Vec::new();
        for k in 0..DEPARTURES {
            let Some(id) = self.slot_id(k) else { continue };
            let since = self.slot(k).0.load(Ordering::Acquire);
            let Ok(node_id) = String::from_utf8(id) else {
                continue;
            };
            if since == 0 || node_id.contains('\0') {
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

    fn node(id: &str) -> NodeSignature {
        NodeSignature::new(id, HardwareType::CpuServer, 10.0, 1).unwrap()
    }

    #[test]
    fn departures_are_logged_one_per_id_and_the_oldest_make_room() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open_in(dir.path()).unwrap();
        let before = unix_ns();
        let a = r.register(&node("a")).unwrap();
        let live = r.lookup("a").unwrap().unwrap();
        assert!(live.since_unix_ns >= before && live.since_unix_ns <= unix_ns());
        assert!(r.departed().is_empty());
        r.unregister(a).unwrap();
        let gone = r.departed();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].node_id, "a");
        assert!(gone[0].since_unix_ns >= live.since_unix_ns);
        // The entry is reused; the departure stays.
        assert_eq!(r.register(&node("b")).unwrap(), a);
        assert_eq!(r.departed()[0].node_id, "a");
        // A second departure of one id takes its slot again.
        let a = r.register(&node("a")).unwrap();
        r.unregister(a).unwrap();
        assert_eq!(r.departed().len(), 1);
        // Beyond DEPARTURES ids, the oldest go.
        for i in 0..DEPARTURES {
            let id = format!("n{i}");
            let x = r.register(&node(&id)).unwrap();
            r.unregister(x).unwrap();
        }
        let ids: Vec<String> = r.departed().into_iter().map(|d| d.node_id).collect();
        assert_eq!(ids.len(), DEPARTURES);
        assert!(!ids.contains(&"a".to_string()));
        assert!(ids.contains(&format!("n{}", DEPARTURES - 1)));
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
