//! [`WireHeader`]: 48 bytes, little-endian, versioned.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | magic `0x4648` ("HF") |
//! | 2 | 1 | version (1) |
//! | 3 | 1 | kind ([`FrameKind`]) |
//! | 4 | 2 | flags ([`flags`]) |
//! | 6 | 1 | priority (0 ULTRA_HIGH .. 4 BULK) |
//! | 7 | 1 | data type (0..=14, `DataType` order) |
//! | 8 | 1 | hop count |
//! | 9 | 1 | hop limit |
//! | 10 | 2 | metadata length (within the plaintext, uncompressed body) |
//! | 12 | 4 | source node index |
//! | 16 | 4 | destination node index |
//! | 20 | 8 | request id |
//! | 28 | 4 | fragment offset |
//! | 32 | 4 | total message length (all fragments, plaintext uncompressed body) |
//! | 36 | 4 | body length (bytes after the header in this frame) |
//! | 40 | 4 | route epoch |
//! | 44 | 4 | reserved, zero |

use crate::error::{Error, Result};
use crate::model::{DataType, PacketPriority};

/// Header size in bytes.
pub const HEADER_LEN: usize = 48;
/// `"HF"` little-endian.
pub const WIRE_MAGIC: u16 = u16::from_le_bytes(*b"HF");
/// Wire format version.
pub const WIRE_VERSION: u8 = 1;

/// Header flag bits.
pub mod flags {
    /// The body is lz4-compressed.
    pub const COMPRESSED: u16 = 1;
    /// The body is AES-256-GCM sealed.
    pub const ENCRYPTED: u16 = 2;
    /// One fragment of a larger message.
    pub const FRAGMENT: u16 = 4;
    /// The last fragment.
    pub const LAST: u16 = 8;
    /// The body is a buffer descriptor, not the payload.
    pub const DESCRIPTOR: u16 = 16;
    /// No response is expected.
    pub const ONE_WAY: u16 = 32;
    /// Every defined bit.
    pub const ALL: u16 = COMPRESSED | ENCRYPTED | FRAGMENT | LAST | DESCRIPTOR | ONE_WAY;
}

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A request (`send_data`) or one-way message (`post`).
    Data = 1,
    /// A handler's response.
    Response = 2,
    /// A delivery receipt (no handler: queued for `recv`).
    Ack = 3,
    /// A ping probe.
    Ping = 4,
    /// A ping answer.
    Pong = 5,
    /// Liveness.
    Heartbeat = 6,
    /// Control plane.
    Control = 7,
    /// A request failed at the destination; the body is a status code and message.
    Error = 8,
    /// End-to-end delivery: the frames of a sequenced stream its receiver took, cumulatively
    /// (see `docs/delivery.md`).
    Delivered = 9,
}

impl FrameKind {
    /// The kind with this code.
    pub fn from_u8(v: u8) -> Option<FrameKind> {
        Some(match v {
            1 => FrameKind::Data,
            2 => FrameKind::Response,
            3 => FrameKind::Ack,
            4 => FrameKind::Ping,
            5 => FrameKind::Pong,
            6 => FrameKind::Heartbeat,
            7 => FrameKind::Control,
            8 => FrameKind::Error,
            9 => FrameKind::Delivered,
            _ => return None,
        })
    }
}

/// The fixed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireHeader {
    /// What the frame is.
    pub kind: FrameKind,
    /// [`flags`] bits.
    pub flags: u16,
    /// QoS class.
    pub priority: PacketPriority,
    /// Kind of data.
    pub data_type: DataType,
    /// Hops taken so far.
    pub hop_count: u8,
    /// Hops allowed.
    pub hop_limit: u8,
    /// Metadata bytes at the start of the plaintext body.
    pub metadata_len: u16,
    /// Source node index.
    pub src: u32,
    /// Destination node index.
    pub dst: u32,
    /// Request id (matches responses to requests).
    pub request_id: u64,
    /// Offset of this fragment in the message.
    pub frag_offset: u32,
    /// Length of the whole message body.
    pub total_len: u32,
    /// Bytes after the header in this frame.
    pub body_len: u32,
    /// Route epoch the sender used.
    pub route_epoch: u32,
}

impl WireHeader {
    /// A header for a frame of `kind` from `src` to `dst`, everything else zero or default.
    pub fn new(kind: FrameKind, src: u32, dst: u32) -> WireHeader {
        WireHeader {
            kind,
            flags: 0,
            priority: PacketPriority::Medium,
            data_type: DataType::Generic,
            hop_count: 0,
            hop_limit: 16,
            metadata_len: 0,
            src,
            dst,
            request_id: 0,
            frag_offset: 0,
            total_len: 0,
            body_len: 0,
            route_epoch: 0,
        }
    }

    /// The 48 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&WIRE_MAGIC.to_le_bytes());
        b[2] = WIRE_VERSION;
        b[3] = self.kind as u8;
        b[4..6].copy_from_slice(&self.flags.to_le_bytes());
        b[6] = self.priority as u8;
        b[7] = self.data_type as u8;
        b[8] = self.hop_count;
        b[9] = self.hop_limit;
        b[10..12].copy_from_slice(&self.metadata_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.src.to_le_bytes());
        b[16..20].copy_from_slice(&self.dst.to_le_bytes());
        b[20..28].copy_from_slice(&self.request_id.to_le_bytes());
        b[28..32].copy_from_slice(&self.frag_offset.to_le_bytes());
        b[32..36].copy_from_slice(&self.total_len.to_le_bytes());
        b[36..40].copy_from_slice(&self.body_len.to_le_bytes());
        b[40..44].copy_from_slice(&self.route_epoch.to_le_bytes());
        b
    }

    /// Parses and checks a header: magic, version, kind, flags, enums, hop count within the
    /// limit, metadata within the body, fragment within the message. `MalformedFrameError`
    /// names the first field that is wrong.
    pub fn decode(b: &[u8]) -> Result<WireHeader> {
        let bad = |why: String| Err(Error::MalformedFrame(format!("wire header: {why}")));
        if b.len() < HEADER_LEN {
            return bad(format!("{} bytes, need {HEADER_LEN}", b.len()));
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let magic = u16_at(0);
        if magic != WIRE_MAGIC {
            return bad(format!("magic {magic:#06x}"));
        }
        if b[2] != WIRE_VERSION {
            return bad(format!("version {}", b[2]));
        }
        let Some(kind) = FrameKind::from_u8(b[3]) else {
            return bad(format!("kind {}", b[3]));
        };
        let flags = u16_at(4);
        if flags & !flags::ALL != 0 {
            return bad(format!("unknown flags {flags:#06x}"));
        }
        let Some(priority) = PacketPriority::from_u32(b[6] as u32) else {
            return bad(format!("priority {}", b[6]));
        };
        let Some(data_type) = DataType::from_u32(b[7] as u32) else {
            return bad(format!("data type {}", b[7]));
        };
        let h = WireHeader {
            kind,
            flags,
            priority,
            data_type,
            hop_count: b[8],
            hop_limit: b[9],
            metadata_len: u16_at(10),
            src: u32_at(12),
            dst: u32_at(16),
            request_id: u64::from_le_bytes(b[20..28].try_into().expect("8 bytes")),
            frag_offset: u32_at(28),
            total_len: u32_at(32),
            body_len: u32_at(36),
            route_epoch: u32_at(40),
        };
        if u32_at(44) != 0 {
            return bad("reserved field is not zero".into());
        }
        if h.hop_count > h.hop_limit {
            return bad(format!(
                "hop count {} beyond limit {}",
                h.hop_count, h.hop_limit
            ));
        }
        if h.metadata_len as u32 > h.total_len {
            return bad(format!(
                "metadata {} beyond message {}",
                h.metadata_len, h.total_len
            ));
        }
        // The encoder never writes more (see `encode_frame`).
        if h.metadata_len as usize > super::frame::MAX_METADATA {
            return bad(format!(
                "metadata of {} bytes, at most {} allowed",
                h.metadata_len,
                super::frame::MAX_METADATA
            ));
        }
        if flags & flags::FRAGMENT != 0
            && h.frag_offset as u64 + h.body_len as u64 > h.total_len as u64
            && flags & (flags::COMPRESSED | flags::ENCRYPTED) == 0
        {
            return bad("fragment beyond the message".into());
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_each_bad_field() {
        let mut h = WireHeader::new(FrameKind::Data, 3, 9);
        h.flags = flags::COMPRESSED | flags::LAST;
        h.priority = PacketPriority::UltraHigh;
        h.data_type = DataType::QuantumCircuit;
        h.request_id = u64::MAX - 1;
        h.total_len = 100;
        h.metadata_len = 10;
        h.body_len = 70;
        h.hop_count = 2;
        let b = h.encode();
        assert_eq!(WireHeader::decode(&b).unwrap(), h);
        let corrupt = |i: usize, v: u8| {
            let mut c = b;
            c[i] = v;
            WireHeader::decode(&c).unwrap_err().to_string()
        };
        assert!(corrupt(0, 0).contains("magic"));
        assert!(corrupt(2, 9).contains("version"));
        assert!(corrupt(3, 0).contains("kind"));
        assert!(corrupt(5, 0x80).contains("flags"));
        assert!(corrupt(6, 5).contains("priority"));
        assert!(corrupt(7, 15).contains("data type"));
        assert!(corrupt(8, 17).contains("hop count"));
        assert!(corrupt(10, 101).contains("metadata"));
        assert!(corrupt(44, 1).contains("reserved"));
        assert!(WireHeader::decode(&b[..47]).is_err());
    }
}
