//! What the command-line tools ask of a node hosted by `hyperfabric serve`, and what a served
//! node answers.
//!
//! - A plain request to a served node is answered with 12 bytes: the length of what arrived
//!   (u64, little-endian) and its CRC-32 (u32), so a sender can check what was delivered.
//! - A request whose metadata holds [`OP_KEY`] is an operation for the serving process to
//!   carry out from that node (its answer, 12 zero bytes, says only that it was taken). The
//!   process does it on a thread of its own (a handler may not send) and posts the
//!   [`Outcome`] back to the requesting node, as JSON.
//!
//! - A request whose metadata holds [`LOOK_KEY`] is answered with the serving host's view of
//!   the fabric (`snapshot::Snapshot`, JSON): how a tool on another host sees this one.
//!
//! The bytes an operation sends are a pattern both ends derive from a seed, so the tool can
//! check the destination's CRC against its own without the bytes crossing twice.

use hyperfabric::model::PacketPriority;
use serde::{Deserialize, Serialize};

/// Metadata key of an operation request.
pub const OP_KEY: &str = "hf_op";

/// Metadata key of a request for the serving host's view of the fabric.
pub const LOOK_KEY: &str = "hf_look";

/// Whether a request's metadata (JSON object bytes) asks for the host's view.
pub fn is_look(metadata: &[u8]) -> bool {
    !metadata.is_empty()
        && serde_json::from_slice::<serde_json::Value>(metadata)
            .is_ok_and(|v| v.get(LOOK_KEY) == Some(&serde_json::Value::Bool(true)))
}

/// The metadata of a request for the host's view.
pub fn look_metadata() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(LOOK_KEY.into(), true.into());
    m
}

/// The longest an operation's send may wait (a serve process carries out one at a time).
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// Send `size` pattern bytes of `seed` from the served node to `to`, as `send_data` with
/// these options, and report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SendOp {
    /// The request's number, echoed in the outcome.
    pub tag: u64,
    /// Destination node.
    pub to: String,
    /// Bytes.
    pub size: usize,
    /// Seed of the pattern.
    pub seed: u64,
    /// `compression_enabled`.
    pub compress: bool,
    /// `encryption_enabled`.
    pub encrypt: bool,
    /// Priority name (`PacketPriority`'s).
    pub priority: String,
    /// Timeout of the send, ms.
    pub timeout_ms: u64,
}

/// What a served node's process reports after an operation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Outcome {
    /// The operation's tag.
    pub tag: u64,
    /// Whether the send was answered.
    pub ok: bool,
    /// The error, when not.
    pub error: Option<String>,
    /// Bytes sent.
    pub bytes: usize,
    /// Time from the send to its answer, ns.
    pub ns: u64,
    /// CRC-32 of the bytes sent.
    pub sent_crc: u32,
    /// Length and CRC-32 the destination reported (when it is a served node).
    pub received_len: Option<u64>,
    /// As above.
    pub received_crc: Option<u32>,
}

/// The answer of a served node to a plain request.
pub fn answer(data: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(12);
    a.extend_from_slice(&(data.len() as u64).to_le_bytes());
    a.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    a
}

/// Reads [`answer`]'s bytes: `(length, crc)`, or `None` when they are not such an answer.
pub fn read_answer(a: &[u8]) -> Option<(u64, u32)> {
    let a: &[u8; 12] = a.try_into().ok()?;
    let len = u64::from_le_bytes(a[..8].try_into().ok()?);
    let crc = u32::from_le_bytes(a[8..].try_into().ok()?);
    Some((len, crc))
}

/// `size` bytes of the pattern of `seed` (xorshift64*, eight bytes a step), into `out`.
pub fn pattern_into(seed: u64, size: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(size);
    let mut x = seed | 1;
    while out.len() < size {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let w = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        let take = (size - out.len()).min(8);
        out.extend_from_slice(&w[..take]);
    }
}

/// The operation in a request's metadata (JSON object bytes), if any. `Err` names what is
/// wrong with one that is there but malformed.
pub fn op_of(metadata: &[u8]) -> Option<Result<SendOp, String>> {
    if metadata.is_empty() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(metadata).ok()?;
    let op = v.get(OP_KEY)?;
    Some(serde_json::from_value(op.clone()).map_err(|e| format!("bad operation: {e}")))
}

/// The metadata that carries `op`.
pub fn op_metadata(op: &SendOp) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        OP_KEY.into(),
        serde_json::to_value(op).expect("an operation encodes"),
    );
    m
}

/// A priority by name, with the names listed when it is not one.
pub fn priority(name: &str) -> Result<PacketPriority, hyperfabric::Error> {
    name.parse::<PacketPriority>()
        .map_err(hyperfabric::Error::InvalidArgument)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_repeat_by_seed_and_differ_between_seeds() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        pattern_into(7, 1001, &mut a);
        pattern_into(7, 1001, &mut b);
        pattern_into(8, 1001, &mut c);
        assert_eq!(a.len(), 1001);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn answers_and_operations_read_back() {
        assert_eq!(
            read_answer(&answer(b"abc")),
            Some((3, crc32fast::hash(b"abc")))
        );
        assert_eq!(read_answer(b"short"), None);
        let op = SendOp {
            tag: 3,
            to: "b".into(),
            size: 10,
            seed: 1,
            compress: true,
            encrypt: false,
            priority: "high".into(),
            timeout_ms: 1000,
        };
        let meta = serde_json::to_vec(&op_metadata(&op)).unwrap();
        assert_eq!(op_of(&meta), Some(Ok(op)));
        assert_eq!(op_of(b""), None);
        assert_eq!(op_of(b"{\"other\": 1}"), None);
        assert!(matches!(op_of(b"{\"hf_op\": {\"tag\": 1}}"), Some(Err(_))));
    }
}
