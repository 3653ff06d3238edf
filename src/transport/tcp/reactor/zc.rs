//! Zero-copy sends (`IORING_OP_SEND_ZC`) of large flights: the kernel reads the flight's
//! pages instead of copying them into socket buffers, and says with a second completion
//! (the notification) when it no longer reads them. Until then the flight's buffer is set
//! aside in one of the connection's [`ZC_SLOTS`] slots, and the next flight goes out from
//! another buffer meanwhile.
//!
//! Each notification says whether the kernel copied the bytes after all: it does for a peer
//! on this host (loopback, or veth between network namespaces), where a zero-copy send only
//! adds the notification's cost. A connection whose kernel copied turns zero-copy off for
//! the rest of its life unless [`ZeroCopy::always`] asks to keep it (to measure it).
//!
//! The pages of a zero-copy send from an ordinary buffer count against the user's
//! locked-memory limit (`ulimit -l`, shared by all the user's processes) until their
//! notification. A send the limit refuses (`ENOMEM`) is sent again plainly, and the reactor
//! sends plainly from then on: its connections never fail for it.

use super::*;

/// Zero-copy sends that may await their notification on one connection at a time; a
/// flight that finds them all taken is sent plainly.
pub const ZC_SLOTS: usize = 8;
/// Flights of at least this many bytes go out as zero-copy sends by default. Below about
/// 10 KB pinning the pages and the notification cost more than the copy they save; a
/// flight is one or several frames queued while the socket was full, so a stream's flights
/// are tens to hundreds of KiB.
pub const ZC_DEFAULT_MIN: usize = 64 << 10;
/// `IORING_SEND_ZC_REPORT_USAGE` (Linux 6.2): the notification says whether the kernel
/// copied the bytes (older kernels ignore the flag, and their notifications say nothing).
pub(super) const REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED`: the notification's result bit saying the kernel copied.
const USAGE_COPIED: u32 = 1 << 31;

/// When a connection's flights go out as zero-copy sends (where the kernel has them, see
/// [`crate::sys::uring::probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroCopy {
    /// Flights of at least this many bytes; `None`: never.
    pub min: Option<usize>,
    /// Keep sending zero-copy on a connection whose kernel copied the bytes anyway (a peer
    /// on this host). Off by default: such a connection sends plainly from then on.
    pub always: bool,
}

impl Default for ZeroCopy {
    fn default() -> Self {
        ZeroCopy {
            min: Some(ZC_DEFAULT_MIN),
            always: false,
        }
    }
}

/// What the zero-copy sends of a reactor did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZcStats {
    /// Zero-copy sends submitted.
    pub sends: u64,
    /// Notifications received (the kernel let go of a flight's buffer).
    pub notified: u64,
    /// Notifications saying the kernel copied the bytes after all.
    pub copied: u64,
    /// Connections that turned zero-copy off because their kernel copied.
    pub turned_off: u64,
    /// Zero-copy sends from a registered buffer (see [`super::ARENA_BUFFERS`]).
    pub fixed: u64,
    /// Whether send buffers are registered with the ring (see
    /// [`Reactor::registered_buffers`]).
    pub registered: bool,
    /// Zero-copy sends the locked-memory limit refused (the first turns zero-copy off for
    /// the reactor; counted once).
    pub refused: u64,
}

impl Reactor {
    /// Sends flights as zero-copy sends as `zc` says, where the kernel offers them (a
    /// no-op elsewhere). Connections that turned zero-copy off stay off.
    pub fn set_zero_copy(&mut self, zc: ZeroCopy) {
        self.zc = zc;
    }

    /// Whether flights of `len` bytes go out as zero-copy sends on connections that did not
    /// turn them off.
    pub fn zero_copy_from(&self) -> Option<usize> {
        self.zc
            .min
            .filter(|_| self.zc_supported && !self.zc_refused)
    }

    /// What the zero-copy sends did so far.
    pub fn zc_stats(&self) -> ZcStats {
        ZcStats {
            registered: self.arena.is_some(),
            ..self.zc_stats
        }
    }

    /// The slot a zero-copy send of `len` bytes on `c` would take, if it is one.
    pub(super) fn zc_slot(&self, c: &Conn, len: usize) -> Option<usize> {
        let min = self.zero_copy_from()?;
        if c.zc_off || len < min {
            return None;
        }
        c.zc_held.iter().position(Option::is_none)
    }

    /// The first completion of zero-copy send `r` of `slot`: how much was sent. While its
    /// notification is to come (`more`), the kernel may still read the flight: the buffer
    /// is set aside in slot `r` (a rest not sent moves to a buffer of its own).
    pub(super) fn zc_sent(&mut self, slot: usize, r: usize, res: i32, more: bool) {
        let c = self.conns[slot].as_mut().expect("live slot");
        // As for a plain send: a send the kernel cancelled because its thread exited is sent
        // again, from here.
        let cancelled = res == -libc::ECANCELED && c.closed.is_none();
        // The kernel would not pin the pages (the locked-memory limit): plainly from now on.
        let refused = res == -libc::ENOMEM || res == -libc::ENOBUFS;
        if refused && !self.zc_refused {
            self.zc_refused = true;
            self.zc_stats.refused += 1;
        }
        let n = if res > 0 { res as usize } else { 0 };
        let n = n.min(c.flight.len() - c.sent);
        c.sent += n;
        self.held -= n.min(self.held);
        let c = self.conns[slot].as_mut().expect("live slot");
        if more {
            let mut next = std::mem::take(&mut c.spare);
            next.extend_from_slice(&c.flight.as_slice()[c.sent..]);
            let flight = std::mem::replace(&mut c.flight, Buf::Heap(next));
            self.zc_bytes += flight.len();
            // Only a send that moved bytes on an open connection tells whether zero-copy
            // pays (a failed or cancelled one is notified uncopied too).
            let evidence = res > 0 && c.closed.is_none();
            c.zc_held[r] = Some((flight, evidence));
            c.sent = 0;
        }
        if res < 0 && !cancelled && !refused {
            c.sending = false;
            let why = format!("send failed: {}", std::io::Error::from_raw_os_error(-res));
            self.fail(slot, why);
        } else if c.closed.is_none() {
            if let Err(e) = self.start_send(slot) {
                self.fail(slot, e.to_string());
            }
        } else {
            c.sending = false;
        }
    }

    /// The notification of zero-copy send `r` of `slot`: its buffer is free again.
    pub(super) fn zc_notified(&mut self, slot: usize, r: usize, res: i32) {
        self.zc_stats.notified += 1;
        let copied = (res as u32) & USAGE_COPIED != 0;
        let always = self.zc.always;
        let c = self.conns[slot].as_mut().expect("live slot");
        if copied {
            self.zc_stats.copied += 1;
            if !always && !c.zc_off {
                c.zc_off = true;
                self.zc_stats.turned_off += 1;
            }
        }
        let Some((buf, evidence)) = c.zc_held.get_mut(r).and_then(Option::take) else {
            return;
        };
        self.zc_bytes -= buf.len().min(self.zc_bytes);
        // A registered buffer goes back to the arena as it is dropped.
        if let Buf::Heap(mut v) = buf {
            if c.spare.capacity() == 0 && v.capacity() <= KEEP_BUFFER {
                v.clear();
                c.spare = v;
            }
        }
        if evidence && c.closed.is_none() && (!copied || always) {
            self.register_arena();
        }
    }

    /// Registers the arena of send buffers (once; a refusal is kept and reported).
    fn register_arena(&mut self) {
        if self.arena.is_some() || self.arena_refused.is_some() {
            return;
        }
        if self.max_frame > crate::transport::tcp::MAX_FRAME {
            self.arena_refused = Some("frames larger than a connection carries".into());
            return;
        }
        let size = QUEUE_LIMIT + crate::transport::tcp::wire::HEADER + self.max_frame;
        match Arena::register(&self.ring, size) {
            Ok(a) => self.arena = Some(a),
            Err(e) => self.arena_refused = Some(format!("registering send buffers: {e}")),
        }
    }

    /// A registered buffer for the queue of `id`, when it is empty and its flights would go
    /// out zero-copy.
    pub(super) fn fixed_queue(&self, id: ConnId) -> Option<arena::Fixed> {
        let arena = self.arena.as_ref()?;
        let c = self.conn(id)?;
        let on = self.zero_copy_from().is_some() && !c.zc_off;
        (on && c.queued.is_empty() && c.queued.fixed_index().is_none()).then(|| arena.take())?
    }

    /// Whether send buffers are registered with the ring, or why registering them failed
    /// (`Ok(false)`: not tried, no zero-copy send proved worth it yet).
    pub fn registered_buffers(&self) -> std::result::Result<bool, &str> {
        match (&self.arena, &self.arena_refused) {
            (Some(_), _) => Ok(true),
            (None, Some(why)) => Err(why),
            (None, None) => Ok(false),
        }
    }
}
