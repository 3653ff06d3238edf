//! Busy receives: while the engine spins, a connection is read with a plain non-blocking
//! `recv` at every poll instead of through a receive armed on the ring.
//!
//! A receive armed on io_uring costs each message more than a `recv` that finds the bytes
//! waiting: the sender's kernel wakes the ring's poll entry and queues task work, and the
//! receiver enters the kernel to run it (measured on loopback, 64 B one-way: about 8.2 us
//! against 5.3 us for two processes reading their sockets with `recv` in a loop). The same
//! holds for bulk traffic: with the wake-up off the sender's path, and large frames landed
//! in place (the read after a landed frame takes only the next frame's header and first
//! bytes, see [`land`](super::land)), a 1 MiB ping-pong and a 1 MiB stream both went
//! faster read directly than through a multishot receive. A connection therefore receives
//! in one of three ways:
//!
//! - **direct**: no receive on the ring; [`Reactor::poll`] reads the socket itself, at
//!   most [`DIRECT_READ`] bytes into the reactor's scratch buffer (a frame's start only
//!   after a frame landed), or the rest of a frame landing straight into its buffer;
//! - **armed once**: a single receive waits on the ring (at start, after [`DIRECT_QUIET`]
//!   empty reads, before a sleep); its completion makes the connection direct;
//! - **multishot**: where nothing spins on the connection (busy receives off,
//!   [`DIRECT_MAX`] connections direct already, a thread asleep on the ring), traffic that
//!   is bulk (a receive of [`DIRECT_BULK`] bytes or more, or a frame that large) has a
//!   multishot receive armed, which needs nothing per message; while the engine spins, a
//!   completion of it that finds a direct place free cancels it, and its last makes the
//!   connection direct. With every place taken, a connection of small messages takes the
//!   place of a bulk one (not of one landing a frame, which keeps its place until the frame
//!   is whole or its peer is quiet; the landing's own receive is armed then, see
//!   [`land`](super::land)).
//!
//! Only one of them reads a socket at any time, and all feed the same [`Decoder`], so
//! bytes stay in order. At most [`DIRECT_MAX`] connections are direct at once, so a
//! spinning engine makes few system calls that find nothing. Whoever sleeps on the ring
//! arms every direct connection first ([`Reactor::arm_for_sleep`]): data on any of them
//! then wakes it.
//!
//! [`Decoder`]: super::super::wire::Decoder

use super::*;
use std::io::Read;

/// Empty reads in a row after which a direct connection is armed again (about half a
/// millisecond of a bare polling loop, more in an engine's).
pub const DIRECT_QUIET: u32 = 1024;
/// Connections read directly at once, at most: each costs a system call per poll.
pub const DIRECT_MAX: usize = 4;
/// Bytes one direct read asks for at most (a read of more, on loopback, made small
/// messages slower: a 16 KiB ping-pong took twice as long with reads of 256 KiB).
pub(super) const DIRECT_READ: usize = 64 << 10;
/// A receive of at least this many bytes, or a frame of at least this many (whole, or
/// begun at the end of a receive), is bulk (see the module documentation).
pub const DIRECT_BULK: usize = 16 << 10;

/// Whether a non-blocking read that failed with `e` found nothing for now (no bytes
/// waiting, or a signal), rather than a broken connection.
pub(super) fn try_again(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
    )
}

impl Conn {
    /// Notes a receive of `len` bytes fed to the decoder (`big`: a frame of it was bulk),
    /// armed or direct alike: whether its traffic is bulk.
    pub(super) fn note_received(&mut self, len: usize, big: bool) {
        self.bulk = len >= DIRECT_BULK
            || big
            || self.decoder.pending_len().is_some_and(|l| l >= DIRECT_BULK);
    }
}

impl Reactor {
    /// Whether connections that receive while the engine spins are read directly (see the
    /// module documentation). On by default, off with SQPOLL (its kernel thread receives
    /// without a system call of this side).
    pub fn set_busy_receive(&mut self, on: bool) {
        self.busy = on && !self.sqpoll;
        if !self.busy {
            self.arm_slots(&self.direct_slots());
        }
    }

    /// Whether busy receives are on.
    pub fn busy_receive(&self) -> bool {
        self.busy
    }

    /// Whether `id` is read directly now (no receive armed on the ring).
    pub fn is_direct(&self, id: ConnId) -> bool {
        self.conn(id).is_some_and(|c| c.direct)
    }

    /// Connections read directly, `slot` left out.
    pub(super) fn direct_others(&self, slot: usize) -> usize {
        (0..self.conns.len())
            .filter(|&i| i != slot && self.conns[i].as_ref().is_some_and(|c| c.direct))
            .count()
    }

    /// After the receive armed on `slot` ended (the connection open, not paused), or a
    /// direct read of it landed frames: reads it directly from now on, or arms it again.
    /// With every direct place taken, a connection whose traffic is small takes the place
    /// of one whose traffic is bulk (armed again, its multishot receive costs it nothing
    /// per message): small messages are what direct reads save the most on.
    pub(super) fn after_recv(&mut self, slot: usize) -> Result<()> {
        if !self.busy || self.sleeping {
            return self.arm_recv(slot);
        }
        if self.direct_others(slot) >= DIRECT_MAX {
            // A direct connection has nothing armed; one landing a frame keeps its place
            // (the frame's rest is read into its buffer), until its peer is quiet.
            let bulk = (0..self.conns.len()).find(|&i| {
                i != slot
                    && self.conns[i]
                        .as_ref()
                        .is_some_and(|c| c.direct && c.bulk && c.landing.is_none())
            });
            match bulk {
                Some(other) if !self.conns[slot].as_ref().is_some_and(|c| c.bulk) => {
                    if let Err(e) = self.arm_recv(other) {
                        self.fail(other, e.to_string());
                    }
                }
                _ => return self.arm_recv(slot),
            }
        }
        let c = self.conns[slot].as_mut().expect("live slot");
        c.direct = true;
        c.quiet = 0;
        Ok(())
    }

    /// After a completion of the multishot receive still armed on `slot` (open, not
    /// paused): while the engine spins and a direct place is free, the receive is
    /// cancelled, and its last completion makes the connection direct.
    pub(super) fn leave_multishot(&mut self, slot: usize) -> Result<()> {
        let free = self.direct_others(slot) < DIRECT_MAX;
        let c = self.conns[slot].as_mut().expect("live slot");
        if !self.busy || self.sleeping || c.leaving || !free {
            return Ok(());
        }
        c.leaving = true;
        self.cancel_recv(slot)
    }

    /// Arms a receive on every connection read directly, before a thread sleeps on the
    /// ring (data on any of them then wakes it); until [`Reactor::woke`], a receive that
    /// completes (a poll of another thread meanwhile) is armed again, not read directly.
    pub fn arm_for_sleep(&mut self) {
        self.sleeping = true;
        self.arm_slots(&self.direct_slots());
    }

    /// The slots of the connections read directly.
    fn direct_slots(&self) -> Vec<usize> {
        (0..self.conns.len())
            .filter(|&i| self.conns[i].as_ref().is_some_and(|c| c.direct))
            .collect()
    }

    /// The thread that slept on the ring woke.
    pub fn woke(&mut self) {
        self.sleeping = false;
    }

    fn arm_slots(&mut self, slots: &[usize]) {
        if slots.is_empty() {
            return;
        }
        for &slot in slots {
            let landing = self.conns[slot]
                .as_ref()
                .is_some_and(|c| c.landing.is_some());
            let armed = if landing {
                self.land_via(slot, true)
            } else {
                self.arm_recv(slot)
            };
            if let Err(e) = armed {
                self.fail(slot, e.to_string());
            }
        }
        let _ = self.ring.submit();
    }

    /// One read of every direct connection: frames to `f`. Returns how many frames.
    pub(super) fn read_direct(&mut self, f: &mut dyn FnMut(ConnId, Event<'_>)) -> usize {
        let mut n = 0;
        let mut quiet = Vec::new();
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_mut() else {
                continue;
            };
            if !c.direct {
                continue;
            }
            if c.closed.is_some() || c.paused {
                c.direct = false;
                continue;
            }
            if c.landing.is_some() {
                // The rest of a large frame, straight into its buffer (see `land_next`);
                // or, its peer silent, a receive armed for it.
                n += self.land_on(slot, f);
                self.submit_queued();
                continue;
            }
            let want = if c.peek && self.land_head > 0 {
                (crate::transport::tcp::wire::HEADER + self.land_head).min(DIRECT_READ)
            } else {
                DIRECT_READ
            };
            let got = (&c.sock).read(&mut self.scratch[..want]);
            let id = ConnId {
                slot,
                generation: c.generation,
            };
            let why = match got {
                Ok(0) if c.decoder.mid_frame() => {
                    "the peer closed the connection inside a frame".to_string()
                }
                Ok(0) => "closed by the peer".to_string(),
                Ok(len) => {
                    c.quiet = 0;
                    c.peek = false;
                    let mut bulk = false;
                    match c.feed(id, &self.scratch[..len], f, &mut n, &mut bulk) {
                        Ok(()) => {
                            c.note_received(len, bulk);
                            if self.offer_landing(slot, f) {
                                // The rest of a large frame lands in its buffer.
                                n += self.land_on(slot, f);
                                self.submit_queued();
                            }
                            continue;
                        }
                        Err(why) => why.to_string(),
                    }
                }
                Err(e) if try_again(&e) => {
                    c.quiet += 1;
                    if c.quiet >= DIRECT_QUIET {
                        c.bulk = false;
                        quiet.push(slot);
                    }
                    continue;
                }
                Err(e) => format!("receive failed: {e}"),
            };
            c.direct = false;
            self.fail(slot, why);
        }
        self.arm_slots(&quiet);
        n
    }
}
