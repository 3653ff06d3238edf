//! The common frame of an endpoint ring taken in a few loads (see [`EpRing::take_compact`]).

use super::{EpRing, MessageRef, Received, Sink};
use crate::buffer::Payload;
use crate::codec::FrameKind;
use crate::engine::{Message, NodeName, FLAG_COMPACT, FLAG_ONE_WAY, MAX_MESSAGE};
use crate::model::{DataType, PacketPriority};
use crate::ring;

impl EpRing {
    /// The common frame in a few loads: a one-way compact frame (the data alone, as
    /// `post` with default options writes it) of this ring's source, taken straight into
    /// a `recv_into` buffer it fits, lent to a batch, or made a message. `Ok(false)` leaves
    /// any other frame (and a lying one) in the ring for `Plain`'s checks. It fills the sink
    /// itself rather than through `Plain::give` (which wants the frame's message header made
    /// first): that way measured 8-18 ns slower one-way at 8 B.
    #[inline(always)]
    pub(super) fn take_compact(
        &mut self,
        id: NodeName,
        sink: &mut Sink<'_>,
    ) -> Result<bool, ring::Corrupt> {
        let (src, source) = (self.src, self.source);
        let took = self.consumer.try_pop_or_leave(|h, d| {
            if h.flags != FLAG_ONE_WAY | FLAG_COMPACT
                || h.src != src
                || h.kind != FrameKind::Data as u8
                || d.len() > MAX_MESSAGE
            {
                return (false, false);
            }
            let data_type = DataType::from_u32(u32::from(h.aux as u8)).unwrap_or_default();
            let priority =
                PacketPriority::from_u32(u32::from((h.aux >> 8) as u8)).unwrap_or_default();
            match sink {
                Sink::Buffer { buf, got, .. } if d.len() <= buf.len() => {
                    buf[..d.len()].copy_from_slice(d);
                    *got = Some(Received {
                        len: d.len(),
                        source,
                        data_type,
                        priority,
                        metadata: Vec::new(),
                        request_id: 0,
                        one_way: true,
                    });
                    (true, true)
                }
                Sink::Each { f, taken, .. } => {
                    f(&MessageRef {
                        source,
                        destination: id,
                        data: d,
                        metadata: &[],
                        data_type,
                        priority,
                        request_id: 0,
                        one_way: true,
                    });
                    *taken += 1;
                    (true, true)
                }
                Sink::Message(out) => {
                    *out = Some(Message {
                        source,
                        destination: id,
                        data: Payload::copy_from(d),
                        data_type,
                        priority,
                        metadata: Vec::new(),
                        request_id: 0,
                        one_way: true,
                    });
                    (true, true)
                }
                _ => (false, false),
            }
        })?;
        Ok(took == Some(true))
    }
}
