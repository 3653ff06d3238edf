//! Sends: the outbound rings, a message's fragments pushed onto the lane of its priority, and
//! the engine's own replies (responses, receipts, errors) that wait for room.

use super::chunks::ChunkPush;
use super::replies::{push_detour, push_reply, REPLY_INLINE_MAX};
use super::{
    fragment_limit, lane_of, lane_slots, push_fragment, Back, Engine, Inbound, Leg, Outgoing,
    DESCRIPTOR_THRESHOLD, MAX_MESSAGE,
};
use crate::codec::FrameKind;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{DataType, PacketPriority};
use crate::ring::PushError;
use crate::transport::channel::Lane;
use crate::transport::Outbound;

impl Engine {
    /// Counts frames and payload bytes an endpoint pushed into its own ring.
    pub fn count_sent(&mut self, frames: u64, bytes: u64) {
        self.counters.frames_sent += frames;
        self.counters.bytes_sent += bytes;
    }
    /// The outbound channel from `src` to `dst` on `lane`, opened through the transport that
    /// reaches `dst` on first use.
    pub(super) fn producer(&mut self, src: u32, dst: u32, lane: Lane) -> Result<&mut dyn Outbound> {
        if !self.out.contains_key(&(src, dst, lane)) {
            if let Some(conn) = self.tcp_route(dst) {
                let out = self
                    .tcp_out(conn, src, dst, lane)
                    .expect("a route has hosts");
                let g = self.live_generation(dst).unwrap_or(u64::MAX);
                self.out_generation.insert(dst, g);
                self.out.insert((src, dst, lane), Box::new(out));
                return Ok(&mut **self.out.get_mut(&(src, dst, lane)).expect("inserted"));
            }
            if crate::transport::tcp::is_remote(dst) {
                let name = self.name_of(dst);
                return Err(Error::NodeNotFound(format!(
                    "node {:?} is on another host that no connection reaches now",
                    name.as_str()
                )));
            }
            let slots = lane_slots(lane);
            let local = self.hosted.contains_key(&dst);
            let transport = if local {
                &mut self.local
            } else {
                &mut self.host
            };
            let (producer, inbound) = transport.connect((src, dst, lane), slots)?;
            if let Some(consumer) = inbound {
                self.inbound.push(Inbound {
                    src,
                    dst,
                    lane,
                    consumer,
                    stream: false,
                    retired: false,
                });
            }
            if !local {
                // Always recorded, so the ring is dropped once the index holds another
                // registration (a reply to a node this engine never looked up would otherwise
                // keep going to the ring of the index's earlier holder). A destination that
                // is not live gets a generation no entry has: dropped at the next change.
                let g = self.registry.get(dst).map_or(u64::MAX, |e| e.generation);
                self.out_generation.insert(dst, g);
            }
            self.out.insert((src, dst, lane), producer);
        }
        Ok(&mut **self.out.get_mut(&(src, dst, lane)).expect("inserted"))
    }
    /// Pushes the fragment of the body `o.metadata ‖ data` that starts at `offset`, on the
    /// lane of `o.priority`. Returns the offset after it and whether the message is complete,
    /// or `None` when the ring is full (poll, then retry). A message that fits one frame is
    /// one fragment.
    pub fn try_send_from(
        &mut self,
        src: u32,
        dst: u32,
        o: &Outgoing<'_>,
        data: &[u8],
        offset: usize,
    ) -> Result<Option<(usize, bool)>> {
        let total = o.metadata.len() + data.len();
        if total > MAX_MESSAGE {
            return Err(Error::InvalidArgument(format!(
                "message of {total} bytes exceeds the largest message ({MAX_MESSAGE} bytes)"
            )));
        }
        // Events queued for this pair go first: nothing overtakes them.
        if offset == 0
            && !o.coalesced
            && !self.spikes.is_empty()
            && !self.flush_batch((src, dst))?
        {
            return Ok(None);
        }
        if offset == 0
            && o.kind == FrameKind::Data
            && !o.coalesced
            && !self.delivery.failures.is_empty()
        {
            if let Some(failed) = self.take_failure(src, dst) {
                return Err(failed);
            }
        }
        let lane = lane_of(o.priority);
        let via = self.via(src, dst)?;
        let sequenced = self.sequence_of((src, dst, via), o, offset)?;
        let by_descriptor = data.len() > DESCRIPTOR_THRESHOLD
            && matches!(o.kind, FrameKind::Data | FrameKind::Response)
            && !sequenced;
        // Bytes in this host's shared segments do not cross to another host.
        if by_descriptor && self.tcp_route(via).is_none() && !crate::transport::tcp::is_remote(dst)
        {
            match self.try_push_chunk(src, dst, o, data, offset)? {
                ChunkPush::Sent(end) => return Ok(Some((end, end == total))),
                ChunkPush::Full => return Ok(None),
                ChunkPush::NoChunk => {}
            }
        }
        // Straight to the process hosting the destination over TCP: frames as large as a
        // connection carries (fewer frames, fewer system calls on both sides).
        let limit = if via == dst && self.tcp_route(via).is_some() {
            super::TCP_FRAGMENT
        } else {
            fragment_limit(lane, self.max_packet)
        };
        let pushed = if sequenced {
            let limit = limit - super::SEQ_EXT;
            self.push_sequenced((src, dst, via), o, data, (offset, limit))?
        } else {
            let p = self.producer(src, via, lane)?;
            push_fragment(p, (src, dst), o, data, offset, limit)
        };
        match pushed {
            Ok(end) => {
                self.registry.ring_bell(via);
                self.counters.frames_sent += 1;
                self.counters.bytes_sent += (end - offset) as u64;
                Ok(Some((end, end == total)))
            }
            Err(PushError::Full) => Ok(None),
            Err(PushError::Corrupt) if self.tcp_route(via).is_some() => {
                self.out.remove(&(src, via, lane));
                Err(Error::NodeNotFound(format!(
                    "the connection to the host of node index {via} closed"
                )))
            }
            Err(PushError::Corrupt) => Err(self.drop_corrupt(src, via, lane)),
            Err(PushError::TooLarge) => {
                Err(Error::InvalidArgument("fragment exceeds the ring".into()))
            }
        }
    }
    /// Answers request `request_id` from `from` to `to` with an error.
    pub(super) fn answer_error(
        &mut self,
        back: Back<'_>,
        (from, to): (u32, u32),
        request_id: u64,
        kind: ErrorKind,
        message: &str,
    ) {
        let mut body = kind.status_code().to_le_bytes().to_vec();
        body.extend_from_slice(message.as_bytes());
        let o = Outgoing {
            kind: FrameKind::Error,
            request_id,
            priority: PacketPriority::High,
            data_type: DataType::ControlMessage,
            one_way: true,
            metadata: &[],
            framed: false,
            coalesced: false,
        };
        self.answer(back, (from, to), &o, &body);
    }

    /// Sends an answer: into the reply ring `back` of the endpoint the request came through
    /// when it fits there now, else through the engine's rings.
    #[inline]
    pub(super) fn answer(
        &mut self,
        back: Back<'_>,
        (from, to): (u32, u32),
        o: &Outgoing<'_>,
        data: &[u8],
    ) {
        if let Some(p) = back {
            if push_reply(p, from, o.kind, o.request_id, data) {
                self.registry.ring_bell(to);
                self.counters.frames_sent += 1;
                self.counters.bytes_sent += data.len() as u64;
                return;
            }
            if data.len() > REPLY_INLINE_MAX {
                // Tell the waiter to look for it in the engine's rings.
                push_detour(p, from, o.kind, o.request_id);
            }
        }
        self.send_reply(from, to, o, data);
    }

    /// Sends a reply (all its fragments): what does not find room now waits in the deferred
    /// queue for later polls (see [`super::deferred`]), so a requester that reads nothing
    /// never holds up the answers to others.
    pub(super) fn send_reply(&mut self, from: u32, to: u32, o: &Outgoing<'_>, data: &[u8]) {
        if self.defers_to(to) {
            // Behind the replies to `to` that wait already.
            self.defer_reply((from, to), o, data, 0);
            return;
        }
        let mut offset = 0;
        let mut stalled: Option<std::time::Instant> = None;
        loop {
            match self.try_send_from(from, to, o, data, offset) {
                Ok(Some((_, true))) => return,
                Ok(Some((next, false))) => {
                    offset = next;
                    stalled = None;
                }
                Ok(None) => {
                    // A reader that is reading makes room within microseconds (a large
                    // answer's chunks come back as it copies them out): wait that long
                    // before copying the rest aside.
                    let now = std::time::Instant::now();
                    if now.duration_since(*stalled.get_or_insert(now)) < BRIEF_STALL {
                        std::hint::spin_loop();
                        continue;
                    }
                    self.defer_reply((from, to), o, data, offset);
                    return;
                }
                Err(e) if self.route_pending(&e, to) => {
                    // Routes are being rebuilt (a hop just went down): the answer waits
                    // for them like one that finds no room.
                    self.defer_reply((from, to), o, data, offset);
                    return;
                }
                Err(_) => {
                    self.counters.errors += 1;
                    return;
                }
            }
        }
    }

    /// Whether `e`, from a send of an answer to `to`, comes from the way there only (no
    /// route for the moment, a connection or forwarder on it that went down) while `to`
    /// itself is still there: with fault tolerance on, the answer is kept and sent when
    /// routes come back, as one that finds no room (routes through a hop that went down
    /// vanish until the route service rebuilds them). Reads the registry: only on errors.
    pub(super) fn route_pending(&mut self, e: &crate::error::Error, to: u32) -> bool {
        self.delivery.on
            && matches!(e.kind(), ErrorKind::NoRouteFound | ErrorKind::NodeNotFound)
            && !self.unreachable(to)
    }
}

impl Engine {
    /// Whether every latency-lane frame this engine pushed from `src` toward `dst` (to it,
    /// or to its cached next hop) was taken by the receiver, no reply to `dst` is kept for
    /// later and no neuromorphic batch of the pair waits: a send of the latency lane that
    /// takes another ring after these cannot overtake them, and no sequenced frame of the
    /// pair waits to be acknowledged or sent again. (The bulk lane keeps no order with the
    /// latency lane.)
    pub fn drained_toward(&mut self, src: u32, dst: u32) -> bool {
        self.drained_on(src, dst, &[Lane::Latency])
    }

    /// [`Engine::drained_toward`] on both lanes: nothing this engine pushed from `src` toward
    /// `dst` at any priority waits, so no send of the pair on another ring can overtake it
    /// (what an endpoint, whose messages keep their order at every priority, needs).
    pub fn drained_toward_every_lane(&mut self, src: u32, dst: u32) -> bool {
        self.drained_on(src, dst, &[Lane::Latency, Lane::Bulk])
    }

    fn drained_on(&mut self, src: u32, dst: u32, lanes: &[Lane]) -> bool {
        let hop = self
            .hops
            .get(&(src, dst, Leg::First))
            .copied()
            .unwrap_or(dst);
        // Frames kept for resending would be overtaken by a send on another ring.
        let kept = self.delivery.keeps()
            && self
                .delivery
                .out
                .iter()
                .any(|(&(s, d, _), o)| s == src && d == dst && !o.kept.is_empty());
        !kept
            && !self.defers_to(dst)
            && !self.spikes.contains_key(&(src, dst))
            && [dst, hop].iter().all(|&to| {
                lanes.iter().all(|&lane| {
                    self.out
                        .get_mut(&(src, to, lane))
                        .is_none_or(|p| p.is_drained())
                })
            })
    }

    /// Whether the rings to `node` were made for a registration that no longer holds its
    /// index, or whose entry no longer reads as a valid node (a reply into them reaches
    /// nobody). Reads the registry entry: not per message.
    pub(super) fn ring_outlived(&self, node: u32) -> bool {
        self.out_generation
            .get(&node)
            .is_some_and(|&g| self.live_generation(node) != Some(g))
    }
}

/// How long a reply waits for room before it is deferred (see [`super::deferred`]).
const BRIEF_STALL: std::time::Duration = std::time::Duration::from_micros(200);

pub(super) fn decode_error(body: &[u8]) -> Error {
    if body.len() < 4 {
        return Error::MalformedFrame("error frame without a status".into());
    }
    let code = i32::from_le_bytes(body[0..4].try_into().expect("4 bytes"));
    let msg = String::from_utf8_lossy(&body[4..]).into_owned();
    match ErrorKind::from_status_code(code) {
        Some(kind) => Error::new(kind, msg),
        None => Error::MalformedFrame(format!("unknown status {code}: {msg}")),
    }
}
