//! Cross-memory attach (`process_vm_readv`): copies bytes out of another process's memory in
//! one kernel copy, with no shared segment between the two. The kernel checks that the
//! caller may trace the other process (same user, and the ptrace policy allows it); a bad
//! address is an error (`EFAULT`), never a fault in the caller.

use std::io;

/// Whether this process may read process `pid`'s memory: `Ok` when the kernel lets it,
/// the refusal (`EPERM`: another user or a ptrace policy; `ENOSYS`: a kernel or sandbox
/// without the call; `ESRCH`: no such process) otherwise. Reads one byte at address zero:
/// the permission is checked before the address, which then fails harmlessly.
pub fn may_read(pid: u32) -> io::Result<()> {
    let mut byte = 0u8;
    match read(pid, 0, std::slice::from_mut(&mut byte)) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EFAULT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether processes of this user may read each other's memory here in both directions:
/// this process may read process `pid`, and no ptrace policy (Yama's `ptrace_scope` above
/// 0) restricts reading to a process's descendants, which would refuse the other way.
pub fn mutual(pid: u32) -> bool {
    static OPEN_POLICY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let open = *OPEN_POLICY.get_or_init(|| {
        match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
            Ok(s) => s.trim() == "0",
            // No Yama: the kernel's own check (same user) is the policy.
            Err(_) => true,
        }
    });
    open && may_read(pid).is_ok()
}

/// Whether `len` bytes at `addr` are mapped in this process (`mincore` over their pages).
pub fn is_mapped(addr: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let start = addr & !(page - 1);
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let span = end - start;
    let mut pages = vec![0u8; span.div_ceil(page)];
    // SAFETY: mincore reads no memory of the range (ENOMEM for unmapped pages) and writes one
    // byte per page of `span` into `pages`, which has exactly that many.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, span, pages.as_mut_ptr().cast()) };
    rc == 0
}

/// Copies `buf.len()` bytes at address `addr` of process `pid` into `buf` (several calls
/// when the kernel copies less at a time). `EFAULT` when part of the range is not mapped
/// there, `ESRCH` when the process is gone.
pub fn read(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let want = buf.len() - done;
        let local = libc::iovec {
            iov_base: buf[done..].as_mut_ptr().cast(),
            iov_len: want,
        };
        let remote = libc::iovec {
            iov_base: (addr as usize).wrapping_add(done) as *mut libc::c_void,
            iov_len: want,
        };
        // SAFETY: `local` describes `want` writable bytes of `buf` (a live exclusive borrow);
        // the kernel writes at most that many there. `remote` is only an address in the
        // other process, which the kernel checks (EFAULT) rather than this process reading it.
        let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
        match n {
            n if n > 0 => done += n as usize,
            0 => return Err(io::Error::from_raw_os_error(libc::EFAULT)),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_and_refuses_bad_addresses() {
        let me = crate::sys::process::pid();
        may_read(me).expect("a process may read itself");
        let src: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut dst = vec![0u8; src.len()];
        read(me, src.as_ptr() as u64, &mut dst).unwrap();
        assert_eq!(src, dst);
        let word = 0x1122_3344_5566_7788u64;
        let mut b = [0u8; 8];
        read(me, &word as *const u64 as u64, &mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), word);
        let e = read(me, 8, &mut dst[..16]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EFAULT));
        assert!(is_mapped(src.as_ptr() as usize, src.len()));
        assert!(!is_mapped(8, 16));
        assert!(!is_mapped(usize::MAX - 8, 16));
    }

    #[test]
    fn a_missing_process_is_refused() {
        // Above the largest pid Linux hands out (2^22).
        let e = may_read(0x7fff_fff0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }
}
