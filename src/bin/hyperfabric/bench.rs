//! `hyperfabric bench`: this process and a worker it spawns, pinned to two cores, measure
//! through the public API; the floor is measured right before and after each size.
use super::floor::{cache_line_floor_ns, memcpy_gbytes_per_s, placement, quantile, Stopwatch};
use super::page_buf::PageBuf;
use super::{bench_dir, bench_tcp, table, Api, BenchKind, Transport};
use hyperfabric::fabric::{HyperFabricProtocol, IdleStrategy, ProtocolConfig, SendOptions};
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::Error;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Instant;

pub(super) fn protocol(
    fabric: &str,
    core: Option<usize>,
    tcp: Option<(
        hyperfabric::fabric::TcpConfig,
        hyperfabric::codec::FabricKey,
    )>,
) -> Result<HyperFabricProtocol, Error> {
    let (tcp, key) = tcp.unzip();
    let mut config = ProtocolConfig {
        fabric_name: Some(fabric.into()),
        idle: IdleStrategy::Adaptive,
        engine_core: core,
        tcp,
        key,
        ..Default::default()
    };
    // `--fault-tolerance off`, which the worker inherits through the environment.
    config.options.enable_fault_tolerance =
        std::env::var("HF_BENCH_FAULT_TOLERANCE").as_deref() != Ok("off");
    // `--ml-routing on`, inherited the same way: learned routing, over a configured link.
    if std::env::var("HF_BENCH_ML_ROUTING").as_deref() == Ok("on") {
        config.options.enable_ml_routing = true;
        config.links = vec![hyperfabric::topology::LinkSpec::new("bench-a", "bench-b")];
    }
    HyperFabricProtocol::with_config(config)
}

pub(super) fn node(id: &str) -> Result<NodeSignature, Error> {
    NodeSignature::new(id, HardwareType::CpuServer, 100.0, 0)
}

/// Sends one message of `len` bytes on a direct channel: a buffer of `pool` when given (its
/// bytes written when `touch`), else the first `len` bytes of `inline`; spins while the
/// ring is full.
pub(super) fn send_direct(
    tx: &mut hyperfabric::transport::direct::Sender,
    pool: Option<&hyperfabric::buffer::BufferManager>,
    len: usize,
    inline: &[u8],
    touch: bool,
) -> Result<(), Error> {
    if let Some(pool) = pool {
        let mut b = pool.acquire()?;
        b.set_len(len)?;
        if touch {
            write_all(b.as_mut_slice());
        }
        let mut b = Some(b);
        while !tx.try_send_buffer(&mut b)? {
            std::hint::spin_loop();
        }
    } else {
        while !tx.try_send(&inline[..len])? {
            std::hint::spin_loop();
        }
    }
    Ok(())
}

/// One direct-channel round trip of `data` (a buffer of `pool` when it is larger than
/// the inline limit).
fn direct_round_trip(
    tx: &mut hyperfabric::transport::direct::Sender,
    rx: &mut hyperfabric::fabric::DirectReceiver,
    data: &[u8],
    pool: &Option<hyperfabric::buffer::BufferManager>,
    touch: bool,
) -> Result<(), Error> {
    // The clock is read only once a reply is slow: a read costs as much as a message.
    let mut deadline = None;
    send_direct(tx, pool.as_ref(), data.len(), data, touch)?;
    let mut spins = 0u32;
    loop {
        if let Some(n) = rx.try_recv_with(|_, m| {
            if touch {
                std::hint::black_box(read_all(m.bytes()));
            }
            m.bytes().len()
        }) {
            debug_assert_eq!(n, data.len());
            return Ok(());
        }
        spins = spins.wrapping_add(1);
        if spins % 4096 == 0 {
            let now = Instant::now();
            if now > *deadline.get_or_insert(now + std::time::Duration::from_secs(5)) {
                return Err(Error::Timeout(
                    "no answer through the direct channel".into(),
                ));
            }
        }
        std::hint::spin_loop();
    }
}

/// Writes every byte (a new value each time).
pub(super) fn write_all(b: &mut [u8]) {
    let v = b.first().map_or(0, |x| x.wrapping_add(1));
    b.fill(v);
}

/// What touching costs in a touched round trip, per one-way trip (median of `reps`): a
/// round trip writes the bytes `writes` times (the sender; the direct channel's echo
/// writes its pool buffer too) and reads them twice (each side what it received). It is
/// the part of a touched figure that ping-pongs which never touch their buffers in the
/// loop (`ucx_perftest`, the usual MPI ping-pong) do not spend. A lower bound: measured on
/// this thread with warm lines, where in the round trip the peer's copy has just taken
/// them.
fn touch_cost_ns(
    watch: &Stopwatch,
    (data, inbox): (&mut [u8], &[u8]),
    writes: usize,
    reps: usize,
) -> f64 {
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = watch.ticks();
        for _ in 0..writes {
            write_all(data);
        }
        std::hint::black_box(read_all(inbox));
        std::hint::black_box(read_all(data));
        t.push(watch.ns_between(t0, watch.ticks()) / 2.0);
    }
    t.sort_by(f64::total_cmp);
    quantile(&t, 0.5)
}

/// Reads every byte (a sum the optimiser cannot drop).
pub(super) fn read_all(b: &[u8]) -> u64 {
    // Word by word (vectorised): reading costs what the memory traffic costs.
    let words = b.chunks_exact(8);
    let tail = words.remainder().iter().fold(0u64, |a, &x| a ^ x as u64);
    words.fold(tail, |a, w| {
        a ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))
    })
}

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn parse_list(s: &str, what: &str) -> Result<Vec<usize>, Error> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| Error::InvalidArgument(format!("{what}: {x:?} is not a number")))
        })
        .collect()
}

pub fn run(kind: BenchKind) -> Result<(), Error> {
    let (args, latency) = match &kind {
        BenchKind::Latency(a) => (a, true),
        BenchKind::Bandwidth(a) => (a, false),
    };
    // Read by `protocol`, here and in the worker (which inherits it), before any thread.
    std::env::set_var("HF_BENCH_FAULT_TOLERANCE", &args.fault_tolerance);
    std::env::set_var("HF_BENCH_ML_ROUTING", &args.ml_routing);
    let sizes = parse_list(&args.sizes, "--sizes")?;
    let cores = parse_list(&args.cores, "--cores")?;
    let cpus = hyperfabric::sys::available_cpus();
    let [a, b] = cores[..] else {
        return Err(Error::InvalidArgument(
            "--cores takes two cores, e.g. 0,1".into(),
        ));
    };
    if a >= cpus || b >= cpus || a == b {
        return Err(Error::InvalidArgument(format!(
            "--cores must be two different cores below {cpus}"
        )));
    }
    let max = hyperfabric::engine::max_message();
    if let Some(s) = sizes.iter().find(|&&s| s > max) {
        return Err(Error::InvalidArgument(format!(
            "size {s} exceeds the largest single frame ({max} bytes)"
        )));
    }
    if args.iters == 0 {
        return Err(Error::InvalidArgument("--iters must be positive".into()));
    }
    // A peers table that does not read fails before the measurement, not after it.
    let peers = match &args.peers {
        Some(t) => super::plot::read_peers(t)?,
        None => Vec::new(),
    };
    // Latency: both ends write and read every byte (post, send); bandwidth: the receiver
    // reads every byte, as a receive into a buffer would (the sender's bytes are not rewritten
    // per message, as in tag_bw and osu_bw).
    let touch = if latency {
        args.touch || (args.api != Api::Direct && !args.untouched)
    } else {
        !args.untouched
    };
    let tcp = args.transport == Transport::Tcp;
    if tcp && matches!(args.api, Api::Direct | Api::Mem) && latency {
        return Err(Error::InvalidArgument(
            "--transport tcp measures --api post or --api send (direct channels and registered \
             memory are paths of one host)"
                .into(),
        ));
    }
    let key_hex = super::random_key_hex()?;
    let fabric = format!("bench-{}", std::process::id());
    // Declared before the protocol and the worker: removed after both, also on an error.
    let dir = bench_dir::FabricDir::new(&fabric);
    let p = protocol(
        &fabric,
        None,
        tcp.then(|| -> Result<_, Error> {
            Ok((
                bench_tcp::config(true),
                hyperfabric::codec::FabricKey::from_hex(&key_hex)?,
            ))
        })
        .transpose()?,
    )?;
    p.register_node(node("bench-a")?)?;
    let connect = p.listen_address().map(|a| a.to_string());
    let mut child = super::bench_worker::worker_command()?
        .args([
            "worker",
            "--fabric",
            &fabric,
            "--node",
            "bench-b",
            "--core",
            &b.to_string(),
            "--api",
            match (latency, args.api) {
                (true, Api::Post) | (false, _) => "post",
                (true, Api::Direct) => "direct",
                (true, Api::Mem) => "mem",
                _ => "send",
            },
        ])
        .args(touch.then_some("--touch"))
        .args((!latency).then_some("--drain"))
        .args((latency && args.by_name).then_some("--by-name"))
        .args(connect.iter().flat_map(|a| ["--connect", a.as_str()]))
        .env(bench_tcp::KEY_ENV, &key_hex)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("starting the bench worker", e))?;
    let stdout = child.stdout.take().expect("piped");
    let worker = Worker(child);
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.trim() == "ready");
    if !ready {
        return Err(Error::InvalidArgument(
            "the bench worker did not start".into(),
        ));
    }
    if tcp {
        // The worker's nodes reach this process in its announcement, after it connected.
        let until = Instant::now() + std::time::Duration::from_secs(5);
        while p.transport_to("bench-b").ok() != Some("tcp") {
            if Instant::now() > until {
                return Err(Error::Timeout(
                    "the bench worker's node came not over TCP".into(),
                ));
            }
            p.progress();
        }
    }
    hyperfabric::sys::pin_current_thread(a)?;
    let watch = Stopwatch::new();
    let opts = SendOptions::default();
    let mut direct = if latency && args.api == Api::Direct {
        Some((
            p.open_sender("bench-a", "bench-b")?,
            p.open_receiver("bench-a")?,
        ))
    } else {
        None
    };
    let mut ep = p.endpoint("bench-a", "bench-b")?;
    let mut rows = Vec::new();
    for &size in &sizes {
        let mut data = PageBuf::new(size, 0x5a);
        let mut inbox = PageBuf::new(size, 0);
        // The sender's bytes, registered once (they stay where they are).
        let region = match args.api {
            // SAFETY: `data` lives, unmoved, until after the region (declared after it).
            Api::Mem => Some(unsafe {
                hyperfabric::buffer::MemoryRegion::new(data.as_ptr(), data.len().max(1))
            }?),
            _ => None,
        };
        // Let the worker's engine go idle (it sleeps after 1 ms) before measuring the floor.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let before = cache_line_floor_ns(a, b, 20_000)?;
        let pool = if size > hyperfabric::transport::direct::max_inline() {
            Some(p.create_buffer_manager(16, size)?)
        } else {
            None
        };
        let mut round_trip = |p: &HyperFabricProtocol| -> Result<(), Error> {
            match (args.api, direct.as_mut()) {
                (Api::Direct, Some((tx, rx))) => {
                    if touch && pool.is_none() {
                        write_all(&mut data);
                    }
                    direct_round_trip(tx, rx, &data, &pool, touch)
                }
                (Api::Mem, _) => {
                    if touch {
                        write_all(&mut data);
                    }
                    let region = region.as_ref().expect("registered for --api mem");
                    let sent = ep.post_mem(region, 0, data.len(), &opts)?;
                    let back = p.recv_into("bench-a", opts.timeout, &mut inbox)?;
                    if touch {
                        std::hint::black_box(read_all(&inbox[..back.len]));
                    }
                    sent.wait()?;
                    Ok(())
                }
                (Api::Post, _) => {
                    if touch {
                        write_all(&mut data);
                    }
                    if args.by_name {
                        p.post("bench-a", "bench-b", &data, &opts)?;
                    } else {
                        ep.post(&data)?;
                    }
                    let back = p.recv_into("bench-a", opts.timeout, &mut inbox)?;
                    if touch {
                        std::hint::black_box(read_all(&inbox[..back.len]));
                    }
                    debug_assert_eq!(back.len, data.len());
                    Ok(())
                }
                _ => {
                    if touch {
                        write_all(&mut data);
                    }
                    let back = if args.by_name {
                        p.send_data("bench-a", "bench-b", &data, &opts)?
                    } else {
                        ep.send_data(&data, &opts)?
                    };
                    if touch {
                        std::hint::black_box(read_all(&back));
                    }
                    Ok(())
                }
            }
        };
        let row = if latency {
            for _ in 0..args.iters / 10 + 1 {
                round_trip(&p)?;
            }
            let mut one_way = Vec::with_capacity(args.iters);
            for _ in 0..args.iters {
                let t0 = watch.ticks();
                round_trip(&p)?;
                one_way.push(watch.ns_between(t0, watch.ticks()) / 2.0);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            let after = cache_line_floor_ns(a, b, 20_000)?;
            one_way.sort_by(f64::total_cmp);
            let floor = (before + after) / 2.0;
            let p50 = quantile(&one_way, 0.5);
            let touch_ns = if touch {
                // The direct channel's pool buffers are written by both ends.
                let writes = if args.api == Api::Direct && pool.is_some() {
                    2
                } else {
                    1
                };
                touch_cost_ns(&watch, (&mut data, &inbox), writes, args.iters / 10 + 1)
            } else {
                0.0
            };
            serde_json::json!({
                "size": size, "p50_ns": p50.round(), "p99_ns": quantile(&one_way, 0.99).round(),
                "floor_ns": floor.round(), "ratio": (p50 / floor * 100.0).round() / 100.0,
                "placement": placement(before, after),
                "touch": touch,
                "touch_ns": touch_ns.round(),
                "by_name": args.by_name,
                "api": match args.api {
                    Api::Post => "post",
                    Api::Mem => "post_mem",
                    Api::Send => "send_data",
                    Api::Direct => "direct",
                },
            })
        } else {
            let batch = vec![&data[..]; args.batch.max(1)];
            let t0 = Instant::now();
            let mut sent = 0;
            while sent < args.iters {
                let n = batch.len().min(args.iters - sent);
                if n == 1 {
                    ep.post(&data)?;
                } else {
                    ep.post_many(&batch[..n])?;
                }
                sent += n;
            }
            // A request behind the posts, in the same ring, returns when all were taken.
            ep.send_data(b"", &opts)?;
            let secs = t0.elapsed().as_secs_f64();
            let gbs = (args.iters * size) as f64 / secs / 1e9;
            let rate = args.iters as f64 / secs / 1e6;
            std::thread::sleep(std::time::Duration::from_millis(5));
            let after = cache_line_floor_ns(a, b, 20_000)?;
            let memcpy = memcpy_gbytes_per_s(size.max(64));
            serde_json::json!({
                "size": size, "gbytes_per_s": (gbs * 1000.0).round() / 1000.0,
            "million_msgs_per_s": (rate * 1000.0).round() / 1000.0, "batch": args.batch,
                "memcpy_gbytes_per_s": (memcpy * 1000.0).round() / 1000.0,
                "ratio": (gbs / memcpy * 1000.0).round() / 1000.0,
                "floor_ns": ((before + after) / 2.0).round(), "placement": placement(before, after),
            })
        };
        rows.push(row);
    }
    let mode = p.transport_mode();
    let zero_copy = p.tcp_zero_copy();
    drop(worker);
    drop(p);
    drop(dir);
    if tcp {
        bench_tcp::add_baselines(&mut rows, mode, (a, b), args.iters, latency)?;
    }
    if let Some(path) = &args.plot {
        let label = format!(
            "{}{}",
            rows.first()
                .and_then(|r| r["api"].as_str())
                .unwrap_or(if latency { "latency" } else { "post" }),
            if tcp { " over TCP" } else { "" }
        );
        if latency {
            super::plot::latency(path, &rows, &label, peers)?;
        } else {
            super::plot::bandwidth(path, &rows, &label)?;
        }
    }
    if args.json {
        for r in &rows {
            println!("{r}");
        }
    } else {
        let keys = bench_tcp::columns(tcp, latency);
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                keys.iter()
                    .map(|k| r[*k].to_string().trim_matches('"').to_string())
                    .collect()
            })
            .collect();
        table(&keys, &cells);
        if let Some((from, z)) = zero_copy {
            match from {
                Some(min) => println!(
                    "zero-copy sends (flights from {min} B): {} sent ({} from registered \
                     buffers{}), {} copied by the kernel anyway, {} connections turned them off",
                    z.sends,
                    z.fixed,
                    if z.registered {
                        ""
                    } else {
                        ", none registered"
                    },
                    z.copied,
                    z.turned_off
                ),
                None => println!("zero-copy sends: off"),
            }
        }
    }
    Ok(())
}
