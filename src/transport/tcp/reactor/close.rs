//! How connections of a [`Reactor`] close: marked closed once with the reason, reported
//! once, and their slot freed only when the kernel has nothing of theirs any more (also
//! when the reactor is dropped).

use super::*;

impl Reactor {
    /// Marks `slot` closed (once) with `why`: its receive is cancelled and its socket shut
    /// down, so the kernel lets go of its buffers; the slot is freed after the last
    /// completion.
    pub(super) fn fail(&mut self, slot: usize, why: String) {
        if self.conns.get(slot).is_none_or(Option::is_none) {
            return;
        }
        let c = self.conns[slot].as_mut().expect("checked above");
        if c.closed.is_some() {
            return;
        }
        c.closed = Some(why);
        self.held -= c.queued.len().min(self.held);
        c.queued = Buf::default();
        let _ = c.sock.shutdown(std::net::Shutdown::Both);
        // Not cancelled: the shutdown ends the receive anyway.
        let _ = self.cancel_recv(slot);
    }

    /// Cancels the receive armed on `slot`, if one is; its last completion still comes (the
    /// slot is kept until then). An error when the cancel could not be queued.
    pub(super) fn cancel_recv(&mut self, slot: usize) -> Result<()> {
        let ud = self.user_data(slot, OP_CANCEL);
        let recv = self.user_data(slot, OP_RECV);
        let c = self.conns[slot].as_mut().expect("live slot");
        if !c.recv_armed {
            return Ok(());
        }
        c.pending += 1;
        let cancel = opcode::AsyncCancel::new(recv).build().user_data(ud);
        self.push(cancel).inspect_err(|_| {
            self.conns[slot].as_mut().expect("live slot").pending -= 1;
        })
    }

    /// Reports closed connections not reported yet.
    pub(super) fn report_closed(&mut self, f: &mut dyn FnMut(ConnId, Event<'_>)) -> usize {
        let mut n = 0;
        let mut closed = Vec::new();
        for (i, c) in self.conns.iter_mut().enumerate() {
            if let Some(c) = c.as_mut().filter(|c| !c.reported) {
                if let Some(why) = &c.closed {
                    c.reported = true;
                    n += 1;
                    let id = ConnId {
                        slot: i,
                        generation: c.generation,
                    };
                    f(id, Event::Closed(why));
                    closed.push(i);
                }
            }
        }
        for i in closed {
            self.keep_unreceipted(i);
        }
        for i in 0..self.conns.len() {
            self.release_if_done(i);
        }
        n
    }

    /// Frees a closed, reported slot once the kernel has nothing of it any more.
    pub(super) fn release_if_done(&mut self, slot: usize) {
        if let Some(c) = &self.conns[slot] {
            if c.closed.is_some() && c.reported && c.pending == 0 {
                // What it still held is let go with it.
                let unsent = c.flight.len().saturating_sub(c.sent);
                self.held -= unsent.min(self.held);
                self.conns[slot] = None;
            }
        }
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // The kernel may still write into a connection's receive buffer or read its
        // flight: shut every socket (armed receives then complete), cancel what is armed,
        // and wait for the last completions before any of that memory is freed.
        let slots: Vec<usize> = (0..self.conns.len())
            .filter(|&i| self.conns[i].is_some())
            .collect();
        for i in slots {
            self.fail(i, "the reactor was dropped".into());
            if let Some(c) = self.conns[i].as_mut() {
                c.reported = true;
            }
        }
        // Completions `reap_sends` set aside count too.
        for cqe in std::mem::take(&mut self.later) {
            self.complete(&cqe, &mut |_, _| ());
        }
        let _ = self.ring.submit();
        let deadline = std::time::Instant::now() + DROP_WAIT;
        let pending = |r: &Reactor| r.conns.iter().flatten().any(|c| c.pending > 0);
        while pending(self) && std::time::Instant::now() < deadline {
            let ts = types::Timespec::new().nsec(50_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let cqes: Vec<cqueue::Entry> = self.ring.completion().collect();
            for cqe in cqes {
                self.complete(&cqe, &mut |_, _| ());
            }
        }
        if pending(self) {
            // The kernel did not let go in time: leak the memory it may still use.
            for c in self.conns.iter_mut().flatten() {
                std::mem::forget(std::mem::take(&mut c.inbox));
                std::mem::forget(c.landing.take());
                std::mem::forget(std::mem::take(&mut c.flight));
                std::mem::forget(std::mem::take(&mut c.zc_held));
            }
        } else if let Some(b) = self.bufs.take() {
            b.unregister(&self.ring);
        }
    }
}
