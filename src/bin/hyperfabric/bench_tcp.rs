//! The TCP side of `hyperfabric bench --transport tcp`: the key and addresses the two
//! processes share, and the plain-socket baselines measured in the same run (a blocking
//! ping-pong, a busy-polled one, and a stream, blocking and busy-polled), between this
//! process and a socket echo process on the same two cores.

use super::floor::{quantile, Stopwatch};
use super::page_buf::PageBuf;
use hyperfabric::codec::FabricKey;
use hyperfabric::fabric::TcpConfig;
use hyperfabric::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

/// The environment variable that carries the fabric key to the bench worker.
pub const KEY_ENV: &str = "HF_BENCH_KEY";

/// The bench key from the environment (the worker's side).
pub fn key_from_env() -> Result<FabricKey, Error> {
    FabricKey::from_hex(&std::env::var(KEY_ENV).unwrap_or_default())
}

/// TCP for a bench process: the parent listens on loopback, the worker dials it; nodes of
/// this host go over TCP too.
pub fn config(listen: bool) -> TcpConfig {
    TcpConfig {
        listen: listen.then(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        force: true,
        ..Default::default()
    }
}

/// Modes of a baseline connection (its first byte).
const BLOCKING: u8 = b'B';
const BUSY: u8 = b'P';
const STREAM: u8 = b'S';
const BUSY_STREAM: u8 = b'T';

/// The socket echo process: serves baseline connections on core `core` until its stdin
/// closes.
pub fn socket_worker(core: usize) -> Result<(), Error> {
    hyperfabric::sys::pin_current_thread(core)?;
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("binding", e))?;
    let port = l.local_addr().map_err(|e| Error::io("binding", e))?.port();
    println!("ready {port}");
    std::io::stdout()
        .flush()
        .map_err(|e| Error::io("stdout", e))?;
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    for s in l.incoming() {
        let mut s = s.map_err(|e| Error::io("accepting", e))?;
        s.set_nodelay(true).map_err(|e| Error::io("nodelay", e))?;
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).is_err() {
            continue;
        }
        let size = u64::from_le_bytes(head[1..9].try_into().expect("8")) as usize;
        let _ = match head[0] {
            STREAM => stream_sink(&mut s, size, false),
            BUSY_STREAM => stream_sink(&mut s, size, true),
            mode => echo(&mut s, size, mode == BUSY),
        };
    }
    Ok(())
}

fn read_full(s: &mut TcpStream, buf: &mut [u8], busy: bool) -> std::io::Result<()> {
    if !busy {
        return s.read_exact(buf);
    }
    let mut at = 0;
    while at < buf.len() {
        match s.read(&mut buf[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn echo(s: &mut TcpStream, size: usize, busy: bool) -> std::io::Result<()> {
    s.set_nonblocking(busy)?;
    let mut buf = PageBuf::new(size.max(1), 0);
    loop {
        read_full(s, &mut buf[..size], busy)?;
        write_full(s, &buf[..size])?;
    }
}

fn write_full(s: &mut TcpStream, mut b: &[u8]) -> std::io::Result<()> {
    while !b.is_empty() {
        match s.write(b) {
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads `total` bytes (1 MiB at a time; `busy`: without ever sleeping), then answers one.
fn stream_sink(s: &mut TcpStream, total: usize, busy: bool) -> std::io::Result<()> {
    s.set_nonblocking(busy)?;
    let mut buf = PageBuf::new(1 << 20, 0);
    let mut got = 0;
    while got < total {
        match s.read(&mut buf) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    write_full(s, &[1])
}

/// The baseline process and its port.
pub struct Baseline {
    child: Child,
    port: u16,
}

impl Drop for Baseline {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Baseline {
    /// Starts the socket echo process pinned to `core`.
    pub fn start(core: usize) -> Result<Baseline, Error> {
        let mut child =
            Command::new(std::env::current_exe().map_err(|e| Error::io("locating the binary", e))?)
                .args(["socket-worker", "--core", &core.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| Error::io("starting the socket baseline", e))?;
        let out = child.stdout.take().expect("piped");
        let line = BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("ready "))
            .ok_or_else(|| Error::InvalidArgument("the socket baseline did not start".into()))?;
        let port = line[6..]
            .trim()
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("socket baseline said {line:?}")))?;
        Ok(Baseline { child, port })
    }

    fn connect(&self, mode: u8, size: usize) -> Result<TcpStream, Error> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| Error::io("connecting to the socket baseline", e))?;
        s.set_nodelay(true).map_err(|e| Error::io("nodelay", e))?;
        let mut head = vec![mode];
        head.extend_from_slice(&(size as u64).to_le_bytes());
        s.write_all(&head)
            .map_err(|e| Error::io("socket baseline", e))?;
        Ok(s)
    }

    /// Median one-way latency (round trip / 2) of `size`-byte ping-pongs, blocking or
    /// busy-polled at both ends.
    pub fn latency(&self, size: usize, iters: usize, busy: bool) -> Result<f64, Error> {
        let mut s = self.connect(if busy { BUSY } else { BLOCKING }, size)?;
        s.set_nonblocking(busy)
            .map_err(|e| Error::io("socket", e))?;
        let watch = Stopwatch::new();
        let mut buf = PageBuf::new(size.max(1), 0x5a);
        let io = |e| Error::io("socket baseline", e);
        for _ in 0..iters / 10 + 1 {
            write_full(&mut s, &buf[..size]).map_err(io)?;
            read_full(&mut s, &mut buf[..size], busy).map_err(io)?;
        }
        let mut one_way = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t0 = watch.ticks();
            write_full(&mut s, &buf[..size]).map_err(io)?;
            read_full(&mut s, &mut buf[..size], busy).map_err(io)?;
            one_way.push(watch.ns_between(t0, watch.ticks()) / 2.0);
        }
        one_way.sort_by(f64::total_cmp);
        Ok(quantile(&one_way, 0.5))
    }

    /// GB/s of `iters` writes of `size` bytes, until the receiver read them all; `busy`:
    /// neither end ever sleeps (non-blocking calls retried at once, as a busy-polling
    /// transport does).
    pub fn stream(&self, size: usize, iters: usize, busy: bool) -> Result<f64, Error> {
        let total = size * iters;
        let mut s = self.connect(if busy { BUSY_STREAM } else { STREAM }, total)?;
        s.set_nonblocking(busy)
            .map_err(|e| Error::io("socket", e))?;
        let io = |e| Error::io("socket baseline", e);
        let buf = PageBuf::new(size, 0x5a);
        let t0 = std::time::Instant::now();
        for _ in 0..iters {
            write_full(&mut s, &buf).map_err(io)?;
        }
        let mut ack = [0u8; 1];
        read_full(&mut s, &mut ack, busy).map_err(io)?;
        Ok(total as f64 / t0.elapsed().as_secs_f64() / 1e9)
    }
}

/// Adds to each row of a TCP run its transport, the io_uring receive mode, and the socket
/// baselines of its size, measured now on the same cores (`cores`: this process, then the
/// baseline process), with the hardware floor around them.
pub fn add_baselines(
    rows: &mut [serde_json::Value],
    mode: Option<String>,
    (a, b): (usize, usize),
    iters: usize,
    latency: bool,
) -> Result<(), Error> {
    let base = Baseline::start(b)?;
    hyperfabric::sys::pin_current_thread(a)?;
    for row in rows.iter_mut() {
        let size = row["size"].as_u64().unwrap_or(0) as usize;
        row["transport"] = "tcp".into();
        row["io_uring"] = mode.clone().unwrap_or_default().into();
        if latency {
            let busy = base.latency(size, iters, true)?;
            let blocking = base.latency(size, iters, false)?;
            let p50 = row["p50_ns"].as_f64().unwrap_or(0.0);
            row["socket_busy_p50_ns"] = busy.round().into();
            row["socket_blocking_p50_ns"] = blocking.round().into();
            row["vs_busy_socket"] = ((p50 / busy * 100.0).round() / 100.0).into();
        } else {
            let gbs = base.stream(size, iters, false)?;
            let busy = base.stream(size, iters, true)?;
            let ours = row["gbytes_per_s"].as_f64().unwrap_or(0.0);
            row["socket_gbytes_per_s"] = ((gbs * 1000.0).round() / 1000.0).into();
            row["socket_busy_gbytes_per_s"] = ((busy * 1000.0).round() / 1000.0).into();
            row["vs_socket"] = ((ours / gbs * 100.0).round() / 100.0).into();
            row["vs_busy_socket"] = ((ours / busy * 100.0).round() / 100.0).into();
        }
    }
    Ok(())
}

/// The columns of a bench table.
pub fn columns(tcp: bool, latency: bool) -> Vec<&'static str> {
    match (tcp, latency) {
        (true, true) => vec![
            "size",
            "p50_ns",
            "p99_ns",
            "socket_busy_p50_ns",
            "socket_blocking_p50_ns",
            "vs_busy_socket",
            "floor_ns",
            "io_uring",
        ],
        (true, false) => vec![
            "size",
            "gbytes_per_s",
            "million_msgs_per_s",
            "socket_gbytes_per_s",
            "socket_busy_gbytes_per_s",
            "vs_socket",
            "vs_busy_socket",
            "io_uring",
        ],
        (false, true) => vec![
            "size",
            "p50_ns",
            "p99_ns",
            "floor_ns",
            "ratio",
            "placement",
            "touch",
            "touch_ns",
        ],
        (false, false) => vec![
            "size",
            "gbytes_per_s",
            "million_msgs_per_s",
            "memcpy_gbytes_per_s",
            "ratio",
            "floor_ns",
            "placement",
        ],
    }
}
