//! Large frames land in place: the kernel receives the payload of a large frame straight
//! into the buffer it ends up in, not into provided buffers that are then copied.
//!
//! When the decoder holds the start of a frame of at least [`LAND_MIN`] payload bytes, with
//! the first bytes of its payload ([`Reactor::set_landing`] says how many), the reactor
//! offers it ([`Event::Land`]). The engine may lend a buffer (the message being put
//! together, see `engine::hosts::inbound`); then what of the payload arrived is appended to
//! it, and the rest is received into it:
//!
//! - at once with a non-blocking `recv` when it is there (a stream of large frames is read
//!   like a plain socket reader would, a header then a payload);
//! - then, while the engine spins and the connection holds a direct place (see
//!   [`direct`](super::direct)), by a non-blocking `recv` at every poll, until the peer
//!   stays silent for `DIRECT_QUIET` reads;
//! - else (busy receives off, a thread about to sleep on the ring, no direct place, a
//!   silent peer) by one receive of the remaining length (`MSG_WAITALL`) armed on the
//!   ring, which stays armed until the frame is whole (a sleep that ends leaves it).
//!
//! Each happens only when no other receive is armed: a multishot receive still armed is
//! cancelled first, and what it delivers meanwhile is copied. When the frame is whole the
//! buffer goes back ([`Event::Landed`]), and only the next frame's header and first bytes
//! are read (now, or by the next receive armed), so that a large frame that follows lands
//! too, nearly whole. At most [`LAND_BURST`] frames of a connection land one after the
//! other in one poll.
//!
//! The buffer is the connection's until then: it is not moved or freed while its receive
//! is armed (its capacity is reserved before), like the other receive buffers.

use super::body::Body;
use super::*;
use crate::transport::tcp::wire::HEADER;
use std::io::Read;

/// The smallest frame payload landed: smaller frames come whole in a receive or two, and
/// the receive of their rest would cost more than their copy.
pub const LAND_MIN: usize = 32 << 10;

/// Frames of one connection landed one after the other in one poll, at most: then the
/// other connections are served, and the next frame waits for the next poll (or for a
/// receive armed on the ring).
const LAND_BURST: usize = 16;
/// Bytes of a frame's start read at once after a frame landed, at most.
const PEEK_MAX: usize = 64;

/// A large frame whose payload is received into a buffer of the caller.
pub(super) struct Landing {
    header: FrameHeader,
    /// The payload's first bytes (shown by [`Event::Land`]).
    head: Vec<u8>,
    /// The buffer the rest of the payload is appended to.
    body: Body,
    /// The length of `body` once the frame is whole.
    end: usize,
    /// A receive into `body` is armed: nothing else of the connection is read.
    armed: bool,
}

impl Conn {
    /// Feeds bytes received on this connection, in order: first to the frame landing, if
    /// one is, then to the decoder. `f` gets [`Event::Landed`] when the frame is whole,
    /// then every frame the rest completes; `n` counts them, `bulk` notes a large one.
    pub(super) fn feed(
        &mut self,
        id: ConnId,
        mut bytes: &[u8],
        f: &mut dyn FnMut(ConnId, Event<'_>),
        n: &mut usize,
        bulk: &mut bool,
    ) -> std::result::Result<(), &'static str> {
        if let Some(l) = self.landing.as_mut() {
            if l.armed {
                // Only one receive reads the connection at a time (see the module
                // documentation): bytes from another would be out of order.
                return Err("bytes from two receives at once");
            }
            let take = (l.end - l.body.len()).min(bytes.len());
            l.body.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        *n += self.land_if_whole(id, f);
        // Any frame counted in this poll so far marks the receive bulk, whichever
        // connection it came on: the rule the transport was measured with. Marking only a
        // frame that landed on this connection would be more exact; it was not measured.
        *bulk |= *n > 0;
        self.decoder.feed(bytes, &mut |h, p| {
            *n += 1;
            *bulk |= p.len() >= super::direct::DIRECT_BULK;
            f(id, Event::Frame(h, p));
        })
    }

    /// Receives what is there of the rest of the frame landing, without waiting: whether
    /// it is whole now.
    fn try_land(&mut self) -> std::result::Result<bool, String> {
        let l = self.landing.as_mut().expect("a frame landing");
        let (at, room) = l.body.spare();
        let left = (l.end - l.body.len()).min(room);
        // SAFETY: `at` has room for `left` bytes (reserved by `offer_landing`).
        let got = unsafe { libc::recv(self.sock.as_raw_fd(), at.cast(), left, libc::MSG_DONTWAIT) };
        match got {
            0 => Err("the peer closed the connection inside a frame".into()),
            got if got > 0 => {
                self.quiet = 0;
                // SAFETY: the kernel wrote `got` (at most `left`) bytes there.
                unsafe { l.body.advance(got as usize) };
                Ok(l.body.len() == l.end)
            }
            _ => match std::io::Error::last_os_error() {
                e if super::direct::try_again(&e) => {
                    self.quiet += 1;
                    Ok(false)
                }
                e => Err(format!("receive failed: {e}")),
            },
        }
    }

    /// After a frame landed: reads the next frame's start (its header and `head` bytes of
    /// payload) if it is there, and feeds it. Whether something was read (the peek is then
    /// done; when nothing was, the receive armed next peeks).
    fn try_peek(
        &mut self,
        id: ConnId,
        head: usize,
        f: &mut dyn FnMut(ConnId, Event<'_>),
        n: &mut usize,
    ) -> std::result::Result<bool, String> {
        let mut buf = [0u8; PEEK_MAX];
        let want = (HEADER + head).min(PEEK_MAX);
        match (&self.sock).read(&mut buf[..want]) {
            Ok(0) if self.decoder.mid_frame() => {
                Err("the peer closed the connection inside a frame".into())
            }
            Ok(0) => Err("closed by the peer".into()),
            Ok(got) => {
                self.peek = false;
                let mut bulk = false;
                self.feed(id, &buf[..got], f, n, &mut bulk)?;
                self.note_received(got, bulk);
                Ok(true)
            }
            Err(e) if super::direct::try_again(&e) => Ok(false),
            Err(e) => Err(format!("receive failed: {e}")),
        }
    }

    /// Hands back the buffer of the frame landing once it is whole. Returns 1 then.
    fn land_if_whole(&mut self, id: ConnId, f: &mut dyn FnMut(ConnId, Event<'_>)) -> usize {
        if !self
            .landing
            .as_ref()
            .is_some_and(|l| !l.armed && l.body.len() == l.end)
        {
            return 0;
        }
        let l = self.landing.take().expect("checked above");
        // The next receive reads the next frame's start only (see the module docs).
        self.peek = true;
        f(
            id,
            Event::Landed {
                header: l.header,
                head: &l.head,
                body: l.body,
            },
        );
        1
    }
}

impl Reactor {
    /// Offers large frames with the first `head` bytes of their payload ([`Event::Land`]);
    /// 0 (the default) offers none. At most the bytes a read of a frame's start takes
    /// after its header (`PEEK_MAX` in all): larger is taken as that.
    pub fn set_landing(&mut self, head: usize) {
        self.land_head = head.min(PEEK_MAX - HEADER);
    }

    /// After bytes of `slot` were fed: offers the large frame its decoder holds the start
    /// of, and starts landing it when a buffer is lent. Returns whether one is landing.
    pub(super) fn offer_landing(
        &mut self,
        slot: usize,
        f: &mut dyn FnMut(ConnId, Event<'_>),
    ) -> bool {
        let head = self.land_head;
        let Some(c) = self.conns[slot].as_mut() else {
            return false;
        };
        if head == 0 || c.landing.is_some() || c.closed.is_some() {
            return c.landing.is_some();
        }
        let Some((header, got)) = c.decoder.pending() else {
            return false;
        };
        let len = header.slot.len as usize;
        if len < LAND_MIN.max(head) || got.len() < head || got.len() >= len {
            return false;
        }
        let id = ConnId {
            slot,
            generation: c.generation,
        };
        let mut into: Option<Body> = None;
        f(
            id,
            Event::Land {
                header,
                head: &got[..head],
                into: &mut into,
            },
        );
        let Some(mut body) = into else {
            return false;
        };
        // The whole rest of the frame fits without moving the buffer again.
        let rest = len - head;
        body.reserve(rest);
        body.extend_from_slice(&got[head..]);
        let end = body.len() + (len - got.len());
        let head = got[..head].to_vec();
        c.decoder.drop_pending();
        c.landing = Some(Landing {
            header,
            head,
            body,
            end,
            armed: false,
        });
        true
    }

    /// Receives the rest of the frame landing on `slot` once nothing else is armed on it
    /// (a multishot receive still armed is cancelled first): read directly at every poll
    /// while the engine spins, the connection holds or finds a direct place and the peer
    /// did not stay silent for [`DIRECT_QUIET`] reads (a stalled peer gives its place
    /// up), else by a receive armed on the ring.
    ///
    /// [`DIRECT_QUIET`]: super::direct::DIRECT_QUIET
    pub(super) fn land_next(&mut self, slot: usize) -> Result<()> {
        let c = self.conns[slot].as_ref().expect("live slot");
        let direct = self.busy
            && !self.sleeping
            && c.quiet < super::direct::DIRECT_QUIET
            && (c.direct || self.direct_others(slot) < super::direct::DIRECT_MAX);
        self.land_via(slot, !direct)
    }

    /// [`Reactor::land_next`] with the receive armed on the ring whatever the engine
    /// does (`ring`): before a sleep, which only a receive armed wakes.
    pub(super) fn land_via(&mut self, slot: usize, ring: bool) -> Result<()> {
        let c = self.conns[slot].as_mut().expect("live slot");
        let Some(l) = c.landing.as_ref() else {
            return Ok(());
        };
        if l.armed || l.body.len() == l.end || c.paused || c.closed.is_some() {
            // Whole: handed back by `land_on`, nothing to receive.
            return Ok(());
        }
        if c.recv_armed {
            if c.leaving {
                return Ok(());
            }
            c.leaving = true;
            return self.cancel_recv(slot);
        }
        if !ring {
            // The rest is read at every poll, straight into the buffer (`read_direct`):
            // a receive armed on the ring would complete through task work, which the
            // spinning thread enters the kernel to run every few segments.
            c.direct = true;
            return Ok(());
        }
        c.direct = false;
        c.quiet = 0;
        let ud = self.user_data(slot, OP_LAND);
        let c = self.conns[slot].as_mut().expect("live slot");
        let fd = types::Fd(c.sock.as_raw_fd());
        let l = c.landing.as_mut().expect("checked above");
        // The kernel may write after a poll ends: never into a waiting receive's memory.
        l.body.spill(l.end);
        // The spare capacity reserved by `offer_landing`: room for the rest at the end.
        let (at, room) = l.body.spare();
        let left = (l.end - l.body.len()).min(room);
        let sqe = opcode::Recv::new(fd, at, left as u32)
            .flags(libc::MSG_WAITALL)
            .build()
            .user_data(ud);
        self.push(sqe)?;
        let c = self.conns[slot].as_mut().expect("live slot");
        c.landing.as_mut().expect("checked above").armed = true;
        c.pending += 1;
        Ok(())
    }

    /// The completion of a landing receive of `slot`.
    pub(super) fn landed(
        &mut self,
        slot: usize,
        res: i32,
        f: &mut dyn FnMut(ConnId, Event<'_>),
    ) -> usize {
        let c = self.conns[slot].as_mut().expect("live slot");
        let Some(l) = c.landing.as_mut() else {
            return 0;
        };
        l.armed = false;
        if res > 0 {
            let got = (res as usize).min(l.end - l.body.len());
            // SAFETY: the kernel wrote `got` bytes into the spare capacity after the
            // buffer's length (at most the `left` bytes it was given).
            unsafe { l.body.advance(got) };
        } else if res == 0 {
            self.fail(slot, "the peer closed the connection inside a frame".into());
            return 0;
        } else if -res != libc::ECANCELED && -res != libc::EINTR && -res != libc::EAGAIN {
            if c.closed.is_none() {
                let e = std::io::Error::from_raw_os_error(-res);
                self.fail(slot, format!("receive failed: {e}"));
            }
            return 0;
        }
        self.land_on(slot, f)
    }

    /// Goes on with the landing of `slot` as far as it can now: the rest of the frame
    /// landing, then the next frame's start, then its rest, ... (at most [`LAND_BURST`]
    /// frames), and arms on the ring whatever has to wait. Returns how many events.
    pub(super) fn land_on(&mut self, slot: usize, f: &mut dyn FnMut(ConnId, Event<'_>)) -> usize {
        let mut n = 0;
        for _ in 0..LAND_BURST {
            let Some(c) = self.conns[slot].as_mut() else {
                return n;
            };
            if c.paused || c.closed.is_some() {
                return n;
            }
            let id = ConnId {
                slot,
                generation: c.generation,
            };
            if let Some(l) = c.landing.as_ref() {
                if l.armed || c.recv_armed {
                    // Another receive reads the connection, or one into the buffer waits.
                    break;
                }
                // Whole already when a receive armed on the ring brought its end.
                let whole = if l.body.len() == l.end {
                    Ok(true)
                } else {
                    c.try_land()
                };
                match whole {
                    Ok(true) => {
                        n += c.land_if_whole(id, f);
                        c.note_received(DIRECT_READ, true);
                        continue;
                    }
                    Ok(false) => break,
                    Err(why) => {
                        self.fail(slot, why);
                        return n;
                    }
                }
            }
            if !c.peek || c.recv_armed {
                break;
            }
            match c.try_peek(id, self.land_head, f, &mut n) {
                // A frame's start was read: it lands now if it is large and lent a buffer.
                Ok(true) if self.offer_landing(slot, f) => {}
                // Nothing there (the receive armed next peeks), or a frame not landed.
                Ok(_) => break,
                Err(why) => {
                    self.fail(slot, why);
                    return n;
                }
            }
        }
        let c = self.conns[slot].as_mut().expect("live slot");
        if c.paused || c.closed.is_some() {
            return n;
        }
        let next = if c.landing.is_some() {
            self.land_next(slot)
        } else if c.recv_armed {
            Ok(())
        } else {
            self.after_recv(slot)
        };
        if let Err(e) = next {
            self.fail(slot, e.to_string());
        }
        n
    }

    /// Cancels the landing receive armed on `slot`, if one is (its completion still comes).
    pub(super) fn cancel_landing(&mut self, slot: usize) -> Result<()> {
        let ud = self.user_data(slot, OP_CANCEL);
        let land = self.user_data(slot, OP_LAND);
        let c = self.conns[slot].as_mut().expect("live slot");
        if !c.landing.as_ref().is_some_and(|l| l.armed) {
            return Ok(());
        }
        c.pending += 1;
        let cancel = opcode::AsyncCancel::new(land).build().user_data(ud);
        self.push(cancel).inspect_err(|_| {
            self.conns[slot].as_mut().expect("live slot").pending -= 1;
        })
    }
}

impl Reactor {
    /// Takes lent memory back from the frame landing on `id`: what it holds is copied into a
    /// buffer of the engine's, which the landing goes on into (and hands back with
    /// [`Event::Landed`]). `None` when no frame lands there; else whether memory was lent.
    pub fn spill_landing(&mut self, id: ConnId) -> Option<bool> {
        let c = self.conns.get_mut(id.slot)?.as_mut()?;
        if c.generation != id.generation {
            return None;
        }
        let l = c.landing.as_mut()?;
        Some(l.body.spill(l.end))
    }
}
