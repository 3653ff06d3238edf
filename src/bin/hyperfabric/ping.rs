//! `hyperfabric ping NODE`: probes from a client node attached to the running fabric, one
//! line each as ping(8) prints them (the path the probe recorded hop by hop, its hops, its
//! round trip), then the loss and min/avg/max/mdev. Exits non-zero when no probe came back.

use super::attach::{Client, FabricArgs};
use hyperfabric::{Error, ErrorKind, RouteRequest};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct PingArgs {
    /// The node to probe.
    node: String,
    #[command(flatten)]
    fabric: FabricArgs,
    /// Probes to send (0: until Ctrl-C).
    #[arg(long, default_value_t = 5)]
    count: u64,
    /// Bytes of each probe.
    #[arg(long, short = 's', default_value_t = 64)]
    size: usize,
    /// Pause between probes, ms.
    #[arg(long, short = 'i', default_value_t = 1000)]
    interval: u64,
    /// Priority of the probes.
    #[arg(long, default_value = "high")]
    priority: String,
    /// How long to wait for each answer, ms.
    #[arg(long, short = 'W', default_value_t = 1000)]
    timeout: u64,
    /// The node of this host the client attaches to (the first running one of the
    /// configuration when absent).
    #[arg(long)]
    via: Option<String>,
    /// One JSON object at the end instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ProbeLine {
    seq: u64,
    /// Round trip in ns; none when lost.
    rtt_ns: Option<u64>,
    path: Vec<String>,
    hops: usize,
    error: Option<String>,
}

#[derive(Serialize, Default)]
struct Stats {
    min_ns: u64,
    avg_ns: f64,
    max_ns: u64,
    mdev_ns: f64,
}

#[derive(Serialize)]
struct Report {
    source: String,
    via: String,
    destination: String,
    size: usize,
    priority: String,
    /// The path of the client's routing table to the destination.
    route: Vec<String>,
    probes: Vec<ProbeLine>,
    transmitted: u64,
    received: u64,
    loss: f64,
    rtt: Option<Stats>,
}

fn us(ns: f64) -> String {
    format!("{:.1}", ns / 1000.0)
}

pub fn run(args: PingArgs) -> Result<(), Error> {
    let priority = super::ops::priority(&args.priority)?;
    if args.interval > 3_600_000 || args.timeout == 0 || args.timeout > 3_600_000 {
        return Err(Error::InvalidArgument(
            "--interval must be at most 3600000 ms, --timeout 1..=3600000 ms".into(),
        ));
    }
    if args.size > hyperfabric::engine::max_message() {
        return Err(Error::InvalidArgument(format!(
            "--size {} exceeds the largest message ({})",
            args.size,
            hyperfabric::engine::max_message()
        )));
    }
    let c = Client::attach(&args.fabric, args.via.as_deref())?;
    let route =
        c.p.topology()?
            .route(&RouteRequest::new(c.node.clone(), args.node.clone()))?
            .path;
    if !args.json {
        println!(
            "PING {} from {} via {}: {} bytes, priority {}",
            args.node, c.node, c.via, args.size, args.priority
        );
    }
    let mut probes = Vec::new();
    let started = Instant::now();
    let mut seq = 0;
    while (args.count == 0 || seq < args.count) && !c.stopped() {
        if seq > 0 {
            let until = Instant::now() + Duration::from_millis(args.interval);
            while Instant::now() < until && !c.stopped() {
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
            }
            if c.stopped() {
                break;
            }
        }
        seq += 1;
        let line = match c.p.probe(
            &c.node,
            &args.node,
            args.size,
            priority,
            Duration::from_millis(args.timeout),
        ) {
            Ok(p) => ProbeLine {
                seq,
                rtt_ns: Some(p.rtt_ns),
                hops: p.path.len().saturating_sub(1),
                path: p.path,
                error: None,
            },
            Err(e) if e.kind() == ErrorKind::Timeout => ProbeLine {
                seq,
                rtt_ns: None,
                path: Vec::new(),
                hops: 0,
                error: Some("no answer".into()),
            },
            Err(e) => return Err(e),
        };
        if !args.json {
            match line.rtt_ns {
                Some(rtt) => println!(
                    "{} bytes from {}: seq={} path={} hops={} time={} us",
                    args.size,
                    args.node,
                    line.seq,
                    line.path.join(">"),
                    line.hops,
                    us(rtt as f64)
                ),
                None => println!("no answer from {}: seq={}", args.node, line.seq),
            }
        }
        probes.push(line);
    }
    let rtts: Vec<f64> = probes
        .iter()
        .filter_map(|p| p.rtt_ns)
        .map(|r| r as f64)
        .collect();
    let (transmitted, received) = (probes.len() as u64, rtts.len() as u64);
    let loss = if transmitted == 0 {
        0.0
    } else {
        1.0 - received as f64 / transmitted as f64
    };
    let rtt = (!rtts.is_empty()).then(|| {
        let n = rtts.len() as f64;
        let avg = rtts.iter().sum::<f64>() / n;
        let var = rtts.iter().map(|r| r * r).sum::<f64>() / n - avg * avg;
        Stats {
            min_ns: rtts.iter().cloned().fold(f64::MAX, f64::min) as u64,
            avg_ns: avg,
            max_ns: rtts.iter().cloned().fold(0.0, f64::max) as u64,
            mdev_ns: var.max(0.0).sqrt(),
        }
    });
    if args.json {
        super::print_json(&Report {
            source: c.node.clone(),
            via: c.via.clone(),
            destination: args.node.clone(),
            size: args.size,
            priority: args.priority.clone(),
            route,
            probes,
            transmitted,
            received,
            loss,
            rtt,
        })?;
    } else {
        println!("--- {} ping statistics ---", args.node);
        println!(
            "{transmitted} probes transmitted, {received} received, {:.0}% loss, time {} ms",
            loss * 100.0,
            started.elapsed().as_millis()
        );
        if let Some(s) = rtt {
            println!(
                "rtt min/avg/max/mdev = {}/{}/{}/{} us",
                us(s.min_ns as f64),
                us(s.avg_ns),
                us(s.max_ns as f64),
                us(s.mdev_ns)
            );
        }
    }
    if received == 0 && transmitted > 0 {
        return Err(Error::Timeout(format!(
            "no probe of {transmitted} came back from {}",
            args.node
        )));
    }
    Ok(())
}
