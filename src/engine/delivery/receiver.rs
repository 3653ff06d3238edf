//! The receiving side of a sequenced stream: a frame is taken only when its checksum holds
//! and it is the next of its stream; duplicates, frames behind a gap and frames of an ended
//! incarnation are refused. What was taken is acknowledged cumulatively once per pass over
//! the rings (a gap at once), by a [`FrameKind::Delivered`] frame back to the sender.

use super::sender::ACK_GAP;
use super::{
    before, checksum, destination_tag, succ, SeqExt, StreamKey, AHEAD_BYTES, AHEAD_FRAMES, SEQ_EXT,
};
use crate::codec::{id_tag, FrameKind};
use crate::engine::{Engine, MsgHeader, Outgoing, MSG_HEADER};
use crate::model::{DataType, PacketPriority};
use crate::ring::SlotHeader;
use std::collections::BTreeMap;
use std::time::Instant;

/// A stream's receiving side.
pub(crate) struct InStream {
    /// The sender's name tag and the incarnation followed.
    tag: u32,
    incarnation: u64,
    /// The last frame taken (0: none yet).
    delivered: u32,
    ack_due: bool,
    /// The acknowledgement due cannot wait (a gap, a duplicate: the sender is resending).
    ack_now: bool,
    /// Frames and bytes taken since the last acknowledgement, and when the first was.
    unacked: (u32, usize, Option<Instant>),
    gap: bool,
    /// Frames that came after a missing one, by sequence number: their slot header and
    /// payload (message header, extension, body).
    ahead: BTreeMap<u32, (SlotHeader, Vec<u8>)>,
}

/// Bytes of an acknowledgement's body.
const ACK_LEN: usize = 28;
/// Frames after a gap an acknowledgement tells the receiver holds (its `held` bitmap).
pub(crate) const HELD_SPAN: u32 = 64;
/// Frames taken after which an acknowledgement goes without waiting.
const ACK_EVERY: u32 = 32;
/// Bytes taken after which an acknowledgement goes without waiting.
const ACK_EVERY_BYTES: usize = 1 << 20;
/// How long an acknowledgement of frames taken in order waits for more (well below the
/// sender's shortest retransmission timeout, `MIN_RTO`).
const ACK_DELAY: std::time::Duration = std::time::Duration::from_micros(500);
/// Passes that found frames between two looks at acknowledgements that wait (a look reads
/// the clock).
const ACK_LOOK_EVERY: u32 = 16;

/// An acknowledgement: every frame of `incarnation` up to `seq` was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ack {
    pub(crate) incarnation: u64,
    pub(crate) seq: u32,
    pub(crate) flags: u8,
    pub(crate) priority: u8,
    /// Frames the receiver holds after the one it misses: bit `i` for sequence number
    /// `seq + 2 + i` (selective acknowledgement; 0 without a gap).
    pub(crate) held: u64,
    /// CRC-32 of the name tags of acknowledging and acknowledged node, then the fields above.
    pub(crate) crc: u32,
}

impl Ack {
    fn fields(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&self.incarnation.to_le_bytes());
        b[8..12].copy_from_slice(&self.seq.to_le_bytes());
        b[12] = self.flags;
        b[13] = self.priority;
        b[16..24].copy_from_slice(&self.held.to_le_bytes());
        b
    }

    /// The checksum for `tags` (acknowledging node, acknowledged node).
    pub(crate) fn checksum(&self, tags: (u32, u32)) -> u32 {
        let mut c = crc32fast::Hasher::new();
        c.update(&tags.0.to_le_bytes());
        c.update(&tags.1.to_le_bytes());
        c.update(&self.fields());
        c.finalize()
    }

    fn encode(&self) -> [u8; ACK_LEN] {
        let mut b = [0u8; ACK_LEN];
        b[..24].copy_from_slice(&self.fields());
        b[24..].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Ack> {
        let b: &[u8; ACK_LEN] = b.try_into().ok()?;
        Some(Ack {
            incarnation: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
            seq: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            flags: b[12],
            priority: b[13],
            held: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
            crc: u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
        })
    }
}

impl Engine {
    /// Checks sequenced frame `h`/`m` that reached hosted node `at` (`h.src` is its origin)
    /// with `body` after the message header: the body after the extension when the frame is
    /// the next of its stream, `None` when it is refused (and counted).
    pub(in crate::engine) fn accept_sequenced<'b>(
        &mut self,
        at: u32,
        h: &SlotHeader,
        m: &MsgHeader,
        body: &'b [u8],
    ) -> Option<&'b [u8]> {
        let Some(ext) = SeqExt::decode(body) else {
            self.delivery.counters.corrupt += 1;
            return None;
        };
        let rest = &body[SEQ_EXT..];
        let origin = h.src;
        let here = self.hosted_generation(at);
        let tags = (
            id_tag(&self.name_of(origin)),
            destination_tag(&self.name_of(at), here),
        );
        let sum = checksum(tags, h, &m.encode(), (ext.seq, ext.incarnation), &[rest]);
        if sum != ext.crc {
            self.delivery.counters.corrupt += 1;
            return None;
        }
        let d = &mut self.delivery;
        if d.retired.contains(tags.0, ext.incarnation) {
            d.counters.stale += 1;
            return None;
        }
        let key = (origin, at, m.priority);
        let s = match d.inn.get_mut(&key) {
            Some(s) if s.incarnation == ext.incarnation => s,
            Some(s) if ext.incarnation < s.incarnation => {
                // An earlier incarnation than the one followed (incarnations increase).
                d.counters.stale += 1;
                return None;
            }
            _ if !super::plausible_incarnation(ext.incarnation) => {
                // Drawn further in the future than clocks differ: damaged or forged (it
                // would make the sender's real incarnations look stale).
                d.counters.stale += 1;
                return None;
            }
            other => {
                // A stream not followed yet (or a newer incarnation of one): followed from
                // now on. A frame after its first (which was lost, or overtaken) is kept
                // until the first comes.
                if let Some(old) = other {
                    d.retired.add(old.tag, old.incarnation);
                    d.ahead_bytes -= old.ahead.values().map(|f| f.1.len()).sum::<usize>();
                }
                d.inn.insert(
                    key,
                    InStream {
                        tag: tags.0,
                        incarnation: ext.incarnation,
                        delivered: 0,
                        ack_due: false,
                        ack_now: false,
                        unacked: (0, 0, None),
                        gap: false,
                        ahead: BTreeMap::new(),
                    },
                );
                d.inn.get_mut(&key).expect("inserted")
            }
        };
        let next = succ(s.delivered);
        let taken = ext.seq == next;
        if taken {
            s.delivered = next;
            s.unacked.0 += 1;
            s.unacked.1 += body.len();
            if s.unacked.2.is_none() {
                s.unacked.2 = Some(Instant::now());
            }
            if s.unacked.0 >= ACK_EVERY || s.unacked.1 >= ACK_EVERY_BYTES {
                d.ack_urgent = true;
            }
            if s.ahead.contains_key(&succ(next)) {
                d.ready.push(key);
            }
        } else if before(ext.seq, next) || s.ahead.contains_key(&ext.seq) {
            d.counters.duplicates += 1;
            s.ack_now = true;
            d.ack_urgent = true;
        } else {
            d.counters.out_of_order += 1;
            s.gap = true;
            s.ack_now = true;
            d.ack_urgent = true;
            // Kept, if there is room, for when the missing frames come.
            let len = MSG_HEADER + body.len();
            let close = ext.seq.wrapping_sub(next) < AHEAD_FRAMES as u32 * 4;
            if close && s.ahead.len() < AHEAD_FRAMES && d.ahead_bytes + len <= AHEAD_BYTES {
                let mut bytes = Vec::with_capacity(len);
                bytes.extend_from_slice(&m.encode());
                bytes.extend_from_slice(body);
                s.ahead.insert(ext.seq, (*h, bytes));
                d.ahead_bytes += len;
            }
        }
        if !s.ack_due {
            s.ack_due = true;
            d.due.push(key);
        }
        taken.then_some(rest)
    }

    /// Takes the frames kept after a gap that the missing frames made next (after a pass
    /// over the rings), in order, through the whole dispatch.
    pub(in crate::engine) fn take_ahead(&mut self) {
        for key in std::mem::take(&mut self.delivery.ready) {
            loop {
                let d = &mut self.delivery;
                let Some(s) = d.inn.get_mut(&key) else {
                    break;
                };
                let next = succ(s.delivered);
                let Some((h, bytes)) = s.ahead.remove(&next) else {
                    // Frames a resend made stale go.
                    let stale: Vec<u32> = s
                        .ahead
                        .keys()
                        .filter(|&&q| before(q, next))
                        .copied()
                        .collect();
                    for q in stale {
                        if let Some((_, b)) = s.ahead.remove(&q) {
                            d.ahead_bytes -= b.len();
                        }
                    }
                    break;
                };
                d.ahead_bytes -= bytes.len();
                self.dispatch(key.1, h, &bytes, None);
            }
        }
    }

    /// Sends the acknowledgements due (after a pass over the rings): at once after a gap or
    /// a duplicate, else once [`ACK_EVERY`] frames or [`ACK_EVERY_BYTES`] were taken or the
    /// first of them waited [`ACK_DELAY`] (so that a stream of small messages does not
    /// double its frames). One that finds no room, or waits, stays due.
    pub(in crate::engine) fn flush_acks(&mut self, busy: bool) {
        let d = &mut self.delivery;
        // A pass that found frames looks at the waiting ones every few passes only; an
        // idle one (the engine may nap between passes) always.
        if busy && !d.ack_urgent && d.ack_skips < ACK_LOOK_EVERY {
            d.ack_skips += 1;
            return;
        }
        d.ack_urgent = false;
        d.ack_skips = 0;
        let due = std::mem::take(&mut self.delivery.due);
        let mut now = None;
        for key in due {
            let Some(s) = self.delivery.inn.get(&key) else {
                continue;
            };
            let (frames, bytes, since) = s.unacked;
            let wait = !s.ack_now
                && s.ahead.is_empty()
                && frames < ACK_EVERY
                && bytes < ACK_EVERY_BYTES
                && since.is_some_and(|t| {
                    now.get_or_insert_with(Instant::now).duration_since(t) < ACK_DELAY
                });
            if wait {
                self.delivery.due.push(key);
                continue;
            }
            // A gap stays reported while frames wait behind it, with those of them that
            // follow closely.
            let flags = if s.gap || !s.ahead.is_empty() {
                ACK_GAP
            } else {
                0
            };
            let held = held_after(s.delivered, s.ahead.keys().copied());
            if self.send_ack(key, (s.incarnation, s.delivered), flags, held) {
                let s = self.delivery.inn.get_mut(&key).expect("looked up");
                s.ack_due = false;
                s.ack_now = false;
                s.unacked = (0, 0, None);
                s.gap = false;
            } else {
                self.delivery.due.push(key);
            }
        }
    }

    /// Sends every acknowledgement due now, without its delay: the node that took the
    /// frames is about to leave (a sender would otherwise resend them, then count them
    /// failed, though they arrived).
    /// Whether any was due.
    pub(in crate::engine) fn flush_acks_now(&mut self) -> bool {
        let due = self.delivery.due.clone();
        for key in &due {
            if let Some(s) = self.delivery.inn.get_mut(key) {
                s.ack_now = true;
            }
        }
        self.flush_acks(false);
        !due.is_empty()
    }

    /// Sends one acknowledgement of stream `key` (sender, receiver, priority): whether it
    /// went (or cannot ever go: no route).
    fn send_ack(
        &mut self,
        key: StreamKey,
        (incarnation, seq): (u64, u32),
        flags: u8,
        held: u64,
    ) -> bool {
        let (origin, at, priority) = key;
        let here = self.hosted_generation(at);
        let tags = (
            destination_tag(&self.name_of(at), here),
            id_tag(&self.name_of(origin)),
        );
        let mut ack = Ack {
            incarnation,
            seq,
            flags,
            priority,
            held,
            crc: 0,
        };
        ack.crc = ack.checksum(tags);
        let o = Outgoing {
            kind: FrameKind::Delivered,
            request_id: 0,
            priority: PacketPriority::High,
            data_type: DataType::ControlMessage,
            one_way: true,
            metadata: &[],
            framed: false,
            coalesced: false,
        };
        match self.try_send_from(at, origin, &o, &ack.encode(), 0) {
            Ok(Some(_)) => {
                self.delivery.counters.acks_sent += 1;
                true
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }
}

/// The bitmap of an acknowledgement: of the frames kept (`ahead`, in increasing order) those
/// among the [`HELD_SPAN`] after the one that follows `delivered` (bit `i`: sequence number
/// `delivered + 2 + i`, wrapping).
fn held_after(delivered: u32, ahead: impl Iterator<Item = u32>) -> u64 {
    ahead
        .map(|q| q.wrapping_sub(delivered).wrapping_sub(2))
        .filter(|&i| i < HELD_SPAN)
        .fold(0u64, |b, i| b | 1 << i)
}

impl super::Delivery {
    /// Forgets the receiving side of streams whose sender is no longer a node this engine
    /// knows (its process died or it left: not `live`) or whose receiver this engine no
    /// longer hosts (not `here`), remembering their incarnations as ended.
    pub(crate) fn forget_departed_senders(
        &mut self,
        live: &dyn Fn(u32) -> bool,
        here: &dyn Fn(u32) -> bool,
    ) {
        let gone: Vec<StreamKey> = self
            .inn
            .keys()
            .filter(|k| !live(k.0) || !here(k.1))
            .copied()
            .collect();
        for key in gone {
            if let Some(s) = self.inn.remove(&key) {
                self.retired.add(s.tag, s.incarnation);
                self.ahead_bytes -= s.ahead.values().map(|f| f.1.len()).sum::<usize>();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_bitmap_names_the_frames_kept_after_the_missing_one() {
        // 10 taken, 11 missing: 12 is bit 0, 75 bit 63, 76 beyond.
        assert_eq!(
            held_after(10, [12, 14, 75, 76].into_iter()),
            1 | 1 << 2 | 1 << 63
        );
        assert_eq!(held_after(10, std::iter::empty()), 0);
        // Across the wrap of the sequence numbers (0 is never one: its bit stays clear;
        // the sender computes the same positions).
        assert_eq!(
            held_after(u32::MAX - 2, [u32::MAX, 1, 2].into_iter()),
            0b1101
        );
    }

    #[test]
    fn an_acknowledgement_round_trips_and_its_checksum_binds_both_nodes() {
        let mut a = Ack {
            incarnation: 99,
            seq: 12,
            flags: ACK_GAP,
            priority: 4,
            held: 0b1011 << 40,
            crc: 0,
        };
        a.crc = a.checksum((1, 2));
        let b = Ack::decode(&a.encode()).unwrap();
        assert_eq!(a, b);
        assert_ne!(b.checksum((2, 1)), a.crc);
        assert_eq!(Ack::decode(&a.encode()[..ACK_LEN - 1]), None);
        let mut c = b;
        c.held ^= 1;
        assert_ne!(c.checksum((1, 2)), a.crc, "the bitmap is covered");
    }
}
