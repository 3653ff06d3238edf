//! io_uring for the TCP transport: what the kernel offers, found by trying each feature on a
//! real ring and a loopback TCP connection rather than read from version numbers (a kernel
//! can be patched, a seccomp filter can refuse `io_uring_setup`,
//! `kernel.io_uring_disabled` can turn it off), and [`BufRing`], the provided buffers that
//! multishot receives fill.

use super::mapping::Mapping;
use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use std::io::Write;
use std::mem::ManuallyDrop;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The io_uring features the TCP transport chooses its mode from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UringSupport {
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// Whether a ring could be set up at all; when not, `error` says why and the other
    /// fields are false.
    pub available: bool,
    /// Why no ring could be set up (`None` when one could).
    pub error: Option<String>,
    /// `IORING_OP_SEND_ZC` completed a zero-copy send on a TCP socket, its notification
    /// reporting whether the kernel copied the bytes anyway (Linux 6.2).
    pub send_zc: bool,
    /// A multishot receive (`IORING_RECV_MULTISHOT`) delivered data and stayed armed.
    pub recv_multishot: bool,
    /// A provided-buffer ring (`IORING_REGISTER_PBUF_RING`) could be registered.
    pub buffer_ring: bool,
    /// A ring with a kernel submission thread (`IORING_SETUP_SQPOLL`) could be set up by
    /// this user.
    pub sqpoll: bool,
    /// `io_uring_enter` takes a timeout (`IORING_FEAT_EXT_ARG`): an idle engine can sleep
    /// in it for a bounded time.
    pub enter_timeout: bool,
}

/// The kernel release, as `uname -r` prints it.
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it in and cannot fail with a valid pointer.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    // SAFETY: uname NUL-terminates `release` within the array.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Why `io_uring_setup` failed, in words.
fn setup_refused(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => {
            "io_uring is not available (not in this kernel, or refused by a seccomp filter)".into()
        }
        Some(libc::EPERM) => {
            let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .unwrap_or(0);
            if disabled > 0 {
                format!(
                    "io_uring is disabled for this user (kernel.io_uring_disabled = {disabled})"
                )
            } else {
                "io_uring_setup was refused (a seccomp filter or a security module)".into()
            }
        }
        _ => format!("io_uring_setup failed: {e}"),
    }
}

/// Tries every feature the transport uses (a few milliseconds; at most about two seconds
/// when loopback connections hang; nothing is left behind).
pub fn probe() -> UringSupport {
    let mut s = UringSupport {
        kernel: kernel_release(),
        ..UringSupport::default()
    };
    let mut ring = match IoUring::new(8) {
        Ok(r) => r,
        Err(e) => {
            s.error = Some(setup_refused(&e));
            return s;
        }
    };
    s.available = true;
    s.enter_timeout = ring.params().is_feature_ext_arg();
    s.sqpoll = IoUring::<squeue::Entry>::builder()
        .setup_sqpoll(10)
        .build(8)
        .is_ok();
    let mut ops = Probe::new();
    let probed = ring.submitter().register_probe(&mut ops).is_ok();
    let bufs = BufRing::register(&ring, 7, 4, 256).ok();
    s.buffer_ring = bufs.is_some();
    let Some((client, server)) = loopback_pair() else {
        if let Some(b) = bufs {
            b.unregister(&ring);
        }
        return s;
    };
    if let Some(mut b) = bufs {
        s.recv_multishot = recv_multishot_works(&mut ring, &mut b, &client, &server);
        b.unregister(&ring);
    }
    s.send_zc = (!probed || ops.is_supported(opcode::SendZc::CODE))
        && send_zc_works(&mut ring, &client, &server);
    s
}

/// A connected TCP pair on the loopback interface, made within a second (or none).
fn loopback_pair() -> Option<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let client =
        TcpStream::connect_timeout(&listener.local_addr().ok()?, Duration::from_secs(1)).ok()?;
    listener.set_nonblocking(true).ok()?;
    let deadline = Instant::now() + Duration::from_secs(1);
    let server = loop {
        match listener.accept() {
            // Only our own client: anything else on the port is not the probe's.
            Ok((s, peer)) if Some(peer) == client.local_addr().ok() => break s,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return None,
        }
    };
    server.set_nonblocking(false).ok()?;
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    }
    Some((client, server))
}

/// Waits (about a second at most, signals retried) for the completions of `user_data`: the
/// first, then the further ones it announces (`IORING_CQE_F_MORE`) up to `want`.
/// Completions of other requests are dropped.
fn completions(ring: &mut IoUring, user_data: u64, want: usize) -> Vec<cqueue::Entry> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(1);
    let ts = types::Timespec::new().nsec(100_000_000);
    let args = types::SubmitArgs::new().timespec(&ts);
    while got.len() < want && Instant::now() < deadline {
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ETIME)) => {}
            Err(_) => break,
        }
        got.extend(ring.completion().filter(|c| c.user_data() == user_data));
        if got.last().is_some_and(|c| !cqueue::more(c.flags())) {
            break;
        }
    }
    got
}

/// Pushes `sqe`; `false` when the queue is full.
///
/// # Safety
/// The memory `sqe` names stays valid until its last completion (or, for memory the kernel
/// only reads, until the ring is dropped).
unsafe fn push(ring: &mut IoUring, sqe: &squeue::Entry) -> bool {
    // SAFETY: as the caller promised.
    unsafe { ring.submission().push(sqe) }.is_ok()
}

/// Whether a zero-copy send of a few bytes completes and the bytes arrive.
fn send_zc_works(ring: &mut IoUring, client: &TcpStream, server: &TcpStream) -> bool {
    // Static: a send still in the kernel when the wait gives up only ever reads it.
    static DATA: [u8; 15] = *b"zero-copy probe";
    // With the notification's report of whether the kernel copied (Linux 6.2; the kernels
    // before refuse the flag): the transport needs it to turn zero-copy off where it only
    // costs.
    const REPORT_USAGE: u16 = 1 << 3;
    let sqe = opcode::SendZc::new(types::Fd(client.as_raw_fd()), DATA.as_ptr(), 15)
        .zc_flags(REPORT_USAGE)
        .build()
        .user_data(1);
    // SAFETY: DATA is static.
    if !unsafe { push(ring, &sqe) } {
        return false;
    }
    let sent = completions(ring, 1, 2)
        .first()
        .is_some_and(|c| c.result() == 15);
    let mut got = [0u8; 15];
    sent && std::io::Read::read_exact(&mut &*server, &mut got).is_ok() && got == DATA
}

/// Whether a multishot receive into `bufs` delivers what was written and stays armed
/// (`IORING_CQE_F_MORE`). It is cancelled, and its last completion waited for, before
/// returning.
fn recv_multishot_works(
    ring: &mut IoUring,
    bufs: &mut BufRing,
    client: &TcpStream,
    server: &TcpStream,
) -> bool {
    if (&*client).write_all(b"multishot").is_err() {
        return false;
    }
    let sqe = opcode::RecvMulti::new(types::Fd(server.as_raw_fd()), bufs.group())
        .build()
        .user_data(2);
    // SAFETY: the buffers stay registered and mapped until the receive's last completion
    // (waited for below), or are leaked (`BufRing::unregister`).
    if !unsafe { push(ring, &sqe) } {
        return false;
    }
    let first = completions(ring, 2, 1);
    let works = first.first().is_some_and(|c| {
        c.result() == 9
            && cqueue::more(c.flags())
            && cqueue::buffer_select(c.flags())
                .is_some_and(|b| bufs.get(b, 9) == Some(&b"multishot"[..]))
    });
    if first.last().is_some_and(|c| cqueue::more(c.flags())) {
        // Still armed: cancel it and wait for its last completion.
        let cancel = opcode::AsyncCancel::new(2).build().user_data(3);
        // SAFETY: a cancel names no memory.
        if unsafe { push(ring, &cancel) } {
            let _ = completions(ring, 2, usize::MAX);
        }
    }
    works
}

/// A ring of provided buffers registered with an io_uring (`IORING_REGISTER_PBUF_RING`):
/// the kernel picks one for each receive of a multishot request, the owner gives it back
/// with [`BufRing::recycle`] once it has read it.
pub struct BufRing {
    /// The ring's entries (`io_uring_buf`), the tail in the first one.
    entries: ManuallyDrop<Mapping>,
    /// The buffers.
    data: ManuallyDrop<Mapping>,
    group: u16,
    count: u16,
    size: usize,
    /// The next tail to publish.
    tail: u16,
    /// Whether it is registered (memory the kernel may write must not be unmapped).
    registered: bool,
}

// SAFETY: the mappings are owned; the kernel's use of them is ordered by the ring's own
// system calls, made by whoever owns the BufRing.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Registers `count` (a power of two, at most 32,768) buffers of `size` bytes as buffer
    /// group `group` of `ring`, all of them given to the kernel.
    pub fn register(
        ring: &IoUring,
        group: u16,
        count: u16,
        size: usize,
    ) -> std::io::Result<BufRing> {
        if !count.is_power_of_two() || count > 1 << 15 || size == 0 || size > u32::MAX as usize {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let map = |len: usize| {
            Mapping::anonymous(len).map_err(|_| std::io::Error::from_raw_os_error(libc::ENOMEM))
        };
        let entries = map(count as usize * std::mem::size_of::<types::BufRingEntry>())?;
        let data = map(count as usize * size)?;
        let mut b = BufRing {
            entries: ManuallyDrop::new(entries),
            data: ManuallyDrop::new(data),
            group,
            count,
            size,
            tail: 0,
            registered: false,
        };
        for bid in 0..count {
            b.put(bid);
        }
        b.publish();
        // SAFETY: the entries stay mapped while registered (Drop leaks them otherwise).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                b.entries.as_ptr() as u64,
                count,
                group,
                0,
            )
        }?;
        b.registered = true;
        Ok(b)
    }

    /// The buffer group receives name.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// The first `len` bytes of buffer `bid`, which a completion named (`None` for a
    /// buffer or length that does not exist).
    pub fn get(&self, bid: u16, len: usize) -> Option<&[u8]> {
        if bid >= self.count || len > self.size {
            return None;
        }
        // SAFETY: inside the data mapping; the kernel wrote it before the completion that
        // named it and does not touch it again until it is recycled.
        Some(unsafe {
            std::slice::from_raw_parts(self.data.as_ptr().add(bid as usize * self.size), len)
        })
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        if bid < self.count {
            self.put(bid);
            self.publish();
        }
    }

    fn put(&mut self, bid: u16) {
        let base = self.entries.as_ptr().cast::<types::BufRingEntry>();
        // SAFETY: the index is below `count`, the number of entries mapped; the kernel
        // reads an entry only once the tail (published after) covers it.
        let e = unsafe { &mut *base.add((self.tail & (self.count - 1)) as usize) };
        // SAFETY: inside the data mapping.
        e.set_addr(unsafe { self.data.as_ptr().add(bid as usize * self.size) } as u64);
        e.set_len(self.size as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        let base = self.entries.as_ptr().cast::<types::BufRingEntry>();
        // SAFETY: the tail lies in the first entry, mapped; the kernel reads it atomically.
        let tail = unsafe { &*types::BufRingEntry::tail(base).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// Unregisters it; its memory is freed only when that succeeded (otherwise it is
    /// leaked: the kernel might still write into it).
    pub fn unregister(mut self, ring: &IoUring) {
        if ring.submitter().unregister_buf_ring(self.group).is_ok() {
            self.registered = false;
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // Still registered, the kernel may write into it: it is then never unmapped.
        if !self.registered {
            // SAFETY: dropped once, here; nothing uses them after.
            unsafe {
                ManuallyDrop::drop(&mut self.entries);
                ManuallyDrop::drop(&mut self.data);
            }
        }
    }
}

/// `struct io_uring_getevents_arg` (`IORING_ENTER_EXT_ARG`).
#[repr(C)]
struct GetEventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// Sleeps in `io_uring_enter` on the ring `fd` until a completion is ready or `timeout`
/// passes, submitting nothing: safe beside threads that submit to the same ring. For a
/// thread that waits for a ring it does not hold.
pub fn wait_for_completion(fd: std::os::fd::RawFd, timeout: Duration) {
    const GETEVENTS: u32 = 1;
    const EXT_ARG: u32 = 8;
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    let arg = GetEventsArg {
        sigmask: 0,
        sigmask_sz: 8,
        min_wait_usec: 0,
        ts: &ts as *const libc::timespec as u64,
    };
    // SAFETY: `arg` and the timespec it points to outlive the call; with EXT_ARG the kernel
    // reads exactly `size_of::<GetEventsArg>()` bytes of it. No submission entries are
    // consumed (to_submit 0), so no memory of the ring's users is touched.
    unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            0u32,
            1u32,
            GETEVENTS | EXT_ARG,
            &arg as *const GetEventsArg,
            std::mem::size_of::<GetEventsArg>(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_names_the_kernel_and_says_why_when_io_uring_is_missing() {
        let s = probe();
        assert_eq!(s.kernel, kernel_release());
        assert!(!s.kernel.is_empty());
        // Either a ring works, or the reason is given and nothing else is claimed.
        if s.available {
            assert!(s.error.is_none());
        } else {
            assert!(s.error.is_some());
            assert!(!s.send_zc && !s.recv_multishot && !s.buffer_ring && !s.sqpoll);
        }
        // Multishot receives take provided buffers: one without the other is a wrong probe.
        assert!(!s.recv_multishot || s.buffer_ring);
    }

    #[test]
    fn a_buffer_ring_refuses_odd_shapes_and_names_only_its_buffers() {
        let Ok(ring) = IoUring::new(4) else {
            return; // no io_uring here: the probe test above says why
        };
        assert!(
            BufRing::register(&ring, 1, 3, 64).is_err(),
            "not a power of two"
        );
        assert!(BufRing::register(&ring, 1, 4, 0).is_err());
        let Ok(mut b) = BufRing::register(&ring, 1, 4, 64) else {
            return; // a kernel without buffer rings
        };
        assert!(b.get(4, 1).is_none() && b.get(0, 65).is_none());
        assert_eq!(b.get(3, 64).map(<[u8]>::len), Some(64));
        b.recycle(9); // ignored
        b.recycle(2);
        b.unregister(&ring);
    }
}
