//! `hyperfabric demo --hosts N`: the demo across N hosts made of network namespaces on this
//! machine. This process is the first host (its namespace joins the hosts' bridge); the
//! others run a demo worker each, inside their namespace, with a fabric directory of their
//! own, so nothing but TCP joins them. The nodes' host groups are spread over the hosts, a
//! configuration with a `hosts:` section and a fresh key is written for them, and the demo
//! then runs as on one host: every ping, transfer and priority crosses the io_uring TCP
//! transport. The namespaces, files and processes are removed at the end.

use super::demo::{groups, host_nodes, show, Worker};
use super::{load, Source};
use hyperfabric::config::{FabricConfig, HostConfig};
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig};
use hyperfabric::testbed::Testbed;
use hyperfabric::Error;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The port every host listens on (each has an address of its own).
const PORT: u16 = 7400;

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The configuration for `n` hosts: the node groups dealt out in turn, host `h0` at
/// `own`, the others at the testbed's addresses; the key in `dir`.
fn spread(cfg: &FabricConfig, bed: &Testbed, own: &str, dir: &Path) -> Result<FabricConfig, Error> {
    let mut out = cfg.clone();
    out.fabric.name = format!(
        "{}-hosts-{}",
        cfg.fabric.name.chars().take(40).collect::<String>(),
        std::process::id()
    );
    let key = dir.join("fabric.key");
    std::fs::write(&key, super::random_key_hex()?).map_err(|e| Error::io("writing the key", e))?;
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| Error::io("protecting the key", e))?;
    out.fabric.key_file = Some(key);
    let n = bed.len() + 1;
    let addr = |a: &str| -> Result<std::net::SocketAddr, Error> {
        format!("{a}:{PORT}")
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("address {a}")))
    };
    out.hosts = (0..n)
        .map(|i| {
            Ok(HostConfig {
                name: format!("h{i}"),
                address: addr(if i == 0 { own } else { bed.address(i - 1) })?,
            })
        })
        .collect::<Result<_, Error>>()?;
    for (g, ids) in groups(cfg).iter().enumerate() {
        for n_ in out.nodes.iter_mut().filter(|x| ids.contains(&x.node_id)) {
            n_.host = Some(format!("h{}", g % n));
        }
    }
    Ok(out)
}

/// Waits until every node of `cfg` is known to `p` through the connection of its host.
fn wait_for_fabric(
    p: &HyperFabricProtocol,
    cfg: &FabricConfig,
    within: Duration,
) -> Result<(), Error> {
    let until = Instant::now() + within;
    loop {
        if cfg.nodes.iter().all(|n| p.transport_to(&n.node_id).is_ok()) {
            return Ok(());
        }
        if Instant::now() > until {
            let missing: Vec<&str> = cfg
                .nodes
                .iter()
                .filter(|n| p.transport_to(&n.node_id).is_err())
                .map(|n| n.node_id.as_str())
                .collect();
            return Err(Error::Timeout(format!(
                "nodes not reached within {within:?}: {} ({})",
                missing.join(", "),
                p.host_close_reasons().join("; ")
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn run(config: Option<PathBuf>, hosts: usize) -> Result<(), Error> {
    let cfg = load(&Source {
        config,
        json: false,
    })?;
    let n = hosts.min(groups(&cfg).len());
    if hosts < 2 || n < 2 {
        return Err(Error::InvalidArgument(format!(
            "--hosts takes at least 2, and the configuration has {} host groups",
            groups(&cfg).len()
        )));
    }
    let bed = Testbed::new(n - 1, true).map_err(|e| {
        Error::InvalidArgument(format!(
            "demo --hosts makes each host a network namespace, which needs root or \
             CAP_NET_ADMIN and iproute2 here: {e}"
        ))
    })?;
    let dir = Scratch(std::env::temp_dir().join(format!("hf-demo-hosts-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| Error::io("making a scratch directory", e))?;
    let own = bed.own_address().expect("joined").to_string();
    let spread = spread(&cfg, &bed, &own, &dir.0)?;
    let file = dir.0.join("fabric.yaml");
    hyperfabric::config::save_fabric_config(&spread, &file)?;
    println!(
        "{n} hosts: this process at {own}, {} network namespaces joined by veth pairs",
        n - 1
    );
    for h in &spread.hosts {
        let nodes: Vec<&str> = spread
            .nodes_of(&h.name)
            .iter()
            .map(|x| x.node_id.as_str())
            .collect();
        println!("  {} {} hosts {}", h.name, h.address, nodes.join(", "));
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("locating the binary", e))?;
    let mut workers = Vec::new();
    for i in 1..n {
        let host = format!("h{i}");
        let shm = dir.0.join(format!("shm-{host}"));
        std::fs::create_dir_all(&shm).map_err(|e| Error::io("making a fabric directory", e))?;
        let mut child = bed
            .command(i - 1, &exe)
            .args([
                "demo-worker",
                "--fabric",
                &spread.fabric.name,
                "--nodes",
                "-",
            ])
            .arg("--config")
            .arg(&file)
            .args(["--host", &host])
            .env("HF_SHM_DIR", &shm)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("starting a demo host", e))?;
        let out = child.stdout.take().expect("piped");
        let nodes = spread
            .nodes_of(&host)
            .iter()
            .map(|x| x.node_id.clone())
            .collect();
        let w = Worker { child, nodes };
        if !BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.trim() == "ready")
        {
            return Err(Error::InvalidArgument(format!("host {host} did not start")));
        }
        workers.push(w);
    }
    let p = Arc::new(HyperFabricProtocol::with_config(ProtocolConfig::for_host(
        &spread, "h0",
    )?)?);
    let mine: Vec<String> = spread
        .nodes_of("h0")
        .iter()
        .map(|x| x.node_id.clone())
        .collect();
    host_nodes(&p, &spread, &mine)?;
    p.start_background_services()?;
    wait_for_fabric(&p, &spread, Duration::from_secs(20))?;
    // The other hosts learn each other's nodes over their own connections: a probe to
    // every node answers once its route is known everywhere on the way.
    let until = Instant::now() + Duration::from_secs(20);
    for n in spread.nodes.iter().filter(|n| !mine.contains(&n.node_id)) {
        while !p
            .ping(&mine[0], &n.node_id, 8, 500)
            .is_ok_and(|r| r.success)
        {
            if Instant::now() > until {
                return Err(Error::Timeout(format!("{} does not answer", n.node_id)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    println!();
    let r = show(&spread, &spread.fabric.name, &p, &mine, &workers);
    drop(workers);
    drop(p);
    let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&spread.fabric.name));
    r
}
