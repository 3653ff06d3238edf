//! TCP connections driven by one io_uring: frames queued by [`Reactor::send`] go out in as
//! few `SEND`s as the connection allows (frames queued while a send is in flight leave
//! together in the next one), and every connection has one receive armed: a multishot
//! receive into a ring of provided buffers where the kernel has them
//! ([`RecvMode::Multishot`]), else one receive at a time into the connection's own buffer
//! ([`RecvMode::Single`]). [`Reactor::poll`] reaps completions without blocking;
//! [`Reactor::wait`] sleeps in `io_uring_enter` until one comes or a timeout passes.
//!
//! What arrives is another host's: it is cut into frames by a [`Decoder`], and a connection
//! whose stream breaks the framing, ends inside a frame, or fails is closed and reported
//! once ([`Event::Closed`]); the other connections go on.

mod arena;
mod body;
mod close;
mod direct;
mod land;
mod receipts;
mod recv;
mod send;
mod zc;

pub use arena::ARENA_BUFFERS;
use arena::{Arena, Buf};
pub use body::{Body, Lent};
use direct::DIRECT_READ;
pub use direct::{DIRECT_MAX, DIRECT_QUIET};
use land::Landing;
pub use land::LAND_MIN;
use receipts::Tally;
pub use receipts::NOTES_LIMIT;
pub use zc::{ZcStats, ZeroCopy, ZC_DEFAULT_MIN, ZC_SLOTS};

use super::wire::{Decoder, FrameHeader};
use crate::error::{Error, Result};
use crate::sys::uring::BufRing;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How connections receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvMode {
    /// One multishot receive per connection into a shared ring of provided buffers.
    Multishot,
    /// One receive at a time into the connection's own buffer (kernels without multishot
    /// receives or buffer rings).
    Single,
}

/// A connection of a reactor. An id outlives its connection harmlessly: once the slot
/// holds another connection, the old id names nothing (its generation differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    slot: usize,
    generation: u64,
}

/// What [`Reactor::poll`] reports.
#[derive(Debug)]
pub enum Event<'a> {
    /// A whole frame, in order.
    Frame(FrameHeader, &'a [u8]),
    /// The connection is closed (by the peer, by an error, or for a stream that broke its
    /// framing): why. Reported once; nothing more comes from it.
    Closed(&'a str),
    /// A large frame began (see [`land`]): its header and the first bytes of its payload
    /// ([`Reactor::set_landing`]). Putting a buffer in `into` has the rest of the payload
    /// appended to it, received there by the kernel, and handed back by
    /// [`Event::Landed`]; leaving `None` has the frame come as [`Event::Frame`].
    Land {
        /// The frame's header.
        header: FrameHeader,
        /// The first bytes of its payload.
        head: &'a [u8],
        /// Where a buffer to land the rest in is put.
        into: &'a mut Option<Body>,
    },
    /// The buffer of an [`Event::Land`] with the rest of the frame's payload appended: the
    /// frame is whole, in order.
    Landed {
        /// The frame's header.
        header: FrameHeader,
        /// The first bytes of its payload (as [`Event::Land`] showed them).
        head: &'a [u8],
        /// The buffer lent, the rest of the payload appended.
        body: Body,
    },
}

/// Bytes queued on a connection beyond which [`Reactor::send`] refuses more for now. The
/// kernel's socket buffer is the queue (it grows to megabytes): a queue of our own only
/// batches frames that come while a send is in flight. Kept small, the buffers stay under
/// [`KEEP_BUFFER`] and are reused: freeing and faulting in megabytes per send cost more
/// than the data's copy.
const QUEUE_LIMIT: usize = 256 << 10;
/// Bytes queued on all connections of a reactor beyond which it refuses more for now.
const REACTOR_LIMIT: usize = 64 << 20;
/// A send buffer larger than this is freed once sent (a burst does not keep its memory).
const KEEP_BUFFER: usize = 1 << 20;
/// Receive buffer of a connection in [`RecvMode::Single`].
const SINGLE_BUF: usize = 64 << 10;
/// How long the kernel thread of a ring set up with SQPOLL polls without work before it
/// sleeps (the next submission wakes it, at the cost of a system call).
pub const SQPOLL_IDLE: Duration = Duration::from_millis(10);
/// Entries of the submission queue.
const RING_ENTRIES: u32 = 256;
/// The provided buffers of [`RecvMode::Multishot`]: group, count and size (8.25 MiB in
/// all, shared by the connections; each is given back as soon as its bytes are cut into
/// frames). A frame of the largest size fits one buffer with its header, so a receive of a
/// whole frame is not copied to be put together across two (with 64 KiB buffers and
/// frames, nearly every frame of a fragmented message was; buffers of four frames made a
/// 1 MiB ping-pong take about 10 % less time).
const BUF_GROUP: u16 = 0;
const BUF_COUNT: u16 = 32;
const BUF_SIZE: usize = 264 << 10;
const _: () = assert!(crate::transport::tcp::MAX_FRAME + super::wire::HEADER <= BUF_SIZE);
/// A peer that acknowledges nothing (sent data, or keepalive probes of an idle connection)
/// for this long is dead: its connection closes (a host that lost power, a cut link). Long
/// enough for a receiver whose reader stalls (a zero window counts too).
const DEAD_AFTER: Duration = Duration::from_secs(15);
/// How long dropping a reactor waits for the kernel to finish with its connections' memory.
const DROP_WAIT: Duration = Duration::from_secs(2);

const OP_SEND: u64 = 1;
const OP_RECV: u64 = 2;
const OP_CANCEL: u64 = 3;
/// The futex wait on the engine's doorbell (see [`Reactor::arm_bell`]).
const OP_BELL: u64 = 4;
/// A no-op that wakes a thread asleep on the ring (see [`Reactor::reap_sends`]).
const OP_NOP: u64 = 5;
/// The receive of the rest of a large frame into its buffer (see [`land`]).
const OP_LAND: u64 = 7;
/// A zero-copy send (see [`zc`]); bits 4 to 7 of its user data name its slot.
const OP_ZC: u64 = 6;
/// The bits of user data that name the operation.
const OP_MASK: u64 = 0x0f;

struct Conn {
    sock: TcpStream,
    /// Generation of the slot: completions of an earlier connection in it are ignored.
    generation: u64,
    /// Frames queued and not yet handed to the kernel.
    queued: Buf,
    /// Bytes the kernel is sending: not moved or freed until its completion.
    flight: Buf,
    /// Bytes of `flight` sent so far.
    sent: usize,
    /// Flights of zero-copy sends whose notification is still to come: the kernel may
    /// read them until then.
    /// With whether its send moved bytes on an open connection (whether its notification
    /// says something about zero-copy on it).
    zc_held: [Option<(Buf, bool)>; zc::ZC_SLOTS],
    /// An empty buffer to queue into next (one a notification freed).
    spare: Vec<u8>,
    /// The kernel copied a zero-copy send of this connection: plain sends from now on.
    zc_off: bool,
    /// Receive buffer ([`RecvMode::Single`]): not moved or freed while a receive is armed.
    inbox: Vec<u8>,
    decoder: Decoder,
    /// Operations whose completion is still to come (the slot is freed after the last).
    pending: u32,
    recv_armed: bool,
    /// Read with `recv` at every poll, no receive armed (see [`direct`]).
    direct: bool,
    /// Empty direct reads in a row.
    quiet: u32,
    /// The latest receive was bulk (see [`direct::DIRECT_BULK`]).
    bulk: bool,
    /// A cancel of its multishot receive is queued, to read it directly.
    leaving: bool,
    /// Receiving is paused ([`Reactor::pause`]): the receive is not armed again.
    paused: bool,
    /// The large frame whose payload is received into its buffer (see [`land`]).
    landing: Option<Landing>,
    /// The next receive reads at most a frame's header and the bytes [`Event::Land`]
    /// shows (a frame landed last).
    peek: bool,
    sending: bool,
    /// Why it closed, once it did (reported once, then `reported`).
    closed: Option<String>,
    reported: bool,
    /// Frames numbered for receipts, and notes of one-way messages not receipted yet.
    tally: Tally,
}

/// The connections of one engine and the io_uring that drives them.
pub struct Reactor {
    ring: IoUring,
    mode: RecvMode,
    /// The ring is polled by a kernel thread (SQPOLL).
    sqpoll: bool,
    bufs: Option<BufRing>,
    conns: Vec<Option<Conn>>,
    generations: u64,
    max_frame: usize,
    /// Bytes queued or in flight on every connection.
    held: usize,
    /// Completions taken from the ring, reused from poll to poll.
    reaped: Vec<cqueue::Entry>,
    /// Completions [`Reactor::reap_sends`] took but did not handle (receives), handled first
    /// by the next poll.
    later: Vec<cqueue::Entry>,
    /// A futex wait on the doorbell is armed on the ring.
    bell_armed: bool,
    /// The kernel refused the futex wait (before 6.7): idle engines wait on the futex.
    bell_unsupported: bool,
    /// When flights go out as zero-copy sends, and whether the kernel has them.
    zc: ZeroCopy,
    zc_supported: bool,
    /// The locked-memory limit refused a zero-copy send: plain sends from then on.
    zc_refused: bool,
    zc_stats: ZcStats,
    /// Bytes of flights the kernel may still read (zero-copy sends not notified yet).
    zc_bytes: usize,
    /// Registered send buffers, once a zero-copy send proved worth it (after `ring`: the
    /// ring, dropped first, lets go of them first).
    arena: Option<Arena>,
    /// Why registering them failed (not tried again).
    arena_refused: Option<String>,
    /// Connections that receive while the engine spins are read directly ([`direct`]).
    busy: bool,
    /// What direct reads read into ([`direct::DIRECT_READ`] bytes).
    scratch: Vec<u8>,
    /// A thread sleeps on the ring: receives are armed, not read directly.
    sleeping: bool,
    /// Payload bytes an [`Event::Land`] shows (0: frames are not landed).
    land_head: usize,
    /// Connections resumed with a frame landing: gone on with at the next poll.
    land_later: Vec<usize>,
    /// Notes of closed connections not receipted (see [`receipts`]).
    unreceipted: Vec<(ConnId, Tally)>,
    /// Notes let go beyond [`NOTES_LIMIT`], all connections.
    notes_overflowed: u64,
}

impl Reactor {
    /// A reactor for frames of at most `max_frame` payload bytes, receiving in `mode`
    /// (`None`: multishot where the kernel offers it, see [`crate::sys::uring::probe`]),
    /// its ring polled by a kernel thread when `sqpoll` (an error where the kernel refuses).
    pub fn new(max_frame: usize, mode: Option<RecvMode>, sqpoll: bool) -> Result<Reactor> {
        let ring = if sqpoll {
            // The kernel thread submits what is queued and runs the completions' work:
            // neither costs this side a system call.
            let ring = IoUring::builder()
                .setup_sqpoll(SQPOLL_IDLE.as_millis() as u32)
                .build(RING_ENTRIES)
                .map_err(|e| {
                    Error::io("setting up io_uring with SQPOLL (refused by the kernel)", e)
                })?;
            if !ring.params().is_feature_sqpoll_nonfixed() {
                // Before 5.11 such a ring takes only registered files, which sockets here
                // are not.
                return Err(Error::Config(
                    "SQPOLL on this kernel takes registered files only (before 5.11); leave \
                     sqpoll off"
                        .into(),
                ));
            }
            ring
        } else {
            // Completions are run when this side enters the kernel, not by interrupting it
            // (an interrupt costs a VM several microseconds): a poll that finds the ring's
            // task-run flag set enters it (kernels before 5.19 take the plain ring).
            IoUring::builder()
                .setup_coop_taskrun()
                .setup_taskrun_flag()
                .build(RING_ENTRIES)
                .or_else(|_| IoUring::new(RING_ENTRIES))
                .map_err(|e| Error::io("setting up io_uring", e))?
        };
        let support = crate::sys::uring::probe();
        let mode = match mode {
            Some(m) => m,
            None if support.recv_multishot => RecvMode::Multishot,
            None => RecvMode::Single,
        };
        let bufs = match mode {
            RecvMode::Multishot => Some(
                BufRing::register(&ring, BUF_GROUP, BUF_COUNT, BUF_SIZE)
                    .map_err(|e| Error::io("registering provided buffers with io_uring", e))?,
            ),
            RecvMode::Single => None,
        };
        Ok(Reactor {
            ring,
            mode,
            sqpoll,
            bufs,
            conns: Vec::new(),
            generations: 0,
            max_frame,
            held: 0,
            reaped: Vec::new(),
            later: Vec::new(),
            bell_armed: false,
            bell_unsupported: false,
            zc: ZeroCopy::default(),
            zc_supported: support.send_zc,
            zc_refused: false,
            zc_stats: ZcStats::default(),
            zc_bytes: 0,
            arena: None,
            arena_refused: None,
            busy: !sqpoll,
            scratch: vec![0; DIRECT_READ],
            sleeping: false,
            land_head: 0,
            land_later: Vec::new(),
            unreceipted: Vec::new(),
            notes_overflowed: 0,
        })
    }

    /// How connections receive.
    pub fn mode(&self) -> RecvMode {
        self.mode
    }

    /// Whether a kernel thread polls the ring (SQPOLL).
    pub fn sqpoll(&self) -> bool {
        self.sqpoll
    }

    /// Takes a connected socket: frames can be sent at once, and its receive is armed.
    pub fn add(&mut self, sock: TcpStream) -> Result<ConnId> {
        sock.set_nodelay(true)
            .and_then(|()| sock.set_nonblocking(true))
            .and_then(|()| crate::sys::tcp_liveness(&sock, DEAD_AFTER))
            .map_err(|e| Error::io("setting up a TCP connection", e))?;
        self.generations += 1;
        let conn = Conn {
            sock,
            generation: self.generations & 0xff_ffff,
            queued: Buf::default(),
            flight: Buf::default(),
            sent: 0,
            zc_held: Default::default(),
            spare: Vec::new(),
            zc_off: false,
            inbox: match self.mode {
                RecvMode::Single => vec![0; SINGLE_BUF],
                RecvMode::Multishot => Vec::new(),
            },
            decoder: Decoder::new(self.max_frame),
            pending: 0,
            recv_armed: false,
            direct: false,
            quiet: 0,
            bulk: false,
            leaving: false,
            paused: false,
            landing: None,
            peek: false,
            sending: false,
            closed: None,
            reported: false,
            tally: Tally::default(),
        };
        let slot = match self.conns.iter().position(Option::is_none) {
            Some(i) => {
                self.conns[i] = Some(conn);
                i
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        let id = self.id_of(slot);
        if let Err(e) = self.arm_recv(slot) {
            self.conns[slot] = None;
            return Err(e);
        }
        self.ring
            .submit()
            .map_err(|e| Error::io("submitting to io_uring", e))?;
        Ok(id)
    }

    /// Whether `id` is open (not closed by either side or by an error).
    pub fn is_open(&self, id: ConnId) -> bool {
        self.conn(id).is_some_and(|c| c.closed.is_none())
    }

    /// Closes `id` (what is queued is dropped); its `Closed` event still comes. An id of
    /// a connection that is gone is ignored.
    pub fn close(&mut self, id: ConnId) {
        self.fail_conn(id, "closed by this side".into());
    }

    /// Closes `id` (when it is still open) for the reason `why`, reported like any close.
    pub fn fail_conn(&mut self, id: ConnId, why: String) {
        if self.live(id) {
            self.fail(id.slot, why);
        }
    }

    /// Whether `id` names the connection its slot holds now.
    fn live(&self, id: ConnId) -> bool {
        self.conn(id).is_some()
    }

    /// The connection `id` names, if its slot still holds it.
    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns
            .get(id.slot)
            .and_then(Option::as_ref)
            .filter(|c| c.generation == id.generation)
    }

    fn id_of(&self, slot: usize) -> ConnId {
        ConnId {
            slot,
            generation: self.conns[slot].as_ref().map_or(0, |c| c.generation),
        }
    }

    /// Reaps what completed, without blocking: `f` gets every frame that arrived and every
    /// connection that closed. Returns how many events.
    pub fn poll(&mut self, f: &mut dyn FnMut(ConnId, Event<'_>)) -> usize {
        let mut n = 0;
        for slot in std::mem::take(&mut self.land_later) {
            if self.conns[slot]
                .as_ref()
                .is_some_and(|c| c.landing.is_some())
            {
                n += self.land_on(slot, f);
            }
            // What it armed.
            self.submit_queued();
        }
        if !self.later.is_empty() {
            for cqe in std::mem::take(&mut self.later) {
                n += self.complete(&cqe, f);
            }
            // What they started (receives armed again).
            self.submit_queued();
        }
        loop {
            if self.ring.completion().is_empty() && self.ring.submission().taskrun() {
                // Completions wait for this side to enter the kernel (`submit` does).
                let _ = self.ring.submit();
            }
            let mut cqes = std::mem::take(&mut self.reaped);
            cqes.clear();
            cqes.extend(self.ring.completion());
            let reaped = !cqes.is_empty();
            for cqe in &cqes {
                n += self.complete(cqe, f);
            }
            self.reaped = cqes;
            if !reaped {
                break;
            }
            // What the completions started (receives armed again, queued frames).
            self.submit_queued();
        }
        n + self.read_direct(f) + self.report_closed(f)
    }

    /// Hands the kernel what was pushed on the submission queue, if anything was (an empty
    /// `submit` is a system call for nothing).
    fn submit_queued(&mut self) {
        if !self.ring.submission().is_empty() {
            let _ = self.ring.submit();
        }
    }

    /// Sleeps in `io_uring_enter` until a completion comes or `timeout` passes, then
    /// polls.
    pub fn wait(&mut self, timeout: Duration, f: &mut dyn FnMut(ConnId, Event<'_>)) -> usize {
        if !self.land_later.is_empty() {
            // A resumed landing goes on first (it has nothing armed to wake a sleep).
            return self.poll(f);
        }
        self.arm_for_sleep();
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        let _ = self.ring.submitter().submit_with_args(1, &args);
        self.woke();
        self.poll(f)
    }

    fn conn_mut(&mut self, id: ConnId) -> Result<&mut Conn> {
        match self
            .conns
            .get_mut(id.slot)
            .and_then(Option::as_mut)
            .filter(|c| c.generation == id.generation)
        {
            Some(c) if c.closed.is_none() => Ok(c),
            Some(c) => Err(Error::io(
                format!(
                    "sending on a closed connection ({})",
                    c.closed.as_deref().unwrap_or("")
                ),
                std::io::ErrorKind::NotConnected.into(),
            )),
            None => Err(Error::InvalidArgument("no such connection".into())),
        }
    }

    fn user_data(&self, slot: usize, op: u64) -> u64 {
        let generation = self.conns[slot].as_ref().map_or(0, |c| c.generation);
        generation << 40 | (slot as u64) << 8 | op
    }

    /// Pushes one entry, submitting first when the queue is full.
    fn push(&mut self, sqe: squeue::Entry) -> Result<()> {
        // SAFETY: every entry names memory of a connection that stays put until its
        // completion (the slot is kept while `pending` is not zero).
        if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
            return Ok(());
        }
        self.ring
            .submit()
            .map_err(|e| Error::io("submitting to io_uring", e))?;
        if self.sqpoll {
            // The kernel thread empties the queue itself: wait until it took an entry.
            let _ = self.ring.submitter().squeue_wait();
        }
        // SAFETY: as above.
        unsafe { self.ring.submission().push(&sqe) }.map_err(|_| {
            Error::io(
                "queueing on io_uring",
                std::io::Error::from_raw_os_error(libc::EBUSY),
            )
        })
    }

    /// One completion.
    fn complete(&mut self, cqe: &cqueue::Entry, f: &mut dyn FnMut(ConnId, Event<'_>)) -> usize {
        let ud = cqe.user_data();
        if ud == OP_NOP {
            return 0;
        }
        if ud == OP_BELL {
            self.bell_armed = false;
            let res = cqe.result();
            if res == -libc::EINVAL || res == -libc::ENOSYS || res == -libc::EOPNOTSUPP {
                self.bell_unsupported = true;
            }
            return 0;
        }
        let (slot, op, generation) = ((ud >> 8 & 0xffff_ffff) as usize, ud & OP_MASK, ud >> 40);
        let res = cqe.result();
        let more = cqueue::more(cqe.flags());
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return 0;
        };
        if c.generation != generation {
            return 0;
        }
        if !more {
            c.pending -= 1;
        }
        let mut n = 0;
        match op {
            OP_SEND => {
                // A send waiting for room in the socket runs as task work of the thread that
                // submitted it; when that thread exits first, the kernel cancels it. The
                // rest of the flight is sent again, from here.
                let cancelled = res == -libc::ECANCELED && c.closed.is_none();
                let res = if cancelled { 0 } else { res };
                if res < 0 {
                    c.sending = false;
                    let why = format!("send failed: {}", std::io::Error::from_raw_os_error(-res));
                    self.fail(slot, why);
                } else {
                    c.sent += res as usize;
                    self.held -= (res as usize).min(self.held);
                    let c = self.conns[slot].as_mut().expect("live slot");
                    if c.closed.is_none() {
                        if let Err(e) = self.start_send(slot) {
                            self.fail(slot, e.to_string());
                        }
                    } else {
                        c.sending = false;
                    }
                }
            }
            OP_LAND => {
                n += self.landed(slot, res, f);
            }
            OP_ZC => {
                let r = (ud >> 4 & OP_MASK) as usize;
                if cqueue::notif(cqe.flags()) {
                    self.zc_notified(slot, r, res);
                } else {
                    self.zc_sent(slot, r, res, more);
                }
            }
            OP_RECV => {
                if !more {
                    c.recv_armed = false;
                }
                n += self.received(slot, res, cqe.flags(), f);
                let c = self.conns[slot].as_mut().expect("live slot");
                if c.landing.is_some() {
                    n += self.land_on(slot, f);
                } else if !c.paused && c.closed.is_none() {
                    let next = if c.recv_armed {
                        self.leave_multishot(slot)
                    } else {
                        self.after_recv(slot)
                    };
                    if let Err(e) = next {
                        self.fail(slot, e.to_string());
                    }
                }
            }
            _ => {}
        }
        self.release_if_done(slot);
        n
    }
}
