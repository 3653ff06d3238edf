//! The control frames two processes exchange on a connection, beside the ring frames: which
//! nodes each side knows under which of its indices ([`Announce::Nodes`]), and which of
//! those indices it no longer uses ([`Announce::Gone`]). Frames carry the sending side's
//! indices; the receiver maps them onto its own through what was announced.
//!
//! ```text
//! kind 0xC1 nodes: entries of  index u32 | generation u64 | hosted u8 | len u16 | signature (JSON)
//! kind 0xC2 gone:  entries of  index u32
//! kind 0xC3 beat:  no body
//! kind 0xC4 receipt: frames u64 (aux 1: the number of one frame taken and dropped)
//! kind 0xC5 echo:  probe number u64 (aux 0: asked, aux 1: the answer)
//! ```
//!
//! The frame header of either carries the sending process's instance (a random nonzero
//! u64): its low half in the slot's `src`, its high half in `dst`.
//!
//! Another host wrote these bytes: every length is checked, every signature validated.

use crate::error::{Error, Result};
use crate::model::NodeSignature;

/// Slot kind of a nodes announcement (never a ring frame's kind).
pub const KIND_NODES: u8 = 0xC1;
/// Slot kind of a gone announcement.
pub const KIND_GONE: u8 = 0xC2;
/// Slot kind of a heartbeat on a connection: no body. An engine whose background thread
/// runs sends one on each of its connections a few times in the silence after which its
/// peer takes the connection for dead (see `TcpConfig::down_after`); only a connection that
/// brought heartbeats is judged by its silence. `aux` [`BEAT_STOP`]: the sender stops
/// beating (its background thread stopped).
pub const KIND_BEAT: u8 = 0xC3;
/// Slot kind of a receipt: its body (8 bytes, little-endian) says how many frames of ring
/// kinds ([`counts_for_receipt`]) the sender of the receipt took off the connection so far
/// (see `reactor::receipts`).
pub const KIND_RECEIPT: u8 = 0xC4;
/// `aux` of a receipt that names one frame its sender took off the connection and dropped
/// (its receiving node is not hosted there, or it names indices never announced): the body
/// is that frame's number, and a one-way message it ended was not delivered.
pub const RECEIPT_DROPPED: u16 = 1;
/// Bytes of a receipt's body.
pub const RECEIPT_LEN: usize = 8;

/// Slot kind of a timing probe on a connection: its body (8 bytes, little-endian) numbers the
/// probe. The peer answers an asked one ([`ECHO_ASKED`]) at once with the same body
/// ([`ECHO_ANSWER`]); the round trip, queued behind the data each way, times the connection
/// (see `engine::hosts::timing`).
pub const KIND_ECHO: u8 = 0xC5;
/// `aux` of an echo that asks for an answer.
pub const ECHO_ASKED: u16 = 0;
/// `aux` of an echo that answers one.
pub const ECHO_ANSWER: u16 = 1;
/// Bytes of an echo's body.
pub const ECHO_LEN: usize = 8;

/// The header of a control frame of `kind` with `aux` and a body of `len` bytes (no node: a
/// connection's own word).
pub fn control_header(kind: u8, aux: u16, len: usize) -> super::FrameHeader {
    super::FrameHeader {
        slot: crate::ring::SlotHeader {
            len: len as u32,
            kind,
            flags: 0,
            aux,
            src: 0,
        },
        dst: 0,
        lane: crate::transport::channel::Lane::Latency,
    }
}

/// Whether receipts count frames of `kind`: those of the rings, not the control frames of
/// a connection (which are not numbered, so that receipts do not call for receipts).
pub fn counts_for_receipt(kind: u8) -> bool {
    kind < 0xC0
}

/// `aux` of a last heartbeat.
pub const BEAT_STOP: u16 = 1;
/// Largest announcement frame.
pub const MAX_ANNOUNCE: usize = 60 << 10;

/// One node an announcement names.
#[derive(Debug, Clone, PartialEq)]
pub struct Announced {
    /// The sender's index for it.
    pub index: u32,
    /// Its registration generation.
    pub generation: u64,
    /// Whether the sending process hosts it (frames for it are delivered there).
    pub hosted: bool,
    /// Its signature.
    pub signature: NodeSignature,
}

/// A control frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Announce {
    /// Nodes the sender knows.
    Nodes(Vec<Announced>),
    /// Indices the sender no longer uses.
    Gone(Vec<u32>),
}

fn malformed(why: &str) -> Error {
    Error::MalformedFrame(format!("announcement from a peer host: {why}"))
}

impl Announce {
    /// Encodes as frames of at most [`MAX_ANNOUNCE`] bytes: `(kind, body)` each.
    pub fn encode(&self) -> Result<Vec<(u8, Vec<u8>)>> {
        let mut frames = Vec::new();
        let mut body = Vec::new();
        let kind = match self {
            Announce::Nodes(_) => KIND_NODES,
            Announce::Gone(_) => KIND_GONE,
        };
        let mut flush = |body: &mut Vec<u8>, next: usize| {
            if !body.is_empty() && body.len() + next > MAX_ANNOUNCE {
                frames.push((kind, std::mem::take(body)));
            }
        };
        match self {
            Announce::Nodes(nodes) => {
                for n in nodes {
                    let sig = serde_json::to_vec(&n.signature)
                        .map_err(|e| Error::InvalidArgument(format!("encoding a node: {e}")))?;
                    let len = u16::try_from(sig.len())
                        .ok()
                        .filter(|&l| (l as usize) + 15 <= MAX_ANNOUNCE)
                        .ok_or_else(|| {
                            Error::InvalidArgument(format!(
                                "node {:?}: its signature is too large to announce",
                                n.signature.node_id
                            ))
                        })?;
                    flush(&mut body, 15 + sig.len());
                    body.extend_from_slice(&n.index.to_le_bytes());
                    body.extend_from_slice(&n.generation.to_le_bytes());
                    body.push(n.hosted as u8);
                    body.extend_from_slice(&len.to_le_bytes());
                    body.extend_from_slice(&sig);
                }
            }
            Announce::Gone(indices) => {
                for i in indices {
                    flush(&mut body, 4);
                    body.extend_from_slice(&i.to_le_bytes());
                }
            }
        }
        if !body.is_empty() || frames.is_empty() && kind == KIND_NODES {
            // An empty node list still says "these are all" (and that the sender is ready).
            frames.push((kind, body));
        }
        Ok(frames)
    }

    /// Decodes one control frame of slot kind `kind`.
    pub fn decode(kind: u8, mut b: &[u8]) -> Result<Announce> {
        match kind {
            KIND_NODES => {
                let mut nodes = Vec::new();
                while !b.is_empty() {
                    let head = split(&mut b, 15)?;
                    let index = u32::from_le_bytes(head[0..4].try_into().expect("4"));
                    let generation = u64::from_le_bytes(head[4..12].try_into().expect("8"));
                    let hosted = match head[12] {
                        0 => false,
                        1 => true,
                        _ => return Err(malformed("a hosted flag that is neither 0 nor 1")),
                    };
                    let len = u16::from_le_bytes([head[13], head[14]]) as usize;
                    let signature: NodeSignature = serde_json::from_slice(split(&mut b, len)?)
                        .map_err(|e| malformed(&format!("a signature that does not parse: {e}")))?;
                    signature
                        .validate()
                        .map_err(|e| malformed(&format!("an invalid node: {e}")))?;
                    nodes.push(Announced {
                        index,
                        generation,
                        hosted,
                        signature,
                    });
                }
                Ok(Announce::Nodes(nodes))
            }
            KIND_GONE => {
                if b.is_empty() || b.len() % 4 != 0 {
                    return Err(malformed("a gone list that is not whole indices"));
                }
                Ok(Announce::Gone(
                    b.chunks_exact(4)
                        .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
                        .collect(),
                ))
            }
            _ => Err(malformed("an unknown control kind")),
        }
    }
}

/// The first `n` bytes of `b`, which then starts after them.
fn split<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    let (head, tail) = b
        .split_at_checked(n)
        .ok_or_else(|| malformed("truncated"))?;
    *b = tail;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HardwareType;

    fn node(i: u32) -> Announced {
        Announced {
            index: i,
            generation: 7 + i as u64,
            hosted: i % 2 == 0,
            signature: NodeSignature::new(format!("node-{i}"), HardwareType::CpuServer, 100.0, 500)
                .unwrap(),
        }
    }

    #[test]
    fn round_trips_across_frames() {
        let a = Announce::Nodes((0..2000).map(node).collect());
        let frames = a.encode().unwrap();
        assert!(frames.len() > 1, "2000 nodes take several frames");
        let mut back = Vec::new();
        for (kind, body) in &frames {
            assert!(body.len() <= MAX_ANNOUNCE);
            match Announce::decode(*kind, body).unwrap() {
                Announce::Nodes(n) => back.extend(n),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(Announce::Nodes(back), a);
        let g = Announce::Gone(vec![1, 2, 1 << 30]);
        let f = g.encode().unwrap();
        assert_eq!(Announce::decode(f[0].0, &f[0].1).unwrap(), g);
    }

    #[test]
    fn defects_are_refused() {
        let (kind, body) = Announce::Nodes(vec![node(2)]).encode().unwrap().remove(0);
        for cut in [3, 14, body.len() - 1] {
            assert!(
                Announce::decode(kind, &body[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut flag = body.clone();
        flag[12] = 9;
        assert!(Announce::decode(kind, &flag).is_err());
        let mut sig = body.clone();
        let last = sig.len() - 2;
        sig[last] = b'#';
        assert!(Announce::decode(kind, &sig).is_err());
        assert!(Announce::decode(KIND_GONE, &[1, 2, 3]).is_err());
        assert!(Announce::decode(KIND_GONE, &[]).is_err());
        let empty = Announce::Nodes(Vec::new()).encode().unwrap();
        assert_eq!(empty.len(), 1);
        assert_eq!(
            Announce::decode(KIND_NODES, &empty[0].1).unwrap(),
            Announce::Nodes(Vec::new())
        );
        assert!(Announce::decode(0x77, &body).is_err());
        let mut bad = NodeSignature::new("x", HardwareType::CpuServer, 1.0, 0).unwrap();
        bad.bandwidth_gbps = -1.0;
        let raw = serde_json::to_vec(&bad).unwrap();
        let mut b = vec![0u8; 12];
        b.push(1);
        b.extend_from_slice(&(raw.len() as u16).to_le_bytes());
        b.extend_from_slice(&raw);
        let e = Announce::decode(KIND_NODES, &b).unwrap_err().to_string();
        assert!(e.contains("invalid node"), "{e}");
    }
}
