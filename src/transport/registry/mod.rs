//! The host's node registry: a shared-memory table in `<fabric dir>/registry` that every
//! process of the fabric maps. Entry `i` holds the node with dense index `i`: its state, its
//! owner (pid and start time), its id and its signature (JSON). Changes happen under an
//! advisory file lock (`registry.lock`), so concurrent registrations from any processes see
//! each other; a crashed owner's lock is released by the kernel and its entries are reclaimed
//! by the next process that looks (owner pid gone, or reused by another process).

use crate::error::{Error, Result};
use crate::model::NodeSignature;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sys::{self, FileLock, Mapping};
use std::path::{Path, PathBuf};

/// Most nodes one host's registry holds.
pub const MAX_NODES: usize = 1024;
const PAGE: usize = 4096;
const ENTRY_SIZE: usize = 1024;
const ID_OFFSET: usize = 64;
const ID_MAX: usize = 64;
const SIG_OFFSET: usize = ID_OFFSET + ID_MAX;
const SIG_MAX: usize = ENTRY_SIZE - SIG_OFFSET;
const MAGIC: u64 = u64::from_le_bytes(*b"HFREG\x00\x00\x03");

/// Largest zone table file read.
const MAX_ZONES_FILE: u64 = 4 << 20;

const FREE: u32 = 0;
const LIVE: u32 = 2;

#[repr(C)]
struct Header {
    magic: AtomicU64,
    max_nodes: AtomicU32,
    entry_size: AtomicU32,
    /// Bumped on every registration and removal (engines poll it to notice peers).
    nodes_epoch: AtomicU64,
    /// Bumped when a channel is created.
    channels_epoch: AtomicU64,
    /// Bumped when the zone table (`zones`) changes.
    zones_epoch: AtomicU64,
}

/// The fabric's zones and their members (node ids), kept in `<fabric dir>/zones` (JSON)
/// and changed under the registry lock, so every process of the host enforces the same zones.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ZoneTable {
    /// Zones in creation order.
    pub zones: Vec<crate::model::FabricZone>,
    /// Members by zone id.
    pub members: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
}

#[repr(C)]
struct EntryHeader {
    state: AtomicU32,
    owner_pid: AtomicU32,
    owner_start: AtomicU64,
    generation: AtomicU64,
    id_len: AtomicU32,
    sig_len: AtomicU32,
    /// The entry whose doorbell wakes the engine hosting this node.
    bell_index: AtomicU32,
    /// Doorbell (a futex word), used in the entry an engine sleeps on.
    bell: AtomicU32,
    /// 1 while the engine sleeping on this entry's doorbell sleeps.
    sleeping: AtomicU32,
    /// `CLOCK_MONOTONIC` ns of the hosting engine's last heartbeat; 0 while it sends none
    /// (no background thread), so it is judged by its owner's liveness alone.
    heartbeat: AtomicU64,
    /// Unix time in ns of the registration (departures are logged apart: `history.rs`).
    since: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<EntryHeader>() <= ID_OFFSET);

mod history;
pub use history::Departed;

/// A registered node as the registry records it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEntry {
    /// Dense index (the entry number).
    pub index: u32,
    /// The node's signature.
    pub signature: NodeSignature,
    /// Pid of the hosting process.
    pub owner_pid: u32,
    /// Start time of the hosting process (clock ticks since boot).
    pub owner_start: u64,
    /// Registrations of this entry so far (changes when the index is reused).
    pub generation: u64,
    /// When the node was registered (Unix time, ns; 0 when unknown).
    pub since_unix_ns: u64,
}

/// A process's handle on its fabric's registry.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    map: Mapping,
}

// SAFETY: the mapping is shared memory accessed through atomics, and its non-atomic bytes
// (ids, signatures) only under the registry's file lock.
unsafe impl Send for Registry {}
// SAFETY: as above.
unsafe impl Sync for Registry {}

fn region_len() -> usize {
    PAGE + MAX_NODES * ENTRY_SIZE
}

impl Registry {
    /// Opens (creating if needed) the registry of `fabric`.
    pub fn open(fabric: &str) -> Result<Registry> {
        Registry::open_in(&sys::fabric_dir(fabric)?)
    }

    /// Opens (creating if needed) the registry in `dir`.
    pub fn open_in(dir: &Path) -> Result<Registry> {
        // Senders of this process may then skip the full fence before the doorbell.
        crate::sys::fence::register();
        let _lock = FileLock::acquire(&dir.join("registry.lock"))?;
        let path = dir.join("registry");
        let map = match Mapping::open_file(&path) {
            Ok(m) => m,
            Err(_) if !path.exists() => {
                let m = Mapping::create_file(&path, region_len())?;
                // SAFETY: a fresh mapping of region_len() bytes starts with the header.
                let h = unsafe { &*(m.as_ptr() as *const Header) };
                h.max_nodes.store(MAX_NODES as u32, Ordering::Relaxed);
                h.entry_size.store(ENTRY_SIZE as u32, Ordering::Relaxed);
                h.magic.store(MAGIC, Ordering::Release);
                m
            }
            Err(e) => return Err(e),
        };
        let reg = Registry {
            dir: dir.to_path_buf(),
            map,
        };
        // Segments of processes that died since the fabric was last used.
        super::channel::remove_dead_segments(dir);
        super::stats::remove_dead_metrics(dir);
        if reg.map.len() != region_len()
            || reg.header().magic.load(Ordering::Acquire) != MAGIC
            || reg.header().max_nodes.load(Ordering::Relaxed) as usize != MAX_NODES
        {
            return Err(Error::InvalidArgument(format!(
                "{} is not a registry of this version",
                path.display()
            )));
        }
        Ok(reg)
    }

    /// The fabric directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping (checked length) starts with a Header of atomics.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    fn entry_ptr(&self, i: usize) -> *mut u8 {
        assert!(i < MAX_NODES);
        // SAFETY: i < MAX_NODES, so the entry lies inside the mapping.
        unsafe { self.map.as_ptr().add(PAGE + i * ENTRY_SIZE) }
    }

    fn entry(&self, i: usize) -> &EntryHeader {
        // SAFETY: each entry starts with an EntryHeader of atomics, 8-byte aligned.
        unsafe { &*(self.entry_ptr(i) as *const EntryHeader) }
    }

    /// Changes whenever a node is registered or removed (one atomic load; no lock).
    pub fn nodes_epoch(&self) -> u64 {
        self.header().nodes_epoch.load(Ordering::Acquire)
    }

    /// Changes whenever a channel is created (one atomic load; no lock).
    pub fn channels_epoch(&self) -> u64 {
        self.header().channels_epoch.load(Ordering::Acquire)
    }

    /// Changes whenever the zone table changes (one atomic load; no lock).
    pub fn zones_epoch(&self) -> u64 {
        self.header().zones_epoch.load(Ordering::Acquire)
    }

    fn read_zones(&self) -> Result<ZoneTable> {
        let path = self.dir.join("zones");
        if !path.exists() && std::fs::symlink_metadata(&path).is_err() {
            return Ok(ZoneTable::default());
        }
        // A regular file of bounded size: another process can put anything under the name.
        let file = sys::fs::open_state_file(&path, false)?;
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_ZONES_FILE + 1), &mut b)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if b.len() as u64 > MAX_ZONES_FILE {
            return Err(Error::InvalidArgument(format!(
                "{}: a zone table is at most {MAX_ZONES_FILE} bytes",
                path.display()
            )));
        }
        serde_json::from_slice(&b).map_err(|e| {
            Error::InvalidArgument(format!("{}: not a zone table: {e}", path.display()))
        })
    }

    /// The fabric's zone table.
    pub fn zones(&self) -> Result<ZoneTable> {
        let _l = self.lock()?;
        self.read_zones()
    }

    /// Changes the zone table under the registry lock: `f` gets the current table and may
    /// refuse the change with an error (nothing is written then). The new table replaces the
    /// file atomically and the zones epoch moves.
    pub fn update_zones<T>(&self, f: impl FnOnce(&mut ZoneTable) -> Result<T>) -> Result<T> {
        let _l = self.lock()?;
        let mut table = self.read_zones()?;
        let out = f(&mut table)?;
        let bytes = serde_json::to_vec(&table)
            .map_err(|e| Error::InvalidArgument(format!("zone table: {e}")))?;
        let tmp = self.dir.join("zones.tmp");
        let path = self.dir.join("zones");
        {
            use std::io::Write;
            // A new file, never one (or a link) someone else left under the name.
            let _ = std::fs::remove_file(&tmp);
            let mut file = sys::fs::create_state_file(&tmp)?;
            file.write_all(&bytes)
                .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        }
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io(format!("replacing {}", path.display()), e))?;
        self.header().zones_epoch.fetch_add(1, Ordering::AcqRel);
        Ok(out)
    }

    /// The fabric directory's entries when the channels epoch moved past `seen` (which is
    /// updated): rings to look at. `None` when nothing changed (one atomic load).
    pub fn channels_changed(&self, seen: &mut u64) -> Option<std::fs::ReadDir> {
        let epoch = self.channels_epoch();
        if epoch == *seen {
            return None;
        }
        *seen = epoch;
        std::fs::read_dir(&self.dir).ok()
    }

    /// Records that a channel was created or removed.
    pub fn bump_channels_epoch(&self) {
        self.header().channels_epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn lock(&self) -> Result<FileLock> {
        FileLock::acquire(&self.dir.join("registry.lock"))
    }

    /// Reads entry `i` (caller holds the lock, or tolerates a stale read of a live entry).
    fn read_entry(&self, i: usize) -> Option<NodeEntry> {
        let e = self.entry(i);
        if e.state.load(Ordering::Acquire) != LIVE {
            return None;
        }
        let id_len = (e.id_len.load(Ordering::Relaxed) as usize).min(ID_MAX);
        let sig_len = (e.sig_len.load(Ordering::Relaxed) as usize).min(SIG_MAX);
        // SAFETY: offsets are inside the entry; writers change these bytes only under the
        // lock, before storing LIVE with Release (observed above with Acquire).
        let (id, sig) = unsafe {
            let p = self.entry_ptr(i);
            (
                std::slice::from_raw_parts(p.add(ID_OFFSET), id_len).to_vec(),
                std::slice::from_raw_parts(p.add(SIG_OFFSET), sig_len).to_vec(),
            )
        };
        // Written by another process: held to the same rules as a registration made here.
        let signature: NodeSignature = serde_json::from_slice(&sig).ok()?;
        if signature.node_id.as_bytes() != id || signature.validate().is_err() {
            return None;
        }
        Some(NodeEntry {
            index: i as u32,
            signature,
            owner_pid: e.owner_pid.load(Ordering::Relaxed),
            owner_start: e.owner_start.load(Ordering::Relaxed),
            generation: e.generation.load(Ordering::Relaxed),
            since_unix_ns: e.since.load(Ordering::Relaxed),
        })
    }

    /// Frees entries whose owner died, deleting their channel files. Caller holds the lock.
    fn reclaim_locked(&self) -> Vec<u32> {
        let mut freed = Vec::new();
        for i in 0..MAX_NODES {
            let e = self.entry(i);
            if e.state.load(Ordering::Acquire) == FREE {
                continue;
            }
            let (pid, start) = (
                e.owner_pid.load(Ordering::Relaxed),
                e.owner_start.load(Ordering::Relaxed),
            );
            if !sys::process::alive(pid, start) {
                let left = history::left_at(e.heartbeat.load(Ordering::Acquire));
                self.record_departure(i, left);
                e.state.store(FREE, Ordering::Release);
                freed.push(i as u32);
            }
        }
        if !freed.is_empty() {
            super::channel::remove_channel_files(&self.dir, &freed);
            super::channel::remove_dead_segments(&self.dir);
            super::stats::remove_dead_metrics(&self.dir);
            self.header().nodes_epoch.fetch_add(1, Ordering::AcqRel);
            // Receivers look again: rings whose files went are dropped once drained.
            self.bump_channels_epoch();
        }
        freed
    }

    /// Frees the entries (and files) of dead processes; returns their indices.
    pub fn reclaim_dead(&self) -> Result<Vec<u32>> {
        let _l = self.lock()?;
        Ok(self.reclaim_locked())
    }

    /// As [`Registry::reclaim_dead`] when the registry lock is free now; an empty list when
    /// another process holds it (the periodic check of an engine never waits on it).
    pub fn try_reclaim_dead(&self) -> Result<Vec<u32>> {
        match FileLock::try_acquire(&self.dir.join("registry.lock"))? {
            Some(_l) => Ok(self.reclaim_locked()),
            None => Ok(Vec::new()),
        }
    }

    /// Registers `node` as hosted by this process and returns its dense index.
    /// `DuplicateNodeError` when a live node (of any process) has the id.
    pub fn register(&self, node: &NodeSignature) -> Result<u32> {
        node.validate()?;
        let sig = serde_json::to_vec(node).map_err(|e| {
            Error::InvalidNode(format!("node {:?}: cannot encode: {e}", node.node_id))
        })?;
        if sig.len() > SIG_MAX {
            return Err(Error::InvalidNode(format!(
                "node {:?}: signature is {} bytes encoded, at most {SIG_MAX} (shorten metadata)",
                node.node_id,
                sig.len()
            )));
        }
        let _l = self.lock()?;
        self.reclaim_locked();
        let mut free = None;
        for i in 0..MAX_NODES {
            match self.read_entry(i) {
                Some(e) if e.signature.node_id == node.node_id => {
                    return Err(Error::DuplicateNode(format!(
                        "node {:?} is already registered (index {i}, process {})",
                        node.node_id, e.owner_pid
                    )))
                }
                None if free.is_none() && self.entry(i).state.load(Ordering::Acquire) == FREE => {
                    free = Some(i)
                }
                _ => {}
            }
        }
        let i = free.ok_or_else(|| {
            Error::InsufficientResources(format!("the host registry is full ({MAX_NODES} nodes)"))
        })?;
        let e = self.entry(i);
        let me = sys::process::pid();
        let id = node.node_id.as_bytes();
        // SAFETY: the entry is FREE and we hold the lock, so no one else writes it and
        // readers ignore it until LIVE is stored below; lengths are checked against the
        // field sizes (ids are at most 63 bytes, signatures at most SIG_MAX).
        unsafe {
            let p = self.entry_ptr(i);
            std::ptr::copy_nonoverlapping(id.as_ptr(), p.add(ID_OFFSET), id.len());
            std::ptr::copy_nonoverlapping(sig.as_ptr(), p.add(SIG_OFFSET), sig.len());
        }
        e.id_len.store(id.len() as u32, Ordering::Relaxed);
        e.sig_len.store(sig.len() as u32, Ordering::Relaxed);
        e.owner_pid.store(me, Ordering::Relaxed);
        e.heartbeat.store(0, Ordering::Relaxed);
        e.owner_start
            .store(sys::process::start_time(me).unwrap_or(0), Ordering::Relaxed);
        e.generation.fetch_add(1, Ordering::Relaxed);
        e.since.store(history::unix_ns(), Ordering::Relaxed);
        e.state.store(LIVE, Ordering::Release);
        self.header().nodes_epoch.fetch_add(1, Ordering::AcqRel);
        Ok(i as u32)
    }

    /// Removes a node this process registered, with its channel files.
    pub fn unregister(&self, index: u32) -> Result<()> {
        let _l = self.lock()?;
        let i = index as usize;
        if i >= MAX_NODES {
            return Err(Error::NodeNotFound(format!("no node with index {index}")));
        }
        let Some(entry) = self.read_entry(i) else {
            return Err(Error::NodeNotFound(format!("no node with index {index}")));
        };
        if entry.owner_pid != sys::process::pid() {
            return Err(Error::InvalidArgument(format!(
                "node {:?} is hosted by process {}, not this one",
                entry.signature.node_id, entry.owner_pid
            )));
        }
        self.record_departure(i, history::unix_ns());
        self.entry(i).state.store(FREE, Ordering::Release);
        super::channel::remove_channel_files(&self.dir, &[index]);
        self.header().nodes_epoch.fetch_add(1, Ordering::AcqRel);
        self.bump_channels_epoch();
        Ok(())
    }

    /// The live node with this id, if any (dead owners are reclaimed first).
    pub fn lookup(&self, node_id: &str) -> Result<Option<NodeEntry>> {
        Ok(self
            .list()?
            .into_iter()
            .find(|e| e.signature.node_id == node_id))
    }

    /// The live node at `index`, if any.
    pub fn get(&self, index: u32) -> Option<NodeEntry> {
        ((index as usize) < MAX_NODES)
            .then(|| self.read_entry(index as usize))
            .flatten()
    }

    /// The registration generation of node `index` while it is registered: two loads, no
    /// signature read (for liveness checks of a known node, not to learn what it is).
    pub fn live_generation(&self, index: u32) -> Option<u64> {
        if index as usize >= MAX_NODES {
            return None;
        }
        let e = self.entry(index as usize);
        (e.state.load(Ordering::Acquire) == LIVE).then(|| e.generation.load(Ordering::Relaxed))
    }

    /// Makes `index` ring `bell_index`'s doorbell to wake its engine.
    pub fn set_bell(&self, index: u32, bell_index: u32) {
        if (index as usize) < MAX_NODES {
            self.entry(index as usize)
                .bell_index
                .store(bell_index, Ordering::Release);
        }
    }

    /// The entry whose doorbell wakes the engine hosting `index`.
    #[inline]
    pub fn bell_of(&self, index: u32) -> u32 {
        if (index as usize) < MAX_NODES {
            self.entry(index as usize)
                .bell_index
                .load(Ordering::Acquire)
        } else {
            u32::MAX
        }
    }

    /// The doorbell (futex word) and sleeping flag of entry `bell_index`.
    #[inline]
    pub fn bell_words(&self, bell_index: u32) -> Option<(&AtomicU32, &AtomicU32)> {
        ((bell_index as usize) < MAX_NODES).then(|| {
            let e = self.entry(bell_index as usize);
            (&e.bell, &e.sleeping)
        })
    }

    /// Wakes the engine hosting `index` if it sleeps (one load of a read-mostly line when it
    /// does not). The fence orders the caller's ring write before the load of the flag, so a
    /// sleeper that set the flag and then found its rings empty is always woken.
    #[inline]
    pub fn ring_bell(&self, index: u32) {
        let Some((bell, sleeping)) = self.bell_words(self.bell_of(index)) else {
            return;
        };
        crate::sys::fence::light();
        if sleeping.load(Ordering::Relaxed) == 1 && sleeping.swap(0, Ordering::AcqRel) == 1 {
            bell.fetch_add(1, Ordering::Release);
            crate::sys::futex_wake(bell);
        }
    }

    /// Records a heartbeat of node `index` at `monotonic_ns` (0: stops heartbeats).
    pub fn beat(&self, index: u32, monotonic_ns: u64) {
        if (index as usize) < MAX_NODES {
            self.entry(index as usize)
                .heartbeat
                .store(monotonic_ns, Ordering::Release);
        }
    }

    /// The last heartbeat of node `index` (`CLOCK_MONOTONIC` ns; 0: none).
    pub fn heartbeat(&self, index: u32) -> u64 {
        if (index as usize) < MAX_NODES {
            self.entry(index as usize).heartbeat.load(Ordering::Acquire)
        } else {
            0
        }
    }

    /// Deletes the fabric's host state (registry, zone table, rings, segments) when no live
    /// node is left in it (dead owners are reclaimed first). Returns whether it was deleted;
    /// `Ok(false)` while a process still hosts a node.
    pub fn remove_if_unused(fabric: &str) -> Result<bool> {
        crate::sys::fs::validate_fabric_name(fabric).map_err(Error::InvalidArgument)?;
        let dir = sys::state_root().join(fabric);
        if !dir.exists() {
            return Ok(false);
        }
        let reg = Registry::open_in(&dir)?;
        let _l = reg.lock()?;
        reg.reclaim_locked();
        if (0..MAX_NODES).any(|i| reg.entry(i).state.load(Ordering::Acquire) != FREE) {
            return Ok(false);
        }
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
        Ok(true)
    }

    /// Every live node, by index.
    pub fn list(&self) -> Result<Vec<NodeEntry>> {
        // Dead owners are reclaimed when the lock is free now; the entries are read without
        // it (engines list peers from their poll loop, which must not wait on a process that
        // holds the lock). An entry being rewritten reads as torn (its id and signature
        // disagree, or the signature does not parse) and is left out of this listing.
        let _ = self.try_reclaim_dead();
        Ok((0..MAX_NODES).filter_map(|i| self.read_entry(i)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HardwareType;
    use crate::ErrorKind;

    fn node(id: &str) -> NodeSignature {
        NodeSignature::new(id, HardwareType::CpuServer, 10.0, 1).unwrap()
    }

    #[test]
    fn register_lookup_duplicate_unregister() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open_in(dir.path()).unwrap();
        let e0 = r.nodes_epoch();
        let a = r.register(&node("a")).unwrap();
        let b = r.register(&node("b")).unwrap();
        assert_ne!(a, b);
        assert!(r.nodes_epoch() > e0);
        assert_eq!(
            r.register(&node("a")).unwrap_err().kind(),
            ErrorKind::DuplicateNode
        );
        // A second handle (as another process would have) sees the same table.
        let r2 = Registry::open_in(dir.path()).unwrap();
        assert_eq!(
            r2.register(&node("b")).unwrap_err().kind(),
            ErrorKind::DuplicateNode
        );
        let found = r2.lookup("a").unwrap().unwrap();
        assert_eq!(found.index, a);
        assert_eq!(found.owner_pid, std::process::id());
        assert_eq!(r2.list().unwrap().len(), 2);
        r.unregister(a).unwrap();
        assert!(r2.lookup("a").unwrap().is_none());
        assert_eq!(r.unregister(a).unwrap_err().kind(), ErrorKind::NodeNotFound);
        assert_eq!(
            r.register(&node("a")).unwrap(),
            a,
            "the freed index is reused"
        );
        assert_eq!(r.get(a).unwrap().generation, 2);
        let mut big = node("big");
        big.metadata =
            Some(serde_json::from_str(&format!("{{\"x\": \"{}\"}}", "y".repeat(2000))).unwrap());
        assert_eq!(r.register(&big).unwrap_err().kind(), ErrorKind::InvalidNode);
    }
}
