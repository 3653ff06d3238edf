//! What operators' tools read of a running fabric without joining it:
//!
//! - the traffic of every ring in the fabric directory (a link between two nodes: messages
//!   and bytes its producer published, slots waiting for its consumer), read from the ring
//!   headers, which producers keep up to date with plain stores as they publish;
//! - each process's counters (`pm-<pid>-<start>.json`, rewritten twice a second by a thread
//!   of the process, never by its engine), deleted with the process or when it dies.
//!
//! Everything here is read from files other processes write: a header that is not a ring's,
//! or positions a ring cannot have, is reported as unreadable, never trusted.

use crate::ring::{HEADER_PAGE, MAX_CAPACITY, RING_MAGIC};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a ring file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RingKind {
    /// A channel lane between two nodes (`ch-`): sends, forwards, answers.
    Channel,
    /// An endpoint's ring (`ep-`): `post` and requests through an endpoint.
    Endpoint,
    /// The answers to an endpoint's requests (`rp-`).
    Reply,
    /// A direct channel (`dc-`).
    Direct,
}

/// One ring's traffic.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RingTraffic {
    /// The file's name.
    pub name: String,
    /// What it carries.
    pub kind: RingKind,
    /// Sending node index.
    pub src: u32,
    /// Receiving node index.
    pub dst: u32,
    /// Messages published since the ring was made.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Slots published and not yet released by the consumer (the queue).
    pub queued_slots: u64,
    /// Slots of the ring.
    pub capacity: u64,
    /// Whether the consumer found the ring corrupt.
    pub corrupt: bool,
    /// Timing probes the consumer completed (see [`crate::ring::Probe`]).
    pub probes: u64,
    /// Sum of their delays, ns (wraps; differences of two readings are what count).
    pub probe_delay_sum_ns: u64,
}

/// The kind and ends of a ring file name (of a reply ring: its endpoint's ends).
pub(crate) fn ends_of(name: &str) -> Option<(RingKind, u32, u32)> {
    use super::channel::{parse_endpoint_name, parse_reply_name, parse_ring_name};
    if let Some((s, d, _)) = parse_ring_name(name) {
        return Some((RingKind::Channel, s, d));
    }
    if let Some(((s, d, _, _), _)) = parse_endpoint_name(name) {
        return Some((RingKind::Endpoint, s, d));
    }
    if let Some(((s, d, _, _), _)) = parse_reply_name(name) {
        return Some((RingKind::Reply, s, d));
    }
    super::direct::parse_direct_name(name).map(|(s, d, _, _)| (RingKind::Direct, s, d))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads the traffic of the ring file at `path` (`None`: not a ring of this format, or
/// positions no ring reaches).
pub fn read_ring(path: &Path, kind: RingKind, src: u32, dst: u32) -> Option<RingTraffic> {
    let f = open_ring(path)?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    read_open_ring(&f, name, kind, src, dst)
}

/// Opens the ring file at `path` to read its header, again and again ([`read_open_ring`]):
/// `None` when it is too short to be a ring. Never through a link, never blocking on a FIFO
/// put under a ring's name.
pub fn open_ring(path: &Path) -> Option<std::fs::File> {
    let f = crate::sys::fs::open_state_file(path, false).ok()?;
    (f.metadata().ok()?.len() >= HEADER_PAGE as u64).then_some(f)
}

/// Reads the traffic of a ring file opened by [`open_ring`], reported under `name` (`None`:
/// not a ring of this format, or positions no ring reaches). One read of the header.
pub fn read_open_ring(
    f: &std::fs::File,
    name: String,
    kind: RingKind,
    src: u32,
    dst: u32,
) -> Option<RingTraffic> {
    let mut b = [0u8; 264];
    f.read_exact_at(&mut b, 0).ok()?;
    // Offsets of `RingHeader` (asserted there): magic 0, capacity 16, state 20, the probe
    // at 56 (completed 72, delay sum 80), the producer's line at 128 (tail, messages,
    // bytes), the consumer's head at 256.
    let capacity = u32_at(&b, 16) as u64;
    let (tail, head) = (u64_at(&b, 128), u64_at(&b, 256));
    let sane = u64_at(&b, 0) == RING_MAGIC
        && capacity.is_power_of_two()
        && capacity >= 2
        && capacity <= MAX_CAPACITY as u64
        // The head is read after the tail: a consumer may have published past the tail read
        // (by at most a ring), which is no queue, not a corrupt ring.
        && head.saturating_sub(tail) <= capacity
        && tail.saturating_sub(head) <= capacity;
    sane.then(|| RingTraffic {
        name,
        kind,
        src,
        dst,
        messages: u64_at(&b, 136),
        bytes: u64_at(&b, 144),
        queued_slots: tail.saturating_sub(head),
        capacity,
        corrupt: u32_at(&b, 20) & crate::ring::STATE_CORRUPT != 0,
        probes: u64_at(&b, 72),
        probe_delay_sum_ns: u64_at(&b, 80),
    })
}

/// The traffic of every ring in the fabric directory `dir`, and the names of ring files
/// that could not be read as rings.
pub fn ring_traffic(dir: &Path) -> (Vec<RingTraffic>, Vec<String>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (ok, bad);
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((kind, s, d)) = ends_of(&name) else {
            continue;
        };
        match read_ring(&e.path(), kind, s, d) {
            Some(t) => ok.push(t),
            // A ring being created (header not yet written) reads as this too.
            None => bad.push(name),
        }
    }
    ok.sort_by(|a, b| a.name.cmp(&b.name));
    bad.sort();
    (ok, bad)
}

/// A link between two nodes of one process (its rings are in the process's memory, so only
/// the process can tell): what its rings carried.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LocalLink {
    /// Sending node.
    pub src: String,
    /// Receiving node.
    pub dst: String,
    /// Messages published.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Slots not yet released by the receiver (for a connection, its send queue's bytes
    /// in slot-sized units).
    pub queued_slots: u64,
    /// Slots of the rings (for a connection, its send queue's limit in slot-sized units).
    pub capacity: u64,
    /// Whether the link is a connection to another host (else rings of one process).
    #[serde(default)]
    pub connection: bool,
}

/// What a process publishes about itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcessMetrics {
    /// The process.
    pub pid: u32,
    /// Unix time of the snapshot, seconds.
    pub time: f64,
    /// The nodes it hosts.
    pub nodes: Vec<String>,
    /// Its counters and figures (those of `get_topology_info`'s `performance_metrics`).
    pub metrics: BTreeMap<String, f64>,
    /// The links between its own nodes, and its connections to other hosts.
    #[serde(default)]
    pub links: Vec<LocalLink>,
    /// The host it runs on, when a view of several hosts names it (never in its file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Largest metrics file read.
const MAX_METRICS_FILE: u64 = 1 << 20;

fn metrics_name(pid: u32, start: u64) -> String {
    format!("pm-{pid}-{start}.json")
}

/// `(pid, start)` of a metrics file name.
pub fn parse_metrics_name(name: &str) -> Option<(u32, u64)> {
    let (pid, start) = name
        .strip_prefix("pm-")?
        .strip_suffix(".json")?
        .split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Path of this process's metrics file in `dir`.
pub fn metrics_path(dir: &Path) -> PathBuf {
    let pid = crate::sys::process::pid();
    dir.join(metrics_name(
        pid,
        crate::sys::process::start_time(pid).unwrap_or(0),
    ))
}

/// Writes `m` as this process's metrics (through a temporary file and a rename, so a reader
/// sees a whole snapshot).
pub fn write_metrics(dir: &Path, m: &ProcessMetrics) -> crate::Result<()> {
    let path = metrics_path(dir);
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec(m)
        .map_err(|e| crate::Error::InvalidArgument(format!("encoding metrics: {e}")))?;
    let _ = std::fs::remove_file(&tmp);
    let mut f = crate::sys::fs::create_state_file(&tmp)?;
    std::io::Write::write_all(&mut f, &body).map_err(|e| crate::Error::io("writing metrics", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| crate::Error::io("publishing metrics", e))
}

/// The metrics of the live processes of the fabric directory `dir` (files of dead
/// processes are deleted; files that do not parse are skipped).
pub fn read_metrics(dir: &Path) -> Vec<ProcessMetrics> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((pid, start)) = parse_metrics_name(&name) else {
            continue;
        };
        // A start time of 0 is no process's (ours write theirs): not read (and deleted by
        // `remove_dead_metrics`).
        if start == 0 {
            continue;
        }
        if !crate::sys::process::alive(pid, start) {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        let Ok(f) = crate::sys::fs::open_state_file(&e.path(), false) else {
            continue;
        };
        let mut body = Vec::new();
        if std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_METRICS_FILE), &mut body)
            .is_err()
        {
            continue;
        }
        if let Ok(m) = serde_json::from_slice::<ProcessMetrics>(&body) {
            if m.pid == pid {
                // A file of this host: it names no host.
                out.push(ProcessMetrics { host: None, ..m });
            }
        }
    }
    out.sort_by_key(|m| m.pid);
    out
}

/// Deletes the metrics files of processes that are gone (and the leftovers of a write they
/// did not finish).
pub fn remove_dead_metrics(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let json = name.replace(".tmp", ".json");
        if let Some((pid, start)) = parse_metrics_name(&json) {
            // A start of 0 is no process of ours (the file was forged): read by no one.
            if start == 0 || !crate::sys::process::alive(pid, start) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A node of a running fabric as this host sees it: [`node_stats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeStats {
    /// Registered by a live process.
    pub up: bool,
    /// That process (0 when down).
    pub pid: u32,
    /// Registration (up) or leaving (down), Unix time in ns.
    pub since_unix_ns: u64,
    /// Messages its rings carried out.
    pub sent_messages: u64,
    /// Their payload bytes.
    pub sent_bytes: u64,
    /// Messages put into rings toward it.
    pub received_messages: u64,
    /// Their payload bytes.
    pub received_bytes: u64,
    /// Slots waiting for it.
    pub queued_slots: u64,
}

/// The registry of the fabric `fabric` running on this host; `NodeNotFoundError` when none
/// does (nothing is created).
pub fn open_running(fabric: &str) -> crate::Result<super::registry::Registry> {
    crate::sys::fs::validate_fabric_name(fabric).map_err(crate::Error::InvalidArgument)?;
    let dir = crate::sys::state_root().join(fabric);
    if !dir.join("registry").exists() {
        return Err(crate::Error::NodeNotFound(format!(
            "fabric {fabric:?} is not running on this host (nothing in {})",
            dir.display()
        )));
    }
    super::registry::Registry::open_in(&dir)
}

/// What one node sent another, over all the rings between them in that direction.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkTotal {
    /// Sending node (`#<index>` for an index no live node holds).
    pub src: String,
    /// Receiving node.
    pub dst: String,
    /// Messages published.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Slots waiting for the receiver.
    pub queued_slots: u64,
    /// Slots of the rings.
    pub capacity: u64,
    /// Rings.
    pub rings: usize,
    /// Rings the receiver found corrupt.
    pub corrupt: usize,
    /// Connections to another host (their traffic as the sending process counts it).
    #[serde(default)]
    pub connections: usize,
}

/// The links of the fabric of `reg`, by sending and receiving node: its rings (read from
/// their headers) and the links inside each of `processes` (as they publish them); and the
/// ring files that did not read as rings.
pub fn link_totals(
    reg: &super::registry::Registry,
    processes: &[ProcessMetrics],
) -> crate::Result<(Vec<LinkTotal>, Vec<String>)> {
    let names: BTreeMap<u32, String> = reg
        .list()?
        .into_iter()
        .map(|e| (e.index, e.signature.node_id))
        .collect();
    let name = |i: u32| names.get(&i).cloned().unwrap_or_else(|| format!("#{i}"));
    let (rings, unreadable) = ring_traffic(reg.dir());
    let mut links: BTreeMap<(String, String), LinkTotal> = BTreeMap::new();
    for r in &rings {
        // A reply ring is written by the node its endpoint sends to.
        let (s, d) = match r.kind {
            RingKind::Reply => (r.dst, r.src),
            _ => (r.src, r.dst),
        };
        let l = links.entry((name(s), name(d))).or_default();
        l.messages += r.messages;
        l.bytes += r.bytes;
        l.queued_slots += r.queued_slots;
        l.capacity += r.capacity;
        l.rings += 1;
        l.corrupt += r.corrupt as usize;
    }
    for r in processes.iter().flat_map(|p| p.links.iter()) {
        let l = links.entry((r.src.clone(), r.dst.clone())).or_default();
        l.messages += r.messages;
        l.bytes += r.bytes;
        l.queued_slots += r.queued_slots;
        l.capacity += r.capacity;
        if r.connection {
            l.connections += 1;
        } else {
            l.rings += 1;
        }
    }
    let links = links
        .into_iter()
        .map(|((src, dst), l)| LinkTotal { src, dst, ..l })
        .collect();
    Ok((links, unreadable))
}

/// The state and traffic of `node_id` in the fabric `fabric` of this host, read from its
/// registry, ring headers and published counters (nothing is created: `NodeNotFoundError`
/// when the fabric does not run here, or the node is neither live nor remembered).
pub fn node_stats(fabric: &str, node_id: &str) -> crate::Result<NodeStats> {
    let reg = open_running(fabric)?;
    let mut s = NodeStats::default();
    let Some(e) = reg.lookup(node_id)? else {
        let d = reg
            .departed()
            .into_iter()
            .find(|d| d.node_id == node_id)
            .ok_or_else(|| {
                crate::Error::NodeNotFound(format!("no node {node_id:?} in fabric {fabric:?}"))
            })?;
        s.since_unix_ns = d.since_unix_ns;
        return Ok(s);
    };
    (s.up, s.pid, s.since_unix_ns) = (true, e.owner_pid, e.since_unix_ns);
    let (links, _) = link_totals(&reg, &read_metrics(reg.dir()))?;
    for l in &links {
        if l.src == node_id {
            s.sent_messages += l.messages;
            s.sent_bytes += l.bytes;
        }
        if l.dst == node_id {
            s.received_messages += l.messages;
            s.received_bytes += l.bytes;
            s.queued_slots += l.queued_slots;
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::Region;
    use crate::ring::{split, SlotHeader};
    use std::sync::Arc;

    #[test]
    fn a_rings_traffic_reads_from_its_header_and_a_forged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ch-3-7-l");
        let r = Arc::new(Region::create_file(&path, 64).unwrap());
        let (mut p, mut c) = split(r.clone());
        for len in [10usize, 100, 1000] {
            p.try_push(SlotHeader::default(), &[&vec![1u8; len]])
                .unwrap();
        }
        let (all, bad) = ring_traffic(dir.path());
        assert!(bad.is_empty());
        assert_eq!(all.len(), 1);
        let t = &all[0];
        assert_eq!((t.kind, t.src, t.dst), (RingKind::Channel, 3, 7));
        assert_eq!((t.messages, t.bytes, t.capacity), (3, 1110, 64));
        assert!(t.queued_slots >= 3);
        while c.try_pop(|_, _| ()).unwrap().is_some() {}
        c.publish();
        assert_eq!(ring_traffic(dir.path()).0[0].queued_slots, 0);
        // Not a ring: garbage under a ring's name is reported, not read.
        std::fs::write(dir.path().join("ep-1-2-3-4.5"), vec![0xffu8; 8192]).unwrap();
        let (all, bad) = ring_traffic(dir.path());
        assert_eq!(all.len(), 1);
        assert_eq!(bad, ["ep-1-2-3-4.5"]);
    }

    #[test]
    fn metrics_of_live_processes_are_read_and_of_dead_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        let m = ProcessMetrics {
            pid: crate::sys::process::pid(),
            time: 1.0,
            nodes: vec!["a".into()],
            metrics: [("errors".to_string(), 2.0)].into(),
            links: Vec::new(),
            host: None,
        };
        write_metrics(dir.path(), &m).unwrap();
        std::fs::write(dir.path().join(metrics_name(u32::MAX - 1, 5)), b"{}").unwrap();
        std::fs::write(dir.path().join("pm-1-2.tmp"), b"").unwrap();
        // A live process's pid with no start time: forged.
        let forged = metrics_name(crate::sys::process::pid(), 0);
        std::fs::write(dir.path().join(forged), serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(read_metrics(dir.path()), [m]);
        remove_dead_metrics(dir.path());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(parse_metrics_name("pm-12-34.json"), Some((12, 34)));
        assert_eq!(parse_metrics_name("pm-12.json"), None);
    }
}
