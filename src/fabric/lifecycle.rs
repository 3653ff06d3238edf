//! A protocol's life: its creation on a fabric (engine, topology, router and delivery check),
//! the nodes it hosts and their handlers, and what it releases when dropped.

use super::topology::sync_topology;
use super::{lock, HyperFabricProtocol, Inner, ProtocolConfig};
use crate::codec::{Opener, SealingKey};
use crate::engine::{Engine, Handler, Message, Reply};
use crate::error::{Error, Result};
use crate::model::NodeSignature;
use crate::routing::TopologyManager;
use crate::sys::process::Origin;
use crate::transport::registry::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

impl HyperFabricProtocol {
    /// A protocol instance on fabric `default` with the reference's default options.
    pub fn new() -> Result<HyperFabricProtocol> {
        HyperFabricProtocol::with_config(ProtocolConfig::default())
    }

    /// A protocol instance with `config`.
    pub fn with_config(config: ProtocolConfig) -> Result<HyperFabricProtocol> {
        let fabric = config
            .fabric_name
            .clone()
            .unwrap_or_else(|| "default".into());
        let o = &config.options;
        if o.buffer_pool_size == 0 || o.max_packet_size < crate::config::MIN_PACKET_SIZE {
            return Err(Error::InvalidArgument(format!(
                "buffer_pool_size must be positive and max_packet_size at least {}",
                crate::config::MIN_PACKET_SIZE
            )));
        }
        // What can fail without touching the fabric's host state comes first: a protocol
        // refused here leaves no fabric directory behind.
        let mut config = config;
        if config.tcp.is_none() {
            config.tcp = super::TcpConfig::from_env()?;
        }
        let (tcp, hosts, listener) = match &config.tcp {
            Some(t) => {
                let max_frame = crate::transport::tcp::MAX_FRAME;
                let (tcp, hosts, listener) =
                    super::hosts::Tcp::new(t, config.key.as_ref(), max_frame)?;
                (Some(tcp), Some(hosts), listener)
            }
            None => (None, None, None),
        };
        let registry = Registry::open(&fabric)?;
        let o = &config.options;
        let topology = TopologyManager::with_options(crate::routing::RoutingOptions {
            enable_ml_optimization: o.enable_ml_routing,
            enable_quantum_optimization: o.enable_quantum_optimization,
            load_balancing: true,
            // The nodes this process hosts, set as they register (`sync_topology`): tables
            // of every source would grow with the square of the fabric.
            sources: crate::routing::SourceSet::Nodes(Vec::new()),
            ..Default::default()
        });
        let sealing = match &config.key {
            Some(k) => Some(SealingKey::new(k, &fabric)?),
            None => None,
        };
        let mut engine = Engine::new(
            registry,
            sealing.as_ref().map(Opener::new),
            config.options.max_packet_size as usize,
        );
        engine.set_coalescing(config.coalescing);
        engine.set_fault_tolerance(config.options.enable_fault_tolerance);
        let down_after = super::options::host_down_after_from_env(config.down_after)?;
        if down_after < crate::engine::DOWN_AFTER_MIN {
            return Err(Error::Config(format!(
                "down_after {down_after:?}: at least {:?} (two heartbeats)",
                crate::engine::DOWN_AFTER_MIN
            )));
        }
        engine.set_down_after(down_after);
        let faults = match &config.faults {
            Some(plan) => Some(plan.clone()),
            None => crate::engine::FaultPlan::from_env()?,
        };
        if let Some(plan) = &faults {
            plan.check()?;
            eprintln!(
                "hyperfabric: FAULT INJECTION ACTIVE in process {} (fabric {fabric}): {plan}",
                std::process::id()
            );
        }
        engine.set_faults(faults);
        if let Some(h) = hosts {
            engine.set_hosts(h);
        }
        let inner = Arc::new(Inner {
            engine_token: engine.token(),
            sent_later: Default::default(),
            engine: Mutex::new(engine),
            topology,
            topology_epoch: Mutex::new((u64::MAX, u64::MAX, u64::MAX)),
            zones_active: Arc::new(AtomicBool::new(false)),
            pacers: Mutex::default(),
            zones_seen: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            registry: Arc::new(Registry::open(&fabric)?),
            receivers: Arc::new(Mutex::new(Default::default())),
            endpoints_by_name: config.endpoints_by_name,
            links: config.links.clone(),
            options: config.options.clone(),
            fabric,
            idle: config.idle,
            engine_core: config.engine_core,
            single_copy_from: config.single_copy_from,
            sealing,
            sealers: Mutex::new(Default::default()),
            running: AtomicBool::new(false),
            service: Mutex::new(None),
            progress_calls: std::sync::atomic::AtomicU32::new(0),
            origin: Origin::current(),
            closed: AtomicBool::new(false),
            ring_files: Mutex::new(Vec::new()),
            left_rings: Mutex::new(Vec::new()),
            routes_epoch: std::sync::atomic::AtomicU64::new(0),
            learned: Default::default(),
            tcp,
        });
        if inner.tcp.is_some() {
            let peers = config
                .tcp
                .as_ref()
                .map(|t| t.peers.clone())
                .unwrap_or_default();
            super::hosts::start(&inner, listener, peers)?;
        }
        if !inner.links.is_empty() {
            // Only the configured links exist, even while some of their nodes are missing.
            inner
                .topology
                .set_link_policy(Some(crate::topology::LinkPolicy::Explicit))?;
            // Next hops come from the latency routing tables of the host topology: a frame
            // inside the process that sent it takes the process's own routes (learned, with
            // learned routing), one that left it the configured ones.
            let weak = Arc::downgrade(&inner);
            let router = move |from: &str, to: &str, leg: crate::engine::Leg| {
                let inner = weak.upgrade()?;
                sync_topology(&inner).ok()?;
                let route = match leg {
                    crate::engine::Leg::First => {
                        inner
                            .topology
                            .shortest_route(from, to, crate::routing::Metric::Latency)
                    }
                    crate::engine::Leg::Onward => inner.topology.configured_route(from, to),
                };
                route.ok()?.path.get(1).cloned()
            };
            let generation = inner.topology.routing().generation_reader();
            let mut e = lock(&inner.engine);
            e.set_router(Some(Box::new(router)));
            e.set_routes_generation(Some(Box::new(generation)));
            drop(e);
        }
        // Deliveries are checked against the zone rules while isolating zones exist (one
        // atomic load per message otherwise).
        let (active, seen) = (inner.zones_active.clone(), inner.zones_seen.clone());
        let zones_registry = Registry::open(&inner.fabric)?;
        let weak = Arc::downgrade(&inner);
        lock(&inner.engine).set_admit(Some(Box::new(move |from: &str, to: &str, sealed| {
            if !active.load(Ordering::Acquire)
                && zones_registry.zones_epoch() == seen.load(Ordering::Acquire)
            {
                return None;
            }
            let inner = weak.upgrade()?;
            sync_topology(&inner).ok()?;
            inner.topology.read(|t| {
                if let Some(why) = t.isolation_violation(from, to) {
                    return Some((crate::ErrorKind::ZoneIsolationViolation, why));
                }
                let zone = t.encryption_zone(from, to).filter(|_| !sealed)?;
                Some((
                    crate::ErrorKind::ZoneIsolationViolation,
                    format!("zone {zone:?} is quantum_secure: its traffic must be encrypted"),
                ))
            })
        })));
        Ok(HyperFabricProtocol { inner })
    }

    /// Deletes the host state of fabric `name` (`/dev/shm/hyperfabric-<uid>/<name>/`) once no
    /// process hosts a node in it: call it after the last protocol of the fabric is dropped.
    /// Returns whether it was deleted (`false` while nodes are registered).
    pub fn remove_fabric(name: &str) -> Result<bool> {
        Registry::remove_if_unused(name)
    }

    /// Registers a node hosted by this process. `DuplicateNodeError` when any process of the
    /// fabric already hosts the id; `InvalidNodeError` for an invalid signature.
    pub fn register_node(&self, node: NodeSignature) -> Result<bool> {
        self.inner.check_process()?;
        let index = lock(&self.inner.engine).register(&node)?;
        // A sealer left from an earlier registration of the index is for another generation.
        lock(&self.inner.sealers).remove(&index);
        self.sync_topology()?;
        Ok(true)
    }

    /// Removes a node this process hosts.
    pub fn unregister_node(&self, node_id: &str) -> Result<bool> {
        self.inner.check_process()?;
        let mut e = lock(&self.inner.engine);
        let index = e.hosted_index(node_id)?;
        e.settle_before_leaving();
        let handler = e.unregister(node_id)?;
        drop(e);
        drop(handler);
        lock(&self.inner.sealers).remove(&index);
        self.sync_topology()?;
        Ok(true)
    }

    /// Sets the request handler of a hosted node: it returns the response to `send_data`.
    /// Without a handler, requests are queued for [`recv`](Self::recv) and answered with a
    /// delivery receipt (an empty response).
    ///
    /// A handler runs with the engine held, on the thread that drives it (the engine thread
    /// with background services, otherwise the thread inside a call that drives it). It
    /// posts through an [`Endpoint`](super::Endpoint) made before (`Endpoint::post`, up to
    /// the endpoint's inline size); a send by node names (`post`, `send_data`, the buffer
    /// sends) from inside it fails with `InvalidArgumentError`, as it could wait for the
    /// engine forever. Requests, larger messages and the protocol's other calls may wait for
    /// the engine too and are not made from a handler: hand them to another thread.
    ///
    /// A handler that panics fails its message as one that returns an error does (a request
    /// gets `IOError`, "panicked: ..."): the panic does not unwind into the engine, nor into
    /// the call whose thread ran the handler.
    pub fn on_receive(
        &self,
        node_id: &str,
        mut handler: impl FnMut(&Message) -> Result<Vec<u8>> + Send + 'static,
    ) -> Result<()> {
        self.on_request(node_id, move |m, reply| {
            reply.set(handler(m)?);
            Ok(())
        })
    }

    /// Sets the request handler of a hosted node, which writes its answer into a [`Reply`]
    /// (a buffer the engine reuses: answering allocates nothing once it is large enough),
    /// from which it goes into the reply ring of the endpoint the request came through.
    /// Otherwise as [`on_receive`](Self::on_receive).
    ///
    /// ```no_run
    /// # fn f(p: &hyperfabric::fabric::HyperFabricProtocol) -> hyperfabric::Result<()> {
    /// // Answers each request with its length, then its bytes reversed.
    /// p.on_request("worker", |m, reply| {
    ///     reply.write(&(m.data.len() as u32).to_le_bytes());
    ///     let start = reply.len();
    ///     let out = reply.buffer(start + m.data.len());
    ///     for (o, b) in out[start..].iter_mut().zip(m.data.iter().rev()) {
    ///         *o = *b;
    ///     }
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub fn on_request(
        &self,
        node_id: &str,
        handler: impl FnMut(&Message, &mut Reply) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        self.inner.check_process()?;
        let before =
            lock(&self.inner.engine).set_handler(node_id, Some(Box::new(handler) as Handler))?;
        // Dropped without the engine held.
        drop(before);
        Ok(())
    }

    /// Removes a node's handler.
    pub fn clear_handler(&self, node_id: &str) -> Result<()> {
        self.inner.check_process()?;
        let before = lock(&self.inner.engine).set_handler(node_id, None)?;
        drop(before);
        Ok(())
    }
}

impl Drop for HyperFabricProtocol {
    fn drop(&mut self) {
        if !self.inner.origin.is_current() {
            // A fork() child's copy: the engine thread, the nodes and the rings are the
            // parent's, and the locks may be held by threads the child does not have.
            // Nothing is released (the memory is the child's copy and goes with it).
            std::mem::forget(self.inner.clone());
            return;
        }
        self.inner.closed.store(true, Ordering::Release);
        if let Some(t) = &self.inner.tcp {
            t.stop();
        }
        super::endpoint::named::forget(&self.inner);
        let _ = self.stop_background_services();
        let mut e = lock(&self.inner.engine);
        // Events still waiting to be coalesced go out.
        e.flush_spikes(None);
        e.settle_before_leaving();
        let mut handlers = Vec::new();
        for id in e.hosted_ids() {
            if let Ok(Some(h)) = e.unregister(&id) {
                handlers.push(h);
            }
        }
        drop(e);
        // Dropped without the engine held (one may hold what takes it when dropped).
        drop(handlers);
    }
}
