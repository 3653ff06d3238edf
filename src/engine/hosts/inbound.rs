//! Frames that arrive over TCP: checked, their node indices mapped onto this process's,
//! then pushed into an inbound ring per (source, destination, lane) that the engine polls
//! like any other. A frame whose ring is full waits in a backlog (with every later frame of
//! its connection, so none overtakes another); a connection with [`HOLD_AT`] bytes waiting
//! stops receiving (its receive is cancelled, the kernel keeps what comes, and TCP stops the
//! sender) until its backlog is under [`RESUME_UNDER`]. The other connections go on.

use super::in_place::{InPlace, Lending};
use super::into_buffer::Into;
use super::straight::{Straight, Want};
use super::{lock, Engine, Hosts, Lane, Link};
use crate::codec::FrameKind;
use crate::engine::remote::{FLAG_READ, FLAG_REMOTE};
use crate::engine::{
    lane_slots, Inbound, MsgHeader, FLAG_COMPACT, FLAG_DESCRIPTOR, FLAG_SEQ, MSG_HEADER,
};
use crate::ring::{self, Producer, PushError, Region, SlotHeader};
use crate::transport::tcp::control::{
    counts_for_receipt, Announce, BEAT_STOP, ECHO_LEN, KIND_BEAT, KIND_ECHO, KIND_GONE, KIND_NODES,
    KIND_RECEIPT, RECEIPT_LEN,
};
use crate::transport::tcp::{Body, ConnId, Event, FrameHeader};
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Slots of an inbound ring of frames that came over TCP (1 MiB): a stream brings many
/// frames at once, which a ring of a lane's size would send to the backlog.
const TCP_RING_SLOTS: usize = 16 * 1024;
// A frame of the largest size a connection carries fits an empty inbound ring, and so does
// an announcement.
const _: () = assert!(crate::transport::tcp::MAX_FRAME <= ring::max_payload(TCP_RING_SLOTS));
const _: () =
    assert!(crate::transport::tcp::control::MAX_ANNOUNCE <= crate::transport::tcp::MAX_FRAME);
/// Buffers of backlog frames kept for reuse.
pub(super) const SPARE: usize = 64;
/// Bytes of backlog of one connection from which it stops receiving (see the module
/// documentation).
pub(super) const HOLD_AT: usize = 1 << 20;
/// Bytes of backlog of a held connection under which it receives again.
pub(super) const RESUME_UNDER: usize = HOLD_AT / 4;

/// A frame waiting for room in its ring.
pub(crate) struct Waiting {
    pub(super) conn: ConnId,
    pub(super) key: (u32, u32, Lane),
    pub(super) slot: SlotHeader,
    /// The payload, its message header mapped.
    pub(super) bytes: Vec<u8>,
}

impl Waiting {
    /// The frame's source node.
    pub(super) fn source(&self) -> u32 {
        self.key.0
    }

    /// The ring it waits for.
    pub(super) fn key(&self) -> (u32, u32, Lane) {
        self.key
    }

    /// The frame's destination node (of this process).
    pub(super) fn destination(&self) -> u32 {
        self.key.1
    }
}

/// What a frame that cannot be delivered is.
enum Bad {
    /// The peer broke the protocol: its connection is closed.
    Refuse(&'static str),
    /// It names a node not (or no longer) known, or must be forwarded and is larger than
    /// the lane it would go on: the frame is dropped (and counted).
    Drop,
}

/// A frame mapped onto this process's indices: its ring's key, slot header, message header,
/// and its body when that names nodes too (the path of a ping or pong).
type Mapped = (
    (u32, u32, Lane),
    SlotHeader,
    [u8; MSG_HEADER],
    Option<Vec<u8>>,
);

/// Checks frame `fh` of `link` and maps it: its ring's key, slot header and message header.
/// Whether a frame belongs to a delivery stream (a sequenced message or an acknowledgement):
/// one dropped for want of its node is its sender's to resend or report, not an error here.
fn streamed(fh: &FrameHeader) -> bool {
    fh.slot.flags & FLAG_SEQ != 0 || FrameKind::from_u8(fh.slot.kind) == Some(FrameKind::Delivered)
}

fn translate(
    link: &Link,
    hosted: &dyn Fn(u32) -> bool,
    fh: &FrameHeader,
    payload: &[u8],
) -> Result<Mapped, Bad> {
    if FrameKind::from_u8(fh.slot.kind).is_none() {
        return Err(Bad::Refuse("a frame of an unknown kind"));
    }
    if fh.slot.flags & (FLAG_DESCRIPTOR | FLAG_COMPACT | FLAG_REMOTE | FLAG_READ) != 0 {
        return Err(Bad::Refuse(
            "a frame that refers to its sender's memory (such frames never cross hosts)",
        ));
    }
    if payload.len() < MSG_HEADER {
        return Err(Bad::Refuse("a frame shorter than its message header"));
    }
    let map = |i: u32| link.theirs.get(&i).copied().ok_or(Bad::Drop);
    let (src, dst) = (map(fh.slot.src)?, map(fh.dst)?);
    if !link.hosted.contains(&src) {
        // A frame leaves a host from a node of that host (the message's origin may be
        // elsewhere, when it is forwarded): another's would speak for a node it does not host.
        return Err(Bad::Drop);
    }
    if !hosted(dst) {
        // A node that left while the frame travelled (the peer has not seen it go yet).
        return Err(Bad::Drop);
    }
    let mut m = MsgHeader::decode(payload);
    // Frames to the node that receives them may be as large as a connection carries; a frame
    // that goes on from here must fit the lane it goes on in this host's rings (an honest
    // relay's ping grows by a hop's index, so one too large is dropped, not refused).
    let onward = crate::engine::lane_of(m.priority());
    if m.dst != fh.dst && payload.len() > ring::max_payload(lane_slots(onward)) {
        return Err(Bad::Drop);
    }
    m.dst = map(m.dst)?;
    m.origin = map(m.origin)?;
    let body = &payload[MSG_HEADER..];
    let path = matches!(
        FrameKind::from_u8(fh.slot.kind),
        Some(FrameKind::Ping | FrameKind::Pong)
    ) && m.offset == 0
        && body.len() == m.total as usize;
    let meta = fh.slot.aux as usize;
    let body = (path && meta <= body.len() && meta % 4 == 0).then(|| {
        // The path of a ping: the indices of the nodes it went through, each mapped (one
        // this side does not know reads as unknown).
        let mut b = body.to_vec();
        for w in b[..meta].chunks_exact_mut(4) {
            let theirs = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            let mine = link.theirs.get(&theirs).copied().unwrap_or(u32::MAX);
            w.copy_from_slice(&mine.to_le_bytes());
        }
        b
    });
    Ok((
        (src, dst, fh.lane),
        SlotHeader { src, ..fh.slot },
        m.encode(),
        body,
    ))
}

/// Lends the buffer of the message landing into a waiting receive's to the frame of it
/// that lands on connection `id` now, and records the lending.
fn lend_into(
    i: &Into,
    lending: &mut FxHashMap<ConnId, Lending>,
    id: ConnId,
    now: std::time::Instant,
) -> Body {
    let bytes = i.total();
    lending.insert(id, Lending { since: now, bytes });
    Body::Lent(i.lend())
}

/// Hands the message landing into the buffer of the receive polling over to it once it
/// is whole.
fn hand_if_whole(into: &mut Option<Into>, straight: Option<&mut Straight>) {
    if into.as_ref().is_some_and(Into::is_whole) {
        let i = into.take().expect("checked above");
        if let Some(s) = straight {
            s.hand_landed(i.source, &i.m, i.total());
        }
    }
}

/// The parts of [`Hosts`] that delivery into rings uses.
struct Rings<'a> {
    rings: &'a mut FxHashMap<(u32, u32, Lane), Producer<Region>>,
    backlog: &'a mut std::collections::VecDeque<Waiting>,
    backlog_bytes: &'a mut usize,
    spare: &'a mut Vec<Vec<u8>>,
    made: &'a mut Vec<Inbound>,
}

impl Rings<'_> {
    /// Whether nothing of connection `conn` waits in the backlog and ring `key` is drained:
    /// a frame of `key` handled now is handled in order.
    fn is_clear(&mut self, conn: ConnId, key: (u32, u32, Lane)) -> bool {
        self.rings.get_mut(&key).is_none_or(|p| p.is_drained())
            && !self.backlog.iter().any(|w| w.conn == conn)
    }

    /// Pushes a mapped frame into its ring, or into the backlog when the ring is full or
    /// the connection already has frames waiting. `Err` for a frame no ring can take.
    fn deliver(
        &mut self,
        conn: ConnId,
        key: (u32, u32, Lane),
        slot: SlotHeader,
        hdr: &[u8; MSG_HEADER],
        body: &[u8],
    ) -> Result<(), &'static str> {
        // The ring is made first: a frame that waits in the backlog finds it when room frees.
        let p = match self.rings.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let region =
                    Region::heap(TCP_RING_SLOTS).map_err(|_| "no memory for an inbound ring")?;
                let (p, c) = ring::split(Arc::new(region));
                self.made.push(Inbound {
                    src: key.0,
                    dst: key.1,
                    lane: key.2,
                    consumer: Box::new(c),
                    stream: true,
                    retired: false,
                });
                v.insert(p)
            }
        };
        if !self.backlog.iter().any(|w| w.conn == conn) {
            match p.try_push(slot, &[hdr, body]) {
                Ok(()) => return Ok(()),
                Err(PushError::Full) => {}
                Err(_) => return Err("a frame its ring cannot take"),
            }
        }
        // Buffers of frames that left the backlog are reused: allocating and freeing one per
        // frame makes the allocator give memory back and page it in again.
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(hdr);
        bytes.extend_from_slice(body);
        *self.backlog_bytes += bytes.len();
        self.backlog.push_back(Waiting {
            conn,
            key,
            slot,
            bytes,
        });
        Ok(())
    }
}

impl Engine {
    /// Reaps the reactor: frames into rings, announcements applied, closed connections
    /// forgotten. Returns how many frames arrived.
    pub(super) fn reap(&mut self, want: Option<&mut Want<'_, '_>>) -> usize {
        // A receive whose node has no handler and nothing queued takes what fits straight.
        let straight_id = want.as_ref().and_then(|w| {
            let node = self.hosted.get(&w.node())?;
            let mb = &node.mailbox;
            (w.waits_on(mb) && node.handler.is_none() && !mb.has_queued()).then_some(node.id)
        });
        let mut straight = match (want, straight_id) {
            (Some(w), Some(id)) => {
                self.fresh_names();
                Some(Straight::new(w, id))
            }
            _ => None,
        };
        // A message landing into the buffer of another wait than this poll's: its buffer
        // is taken back first (see `into_buffer`).
        let token = straight.as_ref().map(|s| s.token());
        let into_other = self.hosts.as_ref().and_then(|h| h.into.as_ref());
        if into_other.is_some_and(|i| Some(i.token) != token) {
            self.spill_into(None);
        }
        let names = &self.names;
        let Some(h) = self.hosts.as_mut() else {
            return 0;
        };
        let hosted_map = &self.hosted;
        let hosted = |i: u32| hosted_map.contains_key(&i);
        // Frames of a connection after an announcement wait for it to be applied: they may
        // name the nodes it announces.
        // With the number of each frame among those taken off its connection (receipts).
        let mut later: Vec<(ConnId, FrameHeader, Vec<u8>, u64)> = Vec::new();
        // Frames taken and dropped (a node no longer hosted, indices never announced), by
        // number: their senders learn it (receipts).
        let mut drops: Vec<(ConnId, u64)> = Vec::new();
        let mut refused: Vec<(ConnId, String)> = Vec::new();
        let mut closed: Vec<(ConnId, String)> = Vec::new();
        let mut made = Vec::new();
        let mut n = 0;
        let mut dropped = 0u64;
        let mut unrouted = 0u64;
        let Hosts {
            reactor,
            links,
            reaped,
            rings,
            backlog,
            backlog_bytes,
            spare,
            lending,
            into,
            ..
        } = h;
        let now = self.timers.now;
        let mut place = InPlace::new(&mut self.partial, &mut self.counters, now);
        let full = |i: u32| hosted_map.get(&i).is_some_and(|h| h.mailbox.is_full());
        let mut rings_of = Rings {
            rings,
            backlog,
            backlog_bytes,
            spare,
            made: &mut made,
        };
        *reaped = now;
        let mut receipts: Vec<(ConnId, u16, [u8; RECEIPT_LEN])> = Vec::new();
        let mut echoes: Vec<(ConnId, u16, [u8; ECHO_LEN])> = Vec::new();
        lock(reactor).poll(&mut |id, ev| {
            if let Some(l) = links.get_mut(&id) {
                l.heard = now;
                let kind = match &ev {
                    Event::Frame(fh, _) => Some(fh.slot.kind),
                    Event::Landed { header, .. } => Some(header.slot.kind),
                    _ => None,
                };
                l.arrived += u64::from(kind.is_some_and(counts_for_receipt));
            }
            match ev {
                Event::Frame(fh, payload) => {
                    if fh.slot.kind == KIND_RECEIPT {
                        match payload.try_into() {
                            Ok(b) => receipts.push((id, fh.slot.aux, b)),
                            Err(_) => refused.push((id, "a receipt of the wrong length".into())),
                        }
                        return;
                    }
                    if fh.slot.kind == KIND_ECHO {
                        match payload.try_into() {
                            Ok(b) => echoes.push((id, fh.slot.aux, b)),
                            Err(_) => refused.push((id, "an echo of the wrong length".into())),
                        }
                        return;
                    }
                    if fh.slot.kind == KIND_BEAT {
                        if let Some(l) = links.get_mut(&id) {
                            l.beats = fh.slot.aux != BEAT_STOP;
                        }
                        return;
                    }
                    n += 1;
                    let control = fh.slot.kind == KIND_NODES || fh.slot.kind == KIND_GONE;
                    if control || later.iter().any(|(c, ..)| *c == id) {
                        // A message landing into a waiting receive's buffer from this
                        // connection goes on through the reassembly, where its next frames,
                        // delivered after the announcement, find it.
                        if let Some(i) = into.take_if(|i| i.conn == id) {
                            i.spill_to(&mut place);
                        }
                        let number = links.get(&id).map_or(0, |l| l.arrived);
                        later.push((id, fh, payload.to_vec(), number));
                        return;
                    }
                    let Some(link) = links.get(&id) else { return };
                    match translate(link, &hosted, &fh, payload) {
                        Ok((key, slot, hdr, body)) => {
                            let rest = &payload[MSG_HEADER..];
                            let m = MsgHeader::decode(&hdr);
                            // A sequenced frame is checked by the dispatch: through its ring.
                            let plain = body.is_none() && slot.flags & FLAG_SEQ == 0;
                            if let Some(i) = into.as_mut().filter(|i| i.conn == id) {
                                if plain && i.continues(id, &slot, &m, rest.len()) {
                                    i.append(rest);
                                    hand_if_whole(into, straight.as_mut());
                                    return;
                                }
                                // Its sender gave the rest up: what came goes to the reassembly.
                                into.take().expect("checked above").spill_to(&mut place);
                            }
                            if let Some(s) = straight
                                .as_mut()
                                .filter(|s| into.is_none() && s.fits(key.1, &slot, &m, rest.len()))
                            {
                                if let Some(&source) = names.get(&m.origin) {
                                    if !place.whole.iter().any(|(_, w, _)| w.dst == m.dst)
                                        && rings_of.is_clear(id, key)
                                        && s.hand(source, &m, slot.aux, rest)
                                    {
                                        return;
                                    }
                                }
                            }
                            if plain
                                && place.takes(slot.kind, &m, rest.len(), key, full(key.1))
                                && rings_of.is_clear(id, key)
                            {
                                place.add(slot, m, rest);
                                return;
                            }
                            let body = body.as_deref().unwrap_or(&payload[MSG_HEADER..]);
                            if let Err(why) = rings_of.deliver(id, key, slot, &hdr, body) {
                                refused.push((id, why.to_string()));
                            }
                        }
                        Err(Bad::Drop) => {
                            *if streamed(&fh) {
                                &mut unrouted
                            } else {
                                &mut dropped
                            } += 1;
                            drops.push((id, link.arrived));
                        }
                        Err(Bad::Refuse(why)) => refused.push((id, why.to_string())),
                    }
                }
                Event::Land {
                    header,
                    head,
                    into: lend,
                } => {
                    let waits = later.iter().any(|(c, ..)| *c == id);
                    let Some(link) = links.get(&id).filter(|_| !waits) else {
                        return;
                    };
                    let translated = translate(link, &hosted, &header, head)
                        .ok()
                        .filter(|(_, slot, _, _)| slot.flags & FLAG_SEQ == 0);
                    if let Some((key, slot, hdr, None)) = translated {
                        let m = MsgHeader::decode(&hdr);
                        let len = header.slot.len as usize - MSG_HEADER;
                        if let Some(i) = into.as_mut().filter(|i| i.conn == id) {
                            if i.continues(id, &slot, &m, len) {
                                *lend = Some(lend_into(i, lending, id, now));
                                return;
                            }
                            into.take().expect("checked above").spill_to(&mut place);
                        }
                        // A message that can land into the buffer of the receive polling.
                        let started = straight.as_mut().and_then(|s| {
                            // Not while its buffer is lent to another message (checked first: a
                            // look at the buffer is a new borrow of it).
                            if into.is_some() || !s.ends_at(key.1, &m) {
                                return None;
                            }
                            let buf = s.buffer()?;
                            let source = *names.get(&m.origin)?;
                            let clear = !place.whole.iter().any(|(_, w, _)| w.dst == m.dst)
                                && rings_of.is_clear(id, key);
                            let token = s.token();
                            clear
                                .then(|| {
                                    Into::start((token, buf.0, buf.1), (slot, m, len), source, id)
                                })
                                .flatten()
                        });
                        if let Some(i) = started {
                            *lend = Some(lend_into(&i, lending, id, now));
                            *into = Some(i);
                            return;
                        }
                        if place.takes(slot.kind, &m, len, key, full(key.1))
                            && rings_of.is_clear(id, key)
                        {
                            *lend = place.lend(slot, &m, len).map(Body::Owned);
                            if let Some(body) = lend {
                                let bytes = body.len() + len;
                                lending.insert(id, Lending { since: now, bytes });
                            }
                        }
                    }
                }
                Event::Landed { header, head, body } => {
                    n += 1;
                    lending.remove(&id);
                    let Some(link) = links.get(&id) else { return };
                    match translate(link, &hosted, &header, head) {
                        Ok((_, slot, hdr, _)) => {
                            let len = header.slot.len as usize - MSG_HEADER;
                            let mine = into.as_mut().filter(|i| i.conn == id);
                            if body.is_lent() {
                                // Landed into the buffer of this poll's wait (another's was
                                // taken back before the reactor was polled).
                                if let Some(i) = mine {
                                    i.got = body.len();
                                    hand_if_whole(into, straight.as_mut());
                                }
                                return;
                            }
                            if mine.is_some() {
                                // Taken back before a receive was armed: the buffer holds the
                                // message so far, which goes on through the reassembly.
                                *into = None;
                            }
                            let m = MsgHeader::decode(&hdr);
                            place.put_back(slot, m, len, body.into_owned());
                        }
                        Err(Bad::Drop) => {
                            *if streamed(&header) {
                                &mut unrouted
                            } else {
                                &mut dropped
                            } += 1;
                            drops.push((id, link.arrived));
                        }
                        Err(Bad::Refuse(why)) => refused.push((id, why.to_string())),
                    }
                }
                Event::Closed(why) => {
                    let mine = into.as_ref().is_some_and(|i| i.conn == id);
                    if lending.remove(&id).is_some() || mine {
                        // The message it was landing into went with it.
                        place.partial.note_abandoned();
                    }
                    if mine {
                        *into = None;
                    }
                    closed.push((id, why.to_string()));
                }
            }
        });
        let assembled = std::mem::take(&mut place.whole);
        let (added, landed) = (place.added, place.landed);
        drop(place);
        let (handed, handed_bytes, into_buffers) =
            straight.map_or((0, 0, 0), |s| (s.handed, s.bytes, s.into_buffers));
        if let Some(h) = self.hosts.as_mut() {
            h.counters.in_place += added;
            h.counters.landed += landed;
            h.counters.handed += handed;
            h.counters.into_buffers += into_buffers;
        }
        self.counters.frames_received += handed;
        self.counters.bytes_received += handed_bytes;
        self.counters.errors += dropped;
        self.counters.forward_unrouted += unrouted;
        self.inbound.append(&mut made);
        for (slot, m, whole) in assembled {
            self.deliver_assembled(slot, &m, whole);
        }
        for (id, fh, payload, number) in later {
            if refused.iter().any(|(c, _)| *c == id) {
                continue;
            }
            if fh.slot.kind == KIND_NODES || fh.slot.kind == KIND_GONE {
                // The header's node fields carry the sender's instance.
                let instance = (fh.dst as u64) << 32 | fh.slot.src as u64;
                let applied = Announce::decode(fh.slot.kind, &payload)
                    .and_then(|a| self.apply_announce(id, instance, a));
                if let Err(e) = applied {
                    refused.push((id, e.to_string()));
                }
                continue;
            }
            match self.deliver_owned(id, &fh, &payload) {
                Ok(true) => {}
                Ok(false) => drops.push((id, number)),
                Err(why) => refused.push((id, why.to_string())),
            }
        }
        if !receipts.is_empty() {
            refused.extend(self.take_receipts(receipts));
        }
        if !echoes.is_empty() {
            refused.extend(self.take_echoes(echoes));
        }
        for (id, why) in refused {
            self.refuse(id, &why);
        }
        for (id, why) in closed {
            self.closed(id, &why);
        }
        if !drops.is_empty() {
            self.send_drops(&drops);
        }
        if n > 0 {
            self.send_receipts(true);
        }
        n
    }

    /// [`Engine::reap`]'s delivery of one frame held back behind an announcement.
    /// `Ok(false)` when the frame is dropped.
    fn deliver_owned(
        &mut self,
        id: ConnId,
        fh: &FrameHeader,
        payload: &[u8],
    ) -> Result<bool, &'static str> {
        let hosted_map = &self.hosted;
        let hosted = |i: u32| hosted_map.contains_key(&i);
        let Some(h) = self.hosts.as_mut() else {
            return Ok(true);
        };
        let Some(link) = h.links.get(&id) else {
            return Ok(true);
        };
        let mut made = Vec::new();
        let r = match translate(link, &hosted, fh, payload) {
            Ok((key, slot, hdr, body)) => Rings {
                rings: &mut h.rings,
                backlog: &mut h.backlog,
                backlog_bytes: &mut h.backlog_bytes,
                spare: &mut h.spare,
                made: &mut made,
            }
            .deliver(
                id,
                key,
                slot,
                &hdr,
                body.as_deref().unwrap_or(&payload[MSG_HEADER..]),
            )
            .map(|()| true),
            Err(Bad::Drop) => {
                if streamed(fh) {
                    self.counters.forward_unrouted += 1;
                } else {
                    self.counters.errors += 1;
                }
                Ok(false)
            }
            Err(Bad::Refuse(why)) => Err(why),
        };
        self.inbound.append(&mut made);
        r
    }
}
