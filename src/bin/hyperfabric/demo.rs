//! `hyperfabric demo`: the example AI cluster running for real. Its nodes are hosted by
//! several processes (one per host of the configuration; the switches in one more), which
//! this command starts; then it pings along direct and switched routes, moves tensors with and
//! without compression and encryption, lets an urgent message overtake a bulk transfer, has a
//! latency constraint refused, and prints the topology and its bottlenecks.

use super::{load, print_metrics_and_bottlenecks, table, Source};
use hyperfabric::codec::FabricKey;
use hyperfabric::config::FabricConfig;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::PacketPriority;
use hyperfabric::Error;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY_ENV: &str = "HF_DEMO_KEY";

fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Nodes grouped by host (nodes without a host form one more group), in a stable order.
pub(super) fn groups(cfg: &FabricConfig) -> Vec<Vec<String>> {
    let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in &cfg.nodes {
        let host = n.host.clone().unwrap_or_else(|| "~fabric".into());
        g.entry(host).or_default().push(n.node_id.clone());
    }
    g.into_values().collect()
}

fn protocol(
    cfg: &FabricConfig,
    fabric: &str,
    key: FabricKey,
) -> Result<HyperFabricProtocol, Error> {
    HyperFabricProtocol::with_config(ProtocolConfig {
        options: cfg.fabric.protocol.clone(),
        fabric_name: Some(fabric.into()),
        key: Some(key),
        links: cfg.links.clone(),
        ..Default::default()
    })
}

pub(super) fn host_nodes(
    p: &HyperFabricProtocol,
    cfg: &FabricConfig,
    ids: &[String],
) -> Result<(), Error> {
    for n in cfg.nodes.iter().filter(|n| ids.contains(&n.node_id)) {
        p.register_node(n.clone())?;
        p.on_receive(&n.node_id, |m| Ok(checksum(&m.data).to_le_bytes().to_vec()))?;
    }
    Ok(())
}

/// A worker process: hosts `nodes` until its stdin closes. With `host`, the process of
/// that host of the configuration's `hosts` section (`demo --hosts`): it hosts that host's
/// nodes (and connects to the hosts listed before it, again and again until they are up).
pub fn worker(
    config: Option<PathBuf>,
    fabric: &str,
    nodes: &str,
    host: Option<String>,
) -> Result<(), Error> {
    let cfg = load(&Source {
        config,
        json: false,
    })?;
    let (p, ids): (HyperFabricProtocol, Vec<String>) = match &host {
        Some(h) => {
            let p = HyperFabricProtocol::with_config(ProtocolConfig::for_host(&cfg, h)?)?;
            let ids = cfg.nodes_of(h).iter().map(|n| n.node_id.clone()).collect();
            (p, ids)
        }
        None => {
            let key = FabricKey::from_hex(&std::env::var(KEY_ENV).unwrap_or_default())?;
            let ids = nodes.split(',').map(str::to_string).collect();
            (protocol(&cfg, fabric, key)?, ids)
        }
    };
    host_nodes(&p, &cfg, &ids)?;
    p.start_background_services()?;
    println!("ready");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}

pub(super) struct Worker {
    pub(super) child: Child,
    pub(super) nodes: Vec<String>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

pub fn run(config: Option<PathBuf>) -> Result<(), Error> {
    let cfg = load(&Source {
        config: config.clone(),
        json: false,
    })?;
    let fabric = format!(
        "{}-demo-{}",
        cfg.fabric.name.chars().take(40).collect::<String>(),
        std::process::id()
    );
    let key_hex = super::random_key_hex()?;
    let key = FabricKey::from_hex(&key_hex)?;
    let mut groups = groups(&cfg);
    if groups.len() < 2 {
        return Err(Error::InvalidArgument(
            "the demo needs nodes on at least two hosts".into(),
        ));
    }
    let mine = groups.remove(0);
    let result = (|| {
        let p = Arc::new(protocol(&cfg, &fabric, key)?);
        host_nodes(&p, &cfg, &mine)?;
        p.start_background_services()?;
        let exe = std::env::current_exe().map_err(|e| Error::io("locating the binary", e))?;
        let mut workers = Vec::new();
        for g in &groups {
            let mut cmd = Command::new(&exe);
            cmd.args(["demo-worker", "--fabric", &fabric, "--nodes", &g.join(",")]);
            if let Some(c) = &config {
                cmd.arg("--config").arg(c);
            }
            let mut child = cmd
                .env(KEY_ENV, &key_hex)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| Error::io("starting a demo worker", e))?;
            let out = child.stdout.take().expect("piped");
            let w = Worker {
                child,
                nodes: g.clone(),
            };
            if !BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .any(|l| l.trim() == "ready")
            {
                return Err(Error::InvalidArgument(format!(
                    "the worker for {} did not start",
                    g.join(",")
                )));
            }
            workers.push(w);
        }
        show(&cfg, &fabric, &p, &mine, &workers)
    })();
    let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&fabric));
    result
}

/// Says when the demo's processes outnumber the cores (each hop then waits for a core: the
/// figures above are the scheduler's as much as the library's), and measures beside them
/// what one hop costs with two processes pinned to two cores (`bench latency --api post`).
fn pinned_note(processes: usize) {
    let cores = hyperfabric::sys::available_cpus();
    if processes > cores {
        println!(
            "  note: {processes} processes share {cores} cores here. A probe's hop waits until \
             the engine of the process it enters gets a core (an idle engine sleeps, a busy one \
             takes turns), so these latencies are mostly the scheduler's."
        );
    }
    if cores < 2 {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let out = Command::new(exe)
        .args([
            "bench", "latency", "--api", "post", "--sizes", "64", "--iters", "3000",
        ])
        .args(["--cores", "0,1", "--json"])
        .stderr(Stdio::null())
        .output();
    let row = out
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
    match row {
        Some(r) => println!(
            "  pinned, for comparison: two processes on cores 0 and 1, 64-byte post/recv \
             ping-pong: {} ns one-way (median; cache-line floor {} ns, {} placement)",
            r["p50_ns"],
            r["floor_ns"],
            r["placement"].as_str().unwrap_or("?")
        ),
        None => println!(
            "  (the pinned comparison, `hyperfabric bench latency --api post`, did not run)"
        ),
    }
}

pub(super) fn show(
    cfg: &FabricConfig,
    fabric: &str,
    p: &Arc<HyperFabricProtocol>,
    mine: &[String],
    workers: &[Worker],
) -> Result<(), Error> {
    println!(
        "fabric {fabric:?}: {} nodes hosted by {} processes\n",
        cfg.nodes.len(),
        workers.len() + 1
    );
    let mut rows = vec![vec![
        std::process::id().to_string(),
        "demo".into(),
        mine.join(", "),
    ]];
    for w in workers {
        rows.push(vec![
            w.child.id().to_string(),
            "worker".into(),
            w.nodes.join(", "),
        ]);
    }
    table(&["pid", "process", "nodes"], &rows);

    let src = mine[0].as_str();
    println!("\nping from {src} (64-byte probes; latency = median round trip / 2)");
    let mut rows = Vec::new();
    for n in cfg.nodes.iter().filter(|n| n.node_id != src) {
        match p.ping(src, &n.node_id, 64, 2000) {
            Ok(r) => rows.push(vec![
                n.node_id.clone(),
                r.path.join(" -> "),
                (r.path.len().saturating_sub(1)).to_string(),
                r.latency_ns.to_string(),
                format!("{:.3}", r.bandwidth_gbps),
                format!("{:.0}%", r.packet_loss_rate * 100.0),
            ]),
            Err(e) => rows.push(vec![
                n.node_id.clone(),
                format!("{}: {e}", e.kind()),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
        }
    }
    table(
        &[
            "destination",
            "path",
            "hops",
            "latency_ns",
            "gbit_s",
            "loss",
        ],
        &rows,
    );
    pinned_note(workers.len() + 1);

    let sink = cfg
        .nodes
        .iter()
        .find(|n| {
            n.hardware_type == hyperfabric::HardwareType::StorageArray && !mine.contains(&n.node_id)
        })
        .or_else(|| cfg.nodes.iter().find(|n| !mine.contains(&n.node_id)))
        .map(|n| n.node_id.clone())
        .expect("the demo has remote nodes");
    let tensor: Vec<u8> = (0..8usize << 20)
        .map(|i| ((i / 4096) % 7) as u8 ^ (i % 13) as u8)
        .collect();
    println!("\ntransfers {src} -> {sink}: 8 MiB tensor, answered with its checksum");
    let mut rows = Vec::new();
    for (compress, encrypt) in [(false, false), (true, false), (false, true), (true, true)] {
        let opts = SendOptions {
            compression_enabled: compress,
            encryption_enabled: encrypt,
            ..Default::default()
        };
        let t0 = Instant::now();
        let reply = p.send_data(src, &sink, &tensor, &opts)?;
        let secs = t0.elapsed().as_secs_f64();
        let ok = reply == checksum(&tensor).to_le_bytes();
        rows.push(vec![
            if compress { "lz4" } else { "-" }.into(),
            if encrypt { "aes-256-gcm" } else { "-" }.into(),
            format!("{:.2}", secs * 1e3),
            format!("{:.2}", tensor.len() as f64 / secs / 1e9),
            if ok { "ok" } else { "MISMATCH" }.into(),
        ]);
        if !ok {
            return Err(Error::MalformedFrame(
                "a transfer came back with the wrong checksum".into(),
            ));
        }
    }
    table(
        &["compression", "encryption", "ms", "gbytes_s", "checksum"],
        &rows,
    );

    println!("\nan ULTRA_HIGH message sent while a 64 MiB BULK transfer runs on the same channel");
    let bulk = vec![0x42u8; 64 << 20];
    let sent_before = sent_bytes(p)?;
    let started = Instant::now();
    let (q, s2, from) = (p.clone(), sink.clone(), src.to_string());
    let bulk_thread = std::thread::spawn(move || -> Result<Duration, Error> {
        let opts = SendOptions {
            priority: PacketPriority::Bulk,
            timeout: Duration::from_secs(60),
            ..Default::default()
        };
        q.send_data(&from, &s2, &bulk, &opts)?;
        Ok(started.elapsed())
    });
    // The urgent message leaves once the bulk transfer is under way (a few MiB out).
    while sent_bytes(p)? < sent_before + 4.0 * 1048576.0 && !bulk_thread.is_finished() {
        std::thread::sleep(Duration::from_micros(50));
    }
    let urgent_opts = SendOptions {
        priority: PacketPriority::UltraHigh,
        ..Default::default()
    };
    p.send_data(src, &sink, b"stop the line", &urgent_opts)?;
    let urgent_done = started.elapsed();
    let bulk_done = bulk_thread
        .join()
        .map_err(|_| Error::InvalidArgument("bulk sender panicked".into()))??;
    table(
        &["message", "priority", "bytes", "answered_after_ms"],
        &[
            vec![
                "bulk".into(),
                "bulk".into(),
                (64usize << 20).to_string(),
                format!("{:.2}", bulk_done.as_secs_f64() * 1e3),
            ],
            vec![
                "urgent".into(),
                "ultra_high".into(),
                "13".into(),
                format!("{:.2}", urgent_done.as_secs_f64() * 1e3),
            ],
        ],
    );
    println!(
        "  the urgent message {} the bulk transfer",
        if urgent_done < bulk_done {
            "overtook"
        } else {
            "did NOT overtake"
        }
    );

    println!("\na send with a latency constraint its route cannot meet");
    let strict = SendOptions {
        latency_constraint_ns: Some(1),
        ..Default::default()
    };
    match p.send_data(src, &sink, b"x", &strict) {
        Err(e) => println!("  refused before sending: {}: {e}", e.kind()),
        Ok(_) => println!("  unexpectedly sent"),
    }

    let info = p.get_topology_info()?;
    println!(
        "\ntopology: {} nodes, {} links, {} quantum, {} neuromorphic",
        info.total_nodes, info.total_links, info.quantum_enabled_nodes, info.neuromorphic_nodes
    );
    print_metrics_and_bottlenecks(&info);
    Ok(())
}

/// Bytes this process's engine has sent so far.
fn sent_bytes(p: &HyperFabricProtocol) -> Result<f64, Error> {
    Ok(p.get_topology_info()?
        .performance_metrics
        .get("bytes_sent")
        .copied()
        .unwrap_or(0.0))
}
