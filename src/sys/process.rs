//! Process identity and liveness: a pid plus its start time (from `/proc/<pid>/stat`) names
//! a process even after the kernel reuses the pid. [`Origin`] tells whether the calling
//! process is the one a value was made in or a `fork()` child of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// This process's id (a system call each time: a copy cached in the process would be
/// wrong in a child made by `clone` or `_Fork`, which skip the fork handlers). Values made
/// in a process that need it per message keep their own copy (`SegmentMaps`, `Engine`,
/// `Endpoint`).
pub fn pid() -> u32 {
    std::process::id()
}

/// Forks this process went through: 0 in the process that loaded the library, one more in
/// each `fork()` child (counted by a `pthread_atfork` child handler). Comparing it is one
/// load, where `getpid` would be a system call on every check.
static FORKS: AtomicU64 = AtomicU64::new(0);
/// Installs the fork handler once, before the first [`Origin`] is taken.
static HANDLER: Once = Once::new();

/// Runs in the child of every `fork()`, on its only thread, before `fork()` returns there.
extern "C" fn forked_child() {
    // Relaxed: the child has one thread until fork() returns, and thread creation orders
    // this store before anything a later thread reads.
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// The process a value was made in: its pid, and how many forks led to it. A value that
/// owns state shared with other processes (a protocol's rings, a request pending in its
/// engine, a pool's free list) is copied into a `fork()` child without the threads that
/// serve it and with locks in whatever state they were; the child must not use it.
/// [`Origin::is_current`] tells, at the cost of one atomic load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pid: u32,
    forks: u64,
}

impl Origin {
    /// This process, now.
    pub fn current() -> Origin {
        HANDLER.call_once(|| {
            // SAFETY: pthread_atfork only records the handler (it is called after fork() in
            // the child, where it does one atomic increment, which is async-signal-safe).
            // The library's atfork registration is removed by glibc when the library is
            // unloaded, so the handler never dangles.
            unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
        });
        Origin {
            pid: pid(),
            forks: FORKS.load(Ordering::Relaxed),
        }
    }

    /// Whether the calling process is the one this origin was taken in (not a `fork()`
    /// child of it).
    #[inline]
    pub fn is_current(&self) -> bool {
        FORKS.load(Ordering::Relaxed) == self.forks
    }

    /// The pid of the process the origin was taken in.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// Start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`), if the
/// process exists and the file is readable.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces or ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on; start time is field 22.
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether the process `pid` that started at `start` (0: unknown) still runs. A zombie
/// counts as dead.
pub fn alive(pid: u32, start: u64) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the pid exists and may be signalled.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .is_some_and(|state| state == "Z" || state == "X");
    if zombie {
        return false;
    }
    start == 0 || start_time(pid).is_none_or(|t| t == start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_child_is_not() {
        let me = pid();
        let t = start_time(me).unwrap();
        assert!(alive(me, t));
        assert!(!alive(me, t + 1), "another start time is another process");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let cpid = child.id();
        child.wait().unwrap();
        assert!(!alive(cpid, 0));
        assert!(!alive(0, 0));
    }

    #[test]
    fn an_origin_is_current_here_and_not_in_a_forked_child() {
        let here = Origin::current();
        assert!(here.is_current());
        assert_eq!(here.pid(), pid());
        // SAFETY: the child only reads atomics and calls _exit (no allocation, no locks).
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            let code = if !here.is_current() && Origin::current().is_current() {
                0
            } else {
                1
            };
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child started above; `status` is a live local.
        let waited = unsafe { libc::waitpid(child, &mut status, 0) };
        assert_eq!(waited, child);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "in the child, the parent's origin must not be current and a new one must be"
        );
        assert!(here.is_current(), "the parent is unaffected");
    }
}
