//! One look at a running fabric from outside it, for `nodes`, `monitor`, `metrics` and
//! `diagnose`: its nodes (`nodes.rs`), the traffic of every link between them
//! (`transport::stats::link_totals`), and the counters each process publishes; two looks
//! give rates.
//!
//! A host sees its own shared memory. When the fabric spans hosts, a [`Looker`] also asks
//! one served node of every other host for that host's look (`ops::LOOK_KEY`) through a
//! client node, and merges them: nodes of a host come from that host, and a link between
//! hosts from the process that sends on it.

use super::attach::{registry, Client, FabricArgs, CLIENT_PREFIX};
use super::nodes::{census, NodeStatus};
use hyperfabric::config::FabricConfig;
use hyperfabric::fabric::SendOptions;
use hyperfabric::transport::stats::{link_totals, read_metrics, LinkTotal, ProcessMetrics};
use hyperfabric::Error;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How long a host has to answer for its look.
const LOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a looker connects again to a host it does not reach.
const REDIAL: Duration = Duration::from_secs(5);

/// Traffic between two nodes, over all their rings in that direction, with its rates.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Link {
    #[serde(flatten)]
    pub total: LinkTotal,
    pub messages_per_s: f64,
    pub bytes_per_s: f64,
}

/// A node with its traffic and its process's counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Another host of the fabric, as a look saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostView {
    pub name: String,
    /// Whether it answered with its look.
    pub reached: bool,
    /// Why not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub fabric: String,
    /// The configuration's host that took the look, when the fabric spans hosts.
    #[serde(default)]
    pub host: Option<String>,
    /// The other hosts, when the fabric spans hosts.
    #[serde(default)]
    pub hosts: Vec<HostView>,
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

/// One look at the fabric of `args` (at other hosts too when it spans hosts).
pub fn look(args: &FabricArgs) -> Result<Snapshot, Error> {
    Looker::new(args)?.look()
}

/// Looks at a fabric again and again, with one client node for all the looks.
pub struct Looker {
    cfg: FabricConfig,
    fabric: String,
    /// Attached when the fabric spans hosts; why not when it could not be.
    client: Result<Client, String>,
    /// When it last connected to each other host.
    dialled: Instant,
}

impl Looker {
    /// Fails when the fabric does not run on this host.
    pub fn new(args: &FabricArgs) -> Result<Looker, Error> {
        let (cfg, fabric) = args.load()?;
        registry(&fabric)?;
        let client = if cfg.hosts.len() > 1 {
            Client::attach_to(args, None, false).map_err(|e| e.to_string())
        } else {
            Err(String::new())
        };
        Ok(Looker {
            cfg,
            fabric,
            client,
            dialled: Instant::now(),
        })
    }

    /// The client node, when one is attached.
    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref().ok()
    }

    /// One look: this host's, and every other host's that answers.
    pub fn look(&mut self) -> Result<Snapshot, Error> {
        let mut s = look_here(&self.cfg, &self.fabric)?;
        if self.cfg.hosts.len() > 1 {
            self.look_around(&mut s);
            let links = std::mem::take(&mut s.links);
            fill_traffic(&mut s.nodes, &links);
            s.links = links;
        }
        Ok(s)
    }

    /// Merges the looks of the other hosts into `s`; the nodes of a host that does not
    /// answer are `unreachable`.
    fn look_around(&mut self, s: &mut Snapshot) {
        self.redial();
        let me = self.client().and_then(|c| c.host.clone());
        s.host = me.clone();
        for p in &mut s.processes {
            p.host = me.clone();
        }
        for h in self
            .cfg
            .hosts
            .iter()
            .filter(|h| Some(&h.name) != me.as_ref())
        {
            let got = match &self.client {
                Ok(c) => ask_host(c, &self.cfg, &h.name),
                Err(why) => Err(format!("no client node attached: {why}")),
            };
            match got {
                Ok(theirs) => {
                    merge(s, &self.cfg, theirs, &h.name);
                    s.hosts.push(HostView {
                        name: h.name.clone(),
                        reached: true,
                        error: None,
                    });
                }
                Err(why) => {
                    for n in s.nodes.iter_mut() {
                        if n.status.host.as_deref() == Some(h.name.as_str()) {
                            n.status.state = "unreachable".into();
                        }
                    }
                    s.hosts.push(HostView {
                        name: h.name.clone(),
                        reached: false,
                        error: Some(why),
                    });
                }
            }
        }
    }
}

impl Looker {
    /// Connects again, every [`REDIAL`] at most, to the hosts not reached, and to those
    /// none of whose nodes is up (their process may have restarted since).
    fn redial(&mut self) {
        if self.dialled.elapsed() < REDIAL {
            return;
        }
        let Ok(c) = &mut self.client else { return };
        self.dialled = Instant::now();
        let again: Vec<&hyperfabric::config::HostConfig> = self
            .cfg
            .hosts
            .iter()
            .filter(|h| Some(&h.name) != c.host.as_ref())
            .filter(|h| {
                let unreached = c.unreached.iter().any(|(n, _)| n == &h.name);
                let none_up = !self
                    .cfg
                    .nodes_of(&h.name)
                    .iter()
                    .any(|n| c.is_up(&n.node_id));
                unreached || none_up
            })
            .collect();
        c.unreached
            .retain(|(n, _)| !again.iter().any(|h| &h.name == n));
        let failed = super::attach::connect_all(&c.p, &again);
        c.unreached.extend(failed);
    }
}

/// The look of host `host`, asked of one of its nodes that is up.
fn ask_host(c: &Client, cfg: &FabricConfig, host: &str) -> Result<Snapshot, String> {
    if let Some((_, why)) = c.unreached.iter().find(|(h, _)| h == host) {
        return Err(why.clone());
    }
    let node = cfg
        .nodes_of(host)
        .into_iter()
        .map(|n| n.node_id.clone())
        .find(|id| c.is_up(id))
        .ok_or_else(|| format!("no node of host {host:?} is up"))?;
    let answer =
        c.p.send_data(
            &c.node,
            &node,
            &[],
            &SendOptions {
                metadata: Some(super::ops::look_metadata()),
                timeout: LOOK_TIMEOUT,
                ..Default::default()
            },
        )
        .map_err(|e| format!("{node}: {e}"))?;
    serde_json::from_slice(&answer)
        .map_err(|e| format!("{node} did not answer with its host's look: {e}"))
}

/// Takes into `s` what host `host` says of itself in its look `theirs`: the configured
/// nodes of that host, the nodes registered there at run time that `s` does not know, the
/// links those nodes send on, and its processes. Anything else it says is not its to say.
fn merge(s: &mut Snapshot, cfg: &FabricConfig, theirs: Snapshot, host: &str) {
    let host_of = |id: &str| {
        cfg.nodes
            .iter()
            .find(|n| n.node_id == id)
            .map(|n| n.host.as_deref())
    };
    let mut senders: Vec<String> = Vec::new();
    for mut n in theirs.nodes {
        let id = n.status.node_id.clone();
        let ours = match host_of(&id) {
            Some(h) => h == Some(host),
            None => {
                n.status.configured = false;
                n.status.state == "up"
                    && !id.starts_with(CLIENT_PREFIX)
                    && !s.nodes.iter().any(|m| m.status.node_id == id)
            }
        };
        if !ours {
            continue;
        }
        n.status.host = Some(host.to_string());
        senders.push(id.clone());
        match s.nodes.iter_mut().find(|m| m.status.node_id == id) {
            Some(m) => *m = n,
            None => s.nodes.push(n),
        }
    }
    for l in theirs.links {
        let t = &l.total;
        let known = s
            .links
            .iter()
            .any(|m| m.total.src == t.src && m.total.dst == t.dst);
        // Its nodes' links, and those of the tools' clients into its nodes (rings of its host).
        let theirs_to_say = senders.contains(&t.src)
            || (t.src.starts_with(CLIENT_PREFIX) && senders.contains(&t.dst));
        if !known && theirs_to_say {
            s.links.push(l);
        }
    }
    s.links
        .sort_by(|a, b| (&a.total.src, &a.total.dst).cmp(&(&b.total.src, &b.total.dst)));
    s.processes
        .extend(theirs.processes.into_iter().map(|p| ProcessMetrics {
            host: Some(host.to_string()),
            ..p
        }));
    s.unreadable_rings.extend(
        theirs
            .unreadable_rings
            .into_iter()
            .map(|r| format!("{host}: {r}")),
    );
}

/// Each node's traffic: the sums of the links from and to it.
fn fill_traffic(nodes: &mut [NodeView], links: &[Link]) {
    for n in nodes {
        let id = &n.status.node_id;
        let out = links.iter().map(|l| &l.total).filter(|l| &l.src == id);
        let into = links.iter().map(|l| &l.total).filter(|l| &l.dst == id);
        n.sent_messages = out.clone().map(|l| l.messages).sum();
        n.sent_bytes = out.map(|l| l.bytes).sum();
        n.received_messages = into.clone().map(|l| l.messages).sum();
        n.received_bytes = into.clone().map(|l| l.bytes).sum();
        n.queued_slots = into.map(|l| l.queued_slots).sum();
    }
}

/// This host's look at the fabric `fabric` of `cfg`.
pub fn look_here(cfg: &FabricConfig, fabric: &str) -> Result<Snapshot, Error> {
    let reg = registry(fabric)?;
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
    let mut nodes: Vec<NodeView> = census(cfg, &reg)?
        .into_iter()
        .map(|status| {
            let p = status
                .pid
                .and_then(|pid| processes.iter().find(|p| p.pid == pid));
            NodeView {
                sent_messages: 0,
                sent_bytes: 0,
                received_messages: 0,
                received_bytes: 0,
                queued_slots: 0,
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
    fill_traffic(&mut nodes, &links);
    Ok(Snapshot {
        fabric: fabric.to_string(),
        host: None,
        hosts: Vec::new(),
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
