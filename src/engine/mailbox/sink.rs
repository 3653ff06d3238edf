//! Where `recv` puts a message: built whole, copied into the caller's buffer, or lent in
//! place to the caller's function; and what the last two hand back.

use crate::engine::{Message, NodeName};
use crate::model::DataType;

/// Where `recv` wants a message: built as a [`Message`], or copied into the caller's buffer.
pub enum Sink<'a> {
    /// A whole message.
    Message(Option<Message>),
    /// The data copied into `buf`, the rest described in `got`. A message larger than `buf`
    /// is kept whole in `spill` (then put before the node's other messages) and its size in
    /// `too_large`.
    Buffer {
        /// The caller's buffer.
        buf: &'a mut [u8],
        /// What was received.
        got: Option<Received>,
        /// A message that did not fit.
        spill: Option<Message>,
        /// Its size.
        too_large: Option<usize>,
    },
    /// Each message lent to `f` in place (valid during the call), up to `max` of them.
    Each {
        /// The caller's function.
        f: &'a mut dyn FnMut(&MessageRef<'_>),
        /// Messages given to it so far.
        taken: usize,
        /// Messages it takes at most.
        max: usize,
    },
}

/// A message lent in place by `recv_batch`: its bytes are valid during the call only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessageRef<'a> {
    /// Sending node id.
    pub source: NodeName,
    /// Receiving node id.
    pub destination: NodeName,
    /// The data.
    pub data: &'a [u8],
    /// Metadata sent with it (JSON object bytes; empty when none).
    pub metadata: &'a [u8],
    /// Kind of data.
    pub data_type: DataType,
    /// QoS class.
    pub priority: crate::model::PacketPriority,
    /// Message id (requests: the id their response carries).
    pub request_id: u64,
    /// Whether the sender waits for a response.
    pub one_way: bool,
}

impl MessageRef<'_> {
    /// A view of an owned message.
    pub fn of(m: &Message) -> MessageRef<'_> {
        MessageRef {
            source: m.source,
            destination: m.destination,
            data: &m.data,
            metadata: &m.metadata,
            data_type: m.data_type,
            priority: m.priority,
            request_id: m.request_id,
            one_way: m.one_way,
        }
    }
}

impl Sink<'_> {
    /// Results the sink holds (messages, or a too-large report).
    #[inline]
    pub fn count(&self) -> usize {
        match self {
            Sink::Message(m) => usize::from(m.is_some()),
            Sink::Buffer { got, too_large, .. } => {
                usize::from(got.is_some() || too_large.is_some())
            }
            Sink::Each { taken, .. } => *taken,
        }
    }

    /// Whether the sink holds a result.
    #[inline]
    pub fn filled(&self) -> bool {
        self.count() > 0
    }

    /// Whether it takes another message (a batch not yet full).
    #[inline]
    pub fn wants_more(&self) -> bool {
        matches!(self, Sink::Each { taken, max, .. } if taken < max)
    }

    /// Whether `m` is too large for the sink's buffer (its size is then the result).
    pub(super) fn refuses(&mut self, m: &Message) -> bool {
        match self {
            Sink::Buffer { buf, too_large, .. } if m.data.len() > buf.len() => {
                *too_large = Some(m.data.len());
                true
            }
            _ => false,
        }
    }

    /// Puts an owned message in the sink (from the queue); gives it back when it does not
    /// fit the buffer (the caller keeps it in front).
    pub fn put(&mut self, m: Message) -> Option<Message> {
        match self {
            Sink::Message(out) => {
                *out = Some(m);
                None
            }
            Sink::Buffer {
                buf,
                got,
                too_large,
                ..
            } => {
                if m.data.len() > buf.len() {
                    *too_large = Some(m.data.len());
                    return Some(m);
                }
                buf[..m.data.len()].copy_from_slice(&m.data);
                *got = Some(Received::of(&m));
                None
            }
            Sink::Each { f, taken, .. } => {
                f(&MessageRef::of(&m));
                *taken += 1;
                None
            }
        }
    }
}

/// What `recv_into` received: the data is in the caller's buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Bytes of data written to the buffer.
    pub len: usize,
    /// Sending node id.
    pub source: NodeName,
    /// Kind of data.
    pub data_type: DataType,
    /// QoS class.
    pub priority: crate::model::PacketPriority,
    /// Metadata sent with it (JSON object bytes; empty when none).
    pub metadata: Vec<u8>,
    /// Message id (requests: the id their response carries).
    pub request_id: u64,
    /// Whether the sender waits for a response.
    pub one_way: bool,
}

impl Received {
    fn of(m: &Message) -> Received {
        Received {
            len: m.data.len(),
            source: m.source,
            data_type: m.data_type,
            priority: m.priority,
            metadata: m.metadata.clone(),
            request_id: m.request_id,
            one_way: m.one_way,
        }
    }
}
