//! The sending side of a [`Reactor`]: frames written straight into the socket when nothing
//! is in flight, else queued and handed to the kernel in as few `SEND`s as the connection
//! allows; the completions of sends reaped without delivering anything; and the futex wait
//! on an engine's doorbell that lets an idle engine sleep on the ring.

use super::*;

impl Reactor {
    /// Queues one frame (header `h`, payload the concatenation of `parts`) on `id`, and
    /// starts sending it unless a send is in flight (it then leaves with the next).
    /// `Ok(false)` while the connection has [`QUEUE_LIMIT`] bytes queued (try again after a
    /// poll); an error for a closed connection or a frame over the limit.
    pub fn send(&mut self, id: ConnId, h: &FrameHeader, parts: &[&[u8]]) -> Result<bool> {
        self.send_with(id, h, parts, false, None)
    }

    /// [`Reactor::send`] for a control frame: taken even past the queue limits (a
    /// connection whose peer is slow must still learn which nodes exist).
    pub fn send_control(&mut self, id: ConnId, h: &FrameHeader, body: &[u8]) -> Result<()> {
        self.send_with(id, h, &[body], true, None).map(drop)
    }

    /// Sends a heartbeat (an empty frame of `kind` with `aux`, see
    /// `tcp::control::KIND_BEAT`) on every connection.
    pub fn beat_all(&mut self, kind: u8, aux: u16) {
        let beat = crate::transport::tcp::control::control_header(kind, aux, 0);
        let ids: Vec<ConnId> = (0..self.conns.len())
            .filter_map(|slot| {
                let c = self.conns[slot].as_ref()?;
                Some(ConnId {
                    slot,
                    generation: c.generation,
                })
            })
            .collect();
        for id in ids {
            let _ = self.send_control(id, &beat, &[]);
        }
    }

    /// Queues a frame (see [`Reactor::send`]); a frame that is not `control` is numbered
    /// for receipts, with `note` (see [`receipts`](super::receipts)).
    pub(super) fn send_with(
        &mut self,
        id: ConnId,
        h: &FrameHeader,
        parts: &[&[u8]],
        control: bool,
        note: Option<(u32, u32)>,
    ) -> Result<bool> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > self.max_frame || len != h.slot.len as usize {
            return Err(Error::InvalidArgument(format!(
                "a frame of {len} bytes (header says {}) on a connection of frames up to {}",
                h.slot.len, self.max_frame
            )));
        }
        if !control && !self.room(id)? {
            return Ok(false);
        }
        if self.conn(id).is_some_and(|c| c.sending) {
            // A send usually completes as it is submitted (the socket had room): reaped
            // now, this frame goes straight to the socket instead of being copied into the
            // queue and waiting for a send of its own.
            self.reap_sends();
        }
        let c = self.conn_mut(id)?;
        let head = h.encode();
        // Nothing in flight: straight into the socket from the caller's bytes (one system
        // call, no completion to reap); what the socket does not take now is queued.
        let mut written = 0;
        if !c.sending && c.queued.is_empty() && parts.len() < 8 {
            let mut all: [&[u8]; 8] = [&[]; 8];
            all[0] = &head;
            all[1..parts.len() + 1].copy_from_slice(parts);
            match crate::sys::send_parts(&c.sock, &all[..parts.len() + 1]) {
                Ok(n) if n == head.len() + len => {
                    if !control && c.tally.count(note) {
                        self.notes_overflowed += 1;
                    }
                    return Ok(true);
                }
                Ok(n) => written = n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = format!("send failed: {e}");
                    self.fail(id.slot, why.clone());
                    return Err(Error::io(why, e));
                }
            }
        }
        let fixed = self.fixed_queue(id);
        let c = self.conn_mut(id)?;
        if let Some(f) = fixed {
            c.queued = Buf::Fixed(f);
        }
        let mut skip = written;
        for part in std::iter::once(&head[..]).chain(parts.iter().copied()) {
            let from = skip.min(part.len());
            c.queued.extend_from_slice(&part[from..]);
            skip -= from;
        }
        let sending = c.sending;
        self.held += crate::transport::tcp::wire::HEADER + len - written;
        if sending {
            // The send in flight may be done: then this frame leaves now with the others.
            self.reap_sends();
        } else {
            let started = self.start_send(id.slot).and_then(|()| {
                self.ring
                    .submit()
                    .map(drop)
                    .map_err(|e| Error::io("submitting to io_uring", e))
            });
            if let Err(e) = started {
                self.fail(id.slot, e.to_string());
                return Err(e);
            }
        }
        if !control {
            // Numbered once taken (a frame refused above is its sender's error).
            if self.conn_mut(id)?.tally.count(note) {
                self.notes_overflowed += 1;
            }
        }
        Ok(true)
    }

    /// Whether a frame of `len` payload bytes would be taken by [`Reactor::send`] now
    /// (`false` for a closed connection too).
    pub fn has_room(&mut self, id: ConnId, len: usize) -> bool {
        len <= self.max_frame && self.room(id).unwrap_or(false)
    }

    /// Whether `id` takes more frames now: its queue and the reactor's are under their
    /// limits, once the sends that completed are reaped (a sender whose engine is not
    /// polled finds room as the kernel takes its bytes). An error for a closed connection.
    fn room(&mut self, id: ConnId) -> Result<bool> {
        let under = |r: &mut Reactor| -> Result<bool> {
            // Flights of zero-copy sends not notified yet count too.
            let held = r.held + r.zc_bytes;
            let c = r.conn_mut(id)?;
            Ok(c.queued.len() < QUEUE_LIMIT && held < REACTOR_LIMIT)
        };
        if under(self)? {
            return Ok(true);
        }
        self.reap_sends();
        under(self)
    }

    /// Bytes queued on `id` not yet handed to the kernel (those of a send in flight
    /// included), and the most it queues before a sender waits.
    pub fn queued_bytes(&self, id: ConnId) -> (usize, usize) {
        let q = self.conn(id).map_or(0, |c| {
            c.queued.len() + c.flight.len().saturating_sub(c.sent)
        });
        (q, QUEUE_LIMIT)
    }

    /// Whether everything queued on `id` went to the kernel's socket buffer.
    pub fn is_flushed(&self, id: ConnId) -> bool {
        self.conn(id)
            .is_none_or(|c| !c.sending && c.queued.is_empty())
    }

    /// Handles the completions of sends without delivering anything (receive completions
    /// wait for the next [`Reactor::poll`]): frames queued behind a send that completed
    /// go to the kernel now. For a sender whose engine is not polled.
    pub fn reap_sends(&mut self) {
        if self.ring.completion().is_empty() && self.ring.submission().taskrun() {
            let _ = self.ring.submit();
        }
        let mut cqes = std::mem::take(&mut self.reaped);
        cqes.clear();
        cqes.extend(self.ring.completion());
        let mut none = |_: ConnId, _: Event<'_>| {};
        let mut sent = false;
        let later_before = self.later.len();
        for cqe in &cqes {
            if cqe.user_data() == OP_NOP {
                continue;
            }
            let op = cqe.user_data() & OP_MASK;
            if op == OP_SEND || op == OP_ZC || cqe.user_data() == OP_BELL {
                self.complete(cqe, &mut none);
                sent = true;
            } else {
                self.later.push(cqe.clone());
            }
        }
        let deferred = self.later.len() > later_before;
        self.reaped = cqes;
        if deferred {
            // A thread asleep on the ring (an idle engine) must not miss what was set aside
            // for it: a no-op completes at once and wakes it.
            let _ = self.push(opcode::Nop::new().build().user_data(OP_NOP));
        }
        if sent || deferred {
            // The sends that completions started, and the no-op.
            let _ = self.ring.submit();
        }
    }

    /// Arms a wait on the futex `word` (while it holds `expected`) on the ring, so that a
    /// thread sleeping in [`crate::sys::uring::wait_for_completion`] on this ring wakes when
    /// the word is woken, as it does when data arrives. `false` when the kernel has no
    /// futex waits on io_uring (the caller waits on the futex itself).
    ///
    /// The word must stay mapped while the ring lives (an engine's doorbell in its
    /// registry: the ring is closed first, which cancels the wait).
    pub fn arm_bell(&mut self, word: &std::sync::atomic::AtomicU32, expected: u32) -> bool {
        if self.bell_unsupported {
            return false;
        }

        if !self.bell_armed {
            const FUTEX2_SIZE_U32: u32 = 0x02;
            let sqe = opcode::FutexWait::new(
                word.as_ptr().cast_const(),
                expected as u64,
                u32::MAX as u64,
                FUTEX2_SIZE_U32,
            )
            .build()
            .user_data(OP_BELL);
            if self.push(sqe).is_err() {
                return false;
            }
            // Queued: armed once submitted (a failed submit leaves it for the next).
            self.bell_armed = true;
            if self.ring.submit().is_err() {
                return false;
            }
        }
        true
    }

    /// Whether work waits for a poll that nothing armed on the ring would wake a sleep
    /// for: completions set aside by [`Reactor::reap_sends`], or a landing resumed after a
    /// pause (see [`Reactor::resume`]).
    pub fn has_later(&self) -> bool {
        !self.later.is_empty() || !self.land_later.is_empty()
    }

    /// The ring's file descriptor (to wait on it without holding the reactor).
    pub fn ring_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd as _;
        self.ring.as_raw_fd()
    }

    /// Whether frames wait on `id` in a queue behind a send in flight.
    pub fn is_queued(&self, id: ConnId) -> bool {
        self.conn(id)
            .is_some_and(|c| c.closed.is_none() && !c.queued.is_empty())
    }

    /// Hands the queued frames (and the rest of a partly sent flight) to the kernel.
    pub(super) fn start_send(&mut self, slot: usize) -> Result<()> {
        let ud = self.user_data(slot, OP_SEND);
        let c = self.conns[slot].as_mut().expect("live slot");
        if c.sent == c.flight.len() {
            c.flight.reset(KEEP_BUFFER);
            c.sent = 0;
            std::mem::swap(&mut c.flight, &mut c.queued);
        }
        if c.flight.is_empty() {
            c.sending = false;
            return Ok(());
        }
        let rest = &c.flight.as_slice()[c.sent..];
        let fixed = c.flight.fixed_index();
        let (fd, ptr, len) = (
            types::Fd(c.sock.as_raw_fd()),
            rest.as_ptr(),
            rest.len().min(u32::MAX as usize) as u32,
        );
        // The kernel sends all of it (waiting for room itself) before it completes.
        let flags = libc::MSG_WAITALL | libc::MSG_NOSIGNAL;
        let c = self.conns[slot].as_ref().expect("live slot");
        let sqe = match self.zc_slot(c, len as usize) {
            Some(r) => {
                self.zc_stats.sends += 1;
                let ud = ud & !OP_MASK | OP_ZC | (r as u64) << 4;
                self.zc_stats.fixed += u64::from(fixed.is_some());
                opcode::SendZc::new(fd, ptr, len)
                    .buf_index(fixed)
                    .flags(flags)
                    .zc_flags(zc::REPORT_USAGE)
                    .build()
                    .user_data(ud)
            }
            None => opcode::Send::new(fd, ptr, len)
                .flags(flags)
                .build()
                .user_data(ud),
        };
        self.push(sqe)?;
        let c = self.conns[slot].as_mut().expect("live slot");
        c.sending = true;
        c.pending += 1;
        Ok(())
    }
}
