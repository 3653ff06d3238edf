//! [`Mapping`]: page-aligned, zero-filled memory shared with other processes (a file under
//! `/dev/shm`) or private to this one (anonymous), owned by the value and unmapped on drop.

use crate::error::{Error, Result};
use std::path::Path;

/// A mapping owned by this value.
#[derive(Debug)]
pub struct Mapping {
    map: memmap2::MmapRaw,
}

impl Mapping {
    /// Private zeroed memory of `len` bytes.
    pub fn anonymous(len: usize) -> Result<Mapping> {
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_anon()
            .map_err(|e| Error::io(format!("mapping {len} bytes"), e))?;
        Ok(Mapping { map: map.into() })
    }

    /// A new file of `len` zero bytes at `path` (mode [`super::fs::file_mode`]; fails if it
    /// exists), mapped shared.
    pub fn create_file(path: &Path, len: usize) -> Result<Mapping> {
        let file = super::fs::create_state_file(path)?;
        let sized = file
            .set_len(len as u64)
            .map_err(|e| Error::io(format!("sizing {}", path.display()), e))
            .and_then(|_| {
                memmap2::MmapRaw::map_raw(&file)
                    .map_err(|e| Error::io(format!("mapping {}", path.display()), e))
            });
        match sized {
            Ok(map) => Ok(Mapping { map }),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// An existing regular file (not through a symbolic link), mapped shared.
    pub fn open_file(path: &Path) -> Result<Mapping> {
        let file = super::fs::open_state_file(path, true)?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            .len();
        if len == 0 {
            return Err(Error::InvalidArgument(format!(
                "{} is empty",
                path.display()
            )));
        }
        let map = memmap2::MmapRaw::map_raw(&file)
            .map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
        Ok(Mapping { map })
    }

    /// First byte (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty (never, for a successfully made one).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }
}
