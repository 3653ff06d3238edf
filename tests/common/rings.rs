//! The endpoint ring files of a test fabric, and the writes of a hostile process into them.

use super::FabricDir;
use hyperfabric::fabric::HyperFabricProtocol;
use hyperfabric::ring::{Region, RingMemory};
use std::path::{Path, PathBuf};

pub fn root(dir: &FabricDir) -> PathBuf {
    hyperfabric::sys::state_root().join(&dir.0)
}

pub fn ep_files(dir: &FabricDir) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("ep-"))
        .collect();
    v.sort();
    v
}

/// Makes an endpoint and returns it with the ring file it created.
pub fn endpoint_with_file(
    dir: &FabricDir,
    p: &HyperFabricProtocol,
    src: &str,
    dst: &str,
) -> (hyperfabric::fabric::Endpoint, PathBuf) {
    let before = ep_files(dir);
    let ep = p.endpoint(src, dst).unwrap();
    let new: Vec<PathBuf> = ep_files(dir)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    (ep, new[0].clone())
}

/// Writes `bytes` at byte `offset` of slot `slot` of a ring file (the hostile process).
pub fn forge(file: &Path, slot: usize, offset: usize, bytes: &[u8]) {
    let r = Region::open_file(file).unwrap();
    // SAFETY: inside the slot array; the test plays the process that writes where it must not.
    unsafe { r.write(slot, offset, bytes) };
}
