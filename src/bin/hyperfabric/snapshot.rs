//! One look at a running fabric from outside it, for `nodes`, `monitor`, `metrics` and
//! `diagnose`: its nodes (`nodes.rs`), the traffic of every link between them
//! (`transport::stats::link_totals`), and the counters each process publishes; two looks
//! give rates.

use super::attach::{registry, FabricArgs};
use super::nodes::{census, NodeStatus};
use hyperfabric::transport::stats::{link_totals, read_metrics, LinkTotal, ProcessMetrics};
use hyperfabric::Error;
use serde::Serialize;
use std::time::Instant;

/// Traffic between two nodes, over all their rings in that direction, with its rates.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Link {
    #[serde(flatten)]
    pub total: LinkTotal,
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
    let (cfg, fabric) = args.load()?;
    let reg = registry(&fabric)?;
    let taken = Instant::now();
    let processes = read_metrics(reg.dir());
    let (totals, unreadable_rings) = link_totals(&reg, &processes)?;
    let links: Vec<Link> = totals
        .into_iter()
        .map(|total| Link {
            total,
            ..Link::default()
        })
        .collect();
    let nodes = census(&cfg, &reg)?
        .into_iter()
        .map(|status| {
            let out = links
                .iter()
                .map(|l| &l.total)
                .filter(|l| l.src == status.node_id);
            let into = links
                .iter()
                .map(|l| &l.total)
                .filter(|l| l.dst == status.node_id);
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
            let t = &l.total;
            let mut earlier = before.links.iter().map(|o| &o.total);
            if let Some(o) = earlier.find(|o| o.src == t.src && o.dst == t.dst) {
                l.messages_per_s = rate(t.messages, o.messages, secs);
                l.bytes_per_s = rate(t.bytes, o.bytes, secs);
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
