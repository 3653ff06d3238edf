//! [`SharedMemory`]: channels between processes of one host, rings in files of the fabric
//! directory (`rg-<src>-<dst>-<lane>`), created by the sending side and found by the
//! receiving side when the registry's channels epoch moves.

use super::channel::{parse_ring_name, ring_path, Lane};
use super::link::{Accepted, Connected, Transport};
use super::registry::Registry;
use crate::error::Result;
use crate::ring::{self, Region};
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

/// Channels through shared-memory files (see the module documentation).
pub struct SharedMemory {
    registry: Arc<Registry>,
    /// Inbound channels by (source, destination, lane), with the inode of their file: a new
    /// file under the same name is a new incarnation of its sender.
    opened: HashMap<(u32, u32, Lane), u64>,
    channels_epoch: u64,
}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory")
            .field("opened", &self.opened.len())
            .finish_non_exhaustive()
    }
}

impl SharedMemory {
    /// Channels in the fabric directory of `registry`.
    pub fn new(registry: Arc<Registry>) -> SharedMemory {
        SharedMemory {
            registry,
            opened: HashMap::default(),
            channels_epoch: u64::MAX,
        }
    }
}

impl Transport for SharedMemory {
    fn name(&self) -> &'static str {
        "shared-memory"
    }

    fn connect(&mut self, (src, dst, lane): (u32, u32, Lane), slots: usize) -> Result<Connected> {
        let path = ring_path(self.registry.dir(), src, dst, lane);
        // A file left by an earlier holder of this index is stale.
        let _ = std::fs::remove_file(&path);
        let region = Region::create_file(&path, slots)?;
        self.registry.bump_channels_epoch();
        Ok((Box::new(ring::split(Arc::new(region)).0), None))
    }

    fn accept(&mut self, hosted: &dyn Fn(u32) -> bool, out: &mut Vec<Accepted>) {
        let Some(rd) = self.registry.channels_changed(&mut self.channels_epoch) else {
            return;
        };
        for e in rd.flatten() {
            let Some((src, dst, lane)) = e.file_name().to_str().and_then(parse_ring_name) else {
                continue;
            };
            if !hosted(dst) {
                continue;
            }
            let ino = e
                .metadata()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .unwrap_or(0);
            let key = (src, dst, lane);
            let replaces = match self.opened.get(&key) {
                Some(&known) if known == ino => continue,
                // The sender restarted under the same index: its old ring is gone.
                Some(_) => true,
                None => false,
            };
            if let Ok(region) = Region::open_file(&e.path()) {
                out.push(Accepted {
                    src,
                    dst,
                    lane,
                    inbound: Box::new(ring::split(Arc::new(region)).1),
                    replaces,
                });
                self.opened.insert(key, ino);
            }
        }
    }

    fn forget(&mut self, index: u32) {
        self.opened.retain(|&(s, d, _), _| s != index && d != index);
    }
}
