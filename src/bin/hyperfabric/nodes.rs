//! `hyperfabric nodes [list|status NODE]`: the nodes of a running fabric as this host sees
//! them: those of the configuration and those registered at run time, each with its
//! process, hardware type, state and since when (registration, or leaving: unregistered, or
//! the last heartbeat of a process that died), and the messages and bytes its rings carried.
//! Reads the host's shared memory; registers nothing.

use super::attach::{FabricArgs, CLIENT_PREFIX};
use hyperfabric::config::FabricConfig;
use hyperfabric::transport::registry::Registry;
use hyperfabric::Error;
use serde::{Deserialize, Serialize};

#[derive(clap::Args, Debug)]
pub struct NodesArgs {
    #[command(subcommand)]
    what: Option<NodesCmd>,
    #[command(flatten)]
    fabric: FabricArgs,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
enum NodesCmd {
    /// Every node (the default).
    List,
    /// One node, with its whole signature.
    Status {
        /// The node's id.
        node: String,
    },
}

/// A node's state as this host sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub node_id: String,
    /// `up`: registered by a live process (of its host); `down`: not registered (left, or
    /// its process died), or never was; for a node of another host of the configuration,
    /// `unreachable` when that host did not answer, `elsewhere` when it was not asked.
    #[serde(deserialize_with = "state_of")]
    pub state: String,
    /// The configuration's host of the node, if it names one.
    pub host: Option<String>,
    /// The hosting process (up only).
    pub pid: Option<u32>,
    pub hardware_type: String,
    /// Registration (up) or leaving (down), Unix time in seconds; none when never seen.
    pub since: Option<f64>,
    /// The same, as an RFC 3339 UTC time.
    pub since_utc: Option<String>,
    /// Whether the node is in the configuration (else registered at run time).
    pub configured: bool,
    /// Its signature (as registered when up, else as configured).
    pub signature: hyperfabric::model::NodeSignature,
}

/// A state read back (another host's look), as one of the names this tool uses.
fn state_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    Ok(["up", "down", "elsewhere", "unreachable"]
        .into_iter()
        .find(|n| *n == s)
        .unwrap_or("unknown")
        .to_string())
}

fn utc(unix_ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The nodes of the fabric of `reg` and `cfg`, configuration order first.
pub fn census(cfg: &FabricConfig, reg: &Registry) -> Result<Vec<NodeStatus>, Error> {
    let live = reg.list()?;
    let gone = reg.departed();
    let mut out = Vec::new();
    let status = |sig: &hyperfabric::model::NodeSignature, configured: bool| {
        let host = cfg
            .nodes
            .iter()
            .find(|n| n.node_id == sig.node_id)
            .and_then(|n| n.host.clone());
        let mut s = NodeStatus {
            node_id: sig.node_id.clone(),
            state: "down".into(),
            host: host.clone(),
            pid: None,
            hardware_type: sig.hardware_type.to_string(),
            since: None,
            since_utc: None,
            configured,
            signature: sig.clone(),
        };
        let since = if let Some(e) = live.iter().find(|e| e.signature.node_id == sig.node_id) {
            s.state = "up".into();
            s.pid = Some(e.owner_pid);
            s.signature = e.signature.clone();
            s.hardware_type = e.signature.hardware_type.to_string();
            e.since_unix_ns
        } else if let Some(d) = gone.iter().find(|d| d.node_id == sig.node_id) {
            d.since_unix_ns
        } else {
            if !cfg.hosts.is_empty() && host.is_some() {
                s.state = "elsewhere".into();
            }
            0
        };
        if since > 0 {
            s.since = Some(since as f64 / 1e9);
            s.since_utc = Some(utc(since));
        }
        s
    };
    for n in &cfg.nodes {
        out.push(status(n, true));
    }
    for e in &live {
        let id = &e.signature.node_id;
        if !id.starts_with(CLIENT_PREFIX) && !cfg.nodes.iter().any(|n| &n.node_id == id) {
            out.push(status(&e.signature, false));
        }
    }
    Ok(out)
}

pub fn run(args: NodesArgs) -> Result<(), Error> {
    // With each node, what its rings carried (the monitor's counters, without rates).
    let all = super::snapshot::look(&args.fabric)?.nodes;
    match args.what {
        Some(NodesCmd::Status { node }) => {
            let n = all
                .into_iter()
                .find(|n| n.status.node_id == node)
                .ok_or_else(|| {
                    Error::NodeNotFound(format!(
                        "no node {node:?} in the fabric or its configuration"
                    ))
                })?;
            if args.json {
                return super::print_json(&n);
            }
            let s = &n.status;
            println!("{}: {}", s.node_id, s.state);
            println!("  since          {}", s.since_utc.as_deref().unwrap_or("-"));
            println!(
                "  process        {}",
                s.pid.map_or("-".into(), |p| p.to_string())
            );
            println!("  host           {}", s.host.as_deref().unwrap_or("-"));
            println!("  hardware_type  {}", s.hardware_type);
            println!("  bandwidth_gbps {}", s.signature.bandwidth_gbps);
            println!("  latency_ns     {}", s.signature.latency_ns);
            println!(
                "  configured     {}",
                if s.configured { "yes" } else { "no" }
            );
            println!(
                "  sent           {} messages, {} bytes",
                n.sent_messages, n.sent_bytes
            );
            println!(
                "  received       {} messages, {} bytes",
                n.received_messages, n.received_bytes
            );
            println!("  queued slots   {}", n.queued_slots);
            Ok(())
        }
        Some(NodesCmd::List) | None => {
            if args.json {
                return super::print_json(&all);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|n| {
                    let s = &n.status;
                    vec![
                        s.node_id.clone(),
                        s.state.clone(),
                        s.since_utc.clone().unwrap_or_else(|| "-".into()),
                        s.pid.map_or("-".into(), |p| p.to_string()),
                        s.host.clone().unwrap_or_else(|| "-".into()),
                        s.hardware_type.clone(),
                        n.sent_messages.to_string(),
                        n.received_messages.to_string(),
                    ]
                })
                .collect();
            super::table(
                &[
                    "node_id",
                    "state",
                    "since",
                    "process",
                    "host",
                    "hardware_type",
                    "sent",
                    "received",
                ],
                &rows,
            );
            Ok(())
        }
    }
}
