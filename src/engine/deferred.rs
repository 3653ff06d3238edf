//! Replies that found no room: kept in order and sent by later polls, so a requester that
//! reads nothing never holds up the engine's answers to everyone else.
//!
//! An answer (response, receipt, error, pong) whose ring back is full is copied here with the
//! offset it reached, and every poll pushes what fits before anything else. One is dropped
//! An answer whose destination has no route for the moment (routes being rebuilt after a hop
//! went down), with fault tolerance on, waits here the same way. One is dropped
//! (and counted in `errors`) when its destination's process died or another registration
//! took its index (checked every millisecond while it waits), when it waited [`DEFERRED_FOR`]
//! in all, or when the replies
//! kept would exceed [`DEFERRED_BYTES`]; its requester then times out, as it would waiting
//! for an engine that answered nobody else meanwhile.

use super::lost::GONE_CHECK_EVERY;
use super::{Engine, Outgoing};
use crate::codec::FrameKind;
use crate::model::{DataType, PacketPriority};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes of replies kept waiting for room, in all.
pub const DEFERRED_BYTES: usize = 256 << 20;
/// How long a reply waits for room before it is dropped.
const DEFERRED_FOR: Duration = Duration::from_secs(5);

/// One reply waiting for room.
pub(super) struct Deferred {
    from: u32,
    to: u32,
    kind: FrameKind,
    request_id: u64,
    priority: PacketPriority,
    data_type: DataType,
    metadata: Vec<u8>,
    data: Vec<u8>,
    /// How much of `metadata ‖ data` was pushed already.
    offset: usize,
    since: Instant,
}

/// The replies waiting, oldest first, with their bytes.
#[derive(Default)]
pub(super) struct Queue {
    list: VecDeque<Deferred>,
    bytes: usize,
    /// When the destinations of waiting replies are checked next.
    next_check: Option<Instant>,
}

impl Queue {
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl Engine {
    /// Keeps the rest of reply `o` (from `offset` of `metadata ‖ data`) from `from` to `to`
    /// for later polls; drops it when the queue is full.
    pub(super) fn defer_reply(
        &mut self,
        (from, to): (u32, u32),
        o: &Outgoing<'_>,
        data: &[u8],
        offset: usize,
    ) {
        let size = o.metadata.len() + data.len();
        if self.deferred.bytes + size > DEFERRED_BYTES {
            self.counters.errors += 1;
            return;
        }
        self.deferred.bytes += size;
        self.deferred.list.push_back(Deferred {
            from,
            to,
            kind: o.kind,
            request_id: o.request_id,
            priority: o.priority,
            data_type: o.data_type,
            metadata: o.metadata.to_vec(),
            data: data.to_vec(),
            offset,
            since: Instant::now(),
        });
    }

    /// Whether replies to `to` wait already (a new one goes behind them).
    pub(super) fn defers_to(&self, to: u32) -> bool {
        !self.deferred.is_empty() && self.deferred.list.iter().any(|d| d.to == to)
    }

    /// Pushes what fits of the waiting replies, oldest first; drops those whose destination
    /// is gone or that waited too long.
    pub(super) fn flush_deferred(&mut self) {
        let mut queue = std::mem::take(&mut self.deferred);
        let now = Instant::now();
        let check = queue.next_check.is_none_or(|at| now >= at);
        if check {
            queue.next_check = Some(now + GONE_CHECK_EVERY);
        }
        let mut blocked: Vec<u32> = Vec::new();
        queue.list.retain_mut(|d| {
            if blocked.contains(&d.to) {
                return true;
            }
            let o = Outgoing {
                kind: d.kind,
                request_id: d.request_id,
                priority: d.priority,
                data_type: d.data_type,
                one_way: true,
                metadata: &d.metadata,
                framed: false,
                coalesced: false,
            };
            loop {
                match self.try_send_from(d.from, d.to, &o, &d.data, d.offset) {
                    Ok(Some((_, true))) => {
                        queue.bytes -= d.metadata.len() + d.data.len();
                        return false;
                    }
                    Ok(Some((next, false))) => d.offset = next,
                    Ok(None)
                        if now.duration_since(d.since) < DEFERRED_FOR
                            && !(check && self.unreachable(d.to)) =>
                    {
                        // Full: this destination's later replies wait behind this one.
                        blocked.push(d.to);
                        return true;
                    }
                    Err(e)
                        if self.route_pending(&e, d.to)
                            && now.duration_since(d.since) < DEFERRED_FOR
                            && !(check && self.unreachable(d.to)) =>
                    {
                        // Full: this destination's later replies wait behind this one.
                        blocked.push(d.to);
                        return true;
                    }
                    _ => {
                        self.counters.errors += 1;
                        queue.bytes -= d.metadata.len() + d.data.len();
                        return false;
                    }
                }
            }
        });
        // Replies deferred while flushing (none: `try_send_from` never defers) join them.
        let mut added = std::mem::replace(&mut self.deferred, queue);
        while let Some(d) = added.list.pop_front() {
            self.deferred.bytes += d.metadata.len() + d.data.len();
            self.deferred.list.push_back(d);
        }
    }
}
