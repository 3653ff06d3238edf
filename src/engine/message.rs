//! What the engine delivers and whom it names: [`Message`], interned [`NodeName`]s, the
//! [`Peer`] a send resolves to, and the callbacks a node or the protocol installs.

use crate::buffer::Payload;
use crate::error::{ErrorKind, Result};
use crate::model::{DataType, PacketPriority};
use crate::transport::registry::Registry;

/// A node id as delivered messages carry it: interned (each distinct id is stored once for
/// the life of the process), so naming the source and destination of a message costs neither
/// an allocation nor an atomic reference count.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(&'static str);

impl NodeName {
    /// The interned name `s`.
    pub fn intern(s: &str) -> NodeName {
        let s = s.split('\0').next().unwrap_or_default();
        static NAMES: std::sync::Mutex<Option<std::collections::HashSet<&'static str>>> =
            std::sync::Mutex::new(None);
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let set = names.get_or_insert_with(Default::default);
        if let Some(&n) = set.get(s) {
            return NodeName(n);
        }
        let n: &'static str = Box::leak(format!("{s}\0").into_boxed_str());
        // Stored with a NUL after the id (never inside: `s` was cut at one), so a pointer to
        // it is also a C string for the C API.
        let n = &n[..s.len()];
        set.insert(n);
        NodeName(n)
    }

    /// The id.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl From<&str> for NodeName {
    fn from(s: &str) -> NodeName {
        NodeName::intern(s)
    }
}

impl From<String> for NodeName {
    fn from(s: String) -> NodeName {
        NodeName::intern(&s)
    }
}

impl std::ops::Deref for NodeName {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl std::borrow::Borrow<str> for NodeName {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl std::fmt::Debug for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0, f)
    }
}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Whether two node ids are equal: the same string first (an id handed back, as a
/// message's source), then byte by byte without a library call for ids of usual length.
#[inline]
pub fn same_id(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if a.as_ptr() == b.as_ptr() {
        return true;
    }
    let n = a.len();
    // Two loads that cover the id (overlapping in the middle), a word or half a word each.
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

impl PartialEq<str> for NodeName {
    #[inline]
    fn eq(&self, other: &str) -> bool {
        same_id(self.0, other)
    }
}

impl PartialEq<&str> for NodeName {
    #[inline]
    fn eq(&self, other: &&str) -> bool {
        same_id(self.0, other)
    }
}

impl PartialEq<String> for NodeName {
    #[inline]
    fn eq(&self, other: &String) -> bool {
        same_id(self.0, other)
    }
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Sending node id.
    pub source: NodeName,
    /// Receiving node id.
    pub destination: NodeName,
    /// Payload: owned, or (large messages and buffers sent by descriptor) read in place from
    /// the sender's shared segment, which gets the buffer back when the message is dropped.
    pub data: Payload,
    /// Kind of data.
    pub data_type: DataType,
    /// QoS class.
    pub priority: PacketPriority,
    /// Metadata sent with it (JSON object bytes; empty when none).
    pub metadata: Vec<u8>,
    /// Message id (requests: the id their response carries).
    pub request_id: u64,
    /// Whether the sender waits for a response.
    pub one_way: bool,
}

/// A live node of the host as the hot path needs it: where to send, and which registration
/// of that index (a new registration of the index is another node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Dense index.
    pub index: u32,
    /// Registration generation of the index.
    pub generation: u64,
}

impl Peer {
    /// Whether this registration still holds its index and its process (`owner`: pid and
    /// start time, when it is another process) lives. Reads `/proc`: for a sender or a
    /// waiter every few milliseconds, not per message.
    pub fn is_alive(&self, registry: &Registry, owner: Option<(u32, u64)>) -> bool {
        registry.live_generation(self.index) == Some(self.generation)
            && owner.is_none_or(|(pid, start)| crate::sys::process::alive(pid, start))
    }
}

/// A node's request handler: gets the message and writes its answer into the [`Reply`]
/// (left empty: an empty answer); an error is sent back instead.
pub type Handler = Box<dyn FnMut(&Message, &mut Reply) -> Result<()> + Send>;

/// Bytes of answer buffer the engine keeps between requests; a larger one is freed.
pub const REPLY_KEPT: usize = 8 << 20;

/// Where a handler writes the answer to a request. The buffer is the engine's and is
/// reused from one request to the next (no allocation once it is large enough); the answer
/// goes from it into the reply ring of the endpoint the request came through, or the
/// engine's ring back. It starts empty for each request; for a one-way message (or an event)
/// what is written is dropped.
#[derive(Debug, Default)]
pub struct Reply {
    bytes: Vec<u8>,
}

impl Reply {
    /// Appends `data` to the answer.
    #[inline]
    pub fn write(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    /// Makes the answer `len` bytes long (new bytes are zero) and returns them to fill in
    /// place.
    #[inline]
    pub fn buffer(&mut self, len: usize) -> &mut [u8] {
        self.bytes.resize(len, 0);
        &mut self.bytes
    }

    /// Replaces the answer with `data` (taken without a copy).
    pub fn set(&mut self, data: Vec<u8>) {
        self.bytes = data;
    }

    /// Empties the answer.
    #[inline]
    pub fn clear(&mut self) {
        self.bytes.clear();
    }

    /// Empties the answer for the next request, letting go of a buffer grown beyond
    /// [`REPLY_KEPT`] by a large one.
    #[inline]
    pub(crate) fn reset(&mut self) {
        if self.bytes.capacity() > REPLY_KEPT {
            self.bytes = Vec::new();
        } else {
            self.bytes.clear();
        }
    }

    /// The answer so far.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Decides at delivery whether a message from one node (id) to another, sealed or not, may be
/// delivered: `None` admits it, else the error kind and reason it is refused with.
pub type Admit = Box<dyn FnMut(&str, &str, bool) -> Option<(ErrorKind, String)> + Send>;

/// Gives the next hop from one node toward another (node ids) on the routes `Leg` says,
/// `None` when there is no route.
pub type Router = Box<dyn FnMut(&str, &str, Leg) -> Option<String> + Send>;

/// Reads the generation of the routes a [`Router`] answers from: one atomic load, changed by
/// every change of the topology or of link figures that may move routes.
pub type RoutesGeneration = Box<dyn Fn() -> u64 + Send>;

/// Which routes a next hop is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// A frame inside the process that sends it: the process's own routes (learned ones,
    /// with learned routing).
    First,
    /// A frame that left the process that sent it: the configured routes, which every
    /// process computes alike. Two processes whose learned figures disagree would otherwise
    /// send a frame back and forth, and rings full along such a loop wait on each other.
    Onward,
}

#[cfg(test)]
mod tests {
    use super::same_id;

    #[test]
    fn ids_compare_by_every_byte_at_every_length() {
        for n in 0..40usize {
            let a: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            assert!(same_id(&a, &a.clone()), "{n}");
            assert!(!same_id(&a, &format!("{a}x")));
            for k in 0..n {
                let mut b = a.clone().into_bytes();
                b[k] = b'#';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_id(&a, &b), "length {n}, byte {k}");
            }
        }
    }
}
