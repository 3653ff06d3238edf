//! The sending half of an endpoint: fragments into its own ring (inline, or by descriptor
//! through a chunk of this process's segment), waiting for room, the doorbell.

use super::{Endpoint, Path, INLINE_MAX, LIVENESS_CHECK};
use crate::codec::FrameKind;
use crate::engine::{
    compact_slot, push_fragment, Outgoing, CHUNK_SIZE, FLAG_DESCRIPTOR, MSG_HEADER,
};
use crate::error::{Error, Result};
use crate::fabric::lock;
use crate::ring::PushError;
use crate::sync::Backoff;
use crate::transport::channel::Descriptor;
use std::time::{Duration, Instant};

impl Endpoint {
    /// Pushes every fragment of `o.metadata ‖ body`, waiting while the ring is full, then
    /// rings the destination's doorbell.
    #[inline]
    pub(super) fn push(&mut self, o: &Outgoing<'_>, body: &[u8], timeout: Duration) -> Result<()> {
        self.push_quiet(o, body, timeout)?;
        self.inner.registry.ring_bell(self.dst.index);
        Ok(())
    }

    /// [`Endpoint::push`] without the doorbell.
    #[inline]
    pub(super) fn push_quiet(
        &mut self,
        o: &Outgoing<'_>,
        body: &[u8],
        timeout: Duration,
    ) -> Result<()> {
        let total = o.metadata.len() + body.len();
        within_largest(total)?;
        // Inline only what one frame carries (a small `max_packet_size` lowers the bound).
        let by_descriptor =
            body.len() > INLINE_MAX.min(self.limit.max(crate::engine::DESCRIPTOR_THRESHOLD));
        if !by_descriptor && o.metadata.is_empty() && body.len() <= self.limit {
            // One inline fragment: header and bytes straight into the ring; a plain message
            // as a compact frame (no message header: the ring says who to whom).
            if let Path::Own { producer, .. } = &mut self.path {
                let compact = o.kind == FrameKind::Data && !o.framed && !o.coalesced;
                let pushed = if compact && o.one_way {
                    producer.try_push(compact_slot(o, self.src), &[body])
                } else if compact {
                    let id = o.request_id.to_le_bytes();
                    producer.try_push(compact_slot(o, self.src), &[&id, body])
                } else {
                    let hdr = o.header(self.src, self.dst.index, 0, total);
                    producer.try_push(o.slot(self.src, 0), &[&hdr, body])
                };
                match pushed {
                    Ok(()) => {
                        self.sent.0 += 1;
                        self.sent.1 += total as u64;
                        return Ok(());
                    }
                    Err(PushError::Full) => {}
                    Err(PushError::Corrupt) => return Err(self.corrupt()),
                    Err(PushError::TooLarge) => {
                        return Err(Error::InvalidArgument(
                            "fragment exceeds the endpoint's ring".into(),
                        ))
                    }
                }
            }
        }
        let mut offset = 0;
        // Set on the first wait: a send that finds room reads no clock.
        let mut waiting: Option<(Instant, Instant)> = None;
        let mut backoff = Backoff::new();
        loop {
            let pushed = if by_descriptor {
                self.try_push_chunk(o, body, offset)?
            } else {
                None
            };
            let pushed = match pushed {
                Some(p) => p,
                None => self.try_push_inline(o, body, offset)?,
            };
            match pushed {
                Some(end) => {
                    self.sent.0 += 1;
                    self.sent.1 += (end - offset) as u64;
                    offset = end;
                    if end == total {
                        return Ok(());
                    }
                    backoff.reset();
                }
                None => {
                    self.wait_for_room(&mut waiting, timeout)?;
                    backoff.snooze();
                }
            }
        }
    }

    /// One inline fragment; `None` when the ring is full.
    fn try_push_inline(
        &mut self,
        o: &Outgoing<'_>,
        body: &[u8],
        offset: usize,
    ) -> Result<Option<usize>> {
        let Path::Own { producer, .. } = &mut self.path else {
            unreachable!("engine-path endpoints do not push themselves")
        };
        match push_fragment(
            producer,
            (self.src, self.dst.index),
            o,
            body,
            offset,
            self.limit,
        ) {
            Ok(end) => Ok(Some(end)),
            Err(PushError::Full) => Ok(None),
            Err(PushError::Corrupt) => Err(self.corrupt()),
            Err(PushError::TooLarge) => Err(Error::InvalidArgument(
                "fragment exceeds the endpoint's ring".into(),
            )),
        }
    }

    /// One descriptor fragment: the metadata not yet sent inline, up to
    /// [`fragment_of`] bytes of data copied into a chunk. `Some(None)` when the ring is
    /// full, `None` when no chunk is free (the fragment then goes inline).
    fn try_push_chunk(
        &mut self,
        o: &Outgoing<'_>,
        body: &[u8],
        offset: usize,
    ) -> Result<Option<Option<usize>>> {
        let m = o.metadata.len();
        let inline = &o.metadata[offset.min(m)..];
        let ds = offset.saturating_sub(m);
        let de = body.len().min(ds + fragment_of(body.len()));
        {
            let Path::Own { producer, .. } = &mut self.path else {
                unreachable!("engine-path endpoints do not push themselves")
            };
            // Room first: a chunk filled for a full ring would be copied again.
            if !producer.has_room(MSG_HEADER + Descriptor::LEN + inline.len()) {
                if producer.is_corrupt() {
                    return Err(self.corrupt());
                }
                return Ok(Some(None));
            }
        }
        let class = usize::from(de - ds > crate::engine::SMALL_CHUNK_SIZE);
        if self.chunks[class].is_none() {
            self.chunks[class] = Some(lock(&self.inner.engine).chunk_pool(de - ds)?);
        }
        let (key, pool) = self.chunks[class].as_ref().expect("made above");
        let Ok(mut chunk) = pool.acquire() else {
            return Ok(None);
        };
        let n = de - ds;
        chunk.as_mut_slice()[..n].copy_from_slice(&body[ds..de]);
        chunk.set_len(n)?;
        let Ok((index, len)) = chunk.into_pooled() else {
            return Ok(None);
        };
        // Lent to the destination's process (this one for a destination it hosts): the
        // receiver takes only a buffer lent to it, and if it dies holding the chunk, the
        // engine takes it back.
        let _ = pool.lend(index, self.lend_to);
        let total = m + body.len();
        let hdr = o.header(self.src, self.dst.index, offset, total);
        let desc = Descriptor {
            key: *key,
            index,
            len: len as u32,
        }
        .encode();
        let pool = pool.clone();
        let Path::Own { producer, .. } = &mut self.path else {
            unreachable!("engine-path endpoints do not push themselves")
        };
        match producer.try_push(o.slot(self.src, FLAG_DESCRIPTOR), &[&hdr, &desc, inline]) {
            Ok(()) => {
                // The chunk's data crosses the link too.
                producer.count_carried(len as u64);
                Ok(Some(Some(offset + inline.len() + len)))
            }
            Err(e) => {
                let _ = pool.release_descriptor(&crate::buffer::BufferDescriptor {
                    index,
                    len: len as u32,
                });
                match e {
                    PushError::Corrupt => Err(self.corrupt()),
                    _ => Err(Error::InvalidArgument(
                        "descriptor frame did not fit the ring".into(),
                    )),
                }
            }
        }
    }

    /// The ring is full: drains this process's own rings (the destination may be waiting
    /// for us to read), checks every 10 ms that the destination lives, and fails at the
    /// deadline.
    pub(super) fn wait_for_room(
        &mut self,
        waiting: &mut Option<(Instant, Instant)>,
        timeout: Duration,
    ) -> Result<()> {
        self.inner.drain();
        let now = Instant::now();
        let (end, check) = waiting.get_or_insert((now + timeout, now));
        if now >= *check {
            if !self.dst_alive() {
                return Err(Error::NodeNotFound(format!(
                    "destination node {} is gone (its process died or it left the fabric)",
                    self.destination
                )));
            }
            *check = now + LIVENESS_CHECK;
        }
        if now >= *end {
            return Err(Error::Timeout(format!(
                "ring to {} stayed full",
                self.destination
            )));
        }
        Ok(())
    }

    pub(super) fn corrupt(&self) -> Error {
        Error::MalformedFrame(format!(
            "the receiver of {} found the endpoint's ring corrupt and dropped it",
            self.destination
        ))
    }
}

/// `InvalidArgumentError` for a message of `total` bytes above the largest message.
pub(super) fn within_largest(total: usize) -> Result<()> {
    if total > crate::engine::MAX_MESSAGE {
        return Err(Error::InvalidArgument(format!(
            "message of {total} bytes exceeds the largest message ({} bytes)",
            crate::engine::MAX_MESSAGE
        )));
    }
    Ok(())
}

/// Data of a message's descriptor fragments: an eighth of it, from [`PIPELINE_MIN`] to
/// [`CHUNK_SIZE`]. The receiver copies a fragment out (straight into its buffer, see the
/// mailbox's assembly) while the sender copies the next in, so a message of several
/// fragments costs about one copy's time rather than two. Measured on 2 vCPUs (near
/// placement, 1 MiB post/recv_into round trips, touched, one-way): one fragment 66-76 us,
/// 64 KiB fragments 63 us, 128 KiB 51-61 us, 256 KiB 58 us.
fn fragment_of(len: usize) -> usize {
    (len / 8).clamp(PIPELINE_MIN, CHUNK_SIZE)
}

/// Smallest descriptor fragment of a message split for the pipeline (see [`fragment_of`]):
/// below it the fixed cost per fragment (a chunk's acquire, lending and return, a frame)
/// outweighs the overlap.
const PIPELINE_MIN: usize = 128 << 10;
