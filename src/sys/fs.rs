//! Host state on disk: the fabric directory under `/dev/shm` and an advisory file lock.

use crate::error::{Error, Result};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How a host's fabric state is shared: with nobody but this user (the default), or with
/// the members of one Unix group (`HF_SHM_GROUP`: a group name or gid), for fabrics whose
/// processes run as several users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Root `/dev/shm/hyperfabric-<uid>/`, directories 0700, files 0600.
    User(u32),
    /// Root `/dev/shm/hyperfabric-g<gid>/`, directories 2770 of that group, files 0660.
    Group(u32),
}

/// The sharing this process uses: `HF_SHM_GROUP` if set (an unknown group is an error),
/// else private to the effective user.
pub fn sharing() -> Result<Sharing> {
    match std::env::var("HF_SHM_GROUP") {
        Ok(g) if !g.trim().is_empty() => group_id(g.trim()).map(Sharing::Group),
        _ => Ok(Sharing::User(super::process::euid())),
    }
}

fn group_id(name: &str) -> Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    // /etc/group holds the local groups; a name found nowhere is refused rather than guessed.
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(n, _)| *n == name)
        .and_then(|(_, gid)| gid.parse().ok())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "HF_SHM_GROUP={name:?} is neither a gid nor a group of /etc/group"
            ))
        })
}

/// Where fabrics keep their host state: `$HF_SHM_DIR`, else a root per user
/// (`/dev/shm/hyperfabric-<uid>`) or, with `HF_SHM_GROUP`, per group
/// (`/dev/shm/hyperfabric-g<gid>`), so one user's fabrics never block another's.
pub fn state_root() -> PathBuf {
    match std::env::var_os("HF_SHM_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => match sharing() {
            Ok(Sharing::Group(gid)) => PathBuf::from(format!("/dev/shm/hyperfabric-g{gid}")),
            _ => PathBuf::from(format!("/dev/shm/hyperfabric-{}", super::process::euid())),
        },
    }
}

/// Mode of the files that hold shared state (rings, segments, registry, locks).
pub fn file_mode() -> u32 {
    match sharing() {
        Ok(Sharing::Group(_)) => 0o660,
        _ => 0o600,
    }
}

/// Gives a file this process created the mode of [`file_mode`] (the umask may have taken
/// group bits away); files of other users are left as they are.
pub fn set_file_mode(file: &std::fs::File, path: &Path) -> Result<()> {
    let mode = file_mode();
    let mine = file
        .metadata()
        .is_ok_and(|m| m.uid() == super::process::euid());
    if mode != 0o600 && mine {
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("setting the mode of {}", path.display()), e))?;
    }
    Ok(())
}

/// Opens an existing file of the fabric directory for reading and writing (`write`) or
/// reading: never through a symbolic link, never blocking (a FIFO put there is refused, not
/// waited on), and only a regular file. Another member of a shared fabric's group can create
/// names in the directory; none of them may make this process open or change something else.
pub fn open_state_file(path: &Path, write: bool) -> Result<std::fs::File> {
    open_checked(
        path,
        std::fs::OpenOptions::new().read(true).write(write),
        "opening",
    )
}

/// Creates a new file of the fabric directory (fails if the name exists, symbolic links
/// included), mode [`file_mode`].
pub fn create_state_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = open_checked(
        path,
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600),
        "creating",
    )?;
    set_file_mode(&file, path)?;
    Ok(file)
}

/// Opens `path` with `options`, never through a symbolic link and never blocking, and only
/// if it is a regular file: the one way this module opens names of a fabric directory.
fn open_checked(
    path: &Path,
    options: &mut std::fs::OpenOptions,
    doing: &str,
) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(format!("{doing} {}", path.display()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("checking {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
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
    let uid = super::process::euid();
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

/// Creates (if needed) and checks a directory shared with group `gid`: group `gid`, mode
/// 2770 (set-group-id, so files made in it belong to the group), nothing for others. Whoever
/// creates it must be a member of the group.
pub fn group_dir(path: &Path, gid: u32) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o770).create(path) {
        Ok(()) => {
            std::os::unix::fs::chown(path, None, Some(gid))
                .map_err(|e| Error::io(format!("giving {} to gid {gid}", path.display()), e))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o2770))
                .map_err(|e| Error::io(format!("setting the mode of {}", path.display()), e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
    }
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Error::io(format!("checking {}", path.display()), e))?;
    let mode = meta.permissions().mode();
    if !meta.is_dir() || meta.gid() != gid || mode & 0o007 != 0 || mode & 0o070 != 0o070 {
        return Err(Error::InvalidArgument(format!(
            "{} is not a directory of gid {gid} with mode 2770 (found gid {}, mode {:o})",
            path.display(),
            meta.gid(),
            mode & 0o7777
        )));
    }
    Ok(())
}

/// Checks a fabric name: it names a directory of the fabric root.
pub fn validate_fabric_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid fabric name (1 to 63 of A-Z a-z 0-9 . _ -, not starting \
             with '.')"
        ))
    }
}

/// The directory of fabric `name` (created, mode 0700).
pub fn fabric_dir(name: &str) -> Result<PathBuf> {
    validate_fabric_name(name).map_err(Error::InvalidArgument)?;
    let root = state_root();
    let dir = root.join(name);
    match sharing()? {
        Sharing::Group(gid) => {
            group_dir(&root, gid)?;
            group_dir(&dir, gid)?;
        }
        Sharing::User(_) => {
            private_dir(&root)?;
            private_dir(&dir)?;
        }
    }
    Ok(dir)
}

/// An exclusive advisory lock on a file (`flock`), released when dropped or when the process
/// dies, so a crashed holder never blocks the others.
#[derive(Debug)]
pub struct FileLock {
    file: std::fs::File,
}

impl FileLock {
    /// Opens (creating, mode [`file_mode`]) and locks `path`, waiting for other holders.
    pub fn acquire(path: &Path) -> Result<FileLock> {
        FileLock::lock(FileLock::open(path)?, path, libc::LOCK_EX)?.ok_or_else(|| {
            Error::InvalidArgument(format!("{} could not be locked", path.display()))
        })
    }

    /// As [`FileLock::acquire`], but `Ok(None)` at once when another holder has the lock (for
    /// periodic work that must not wait on a process that holds it, or is stopped holding it).
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>> {
        FileLock::lock(FileLock::open(path)?, path, libc::LOCK_EX | libc::LOCK_NB)
    }

    fn open(path: &Path) -> Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = open_checked(
            path,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(file_mode()),
            "opening lock",
        )?;
        set_file_mode(&file, path)?;
        Ok(file)
    }

    fn lock(file: std::fs::File, path: &Path, op: libc::c_int) -> Result<Option<FileLock>> {
        use std::os::unix::io::AsRawFd;
        loop {
            // SAFETY: the descriptor is open for the lifetime of `file`.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(Some(FileLock { file }));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return Ok(None);
            }
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
