//! `hyperfabric topo`: a configuration's (or a running fabric's) topology, routes,
//! bottlenecks, and generated topologies.

use super::{load, print_bottlenecks, print_json, show, topo_formats, Source};
use clap::{Args, Subcommand};
use hyperfabric::config::{FabricConfig, ZoneConfig};
use hyperfabric::routing::{Metric, RouteRequest, SourceSet};
use hyperfabric::topology::generate;
use hyperfabric::{DataType, Error};

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    source: Source,
    /// Output: tables, JSON (as --json), the topology as a configuration (YAML), or Graphviz.
    #[arg(long, value_enum)]
    format: Option<topo_formats::Format>,
    /// Show the running fabric of this name on this host (its live nodes, the
    /// configuration's links, its zones) instead of the configuration.
    #[arg(long)]
    fabric: Option<String>,
}

#[derive(Subcommand)]
pub enum Topo {
    /// Nodes, links, zones, route statistics and bottlenecks.
    Show(ShowArgs),
    /// The best path between two nodes.
    Path {
        #[command(flatten)]
        source: Source,
        /// What to optimise: latency, bandwidth or hops.
        #[arg(long, default_value = "latency")]
        metric: String,
        /// Refuse paths slower than this, ns.
        #[arg(long)]
        max_latency_ns: Option<u64>,
        /// Use only links and nodes at least this fast, Gbit/s.
        #[arg(long)]
        min_bandwidth_gbps: Option<f64>,
        /// Data type (quantum types are routed against coherence deadlines).
        #[arg(long, default_value = "generic")]
        data_type: String,
        /// Require a path of quantum-capable nodes.
        #[arg(long)]
        entangled: bool,
        /// Source node id.
        src: String,
        /// Destination node id.
        dst: String,
    },
    /// Bottlenecks with recommendations.
    Analyze(Source),
    /// Print a generated topology as a configuration.
    Generate {
        #[command(subcommand)]
        kind: GenKind,
        /// Link and node bandwidth, Gbit/s.
        #[arg(long, default_value_t = 100.0, global = true)]
        gbps: f64,
        /// Fabric name.
        #[arg(long, default_value = "generated", global = true)]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum GenKind {
    /// k-ary fat-tree (k³/4 hosts).
    FatTree {
        /// Switch arity (even).
        #[arg(long, default_value_t = 4)]
        k: usize,
    },
    /// Dragonfly with a·h+1 fully connected groups.
    Dragonfly {
        /// Routers per group.
        #[arg(long, default_value_t = 4)]
        a: usize,
        /// Hosts per router.
        #[arg(long, default_value_t = 2)]
        p: usize,
        /// Global links per router.
        #[arg(long, default_value_t = 2)]
        h: usize,
    },
    /// 2-D torus.
    Torus {
        /// Width.
        #[arg(long, default_value_t = 4)]
        x: usize,
        /// Height.
        #[arg(long, default_value_t = 4)]
        y: usize,
    },
}

impl Topo {
    /// Whether errors are printed as JSON.
    pub fn json(&self) -> bool {
        match self {
            Topo::Show(s) => s.source.json || s.format == Some(topo_formats::Format::Json),
            Topo::Analyze(s) => s.json,
            Topo::Path { source, .. } => source.json,
            Topo::Generate { .. } => false,
        }
    }
}

pub fn run(t: Topo) -> Result<(), Error> {
    match t {
        Topo::Show(args) => {
            use topo_formats::Format;
            let cfg = load(&args.source)?;
            let format = match (args.format, args.source.json) {
                (Some(f), _) => f,
                (None, true) => Format::Json,
                (None, false) => Format::Table,
            };
            let (own, live);
            let (tm, info, name) = match &args.fabric {
                Some(fabric) => {
                    hyperfabric::sys::fs::validate_fabric_name(fabric)
                        .map_err(Error::InvalidArgument)?;
                    live = topo_formats::live(&cfg, fabric)?;
                    let info = live.get_topology_info()?;
                    (live.topology()?, info, fabric.clone())
                }
                None => {
                    own = cfg.topology_manager()?;
                    let info = own.topology_info()?;
                    (&own, info, cfg.fabric.name.clone())
                }
            };
            match format {
                Format::Json => print_json(&info),
                Format::Yaml => {
                    print!("{}", topo_formats::yaml(&cfg, tm));
                    Ok(())
                }
                Format::Dot => {
                    print!("{}", topo_formats::dot(&name, tm));
                    Ok(())
                }
                Format::Table => show(&cfg, tm, &info),
            }
        }
        Topo::Path {
            source,
            metric,
            max_latency_ns,
            min_bandwidth_gbps,
            data_type,
            entangled,
            src,
            dst,
        } => {
            let cfg = load(&source)?;
            // Tables of the one source asked about, not of every node.
            let tm = cfg.topology_manager_for(SourceSet::Nodes(vec![src.clone()]))?;
            let req = RouteRequest {
                metric: metric.parse::<Metric>()?,
                data_type: data_type
                    .parse::<DataType>()
                    .map_err(Error::InvalidArgument)?,
                latency_constraint_ns: max_latency_ns,
                bandwidth_requirement_gbps: min_bandwidth_gbps,
                requires_quantum_entanglement: entangled,
                ..RouteRequest::new(src, dst)
            };
            let route = tm.route(&req)?;
            if source.json {
                // Route serialises as {"path", "latency_ns", "bandwidth_gbps", "hops"}.
                let v = serde_json::to_string(&route)
                    .map_err(|e| Error::InvalidArgument(format!("cannot encode JSON: {e}")))?;
                println!("{v}");
            } else {
                println!("{}", route.path.join(" -> "));
                println!(
                    "latency {} ns, bandwidth {} Gbit/s, {} hops ({} metric)",
                    route.latency_ns, route.bandwidth_gbps, route.hops, req.metric
                );
            }
            Ok(())
        }
        Topo::Analyze(source) => {
            let cfg = load(&source)?;
            let tm = cfg.topology_manager()?;
            let b = tm.analyze_bottlenecks()?;
            if source.json {
                return print_json(&b);
            }
            print_bottlenecks(&b);
            Ok(())
        }
        Topo::Generate { kind, gbps, name } => {
            if !gbps.is_finite() || gbps <= 0.0 {
                return Err(Error::InvalidArgument(format!(
                    "--gbps must be positive (got {gbps})"
                )));
            }
            hyperfabric::config::validate_fabric_name(&name).map_err(Error::InvalidArgument)?;
            let g = match kind {
                GenKind::FatTree { k } if k >= 2 && k % 2 == 0 && k <= 64 => {
                    generate::fat_tree(k, gbps)
                }
                GenKind::FatTree { k } => {
                    return Err(Error::InvalidArgument(format!(
                        "--k must be even, 2..=64 (got {k})"
                    )))
                }
                GenKind::Dragonfly { a, p, h } if a >= 1 && h >= 1 && a * h <= 256 => {
                    generate::dragonfly(a, p, h, gbps)
                }
                GenKind::Dragonfly { .. } => {
                    return Err(Error::InvalidArgument(
                        "--a and --h must be at least 1, a*h at most 256".into(),
                    ))
                }
                GenKind::Torus { x, y } if x >= 1 && y >= 1 && x * y <= 1_000_000 => {
                    generate::torus(x, y, gbps)
                }
                GenKind::Torus { .. } => {
                    return Err(Error::InvalidArgument(
                        "--x and --y must be at least 1".into(),
                    ))
                }
            };
            let mut cfg = FabricConfig {
                nodes: g.nodes,
                links: g.links,
                zones: Vec::<ZoneConfig>::new(),
                ..FabricConfig::default()
            };
            cfg.fabric.name = name;
            print!("{}", cfg.to_yaml());
            Ok(())
        }
    }
}
