//! Coalescing of neuromorphic events: small one-way events of one (source, destination) pair
//! wait, at most a window, to travel together as one frame.

use super::{Engine, Outgoing};
use crate::codec::FrameKind;
use crate::error::{Error, Result};
use crate::model::{DataType, PacketPriority};

/// Largest event that is coalesced.
pub const SPIKE_EVENT_MAX: usize = 256;
/// Largest batch of coalesced events, in bytes.
const SPIKE_BATCH_BYTES: usize = 8 << 10;

/// Neuromorphic events waiting to go out together.
pub(super) struct SpikeBatch {
    bytes: Vec<u8>,
    events: usize,
    since: std::time::Instant,
    priority: PacketPriority,
    data_type: DataType,
}

/// When events are coalesced: the first event waits at most `window` for others, and a batch
/// goes out at `max_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalescing {
    /// Longest wait of the first event of a batch.
    pub window: std::time::Duration,
    /// Events per batch at most (0 or 1: no coalescing).
    pub max_events: usize,
}

impl Default for Coalescing {
    /// 1 µs or 64 events.
    fn default() -> Coalescing {
        Coalescing {
            window: std::time::Duration::from_micros(1),
            max_events: 64,
        }
    }
}

impl Engine {
    /// Sets when neuromorphic events are coalesced.
    pub fn set_coalescing(&mut self, c: Coalescing) {
        self.coalescing = c;
    }

    /// The coalescing settings.
    pub fn coalescing(&self) -> Coalescing {
        self.coalescing
    }

    /// Queues a one-way neuromorphic event (at most [`SPIKE_EVENT_MAX`] bytes) from `src` to
    /// `dst` into the batch of that pair, which goes out as one frame when it holds
    /// `max_events` events, when its first event has waited `window` (checked here and by
    /// every poll), or before any other message of the pair. `Ok(false)`: the ring has no room
    /// for the full batch now (poll, then retry).
    pub fn coalesce(
        &mut self,
        src: u32,
        dst: u32,
        priority: PacketPriority,
        data_type: DataType,
        event: &[u8],
        now: std::time::Instant,
    ) -> Result<bool> {
        if event.len() > SPIKE_EVENT_MAX {
            return Err(Error::InvalidArgument(format!(
                "an event of {} bytes is too large to coalesce (at most {SPIKE_EVENT_MAX})",
                event.len()
            )));
        }
        let key = (src, dst);
        let flush_first = self.spikes.get(&key).is_some_and(|b| {
            b.priority != priority
                || b.data_type != data_type
                || b.bytes.len() + 4 + event.len() > SPIKE_BATCH_BYTES
                || now.duration_since(b.since) >= self.coalescing.window
        });
        if flush_first && !self.flush_batch(key)? {
            return Ok(false);
        }
        let b = self.spikes.entry(key).or_insert_with(|| SpikeBatch {
            bytes: Vec::with_capacity(1024),
            events: 0,
            since: now,
            priority,
            data_type,
        });
        b.bytes
            .extend_from_slice(&(event.len() as u32).to_le_bytes());
        b.bytes.extend_from_slice(event);
        b.events += 1;
        if b.events >= self.coalescing.max_events {
            // Queued either way; a full ring leaves the batch for the next poll.
            self.flush_batch(key)?;
        }
        Ok(true)
    }

    /// Sends the batch of a pair as one frame. `Ok(false)` when the ring is full (the batch
    /// stays).
    pub(super) fn flush_batch(&mut self, key: (u32, u32)) -> Result<bool> {
        let Some(b) = self.spikes.remove(&key) else {
            return Ok(true);
        };
        let id = self.next_id();
        let o = Outgoing {
            kind: FrameKind::Data,
            request_id: id,
            priority: b.priority,
            data_type: b.data_type,
            one_way: true,
            metadata: &[],
            framed: false,
            coalesced: true,
        };
        match self.try_send_from(key.0, key.1, &o, &b.bytes, 0) {
            Ok(Some(_)) => Ok(true),
            Ok(None) => {
                self.spikes.insert(key, b);
                Ok(false)
            }
            Err(e) => {
                self.counters.errors += b.events as u64;
                if self.delivery.on {
                    // Its events were taken by earlier calls: the pair's next send says so.
                    let why = format!("a batch of {} coalesced events was not sent: {e}", b.events);
                    self.note_failures(key, 1, e.kind(), &why);
                }
                Err(e)
            }
        }
    }

    /// Sends the batches whose window passed by `now` (every batch with `None`). Returns
    /// whether none is left behind by a full ring.
    pub fn flush_spikes(&mut self, now: Option<std::time::Instant>) -> bool {
        let due: Vec<(u32, u32)> = self
            .spikes
            .iter()
            .filter(|(_, b)| {
                now.is_none_or(|n| n.duration_since(b.since) >= self.coalescing.window)
            })
            .map(|(&k, _)| k)
            .collect();
        let mut all = true;
        for k in due {
            all &= self.flush_batch(k).unwrap_or(true);
        }
        all
    }

    /// Whether events wait to be coalesced.
    pub fn has_spikes(&self) -> bool {
        !self.spikes.is_empty()
    }
}
