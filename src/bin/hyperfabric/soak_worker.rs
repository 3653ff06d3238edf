//! A process of `soak`: a forwarder (it hosts a switch node and forwards, with the faults
//! of its environment), or an end that sends its share of the messages to the other end
//! and checks every message it receives.

use super::soak::{config, Report, Sent, WorkerArgs, CLASSES, PRIORITIES, ROLES, VERBOSE};
use hyperfabric::fabric::{HyperFabricProtocol, Request, SendOptions};
use hyperfabric::model::{HardwareType, NodeSignature};
use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// FNV-1a: the checksum every message carries at its end.
pub(super) fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What an end saw of the messages sent to it, by priority class.
#[derive(Default)]
struct Seen {
    next: [u64; CLASSES],
    delivered: [u64; CLASSES],
    /// Numbers skipped (at most [`MISSING_KEPT`]; past them, only counted as skipped).
    missing: Vec<(u8, u64)>,
    /// Numbers that came after a larger one of their class (a duplicate, or a message
    /// overtaken by a later one).
    backward: u64,
    corrupt: u64,
}

impl Seen {
    /// Checks one message: `[class][number: u64][bytes][fnv: u64]`.
    fn take(&mut self, m: &[u8]) {
        if m.len() < 17 {
            self.corrupt += 1;
            return;
        }
        let (body, sum) = m.split_at(m.len() - 8);
        if fnv(body).to_le_bytes() != sum || body[0] as usize >= CLASSES {
            self.corrupt += 1;
            return;
        }
        let class = body[0] as usize;
        let n = u64::from_le_bytes(body[1..9].try_into().expect("8 bytes"));
        let next = &mut self.next[class];
        if n < *next {
            // Numbers only grow; a message whose delivery failed leaves a gap (the parent
            // compares what is missing with what its sender was told failed).
            self.backward += 1;
            return;
        }
        for skipped in *next..n {
            if self.missing.len() < MISSING_KEPT {
                self.missing.push((class as u8, skipped));
            }
        }
        *next = n + 1;
        self.delivered[class] += 1;
    }
}

/// Skipped numbers an end lists (a run that skips more has failed anyway).
const MISSING_KEPT: usize = 1 << 20;

/// xorshift64*: the sizes, classes and calls of a run, from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The seed of the messages end `role` sends in a run of `seed`.
fn seed_of(seed: u64, role: &str) -> u64 {
    (seed ^ role.as_bytes()[0] as u64) | 1
}

/// One message to send, as the run's random numbers make it.
struct Draw {
    class: usize,
    len: usize,
    fill: u64,
    request: bool,
}

fn draw(r: &mut Rng) -> Draw {
    let class = (r.next() % CLASSES as u64) as usize;
    let len = size(r);
    let fill = r.next();
    let request = r.next() % 4 == 0;
    Draw {
        class,
        len,
        fill,
        request,
    }
}

/// Per class, by number, whether end `role` of a run of `seed` sends the message as a
/// request (the draws of its sends made again).
pub(super) fn requests(seed: u64, role: &str, messages: u64) -> Vec<Vec<bool>> {
    let mut r = Rng(seed_of(seed, role));
    let mut out = vec![Vec::new(); CLASSES];
    for _ in 0..messages {
        let d = draw(&mut r);
        out[d.class].push(d.request);
    }
    out
}

/// A message size: mostly small, now and then up to 1 MiB.
fn size(r: &mut Rng) -> usize {
    let x = r.next();
    match x % 1000 {
        0..=899 => 1 + (x >> 16) as usize % 256,
        900..=989 => 256 + (x >> 16) as usize % (64 << 10),
        _ => (64 << 10) + (x >> 16) as usize % ((1 << 20) - (64 << 10)),
    }
}

/// Runs a soak process: its role is `f1`/`f2` (forwarders) or `a`/`b` (ends, sending its
/// messages to the other end); with an address to listen on, a host of its own.
pub(super) fn run(args: &WorkerArgs) -> Result<(), String> {
    let (role, messages, seed) = (args.role.as_str(), args.messages, args.seed);
    let p = HyperFabricProtocol::with_config(config(&args.fabric, Some(args))?)
        .map_err(|e| e.to_string())?;
    let kind = if role.starts_with('f') {
        HardwareType::NetworkSwitch
    } else {
        HardwareType::CpuServer
    };
    let sig = NodeSignature::new(role, kind, 400.0, 100).map_err(|e| e.to_string())?;
    p.register_node(sig).map_err(|e| e.to_string())?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    if !role.starts_with('f') {
        let seen = seen.clone();
        p.on_receive(role, move |m| {
            seen.lock().expect("not poisoned").take(&m.data);
            Ok(m.data[m.data.len().saturating_sub(8)..].to_vec())
        })
        .map_err(|e| e.to_string())?;
    }
    p.start_background_services().map_err(|e| e.to_string())?;
    if args.listen.is_some() {
        // On a host of its own: ready once every node of the soak is reached.
        let until = Instant::now() + Duration::from_secs(15);
        while !ROLES.iter().all(|r| p.transport_to(r).is_ok()) {
            if Instant::now() > until {
                return Err(format!("{role}: not every host reached within 15 s"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    println!("ready");
    let mut lines = std::io::stdin().lock().lines();
    if role.starts_with('f') {
        // Serves until its stdin closes (or it is killed).
        for _ in lines.by_ref() {}
        return Ok(());
    }
    if lines.next().is_none() {
        return Ok(());
    }
    let peer = if role == "a" { "b" } else { "a" };
    let timeout = Duration::from_millis(args.timeout_ms);
    let sent = send(&p, (role, peer), (messages, timeout), seed_of(seed, role));
    let sent_dbg = serde_json::to_string(&sent).expect("serializable");
    println!("sent {sent_dbg}");
    // Serves the other end until told to report.
    let _ = lines.next();
    let s = seen.lock().expect("not poisoned");
    let m = p
        .get_topology_info()
        .map_err(|e| e.to_string())?
        .performance_metrics;
    if std::env::var_os(VERBOSE).is_some() {
        // One write: the other end prints at the same time.
        let line = format!("{role}: sent {sent_dbg}; counters {m:?}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
    let report = Report {
        delivered: s.delivered.to_vec(),
        next: s.next.to_vec(),
        missing: s.missing.clone(),
        backward: s.backward,
        corrupt: s.corrupt,
        resent: m["delivery_resent"] as u64,
        timeouts: m["delivery_timeouts"] as u64,
        refused: (m["delivery_duplicates_refused"]
            + m["delivery_corrupt_refused"]
            + m["delivery_out_of_order_refused"]
            + m["delivery_stale_refused"]) as u64,
    };
    println!(
        "report {}",
        serde_json::to_string(&report).expect("serializable")
    );
    Ok(())
}

/// Sends `messages` from `src` to `dst`: posts and requests (up to 32 outstanding) of random
/// sizes and priorities. A send that reports earlier failures was not made and is made
/// again; so is one refused for the moment (no route while routes are rebuilt, a full
/// window).
fn send(
    p: &HyperFabricProtocol,
    (src, dst): (&str, &str),
    (messages, timeout): (u64, Duration),
    seed: u64,
) -> Sent {
    let mut r = Rng(seed);
    let mut sent = Sent {
        numbers: vec![0; CLASSES],
        ..Default::default()
    };
    let mut outstanding: VecDeque<(Request, (u8, u64))> = VecDeque::new();
    let finish = |(rq, which): (Request, (u8, u64)), sent: &mut Sent| {
        if rq.wait().is_err() {
            sent.failed_requests.push(which);
        }
    };
    for _ in 0..messages {
        let d = draw(&mut r);
        let n = sent.numbers[d.class];
        let mut m = vec![d.class as u8];
        m.extend_from_slice(&n.to_le_bytes());
        let fill = d.fill;
        m.extend((0..d.len).map(|i| (fill >> (i % 8 * 8)) as u8 ^ i as u8));
        let sum = fnv(&m);
        m.extend_from_slice(&sum.to_le_bytes());
        let opts = SendOptions {
            priority: PRIORITIES[d.class],
            timeout,
            ..Default::default()
        };
        let started = Instant::now();
        loop {
            let made = if d.request {
                p.send_data_nb(src, dst, &m, &opts).map(|rq| {
                    outstanding.push_back((rq, (d.class as u8, n)));
                })
            } else {
                p.post(src, dst, &m, &opts)
            };
            match made {
                Ok(()) => break,
                Err(e) => {
                    sent.refusals += 1;
                    if started.elapsed() > Duration::from_secs(60) {
                        eprintln!("soak: {src}: a send refused for a minute: {e}");
                        std::process::exit(3);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        sent.numbers[d.class] += 1;
        sent.messages += 1;
        if outstanding.len() > 32 {
            finish(outstanding.pop_front().expect("non-empty"), &mut sent);
        }
    }
    for rq in outstanding {
        finish(rq, &mut sent);
    }
    // Until everything sent is acknowledged (or failed).
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let m = p.get_topology_info().map(|i| i.performance_metrics);
        if let Ok(m) = &m {
            if m["delivery_kept_frames"] == 0.0 || Instant::now() > until {
                sent.failed_posts =
                    (m["delivery_failed"] - m["delivery_failed_requests"]).max(0.0) as u64;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    sent
}
