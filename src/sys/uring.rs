//! What the kernel's io_uring offers the TCP transport, found by trying each feature on a
//! real ring and a loopback TCP connection, not by reading version numbers: a kernel can be
//! patched, a container's seccomp filter can refuse `io_uring_setup`, and
//! `/proc/sys/kernel/io_uring_disabled` can turn it off for unprivileged users.

use io_uring::{cqueue, opcode, types, IoUring, Probe};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

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
    /// `IORING_OP_SEND_ZC` completed a zero-copy send on a TCP socket.
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

/// Tries every feature the transport uses (a few milliseconds; no state is left behind).
pub fn probe() -> UringSupport {
    let mut s = UringSupport {
        kernel: kernel_release(),
        ..UringSupport::default()
    };
    let mut ring = match IoUring::new(8) {
        Ok(r) => r,
        Err(e) => {
            s.error = Some(match e.raw_os_error() {
                Some(libc::ENOSYS) => "io_uring_setup is not in this kernel".into(),
                Some(libc::EPERM) => "io_uring_setup refused (kernel.io_uring_disabled, or a \
                                      seccomp filter)"
                    .into(),
                _ => format!("io_uring_setup failed: {e}"),
            });
            return s;
        }
    };
    s.available = true;
    s.enter_timeout = ring.params().is_feature_ext_arg();
    let mut ops = Probe::new();
    let probed = ring.submitter().register_probe(&mut ops).is_ok();
    s.sqpoll = IoUring::<io_uring::squeue::Entry>::builder()
        .setup_sqpoll(10)
        .build(8)
        .is_ok();
    let Some((client, server)) = loopback_pair() else {
        return s;
    };
    s.buffer_ring = match BufRing::register(&ring) {
        Some(bufs) => {
            s.recv_multishot = recv_multishot_works(&mut ring, &bufs, &client, &server);
            bufs.unregister(&ring);
            true
        }
        None => false,
    };
    s.send_zc = (!probed || ops.is_supported(opcode::SendZc::CODE))
        && send_zc_works(&mut ring, &client, &server);
    s
}

/// A connected TCP pair on the loopback interface.
fn loopback_pair() -> Option<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let client = TcpStream::connect(listener.local_addr().ok()?).ok()?;
    let (server, _) = listener.accept().ok()?;
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    }
    Some((client, server))
}

/// Submits `sqe` and waits (at most a second) for its completions: the first, and the
/// further ones it announces (`IORING_CQE_F_MORE`) up to `want`.
fn complete(ring: &mut IoUring, sqe: io_uring::squeue::Entry, want: usize) -> Vec<cqueue::Entry> {
    // SAFETY: every buffer the entries name outlives the wait below (the callers keep them
    // until after it returns, and cancel what may still be armed).
    if unsafe { ring.submission().push(&sqe) }.is_err() {
        return Vec::new();
    }
    let mut got = Vec::new();
    let ts = types::Timespec::new().sec(1);
    let args = types::SubmitArgs::new().timespec(&ts);
    while got.len() < want {
        if ring.submitter().submit_with_args(1, &args).is_err() {
            break;
        }
        let before = got.len();
        got.extend(ring.completion());
        if got.len() == before {
            break;
        }
        if got.last().is_some_and(|c| !cqueue::more(c.flags())) {
            break;
        }
    }
    got
}

/// Whether a zero-copy send of a few bytes completes (its result, then the notification
/// that the kernel let go of the buffer) and the bytes arrive.
fn send_zc_works(ring: &mut IoUring, client: &TcpStream, server: &TcpStream) -> bool {
    let data = *b"zero-copy probe";
    let sqe = opcode::SendZc::new(types::Fd(client.as_raw_fd()), data.as_ptr(), 15)
        .build()
        .user_data(1);
    let cqes = complete(ring, sqe, 2);
    let sent = cqes.first().is_some_and(|c| c.result() == 15);
    let mut got = [0u8; 15];
    sent && std::io::Read::read_exact(&mut &*server, &mut got).is_ok() && got == data
}

/// Whether a multishot receive into the provided buffers delivers what was written and
/// stays armed (`IORING_CQE_F_MORE`); it is cancelled before returning.
fn recv_multishot_works(
    ring: &mut IoUring,
    bufs: &BufRing,
    client: &TcpStream,
    server: &TcpStream,
) -> bool {
    if (&*client).write_all(b"multishot").is_err() {
        return false;
    }
    let fd = types::Fd(server.as_raw_fd());
    let sqe = opcode::RecvMulti::new(fd, BufRing::GROUP)
        .build()
        .user_data(2);
    let cqes = complete(ring, sqe, 1);
    let works = cqes.first().is_some_and(|c| {
        c.result() == 9
            && cqueue::more(c.flags())
            && cqueue::buffer_select(c.flags()).is_some_and(|b| bufs.holds(b, b"multishot"))
    });
    // Disarm it before the buffers go.
    let cancel = opcode::AsyncCancel::new(2).build().user_data(3);
    let _ = complete(ring, cancel, 1);
    let _ = ring.submitter().submit_with_args(
        0,
        &types::SubmitArgs::new().timespec(&types::Timespec::new().nsec(10_000_000)),
    );
    ring.completion().for_each(drop);
    works
}

/// A provided-buffer ring of [`BufRing::COUNT`] buffers in one anonymous page, buffers in
/// another.
struct BufRing {
    ring: *mut libc::c_void,
    data: *mut libc::c_void,
}

impl BufRing {
    const GROUP: u16 = 7;
    const COUNT: u16 = 4;
    const SIZE: usize = 256;

    fn register(ring: &IoUring) -> Option<BufRing> {
        let page = || {
            // SAFETY: a fresh private anonymous mapping; checked below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            (p != libc::MAP_FAILED).then_some(p)
        };
        let bufs = BufRing {
            ring: page()?,
            data: page().unwrap_or(libc::MAP_FAILED),
        };
        if bufs.data == libc::MAP_FAILED {
            return None;
        }
        // The ring's entries (addr u64, len u32, bid u16, resv u16); the tail is the resv
        // field of the first entry.
        let entries = bufs.ring.cast::<u64>();
        for i in 0..Self::COUNT as usize {
            // SAFETY: COUNT entries of 16 bytes and COUNT buffers of SIZE bytes fit in the
            // two pages.
            unsafe {
                let e = entries.add(2 * i);
                e.write(bufs.data.cast::<u8>().add(i * Self::SIZE) as u64);
                e.add(1).write(Self::SIZE as u64 | (i as u64) << 32);
            }
        }
        // SAFETY: the tail (offset 14 of the page) is only read by the kernel after the
        // registration below.
        unsafe {
            bufs.ring
                .cast::<u8>()
                .add(14)
                .cast::<u16>()
                .write(Self::COUNT)
        };
        // SAFETY: both pages stay mapped until `unregister` (or the drop).
        let registered = unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.ring as u64,
                Self::COUNT,
                Self::GROUP,
                0,
            )
        };
        registered.is_ok().then_some(bufs)
    }

    /// Whether buffer `bid` starts with `bytes`.
    fn holds(&self, bid: u16, bytes: &[u8]) -> bool {
        if bid >= Self::COUNT {
            return false;
        }
        // SAFETY: buffer `bid` lies in the data page; the kernel finished writing it (its
        // completion was read).
        let b = unsafe {
            std::slice::from_raw_parts(
                self.data.cast::<u8>().add(bid as usize * Self::SIZE),
                bytes.len(),
            )
        };
        b == bytes
    }

    fn unregister(self, ring: &IoUring) {
        let _ = ring.submitter().unregister_buf_ring(Self::GROUP);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        for p in [self.ring, self.data] {
            if p != libc::MAP_FAILED {
                // SAFETY: pages this value mapped, unregistered from the ring before (a
                // receive still armed then finds no buffer group and fails).
                unsafe { libc::munmap(p, 4096) };
            }
        }
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
}
