//! `hyperfabric serve`: hosts nodes of a configuration until SIGINT or SIGTERM, then
//! unregisters them and leaves nothing behind. Its nodes answer requests with the length and
//! CRC-32 of what arrived, and carry out the operations the command-line tools ask of them
//! (`ops.rs`), so a fabric runs, and can be driven, without code of one's own.

use super::attach::{stop_flag, FabricArgs};
use super::ops::{self, Outcome, SendOp};
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::{Error, ErrorKind};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    fabric: FabricArgs,
    /// The nodes to host, comma-separated: all of the configuration's (all of `--host`'s)
    /// when absent.
    #[arg(long)]
    nodes: Option<String>,
    /// The host of the configuration's `hosts` section this process is: it hosts that
    /// host's nodes, listens at its address and connects to the hosts listed before it.
    #[arg(long)]
    host: Option<String>,
}

/// An operation taken by a node's handler: (the served node, who asked, what).
type Job = (String, String, SendOp);

/// Operations a serve process keeps waiting at most.
const OPS_QUEUE: usize = 16;

pub fn run(args: ServeArgs) -> Result<(), Error> {
    let stop = stop_flag()?;
    let (cfg, fabric) = args.fabric.load()?;
    let (config, mut ids): (ProtocolConfig, Vec<String>) = match &args.host {
        Some(h) => (
            ProtocolConfig {
                fabric_name: Some(fabric.clone()),
                ..ProtocolConfig::for_host(&cfg, h)?
            },
            cfg.nodes_of(h).iter().map(|n| n.node_id.clone()).collect(),
        ),
        None => (
            ProtocolConfig {
                fabric_name: Some(fabric.clone()),
                ..ProtocolConfig::from_config(&cfg)?
            },
            cfg.nodes.iter().map(|n| n.node_id.clone()).collect(),
        ),
    };
    if let Some(list) = &args.nodes {
        let asked: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(n) = asked.iter().find(|n| !ids.contains(n)) {
            return Err(Error::NodeNotFound(format!(
                "node {n:?} is not in the configuration{}",
                args.host
                    .as_ref()
                    .map(|h| format!(" on host {h:?}"))
                    .unwrap_or_default()
            )));
        }
        ids = asked;
    }
    if ids.is_empty() {
        return Err(Error::InvalidArgument("no node to host".into()));
    }
    let p = Arc::new(HyperFabricProtocol::with_config(config)?);
    // Bounded: operations beyond it are refused ("busy"), not queued without end.
    let (tx, rx) = mpsc::sync_channel::<Job>(OPS_QUEUE);
    let shared = Arc::new((cfg.clone(), fabric.clone(), args.host.clone()));
    for n in cfg.nodes.iter().filter(|n| ids.contains(&n.node_id)) {
        p.register_node(n.clone())?;
        let (tx, me, shared) = (tx.clone(), n.node_id.clone(), shared.clone());
        p.on_receive(&n.node_id, move |m| match ops::op_of(&m.metadata) {
            None if ops::is_look(&m.metadata) => {
                let (cfg, fabric, host) = &*shared;
                let mut s = super::snapshot::look_here(cfg, fabric)?;
                s.host = host.clone();
                serde_json::to_vec(&s)
                    .map_err(|e| Error::InvalidArgument(format!("cannot encode the look: {e}")))
            }
            None => Ok(ops::answer(&m.data)),
            Some(Ok(op)) => match tx.try_send((me.clone(), m.source.to_string(), op)) {
                Ok(()) => Ok(vec![0; 12]),
                Err(_) => Err(Error::InsufficientResources(format!(
                    "{me}: {OPS_QUEUE} operations wait already; try again"
                ))),
            },
            Some(Err(why)) => Err(Error::InvalidArgument(why)),
        })?;
    }
    drop(tx);
    create_zones(&p, &cfg, &ids)?;
    p.start_background_services()?;
    let agent = {
        let p = p.clone();
        std::thread::Builder::new()
            .name("hf-serve-ops".into())
            .spawn(move || agent(&p, rx))
            .map_err(|e| Error::io("starting the operations thread", e))?
    };
    println!(
        "serving fabric {fabric:?}: {} (process {}); stop with Ctrl-C",
        ids.join(", "),
        std::process::id()
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut failed = None;
    for id in &ids {
        if let Err(e) = p.unregister_node(id) {
            failed.get_or_insert(e);
        }
    }
    // The handlers, and with them the senders of jobs, went with their nodes.
    let _ = agent.join();
    drop(p);
    // The last process of the fabric on this host takes its directory away.
    let _ = HyperFabricProtocol::remove_fabric(&fabric);
    println!("stopped: {} nodes unregistered", ids.len());
    failed.map_or(Ok(()), Err)
}

/// Creates the configuration's zones (those another process created already are taken as
/// they are) and puts the hosted nodes that belong to them in.
fn create_zones(
    p: &HyperFabricProtocol,
    cfg: &hyperfabric::config::FabricConfig,
    ids: &[String],
) -> Result<(), Error> {
    for z in &cfg.zones {
        match p.create_zone(z.zone.clone()) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::DuplicateZone => {}
            Err(e) => return Err(e),
        }
        for m in z.members.iter().filter(|m| ids.contains(m)) {
            p.assign_to_zone(&z.zone.zone_id, m)?;
        }
    }
    Ok(())
}

/// Carries out the operations the nodes' handlers took, one at a time, and posts each
/// outcome to the node that asked. Ends when every handler is gone.
fn agent(p: &HyperFabricProtocol, jobs: mpsc::Receiver<Job>) {
    let mut buf = Vec::new();
    while let Ok((me, asker, op)) = jobs.recv() {
        // An operation that panics fails alone: the thread goes on with the next.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| send(p, &me, &op, &mut buf)))
                .unwrap_or_else(|_| Outcome {
                    tag: op.tag,
                    error: Some("the operation panicked".into()),
                    ..Default::default()
                });
        // A large chunk's buffer is not kept between operations.
        buf.clear();
        buf.shrink_to(64 << 20);
        let body = serde_json::to_vec(&outcome).expect("an outcome encodes");
        // A client that went away meanwhile is no one's loss.
        let _ = p.post(&me, &asker, &body, &SendOptions::default());
    }
}

fn send(p: &HyperFabricProtocol, me: &str, op: &SendOp, buf: &mut Vec<u8>) -> Outcome {
    let mut out = Outcome {
        tag: op.tag,
        bytes: op.size,
        ..Default::default()
    };
    let priority = match ops::priority(&op.priority) {
        Ok(p) => p,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let max = hyperfabric::engine::max_message();
    if op.size > max {
        out.error = Some(format!(
            "size {} exceeds the largest message ({max})",
            op.size
        ));
        return out;
    }
    ops::pattern_into(op.seed, op.size, buf);
    out.sent_crc = crc32fast::hash(buf);
    let opts = SendOptions {
        priority,
        compression_enabled: op.compress,
        encryption_enabled: op.encrypt,
        // One operation at a time: none may hold the others up for long.
        timeout: Duration::from_millis(op.timeout_ms.clamp(1, ops::MAX_TIMEOUT_MS)),
        ..Default::default()
    };
    let start = Instant::now();
    match p.send_data(me, &op.to, buf, &opts) {
        Ok(answer) => {
            out.ns = start.elapsed().as_nanos() as u64;
            out.ok = true;
            if let Some((len, crc)) = ops::read_answer(&answer) {
                out.received_len = Some(len);
                out.received_crc = Some(crc);
            }
        }
        Err(e) => out.error = Some(format!("{}: {e}", e.kind().name())),
    }
    out
}
