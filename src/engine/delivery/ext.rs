//! The 16 bytes a sequenced frame carries after its message header (slot flag
//! [`FLAG_SEQ`]): its place in its stream and a checksum of what the frame means.
//!
//! ```text
//! 0   seq          u32 LE   place in the stream (1, 2, ... u32::MAX, 1, ...; never 0)
//! 4   crc          u32 LE   CRC-32 of the fields below
//! 8   incarnation  u64 LE   the sending node's registration (random, never 0)
//! ```
//!
//! The checksum covers the names of both ends (as [`crate::codec::id_tag`]s: node indices
//! differ from host to host; the destination's bound to its registration, see
//! [`destination_tag`]), the message header but for the fields forwarders rewrite
//! (destination and origin indices, hop count), the slot header's kind, flags and metadata
//! length, the sequence number, the incarnation and the body: a frame whose bytes changed
//! on the way, or that reached another node or seems to come from another, is refused.

use crate::engine::MSG_HEADER;
use crate::ring::SlotHeader;

/// Slot flag: the frame belongs to a sequenced stream; [`SEQ_EXT`] bytes follow its message
/// header.
pub const FLAG_SEQ: u8 = 128;
/// Bytes of the extension.
pub const SEQ_EXT: usize = 16;

/// A sequenced frame's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeqExt {
    pub(crate) seq: u32,
    pub(crate) crc: u32,
    pub(crate) incarnation: u64,
}

impl SeqExt {
    pub(crate) fn encode(&self) -> [u8; SEQ_EXT] {
        let mut b = [0u8; SEQ_EXT];
        b[0..4].copy_from_slice(&self.seq.to_le_bytes());
        b[4..8].copy_from_slice(&self.crc.to_le_bytes());
        b[8..16].copy_from_slice(&self.incarnation.to_le_bytes());
        b
    }

    /// The extension at the start of `b`, if `b` holds one.
    pub(crate) fn decode(b: &[u8]) -> Option<SeqExt> {
        let b: &[u8; SEQ_EXT] = b.get(..SEQ_EXT)?.try_into().ok()?;
        Some(SeqExt {
            seq: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            crc: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            incarnation: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        })
    }
}

/// The tag a stream's frames carry for their destination: its name bound to its
/// registration (`generation`), so that frames sent to an earlier registration of a node (a
/// process that restarted under the same id) are refused by the later one.
pub(crate) fn destination_tag(name: &str, generation: Option<u64>) -> u32 {
    let g = generation.unwrap_or(0);
    crate::codec::id_tag(name) ^ (g as u32) ^ ((g >> 32) as u32).rotate_left(16)
}

/// The number after `seq` in a stream (0 is skipped: an acknowledgement of 0 means none).
pub(crate) fn succ(seq: u32) -> u32 {
    seq.checked_add(1).unwrap_or(1)
}

/// Whether `a` comes before `b` in a stream (compared across the wrap: streams hold far
/// fewer than 2^31 frames in flight).
pub(crate) fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The checksum of a sequenced frame: `tags` of its origin and destination, its slot
/// header, its message header `hdr` (the [`MSG_HEADER`] bytes), its sequence number and
/// incarnation, and its body in `parts`.
pub(crate) fn checksum(
    tags: (u32, u32),
    slot: &SlotHeader,
    hdr: &[u8],
    (seq, incarnation): (u32, u64),
    parts: &[&[u8]],
) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&tags.0.to_le_bytes());
    c.update(&tags.1.to_le_bytes());
    c.update(&[slot.kind, slot.flags]);
    c.update(&slot.aux.to_le_bytes());
    // Request id, then priority, data type, hop limit, total, offset and the reserved word.
    let hdr = &hdr[..MSG_HEADER];
    c.update(&hdr[4..12]);
    c.update(&hdr[13..24]);
    c.update(&hdr[28..32]);
    c.update(&seq.to_le_bytes());
    c.update(&incarnation.to_le_bytes());
    for p in parts {
        c.update(p);
    }
    c.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> SlotHeader {
        SlotHeader {
            len: 0,
            kind: 1,
            flags: FLAG_SEQ,
            aux: 3,
            src: 7,
        }
    }

    #[test]
    fn the_extension_round_trips_and_short_input_has_none() {
        let e = SeqExt {
            seq: 0xdead_beef,
            crc: 17,
            incarnation: u64::MAX - 3,
        };
        assert_eq!(SeqExt::decode(&e.encode()), Some(e));
        assert_eq!(SeqExt::decode(&e.encode()[..15]), None);
    }

    #[test]
    fn sequence_numbers_skip_zero_and_compare_across_the_wrap() {
        assert_eq!(succ(1), 2);
        assert_eq!(succ(u32::MAX), 1);
        assert!(before(1, 2));
        assert!(!before(2, 2));
        assert!(before(u32::MAX - 1, 3));
        assert!(!before(3, u32::MAX - 1));
    }

    #[test]
    fn the_checksum_ignores_rewritten_fields_and_catches_every_other_change() {
        let hdr: Vec<u8> = (0..MSG_HEADER as u8).collect();
        let body = b"payload bytes";
        let base = checksum((1, 2), &slot(), &hdr, (5, 9), &[body]);
        // Destination and origin indices and the hop count change on the way.
        let mut moved = hdr.clone();
        moved[0] ^= 0xff;
        moved[12] ^= 0xff;
        moved[24] ^= 0xff;
        assert_eq!(checksum((1, 2), &slot(), &moved, (5, 9), &[body]), base);
        // Split bodies hash as one.
        assert_eq!(
            checksum((1, 2), &slot(), &hdr, (5, 9), &[&body[..3], &body[3..]]),
            base
        );
        for i in (4..12).chain(13..24).chain(28..32) {
            let mut h = hdr.clone();
            h[i] ^= 1;
            assert_ne!(
                checksum((1, 2), &slot(), &h, (5, 9), &[body]),
                base,
                "byte {i}"
            );
        }
        let other = SlotHeader { aux: 4, ..slot() };
        assert_ne!(checksum((1, 2), &other, &hdr, (5, 9), &[body]), base);
        assert_ne!(checksum((1, 3), &slot(), &hdr, (5, 9), &[body]), base);
        assert_ne!(checksum((1, 2), &slot(), &hdr, (6, 9), &[body]), base);
        assert_ne!(checksum((1, 2), &slot(), &hdr, (5, 8), &[body]), base);
        assert_ne!(
            checksum((1, 2), &slot(), &hdr, (5, 9), &[b"payload bytez"]),
            base
        );
    }
}
