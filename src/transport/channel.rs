//! Channels between two nodes on one host: for each direction a latency-lane ring and a
//! bulk-lane ring, each a file `ch-<src>-<dst>-<lane>` in the fabric directory, created by
//! the sending side and opened by the receiving side.

use std::path::{Path, PathBuf};

/// The two lanes of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// ULTRA_HIGH, HIGH, MEDIUM: drained first.
    Latency,
    /// LOW, BULK: fragmented, drained after the latency lane.
    Bulk,
}

impl Lane {
    fn tag(self) -> char {
        match self {
            Lane::Latency => 'l',
            Lane::Bulk => 'b',
        }
    }
}

/// Path of the ring carrying `src` → `dst` on `lane`.
pub fn ring_path(dir: &Path, src: u32, dst: u32, lane: Lane) -> PathBuf {
    dir.join(format!("ch-{src}-{dst}-{}", lane.tag()))
}

/// Parses a ring file name into (src, dst, lane).
pub fn parse_ring_name(name: &str) -> Option<(u32, u32, Lane)> {
    let mut it = name.strip_prefix("ch-")?.split('-');
    let src = it.next()?.parse().ok()?;
    let dst = it.next()?.parse().ok()?;
    let lane = match it.next()? {
        "l" => Lane::Latency,
        "b" => Lane::Bulk,
        _ => return None,
    };
    it.next().is_none().then_some((src, dst, lane))
}

/// Path of endpoint ring `n` of process `pid` from `src` to registration `generation` of
/// `dst`: the ring an endpoint owns, polled by the destination node's mailbox (only by that
/// registration's: a later holder of the index never reads it).
pub fn endpoint_path(
    dir: &Path,
    (src, dst, generation): (u32, u32, u64),
    pid: u32,
    n: u32,
) -> PathBuf {
    dir.join(format!("ep-{src}-{dst}-{pid}-{n}.{generation}"))
}

/// Parses an endpoint ring file name into ((src, dst, pid, n), generation of dst).
pub fn parse_endpoint_name(name: &str) -> Option<((u32, u32, u32, u32), u64)> {
    let (rest, generation) = name.strip_prefix("ep-")?.split_once('.')?;
    Some((parse_four(rest)?, generation.parse().ok()?))
}

/// Path of the reply ring of the endpoint whose ring is at `endpoint` (`rp-` for `ep-`):
/// the destination's process writes answers to the endpoint's requests into it.
pub fn reply_path(endpoint: &Path) -> Option<PathBuf> {
    let name = endpoint.file_name()?.to_str()?.strip_prefix("ep-")?;
    Some(endpoint.with_file_name(format!("rp-{name}")))
}

/// Parses a reply ring file name like [`parse_endpoint_name`].
pub fn parse_reply_name(name: &str) -> Option<((u32, u32, u32, u32), u64)> {
    let (rest, generation) = name.strip_prefix("rp-")?.split_once('.')?;
    Some((parse_four(rest)?, generation.parse().ok()?))
}

/// Four numbers separated by `-`, nothing else.
pub(crate) fn parse_four(rest: &str) -> Option<(u32, u32, u32, u32)> {
    let mut it = rest.split('-');
    let mut v = [0u32; 4];
    for x in &mut v {
        *x = it.next()?.parse().ok()?;
    }
    it.next().is_none().then_some((v[0], v[1], v[2], v[3]))
}

/// Names a buffer-pool segment in the fabric directory: the owning process (pid and start
/// time, so a reused pid is another owner) and the segment's number within it. Descriptors
/// carry it, so a receiver can map the sender's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentKey {
    /// Owner process id.
    pub pid: u32,
    /// Segment number within the owner.
    pub n: u32,
    /// Owner start time (clock ticks since boot).
    pub start: u64,
}

impl SegmentKey {
    /// Bytes of the encoded key.
    pub const LEN: usize = 16;

    /// Little-endian: pid, number, start time.
    pub fn encode(&self) -> [u8; SegmentKey::LEN] {
        let mut b = [0u8; SegmentKey::LEN];
        b[0..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..8].copy_from_slice(&self.n.to_le_bytes());
        b[8..16].copy_from_slice(&self.start.to_le_bytes());
        b
    }

    /// The key as one number (a pool's tag).
    pub fn to_tag(&self) -> u128 {
        u128::from_le_bytes(self.encode())
    }

    /// The key a pool's tag holds.
    pub fn from_tag(tag: u128) -> SegmentKey {
        SegmentKey::decode(&tag.to_le_bytes()).expect("16 bytes")
    }

    /// Reads an encoded key (`None` when `b` is shorter than [`SegmentKey::LEN`]).
    pub fn decode(b: &[u8]) -> Option<SegmentKey> {
        let b = b.get(..SegmentKey::LEN)?;
        Some(SegmentKey {
            pid: u32::from_le_bytes(b[0..4].try_into().ok()?),
            n: u32::from_le_bytes(b[4..8].try_into().ok()?),
            start: u64::from_le_bytes(b[8..16].try_into().ok()?),
        })
    }
}

/// Names a filled buffer of a segment: what travels instead of its bytes (the engine's
/// descriptor frames and direct channels both carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// The segment.
    pub key: SegmentKey,
    /// Buffer index in the segment's pool.
    pub index: u32,
    /// Bytes of data in the buffer.
    pub len: u32,
}

impl Descriptor {
    /// Bytes of an encoded descriptor: segment key, buffer index (4), byte count (4).
    pub const LEN: usize = SegmentKey::LEN + 8;

    /// Little-endian: key, index, length.
    pub fn encode(&self) -> [u8; Descriptor::LEN] {
        let mut b = [0u8; Descriptor::LEN];
        b[..SegmentKey::LEN].copy_from_slice(&self.key.encode());
        b[SegmentKey::LEN..SegmentKey::LEN + 4].copy_from_slice(&self.index.to_le_bytes());
        b[SegmentKey::LEN + 4..].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Reads an encoded descriptor at the start of `b` (`None` when `b` is too short).
    pub fn decode(b: &[u8]) -> Option<Descriptor> {
        let word = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
        Some(Descriptor {
            key: SegmentKey::decode(b)?,
            index: word(SegmentKey::LEN)?,
            len: word(SegmentKey::LEN + 4)?,
        })
    }
}

/// The segments a process has mapped to read descriptors, by key (mapped on first use).
#[derive(Debug)]
pub struct SegmentMaps {
    maps: rustc_hash::FxHashMap<SegmentKey, crate::buffer::BufferManager>,
    /// The pid of the process that made the maps, which buffers are lent to (read once:
    /// `getpid` is a system call, and a descriptor is taken per large message).
    pid: u32,
}

impl Default for SegmentMaps {
    fn default() -> SegmentMaps {
        SegmentMaps {
            maps: Default::default(),
            pid: crate::sys::process::pid(),
        }
    }
}

impl SegmentMaps {
    /// Records a segment this process made (its buffers are read through the same pool).
    pub fn insert(&mut self, key: SegmentKey, pool: crate::buffer::BufferManager) {
        self.maps.insert(key, pool);
    }

    /// Unmaps the segments of processes that are gone (buffers of them that are still held
    /// keep their mapping until dropped); `own` is this process's pid.
    pub fn retain_live(&mut self, own: u32) {
        self.maps
            .retain(|k, _| k.pid == own || crate::sys::process::alive(k.pid, k.start));
    }

    /// A mapped segment, if it is.
    pub fn get(&self, key: &SegmentKey) -> Option<&crate::buffer::BufferManager> {
        self.maps.get(key)
    }

    /// The buffer `d` names, owned by the returned payload (which gives it back to its pool
    /// when dropped); maps the segment from `dir` first if needed.
    pub fn take(&mut self, dir: &Path, d: &Descriptor) -> crate::Result<crate::buffer::Payload> {
        let pool = match self.maps.entry(d.key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                crate::buffer::BufferManager::open_shared(&segment_path(dir, d.key))?,
            ),
        };
        // Only a buffer lent to this process, once: senders lend every buffer they send by
        // descriptor, also to their own process.
        pool.take_lent_payload(d.index, d.len as usize, self.pid)
    }
}

/// Path of buffer-pool segment `key`.
pub fn segment_path(dir: &Path, key: SegmentKey) -> PathBuf {
    dir.join(format!("seg-{}-{}-{}", key.pid, key.start, key.n))
}

/// Parses a segment file name.
pub fn parse_segment_name(name: &str) -> Option<SegmentKey> {
    let mut it = name.strip_prefix("seg-")?.split('-');
    let pid = it.next()?.parse().ok()?;
    let start = it.next()?.parse().ok()?;
    let n = it.next()?.parse().ok()?;
    it.next().is_none().then_some(SegmentKey { pid, n, start })
}

/// Deletes the segment files of processes that are gone.
pub fn remove_dead_segments(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if let Some(k) = e.file_name().to_str().and_then(parse_segment_name) {
            if !crate::sys::process::alive(k.pid, k.start) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Deletes every ring file that starts or ends at one of `nodes`.
pub fn remove_channel_files(dir: &Path, nodes: &[u32]) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let ends = parse_ring_name(name)
            .map(|(s, d, _)| (s, d))
            .or_else(|| super::direct::parse_direct_name(name).map(|(s, d, _, _)| (s, d)))
            .or_else(|| parse_endpoint_name(name).map(|((s, d, _, _), _)| (s, d)))
            .or_else(|| parse_reply_name(name).map(|((s, d, _, _), _)| (s, d)));
        if let Some((src, dst)) = ends {
            if nodes.contains(&src) || nodes.contains(&dst) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_and_keys_round_trip() {
        let k = SegmentKey {
            pid: 4242,
            n: 3,
            start: 987_654_321,
        };
        let p = segment_path(Path::new("/x"), k);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, "seg-4242-987654321-3");
        assert_eq!(parse_segment_name(name), Some(k));
        assert_eq!(SegmentKey::decode(&k.encode()), Some(k));
        assert_eq!(SegmentKey::decode(&k.encode()[..15]), None);
        let d = Descriptor {
            key: k,
            index: 7,
            len: 1 << 20,
        };
        assert_eq!(Descriptor::decode(&d.encode()), Some(d));
        assert_eq!(Descriptor::decode(&d.encode()[..Descriptor::LEN - 1]), None);
        for bad in [
            "seg-1-2",
            "seg-1-2-3-4",
            "seg-a-2-3",
            "ch-1-2-l",
            "seg--2-3",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_round_trip_and_cleanup_matches_both_ends() {
        let dir = tempfile::tempdir().unwrap();
        for (s, d, l) in [
            (1, 2, Lane::Latency),
            (2, 1, Lane::Bulk),
            (3, 4, Lane::Latency),
        ] {
            let p = ring_path(dir.path(), s, d, l);
            assert_eq!(
                parse_ring_name(p.file_name().unwrap().to_str().unwrap()),
                Some((s, d, l))
            );
            std::fs::write(p, b"").unwrap();
        }
        std::fs::write(dir.path().join("registry"), b"").unwrap();
        std::fs::write(endpoint_path(dir.path(), (1, 5, 3), 77, 0), b"").unwrap();
        std::fs::write(endpoint_path(dir.path(), (6, 7, 9), 77, 1), b"").unwrap();
        assert_eq!(
            parse_endpoint_name("ep-6-7-77-1.9"),
            Some(((6, 7, 77, 1), 9))
        );
        assert_eq!(parse_endpoint_name("ep-6-7-77-1"), None);
        assert_eq!(parse_endpoint_name("ep-6-7-77.1"), None);
        assert_eq!(parse_endpoint_name("ep-6-7-77-1-2.9"), None);
        assert_eq!(parse_ring_name("ch-1-2-x"), None);
        assert_eq!(parse_ring_name("ch-1-2-l-9"), None);
        remove_channel_files(dir.path(), &[1]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["ch-3-4-l", "ep-6-7-77-1.9", "registry"]);
    }
}
