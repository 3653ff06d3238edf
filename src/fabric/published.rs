//! The process's counters published for operators' tools (`hyperfabric monitor`,
//! `metrics`): while background services run, a thread of its own rewrites
//! `pm-<pid>-<start>.json` in the fabric directory twice a second with what
//! `get_topology_info` reports (`transport::stats`). The engine thread never writes it, and
//! it is deleted when the services stop (a dead process's, by the next process that looks).

use super::{topology::topology_info, Inner};
use crate::error::{Error, Result};
use crate::transport::stats::{metrics_path, write_metrics, ProcessMetrics};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the counters are rewritten.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(500);

pub(super) struct Publisher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Publisher {
    pub(super) fn start(inner: Weak<Inner>) -> Result<Publisher> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hf-publish".into())
            .spawn(move || {
                let mut next = Instant::now();
                while !flag.load(Ordering::Acquire) {
                    if Instant::now() >= next {
                        let Some(inner) = inner.upgrade() else { return };
                        // A failure (a full disk) only leaves the last snapshot in place.
                        let _ = publish(&inner);
                        next = Instant::now() + PUBLISH_EVERY;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .map_err(|e| Error::io("starting the metrics thread", e))?;
        Ok(Publisher { stop, thread })
    }

    /// Stops the thread and deletes the file.
    pub(super) fn stop(self, inner: &Inner) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
        let _ = std::fs::remove_file(metrics_path(inner.registry.dir()));
    }
}

fn publish(inner: &Inner) -> Result<()> {
    let info = topology_info(inner)?;
    let (mut nodes, links) = {
        let mut e = super::lock(&inner.engine);
        (e.hosted_ids(), e.local_links())
    };
    nodes.sort();
    write_metrics(
        inner.registry.dir(),
        &ProcessMetrics {
            pid: crate::sys::process::pid(),
            time: crate::model::unix_now(),
            nodes,
            metrics: info.performance_metrics,
            links,
            host: None,
        },
    )
}
