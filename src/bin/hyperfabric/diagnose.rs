//! `hyperfabric diagnose`: a report on a running fabric. Every running node is probed from a
//! client node (round trip and a burst's bandwidth, against the route's configured latency and
//! capacity); bottlenecks of the live topology with recommendations; what differs between
//! the configuration and what runs; the rings and processes in trouble; when each process
//! last rebuilt its routing tables. Exits non-zero, naming the reasons, when something is
//! wrong: a node of the configuration down, a running node unreachable, a corrupt or
//! unreadable ring, pairs without a route.

use super::attach::{Client, FabricArgs, CLIENT_PREFIX};
use super::snapshot::Looker;
use hyperfabric::model::PacketPriority;
use hyperfabric::{Error, RouteRequest};
use serde::Serialize;
use std::io::IsTerminal;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct DiagnoseArgs {
    #[command(flatten)]
    fabric: FabricArgs,
    /// Probes per node (the median is reported).
    #[arg(long, default_value_t = 5)]
    probes: usize,
    /// Also write the report to this file.
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Default)]
struct PathCheck {
    node_id: String,
    state: String,
    reachable: bool,
    path: Vec<String>,
    hops: usize,
    /// Median round trip / 2 of the probes, ns.
    latency_ns: Option<u64>,
    /// The route's latency from the configured figures, ns.
    configured_latency_ns: Option<u64>,
    /// Bandwidth of a pipelined burst of 64 KiB probes, Gbit/s.
    bandwidth_gbps: Option<f64>,
    /// The route's bottleneck capacity from the configured figures, Gbit/s.
    configured_bandwidth_gbps: Option<f64>,
    error: Option<String>,
}

#[derive(Serialize)]
struct Tables {
    who: String,
    route_epoch: Option<f64>,
    tables_built_unix: Option<f64>,
    table_build_ms: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    fabric: String,
    time: f64,
    ok: bool,
    problems: Vec<String>,
    paths: Vec<PathCheck>,
    bottlenecks: Vec<hyperfabric::model::BottleneckInfo>,
    configuration: Vec<String>,
    tables: Vec<Tables>,
}

/// Shows which node is being probed: on a terminal only, on stderr, redrawn in place.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(n: usize, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(n as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("[{pos}/{len}] {bar:30} {msg}")
                .expect("a valid template"),
        );
        Progress(Some(bar))
    }

    fn step(&self, what: &str) {
        if let Some(b) = &self.0 {
            b.set_message(what.to_string());
            b.inc(1);
        }
    }

    fn done(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn probe(c: &Client, id: &str, probes: usize, check: &mut PathCheck) {
    let mut rtts = Vec::new();
    for _ in 0..probes.max(1) {
        match c.p.probe(
            &c.node,
            id,
            64,
            PacketPriority::High,
            Duration::from_secs(1),
        ) {
            Ok(p) => {
                rtts.push(p.rtt_ns / 2);
                check.hops = p.path.len().saturating_sub(1);
                check.path = p.path;
            }
            Err(e) => check.error = Some(format!("{}: {e}", e.kind().name())),
        }
    }
    check.reachable = !rtts.is_empty();
    check.latency_ns = median(rtts);
    if check.reachable {
        if let Ok(r) = c.p.ping(&c.node, id, 65536, 1000) {
            check.bandwidth_gbps = Some(r.bandwidth_gbps);
        }
    }
    if let Ok(route) =
        c.p.topology()
            .and_then(|t| t.route(&RouteRequest::new(c.node.clone(), id.to_string())))
    {
        check.configured_latency_ns = Some(route.latency_ns);
        check.configured_bandwidth_gbps = Some(route.bandwidth_gbps);
    }
}

pub fn run(args: DiagnoseArgs) -> Result<(), Error> {
    let (cfg, fabric) = args.fabric.load()?;
    let mut looker = Looker::new(&args.fabric)?;
    let snap = looker.look()?;
    // The client node of the looks, else one of its own (a fabric of one host).
    let own;
    let c: &Client = match looker.client() {
        Some(c) => c,
        None => {
            own = Client::attach(&args.fabric, None)?;
            &own
        }
    };
    let mut problems = Vec::new();
    for h in snap.hosts.iter().filter(|h| !h.reached) {
        problems.push(format!(
            "host {}: not reached ({})",
            h.name,
            h.error.as_deref().unwrap_or("no answer")
        ));
    }
    let mut configuration: Vec<String> = cfg.warnings.clone();
    for n in &snap.nodes {
        let s = &n.status;
        match (s.state.as_str(), s.configured) {
            ("down", true) => problems.push(format!(
                "{}: configured but not running {}{}",
                s.node_id,
                s.host
                    .as_ref()
                    .filter(|h| snap.host.as_ref() != Some(h))
                    .map_or("here".to_string(), |h| format!("on host {h}")),
                s.since_utc
                    .as_ref()
                    .map(|t| format!(" (down since {t})"))
                    .unwrap_or_else(|| " (never seen)".into())
            )),
            ("up", false) => configuration.push(format!(
                "{}: running but not in the configuration (registered by process {})",
                s.node_id,
                s.pid.unwrap_or(0)
            )),
            _ => {}
        }
    }
    // Client nodes of the tools are left out of the other lists: here they are named.
    for (id, pid) in clients(&fabric)?
        .into_iter()
        .filter(|(id, _)| *id != c.node)
    {
        configuration.push(format!(
            "{id}: a client node of a command-line tool (process {pid})"
        ));
    }
    let running = |id: &str| {
        snap.nodes
            .iter()
            .any(|n| n.status.node_id == id && n.status.state == "up")
    };
    for l in &cfg.links {
        if !running(&l.a) || !running(&l.b) {
            configuration.push(format!(
                "link {} - {}: an end is not running, so routes cannot use it",
                l.a, l.b
            ));
        }
    }
    for l in snap
        .links
        .iter()
        .map(|l| &l.total)
        .filter(|l| l.corrupt > 0)
    {
        problems.push(format!(
            "link {} -> {}: {} ring(s) found corrupt",
            l.src, l.dst, l.corrupt
        ));
    }
    for r in &snap.unreadable_rings {
        problems.push(format!("ring file {r}: not a ring this version reads"));
    }
    for p in &snap.processes {
        let errors = p.metrics.get("errors").copied().unwrap_or(0.0);
        let failed = p.metrics.get("delivery_failed").copied().unwrap_or(0.0);
        if errors > 0.0 || failed > 0.0 {
            configuration.push(format!(
                "process {} ({}): {errors} requests answered with an error, {failed} deliveries failed",
                p.pid,
                p.nodes.iter().map(|n| n.escape_debug().to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
    }

    let up: Vec<String> = snap
        .nodes
        .iter()
        .filter(|n| n.status.state == "up" && !n.status.node_id.starts_with(CLIENT_PREFIX))
        .map(|n| n.status.node_id.clone())
        .collect();
    let progress = Progress::new(up.len(), args.json);
    let mut paths = Vec::new();
    for id in &up {
        progress.step(&format!("probing {id}"));
        let mut check = PathCheck {
            node_id: id.clone(),
            state: "up".into(),
            ..Default::default()
        };
        probe(c, id, args.probes, &mut check);
        if !check.reachable {
            problems.push(format!(
                "{id}: running but no probe came back ({})",
                check.error.as_deref().unwrap_or("no answer")
            ));
        }
        paths.push(check);
        if c.stopped() {
            break;
        }
    }
    progress.done();
    let info = c.p.get_topology_info()?;
    let ratio = info
        .performance_metrics
        .get("reachable_pair_ratio")
        .copied();
    if ratio.is_some_and(|r| r < 1.0) {
        problems.push(format!(
            "{:.0}% of the pairs of running nodes have no route",
            (1.0 - ratio.unwrap_or(1.0)) * 100.0
        ));
    }
    let get = |m: &std::collections::BTreeMap<String, f64>, k: &str| m.get(k).copied();
    let mut tables = vec![Tables {
        who: format!("{} (this report)", c.node),
        route_epoch: get(&info.performance_metrics, "route_epoch"),
        tables_built_unix: get(&info.performance_metrics, "tables_built_unix"),
        table_build_ms: get(&info.performance_metrics, "table_build_ms"),
    }];
    tables.extend(snap.processes.iter().map(|p| Tables {
        who: format!(
            "process {}{} ({})",
            p.pid,
            p.host
                .as_ref()
                .map(|h| format!(" on host {h}"))
                .unwrap_or_default(),
            p.nodes.iter().map(|n| n.escape_debug().to_string()).collect::<Vec<_>>().join(", ")
        ),
        route_epoch: get(&p.metrics, "route_epoch"),
        tables_built_unix: get(&p.metrics, "tables_built_unix"),
        table_build_ms: get(&p.metrics, "table_build_ms"),
    }));
    let report = Report {
        fabric,
        time: hyperfabric::model::unix_now(),
        ok: problems.is_empty(),
        problems,
        paths,
        // This report's own client node is no part of the fabric's bottlenecks.
        bottlenecks: info
            .bottlenecks
            .iter()
            .filter(|b| !b.location.contains(&c.node) && !b.recommended_action.contains(&c.node))
            .cloned()
            .collect(),
        configuration,
        tables,
    };
    drop(looker);
    let text = if args.json {
        serde_json::to_string_pretty(&report)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode JSON: {e}")))?
            + "\n"
    } else {
        render(&report)
    };
    print!("{text}");
    super::REPORTED.store(args.json, std::sync::atomic::Ordering::Relaxed);
    if let Some(out) = &args.output {
        std::fs::write(out, &text)
            .map_err(|e| Error::io(format!("writing {}", out.display()), e))?;
    }
    if report.ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "the fabric has {} problem(s): {}",
            report.problems.len(),
            report.problems.join("; ")
        )))
    }
}

/// The client nodes registered now, with their processes.
fn clients(fabric: &str) -> Result<Vec<(String, u32)>, Error> {
    Ok(super::attach::registry(fabric)?
        .list()?
        .into_iter()
        .filter(|e| e.signature.node_id.starts_with(CLIENT_PREFIX))
        .map(|e| (e.signature.node_id, e.owner_pid))
        .collect())
}

fn when(unix: Option<f64>) -> String {
    match unix {
        Some(t) if t > 0.0 => {
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_secs_f64(t))
                .to_string()
        }
        _ => "-".into(),
    }
}

fn render(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "fabric {:?}: {}",
        r.fabric,
        if r.ok {
            "no problem found".to_string()
        } else {
            format!("{} problem(s)", r.problems.len())
        }
    );
    let _ = writeln!(
        o,
        "\npaths from a client node (median of the probes, against the configured route)"
    );
    for p in &r.paths {
        let _ = writeln!(
            o,
            "  {:<16} {:<10} {:>3} hops  latency {:>9} ns (configured {:>6})  bandwidth {:>7} Gbit/s (configured {:>6})  {}",
            p.node_id,
            if p.reachable { "reachable" } else { "UNREACHABLE" },
            p.hops,
            p.latency_ns.map_or("-".into(), |v| v.to_string()),
            p.configured_latency_ns.map_or("-".into(), |v| v.to_string()),
            p.bandwidth_gbps.map_or("-".into(), |v| format!("{v:.2}")),
            p.configured_bandwidth_gbps.map_or("-".into(), |v| format!("{v}")),
            p.path.join(">")
        );
    }
    let _ = writeln!(o, "\nbottlenecks");
    if r.bottlenecks.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for b in &r.bottlenecks {
        let _ = writeln!(
            o,
            "  {} ({}, severity {:.2}): {}",
            b.location, b.bottleneck_type, b.severity, b.recommended_action
        );
    }
    let _ = writeln!(o, "\nconfiguration");
    if r.configuration.is_empty() {
        let _ = writeln!(o, "  the running fabric matches it");
    }
    for c in &r.configuration {
        let _ = writeln!(o, "  {c}");
    }
    let _ = writeln!(o, "\nrouting tables");
    for t in &r.tables {
        let _ = writeln!(
            o,
            "  {}: epoch {}, built {} in {} ms",
            t.who,
            t.route_epoch.map_or("-".into(), |e| e.to_string()),
            when(t.tables_built_unix),
            t.table_build_ms.map_or("-".into(), |m| format!("{m:.3}"))
        );
    }
    if !r.problems.is_empty() {
        let _ = writeln!(o, "\nproblems");
        for p in &r.problems {
            let _ = writeln!(o, "  - {p}");
        }
    }
    o
}
