//! `hyperfabric soak`: end-to-end delivery under injected faults and killed processes. Four
//! processes: ends `a` and `b`, each sending its share of the messages to the other (posts
//! and requests, sizes 1 B-1 MiB, mostly small, five priorities), through forwarders `f1`
//! (the faster route) and `f2`, which drop, duplicate and corrupt frames as the fault plan
//! says; `f1` is killed with SIGKILL and started again every few seconds. At the end every
//! message must have arrived exactly once, whole and in order per (source, priority), or
//! have been reported failed to its sender; the counts are printed.

use super::soak_worker;
use hyperfabric::fabric::ProtocolConfig;
use hyperfabric::model::PacketPriority;
use hyperfabric::LinkSpec;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Set for the processes of `soak --verbose`.
pub(super) const VERBOSE: &str = "HF_SOAK_VERBOSE";

/// Priority classes of the messages.
pub(super) const CLASSES: usize = 5;
pub(super) const PRIORITIES: [PacketPriority; CLASSES] = [
    PacketPriority::UltraHigh,
    PacketPriority::High,
    PacketPriority::Medium,
    PacketPriority::Low,
    PacketPriority::Bulk,
];

#[derive(clap::Args)]
pub(super) struct SoakArgs {
    /// Messages in all (half from each end).
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Seed of the messages and of the faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Faults the forwarders inject (docs/faults.md); the seed is added.
    #[arg(long, default_value = "drop=0.01,duplicate=0.001,corrupt=0.001")]
    faults: String,
    /// Kill the forwarder f1 every this many milliseconds (0: never).
    #[arg(long, default_value_t = 2000)]
    kill_every_ms: u64,
    /// How long f1 stays dead before it is started again, ms.
    #[arg(long, default_value_t = 300)]
    down_ms: u64,
    /// Put each process on a host of its own (a network namespace of this machine, which
    /// needs root or CAP_NET_ADMIN), so that every hop is a TCP connection between hosts.
    #[arg(long)]
    hosts: bool,
    /// Each end prints what it sent and its engine's counters on stderr at the end.
    #[arg(long)]
    verbose: bool,
    /// Run with fault tolerance off (best effort): the soak then counts what is lost
    /// without a report, and fails.
    #[arg(long)]
    best_effort: bool,
    /// Timeout of each request, ms.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub(super) struct WorkerArgs {
    #[arg(long)]
    pub(super) fabric: String,
    #[arg(long)]
    pub(super) role: String,
    #[arg(long, default_value_t = 0)]
    pub(super) messages: u64,
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    /// With `soak --hosts`: the address this process listens on.
    #[arg(long)]
    pub(super) listen: Option<std::net::SocketAddr>,
    /// With `soak --hosts`: the hosts it dials (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub(super) peers: Vec<std::net::SocketAddr>,
    /// With `soak --hosts`: the fabric's key file.
    #[arg(long)]
    pub(super) key: Option<std::path::PathBuf>,
    /// Fault tolerance off.
    #[arg(long)]
    pub(super) best_effort: bool,
    /// Timeout of each request, ms.
    #[arg(long, default_value_t = 30_000)]
    pub(super) timeout_ms: u64,
}

/// What an end sent.
#[derive(Serialize, Deserialize, Default, Debug)]
pub(super) struct Sent {
    pub(super) messages: u64,
    /// Messages per class (numbered from 0).
    pub(super) numbers: Vec<u64>,
    /// Requests that failed (their answers said so, or they timed out), as (class, number).
    pub(super) failed_requests: Vec<(u8, u64)>,
    /// One-way messages whose delivery the protocol reported failed (`delivery_failed`
    /// less `delivery_failed_requests`).
    pub(super) failed_posts: u64,
    /// Sends refused for the moment and made again.
    pub(super) refusals: u64,
}

/// What an end received.
#[derive(Serialize, Deserialize, Default, Debug)]
pub(super) struct Report {
    pub(super) delivered: Vec<u64>,
    /// Per class, the number after the last message taken.
    pub(super) next: Vec<u64>,
    /// Messages skipped (a later one of their class came first), as (class, number).
    pub(super) missing: Vec<(u8, u64)>,
    pub(super) backward: u64,
    pub(super) corrupt: u64,
    pub(super) resent: u64,
    pub(super) timeouts: u64,
    pub(super) refused: u64,
}

/// The soak's processes, in the order of their hosts (with `--hosts`, each dials those
/// before it: `f1`, restarted, dials all others).
pub(super) const ROLES: [&str; 4] = ["a", "b", "f2", "f1"];

/// The soak's fabric: a and b linked only through f1 (fast) and f2; with `host`, this
/// process's part of the fabric across hosts.
pub(super) fn config(fabric: &str, host: Option<&WorkerArgs>) -> Result<ProtocolConfig, String> {
    let mut c = ProtocolConfig {
        fabric_name: Some(fabric.into()),
        links: vec![
            LinkSpec::new("a", "f1").latency_ns(100),
            LinkSpec::new("f1", "b").latency_ns(100),
            LinkSpec::new("a", "f2").latency_ns(1000),
            LinkSpec::new("f2", "b").latency_ns(1000),
        ],
        ..Default::default()
    };
    c.options.enable_fault_tolerance = !host.is_some_and(|w| w.best_effort);
    if let Some(w) = host.filter(|w| w.listen.is_some()) {
        let key = w.key.as_ref().ok_or("--listen needs --key")?;
        c.key = Some(hyperfabric::codec::FabricKey::from_file(key).map_err(|e| e.to_string())?);
        c.tcp = Some(hyperfabric::fabric::TcpConfig {
            listen: w.listen,
            peers: w.peers.clone(),
            ..Default::default()
        });
    }
    Ok(c)
}

/// Where a process of `soak --hosts` runs: its namespace, address, the addresses it dials,
/// the key, and the shared-memory directory of its host.
struct Place<'a> {
    netns: &'a str,
    listen: String,
    peers: String,
    key: std::path::PathBuf,
    shm: std::path::PathBuf,
}

/// A soak process and the lines it prints.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(
        fabric: &str,
        role: &str,
        args: &SoakArgs,
        faults: Option<&str>,
        place: Option<&Place>,
    ) -> Result<Proc, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let mut cmd = match place {
            Some(p) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", p.netns]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(["soak-worker", "--fabric", fabric, "--role", role]);
        if args.best_effort {
            cmd.arg("--best-effort");
        }
        cmd.args(["--timeout-ms", &args.timeout_ms.to_string()]);
        if let Some(p) = place {
            cmd.args(["--listen", &p.listen, "--key"])
                .arg(&p.key)
                .env("HF_SHM_DIR", &p.shm);
            if !p.peers.is_empty() {
                cmd.args(["--peers", &p.peers]);
            }
        }
        cmd.args(["--messages", &(args.messages / 2).to_string()])
            .args(["--seed", &args.seed.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .env_remove("HF_FAULTS")
            .env_remove(VERBOSE);
        if args.verbose {
            cmd.env(VERBOSE, "1");
        }
        if let Some(f) = faults {
            cmd.env("HF_FAULTS", f).stderr(Stdio::null());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting soak process {role}: {e}"))?;
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Proc {
            child,
            stdin,
            lines,
        })
    }

    /// The next line that starts with `what`, within `limit`.
    fn expect(&self, what: &str, limit: Duration) -> Result<String, String> {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(what) => return Ok(l[what.len()..].trim().to_string()),
                Ok(_) => {}
                Err(_) => return Err(format!("no `{what}` line within {limit:?}")),
            }
        }
    }

    fn say(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }
}

/// The soak's outcome.
#[derive(Serialize, Debug, Default)]
struct Outcome {
    messages: u64,
    delivered: u64,
    reported_failed: u64,
    lost_unreported: u64,
    /// Requests reported failed that had arrived (their answers were lost, or the
    /// connection to their destination closed): no acknowledgement scheme avoids these.
    reported_failed_but_delivered: u64,
    duplicated_or_reordered: u64,
    corrupt_delivered: u64,
    forwarder_kills: u64,
    resent: u64,
    resend_timeouts: u64,
    refused_at_receivers: u64,
    sends_made_again: u64,
    seconds: f64,
}

pub(super) fn run(args: SoakArgs) -> Result<(), String> {
    let fabric = format!("soak-{}", std::process::id());
    let faults = format!("seed={},{}", args.seed, args.faults);
    hyperfabric::engine::FaultPlan::parse(&faults).map_err(|e| e.to_string())?;
    let result = soak(&fabric, &args, &faults);
    let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&fabric));
    let o = result?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&o).expect("serializable")
        );
    } else {
        println!(
            "soak: {} messages between a and b through f1 and f2 ({faults})",
            o.messages
        );
        for (what, v) in [
            ("delivered exactly once, whole, in order", o.delivered),
            ("reported failed to their senders", o.reported_failed),
            (
                "  of them requests that had arrived",
                o.reported_failed_but_delivered,
            ),
            ("lost without a report", o.lost_unreported),
            (
                "duplicated or out of order at a receiver",
                o.duplicated_or_reordered,
            ),
            ("delivered with wrong bytes", o.corrupt_delivered),
            ("forwarder f1 killed and restarted", o.forwarder_kills),
            ("frames sent again", o.resent),
            ("rounds of resends after a timeout", o.resend_timeouts),
            ("frames refused at receivers", o.refused_at_receivers),
        ] {
            println!("  {what:<44} {v}");
        }
        println!("  took {:.1} s", o.seconds);
    }
    if o.lost_unreported + o.duplicated_or_reordered + o.corrupt_delivered > 0 {
        return Err("delivery guarantees broken".into());
    }
    Ok(())
}

/// The hosts of `soak --hosts`: the namespaces, and a scratch directory (key, the hosts'
/// shared-memory directories), all removed when dropped.
struct Hosts {
    bed: hyperfabric::testbed::Testbed,
    dir: std::path::PathBuf,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Hosts {
    fn new() -> Result<Hosts, String> {
        let bed = hyperfabric::testbed::Testbed::new(ROLES.len(), false).map_err(|e| {
            format!(
                "soak --hosts makes each host a network namespace, which needs root or \
                 CAP_NET_ADMIN and iproute2: {e}"
            )
        })?;
        let dir = std::env::temp_dir().join(format!("hf-soak-hosts-{}", std::process::id()));
        let h = Hosts { bed, dir };
        std::fs::create_dir_all(&h.dir).map_err(|e| format!("scratch directory: {e}"))?;
        let key = super::random_key_hex().map_err(|e| e.to_string())?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(h.key())
            .and_then(|mut f| f.write_all(key.as_bytes()))
            .map_err(|e| format!("writing the key: {e}"))?;
        Ok(h)
    }

    fn key(&self) -> std::path::PathBuf {
        self.dir.join("fabric.key")
    }

    fn address(&self, i: usize) -> String {
        format!("{}:7420", self.bed.address(i))
    }

    /// Where process `role` runs.
    fn place(&self, role: &str, key: &'_ std::path::Path) -> Result<Place<'_>, String> {
        let i = ROLES.iter().position(|&r| r == role).expect("a role");
        let shm = self.dir.join(format!("shm-{role}"));
        std::fs::create_dir_all(&shm).map_err(|e| format!("scratch directory: {e}"))?;
        Ok(Place {
            netns: self.bed.name(i),
            listen: self.address(i),
            peers: (0..i)
                .map(|j| self.address(j))
                .collect::<Vec<_>>()
                .join(","),
            key: key.to_path_buf(),
            shm,
        })
    }
}

fn soak(fabric: &str, args: &SoakArgs, faults: &str) -> Result<Outcome, String> {
    let start = Instant::now();
    let ready = Duration::from_secs(20);
    let hosts = if args.hosts {
        Some(Hosts::new()?)
    } else {
        None
    };
    let key = hosts.as_ref().map(Hosts::key).unwrap_or_default();
    let place = |role: &str| -> Result<Option<Place>, String> {
        hosts.as_ref().map(|h| h.place(role, &key)).transpose()
    };
    let start_one = |role: &str, faults: Option<&str>| -> Result<Proc, String> {
        Proc::start(fabric, role, args, faults, place(role)?.as_ref())
    };
    let mut f1 = start_one("f1", Some(faults))?;
    let f2 = start_one("f2", Some(faults))?;
    let mut ends = [start_one("a", None)?, start_one("b", None)?];
    for p in [&f1, &f2].into_iter().chain(&ends) {
        p.expect("ready", ready)?;
    }
    for e in &mut ends {
        e.say("go");
    }
    let mut sent: Vec<Option<Sent>> = vec![None, None];
    let mut kills = 0;
    let mut next_kill = Instant::now() + Duration::from_millis(args.kill_every_ms);
    while sent.iter().any(Option::is_none) {
        for (i, e) in ends.iter_mut().enumerate() {
            if sent[i].is_none() {
                if let Ok(l) = e.lines.try_recv() {
                    if let Some(json) = l.strip_prefix("sent ") {
                        sent[i] = Some(serde_json::from_str(json).map_err(|e| e.to_string())?);
                    }
                }
                if let Ok(Some(status)) = e.child.try_wait() {
                    return Err(format!("end {i} exited early: {status}"));
                }
            }
        }
        if args.kill_every_ms > 0 && Instant::now() >= next_kill {
            f1.kill();
            kills += 1;
            std::thread::sleep(Duration::from_millis(args.down_ms));
            f1 = start_one("f1", Some(faults))?;
            f1.expect("ready", ready)?;
            next_kill = Instant::now() + Duration::from_millis(args.kill_every_ms);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut reports = Vec::new();
    for e in &mut ends {
        e.say("report");
    }
    for e in &ends {
        let r: Report = serde_json::from_str(&e.expect("report ", Duration::from_secs(30))?)
            .map_err(|e| e.to_string())?;
        reports.push(r);
    }
    let sent: Vec<Sent> = sent.into_iter().map(|s| s.expect("all sent")).collect();
    let mut o = Outcome {
        forwarder_kills: kills,
        ..Default::default()
    };
    // a's messages are b's to report, and b's a's.
    for ((s, r), role) in sent.iter().zip(reports.iter().rev()).zip(["a", "b"]) {
        let delivered: u64 = r.delivered.iter().sum();
        let requests = soak_worker::requests(args.seed, role, s.messages);
        let failed: std::collections::HashSet<(u8, u64)> =
            s.failed_requests.iter().copied().collect();
        // What never arrived: skipped numbers, and those after the last taken.
        let tail = (0..CLASSES).flat_map(|c| {
            let from = r.next.get(c).copied().unwrap_or(0);
            (from..s.numbers[c]).map(move |n| (c as u8, n))
        });
        let mut missing_posts = 0u64;
        let mut missing = std::collections::HashSet::new();
        for (c, n) in r.missing.iter().copied().chain(tail) {
            missing.insert((c, n));
            let request = requests[c as usize]
                .get(n as usize)
                .copied()
                .unwrap_or(false);
            if !request {
                missing_posts += 1;
            } else if !failed.contains(&(c, n)) {
                o.lost_unreported += 1;
            }
        }
        o.lost_unreported += missing_posts.saturating_sub(s.failed_posts);
        o.reported_failed_but_delivered +=
            failed.iter().filter(|m| !missing.contains(m)).count() as u64;
        o.messages += s.messages;
        o.delivered += delivered;
        o.reported_failed += s.failed_posts + failed.len() as u64;
        o.duplicated_or_reordered += r.backward;
        o.corrupt_delivered += r.corrupt;
        o.sends_made_again += s.refusals;
    }
    for r in &reports {
        o.resent += r.resent;
        o.resend_timeouts += r.timeouts;
        o.refused_at_receivers += r.refused;
    }
    o.seconds = start.elapsed().as_secs_f64();
    Ok(o)
}

/// A soak that failed, as the command's error.
pub(super) fn failed(why: String) -> hyperfabric::Error {
    hyperfabric::Error::new(hyperfabric::ErrorKind::Io, why)
}

pub(super) fn worker(args: WorkerArgs) -> Result<(), String> {
    soak_worker::run(&args)
}
