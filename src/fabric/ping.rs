//! `ping`: probes that measure the round trip and a burst's bandwidth between two nodes, and
//! report the path the probes took.

use super::{lock, Deadline, HyperFabricProtocol};
use crate::codec::FrameKind;
use crate::engine::Outgoing;
use crate::error::{Error, Result};
use crate::model::{unix_now, DataType, PacketPriority, PingResult};
use std::time::{Duration, Instant};

impl HyperFabricProtocol {
    /// The reference's `ping`: probes of `packet_size` bytes; `latency_ns` is the median
    /// round trip / 2, `bandwidth_gbps` the bytes a pipelined burst of probes moved (both
    /// ways) per second, `packet_loss_rate` the share of probes that timed out.
    pub fn ping(
        &self,
        source: &str,
        destination: &str,
        packet_size: usize,
        timeout_ms: u64,
    ) -> Result<PingResult> {
        self.inner.check_process()?;
        const PROBES: usize = 16;
        const BURST: usize = 16;
        if packet_size > crate::engine::max_message() {
            return Err(Error::InvalidArgument(format!(
                "packet_size {packet_size} exceeds the largest frame ({})",
                crate::engine::max_message()
            )));
        }
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let (src, dst) = self.inner.endpoints(source, destination)?;
        let payload = vec![0xa5u8; packet_size];
        // The path starts with the source; each forwarder and the destination append theirs.
        let origin = src.to_le_bytes();
        let probe = |request_id| Outgoing {
            kind: FrameKind::Ping,
            request_id,
            priority: PacketPriority::High,
            data_type: DataType::ControlMessage,
            one_way: false,
            metadata: &origin,
            framed: false,
            coalesced: false,
        };
        let mut path_indices: Vec<u32> = Vec::new();
        let mut rtts = Vec::with_capacity(PROBES);
        let mut lost = 0;
        for _ in 0..PROBES {
            let id = lock(&self.inner.engine).new_request(&dst);
            let start = Instant::now();
            let mut deadline = Deadline::at(start + timeout);
            let e = lock(&self.inner.engine);
            match self
                .inner
                .push(e, (src, dst.index), &probe(id), &payload, &mut deadline)
                .and_then(|_| self.inner.wait(id, &mut deadline))
            {
                Ok(path) => {
                    rtts.push(start.elapsed().as_nanos() as u64);
                    path_indices = path
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                }
                Err(e) if e.kind() == crate::ErrorKind::Timeout => lost += 1,
                Err(e) => return Err(e),
            }
        }
        let mut bandwidth_gbps = 0.0;
        if !rtts.is_empty() {
            let start = Instant::now();
            let mut deadline = Deadline::at(start + timeout);
            let mut ids = Vec::with_capacity(BURST);
            for _ in 0..BURST {
                let id = lock(&self.inner.engine).new_request(&dst);
                let e = lock(&self.inner.engine);
                self.inner
                    .push(e, (src, dst.index), &probe(id), &payload, &mut deadline)?;
                ids.push(id);
            }
            let mut ok = 0;
            for id in ids {
                if self.inner.wait(id, &mut deadline).is_ok() {
                    ok += 1;
                }
            }
            let secs = start.elapsed().as_secs_f64();
            bandwidth_gbps =
                (ok * 2 * (packet_size + crate::engine::MSG_HEADER)) as f64 * 8.0 / secs / 1e9;
        }
        rtts.sort_unstable();
        Ok(PingResult {
            source: source.to_string(),
            destination: destination.to_string(),
            latency_ns: rtts.get(rtts.len() / 2).map_or(0, |r| r / 2),
            bandwidth_gbps,
            path: {
                let e = lock(&self.inner.engine);
                path_indices
                    .iter()
                    .map(|&i| e.node_id(i).unwrap_or_else(|| format!("#{i}")))
                    .collect()
            },
            packet_loss_rate: lost as f64 / PROBES as f64,
            timestamp: unix_now(),
            success: !rtts.is_empty(),
        })
    }
}
