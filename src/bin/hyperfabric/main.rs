//! `hyperfabric`: the command-line tool.
//!
//! ```text
//! hyperfabric topo show     [--config FILE] [--json] [--format table|json|yaml|dot] [--fabric NAME]
//! hyperfabric topo path     [--config FILE] [--metric latency|bandwidth|hops] [--max-latency-ns N]
//!                           [--min-bandwidth-gbps X] [--data-type T] [--entangled] [--json] SRC DST
//! hyperfabric topo analyze  [--config FILE] [--json]
//! hyperfabric topo generate fat-tree --k K | dragonfly --a A --p P --h H | torus --x X --y Y
//! hyperfabric config validate FILE
//! hyperfabric config show   [FILE] [--json]
//! hyperfabric config migrate FILE [--output OUT]
//! hyperfabric detect        [--json] [--transport]
//! hyperfabric serve         [--config FILE] [--fabric NAME] [--nodes A,B] [--host H]
//! hyperfabric nodes         [list | status NODE] [--config FILE] [--fabric NAME] [--json]
//! hyperfabric zones        [list | create Z | delete Z | assign Z N | unassign Z N] [--json]
//! hyperfabric ping NODE     [--count N] [--size B] [--interval MS] [--priority P] [--json]
//! hyperfabric transfer SRC DST [--size 1GiB] [--compress] [--encrypt] [--verify] [--json]
//! hyperfabric monitor       [--interval S] [--once] [--json]
//! hyperfabric metrics       [--listen ADDR]
//! hyperfabric diagnose      [--probes N] [--output FILE] [--json]
//! ```
//! Without `--config`, the built-in example AI cluster is used.

use clap::{Args, Parser, Subcommand};
use hyperfabric::config::FabricConfig;
use hyperfabric::Error;
use std::process::ExitCode;

/// The example AI cluster, built in.
const DEFAULT_CONFIG: &str = include_str!("../../../examples/ai-cluster.yaml");

#[derive(Parser)]
#[command(
    name = "hyperfabric",
    version,
    about = "HyperFabric interconnect: topology, routing and hardware tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect a fabric's topology and routes.
    #[command(subcommand)]
    Topo(topo::Topo),
    /// Check configuration files.
    #[command(subcommand)]
    Config(config_cmd::ConfigCmd),
    /// Detect this machine's hardware and print it as node signatures, then what the
    /// kernel's io_uring offers the TCP transport.
    Detect {
        /// Print JSON instead of a table (the node signatures; with `--transport`, the
        /// io_uring features).
        #[arg(long)]
        json: bool,
        /// Only the io_uring features (tried on a real ring and a loopback connection).
        #[arg(long)]
        transport: bool,
    },
    /// Measure latency or bandwidth between two processes pinned to two cores, next to the
    /// hardware floor measured around each size.
    #[command(subcommand)]
    Bench(BenchKind),
    /// Run the example AI cluster across several processes: pings, transfers, priorities,
    /// constraints, topology and bottlenecks. Leaves no files behind.
    Demo {
        /// Fabric configuration; the built-in example AI cluster when absent.
        #[arg(long, short)]
        config: Option<std::path::PathBuf>,
        /// Run across this many hosts, each a network namespace joined to the others by
        /// veth pairs (made and removed by the command; needs root or CAP_NET_ADMIN): the
        /// nodes' host groups are spread over them and every message crosses TCP.
        #[arg(long)]
        hosts: Option<usize>,
    },
    /// Internal: a process of `demo`.
    #[command(hide = true)]
    DemoWorker {
        #[arg(long)]
        fabric: String,
        #[arg(long)]
        nodes: String,
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// The host of the configuration's `hosts` section this process is.
        #[arg(long)]
        host: Option<String>,
    },
    /// Internal: the peer process of `bench`.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        fabric: String,
        #[arg(long)]
        node: String,
        #[arg(long)]
        core: usize,
        #[arg(long, value_enum, default_value_t = Api::Send)]
        api: Api,
        /// Read every byte of each message before answering.
        #[arg(long)]
        touch: bool,
        /// Post: take messages without answering (a bandwidth run).
        #[arg(long)]
        drain: bool,
        /// Post: answer by node names rather than through an endpoint.
        #[arg(long)]
        by_name: bool,
        /// Reach the bench process over TCP at this address (its key in the environment).
        #[arg(long)]
        connect: Option<std::net::SocketAddr>,
    },
    /// Send messages between two processes through two forwarders that lose, duplicate and
    /// damage frames, one of them killed and restarted every few seconds; check that every
    /// message arrived exactly once, whole and in order, or its sender was told it failed.
    Soak(soak::SoakArgs),
    /// Internal: a process of `soak`.
    #[command(hide = true)]
    SoakWorker(soak::WorkerArgs),
    /// Host nodes of a configuration until SIGINT or SIGTERM: a running fabric the other
    /// commands attach to.
    Serve(serve::ServeArgs),
    /// The nodes of a running fabric: state, since when, process, host.
    Nodes(nodes::NodesArgs),
    /// The zones of a running fabric: list, create, delete, assign, unassign.
    Zones(zones::ZonesArgs),
    /// Probe a node of a running fabric, ping(8) style: path, hops, round trip.
    Ping(ping::PingArgs),
    /// Move bytes between two nodes of a running fabric, with progress and verification.
    Transfer(transfer::TransferArgs),
    /// A live view of a running fabric: per node and per link traffic, rates, queues,
    /// errors, drops, route epochs.
    Monitor(monitor::MonitorArgs),
    /// A running fabric's counters in the Prometheus text format, printed or served over
    /// HTTP (`--listen`).
    Metrics(metrics::MetricsArgs),
    /// A report on a running fabric: reachability, latency and bandwidth per path against the
    /// configured figures, bottlenecks, configuration drift, routing tables; exits non-zero
    /// when something is wrong.
    Diagnose(diagnose::DiagnoseArgs),
    /// Internal: the plain-socket baseline of `bench --transport tcp`.
    #[command(hide = true)]
    SocketWorker {
        #[arg(long)]
        core: usize,
    },
}

/// What carries a bench's messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Transport {
    /// Shared memory between the two processes (the host's path).
    Shm,
    /// TCP over loopback through the io_uring transport (the path between hosts), beside a
    /// plain socket ping-pong and stream measured in the same run.
    Tcp,
}

/// Which calls a latency run makes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Api {
    /// `post` there, `recv` there, `post` back, `recv` back (MPI_Send/MPI_Recv style).
    Post,
    /// `send_data`, answered by the peer's `on_receive` handler.
    Send,
    /// `post_mem` from registered memory there, `recv_into` there, `post_mem` back (the
    /// receiver copies the bytes once, from the sender's memory), waiting for each send's
    /// completion before its buffer is written again.
    Mem,
    /// Direct channels (the lock-free fast path): inline up to the ring's limit, larger
    /// sizes as zero-copy buffers of a shared pool (filled once, not rewritten per message).
    Direct,
}

#[derive(Subcommand)]
enum BenchKind {
    /// Ping-pong (osu_latency style, `post`/`recv` or `send_data`): one-way latency =
    /// round trip / 2.
    Latency(BenchArgs),
    /// Streaming through post: GB/s next to memcpy.
    Bandwidth(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Message sizes in bytes, comma-separated.
    #[arg(long, default_value = "8,64,512,4096,65536")]
    sizes: String,
    /// Measured iterations per size (a tenth more are run first as warm-up).
    #[arg(long, default_value_t = 10_000)]
    iters: usize,
    /// The two cores: this process, then the peer.
    #[arg(long, default_value = "0,1")]
    cores: String,
    /// One JSON object per size.
    #[arg(long)]
    json: bool,
    /// Latency: ping-pong through direct channels (the fast path), `post`/`recv`, or
    /// `send_data` and a handler.
    #[arg(long, value_enum, default_value_t = Api::Direct)]
    api: Api,
    /// Latency with `post` and `send`: skip writing every byte before each send and reading
    /// every byte of what arrives (both ends touch the bytes by default; `direct` never does:
    /// compare it with zero-copy transports such as iceoryx2). Bandwidth: the receiver skips
    /// reading what arrives (it reads every byte by default).
    #[arg(long, conflicts_with = "touch")]
    untouched: bool,
    /// Write every byte before each send and read every byte received, also for `direct`
    /// (the default for `post` and `send`).
    #[arg(long)]
    touch: bool,
    /// Bandwidth: messages per `post_many` call (1: one `post` per message).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Latency with `post` and `send`: send by node names (`post(src, dst, ..)`,
    /// `send_data(src, dst, ..)`, the calls of the reference API and of `hf_post`) instead of
    /// through an `Endpoint`, at both ends.
    #[arg(long)]
    by_name: bool,
    /// What carries the messages: shared memory, or TCP (`post` and `send` only).
    #[arg(long, value_enum, default_value_t = Transport::Shm)]
    transport: Transport,
    /// `enable_fault_tolerance` of both processes (`on`, the default, or `off`).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    fault_tolerance: String,
    /// `enable_ml_routing` of both processes (`on`, or `off`, the default). With `on` the
    /// two nodes are joined by a configured link, so learned routing samples it while the
    /// measurement runs.
    #[arg(long, default_value = "off", value_parser = ["on", "off"])]
    ml_routing: String,
    /// Draw the results into this PNG: latency against size (log-log, with the floor), or
    /// bandwidth against size (with memcpy).
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
    /// Latency: a peers table (Markdown, `| system | 8 B | 64 B | ... |`, one-way ns, as
    /// the peer benchmarks write it) whose rows are drawn beside ours.
    #[arg(long, requires = "plot")]
    peers: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct Source {
    /// Fabric configuration (YAML); the built-in example AI cluster when absent.
    #[arg(long, short)]
    config: Option<std::path::PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    hyperfabric::sys::default_sigpipe();
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Topo(t) => t.json(),
        Command::Detect { json, .. } => *json,
        Command::Bench(BenchKind::Latency(a) | BenchKind::Bandwidth(a)) => a.json,
        Command::Nodes(a) => a.json,
        Command::Zones(a) => a.json,
        Command::Ping(a) => a.json,
        Command::Transfer(a) => a.json,
        Command::Monitor(a) => a.json,
        Command::Diagnose(a) => a.json,
        _ => false,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json && REPORTED.load(std::sync::atomic::Ordering::Relaxed) {
                // The JSON printed says what went wrong; stdout stays one document.
                eprintln!("error: {}: {e}", e.kind().name());
            } else if json {
                let v = serde_json::json!({"error": {"kind": e.kind().name(), "message": e.to_string()}});
                println!("{v}");
            } else {
                eprintln!("error: {}: {e}", e.kind().name());
            }
            ExitCode::FAILURE
        }
    }
}

/// Set by a command that printed its JSON report before failing (`diagnose` finding
/// problems): the error then goes to stderr only.
static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// 32 random bytes as hex: a fresh fabric key.
fn random_key_hex() -> Result<String, Error> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("reading /dev/urandom", e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn load(source: &Source) -> Result<FabricConfig, Error> {
    let cfg = match &source.config {
        Some(path) => hyperfabric::config::load_fabric_config(path)?,
        None => FabricConfig::parse(DEFAULT_CONFIG, "<built-in ai-cluster>")?,
    };
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    Ok(cfg)
}

fn print_json(v: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::InvalidArgument(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Topo(t) => topo::run(t),
        Command::Config(c) => config_cmd::run(c),
        Command::Bench(kind) => bench::run(kind),
        Command::Demo {
            config,
            hosts: None,
        } => demo::run(config),
        Command::Demo {
            config,
            hosts: Some(n),
        } => demo_hosts::run(config, n),
        Command::DemoWorker {
            fabric,
            nodes,
            config,
            host,
        } => demo::worker(config, &fabric, &nodes, host),
        Command::Worker {
            fabric,
            node,
            core,
            api,
            touch,
            drain,
            by_name,
            connect,
        } => bench_worker::worker(&fabric, &node, core, api, (touch, drain, by_name), connect),
        Command::SocketWorker { core } => bench_tcp::socket_worker(core),
        Command::Serve(args) => serve::run(args),
        Command::Nodes(args) => nodes::run(args),
        Command::Zones(args) => zones::run(args),
        Command::Ping(args) => ping::run(args),
        Command::Transfer(args) => transfer::run(args),
        Command::Monitor(args) => monitor::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Diagnose(args) => diagnose::run(args),
        Command::Soak(args) => soak::run(args).map_err(soak::failed),
        Command::SoakWorker(args) => soak::worker(args).map_err(soak::failed),
        Command::Detect { json, transport } => {
            if transport {
                let t = hyperfabric::sys::uring::probe();
                if json {
                    return print_json(&t);
                }
                print_transport(&t);
                return Ok(());
            }
            let sigs = hyperfabric::hw::detect_hardware_capabilities();
            if json {
                return print_json(&sigs);
            }
            let rows: Vec<Vec<String>> = sigs
                .iter()
                .map(|n| {
                    vec![
                        n.node_id.clone(),
                        n.hardware_type.to_string(),
                        format!("{:.1}", n.bandwidth_gbps),
                        n.compute_units.map_or("-".into(), |c| c.to_string()),
                        n.memory_gb.map_or("-".into(), |m| format!("{m:.1}")),
                        if hyperfabric::hw::validate_hardware_compatibility(n) {
                            "yes"
                        } else {
                            "no"
                        }
                        .into(),
                    ]
                })
                .collect();
            table(
                &[
                    "node_id",
                    "hardware_type",
                    "bandwidth_gbps",
                    "compute_units",
                    "memory_gb",
                    "compatible",
                ],
                &rows,
            );
            println!();
            print_transport(&hyperfabric::sys::uring::probe());
            Ok(())
        }
    }
}

/// The io_uring features the TCP transport would use, one line each.
fn print_transport(t: &hyperfabric::sys::uring::UringSupport) {
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("io_uring (TCP transport), kernel {}:", t.kernel);
    if let Some(why) = &t.error {
        println!("  unavailable: {why}");
        return;
    }
    for (what, has) in [
        ("zero-copy send (SEND_ZC)", t.send_zc),
        ("multishot receive", t.recv_multishot),
        ("provided-buffer rings", t.buffer_ring),
        ("kernel submission thread (SQPOLL)", t.sqpoll),
        ("io_uring_enter with a timeout", t.enter_timeout),
    ] {
        println!("  {what:<35} {}", yes(has));
    }
}

mod demo;
mod demo_hosts;

mod attach;
mod config_cmd;
mod config_json;
mod diagnose;
mod metrics;
mod monitor;
mod nodes;
mod ops;
mod ping;
mod serve;
mod snapshot;
mod topo;
mod topo_formats;
mod transfer;
mod zones;

mod bench;
mod bench_dir;
mod bench_tcp;
mod bench_worker;
mod floor;
mod page_buf;
mod plot;
mod show;
mod soak;
mod soak_worker;

use show::{print_bottlenecks, print_metrics_and_bottlenecks, show};

fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("  {}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        line(r.clone());
    }
}
