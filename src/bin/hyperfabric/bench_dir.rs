//! The fabric directory of a `bench` run (`bench-<pid>` under this user's state root):
//! removed when the run ends, and the directories of runs whose process was killed before
//! it could remove its own are removed by the next run.

use std::path::{Path, PathBuf};

/// The bench's fabric directory, removed when dropped.
pub struct FabricDir(PathBuf);

impl FabricDir {
    /// The directory of fabric `name`, after removing those of benches that died.
    pub fn new(name: &str) -> FabricDir {
        let root = hyperfabric::sys::state_root();
        sweep_dead(&root);
        FabricDir(root.join(name))
    }
}

impl Drop for FabricDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the `bench-<pid>` directories under `root` whose process is gone. A pid that
/// names a live process (the run's own, or a reused one) is left alone.
fn sweep_dead(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("bench-"))
            .and_then(|p| p.parse::<libc::pid_t>().ok())
            .filter(|&p| p > 0)
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
