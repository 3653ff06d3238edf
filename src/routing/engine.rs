//! [`RoutingEngine`]: owns the topology, keeps routing tables current from a route service
//! thread, and answers constrained route requests.
//!
//! Every change to the topology (or, with the learned cost model, to link metrics) bumps a
//! generation counter and wakes the service thread, which snapshots the topology into a
//! [`RouteGraph`], computes [`RoutingTables`] without holding any lock, and publishes them with
//! one atomic pointer swap. Readers ([`RoutingEngine::tables`]) never wait for a rebuild; the
//! control-plane queries ([`RoutingEngine::find_optimal_path`]) wait until the tables reflect
//! every change made before the call, so they are synchronous.

use super::admission::{admit, Admitted, SendRequirements};
use super::cost::CostModel;
use super::graph::RouteGraph;
use super::request::{solve, Route, RouteRequest};
use super::table::RoutingTables;
use crate::error::{Error, Result};
use crate::model::DataType;
use crate::topology::Topology;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Which nodes get precomputed tables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceSet {
    /// Every node (control-plane tools, bottleneck analysis of the whole fabric).
    #[default]
    All,
    /// Only these nodes (the nodes a process hosts).
    Nodes(Vec<String>),
}

/// Options of a [`RoutingEngine`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutingOptions {
    /// Route on latency predicted from measurements (`enable_ml_routing`).
    pub enable_ml_optimization: bool,
    /// Enforce coherence deadlines and quantum-capable paths for quantum traffic.
    pub enable_quantum_optimization: bool,
    /// Neuromorphic traffic is coalesced by the data plane; routing treats it as latency
    /// traffic.
    pub enable_neuromorphic_routing: bool,
    /// Keep equal-cost next hops in the tables so flows spread over them
    /// (`enable_auto_optimization`); without it every flow takes the primary next hop.
    pub load_balancing: bool,
    /// Which sources get tables.
    pub sources: SourceSet,
}

/// How long a control-plane query waits for tables to catch up with changes.
const TABLE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct ServiceState {
    /// Generation the tables must reach.
    wanted: u64,
    /// Generation of the published tables.
    built: u64,
    stop: bool,
    /// Which sources get tables (`RoutingOptions::sources` until set anew).
    sources: SourceSet,
}

#[derive(Debug)]
struct Shared {
    topology: RwLock<Topology>,
    tables: ArcSwap<RoutingTables>,
    /// Tables on the configured figures, built with `tables` (the same tables without the
    /// learned model): what every process computes alike (see
    /// [`RoutingEngine::configured_route`]).
    configured: ArcSwap<RoutingTables>,
    /// `ServiceState::wanted`, readable without the lock: tables of this generation or later
    /// reflect every change made before it was stored.
    wanted: AtomicU64,
    options: RoutingOptions,
    state: Mutex<ServiceState>,
    /// Wakes the service thread.
    work: Condvar,
    /// Wakes queries waiting for a generation.
    published: Condvar,
}

/// The routing engine of the reference: precomputed tables, constrained searches and the
/// learned link model, over a topology it owns.
#[derive(Debug)]
pub struct RoutingEngine {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl RoutingEngine {
    /// An engine over an empty topology, with its route service thread running.
    pub fn new(options: RoutingOptions) -> RoutingEngine {
        let empty = Arc::new(RouteGraph::default());
        let empty = Arc::new(RoutingTables::empty(empty, 0));
        let shared = Arc::new(Shared {
            topology: RwLock::new(Topology::new()),
            tables: ArcSwap::new(empty.clone()),
            configured: ArcSwap::new(empty),
            wanted: AtomicU64::new(0),
            state: Mutex::new(ServiceState {
                sources: options.sources.clone(),
                ..ServiceState::default()
            }),
            options,
            work: Condvar::new(),
            published: Condvar::new(),
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("hf-route-service".into())
            .spawn(move || route_service(&worker_shared))
            .expect("spawning the route service thread");
        RoutingEngine {
            shared,
            worker: Some(worker),
        }
    }

    /// The engine's options.
    pub fn options(&self) -> &RoutingOptions {
        &self.shared.options
    }

    /// The current tables, possibly one rebuild behind the topology. Lock-free: a rebuild
    /// never blocks it.
    #[inline]
    pub fn tables(&self) -> arc_swap::Guard<Arc<RoutingTables>> {
        self.shared.tables.load()
    }

    /// Reads the topology.
    pub fn read_topology<T>(&self, f: impl FnOnce(&Topology) -> T) -> T {
        f(&self
            .shared
            .topology
            .read()
            .unwrap_or_else(|e| e.into_inner()))
    }

    /// What reads the generation of the routes: it changes with every change of the
    /// topology or of link figures (before the call that made it returns), so a cache of
    /// answers taken under one generation knows when to forget them. One atomic load.
    pub fn generation_reader(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.wanted.load(Ordering::Acquire)
    }

    /// Changes the topology; if `f` succeeded and changed anything, tables are rebuilt.
    pub fn update_topology<T>(&self, f: impl FnOnce(&mut Topology) -> Result<T>) -> Result<T> {
        let mut topo = self
            .shared
            .topology
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let before = topo.epoch();
        let out = f(&mut topo)?;
        if topo.epoch() != before {
            self.request_rebuild();
        }
        Ok(out)
    }

    /// Sets which sources get tables (tables are rebuilt if that changed them): a process
    /// sets the nodes it hosts as they come and go.
    pub fn set_sources(&self, sources: SourceSet) {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.sources != sources {
            st.sources = sources;
            drop(st);
            self.request_rebuild();
        }
    }

    fn request_rebuild(&self) {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.wanted += 1;
        // Release, paired with the Acquire in `check_send`: stored before the change's caller
        // returns, so a check that happens after the change sees this generation.
        self.shared.wanted.store(st.wanted, Ordering::Release);
        self.shared.work.notify_one();
    }

    /// Tables that reflect every change made before this call (waits for the route service).
    pub fn current_tables(&self) -> Result<Arc<RoutingTables>> {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let want = st.wanted;
        let (st, timeout) = self
            .shared
            .published
            .wait_timeout_while(st, TABLE_WAIT, |s| s.built < want && !s.stop)
            .unwrap_or_else(|e| e.into_inner());
        if timeout.timed_out() || st.built < want {
            return Err(Error::Timeout(format!(
                "routing tables not rebuilt within {} s",
                TABLE_WAIT.as_secs()
            )));
        }
        drop(st);
        Ok(self.shared.tables.load_full())
    }

    /// Whether a send from `source` to `destination` with `req` has a route: exactly what
    /// [`RoutingEngine::route`] says for the latency request with these requirements (kind
    /// and message of the error included), preceded by the zone endpoint rule, which also
    /// applies to ids not in the topology. Also says whether a QUANTUM_SECURE zone requires
    /// the send to be encrypted.
    ///
    /// Answered from the current tables' precomputed answers: the two ids are resolved to
    /// dense indices, then [`RoutingTables::admit`] makes a few loads and comparisons; no
    /// lock, no allocation, no search. Only when the topology changed since the tables were
    /// built does it wait for the rebuild (as `route` does), and only for a source without a
    /// table or an unknown id does it solve the request.
    ///
    /// Measured (benches/routing.rs, `send_check`, k=16 fat-tree, random host pairs): about
    /// 24 ns, resolving the ids included; with a latency constraint, 1.01x and 0.98x the cost
    /// without one in two runs; the route search it replaces, about 2,000x.
    pub fn check_send(
        &self,
        source: &str,
        destination: &str,
        req: &SendRequirements,
    ) -> Result<Admitted> {
        let tables = self.shared.tables.load();
        if tables.generation() >= self.shared.wanted.load(Ordering::Acquire) {
            return admit(&tables, &self.shared.options, source, destination, req);
        }
        drop(tables);
        let tables = self.current_tables()?;
        admit(&tables, &self.shared.options, source, destination, req)
    }

    /// Records measured link performance. With the learned cost model, routes are recomputed
    /// from the new predictions; with the static model, only bottleneck analysis sees them.
    pub fn update_link_metrics(
        &self,
        source: &str,
        destination: &str,
        latency_ns: u64,
        bandwidth_utilized_gbps: f64,
        packet_loss_rate: f64,
    ) -> Result<()> {
        {
            let mut topo = self
                .shared
                .topology
                .write()
                .unwrap_or_else(|e| e.into_inner());
            topo.record_link_metrics(
                source,
                destination,
                latency_ns,
                bandwidth_utilized_gbps,
                packet_loss_rate,
            )?;
        }
        if self.shared.options.enable_ml_optimization {
            self.request_rebuild();
        }
        Ok(())
    }

    /// Sets the latencies learned routing gives links, `(a, b, ns)` (`None` clears one: the
    /// link goes back to its declared figure), in one rebuild of the tables. Links that no
    /// longer exist are skipped. Refused without learned routing: its routes do not use them.
    pub fn set_learned_latencies(&self, latencies: &[(String, String, Option<u64>)]) -> Result<()> {
        if !self.shared.options.enable_ml_optimization {
            return Err(Error::InvalidArgument(
                "learned latencies need learned routing (enable_ml_routing)".into(),
            ));
        }
        {
            let mut topo = self
                .shared
                .topology
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for (a, b, ns) in latencies {
                let _ = topo.set_learned_latency(a, b, *ns);
            }
        }
        self.request_rebuild();
        Ok(())
    }

    /// The reference's `find_optimal_path`: the best path by latency (learned latency with
    /// ML routing) satisfying the constraints. See [`RoutingEngine::route`].
    pub fn find_optimal_path(
        &self,
        source: &str,
        destination: &str,
        data_type: DataType,
        latency_constraint_ns: Option<u64>,
        bandwidth_requirement_gbps: Option<f64>,
    ) -> Result<Vec<String>> {
        let req = RouteRequest {
            data_type,
            latency_constraint_ns,
            bandwidth_requirement_gbps,
            ..RouteRequest::new(source, destination)
        };
        Ok(self.route(&req)?.path)
    }

    /// Solves a route request against current tables.
    ///
    /// Rules, in order: both nodes exist (`NodeNotFoundError`) and are up
    /// (`NoRouteFoundError`); MEDIUM+ zones admit only members and control-plane nodes
    /// (`ZoneIsolationViolationError`); HIGH+ zones keep member traffic inside and foreign
    /// traffic out; entanglement-requiring traffic crosses quantum-capable nodes only; links
    /// and nodes meet the bandwidth floor. Among the paths left, the lowest-latency one decides
    /// feasibility: above the coherence deadline of quantum traffic it is a
    /// `QuantumCoherenceError`, above the latency constraint a
    /// `LatencyConstraintViolationError`. The path returned is then the best by `metric` among
    /// the paths that meet the bound.
    pub fn route(&self, req: &RouteRequest) -> Result<Route> {
        let tables = self.current_tables()?;
        solve(&tables, &self.shared.options, req)
    }

    /// [`RoutingEngine::route`] on the configured figures, whatever the cost model. With
    /// learned routing, each process learns its own figures; routes on the configured ones
    /// are the same in every process, so a frame that follows them from some node on can
    /// never be sent back and forth between two processes whose learned figures disagree.
    pub fn configured_route(&self, req: &RouteRequest) -> Result<Route> {
        // Built with the tables: once these reflect every change, so do they.
        self.current_tables()?;
        let tables = self.shared.configured.load_full();
        solve(&tables, &self.shared.options, req)
    }
}

impl Drop for RoutingEngine {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.stop = true;
            self.shared.work.notify_all();
            self.shared.published.notify_all();
        }
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn route_service(shared: &Shared) {
    let model = if shared.options.enable_ml_optimization {
        CostModel::Learned
    } else {
        CostModel::Static
    };
    // Replaced tables wait here until no reader holds them, so the (large) deallocation runs
    // on this thread, never on a reader that happened to drop the last reference.
    let mut retired: Vec<Arc<RoutingTables>> = Vec::new();
    loop {
        retired.retain(|t| Arc::strong_count(t) > 1);
        let target = {
            let st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            let idle = |s: &mut ServiceState| s.built >= s.wanted && !s.stop;
            let st = if retired.is_empty() {
                shared
                    .work
                    .wait_while(st, idle)
                    .unwrap_or_else(|e| e.into_inner())
            } else {
                shared
                    .work
                    .wait_timeout_while(st, RETIRE_POLL, idle)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            };
            if st.stop {
                return;
            }
            if st.built >= st.wanted {
                continue; // woke to retire old tables
            }
            (st.wanted, st.sources.clone())
        };
        let (target, source_set) = target;
        // Snapshot under the read lock, compute without it.
        let (graph, configured) = {
            let topo = shared.topology.read().unwrap_or_else(|e| e.into_inner());
            let configured = (model == CostModel::Learned)
                .then(|| Arc::new(RouteGraph::build(&topo, CostModel::Static)));
            (Arc::new(RouteGraph::build(&topo, model)), configured)
        };
        let build = |graph: Arc<RouteGraph>| {
            let sources: Vec<u32> = match &source_set {
                SourceSet::All => (0..graph.node_count() as u32).collect(),
                SourceSet::Nodes(ids) => ids.iter().filter_map(|id| graph.index_of(id)).collect(),
            };
            let tables =
                RoutingTables::build(graph, &sources, target, shared.options.load_balancing)
                    .with_admission(shared.options.enable_quantum_optimization);
            Arc::new(tables)
        };
        let tables = build(graph);
        let configured = configured.map_or_else(|| tables.clone(), build);
        let old = shared.configured.swap(configured);
        let old_tables = shared.tables.swap(tables);
        // Without the learned model they are the same tables: kept once, freed once.
        if !Arc::ptr_eq(&old, &old_tables) {
            retired.push(old);
        }
        retired.push(old_tables);
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.built = st.built.max(target);
        shared.published.notify_all();
    }
}

/// How often the route service checks whether replaced tables can be freed.
const RETIRE_POLL: Duration = Duration::from_millis(50);
