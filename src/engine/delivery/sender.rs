//! The sending side of a sequenced stream: frames numbered and kept until acknowledged,
//! sent again along the route of now, in order, after a timeout or when the receiver
//! reports a gap: those the receiver does not say it holds (selective acknowledgement); a
//! stream whose receiver is gone or that made no progress for [`DELIVERY_LIMIT`] is failed
//! and started over under a new incarnation.

use super::{
    before, checksum, destination_tag, new_incarnation, succ, Failure, SeqExt, StreamKey,
    DELIVERY_LIMIT, FIRST_RTO, FLAG_SEQ, KEPT_BYTES, KEPT_FRAMES, KEPT_TOTAL, MAX_RTO, MIN_RTO,
    SEQ_EXT,
};
use crate::codec::{id_tag, FrameKind};
use crate::engine::frame::Fragment;
use crate::engine::{lane_of, Engine, MsgHeader, Outgoing, FLAG_ONE_WAY, MSG_HEADER};
use crate::error::{Error, ErrorKind, Result};
use crate::model::PacketPriority;
use crate::ring::{PushError, SlotHeader};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Flags of an acknowledgement: frames wait behind a missing one.
pub(crate) const ACK_GAP: u8 = 1;

/// A frame kept until its receiver acknowledges it: the payload as first pushed.
pub(crate) struct Kept {
    pub(crate) seq: u32,
    slot: SlotHeader,
    bytes: Vec<u8>,
    sent: Instant,
    resent: bool,
    /// The receiver said it holds this frame (after one it misses): not sent again.
    held: bool,
    /// Its message's send failed and said so: a failure of the stream does not count it.
    told: bool,
    /// The first frame of a data message: the request it is, or `None` for a one-way one.
    starts: Option<Option<u64>>,
}

/// A stream's sending side.
pub(crate) struct OutStream {
    tags: (u32, u32),
    incarnation: u64,
    next: u32,
    pub(crate) kept: VecDeque<Kept>,
    pub(crate) bytes: usize,
    /// Registration of the receiver the stream was started for.
    generation: Option<u64>,
    /// Messages (kind, id) whose first fragment went and whose last has not.
    pub(crate) open: Vec<(u8, u64)>,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    /// A round of resends under way.
    round: Option<Round>,
    /// The receiver reported a gap.
    gap: bool,
    round_at: Option<Instant>,
    /// The last acknowledgement that released frames (or the first keep after none).
    progress: Instant,
    acked_any: bool,
}

/// A round of resends: it goes on at kept frame `at` (where a full ring stopped it), up to
/// sequence number `until` (excluded; `None`: every kept frame).
#[derive(Debug, Clone, Copy)]
struct Round {
    at: usize,
    until: Option<u32>,
}

impl OutStream {
    fn new(tags: (u32, u32), generation: Option<u64>, now: Instant) -> OutStream {
        OutStream {
            tags,
            incarnation: new_incarnation(),
            next: 1,
            kept: VecDeque::new(),
            bytes: 0,
            generation,
            open: Vec::new(),
            srtt: None,
            rttvar: Duration::ZERO,
            rto: FIRST_RTO,
            round: None,
            gap: false,
            round_at: None,
            progress: now,
            acked_any: false,
        }
    }

    fn full(&self) -> bool {
        self.kept.len() >= KEPT_FRAMES || self.bytes >= KEPT_BYTES
    }

    /// Whether frames are to be sent again now.
    fn due(&self, now: Instant) -> bool {
        let Some(oldest) = self.kept.front() else {
            return false;
        };
        if self.round.is_some() {
            return true;
        }
        if self.gap {
            // Once a round trip: the frames of the last round are still on their way.
            let spacing = self.srtt.unwrap_or(MIN_RTO).max(Duration::from_micros(200));
            if self
                .round_at
                .is_none_or(|t| now.duration_since(t) >= spacing)
            {
                return true;
            }
        }
        now.duration_since(oldest.sent) >= self.rto
    }

    /// Starts over under a new incarnation, with nothing kept or open, for the nodes named
    /// by `tags` now.
    fn restart(&mut self, now: Instant, tags: (u32, u32), generation: Option<u64>) {
        *self = OutStream {
            srtt: self.srtt,
            ..OutStream::new(tags, generation, now)
        };
    }
}

impl Engine {
    /// Whether the fragment at `offset` of message `o` from `src` to `dst` (next hop `via`)
    /// travels sequenced: a message is sequenced or not from its first fragment to its
    /// last, whatever the route does meanwhile, and while a stream keeps frames its next
    /// messages are sequenced too (so they do not overtake them). `Err` for the rest of a
    /// message that began on a direct ring and whose route now goes through a forwarder:
    /// its first part cannot be put in order with the rest.
    pub(in crate::engine) fn sequence_of(
        &self,
        (src, dst, via): (u32, u32, u32),
        o: &Outgoing<'_>,
        offset: usize,
    ) -> Result<bool> {
        let kinds = matches!(
            o.kind,
            FrameKind::Data | FrameKind::Response | FrameKind::Ack | FrameKind::Error
        );
        if !self.delivery.on || !kinds {
            return Ok(false);
        }
        let key = (src, dst, o.priority as u8);
        if offset == 0 {
            // The stream is looked up only while some stream keeps frames: a direct send
            // pays no lookup.
            return Ok(via != dst
                || self.delivery.keeps()
                    && self
                        .delivery
                        .out
                        .get(&key)
                        .is_some_and(|s| !s.kept.is_empty()));
        }
        let stream = self.delivery.out.get(&key);
        let began = stream.is_some_and(|s| s.open.contains(&(o.kind as u8, o.request_id)));
        if !began && via != dst {
            return Err(Error::NoRouteFound(format!(
                "a message from node {} to node {} could not be sent whole: \
                 its stream failed, or its route came to go through a forwarder, in the middle \
                 of it",
                self.name_for_errors(src),
                self.name_for_errors(dst)
            )));
        }
        Ok(began)
    }

    /// Whether a data message from `src` to `dst` would travel sequenced now.
    pub fn sequences_toward(&mut self, src: u32, dst: u32) -> bool {
        self.delivery.on && self.via(src, dst).is_ok_and(|via| via != dst)
    }

    /// The failure of earlier messages from `src` to `dst` not yet reported, as the error a
    /// send from `src` to `dst` returns instead of sending.
    pub(crate) fn take_failure(&mut self, src: u32, dst: u32) -> Option<Error> {
        if self.delivery.failures.is_empty() {
            return None;
        }
        let f: Failure = self.delivery.failures.remove(&(src, dst))?;
        let (n, why) = (f.messages, f.why);
        let pair = format!(
            "from {:?} to {:?}",
            self.name_of(src).as_str(),
            self.name_of(dst).as_str()
        );
        Some(Error::new(
            f.kind,
            match f.unconfirmed {
                0 => format!(
                    "{n} earlier message(s) {pair} were not delivered ({why}); this send was \
                     not made"
                ),
                u => format!(
                    "{n} earlier message(s) {pair} may not have been delivered ({why}); {u} of \
                     them went over a connection that closed before its peer confirmed taking \
                     them, and may have arrived; this send was not made"
                ),
            },
        ))
    }

    /// Counts `messages` from `src` to `dst` that were not delivered, for the pair's next
    /// send to report (see [`Engine::take_failure`]). Returns the pair's failure.
    pub(crate) fn note_failures(
        &mut self,
        (src, dst): (u32, u32),
        messages: u64,
        kind: ErrorKind,
        why: &str,
    ) -> &mut Failure {
        self.delivery.counters.failed += messages;
        let f = self
            .delivery
            .failures
            .entry((src, dst))
            .or_insert_with(|| Failure {
                messages: 0,
                unconfirmed: 0,
                kind,
                why: why.to_string(),
            });
        f.messages += messages;
        f
    }

    /// Pushes the fragment at `offset` (at most `limit` bytes of body) of a sequenced
    /// stream's message toward `via`, numbered, and keeps it until acknowledged. The end of
    /// the fragment, or `PushError::Full` when the ring has no room or the stream keeps
    /// as much as it may.
    pub(in crate::engine) fn push_sequenced(
        &mut self,
        (src, dst, via): (u32, u32, u32),
        o: &Outgoing<'_>,
        data: &[u8],
        (offset, limit): (usize, usize),
    ) -> Result<std::result::Result<usize, PushError>> {
        let key = (src, dst, o.priority as u8);
        let now = Instant::now();
        match self.delivery.out.get(&key).map(|s| s.generation) {
            None => {
                let generation = self.live_generation(dst);
                let tags = (
                    id_tag(&self.name_of(src)),
                    destination_tag(&self.name_of(dst), generation),
                );
                let s = OutStream::new(tags, generation, now);
                self.delivery.out.insert(key, s);
            }
            Some(g) if offset == 0 && self.live_generation(dst) != g => {
                // The receiving node registered again (its process restarted): what went to
                // the earlier registration failed, and this message starts a new stream.
                let why = "its receiving node restarted";
                self.fail_stream(key, ErrorKind::NodeNotFound, why);
            }
            Some(_) => {}
        }
        let s = self.delivery.out.get_mut(&key).expect("inserted");
        if s.full() || self.delivery.kept_bytes >= KEPT_TOTAL {
            return Ok(Err(PushError::Full));
        }
        let f = Fragment::of((src, dst), o, data, (offset, limit));
        let (hdr, meta_part, data_part, end) = (f.header, f.metadata, f.data, f.end);
        let total = o.metadata.len() + data.len();
        let slot = o.slot(src, FLAG_SEQ);
        let (seq, incarnation) = (s.next, s.incarnation);
        let crc = checksum(
            s.tags,
            &slot,
            &hdr,
            (seq, incarnation),
            &[meta_part, data_part],
        );
        let ext = SeqExt {
            seq,
            crc,
            incarnation,
        };
        let mut bytes = Vec::with_capacity(MSG_HEADER + SEQ_EXT + (end - offset));
        bytes.extend_from_slice(&hdr);
        bytes.extend_from_slice(&ext.encode());
        bytes.extend_from_slice(meta_part);
        bytes.extend_from_slice(data_part);
        let lane = lane_of(o.priority);
        if let Err(e) = self.producer(src, via, lane)?.try_push(slot, &[&bytes]) {
            return Ok(Err(e));
        }
        let starts = (offset == 0 && o.kind == FrameKind::Data)
            .then_some((!o.one_way).then_some(o.request_id));
        let s = self.delivery.out.get_mut(&key).expect("inserted");
        if s.kept.is_empty() {
            s.progress = now;
        }
        s.next = succ(seq);
        s.bytes += bytes.len();
        self.delivery.kept_bytes += bytes.len();
        let message = (o.kind as u8, o.request_id);
        if end < total && offset == 0 {
            s.open.push(message);
        } else if end == total && offset > 0 {
            s.open.retain(|m| *m != message);
        }
        s.kept.push_back(Kept {
            seq,
            slot,
            bytes,
            sent: now,
            resent: false,
            held: false,
            told: false,
            starts,
        });
        self.delivery.kept += 1;
        self.delivery.counters.sequenced += 1;
        Ok(Ok(end))
    }

    /// Sends again what streams hold past their timeout or behind a reported gap; checks at
    /// most every millisecond unless a gap was reported.
    pub(in crate::engine) fn resend_due(&mut self) {
        let now = Instant::now();
        if !self.delivery.resend_asked && self.delivery.check_at.is_some_and(|t| now < t) {
            return;
        }
        self.delivery.resend_asked = false;
        self.delivery.check_at = Some(now + Duration::from_millis(1));
        let keys: Vec<StreamKey> = self
            .delivery
            .out
            .iter()
            .filter(|(_, s)| s.due(now))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.resend(key, now);
        }
    }

    /// One round (or the rest of one) of resends of stream `key`, from its oldest kept frame:
    /// after a reported gap, the frames before the last the receiver holds that it does not
    /// hold (the oldest alone when it said nothing of them); after a timeout, every kept
    /// frame it does not hold (every one, when the round before brought no progress).
    fn resend(&mut self, key: StreamKey, now: Instant) {
        let (src, dst, _) = key;
        let Ok(via) = self.via(src, dst) else {
            // No route now: the frames wait for one (or for the stream to fail).
            return;
        };
        let Some(mut s) = self.delivery.out.remove(&key) else {
            return;
        };
        if s.round.is_none() {
            let timed_out = s
                .kept
                .front()
                .is_some_and(|k| now.duration_since(k.sent) >= s.rto);
            let until = if s.gap && !timed_out {
                let oldest = s.kept.front().map(|k| succ(k.seq));
                s.kept
                    .iter()
                    .rev()
                    .find(|k| k.held)
                    .map(|k| k.seq)
                    .or(oldest)
            } else {
                if s.round_at.is_some_and(|t| s.progress < t) {
                    // What the receiver said it held may be gone (it started over).
                    s.kept.iter_mut().for_each(|k| k.held = false);
                }
                // A timeout: wait longer before the next one.
                s.rto = (s.rto * 2).min(MAX_RTO);
                self.delivery.counters.timeouts += 1;
                None
            };
            s.gap = false;
            s.round_at = Some(now);
            s.round = Some(Round { at: 0, until });
        }
        let round = s.round.expect("set above");
        let mut at = round.at;
        let mut sent = 0;
        let lane = lane_of(PacketPriority::from_u32(key.2 as u32).unwrap_or_default());
        if let Ok(p) = self.producer(src, via, lane) {
            while let Some(k) = s.kept.get_mut(at) {
                if round.until.is_some_and(|u| !before(k.seq, u)) {
                    at = s.kept.len();
                    break;
                }
                if !k.held {
                    if p.try_push(k.slot, &[&k.bytes]).is_err() {
                        break;
                    }
                    k.sent = now;
                    k.resent = true;
                    sent += 1;
                }
                at += 1;
            }
        }
        if sent > 0 {
            self.registry.ring_bell(via);
            self.counters.frames_sent += sent;
            self.delivery.counters.resent += sent;
        }
        s.round = (at < s.kept.len()).then_some(Round { at, ..round });
        self.delivery.out.insert(key, s);
    }

    /// An acknowledgement from `from` for stream (`at`, `from`): releases what it covers
    /// and notes a reported gap.
    pub(in crate::engine) fn on_delivered(&mut self, at: u32, from: u32, body: &[u8]) {
        let Some(ack) = super::receiver::Ack::decode(body) else {
            self.delivery.counters.corrupt += 1;
            return;
        };
        let key = (at, from, ack.priority);
        let now = Instant::now();
        let Some(s) = self.delivery.out.get_mut(&key) else {
            return;
        };
        if ack.crc != ack.checksum((s.tags.1, s.tags.0)) {
            self.delivery.counters.corrupt += 1;
            return;
        }
        if ack.incarnation != s.incarnation {
            return;
        }
        if !before(ack.seq, s.next) {
            // Acknowledges what was never sent.
            self.delivery.counters.corrupt += 1;
            return;
        }
        let mut released = 0;
        let mut sample = None;
        while let Some(k) = s.kept.front() {
            if before(ack.seq, k.seq) {
                break;
            }
            let k = s.kept.pop_front().expect("front");
            s.bytes -= k.bytes.len();
            self.delivery.kept_bytes -= k.bytes.len();
            sample = (!k.resent).then(|| now.duration_since(k.sent));
            released += 1;
        }
        if released > 0 {
            s.acked_any = true;
            s.progress = now;
            s.round = s
                .round
                .map(|r| Round {
                    at: r.at.saturating_sub(released),
                    ..r
                })
                .filter(|r| r.at < s.kept.len());
            if let Some(rtt) = sample {
                // RFC 6298: a smoothed round trip and its variation.
                let (srtt, var) = match s.srtt {
                    None => (rtt, rtt / 2),
                    Some(v) => {
                        let dev = v.abs_diff(rtt);
                        ((v * 7 + rtt) / 8, (s.rttvar * 3 + dev) / 4)
                    }
                };
                s.srtt = Some(srtt);
                s.rttvar = var;
            }
            // Progress ends the back-off of timeouts.
            if let Some(srtt) = s.srtt {
                s.rto = (srtt + s.rttvar * 4).clamp(MIN_RTO, MAX_RTO);
            }
            self.delivery.kept -= released;
            self.delivery.counters.acks_received += 1;
        }
        if ack.flags & ACK_GAP != 0 && !s.kept.is_empty() {
            s.gap = true;
            self.delivery.resend_asked = true;
            if ack.held != 0 {
                // Frames after the missing one that the receiver keeps.
                for k in s.kept.iter_mut() {
                    let i = k.seq.wrapping_sub(ack.seq).wrapping_sub(2);
                    if i < super::receiver::HELD_SPAN && ack.held >> i & 1 != 0 {
                        k.held = true;
                    }
                }
            }
        }
    }

    /// Message `o` from `src` to `dst`, of which some fragments went, will not be sent
    /// whole: its sender was told (its send failed). Its fragments still kept are not counted
    /// again if the stream fails, and the stream no longer holds it open.
    pub(crate) fn abandon_message(&mut self, src: u32, dst: u32, o: &Outgoing<'_>) {
        let Some(s) = self.delivery.out.get_mut(&(src, dst, o.priority as u8)) else {
            return;
        };
        s.open.retain(|m| *m != (o.kind as u8, o.request_id));
        for k in s.kept.iter_mut() {
            if k.slot.kind == o.kind as u8 && MsgHeader::decode(&k.bytes).id == o.request_id {
                k.told = true;
            }
        }
    }

    /// Fails streams whose receiver is gone, restarted, or acknowledged nothing for
    /// [`DELIVERY_LIMIT`] (run from the periodic tick).
    pub(in crate::engine) fn fail_undeliverable(&mut self, now: Instant) {
        let keys: Vec<(StreamKey, Option<u64>, Instant)> = self
            .delivery
            .out
            .iter()
            .filter(|(_, s)| !s.kept.is_empty())
            .map(|(k, s)| (*k, s.generation, s.progress))
            .collect();
        for (key, generation, progress) in keys {
            let dst = key.1;
            if self.destination_lost(dst) || self.live_generation(dst) != generation {
                let why = "its receiving node left the fabric or its process died";
                self.fail_stream(key, ErrorKind::NodeNotFound, why);
            } else if now.duration_since(progress) > DELIVERY_LIMIT {
                let why = "no acknowledgement came within the delivery limit";
                self.fail_stream(key, ErrorKind::Timeout, why);
            }
        }
    }

    /// Ends stream `key`, whose receiving node left: what it keeps fails.
    pub(in crate::engine) fn end_stream(&mut self, key: StreamKey) {
        let why = "its receiving node left the fabric or its process died";
        self.fail_stream(key, ErrorKind::NodeNotFound, why);
        self.delivery.out.remove(&key);
    }

    /// Fails waiting request `request`, whose stream failed, and counts it.
    fn fail_request(&mut self, request: u64, kind: ErrorKind, why: &str) {
        self.fail(request, Error::new(kind, format!("not delivered: {why}")));
        self.delivery.counters.failed += 1;
        self.delivery.counters.failed_requests += 1;
    }

    /// Drops what stream `key` keeps, tells its senders (requests fail now; one-way
    /// messages are reported by the next send of the pair), and starts the stream over.
    fn fail_stream(&mut self, key: StreamKey, kind: ErrorKind, why: &str) {
        let (src, dst, _) = key;
        let generation = self.live_generation(dst);
        let tags = (
            id_tag(&self.name_of(src)),
            destination_tag(&self.name_of(dst), generation),
        );
        let Some(s) = self.delivery.out.get_mut(&key) else {
            return;
        };
        let kept = std::mem::take(&mut s.kept);
        self.delivery.kept_bytes -= s.bytes;
        s.restart(Instant::now(), tags, generation);
        self.delivery.kept -= kept.len();
        let mut posts = 0;
        for k in kept.iter().filter(|k| !k.told) {
            match k.starts {
                Some(Some(request)) => self.fail_request(request, kind, why),
                Some(None) => posts += 1,
                None => {}
            }
        }
        // A message whose first frame was acknowledged and a later one was not.
        if let Some(k) = kept
            .front()
            .filter(|k| !k.told && k.starts.is_none() && k.slot.kind == FrameKind::Data as u8)
        {
            if k.slot.flags & FLAG_ONE_WAY != 0 {
                posts += 1;
            } else {
                self.fail_request(MsgHeader::decode(&k.bytes).id, kind, why);
            }
        }
        if posts > 0 {
            self.note_failures((src, dst), posts, kind, why);
        }
    }
}
