//! Socket options of the TCP transport.

/// Makes a TCP connection fail once its peer has acknowledged nothing for `dead_after`:
/// keepalive probes on an idle connection (the first after a fifth of it, then every
/// fifth, five unanswered ones close it), and `TCP_USER_TIMEOUT` for data sent and not
/// acknowledged; and keeps little unsent data in the socket ([`NOTSENT_LOWAT`]).
pub fn tcp_liveness(
    sock: &std::net::TcpStream,
    dead_after: std::time::Duration,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let step = (dead_after.as_secs() / 5).max(1) as libc::c_int;
    let ms = dead_after.as_millis().min(u32::MAX as u128) as libc::c_uint;
    let set = |level: libc::c_int, name: libc::c_int, value: &[u8]| -> std::io::Result<()> {
        // SAFETY: `value` is a live buffer of the option's size; `fd` is an open socket.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                value.as_ptr().cast(),
                value.len() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, &1i32.to_ne_bytes())?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, &step.to_ne_bytes())?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, &step.to_ne_bytes())?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, &5i32.to_ne_bytes())?;
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, &ms.to_ne_bytes())?;
    // Little unsent data waits in the socket: what the window does not take stays with the
    // reactor. Bytes the kernel holds unsent leave when acknowledgements open the window,
    // from the receiving side's CPU, while new bytes leave from the sender's: on loopback
    // and veth the two CPUs' packets reorder, the sender retransmits what it takes for lost,
    // and a request behind a bulk stream waited seconds (timeouts, doubling) for its turn.
    // Best effort: a kernel without the option sends as before.
    let _ = set(
        libc::IPPROTO_TCP,
        libc::TCP_NOTSENT_LOWAT,
        &(NOTSENT_LOWAT as libc::c_int).to_ne_bytes(),
    );
    Ok(())
}

/// Unsent bytes beyond which a connection's socket takes no more for now (a threshold: a
/// write may go past it; see [`tcp_liveness`]).
pub const NOTSENT_LOWAT: usize = 128 << 10;

/// Writes `parts` to the connected socket `sock` without blocking and without `SIGPIPE`
/// (a peer that reset the connection gives `EPIPE`, never the signal): the bytes written,
/// or the error (`WouldBlock` when the socket has no room).
pub fn send_parts(sock: &std::net::TcpStream, parts: &[&[u8]]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut iov: [libc::iovec; 8] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 8];
    let n = parts.len().min(iov.len());
    for (v, p) in iov.iter_mut().zip(&parts[..n]) {
        v.iov_base = p.as_ptr() as *mut libc::c_void;
        v.iov_len = p.len();
    }
    // SAFETY: a zeroed msghdr is valid; it points to `n` iovecs that point to live slices
    // the kernel only reads during the call.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n as _;
        libc::sendmsg(
            sock.as_raw_fd(),
            &msg,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if sent < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}
