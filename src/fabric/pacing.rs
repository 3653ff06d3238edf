//! LOW isolation's rate limit: traffic across the boundary of a LOW zone with a reservation
//! is paced at the sender (see [`Topology::low_isolation_limit`]), whatever carries it (a
//! ring of this host or a connection to another), so that the zone keeps its reservation.
//! One token bucket per (sending node, zone): a send waits until the bucket is not in debt,
//! then takes its bytes (it may go into debt: a message larger than the burst still goes,
//! and the sends after it wait the longer); it fails with `TimeoutError` when its deadline
//! comes first.
//!
//! [`Topology::low_isolation_limit`]: crate::topology::Topology::low_isolation_limit

use super::{lock, Deadline, Inner};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How much a bucket holds: the bytes of this long at its rate.
const BURST: Duration = Duration::from_millis(10);

/// One bucket: its rate (bytes per second) and what it holds (negative: in debt).
#[derive(Debug)]
pub(super) struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

/// The buckets of a protocol, by (sending node, zone).
#[derive(Debug, Default)]
pub(super) struct Pacers {
    buckets: HashMap<(String, String), Bucket>,
    /// Sends that had to wait.
    pub(super) waits: u64,
}

impl Inner {
    /// Waits until `bytes` from `source` to `destination` may go under LOW isolation's rate
    /// limit (at once when no LOW zone's boundary lies between them), or fails at `deadline`.
    pub(super) fn pace(
        &self,
        (source, destination): (&str, &str),
        bytes: usize,
        deadline: &mut Deadline,
    ) -> Result<()> {
        let Some((zone, gbps)) = self
            .topology
            .read(|t| t.low_isolation_limit(source, destination))
        else {
            return Ok(());
        };
        let rate = gbps * 1e9 / 8.0;
        let mut waited = false;
        loop {
            let wait = {
                let mut p = lock(&self.pacers);
                let now = Instant::now();
                let b = p
                    .buckets
                    .entry((source.to_string(), zone.clone()))
                    .or_insert(Bucket {
                        rate,
                        tokens: rate * BURST.as_secs_f64(),
                        at: now,
                    });
                // The limit follows the zone (its reservation or members may change).
                b.rate = rate;
                let cap = rate * BURST.as_secs_f64();
                b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(cap);
                b.at = now;
                if b.tokens >= 0.0 {
                    b.tokens -= bytes as f64;
                    if waited {
                        p.waits += 1;
                    }
                    return Ok(());
                }
                Duration::from_secs_f64((-b.tokens / rate).min(1.0))
            };
            if deadline.passed() {
                return Err(Error::Timeout(format!(
                    "zone {zone:?} (LOW isolation) limits traffic between {source} and \
                     {destination} to {gbps:.3} Gbit/s, and the send's deadline came first"
                )));
            }
            waited = true;
            std::thread::sleep(wait.min(Duration::from_millis(10)));
        }
    }

    /// Sends that waited for LOW isolation's rate limit.
    pub(super) fn paced_waits(&self) -> u64 {
        lock(&self.pacers).waits
    }
}
