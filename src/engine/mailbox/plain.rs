//! Frames of an endpoint ring checked and, when plain, turned into messages in place.

use super::{MessageRef, Received, Sink};
use crate::buffer::Payload;
use crate::codec::FrameKind;
use crate::engine::remote::{RemoteBytes, FLAG_REMOTE};
use crate::engine::Via;
use crate::engine::{
    Message, MsgHeader, NodeName, FLAG_COMPACT, FLAG_DESCRIPTOR, FLAG_FRAMED, FLAG_ONE_WAY,
};
use crate::engine::{MAX_MESSAGE, MSG_HEADER};
use crate::model::DataType;
use crate::ring::{Producer, Region, SlotHeader};
use crate::transport::channel::{Descriptor, SegmentMaps};

/// The ring a frame came from, for [`Plain::deliver`].
pub(super) struct Plain {
    pub(super) node: u32,
    pub(super) id: NodeName,
    pub(super) src: u32,
    pub(super) source: NodeName,
    /// The ring's producing process.
    pub(super) pid: u32,
}

/// What [`Plain::deliver`] did with a frame.
pub(super) enum Taken {
    /// Delivered to the sink.
    Yes,
    /// Not a plain frame: for the engine's dispatch.
    No,
    /// A frame the ring's producer cannot have written.
    Bad(&'static str),
    /// A send from registered memory delivered to the sink: for the dispatch to acknowledge.
    Read,
}

impl Plain {
    /// Whether a frame is one an endpoint writes into its own ring: data from the ring's
    /// node to this node, not forwarded, not coalesced, chunks of the ring's process, and
    /// lengths that agree with its bytes. Everything else came from another process writing
    /// where it must not, and costs the ring.
    /// Returns the frame's message header (a compact frame's stands for it).
    pub(super) fn check(&self, h: SlotHeader, d: &[u8]) -> Result<MsgHeader, &'static str> {
        if h.src != self.src || h.kind != FrameKind::Data as u8 {
            return Err("a frame of another node, or of a kind an endpoint never writes");
        }
        if h.flags & !FLAG_ONE_WAY == FLAG_COMPACT {
            return match MsgHeader::of_compact(self.node, h, d) {
                Some((m, data)) if data.len() <= MAX_MESSAGE => Ok(m),
                _ => Err("lengths in a frame's header that contradict its bytes"),
            };
        }
        if h.flags == FLAG_REMOTE && d.len() >= MSG_HEADER {
            let m = MsgHeader::decode(d);
            return match RemoteBytes::of_frame(&m, &d[MSG_HEADER..]) {
                Some(_)
                    if m.dst == self.node && m.origin == self.src && m.hop == 0 && h.aux == 0 =>
                {
                    Ok(m)
                }
                _ => Err("a send from registered memory whose header contradicts it"),
            };
        }
        if h.flags & !(FLAG_ONE_WAY | FLAG_DESCRIPTOR | FLAG_FRAMED) != 0 || d.len() < MSG_HEADER {
            return Err("a frame of another node, or of a kind an endpoint never writes");
        }
        let m = MsgHeader::decode(d);
        if m.dst != self.node || m.origin != self.src || m.hop != 0 {
            return Err("a frame for another node, from another origin, or forwarded");
        }
        let rest = &d[MSG_HEADER..];
        let fragment = if h.flags & FLAG_DESCRIPTOR != 0 {
            let Some(desc) = Descriptor::decode(rest) else {
                return Err("a descriptor frame too short for its descriptor");
            };
            if desc.key.pid != self.pid {
                return Err("a descriptor of another process's segment");
            }
            (rest.len() - Descriptor::LEN) as u64 + desc.len as u64
        } else {
            rest.len() as u64
        };
        let (total, offset) = (m.total as u64, m.offset as u64);
        if total > MAX_MESSAGE as u64 || offset + fragment > total || h.aux as u64 > total {
            return Err("lengths in a frame's header that contradict its bytes");
        }
        Ok(m)
    }

    /// Delivers a plain frame to `sink`: data for the node, one-way, in one fragment, inline
    /// or by descriptor, not a codec frame. [`Taken::No`] for anything else (and for a
    /// descriptor whose segment cannot be mapped, which the engine's dispatch then refuses the
    /// same way), [`Taken::Bad`] for a descriptor outside its segment.
    #[inline]
    pub(super) fn deliver(
        &self,
        (h, d, m): (SlotHeader, &[u8], &MsgHeader),
        segments: &mut SegmentMaps,
        dir: &std::path::Path,
        sink: &mut Sink<'_>,
    ) -> Taken {
        if h.flags == FLAG_ONE_WAY | FLAG_COMPACT {
            // No message header: the payload is the data.
            return self.give(sink, m, (&[], d, None));
        }
        if h.flags == FLAG_COMPACT {
            // A request: answered by the engine (a handler, or a receipt).
            return Taken::No;
        }
        if h.flags == FLAG_REMOTE {
            return self.copy_remote(d, m, sink);
        }
        if h.flags & FLAG_ONE_WAY == 0
            || h.flags & !(FLAG_ONE_WAY | FLAG_DESCRIPTOR) != 0
            || m.offset != 0
        {
            return Taken::No;
        }
        let rest = &d[MSG_HEADER..];
        let meta = h.aux as usize;
        let parts = if h.flags & FLAG_DESCRIPTOR != 0 {
            let Some(desc) = Descriptor::decode(rest) else {
                return Taken::No;
            };
            let inline = &rest[Descriptor::LEN..];
            if inline.len() != meta || m.total as usize != meta + desc.len as usize {
                return Taken::No;
            }
            let data = match segments.take(dir, &desc) {
                Ok(data) => data,
                // The segment is mapped: the buffer is outside it.
                Err(_) if segments.get(&desc.key).is_some() => {
                    return Taken::Bad("a descriptor outside its segment")
                }
                // The segment is gone (its process died): dropped by the dispatch.
                Err(_) => return Taken::No,
            };
            (inline, &[][..], Some(data))
        } else {
            if m.total as usize != rest.len() || meta > rest.len() {
                return Taken::No;
            }
            (&rest[..meta], &rest[meta..], None)
        };
        self.give(sink, m, parts)
    }

    /// A send from registered memory, copied from its sender's memory straight into a
    /// `recv_into` buffer it fits, or into a new message for any other receive (a `recv`, a
    /// batch, a buffer too small, which then keeps it as its next message): [`Taken::Read`],
    /// for the dispatch to acknowledge. The copy happens here, in the receiving thread, not
    /// under the engine lock. A copy that failed is the dispatch's to answer (it does not
    /// copy a send given up again).
    fn copy_remote(&self, d: &[u8], m: &MsgHeader, sink: &mut Sink<'_>) -> Taken {
        let Some(r) = RemoteBytes::of_frame(m, &d[MSG_HEADER..]) else {
            return Taken::No;
        };
        let len = r.len as usize;
        if let Sink::Buffer { buf, got, .. } = sink {
            if len <= buf.len() {
                if r.copy_into(self.pid, m.id, &mut buf[..len]).is_err() {
                    return Taken::No;
                }
                *got = Some(self.received(m, len, &[]));
                return Taken::Read;
            }
        }
        match r.copy(self.pid, m.id) {
            Ok(p) => {
                self.give(sink, m, (&[], &[], Some(p)));
                Taken::Read
            }
            Err(_) => Taken::No,
        }
    }

    /// How a frame of this ring reaches the engine's dispatch, answers through `reply`.
    pub(super) fn via<'r>(&self, reply: &'r mut Option<Producer<Region>>) -> Via<'r> {
        Via {
            source: self.source,
            reply: reply.as_mut(),
            pid: self.pid,
        }
    }

    /// What a `recv_into` received: the message of header `m` whose `len` bytes of data are
    /// in its buffer, with `metadata`.
    #[inline]
    pub(super) fn received(&self, m: &MsgHeader, len: usize, metadata: &[u8]) -> Received {
        Received {
            len,
            source: self.source,
            data_type: DataType::from_u32(m.data_type as u32).unwrap_or_default(),
            priority: m.priority(),
            metadata: metadata_of(metadata),
            request_id: m.id,
            one_way: true,
        }
    }

    /// Gives a message (metadata, inline data or a shared buffer) to `sink`.
    #[inline]
    pub(super) fn give(
        &self,
        sink: &mut Sink<'_>,
        m: &MsgHeader,
        (metadata, inline, shared): (&[u8], &[u8], Option<Payload>),
    ) -> Taken {
        let data_type = DataType::from_u32(m.data_type as u32).unwrap_or_default();
        let whole = |shared: Option<Payload>| Message {
            source: self.source,
            destination: self.id,
            data: shared.unwrap_or_else(|| Payload::copy_from(inline)),
            data_type,
            priority: m.priority(),
            metadata: metadata_of(metadata),
            request_id: m.id,
            one_way: true,
        };
        match sink {
            Sink::Message(out) => *out = Some(whole(shared)),
            Sink::Buffer {
                buf,
                got,
                spill,
                too_large,
            } => {
                let bytes: &[u8] = shared.as_deref().unwrap_or(inline);
                if bytes.len() > buf.len() {
                    *too_large = Some(bytes.len());
                    *spill = Some(whole(shared));
                } else {
                    buf[..bytes.len()].copy_from_slice(bytes);
                    *got = Some(self.received(m, bytes.len(), metadata));
                }
            }
            Sink::Each { f, taken, .. } => {
                f(&MessageRef {
                    source: self.source,
                    destination: self.id,
                    data: shared.as_deref().unwrap_or(inline),
                    metadata,
                    data_type,
                    priority: m.priority(),
                    request_id: m.id,
                    one_way: true,
                });
                *taken += 1;
            }
        }
        Taken::Yes
    }
}

/// Gives a whole one-way message of `source` for hosted node `node` (its header `m`, its
/// `metadata` and `data`) to `sink`, when the sink takes it whole: a message or a buffer
/// it fits, not a batch (whose function must not run where this is called, under the
/// engine's lock). Returns whether it did. The way a message that came over TCP reaches
/// the receive that polls the engine (see `engine::hosts::straight`).
pub(crate) fn hand(
    sink: &mut Sink<'_>,
    node: (u32, NodeName),
    source: NodeName,
    m: &MsgHeader,
    (metadata, data): (&[u8], &[u8]),
) -> bool {
    let takes = match sink {
        Sink::Message(out) => out.is_none(),
        Sink::Buffer {
            buf,
            got,
            too_large,
            ..
        } => got.is_none() && too_large.is_none() && data.len() <= buf.len(),
        Sink::Each { .. } => false,
    };
    takes
        && matches!(
            plain_of(node, source, m).give(sink, m, (metadata, data, None)),
            Taken::Yes
        )
}

/// The delivery of a message of `source` (its header `m`) that came over TCP to hosted
/// node `node`.
fn plain_of((node, id): (u32, NodeName), source: NodeName, m: &MsgHeader) -> Plain {
    Plain {
        node,
        id,
        src: m.origin,
        source,
        pid: 0,
    }
}

/// Hands over a whole one-way message of `source` for hosted node `node` (its header `m`,
/// no metadata) whose `len` bytes of data are already at the start of the buffer of
/// `sink`, a `recv_into` that holds nothing yet (they were landed there, see
/// `engine::hosts::into_buffer`). Returns whether it did.
pub(crate) fn hand_landed(
    sink: &mut Sink<'_>,
    node: (u32, NodeName),
    source: NodeName,
    m: &MsgHeader,
    len: usize,
) -> bool {
    let Sink::Buffer {
        buf,
        got: got @ None,
        too_large: None,
        spill: None,
    } = sink
    else {
        return false;
    };
    if len > buf.len() {
        return false;
    }
    *got = Some(plain_of(node, source, m).received(m, len, &[]));
    true
}

/// Metadata bytes as a vector (no allocator call when there are none).
#[inline(always)]
fn metadata_of(b: &[u8]) -> Vec<u8> {
    if b.is_empty() {
        Vec::new()
    } else {
        b.to_vec()
    }
}
