//! The operating-system layer: the only module that calls libc. Safe wrappers only.

pub mod cma;
pub mod fence;
pub mod fs;
mod mapping;
mod net;
#[cfg(feature = "pmix")]
pub mod pmix;
pub use net::{send_parts, tcp_liveness};
pub mod process;
pub mod uring;

pub use fs::{
    fabric_dir, file_mode, group_dir, private_dir, set_file_mode, sharing, state_root, FileLock,
    Sharing,
};
pub use mapping::Mapping;

use crate::error::{Error, Result};

/// Pins the calling thread to one CPU (`sched_setaffinity`). Threads it spawns afterwards
/// inherit the pinning.
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(Error::InvalidArgument(format!(
            "cpu {cpu} is beyond the largest CPU number ({})",
            libc::CPU_SETSIZE - 1
        )));
    }
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set; CPU_SET writes
    // inside it because cpu < CPU_SETSIZE (checked above); sched_setaffinity reads exactly
    // size_of::<cpu_set_t>() bytes from a pointer to a live local.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(Error::io(
            format!("pinning the thread to cpu {cpu}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Makes writes to a closed pipe end the process quietly (as C programs do), instead of
/// failing every later write. For command-line tools whose output is piped into `head`.
pub fn default_sigpipe() {
    // SAFETY: installing SIG_DFL for SIGPIPE has no memory-safety preconditions; it only
    // changes what the kernel does when this process writes to a pipe without readers.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Sleeps until `word` is woken by [`futex_wake`], no longer holds `expected`, or `timeout`
/// passes. Works across processes on shared mappings.
pub fn futex_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: std::time::Duration,
) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the word is a live, 4-byte-aligned atomic for the duration of the call; the
    // timespec outlives it. FUTEX_WAIT (not the private variant) matches wakers in other
    // processes mapping the same file.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes one waiter of `word`.
pub fn futex_wake(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: the word is a live, aligned atomic; FUTEX_WAKE only reads its address.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// Nanoseconds of `CLOCK_MONOTONIC`: one clock for every process of the host (heartbeats are
/// compared across processes).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Number of CPUs online (not the calling thread's affinity, which pinning narrows).
pub fn available_cpus() -> usize {
    // SAFETY: sysconf only reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// 64 random bits from the kernel (nonce counters and message ids start here).
pub fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        u64::from_le_bytes(b)
    } else {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_accepts_cpu_zero_and_rejects_nonsense() {
        std::thread::spawn(|| pin_current_thread(0).unwrap())
            .join()
            .unwrap();
        assert!(pin_current_thread(1 << 20).is_err());
        assert!(available_cpus() >= 1);
    }
}
