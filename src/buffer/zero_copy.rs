//! [`ZeroCopyBuffer`]: a fixed-capacity byte buffer, standalone or one buffer of a pool that
//! it returns to when dropped (or hands over by descriptor).

use super::pool::{BufferDescriptor, Pool, MAX_BUFFER_SIZE};
use crate::error::{Error, Result};
use std::sync::Arc;

#[derive(Debug)]
enum Storage {
    Owned(Box<[u8]>),
    Pooled {
        pool: Arc<Pool>,
        index: u32,
    },
    /// Handed over as a descriptor; nothing to release.
    Moved,
}

/// The reference's `ZeroCopyBuffer`: a fixed-capacity byte buffer, from a pool or standalone.
#[derive(Debug)]
pub struct ZeroCopyBuffer {
    storage: Storage,
    capacity: usize,
    /// Bytes of valid data: the furthest byte written.
    len: usize,
    enable_compression: bool,
    enable_encryption: bool,
}

impl ZeroCopyBuffer {
    /// Buffer `index` of `pool`, which the caller just popped from its free list.
    pub(super) fn pooled(pool: Arc<Pool>, index: u32) -> ZeroCopyBuffer {
        ZeroCopyBuffer {
            capacity: pool.buffer_size,
            storage: Storage::Pooled { pool, index },
            len: 0,
            enable_compression: false,
            enable_encryption: false,
        }
    }

    /// A standalone buffer of `size` bytes (the reference's constructor). With
    /// `enable_compression`, writes and reads compress and decompress unless told otherwise
    /// per call; `enable_encryption` marks the buffer to be sealed when it is sent.
    pub fn new(
        size: usize,
        enable_compression: bool,
        enable_encryption: bool,
    ) -> Result<ZeroCopyBuffer> {
        if size == 0 || size > MAX_BUFFER_SIZE {
            return Err(Error::InvalidArgument(format!(
                "buffer size must be within 1..={MAX_BUFFER_SIZE} (got {size})"
            )));
        }
        Ok(ZeroCopyBuffer {
            storage: Storage::Owned(vec![0u8; size].into_boxed_slice()),
            capacity: size,
            len: 0,
            enable_compression,
            enable_encryption,
        })
    }

    /// `InvalidArgumentError` when the buffer belongs to a pool shared with other processes
    /// and the caller is a `fork()` child of the process that mapped it (see
    /// [`BufferManager::check_process`](super::BufferManager::check_process)).
    pub fn check_process(&self) -> Result<()> {
        match &self.storage {
            Storage::Pooled { pool, .. } => pool.check_process(),
            _ => Ok(()),
        }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of valid data.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the buffer is sealed when sent.
    pub fn encryption_enabled(&self) -> bool {
        self.enable_encryption
    }

    /// Whether writes and reads compress by default.
    pub fn compression_enabled(&self) -> bool {
        self.enable_compression
    }

    /// Forgets the data (capacity unchanged).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The whole buffer, for filling in place.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.storage {
            Storage::Owned(b) => b,
            // SAFETY: this value popped `index` from the free list, so it alone uses the
            // buffer until it pushes it back (on drop); the range is inside the mapping.
            Storage::Pooled { pool, index } => unsafe {
                std::slice::from_raw_parts_mut(pool.buffer_ptr(*index), pool.buffer_size)
            },
            Storage::Moved => &mut [],
        }
    }

    /// The valid data, in place.
    pub fn as_slice(&self) -> &[u8] {
        let len = self.len;
        match &self.storage {
            Storage::Owned(b) => &b[..len],
            // SAFETY: as in `as_mut_slice`; len <= buffer_size.
            Storage::Pooled { pool, index } => unsafe {
                std::slice::from_raw_parts(pool.buffer_ptr(*index), len)
            },
            Storage::Moved => &[],
        }
    }

    /// Marks the first `len` bytes valid after filling them through [`as_mut_slice`].
    ///
    /// [`as_mut_slice`]: ZeroCopyBuffer::as_mut_slice
    pub fn set_len(&mut self, len: usize) -> Result<()> {
        if len > self.capacity {
            return Err(Error::BufferOverflow(format!(
                "length {len} exceeds the buffer capacity of {} bytes",
                self.capacity
            )));
        }
        self.len = len;
        Ok(())
    }

    /// Writes `data` at `offset` (lz4-compressed, with a 4-byte length prefix, when
    /// `compress` or the buffer's default says so); returns the bytes stored (compressed:
    /// fewer than `data`; [`read_data`](Self::read_data) takes the original length).
    /// `BufferOverflowError`, with nothing written, when they do not fit.
    pub fn write_data(&mut self, data: &[u8], offset: usize, compress: bool) -> Result<usize> {
        let compressed;
        let bytes = if compress || self.enable_compression {
            compressed = lz4_flex::block::compress_prepend_size(data);
            &compressed[..]
        } else {
            data
        };
        let end = offset
            .checked_add(bytes.len())
            .filter(|&e| e <= self.capacity)
            .ok_or_else(|| {
                Error::BufferOverflow(format!(
                    "writing {} bytes at offset {offset} exceeds the buffer capacity of {} bytes",
                    bytes.len(),
                    self.capacity
                ))
            })?;
        self.as_mut_slice()[offset..end].copy_from_slice(bytes);
        self.len = self.len.max(end);
        Ok(bytes.len())
    }

    /// Reads `size` bytes of data at `offset`. Uncompressed (neither `decompress` nor the
    /// buffer's default asks otherwise): the `size` bytes stored there. Compressed: the data
    /// written compressed at `offset`, of which `size` is the original (uncompressed)
    /// length, as the caller wrote it; a smaller `size` gives its first bytes. The stored
    /// (compressed) length that [`write_data`](Self::write_data) returns is not needed.
    /// `BufferUnderflowError` when fewer bytes were written (or the original data was
    /// shorter than `size`), `MalformedFrameError` when the bytes at `offset` are not a
    /// compressed block.
    pub fn read_data(&self, size: usize, offset: usize, decompress: bool) -> Result<Vec<u8>> {
        let underflow = || {
            Error::BufferUnderflow(format!(
                "reading {size} bytes at offset {offset}: only {} bytes of data in the buffer",
                self.len
            ))
        };
        if !(decompress || self.enable_compression) {
            let end = offset
                .checked_add(size)
                .filter(|&e| e <= self.len)
                .ok_or_else(underflow)?;
            return Ok(self.as_slice()[offset..end].to_vec());
        }
        let stored = self.as_slice().get(offset..).ok_or_else(underflow)?;
        let (mut data, _) = crate::compress::decompress_prefixed(stored, MAX_BUFFER_SIZE)?;
        if data.len() < size {
            return Err(Error::BufferUnderflow(format!(
                "reading {size} bytes at offset {offset}: the data compressed there is {} bytes",
                data.len()
            )));
        }
        data.truncate(size);
        Ok(data)
    }

    /// Hands the buffer over by descriptor (for a receiver that maps the same shared pool);
    /// the receiver releases it. `None` for a standalone buffer.
    pub fn into_descriptor(mut self) -> Option<BufferDescriptor> {
        match std::mem::replace(&mut self.storage, Storage::Moved) {
            Storage::Pooled { index, .. } => Some(BufferDescriptor {
                index,
                len: self.len as u32,
            }),
            other => {
                self.storage = other;
                None
            }
        }
    }

    /// Hands a pooled buffer over: its index and data length; the new owner returns it to
    /// the pool. A standalone buffer comes back as `Err`. A sender that passes the index to
    /// another process records it with [`BufferManager::lend`] first, so the buffer comes
    /// back if that process dies holding it.
    ///
    /// [`BufferManager::lend`]: super::BufferManager::lend
    pub fn into_pooled(mut self) -> std::result::Result<(u32, usize), ZeroCopyBuffer> {
        match std::mem::replace(&mut self.storage, Storage::Moved) {
            Storage::Pooled { index, .. } => Ok((index, self.len)),
            other => {
                self.storage = other;
                Err(self)
            }
        }
    }

    /// Records that this pooled buffer is being lent to process `pid` (about to be handed
    /// over by descriptor), so its owner can take it back if that process dies holding it
    /// (see `BufferManager::reclaim_lent`). A buffer that is not pooled is left as it is.
    pub fn lend(&self, pid: u32) -> Result<()> {
        match &self.storage {
            Storage::Pooled { pool, index } => super::freelist::lending::lend(&**pool, *index, pid)
                .map_err(|_| Error::InvalidArgument(format!("buffer {index} is outside its pool"))),
            _ => Ok(()),
        }
    }

    /// The tag of the pool this buffer belongs to, if it has one.
    pub fn pool_tag(&self) -> Option<u128> {
        match &self.storage {
            Storage::Pooled { pool, .. } => pool.tag,
            _ => None,
        }
    }

    /// Identity of the pool this buffer belongs to (process-local), if any.
    pub fn pool_id(&self) -> Option<u64> {
        match &self.storage {
            Storage::Pooled { pool, .. } => Some(pool.id),
            _ => None,
        }
    }
}

impl Drop for ZeroCopyBuffer {
    fn drop(&mut self) {
        if let Storage::Pooled { pool, index } = &self.storage {
            pool.release(*index);
        }
    }
}
