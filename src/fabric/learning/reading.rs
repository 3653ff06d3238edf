//! What a sample reads of a link direction: the counts of its channels (every ring file of the
//! direction, whichever process drives it, and the rings and connections only this
//! process's engine sees), and the load between two readings of the same channels.

use super::super::{lock, Inner};
use crate::routing::LoadSample;
use crate::transport::stats::{
    ends_of, open_ring, read_open_ring, read_ring, RingKind, RingTraffic,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// Last reading of a link direction's rings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading {
    at: Instant,
    /// Whether probes time the link.
    probed: bool,
    /// Whether a probe was on its way when read (on a connection: on a ring, one on its way
    /// shows as slots queued).
    pending: bool,
    /// Which channels' counts these are: counts of two are never compared (a connection
    /// made anew, a direction whose rings came or went).
    source: u64,
    bytes: u64,
    probes: u64,
    delay_sum_ns: u64,
    queued_bytes: u64,
}

/// Mean probe delays from this on are not taken as samples, ns (1 s: a ring in shared
/// memory whose receiver runs drains in far less).
const MAX_SAMPLE_DELAY_NS: f64 = 1e9;

/// Ring files kept open between samples, at most: the process's descriptors are its
/// users' (a soft limit of 1,024 is common); past these, a ring file is opened for each read.
pub(super) const KEPT_OPEN: usize = 256;

/// Bytes a direction carries per second at most (10 TB/s, several times what a memory bus
/// moves): counts that grew faster were forged.
const MAX_BYTES_PER_SEC: f64 = 1e13;

/// Probes a direction completes per second at most: one per ring per millisecond marks
/// them, so a million a second is a thousand busy rings.
const MAX_PROBES_PER_SEC: f64 = 1e6;

/// Slot size of a ring: queued slots to bytes.
const SLOT_BYTES: u64 = crate::ring::SLOT_SIZE as u64;

impl Reading {
    /// Reads the ring files of a direction (`None`: none could be read). The set of rings
    /// read is the reading's source: counts of another set are not compared with it.
    /// Rings made for an earlier registration of their destination (no one reads them: their
    /// queue never drains) are left out, and so are direct channels between two nodes of
    /// one other process: the rest of their traffic is in that process's memory, and the
    /// channel alone would read as the link's whole load. `open`: how many more files may be
    /// kept open; `registrations`: each index's (generation, owning process).
    pub(super) fn of_files(
        rings: &[RingFile],
        open: &std::cell::Cell<usize>,
        registrations: &HashMap<u32, (u64, u32)>,
        (src, dst): (u32, u32),
        at: Instant,
    ) -> Option<Reading> {
        let owner = |i: u32| registrations.get(&i).map(|r| r.1);
        let partial =
            owner(src).is_some_and(|o| owner(dst) == Some(o) && o != crate::sys::process::pid());
        rings
            .iter()
            .filter(|f| {
                f.made_for
                    .is_none_or(|(i, g)| registrations.get(&i).map(|r| r.0) == Some(g))
                    && !(partial && f.kind == RingKind::Direct)
            })
            .filter_map(|f| {
                let t = f.read(open, (src, dst))?;
                // A ring of one sender alone is its load, not its delay (see `private`).
                let (probes, delay_sum_ns, queued_slots) = if private(f.kind) {
                    (0, 0, 0)
                } else {
                    (t.probes, t.probe_delay_sum_ns, t.queued_slots)
                };
                Some(Reading {
                    at,
                    probed: true,
                    pending: false,
                    source: f.id,
                    bytes: t.bytes,
                    probes,
                    delay_sum_ns,
                    queued_bytes: queued_slots.saturating_mul(SLOT_BYTES),
                })
            })
            .reduce(|a, b| a.with(&b))
    }

    /// The sample of a direction between two readings (`None`: the counts went backwards,
    /// so the rings were made anew, or say what no ring does: more bytes or probes than any
    /// memory moves or any engine marks, which only a forged header holds).
    pub(super) fn load_since(&self, before: &Reading, capacity_gbps: f64) -> Option<LoadSample> {
        let now = self;
        let secs = now.at.duration_since(before.at).as_secs_f64();
        if secs <= 0.0
            || now.bytes < before.bytes
            || now.probes < before.probes
            || now.probed != before.probed
            || now.source != before.source
            || (now.bytes - before.bytes) as f64 / secs > MAX_BYTES_PER_SEC
            || (now.probes - before.probes) as f64 / secs > MAX_PROBES_PER_SEC
        {
            return None;
        }
        let probes = now.probes - before.probes;
        let delay_ns = if !now.probed {
            // Nothing times it: the fixed model answers.
            None
        } else if probes > 0 {
            let mean = now.delay_sum_ns.wrapping_sub(before.delay_sum_ns) as f64 / probes as f64;
            // A second or more is a receiver that stopped (or a mark no clock made), not a
            // link's queue: the load is sampled, the delay not taken.
            (mean < MAX_SAMPLE_DELAY_NS).then_some(mean)
        } else if now.queued_bytes == 0 && !now.pending {
            // Nothing waited when sampled and no probe was on its way: no queue.
            Some(0.0)
        } else {
            // A probe is still on its way.
            None
        };
        let bits = (now.bytes - before.bytes) as f64 * 8.0;
        Some(LoadSample {
            utilisation: bits / secs / (capacity_gbps.max(1e-9) * 1e9),
            queued_bytes: now.queued_bytes as f64,
            delay_ns,
        })
    }

    /// The counts of both readings' channels, as one reading.
    pub(super) fn with(&self, o: &Reading) -> Reading {
        Reading {
            at: self.at,
            probed: self.probed || o.probed,
            pending: self.pending || o.pending,
            source: self.source.wrapping_add(o.source),
            bytes: self.bytes.wrapping_add(o.bytes),
            probes: self.probes.wrapping_add(o.probes),
            delay_sum_ns: self.delay_sum_ns.wrapping_add(o.delay_sum_ns),
            queued_bytes: self.queued_bytes.saturating_add(o.queued_bytes),
        }
    }
}

/// Whether rings of `kind` belong to one sender: an endpoint's ring and its reply ring, a
/// direct channel. What waits in such a ring delays only its own sender's later messages;
/// any other send of the link (through the engine's lanes, or another endpoint's ring) does
/// not queue behind it. Its bytes are the link's load; its queue is not the link's delay,
/// or a sender that keeps its own ring full would read its link as congested, move its
/// route, take its queue along and read the old link as free again.
pub(super) fn private(kind: RingKind) -> bool {
    kind != RingKind::Channel
}

/// A ring file of a direction.
#[derive(Debug)]
pub(super) struct RingFile {
    path: PathBuf,
    /// Opened when first read (`None` inside: not a ring), while fewer than [`KEPT_OPEN`]
    /// are, and read at each sample: one read of its header, not an open, a read, a stat and
    /// a close. A ring made anew under the name changes the channels epoch, and the
    /// directory is listed (and the files opened) again.
    file: std::cell::OnceCell<Option<std::fs::File>>,
    /// Its name, spread over 64 bits.
    id: u64,
    kind: RingKind,
    /// The registration (index, generation) an endpoint's ring, or its reply ring, was made
    /// for: read only while it is the one registered.
    made_for: Option<(u32, u64)>,
}

impl RingFile {
    /// Its traffic now (`None`: not readable as a ring), through the file kept open, or
    /// opened now and kept while `open` allows, else opened for this read alone.
    fn read(&self, open: &std::cell::Cell<usize>, (src, dst): (u32, u32)) -> Option<RingTraffic> {
        let file = match self.file.get() {
            Some(file) => file,
            None if open.get() > 0 => {
                let file = self.file.get_or_init(|| open_ring(&self.path));
                // A file that is not a ring (or not one yet) holds no descriptor.
                if file.is_some() {
                    open.set(open.get() - 1);
                }
                file
            }
            None => return read_ring(&self.path, self.kind, src, dst),
        };
        read_open_ring(file.as_ref()?, String::new(), self.kind, src, dst)
    }

    /// The direction and file of a ring file named `name`.
    pub(super) fn of(name: &str, path: PathBuf) -> Option<((u32, u32), RingFile)> {
        use crate::transport::channel::{parse_endpoint_name, parse_reply_name};
        let (kind, s, d) = ends_of(name)?;
        let made_for = match kind {
            RingKind::Endpoint => parse_endpoint_name(name).map(|(_, g)| (d, g)),
            RingKind::Reply => parse_reply_name(name).map(|(_, g)| (d, g)),
            _ => None,
        };
        // A reply ring carries answers back, from the endpoint's destination.
        let pair = if kind == RingKind::Reply {
            (d, s)
        } else {
            (s, d)
        };
        Some((
            pair,
            RingFile {
                path,
                file: Default::default(),
                id: name_hash(name),
                kind,
                made_for,
            },
        ))
    }
}

/// A ring file's name spread over 64 bits (summed over a direction's rings, it names the
/// set).
fn name_hash(name: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(name)
}

/// What this process's engine counts of the links its nodes send on without a ring file:
/// rings between its own nodes (in its memory) and connections to other hosts (bytes queued
/// to the socket as the queue), each with its probes. The engine is told on each sample
/// that this process learns, so it times its connections, also those opened later.
pub(super) fn own_links(inner: &Inner, now: Instant) -> HashMap<(String, String), Reading> {
    let mut engine = lock(&inner.engine);
    engine.set_connection_probes(true);
    engine
        .own_links()
        .into_iter()
        .map(|l| {
            let p = l.probes;
            let reading = Reading {
                at: now,
                probed: p.is_some(),
                pending: p.is_some_and(|p| p.pending),
                source: p.map_or(0, |p| p.source),
                bytes: l.link.bytes,
                probes: p.map_or(0, |p| p.answered),
                delay_sum_ns: p.map_or(0, |p| p.delay_sum_ns),
                // The endpoints' rings in memory are private (see `private`).
                queued_bytes: l
                    .link
                    .queued_slots
                    .saturating_sub(l.private_queued_slots)
                    .saturating_mul(SLOT_BYTES),
            };
            ((l.link.src, l.link.dst), reading)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: Instant, bytes: u64, probes: u64) -> Reading {
        Reading {
            at,
            probed: true,
            pending: false,
            source: 7,
            bytes,
            probes,
            delay_sum_ns: probes.wrapping_mul(1_000),
            queued_bytes: 0,
        }
    }

    #[test]
    fn counts_no_link_could_carry_are_not_samples() {
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(50);
        let before = reading(t0, 1 << 20, 10);
        // 1 GB in 50 ms (20 GB/s), 40 probes: a busy link in memory.
        let s = reading(t1, (1 << 20) + 1_000_000_000, 50)
            .load_since(&before, 1.0)
            .expect("a plausible sample");
        assert!((s.utilisation - 160.0).abs() < 1.0, "{s:?}");
        assert_eq!(s.delay_ns, Some(1_000.0));
        // A forged jump of the byte count, or of the probes, is no sample.
        assert!(reading(t1, 1 << 62, 50).load_since(&before, 1.0).is_none());
        assert!(reading(t1, 1 << 21, 1 << 40)
            .load_since(&before, 1.0)
            .is_none());
        // Nor are counts that went backwards, or of another set of rings.
        assert!(reading(t1, 1, 50).load_since(&before, 1.0).is_none());
        let mut other = reading(t1, 1 << 21, 50);
        other.source = 8;
        assert!(other.load_since(&before, 1.0).is_none());
    }
}
