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
        let mut path = Vec::new();
        let mut rtts = Vec::with_capacity(PROBES);
        let mut lost = 0;
        for _ in 0..PROBES {
            match self.probe_between((src, dst), &probe(0), &payload, timeout) {
                Ok((rtt, p)) => {
                    rtts.push(rtt);
                    path = p;
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
            path: self.path_names(&path),
            packet_loss_rate: lost as f64 / PROBES as f64,
            timestamp: unix_now(),
            success: !rtts.is_empty(),
        })
    }

    /// One probe of `size` bytes from `source` to `destination` at `priority`: the round
    /// trip and the path it took, recorded hop by hop (what `ping` repeats; `hyperfabric
    /// ping` prints one line per probe). `TimeoutError` when no answer came within `timeout`.
    pub fn probe(
        &self,
        source: &str,
        destination: &str,
        size: usize,
        priority: PacketPriority,
        timeout: Duration,
    ) -> Result<Probe> {
        self.inner.check_process()?;
        if size > crate::engine::max_message() {
            return Err(Error::InvalidArgument(format!(
                "probe size {size} exceeds the largest frame ({})",
                crate::engine::max_message()
            )));
        }
        let (src, dst) = self.inner.endpoints(source, destination)?;
        let origin = src.to_le_bytes();
        let o = Outgoing {
            kind: FrameKind::Ping,
            request_id: 0,
            priority,
            data_type: DataType::ControlMessage,
            one_way: false,
            metadata: &origin,
            framed: false,
            coalesced: false,
        };
        let payload = vec![0xa5u8; size];
        let (rtt_ns, path) = self.probe_between((src, dst), &o, &payload, timeout)?;
        Ok(Probe {
            rtt_ns,
            path: self.path_names(&path),
        })
    }

    /// Sends one probe (`o` with a fresh request id) and waits for its answer: the round
    /// trip in ns and the path's node indices.
    fn probe_between(
        &self,
        (src, dst): (u32, crate::engine::Peer),
        o: &Outgoing<'_>,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(u64, Vec<u32>)> {
        let id = lock(&self.inner.engine).new_request(&dst);
        let o = Outgoing {
            request_id: id,
            ..*o
        };
        let start = Instant::now();
        let mut deadline = Deadline::at(start + timeout);
        let e = lock(&self.inner.engine);
        let path = self
            .inner
            .push(e, (src, dst.index), &o, payload, &mut deadline)
            .and_then(|_| self.inner.wait(id, &mut deadline))?;
        let rtt = start.elapsed().as_nanos() as u64;
        let indices = path
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((rtt, indices))
    }

    fn path_names(&self, indices: &[u32]) -> Vec<String> {
        let e = lock(&self.inner.engine);
        indices
            .iter()
            .map(|&i| e.node_id(i).unwrap_or_else(|| format!("#{i}")))
            .collect()
    }
}

/// One probe's answer: [`HyperFabricProtocol::probe`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Probe {
    /// Round trip, ns.
    pub rtt_ns: u64,
    /// The nodes the probe passed, from the source to the destination.
    pub path: Vec<String>,
}
