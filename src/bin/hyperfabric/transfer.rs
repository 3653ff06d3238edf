//! `hyperfabric transfer SRC DST --size N`: moves N bytes from node SRC to node DST of a
//! running fabric, in chunks that SRC's `serve` process sends with `send_data` (two in
//! flight), each answered by DST with the length and CRC-32 of what arrived. With `--verify`
//! each CRC is checked against the pattern's, computed here. A progress bar with throughput
//! and ETA on a terminal, a plain line a second otherwise, nothing but the summary with
//! `--json`.

use super::attach::{Client, FabricArgs};
use super::ops::{self, Outcome, SendOp};
use hyperfabric::fabric::SendOptions;
use hyperfabric::{Error, ErrorKind};
use serde::Serialize;
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct TransferArgs {
    /// The sending node (hosted by `hyperfabric serve`).
    src: String,
    /// The receiving node.
    dst: String,
    #[command(flatten)]
    fabric: FabricArgs,
    /// Bytes to move: a number with an optional unit (KiB, MiB, GiB, kB, MB, GB).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    size: u64,
    /// Bytes of each `send_data` (a unit as for `--size`).
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    chunk: u64,
    /// Compress each chunk (lz4; kept only when smaller).
    #[arg(long)]
    compress: bool,
    /// Encrypt each chunk (AES-256-GCM with the fabric key: `fabric.key_file`).
    #[arg(long)]
    encrypt: bool,
    /// Priority of the chunks.
    #[arg(long, default_value = "medium")]
    priority: String,
    /// Check the CRC-32 of every chunk that arrived against the bytes sent.
    #[arg(long)]
    verify: bool,
    /// How long one chunk may take, ms.
    #[arg(long, default_value_t = 30_000)]
    timeout: u64,
    /// The summary as one JSON object, and no progress display.
    #[arg(long)]
    pub json: bool,
}

/// Parses `4096`, `4KiB`, `1.5GB`, `256MiB`...
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a size (a number and an optional unit)"))?;
    let mul: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KiB" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        u => {
            return Err(format!(
                "unknown unit {u:?} in {s:?} (B, KiB, MiB, GiB, kB, MB, GB)"
            ))
        }
    };
    let v = n * mul;
    if !v.is_finite() || v < 0.0 || v > (1u64 << 50) as f64 || v.fract() != 0.0 {
        return Err(format!("{s:?} is not a whole number of bytes up to 1 PiB"));
    }
    Ok(v as u64)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

#[derive(Serialize)]
struct Summary {
    source: String,
    destination: String,
    bytes: u64,
    chunks: u64,
    chunk_size: u64,
    seconds: f64,
    mib_per_s: f64,
    gbit_per_s: f64,
    compress: bool,
    encrypt: bool,
    priority: String,
    /// Chunks whose CRC-32 matched, when verified.
    verified: Option<u64>,
    mismatches: u64,
}

/// What shows progress: a bar redrawn in place on a terminal, a line a second otherwise.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { next: Instant, total: u64 },
    Quiet,
}

impl Progress {
    fn new(total: u64, json: bool) -> Progress {
        if json {
            return Progress::Quiet;
        }
        if std::io::stdout().is_terminal() {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stdout(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .expect("a valid template"),
            );
            return Progress::Bar(bar);
        }
        Progress::Lines {
            next: Instant::now() + Duration::from_secs(1),
            total,
        }
    }

    fn update(&mut self, done: u64, started: Instant) {
        match self {
            Progress::Bar(b) => b.set_position(done),
            Progress::Lines { next, total } if Instant::now() >= *next => {
                *next += Duration::from_secs(1);
                let secs = started.elapsed().as_secs_f64();
                let rate = done as f64 / secs.max(1e-9);
                let eta = (*total - done) as f64 / rate.max(1.0);
                println!(
                    "{} / {} ({:.0}%), {:.1} MiB/s, ETA {eta:.1} s",
                    mib(done),
                    mib(*total),
                    done as f64 * 100.0 / (*total).max(1) as f64,
                    rate / (1024.0 * 1024.0)
                );
            }
            _ => {}
        }
    }

    fn finish(&self) {
        if let Progress::Bar(b) = self {
            b.finish();
        }
    }
}

pub fn run(args: TransferArgs) -> Result<(), Error> {
    let priority = ops::priority(&args.priority)?;
    if args.timeout == 0 || args.timeout > ops::MAX_TIMEOUT_MS {
        return Err(Error::InvalidArgument(format!(
            "--timeout must be 1..={} ms",
            ops::MAX_TIMEOUT_MS
        )));
    }
    if args.chunk == 0 || args.chunk as usize > hyperfabric::engine::max_message() {
        return Err(Error::InvalidArgument(format!(
            "--chunk must be 1..={} bytes",
            hyperfabric::engine::max_message()
        )));
    }
    let c = Client::attach_to(&args.fabric, Some(&args.src), false)?;
    let total = args.size;
    let chunks = total.div_ceil(args.chunk);
    let seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let op = |tag: u64| SendOp {
        tag,
        to: args.dst.clone(),
        size: (total - tag * args.chunk).min(args.chunk) as usize,
        seed: seed.wrapping_add(tag.wrapping_mul(0x1000_0000_01b3)),
        compress: args.compress,
        encrypt: args.encrypt,
        priority: priority.to_string(),
        timeout_ms: args.timeout,
    };
    let mut progress = Progress::new(total, args.json);
    let started = Instant::now();
    let (mut next, mut done, mut verified, mut mismatches) = (0u64, 0u64, 0u64, 0u64);
    let mut flight: VecDeque<u64> = VecDeque::new();
    let mut pattern = Vec::new();
    while done < total || next < chunks {
        if c.stopped() {
            progress.finish();
            return Err(Error::InvalidArgument("interrupted".into()));
        }
        while flight.len() < 2 && next < chunks {
            if let Err(e) = ask(&c, &args.src, &op(next)) {
                progress.finish();
                // A source that went away while taking the request: said as when it goes
                // away while its outcome is awaited.
                if e.kind() == ErrorKind::NodeNotFound || !c.is_up(&args.src) {
                    return Err(Error::NodeNotFound(format!(
                        "{} went down during the transfer (chunk {next} not taken)",
                        args.src
                    )));
                }
                return Err(e);
            }
            flight.push_back(next);
            next += 1;
        }
        let Some(tag) = flight.pop_front() else { break };
        let out = outcome(&c, &args.src, tag, args.timeout)?;
        if !out.ok {
            progress.finish();
            return Err(Error::io(
                format!("chunk {tag} from {} to {}", args.src, args.dst),
                std::io::Error::other(out.error.unwrap_or_default()),
            ));
        }
        if args.verify {
            let o = op(tag);
            ops::pattern_into(o.seed, o.size, &mut pattern);
            let want = (o.size as u64, crc32fast::hash(&pattern));
            if (out.received_len, out.received_crc) == (Some(want.0), Some(want.1)) {
                verified += 1;
            } else {
                mismatches += 1;
            }
        }
        done += out.bytes as u64;
        progress.update(done, started);
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let s = Summary {
        source: args.src.clone(),
        destination: args.dst.clone(),
        bytes: done,
        chunks,
        chunk_size: args.chunk,
        seconds: secs,
        mib_per_s: done as f64 / (1024.0 * 1024.0) / secs.max(1e-9),
        gbit_per_s: done as f64 * 8.0 / 1e9 / secs.max(1e-9),
        compress: args.compress,
        encrypt: args.encrypt,
        priority: priority.to_string(),
        verified: args.verify.then_some(verified),
        mismatches,
    };
    if args.json {
        super::print_json(&s)?;
    } else {
        println!(
            "transferred {} from {} to {} in {:.2} s: {:.1} MiB/s ({:.2} Gbit/s), {} chunks",
            mib(s.bytes),
            s.source,
            s.destination,
            s.seconds,
            s.mib_per_s,
            s.gbit_per_s,
            s.chunks
        );
        if args.verify {
            println!("verified: {verified} of {chunks} chunks' CRC-32 match");
        }
    }
    if mismatches > 0 {
        return Err(Error::io(
            "verifying the transfer",
            std::io::Error::other(format!(
                "{mismatches} of {chunks} chunks arrived different from what was sent"
            )),
        ));
    }
    Ok(())
}

/// Asks `src`'s process to send one chunk.
fn ask(c: &Client, src: &str, op: &SendOp) -> Result<(), Error> {
    let answer = c.p.send_data(
        &c.node,
        src,
        &[],
        &SendOptions {
            metadata: Some(ops::op_metadata(op)),
            ..Default::default()
        },
    )?;
    if answer != [0u8; 12] {
        return Err(Error::InvalidArgument(format!(
            "node {src:?} does not take operations: is it hosted by `hyperfabric serve`?"
        )));
    }
    Ok(())
}

/// Waits for the outcome of chunk `tag`.
fn outcome(c: &Client, src: &str, tag: u64, timeout_ms: u64) -> Result<Outcome, Error> {
    let until = Instant::now() + Duration::from_millis(timeout_ms) + Duration::from_secs(5);
    let mut looked = Instant::now();
    loop {
        if c.stopped() {
            return Err(Error::InvalidArgument("interrupted".into()));
        }
        // A source that went away sends no outcome: said at once, not after the timeout.
        if looked.elapsed() >= Duration::from_millis(500) {
            looked = Instant::now();
            if !c.is_up(src) {
                return Err(Error::NodeNotFound(format!(
                    "{src} went down during the transfer (chunk {tag} unfinished)"
                )));
            }
        }
        let m = match c.p.recv(&c.node, Duration::from_millis(100)) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::Timeout && Instant::now() < until => continue,
            Err(e) if e.kind() == ErrorKind::Timeout => {
                return Err(Error::Timeout(format!(
                    "no outcome of chunk {tag} from {src} within {timeout_ms} ms"
                )))
            }
            Err(e) => return Err(e),
        };
        if m.source != src {
            continue;
        }
        match serde_json::from_slice::<Outcome>(&m.data) {
            Ok(o) if o.tag == tag => return Ok(o),
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.5").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("").is_err());
    }
}
