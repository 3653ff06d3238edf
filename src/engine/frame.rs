//! The frames the engine puts in rings: the message header that starts every ring payload,
//! the options of an outgoing message, and the push of one fragment, shared by the engine and
//! by endpoints (which own their rings).

use super::{FLAG_COALESCED, FLAG_FRAMED, FLAG_ONE_WAY, HOP_LIMIT, MSG_HEADER};
use crate::codec::FrameKind;
use crate::model::{DataType, PacketPriority};
use crate::ring::{PushError, SlotHeader};
use crate::transport::channel::Lane;
use crate::transport::Outbound;

/// The message header at the start of every ring payload (layout in [`MSG_HEADER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MsgHeader {
    pub(crate) dst: u32,
    pub(crate) id: u64,
    pub(crate) hop: u8,
    pub(crate) priority: u8,
    pub(crate) data_type: u8,
    pub(crate) hop_limit: u8,
    pub(crate) total: u32,
    pub(crate) offset: u32,
    pub(crate) origin: u32,
}

impl MsgHeader {
    pub(crate) fn encode(&self) -> [u8; MSG_HEADER] {
        let mut b = [0u8; MSG_HEADER];
        b[0..4].copy_from_slice(&self.dst.to_le_bytes());
        b[4..12].copy_from_slice(&self.id.to_le_bytes());
        b[12] = self.hop;
        b[13] = self.priority;
        b[14] = self.data_type;
        b[15] = self.hop_limit;
        b[16..20].copy_from_slice(&self.total.to_le_bytes());
        b[20..24].copy_from_slice(&self.offset.to_le_bytes());
        b[24..28].copy_from_slice(&self.origin.to_le_bytes());
        b
    }

    /// Reads the header of a payload of at least [`MSG_HEADER`] bytes.
    pub(crate) fn decode(p: &[u8]) -> MsgHeader {
        // One bounds check, then fixed offsets.
        let p: &[u8; MSG_HEADER] = p[..MSG_HEADER].try_into().expect("MSG_HEADER bytes");
        let u32_at = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&p[4..12]);
        MsgHeader {
            dst: u32_at(0),
            id: u64::from_le_bytes(id),
            hop: p[12],
            priority: p[13],
            data_type: p[14],
            hop_limit: p[15],
            total: u32_at(16),
            offset: u32_at(20),
            origin: u32_at(24),
        }
    }

    /// The header a compact frame (see [`super::FLAG_COMPACT`]) from `h.src` to `at` stands
    /// for, and the frame's data: all of `d` for a one-way message (id 0: nothing answers
    /// it), after the 8-byte request id for a request. `None` for a request shorter than
    /// its id.
    pub(crate) fn of_compact(at: u32, h: SlotHeader, d: &[u8]) -> Option<(MsgHeader, &[u8])> {
        let (id, data) = if h.flags & FLAG_ONE_WAY != 0 {
            (0, d)
        } else {
            let (id, data) = d.split_first_chunk::<8>()?;
            (u64::from_le_bytes(*id), data)
        };
        let m = MsgHeader {
            dst: at,
            id,
            hop: 0,
            priority: (h.aux >> 8) as u8,
            data_type: h.aux as u8,
            hop_limit: HOP_LIMIT,
            total: data.len() as u32,
            offset: 0,
            origin: h.src,
        };
        Some((m, data))
    }

    pub(crate) fn priority(&self) -> PacketPriority {
        PacketPriority::from_u32(self.priority as u32).unwrap_or_default()
    }

    /// Hops taken (the hop byte's low seven bits).
    pub(crate) fn hops(&self) -> u8 {
        self.hop & !HOP_CONFIGURED
    }

    /// Whether the frame follows the configured routes (see [`HOP_CONFIGURED`]).
    pub(crate) fn configured(&self) -> bool {
        self.hop & HOP_CONFIGURED != 0
    }
}

/// Bit of the message header's hop byte: the frame left the process that sent it, and every
/// node passes it on along the configured routes (see [`super::Leg`]). Set by the first
/// node of another process that forwards it, kept by every later one. The low seven bits
/// count hops.
pub(crate) const HOP_CONFIGURED: u8 = 0x80;

/// The lane of a priority.
pub fn lane_of(priority: PacketPriority) -> Lane {
    if priority.is_latency_lane() {
        Lane::Latency
    } else {
        Lane::Bulk
    }
}

/// Options of a send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outgoing<'a> {
    /// Frame kind.
    pub kind: FrameKind,
    /// Request id.
    pub request_id: u64,
    /// QoS class.
    pub priority: PacketPriority,
    /// Kind of data.
    pub data_type: DataType,
    /// No response expected.
    pub one_way: bool,
    /// Metadata bytes.
    pub metadata: &'a [u8],
    /// The data is a codec frame (metadata travels inside it).
    pub framed: bool,
    /// The data is a batch of coalesced events: each a 4-byte little-endian length, then
    /// its bytes; the receiver delivers each as its own message.
    pub coalesced: bool,
}

impl Outgoing<'_> {
    /// The message header of the fragment at `offset` of a `total`-byte message.
    pub(crate) fn header(
        &self,
        src: u32,
        dst: u32,
        offset: usize,
        total: usize,
    ) -> [u8; MSG_HEADER] {
        MsgHeader {
            dst,
            id: self.request_id,
            hop: 0,
            priority: self.priority as u8,
            data_type: self.data_type as u8,
            hop_limit: HOP_LIMIT,
            total: total as u32,
            offset: offset as u32,
            origin: src,
        }
        .encode()
    }

    /// The slot header of its frames from `src`, with `extra` flags.
    pub(crate) fn slot(&self, src: u32, extra: u8) -> SlotHeader {
        SlotHeader {
            len: 0,
            kind: self.kind as u8,
            flags: extra
                | if self.one_way { FLAG_ONE_WAY } else { 0 }
                | if self.framed { FLAG_FRAMED } else { 0 }
                | if self.coalesced { FLAG_COALESCED } else { 0 },
            aux: self.metadata.len() as u16,
            src,
        }
    }
}

/// The slot header of a compact frame of `o` from `src` (see [`super::FLAG_COMPACT`]): only
/// for a data message without metadata or codec frame, in one fragment (a request's frame
/// starts with its id).
pub(crate) fn compact_slot(o: &Outgoing<'_>, src: u32) -> SlotHeader {
    SlotHeader {
        len: 0,
        kind: FrameKind::Data as u8,
        flags: if o.one_way { FLAG_ONE_WAY } else { 0 } | super::FLAG_COMPACT,
        aux: (o.data_type as u16 & 0xff) | ((o.priority as u16 & 0xff) << 8),
        src,
    }
}

/// Pushes the fragment of the body `o.metadata ‖ data` that starts at `offset` (at most
/// `limit` bytes of it) from `src` toward `dst` into `p`. Returns the offset after it.
pub(crate) fn push_fragment<P: Outbound + ?Sized>(
    p: &mut P,
    (src, dst): (u32, u32),
    o: &Outgoing<'_>,
    data: &[u8],
    offset: usize,
    limit: usize,
) -> Result<usize, PushError> {
    let f = Fragment::of((src, dst), o, data, (offset, limit));
    p.try_push(o.slot(src, 0), &[&f.header, f.metadata, f.data])?;
    Ok(f.end)
}

/// The fragment of the body `o.metadata ‖ data` that starts at `offset` (at most `limit`
/// bytes of it), from `src` toward `dst`: its message header and its bytes as at most two
/// slices.
pub(crate) struct Fragment<'a> {
    pub(crate) header: [u8; MSG_HEADER],
    pub(crate) metadata: &'a [u8],
    pub(crate) data: &'a [u8],
    /// The offset after it.
    pub(crate) end: usize,
}

impl<'a> Fragment<'a> {
    pub(crate) fn of(
        (src, dst): (u32, u32),
        o: &Outgoing<'a>,
        data: &'a [u8],
        (offset, limit): (usize, usize),
    ) -> Fragment<'a> {
        let total = o.metadata.len() + data.len();
        let end = total.min(offset + limit);
        let m = o.metadata.len();
        Fragment {
            header: o.header(src, dst, offset, total),
            metadata: &o.metadata[offset.min(m)..end.min(m)],
            data: &data[offset.saturating_sub(m).min(data.len())..end.saturating_sub(m)],
            end,
        }
    }
}
