//! `hyperfabric monitor`: a live view of a running fabric, per node and per link (messages,
//! bytes, rates, errors, drops, queue depth, route epoch), redrawn in place every interval
//! on a terminal (on its alternate screen, as `top` does); one snapshot after another,
//! separated by blank lines, otherwise; with `--once`, one snapshot (rates over one
//! interval); as JSON lines with `--json`.

use super::attach::{stop_flag, FabricArgs};
use super::snapshot::{Looker, Snapshot};
use hyperfabric::Error;
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct MonitorArgs {
    #[command(flatten)]
    fabric: FabricArgs,
    /// Seconds between refreshes (and over which rates are measured).
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// One snapshot, then exit (`--count 1`).
    #[arg(long)]
    once: bool,
    /// Exit after this many refreshes (0: until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// JSON (one object per snapshot, one line each).
    #[arg(long)]
    pub json: bool,
}

fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// The view of one snapshot, as lines.
fn render(s: &Snapshot) -> Vec<String> {
    let mut out = vec![format!(
        "fabric {}  {}  (rates over {:.1} s; Ctrl-C to leave)",
        s.fabric,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        s.interval_s
    )];
    out.push(String::new());
    out.push(format!(
        "{:<16} {:<9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>6} {:>6}",
        "node",
        "state",
        "pid",
        "sent/s",
        "B out/s",
        "recv/s",
        "B in/s",
        "queued",
        "errors",
        "drops",
        "epoch"
    ));
    for n in &s.nodes {
        out.push(format!(
            "{:<16} {:<9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>6} {:>6}",
            n.status.node_id,
            n.status.state,
            opt(n.status.pid.map(u64::from)),
            si(n.sent_messages_per_s),
            si(n.sent_bytes_per_s),
            si(n.received_messages_per_s),
            si(n.received_bytes_per_s),
            n.queued_slots,
            opt(n.errors),
            opt(n.drops),
            opt(n.route_epoch)
        ));
    }
    out.push(String::new());
    out.push(format!(
        "{:<28} {:>10} {:>10} {:>9} {:>9} {:>12}",
        "link", "messages", "bytes", "msg/s", "B/s", "queued/slots"
    ));
    for l in &s.links {
        out.push(format!(
            "{:<28} {:>10} {:>10} {:>9} {:>9} {:>12}",
            format!(
                "{} -> {}",
                l.total.src.escape_debug(),
                l.total.dst.escape_debug()
            ),
            l.total.messages,
            si(l.total.bytes as f64),
            si(l.messages_per_s),
            si(l.bytes_per_s),
            format!("{}/{}", l.total.queued_slots, l.total.capacity)
        ));
    }
    for p in &s.processes {
        let m = |k: &str| p.metrics.get(k).copied();
        let Some(samples) = m("learned_samples") else {
            continue;
        };
        out.push(format!(
            "learned routing in process {} ({}): {} route changes in {} hand-overs, {} \
             samples; mean prediction error {:.1} us (fixed M/M/1 model: {:.1} us)",
            p.pid,
            p.nodes.join(", ").escape_debug(),
            m("route_changes").unwrap_or(0.0),
            m("learned_handovers").unwrap_or(0.0),
            samples,
            m("learned_error_ns").unwrap_or(0.0) / 1e3,
            m("fixed_model_error_ns").unwrap_or(0.0) / 1e3,
        ));
    }
    if !s.unreadable_rings.is_empty() {
        out.push(format!(
            "unreadable rings: {}",
            s.unreadable_rings.join(", ")
        ));
    }
    out
}

pub fn run(args: MonitorArgs) -> Result<(), Error> {
    if !args.interval.is_finite() || !(0.05..=3600.0).contains(&args.interval) {
        return Err(Error::InvalidArgument(format!(
            "--interval must be 0.05..=3600 seconds (got {})",
            args.interval
        )));
    }
    let stop = stop_flag()?;
    let every = Duration::from_secs_f64(args.interval);
    let terminal = std::io::stdout().is_terminal() && !args.json;
    let mut looker = Looker::new(&args.fabric)?;
    let mut before = looker.look()?;
    let mut stdout = std::io::stdout();
    let count = if args.once { 1 } else { args.count };
    let mut shown = 0;
    if terminal {
        // The alternate screen, left on exit: the shell's screen comes back as it was.
        let _ = write!(stdout, "\x1b[?1049h\x1b[?25l");
    }
    let result = loop {
        let until = Instant::now() + every;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
        }
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let mut now = match looker.look() {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        now.rates_since(&before);
        if args.json {
            let line = serde_json::to_string(&now)
                .map_err(|e| Error::InvalidArgument(format!("cannot encode JSON: {e}")))?;
            let _ = writeln!(stdout, "{line}");
        } else if terminal {
            // Home, each line cleared to its end, then everything below cleared: the view
            // is redrawn in place without a blank flash.
            let mut frame = String::from("\x1b[H");
            for l in render(&now) {
                frame.push_str(&l);
                frame.push_str("\x1b[K\n");
            }
            frame.push_str("\x1b[J");
            let _ = write!(stdout, "{frame}");
        } else {
            for l in render(&now) {
                let _ = writeln!(stdout, "{l}");
            }
            let _ = writeln!(stdout);
        }
        let _ = stdout.flush();
        shown += 1;
        if shown == count {
            break Ok(());
        }
        before = now;
    };
    if terminal {
        let _ = write!(stdout, "\x1b[?25h\x1b[?1049l");
        let _ = stdout.flush();
    }
    result
}
