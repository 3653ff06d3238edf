//! Heartbeats while a handler runs. Handlers run on the thread that drives the engine, and
//! the heartbeats of the hosted nodes are written by that thread too: a handler that takes
//! longer than the 200 ms after which peers mark a node down (a large message checked or
//! copied on a loaded machine, a long computation) would have its nodes marked down, and
//! senders to them refused with `NoRouteFoundError`, while the process is alive and will
//! read them. While heartbeats are on, a small thread beats for the hosted nodes whenever one
//! handler call has lasted through one of its intervals, for at most [`HANDLER_GRACE`]: a
//! handler that hangs (a deadlock, a call that never returns) has its nodes marked down
//! after that, as a hung engine does. A process that stops (a signal, a debugger) stops
//! this thread too; one that dies is found by the liveness check.

use super::health::HEARTBEAT_INTERVAL;
use crate::transport::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How long one handler call keeps its nodes' heartbeats going.
pub const HANDLER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the engine and the watching thread share.
#[derive(Default)]
pub(super) struct HandlerWatch {
    /// Handler calls begun, times two, plus one while a call runs.
    calls: AtomicU64,
    stop: AtomicBool,
    /// The hosted nodes (indices) to beat for: set when one is registered, and before one
    /// is unregistered.
    nodes: Mutex<Vec<u32>>,
    /// The connections to other hosts, beaten on too.
    reactor: Mutex<Option<Arc<Mutex<crate::transport::tcp::reactor::Reactor>>>>,
}

impl std::fmt::Debug for HandlerWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerWatch")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

/// Marks a handler call as running until dropped.
pub(super) struct Running<'a>(&'a HandlerWatch);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.calls.fetch_add(1, Ordering::Release);
    }
}

impl HandlerWatch {
    /// A handler call begins (two relaxed-cost atomic adds per call, no clock).
    pub(super) fn enter(&self) -> Running<'_> {
        self.calls.fetch_add(1, Ordering::Release);
        Running(self)
    }

    /// The reactor whose connections are beaten on too (see `TcpConfig::down_after`).
    pub(super) fn set_reactor(&self, r: Arc<Mutex<crate::transport::tcp::reactor::Reactor>>) {
        *self.reactor.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    /// The nodes to beat for from now on.
    pub(super) fn set_nodes(&self, nodes: impl Iterator<Item = u32>) {
        let mut n = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        n.clear();
        n.extend(nodes);
    }

    /// Starts the watching thread; it ends when the returned handle is dropped.
    pub(super) fn start(self: &Arc<Self>, registry: Arc<Registry>) -> std::io::Result<Watching> {
        self.stop.store(false, Ordering::Release);
        let watch = self.clone();
        let thread = std::thread::Builder::new()
            .name("hf-handler-beat".into())
            .spawn(move || {
                let mut seen = u64::MAX;
                let mut since = std::time::Instant::now();
                while !watch.stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(HEARTBEAT_INTERVAL);
                    let calls = watch.calls.load(Ordering::Acquire);
                    if calls != seen {
                        seen = calls;
                        since = std::time::Instant::now();
                        continue;
                    }
                    // The same call still runs as one interval ago, not for too long.
                    if calls % 2 == 1 && since.elapsed() < HANDLER_GRACE {
                        // Under the lock that unregistering takes to drop a node first.
                        let nodes = watch.nodes.lock().unwrap_or_else(|p| p.into_inner());
                        if watch.stop.load(Ordering::Acquire) {
                            break;
                        }
                        let t = crate::sys::monotonic_ns();
                        for &i in nodes.iter() {
                            registry.beat(i, t);
                        }
                        drop(nodes);
                        let reactor = watch.reactor.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(r) = reactor.as_ref() {
                            // Not while the engine reads it: a beat can wait for the next
                            // interval.
                            if let Ok(mut r) = r.try_lock() {
                                r.beat_all(crate::transport::tcp::control::KIND_BEAT, 0);
                            }
                        }
                    }
                }
            })?;
        Ok(Watching {
            watch: self.clone(),
            thread: Some(thread),
        })
    }
}

/// The running watch thread: dropping it stops the thread and waits for it (within one
/// interval), so no heartbeat is written after.
#[derive(Debug)]
pub(super) struct Watching {
    watch: Arc<HandlerWatch>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.watch.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
