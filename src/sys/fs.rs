//! Host state on disk: the fabric directory under `/dev/shm` and an advisory file lock.

use crate::error::{Error, Result};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where fabrics keep their host state: `$HF_SHM_DIR`, else `/dev/shm/hyperfabric`.
pub fn state_root() -> PathBuf {
    match std::env::var_os("HF_SHM_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("/dev/shm/hyperfabric"),
    }
}

/// Creates (if needed) and checks a private directory: mode 0700, owned by this user.
pub fn private_dir(path: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
    }
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Error::io(format!("checking {}", path.display()), e))?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != uid {
        return Err(Error::InvalidArgument(format!(
            "{} is not a directory owned by uid {uid}",
            path.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("restricting {}", path.display()), e))?;
    }
    Ok(())
}

/// The directory of fabric `name` (created, mode 0700).
pub fn fabric_dir(name: &str) -> Result<PathBuf> {
    crate::config::validate_fabric_name(name).map_err(Error::InvalidArgument)?;
    let root = state_root();
    private_dir(&root)?;
    let dir = root.join(name);
    private_dir(&dir)?;
    Ok(dir)
}

/// An exclusive advisory lock on a file (`flock`), released when dropped or when the process
/// dies, so a crashed holder never blocks the others.
#[derive(Debug)]
pub struct FileLock {
    file: std::fs::File,
}

impl FileLock {
    /// Opens (creating, mode 0600) and locks `path`, waiting for other holders.
    pub fn acquire(path: &Path) -> Result<FileLock> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(format!("opening lock {}", path.display()), e))?;
        loop {
            // SAFETY: the descriptor is open for the lifetime of `file`.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(FileLock { file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io(format!("locking {}", path.display()), e));
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::unix::io::AsRawFd;
        // SAFETY: the descriptor is still open; closing it would release the lock as well.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_private_and_locks_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("fab");
        private_dir(&d).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&d).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let f = d.join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(private_dir(&f).is_err());
        assert!(fabric_dir("../x").is_err());

        let lock_path = d.join("lock");
        let held = FileLock::acquire(&lock_path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = lock_path.clone();
        let t = std::thread::spawn(move || {
            let _l = FileLock::acquire(&p).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err(),
            "lock not exclusive"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        t.join().unwrap();
    }
}
