//! `hyperfabric metrics`: a running fabric's counters in the Prometheus text format (0.0.4),
//! printed once, or served over HTTP at `/metrics` with `--listen ADDR` for a Prometheus
//! server to scrape: per node (up, since, messages and bytes in and out, queued slots), per
//! link (messages, bytes, queued slots, capacity), per process (every counter it publishes).

use super::attach::{stop_flag, FabricArgs};
use super::snapshot::{Looker, Snapshot};
use hyperfabric::Error;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct MetricsArgs {
    #[command(flatten)]
    fabric: FabricArgs,
    /// Serve the metrics over HTTP at this address (`/metrics`), until Ctrl-C; prints the
    /// address it listens at first (port 0: one the kernel picks).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

/// Scrapes answered at once.
const MAX_SCRAPES: usize = 8;

/// A label value, escaped as the text format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric name from a counter's name: `[a-zA-Z0-9_]`, others as `_`.
fn name(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A sample's value: counts print as exact integers (a float loses them past 2^53), figures
/// as floats.
enum Value {
    Count(u64),
    Figure(f64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Count(v) => write!(f, "{v}"),
            Value::Figure(v) => write!(f, "{v}"),
        }
    }
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, metric: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {metric} {help}");
        let _ = writeln!(self.out, "# TYPE {metric} {kind}");
    }

    fn sample(&mut self, metric: &str, labels: &[(&str, &str)], v: Value) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        let _ = writeln!(self.out, "{metric}{{{}}} {v}", l.join(","));
    }
}

/// The snapshot in the text format.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    let fab = s.fabric.as_str();
    type NodeValue = fn(&super::snapshot::NodeView) -> Value;
    let per_node: [(&str, &str, &str, NodeValue); 7] = [
        (
            "hyperfabric_node_up",
            "gauge",
            "1 while the node is registered here by a live process",
            |n| Value::Count((n.status.state == "up") as u64),
        ),
        (
            "hyperfabric_node_since_seconds",
            "gauge",
            "Unix time of the node's registration (up) or leaving (down)",
            |n| Value::Figure(n.status.since.unwrap_or(0.0)),
        ),
        (
            "hyperfabric_node_sent_messages_total",
            "counter",
            "Messages the node's rings carried out (sends, forwards, answers)",
            |n| Value::Count(n.sent_messages),
        ),
        (
            "hyperfabric_node_sent_bytes_total",
            "counter",
            "Payload bytes of those",
            |n| Value::Count(n.sent_bytes),
        ),
        (
            "hyperfabric_node_received_messages_total",
            "counter",
            "Messages put into rings toward the node",
            |n| Value::Count(n.received_messages),
        ),
        (
            "hyperfabric_node_received_bytes_total",
            "counter",
            "Payload bytes of those",
            |n| Value::Count(n.received_bytes),
        ),
        (
            "hyperfabric_node_queued_slots",
            "gauge",
            "Ring slots waiting for the node",
            |n| Value::Count(n.queued_slots),
        ),
    ];
    for (metric, kind, help, value) in per_node {
        f.head(metric, kind, help);
        for n in &s.nodes {
            f.sample(
                metric,
                &[
                    ("fabric", fab),
                    ("node", &n.status.node_id),
                    ("state", &n.status.state),
                ],
                value(n),
            );
        }
    }
    type LinkValue = fn(&hyperfabric::transport::stats::LinkTotal) -> Value;
    let per_link: [(&str, &str, &str, LinkValue); 4] = [
        (
            "hyperfabric_link_messages_total",
            "counter",
            "Messages published on the link's rings, or sent on its connections to another host",
            |l| Value::Count(l.messages),
        ),
        (
            "hyperfabric_link_bytes_total",
            "counter",
            "Payload bytes of those",
            |l| Value::Count(l.bytes),
        ),
        (
            "hyperfabric_link_queued_slots",
            "gauge",
            "Slots waiting for the receiver (a connection's queued bytes in 64-byte units)",
            |l| Value::Count(l.queued_slots),
        ),
        (
            "hyperfabric_link_capacity_slots",
            "gauge",
            "Slots of the link's rings (a connection's queue limit in 64-byte units)",
            |l| Value::Count(l.capacity),
        ),
    ];
    for (metric, kind, help, value) in per_link {
        f.head(metric, kind, help);
        for l in s.links.iter().map(|l| &l.total) {
            f.sample(
                metric,
                &[("fabric", fab), ("src", &l.src), ("dst", &l.dst)],
                value(l),
            );
        }
    }
    let mut names: Vec<&String> = s.processes.iter().flat_map(|p| p.metrics.keys()).collect();
    names.sort();
    names.dedup();
    // Two counters whose names differ only where the format has no letter would give one
    // metric twice: the first is kept.
    let mut seen = std::collections::HashSet::new();
    for n in names {
        let metric = format!("hyperfabric_process_{}", name(n));
        if !seen.insert(metric.clone()) {
            continue;
        }
        f.head(
            &metric,
            "gauge",
            // A HELP line escapes backslashes and newlines; other control characters go.
            &format!(
                "The process's {} (get_topology_info)",
                n.replace('\\', "\\\\")
                    .replace('\n', "\\n")
                    .replace(|c: char| c.is_control(), "")
            ),
        );
        for p in &s.processes {
            if let Some(v) = p.metrics.get(n) {
                let pid = p.pid.to_string();
                let v = Value::Figure(*v);
                match &p.host {
                    Some(h) => f.sample(&metric, &[("fabric", fab), ("host", h), ("pid", &pid)], v),
                    None => f.sample(&metric, &[("fabric", fab), ("pid", &pid)], v),
                }
            }
        }
    }
    out
}

pub fn run(args: MetricsArgs) -> Result<(), Error> {
    let Some(addr) = args.listen else {
        print!("{}", render(&Looker::new(&args.fabric)?.look()?));
        return Ok(());
    };
    // The fabric must run now; later failures are answered with 503. Scrapes take turns
    // at one looker (and its client node, in a fabric of several hosts).
    let looker = std::sync::Arc::new(std::sync::Mutex::new(Looker::new(&args.fabric)?));
    let stop = stop_flag()?;
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Error::io(format!("listening at {addr}"), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("setting the listener non-blocking", e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listening address", e))?;
    println!("serving metrics at http://{local}/metrics; stop with Ctrl-C");
    let _ = std::io::stdout().flush();
    // Each scrape on a thread of its own, a few at once: a client that sends nothing holds
    // up no one else. Beyond the limit, connections are closed unanswered.
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if busy.load(Ordering::Acquire) >= MAX_SCRAPES {
                    continue;
                }
                busy.fetch_add(1, Ordering::AcqRel);
                let (done, looker) = (busy.clone(), looker.clone());
                let spawned =
                    std::thread::Builder::new()
                        .name("hf-scrape".into())
                        .spawn(move || {
                            answer(stream, &looker);
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                if spawned.is_err() {
                    busy.fetch_sub(1, Ordering::AcqRel);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(Error::io("accepting a connection", e)),
        }
    }
    Ok(())
}

/// Answers one HTTP request (a scrape).
fn answer(mut stream: std::net::TcpStream, looker: &std::sync::Mutex<Looker>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    // The request line and headers, however they are split into segments.
    let mut req = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while req.len() < 8192 && !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&chunk[..n]),
        }
    }
    let first = String::from_utf8_lossy(&req);
    let path = first.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if !first.starts_with("GET ") {
        ("405 Method Not Allowed", String::from("GET only\n"))
    } else if path != "/metrics" && path != "/" {
        ("404 Not Found", String::from("see /metrics\n"))
    } else {
        let look = looker.lock().unwrap_or_else(|e| e.into_inner()).look();
        match look {
            Ok(s) => ("200 OK", render(&s)),
            Err(e) => ("503 Service Unavailable", format!("{e}\n")),
        }
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
