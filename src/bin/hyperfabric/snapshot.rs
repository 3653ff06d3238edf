//! One look at a running fabric from outside it, for `monitor` and `metrics`: its nodes
//! (`nodes.rs`), the traffic of every ring between them (read from the ring headers), and the
//! counters each process publishes; two looks give rates.

use super::attach::{registry, FabricArgs};
use super::nodes::{census, NodeStatus};
use hyperfabric::transport::stats::{read_metrics, ring_traffic, ProcessMetrics, RingKind};
use hyperfabric::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// Traffic between two nodes, over all their rings in that direction.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Link {
    pub src: String,
    pub dst: String,
    pub messages: u64,
    pub bytes: u64,
    /// Slots waiting for the receiver.
    pub queued_slots: u64,
    /// Slots of the rings.
    pub capacity: u64,
    pub rings: usize,
    /// Rings the receiver found corrupt.
    pub corrupt: usize,
    pub messages_per_s: f64,
    pub bytes_per_s: f64,
}

/// A node with its traffic and its process's counters.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub status: NodeStatus,
    pub sent_messages: u64,
    pub sent_bytes: u64,
    pub received_messages: u64,
    pub received_bytes: u64,
    /// Slots waiting in the rings toward it.
    pub queued_slots: u64,
    pub sent_messages_per_s: f64,
    pub sent_bytes_per_s: f64,
    pub received_messages_per_s: f64,
    pub received_bytes_per_s: f64,
    /// Of its process: requests answered with an error, and corrupt rings.
    pub errors: Option<u64>,
    /// Of its process: messages given up (failed deliveries, abandoned reassemblies).
    pub drops: Option<u64>,
    /// Of its process: the epoch of its routing tables.
    pub route_epoch: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub fabric: String,
    pub time: f64,
    /// Seconds between the two looks the rates come from (0: one look, no rates).
    pub interval_s: f64,
    pub nodes: Vec<NodeView>,
    pub links: Vec<Link>,
    pub processes: Vec<ProcessMetrics>,
    /// Ring files that did not read as rings.
    pub unreadable_rings: Vec<String>,
    #[serde(skip)]
    taken: Option<Instant>,
}

fn metric(p: Option<&ProcessMetrics>, names: &[&str]) -> Option<u64> {
    let p = p?;
    Some(
        names
            .iter()
            .map(|n| p.metrics.get(*n).copied().unwrap_or(0.0) as u64)
            .sum(),
    )
}

/// One look at the fabric of `args`.
pub fn look(args: &FabricArgs) -> Result<Snapshot, Error> {
    let (_, fabric) = args.load()?;
    let reg = registry(&fabric)?;
    let taken = Instant::now();
    let names: BTreeMap<u32, String> = reg
        .list()?
        .into_iter()
        .map(|e| (e.index, e.signature.node_id))
        .collect();
    let (rings, unreadable_rings) = ring_traffic(reg.dir());
    let processes = read_metrics(reg.dir());
    let name = |i: u32| names.get(&i).cloned().unwrap_or_else(|| format!("#{i}"));
    let mut links: BTreeMap<(String, String), Link> = BTreeMap::new();
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
    // Links between nodes of one process, as the process publishes them.
    for p in &processes {
        for r in &p.links {
            let l = links.entry((r.src.clone(), r.dst.clone())).or_default();
            l.messages += r.messages;
            l.bytes += r.bytes;
            l.queued_slots += r.queued_slots;
            l.capacity += r.capacity;
            l.rings += 1;
        }
    }
    let links: Vec<Link> = links
        .into_iter()
        .map(|((src, dst), l)| Link { src, dst, ..l })
        .collect();
    let nodes = census(args)?
        .into_iter()
        .map(|status| {
            let out = links.iter().filter(|l| l.src == status.node_id);
            let into = links.iter().filter(|l| l.dst == status.node_id);
            let p = status
                .pid
                .and_then(|pid| processes.iter().find(|p| p.pid == pid));
            NodeView {
                sent_messages: out.clone().map(|l| l.messages).sum(),
                sent_bytes: out.map(|l| l.bytes).sum(),
                received_messages: into.clone().map(|l| l.messages).sum(),
                received_bytes: into.clone().map(|l| l.bytes).sum(),
                queued_slots: into.map(|l| l.queued_slots).sum(),
                sent_messages_per_s: 0.0,
                sent_bytes_per_s: 0.0,
                received_messages_per_s: 0.0,
                received_bytes_per_s: 0.0,
                errors: metric(p, &["errors", "corrupt_channels"]),
                drops: metric(p, &["delivery_failed", "abandoned_reassemblies"]),
                route_epoch: metric(p, &["route_epoch"]),
                status,
            }
        })
        .collect();
    Ok(Snapshot {
        fabric,
        time: hyperfabric::model::unix_now(),
        interval_s: 0.0,
        nodes,
        links,
        processes,
        unreadable_rings,
        taken: Some(taken),
    })
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    // A ring made anew counts from zero: no negative rates.
    now.saturating_sub(before) as f64 / secs
}

impl Snapshot {
    /// Fills the rates from an earlier look.
    pub fn rates_since(&mut self, before: &Snapshot) {
        let (Some(a), Some(b)) = (before.taken, self.taken) else {
            return;
        };
        let secs = b.duration_since(a).as_secs_f64().max(1e-6);
        self.interval_s = secs;
        for l in &mut self.links {
            if let Some(o) = before
                .links
                .iter()
                .find(|o| o.src == l.src && o.dst == l.dst)
            {
                l.messages_per_s = rate(l.messages, o.messages, secs);
                l.bytes_per_s = rate(l.bytes, o.bytes, secs);
            }
        }
        for n in &mut self.nodes {
            if let Some(o) = before
                .nodes
                .iter()
                .find(|o| o.status.node_id == n.status.node_id)
            {
                n.sent_messages_per_s = rate(n.sent_messages, o.sent_messages, secs);
                n.sent_bytes_per_s = rate(n.sent_bytes, o.sent_bytes, secs);
                n.received_messages_per_s = rate(n.received_messages, o.received_messages, secs);
                n.received_bytes_per_s = rate(n.received_bytes, o.received_bytes, secs);
            }
        }
    }
}
