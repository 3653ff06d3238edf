//! How the operators' commands reach a running fabric: by its name (`--fabric`, else the
//! configuration's), in this host's shared-memory directory. Commands that only read
//! (`nodes`) open its registry; those that send (`ping`, `transfer`) register a short-lived
//! client node, `_cli-<pid>`, linked to one node of the host (so it is a leaf: no route of
//! the fabric passes through it), and unregister it when they end, on SIGINT and SIGTERM
//! too. A client killed outright is reclaimed by the next process that looks, as any dead
//! process's nodes are.
//!
//! In a fabric that spans hosts (a configuration with `hosts`), the client also connects to
//! the process of every other host (it listens for none): what it learns of their nodes lets
//! it route to them through the node it is linked to, and lets it ask them for their
//! host's view of the fabric (`snapshot.rs`). A host that cannot be reached is named in
//! [`Client::unreached`], and the command goes on with the others.

use hyperfabric::config::FabricConfig;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, TcpConfig, LINKS_KEY};
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::transport::registry::{NodeEntry, Registry};
use hyperfabric::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Prefix of the client nodes of the command-line tools (left out of `nodes`).
pub const CLIENT_PREFIX: &str = "_cli-";

/// Which fabric a command attaches to.
#[derive(clap::Args, Clone, Debug)]
pub struct FabricArgs {
    /// Fabric configuration (YAML): the fabric's name, links, key file. The built-in
    /// example AI cluster when absent.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// Name of the running fabric; the configuration's when absent.
    #[arg(long, global = true)]
    pub fabric: Option<String>,
}

impl FabricArgs {
    /// The configuration and the fabric's name.
    pub fn load(&self) -> Result<(FabricConfig, String), Error> {
        let cfg = super::load(&super::Source {
            config: self.config.clone(),
            json: false,
        })?;
        let name = self
            .fabric
            .clone()
            .unwrap_or_else(|| cfg.fabric.name.clone());
        hyperfabric::sys::fs::validate_fabric_name(&name).map_err(Error::InvalidArgument)?;
        Ok((cfg, name))
    }
}

/// The registry of a fabric that runs on this host; `NodeNotFoundError` naming the
/// directory looked in when none does (nothing is created).
pub fn registry(fabric: &str) -> Result<Registry, Error> {
    hyperfabric::transport::stats::open_running(fabric).map_err(|e| match e {
        Error::NodeNotFound(why) => {
            Error::NodeNotFound(format!("{why}; start it with `hyperfabric serve`"))
        }
        e => e,
    })
}

/// Set when SIGINT or SIGTERM arrives: loops of the commands end and clean up.
pub fn stop_flag() -> Result<Arc<AtomicBool>, Error> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone())
            .map_err(|e| Error::io("installing a signal handler", e))?;
    }
    Ok(flag)
}

/// A protocol of the configuration's fabric under the name `fabric` (hosting nothing yet).
pub fn protocol(cfg: &FabricConfig, fabric: &str) -> Result<HyperFabricProtocol, Error> {
    HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.to_string()),
        ..ProtocolConfig::from_config(cfg)?
    })
}

/// A client node attached to a running fabric.
pub struct Client {
    /// Its protocol.
    pub p: HyperFabricProtocol,
    /// Its node's id.
    pub node: String,
    /// The node it is linked to.
    pub via: String,
    /// SIGINT or SIGTERM seen.
    pub stop: Arc<AtomicBool>,
    fabric: String,
    /// The host's registry of the fabric.
    registry: Registry,
    /// The configuration's host this client runs on (that of the node it is linked to),
    /// when the fabric spans hosts.
    pub host: Option<String>,
    /// Other hosts of the configuration it could not connect to, with why.
    pub unreached: Vec<(String, String)>,
}

impl Client {
    /// Attaches to the fabric of `args`, linked to `via` or else to the first node of the
    /// configuration (then of the registry) that runs on this host.
    pub fn attach(args: &FabricArgs, via: Option<&str>) -> Result<Client, Error> {
        Client::attach_to(args, via, true)
    }

    /// As [`Client::attach`]; a `via` that does not run on this host is passed over when
    /// not `strict`.
    pub fn attach_to(args: &FabricArgs, via: Option<&str>, strict: bool) -> Result<Client, Error> {
        let stop = stop_flag()?;
        let (cfg, fabric) = args.load()?;
        let reg = registry(&fabric)?;
        let live: Vec<NodeEntry> = reg
            .list()?
            .into_iter()
            .filter(|e| !e.signature.node_id.starts_with(CLIENT_PREFIX))
            .collect();
        let is_live = |id: &str| live.iter().any(|e| e.signature.node_id == id);
        let via = match via {
            Some(v) if is_live(v) => v.to_string(),
            Some(v) if strict => {
                return Err(Error::NodeNotFound(format!(
                    "node {v:?} is not running on this host in fabric {fabric:?}"
                )))
            }
            _ => cfg
                .nodes
                .iter()
                .map(|n| n.node_id.as_str())
                .find(|id| is_live(id))
                .or_else(|| live.first().map(|e| e.signature.node_id.as_str()))
                .ok_or_else(|| {
                    Error::NodeNotFound(format!(
                        "fabric {fabric:?} has no node running on this host"
                    ))
                })?
                .to_string(),
        };
        let host = this_host(&cfg, &via, &live);
        let mut config = ProtocolConfig {
            fabric_name: Some(fabric.clone()),
            ..ProtocolConfig::from_config(&cfg)?
        };
        if host.is_some() {
            // Connects out only: no other process needs to reach it first.
            config.tcp = Some(TcpConfig {
                insecure: cfg.fabric.insecure,
                ..Default::default()
            });
        }
        let p = HyperFabricProtocol::with_config(config)?;
        let node = format!("{CLIENT_PREFIX}{}", std::process::id());
        let mut sig = NodeSignature::new(&node, HardwareType::CpuServer, 100.0, 0)?;
        let mut meta = serde_json::Map::new();
        meta.insert(LINKS_KEY.into(), serde_json::json!([via]));
        sig.metadata = Some(meta);
        p.register_node(sig)?;
        let others: Vec<&hyperfabric::config::HostConfig> = cfg
            .hosts
            .iter()
            .filter(|h| Some(&h.name) != host.as_ref())
            .collect();
        let unreached = connect_all(&p, &others);
        Ok(Client {
            p,
            node,
            via,
            stop,
            fabric,
            registry: reg,
            host,
            unreached,
        })
    }

    /// Whether SIGINT or SIGTERM came.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether `node` is registered on this host by a live process (true when the registry
    /// cannot be read: the caller's timeout decides then), or announced up by a connected
    /// host.
    pub fn is_up(&self, node: &str) -> bool {
        self.registry.lookup(node).map_or(true, |e| e.is_some())
            || matches!(self.p.transport_to(node), Ok("tcp"))
    }
}

/// Connects `p` to the processes of `hosts`, all at once (a host that does not answer
/// costs the connection timeout once, not once per host); those it could not reach, with
/// why.
pub fn connect_all(
    p: &HyperFabricProtocol,
    hosts: &[&hyperfabric::config::HostConfig],
) -> Vec<(String, String)> {
    std::thread::scope(|s| {
        let dials: Vec<_> = hosts
            .iter()
            .map(|h| (h.name.clone(), s.spawn(move || p.connect_host(h.address))))
            .collect();
        dials
            .into_iter()
            .filter_map(|(name, d)| match d.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some((name, e.to_string())),
                Err(_) => Some((name, "the connection attempt panicked".into())),
            })
            .collect()
    })
}

/// The configuration's host of a client linked to `via` (`via`'s host, else that of the
/// first configured node running here), when the configuration has hosts.
fn this_host(cfg: &FabricConfig, via: &str, live: &[NodeEntry]) -> Option<String> {
    if cfg.hosts.is_empty() {
        return None;
    }
    let host_of = |id: &str| {
        cfg.nodes
            .iter()
            .find(|n| n.node_id == id)
            .and_then(|n| n.host.clone())
    };
    host_of(via).or_else(|| live.iter().find_map(|e| host_of(&e.signature.node_id)))
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.p.unregister_node(&self.node);
        // When every served node went while the client was attached, nothing is left.
        let _ = HyperFabricProtocol::remove_fabric(&self.fabric);
    }
}
