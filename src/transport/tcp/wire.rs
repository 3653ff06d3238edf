//! Frames on a TCP stream: the ring's frames (slot header and payload) with the receiving
//! node and lane added, since one connection carries every channel between two processes.
//!
//! ```text
//! 0   len   u32 LE   payload bytes
//! 4   kind  u8       the ring's slot header ...
//! 5   flags u8
//! 6   aux   u16 LE
//! 8   src   u32 LE   ... sending node
//! 12  dst   u32 LE   receiving node
//! 16  lane  u8       0 latency, 1 bulk
//! 17  mark  u8       0xA5
//! 18  zero  u16      must be 0
//! 20  payload
//! ```
//!
//! The bytes come from another host: [`Decoder`] checks every header before it trusts the
//! length, never allocates more than a frame's limit, and after the first bad header reads
//! nothing more from the stream (a stream that lost its frame boundaries cannot find them
//! again).

use crate::ring::SlotHeader;
use crate::transport::channel::Lane;

/// Bytes of a frame header on the stream.
pub const HEADER: usize = 20;
/// The header's check byte.
const MARK: u8 = 0xA5;

/// What a frame on the stream carries besides its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The ring's slot header (its `len` is the payload's length).
    pub slot: SlotHeader,
    /// Receiving node.
    pub dst: u32,
    /// Lane.
    pub lane: Lane,
}

impl FrameHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER] {
        let mut b = [0u8; HEADER];
        b[0..4].copy_from_slice(&self.slot.len.to_le_bytes());
        b[4] = self.slot.kind;
        b[5] = self.slot.flags;
        b[6..8].copy_from_slice(&self.slot.aux.to_le_bytes());
        b[8..12].copy_from_slice(&self.slot.src.to_le_bytes());
        b[12..16].copy_from_slice(&self.dst.to_le_bytes());
        b[16] = match self.lane {
            Lane::Latency => 0,
            Lane::Bulk => 1,
        };
        b[17] = MARK;
        b
    }

    /// Reads a header; `Err` says what is wrong with it.
    pub fn decode(b: &[u8; HEADER]) -> Result<FrameHeader, &'static str> {
        let word = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        if b[17] != MARK || b[18] != 0 || b[19] != 0 {
            return Err("a frame header without its mark (the stream lost its framing)");
        }
        let lane = match b[16] {
            0 => Lane::Latency,
            1 => Lane::Bulk,
            _ => return Err("a frame header with an unknown lane"),
        };
        Ok(FrameHeader {
            slot: SlotHeader {
                len: word(0),
                kind: b[4],
                flags: b[5],
                aux: u16::from_le_bytes([b[6], b[7]]),
                src: word(8),
            },
            dst: word(12),
            lane,
        })
    }
}

/// Cuts a byte stream into frames, whatever pieces it arrives in.
#[derive(Debug)]
pub struct Decoder {
    /// The start of a frame that did not arrive whole yet (header, then payload).
    partial: Vec<u8>,
    /// Largest payload accepted.
    max: usize,
    /// Set at the first bad header: nothing more is read.
    bad: Option<&'static str>,
}

impl Decoder {
    /// A decoder accepting payloads of at most `max` bytes.
    pub fn new(max: usize) -> Decoder {
        Decoder {
            partial: Vec::new(),
            max,
            bad: None,
        }
    }

    /// Whether a frame was cut off where the stream is now (its end would be mid-frame).
    pub fn mid_frame(&self) -> bool {
        !self.partial.is_empty()
    }

    /// The payload length of the frame begun and not finished, once its header arrived.
    pub fn pending_len(&self) -> Option<usize> {
        (self.partial.len() >= HEADER && self.bad.is_none())
            .then(|| u32::from_le_bytes(self.partial[..4].try_into().expect("4 bytes")) as usize)
    }

    /// The frame begun and not finished, once its header arrived (it was checked): its
    /// header and the bytes of its payload that arrived so far.
    pub fn pending(&self) -> Option<(FrameHeader, &[u8])> {
        if self.partial.len() < HEADER || self.bad.is_some() {
            return None;
        }
        let h = FrameHeader::decode(&self.head()).ok()?;
        Some((h, &self.partial[HEADER..]))
    }

    /// Gives up the frame begun (see [`Decoder::pending`]): the caller receives the rest of
    /// its payload itself, and feeds the decoder again from the first byte after it.
    pub fn drop_pending(&mut self) {
        self.partial.clear();
    }

    /// Feeds the next bytes of the stream: `f` gets every frame they complete, in order
    /// (frames that arrived whole in `input` are read in place, the others from a copy).
    /// `Err` at the first bad header, and for every call after it.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        f: &mut dyn FnMut(FrameHeader, &[u8]),
    ) -> Result<(), &'static str> {
        if let Some(why) = self.bad {
            return Err(why);
        }
        // First the frame begun by earlier input.
        while !self.partial.is_empty() && !input.is_empty() {
            let want = if self.partial.len() < HEADER {
                HEADER
            } else {
                HEADER + self.checked(&self.head())?.0
            };
            let take = (want - self.partial.len()).min(input.len());
            self.partial.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.partial.len() == HEADER {
                // The header is whole: check it before waiting for its payload.
                let (len, h) = self.checked(&self.head())?;
                if len == 0 {
                    self.partial.clear();
                    f(h, &[]);
                }
                continue;
            }
            if self.partial.len() == want {
                let (_, h) = self.checked(&self.head())?;
                f(h, &self.partial[HEADER..]);
                self.partial.clear();
            }
        }
        // Then whole frames in place.
        while input.len() >= HEADER {
            let (len, h) = self.checked(input[..HEADER].try_into().expect("header"))?;
            if input.len() < HEADER + len {
                break;
            }
            f(h, &input[HEADER..HEADER + len]);
            input = &input[HEADER + len..];
        }
        // A frame's start that the next input completes (its buffer grows with what
        // arrives, so a peer that stops mid-frame holds only what it sent).
        if !input.is_empty() {
            if input.len() >= HEADER {
                self.checked(input[..HEADER].try_into().expect("header"))?;
            }
            self.partial.extend_from_slice(input);
        }
        Ok(())
    }

    /// The header of the frame begun in `partial` (which holds at least its header).
    fn head(&self) -> [u8; HEADER] {
        self.partial[..HEADER].try_into().expect("a whole header")
    }

    /// The header's payload length and fields, or the decoder marked bad.
    fn checked(&mut self, b: &[u8; HEADER]) -> Result<(usize, FrameHeader), &'static str> {
        let h = FrameHeader::decode(b).and_then(|h| {
            if h.slot.len as usize > self.max {
                Err("a frame longer than the connection's limit")
            } else {
                Ok(h)
            }
        });
        match h {
            Ok(h) => Ok((h.slot.len as usize, h)),
            Err(why) => {
                self.bad = Some(why);
                self.partial = Vec::new();
                Err(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src: u32, payload: &[u8]) -> Vec<u8> {
        let h = FrameHeader {
            slot: SlotHeader {
                len: payload.len() as u32,
                kind: 3,
                flags: 1,
                aux: 0x1234,
                src,
            },
            dst: 9,
            lane: if src % 2 == 0 {
                Lane::Latency
            } else {
                Lane::Bulk
            },
        };
        [&h.encode()[..], payload].concat()
    }

    #[test]
    fn frames_come_out_whole_and_in_order_whatever_pieces_the_stream_arrives_in() {
        let payloads: Vec<Vec<u8>> = (0..40u32)
            .map(|i| {
                (0..(i * 37 % 300) as usize)
                    .map(|k| (k as u32 ^ i) as u8)
                    .collect()
            })
            .collect();
        let stream: Vec<u8> = payloads
            .iter()
            .enumerate()
            .flat_map(|(i, p)| frame(i as u32, p))
            .collect();
        for piece in [1, 2, 7, 19, 20, 21, 64, 333, stream.len()] {
            let mut d = Decoder::new(1 << 16);
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                d.feed(chunk, &mut |h, p| got.push((h, p.to_vec())))
                    .unwrap();
            }
            assert!(!d.mid_frame());
            assert_eq!(got.len(), payloads.len(), "pieces of {piece}");
            for (i, (h, p)) in got.iter().enumerate() {
                assert_eq!(h.slot.src, i as u32);
                assert_eq!(
                    (h.slot.kind, h.slot.flags, h.slot.aux, h.dst),
                    (3, 1, 0x1234, 9)
                );
                assert_eq!(h.slot.len as usize, p.len());
                assert_eq!(p, &payloads[i]);
            }
        }
    }

    #[test]
    fn a_bad_header_stops_the_stream_and_a_huge_length_allocates_nothing() {
        let mut bad = frame(1, b"abc");
        bad[17] = 0;
        let mut d = Decoder::new(1024);
        let mut n = 0;
        assert!(d.feed(&bad, &mut |_, _| n += 1).is_err());
        // Nothing more is read, even a good frame.
        assert!(d.feed(&frame(2, b"ok"), &mut |_, _| n += 1).is_err());
        assert_eq!(n, 0);

        let mut huge = frame(1, b"");
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut d = Decoder::new(1024);
        assert_eq!(
            d.feed(&huge[..HEADER], &mut |_, _| n += 1),
            Err("a frame longer than the connection's limit")
        );
        assert!(d.partial.capacity() < 1024);
        // The same header arriving a byte at a time is refused when it is whole.
        let mut d = Decoder::new(1024);
        let r: Result<Vec<()>, _> = huge[..HEADER]
            .iter()
            .map(|b| d.feed(std::slice::from_ref(b), &mut |_, _| n += 1))
            .collect();
        assert!(r.is_err());
        assert_eq!(n, 0);

        let mut lane = frame(1, b"x");
        lane[16] = 7;
        assert!(Decoder::new(64).feed(&lane, &mut |_, _| ()).is_err());
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_seen() {
        let f = frame(1, &[5u8; 100]);
        let mut d = Decoder::new(1024);
        d.feed(&f[..50], &mut |_, _| panic!("not whole yet"))
            .unwrap();
        assert!(d.mid_frame());
    }
}
