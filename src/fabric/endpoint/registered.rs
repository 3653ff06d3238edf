//! Sends from registered memory through an endpoint (see [`crate::fabric::MemoryRegion`] and
//! [`crate::engine::remote`]).

use super::{Endpoint, Path};
use crate::engine::remote::{remote_frame, RemoteBytes, FLAG_REMOTE};
use crate::error::{Error, Result};
use crate::fabric::{Deadline, MemoryRegion, Request, SendOptions};
use crate::ring::{PushError, SlotHeader};
use crate::sync::Backoff;

impl Endpoint {
    /// Sends `len` bytes at `offset` of `region` as a one-way message: the destination's
    /// process copies them once, straight from this process's memory into its receiver's
    /// buffer. Returns a [`Request`] that completes (with an empty response) when the bytes
    /// are copied, which is when the destination takes the message (its `recv`, or its
    /// handler): until then they must not change. Giving the request up (its deadline,
    /// `cancel`, dropping it) takes the send back: the receiver drops it if it had not copied
    /// it yet (a send given up may still have been delivered, but never with bytes written
    /// after it was given up). `opts` as for [`post_with`](Self::post_with).
    ///
    /// Below the protocol's [`single_copy_from`](crate::fabric::ProtocolConfig::single_copy_from)
    /// (where the kernel's copy is slower than a post through shared memory), where the
    /// destination's process cannot read this one (another user, a ptrace policy, a route
    /// through other nodes) or `opts` asks for metadata, a codec, constraints, or a
    /// zone applies, the bytes are sent as by `post_with` and the request is complete at
    /// once. `BufferExhaustedError` when [`LENT_MAX`](crate::engine::lent::LENT_MAX) sends of
    /// this endpoint are in flight.
    pub fn post_mem(
        &mut self,
        region: &MemoryRegion,
        offset: usize,
        len: usize,
        opts: &SendOptions,
    ) -> Result<Request> {
        self.inner.check_process()?;
        let addr = region.range(offset, len)?;
        super::push::within_largest(len)?;
        if !self.zero_copy(len, opts) {
            self.post_with(region.bytes(offset, len)?, opts)?;
            return Ok(Request::ready(self.inner.clone(), 0, Ok(Vec::new())));
        }
        self.check_ends()?;
        let replies = self
            .replies
            .clone()
            .expect("endpoints with an own ring have replies");
        let id = self.next_id();
        let Some(entry) = replies.lent().claim(id, addr, len as u64) else {
            return Err(Error::BufferExhausted(format!(
                "{} sends from registered memory of this endpoint are in flight; complete one \
                 first",
                crate::engine::lent::LENT_MAX
            )));
        };
        replies.issue(id);
        let bytes = RemoteBytes {
            addr,
            len: len as u64,
            entry,
        };
        let frame = remote_frame(
            (self.src, self.dst.index),
            id,
            (opts.priority as u8, opts.data_type as u8),
            &bytes,
        );
        if let Err(e) = self.push_remote(&frame, len as u64, opts) {
            replies.abandon(id);
            return Err(e);
        }
        self.inner.registry.ring_bell(self.dst.index);
        Ok(Request::answered_by(
            self.inner.clone(),
            id,
            Deadline::after(opts.timeout),
            replies,
        ))
    }

    /// Whether a send of `len` bytes with `opts` goes without a copy: an own ring, a
    /// destination that can read this process, nothing to encode or check.
    fn zero_copy(&mut self, len: usize, opts: &SendOptions) -> bool {
        self.follow_routes();
        if len == 0
            || !self.plain(opts)
            || !matches!(self.path, Path::Own { .. })
            || self.replies.is_none()
            || !self.inner.single_copy(len)
        {
            return false;
        }
        let pid = self.lend_to;
        *self.cma.get_or_insert_with(|| crate::sys::cma::mutual(pid))
    }

    /// Pushes a frame of a send from registered memory, waiting while the ring is full;
    /// the `carried` bytes it names count as the ring's traffic.
    fn push_remote(&mut self, frame: &[u8], carried: u64, opts: &SendOptions) -> Result<()> {
        let h = SlotHeader {
            len: 0,
            kind: crate::codec::FrameKind::Data as u8,
            flags: FLAG_REMOTE,
            aux: 0,
            src: self.src,
        };
        let mut waiting = None;
        let mut backoff = Backoff::new();
        loop {
            let Path::Own { producer, .. } = &mut self.path else {
                unreachable!("checked by zero_copy")
            };
            match producer.try_push(h, &[frame]) {
                Ok(()) => {
                    producer.count_carried(carried);
                    self.sent.0 += 1;
                    return Ok(());
                }
                Err(PushError::Full) => {
                    self.wait_for_room(&mut waiting, opts.timeout)?;
                    backoff.snooze();
                }
                Err(PushError::Corrupt) => return Err(self.corrupt()),
                Err(PushError::TooLarge) => unreachable!("a frame of 56 bytes fits any ring"),
            }
        }
    }
}
