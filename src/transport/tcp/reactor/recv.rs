//! The receiving side of a [`Reactor`]: the receive armed on every connection, and the
//! bytes of its completions cut into frames (what another host sent is checked by the
//! connection's [`Decoder`]; a stream that breaks the framing closes its connection).

use super::*;
use crate::transport::tcp::wire::HEADER;

impl Reactor {
    /// Arms the receive of `slot`: multishot into the provided buffers, or one receive into
    /// its own buffer; with busy receives, a multishot one only while its traffic is bulk,
    /// else one receive from the provided buffers (its completion makes the connection
    /// direct, see [`super::direct`]).
    pub(super) fn arm_recv(&mut self, slot: usize) -> Result<()> {
        let ud = self.user_data(slot, OP_RECV);
        let c = self.conns[slot].as_mut().expect("live slot");
        let fd = types::Fd(c.sock.as_raw_fd());
        // A frame landed last: read the next one's start only (see `land`).
        let peek = (c.peek && self.land_head > 0).then_some(HEADER + self.land_head);
        let sqe = match self.mode {
            RecvMode::Multishot if peek.is_some() || self.busy && !c.bulk => {
                opcode::Recv::new(fd, std::ptr::null_mut(), peek.unwrap_or(BUF_SIZE) as u32)
                    .buf_group(BUF_GROUP)
                    .build()
                    .flags(squeue::Flags::BUFFER_SELECT)
            }
            RecvMode::Multishot => opcode::RecvMulti::new(fd, BUF_GROUP).build(),
            RecvMode::Single => {
                let len = peek.unwrap_or(c.inbox.len()).min(c.inbox.len());
                opcode::Recv::new(fd, c.inbox.as_mut_ptr(), len as u32).build()
            }
        };
        self.push(sqe.user_data(ud))?;
        let c = self.conns[slot].as_mut().expect("live slot");
        c.recv_armed = true;
        c.peek = false;
        c.direct = false;
        c.leaving = false;
        c.pending += 1;
        Ok(())
    }

    /// The bytes of one receive completion.
    pub(super) fn received(
        &mut self,
        slot: usize,
        res: i32,
        flags: u32,
        f: &mut dyn FnMut(ConnId, Event<'_>),
    ) -> usize {
        let buffer = cqueue::buffer_select(flags);
        let c = self.conns[slot].as_mut().expect("live slot");
        if res == 0 {
            let why = if c.decoder.mid_frame() {
                "the peer closed the connection inside a frame"
            } else {
                "closed by the peer"
            };
            self.fail(slot, why.into());
            return 0;
        }
        if res < 0 {
            if -res == libc::ENOBUFS || -res == libc::ECANCELED && c.closed.is_none() {
                // Every provided buffer was in use: re-armed by the caller.
                return 0;
            }
            if c.closed.is_none() {
                let why = format!(
                    "receive failed: {}",
                    std::io::Error::from_raw_os_error(-res)
                );
                self.fail(slot, why);
            }
            return 0;
        }
        let len = res as usize;
        let mut n = 0;
        let id = ConnId {
            slot,
            generation: c.generation,
        };
        let mut bulk = false;
        let fed = match (self.mode, buffer, self.bufs.as_mut()) {
            (RecvMode::Multishot, Some(bid), Some(bufs)) => {
                let r = match bufs.get(bid, len) {
                    Some(bytes) if c.closed.is_none() => c.feed(id, bytes, f, &mut n, &mut bulk),
                    Some(_) => Ok(()),
                    None => Err("the kernel named a provided buffer that does not exist"),
                };
                bufs.recycle(bid);
                r
            }
            (RecvMode::Single, _, _) if len <= c.inbox.len() => {
                if c.closed.is_some() {
                    Ok(())
                } else {
                    // The inbox is not fed while it is borrowed: taken out, then put back.
                    let inbox = std::mem::take(&mut c.inbox);
                    let r = c.feed(id, &inbox[..len], f, &mut n, &mut bulk);
                    c.inbox = inbox;
                    r
                }
            }
            _ => Err("a receive completion without its buffer"),
        };
        match fed {
            Ok(()) => {
                let c = self.conns[slot].as_mut().expect("live slot");
                c.note_received(len, bulk);
                self.offer_landing(slot, f);
            }
            Err(why) => self.fail(slot, why.into()),
        }
        n
    }

    /// Stops receiving on `id` until [`Reactor::resume`]: its armed receive is cancelled
    /// (what it took before is still delivered), the kernel keeps what comes next, and TCP
    /// stops the peer once the socket's buffer is full. The other connections go on. For a
    /// connection whose frames wait for a reader that is behind.
    pub fn pause(&mut self, id: ConnId) {
        let Ok(c) = self.conn_mut(id) else { return };
        if c.paused {
            return;
        }
        c.paused = true;
        c.direct = false;
        let armed = c.recv_armed || c.landing.is_some();
        // Not cancelled: the receive goes on delivering; it is not armed again.
        let cancelled = self.cancel_recv(id.slot).and(self.cancel_landing(id.slot));
        if cancelled.is_ok() && armed {
            let _ = self.ring.submit();
        }
    }

    /// Receives on `id` again after [`Reactor::pause`].
    pub fn resume(&mut self, id: ConnId) {
        let Ok(c) = self.conn_mut(id) else { return };
        if !c.paused {
            return;
        }
        c.paused = false;
        if c.landing.is_some() {
            // Its frame may have come whole while paused: the next poll hands it back and
            // goes on (this call has nobody to hand it to).
            self.land_later.push(id.slot);
        } else if !c.recv_armed {
            if let Err(e) = self.arm_recv(id.slot) {
                self.fail(id.slot, e.to_string());
                return;
            }
            let _ = self.ring.submit();
        }
    }

    /// Whether receiving on `id` is paused.
    pub fn is_paused(&self, id: ConnId) -> bool {
        self.conn(id).is_some_and(|c| c.paused)
    }
}
