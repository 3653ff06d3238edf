//! Process identity and liveness: a pid plus its start time (from `/proc/<pid>/stat`) names
//! a process even after the kernel reuses the pid.

/// Effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// This process's id.
pub fn pid() -> u32 {
    std::process::id()
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
}
