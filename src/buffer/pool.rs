//! The pool mapping and the buffer API.
//!
//! Layout: a [`PoolHeader`] page; at 4096 one link word per buffer (the free list); from the
//! next page boundary the buffers, each `buffer_size` bytes (a multiple of 64). Offsets only,
//! never pointers, so every process can map the pool at its own address.

use super::freelist::{self, FreeListMemory};
use crate::error::{Error, Result};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::CachePadded;
use crate::sys::Mapping;
use std::path::Path;
use std::sync::Arc;

/// `"HFPOOL"` + format version 2, little-endian.
pub const POOL_MAGIC: u64 = u64::from_le_bytes(*b"HFPOOL\x00\x02");
const PAGE: usize = 4096;
/// Most buffers a pool may hold.
pub const MAX_BUFFERS: usize = 1 << 20;
/// Buffers of at least this size are taken most-recently-returned first.
const HOT_REUSE_SIZE: usize = 64 << 10;
/// Largest buffer.
pub const MAX_BUFFER_SIZE: usize = 1 << 30;

/// The first bytes of a pool mapping; only atomics.
#[derive(Debug)]
#[repr(C)]
pub struct PoolHeader {
    /// [`POOL_MAGIC`], stored last by the creator (Release).
    pub magic: AtomicU64,
    /// Bytes per buffer.
    pub buffer_size: AtomicU32,
    /// Buffers.
    pub count: AtomicU32,
    /// Free buffers.
    pub free: AtomicU32,
    _reserved: [u32; 27],
    /// Free-list head, `tag << 32 | index`.
    pub head: CachePadded<AtomicU64>,
    /// Return-list head (buffers released by receivers), `tag << 32 | index`.
    pub returned: CachePadded<AtomicU64>,
    /// Buffers on the return list (on a line of its own, written by receivers).
    pub returned_free: CachePadded<AtomicU32>,
}

const _: () = assert!(std::mem::size_of::<PoolHeader>() <= PAGE);

#[derive(Debug)]
struct Pool {
    base: *mut u8,
    buffer_size: usize,
    count: usize,
    data_offset: usize,
    id: u64,
    /// What the creator names the pool by (the transport's segment key), if anything.
    tag: Option<u128>,
    _map: Mapping,
}

// SAFETY: the header and links are atomics; each buffer's bytes belong to the one holder that
// popped its index from the free list (ownership moves through the list's Acquire/Release),
// so no two threads or processes write a buffer at once. The Pool owns the mapping.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

fn layout(count: usize, buffer_size: usize) -> (usize, usize) {
    let data = (PAGE + 4 * count).div_ceil(PAGE) * PAGE;
    (data, data + count * buffer_size)
}

impl Pool {
    fn header(&self) -> &PoolHeader {
        // SAFETY: the mapping starts with a page that holds a PoolHeader (all atomics).
        unsafe { &*(self.base as *const PoolHeader) }
    }

    fn buffer_ptr(&self, index: u32) -> *mut u8 {
        debug_assert!((index as usize) < self.count);
        // SAFETY: index < count, so the buffer lies inside the mapping.
        unsafe {
            self.base
                .add(self.data_offset + index as usize * self.buffer_size)
        }
    }
}

impl FreeListMemory for Pool {
    fn head(&self) -> &AtomicU64 {
        &self.header().head
    }

    fn link(&self, i: u32) -> &AtomicU32 {
        assert!((i as usize) < self.count, "buffer index {i} out of range");
        // SAFETY: link words are 4-byte aligned at PAGE + 4*i, inside the mapping (i < count).
        unsafe { &*(self.base.add(PAGE + 4 * i as usize) as *const AtomicU32) }
    }

    fn returned(&self) -> &AtomicU64 {
        &self.header().returned
    }

    fn returned_count(&self) -> &AtomicU32 {
        &self.header().returned_free
    }

    fn free_count(&self) -> &AtomicU32 {
        &self.header().free
    }
}

static NEXT_POOL_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The reference's `BufferManager`: a pool of `pool_size` buffers of `buffer_size` bytes.
///
/// ```
/// use hyperfabric::buffer::BufferManager;
/// let pool = BufferManager::new(4, 4096).unwrap();
/// let mut b = pool.acquire().unwrap();
/// assert_eq!(b.write_data(b"weights", 0, false).unwrap(), 7);
/// assert_eq!(b.read_data(7, 0, false).unwrap(), b"weights");
/// assert_eq!(pool.available(), 3);
/// drop(b);
/// assert_eq!(pool.available(), 4);
/// ```
#[derive(Debug, Clone)]
pub struct BufferManager {
    pool: Arc<Pool>,
}

fn check(pool_size: usize, buffer_size: usize) -> Result<usize> {
    if pool_size == 0 || pool_size > MAX_BUFFERS {
        return Err(Error::InvalidArgument(format!(
            "pool_size must be within 1..={MAX_BUFFERS} (got {pool_size})"
        )));
    }
    if buffer_size == 0 || buffer_size > MAX_BUFFER_SIZE {
        return Err(Error::InvalidArgument(format!(
            "buffer_size must be within 1..={MAX_BUFFER_SIZE} (got {buffer_size})"
        )));
    }
    Ok(buffer_size.div_ceil(64) * 64)
}

impl BufferManager {
    /// A pool in process-local memory. Buffer sizes are rounded up to 64 bytes.
    pub fn new(pool_size: usize, buffer_size: usize) -> Result<BufferManager> {
        let size = check(pool_size, buffer_size)?;
        let map = Mapping::anonymous(layout(pool_size, size).1)?;
        Ok(BufferManager::init(map, pool_size, size))
    }

    /// A pool in a new shared-memory file at `path`, which other processes open with
    /// [`BufferManager::open_shared`].
    pub fn create_shared(
        path: &Path,
        pool_size: usize,
        buffer_size: usize,
    ) -> Result<BufferManager> {
        let size = check(pool_size, buffer_size)?;
        let map = Mapping::create_file(path, layout(pool_size, size).1)?;
        Ok(BufferManager::init(map, pool_size, size))
    }

    fn init(map: Mapping, count: usize, buffer_size: usize) -> BufferManager {
        let pool = Pool {
            base: map.as_ptr(),
            buffer_size,
            count,
            data_offset: layout(count, buffer_size).0,
            id: NEXT_POOL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            tag: None,
            _map: map,
        };
        let h = pool.header();
        h.buffer_size.store(buffer_size as u32, Ordering::Relaxed);
        h.count.store(count as u32, Ordering::Relaxed);
        freelist::init(&pool, count as u32);
        h.magic.store(POOL_MAGIC, Ordering::Release);
        BufferManager {
            pool: Arc::new(pool),
        }
    }

    /// [`create_shared`](Self::create_shared), with a tag its buffers carry (the transport
    /// names its segments so).
    pub fn create_shared_tagged(
        path: &Path,
        pool_size: usize,
        buffer_size: usize,
        tag: u128,
    ) -> Result<BufferManager> {
        let mut m = BufferManager::create_shared(path, pool_size, buffer_size)?;
        Arc::get_mut(&mut m.pool).expect("just made").tag = Some(tag);
        Ok(m)
    }

    /// Maps a pool another process created, checking its header against the file size.
    pub fn open_shared(path: &Path) -> Result<BufferManager> {
        let map = Mapping::open_file(path)?;
        let bad = |why: String| {
            Error::InvalidArgument(format!("{}: not a buffer pool: {why}", path.display()))
        };
        if map.len() < PAGE {
            return Err(bad(format!("{} bytes", map.len())));
        }
        // SAFETY: the mapping holds at least one page, which fits a PoolHeader of atomics.
        let h = unsafe { &*(map.as_ptr() as *const PoolHeader) };
        if h.magic.load(Ordering::Acquire) != POOL_MAGIC {
            return Err(bad("bad magic (or not initialised yet)".into()));
        }
        let size = h.buffer_size.load(Ordering::Relaxed) as usize;
        let count = h.count.load(Ordering::Relaxed) as usize;
        if check(count, size).ok() != Some(size) || layout(count, size).1 != map.len() {
            return Err(bad(format!(
                "{count} buffers of {size} bytes in {} bytes",
                map.len()
            )));
        }
        Ok(BufferManager {
            pool: Arc::new(Pool {
                base: map.as_ptr(),
                buffer_size: size,
                count,
                data_offset: layout(count, size).0,
                id: NEXT_POOL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                tag: None,
                _map: map,
            }),
        })
    }

    /// Takes a free buffer (`BufferExhaustedError` when all are in use). Lock-free.
    pub fn acquire(&self) -> Result<ZeroCopyBuffer> {
        // Large buffers: reuse the one returned last, whose bytes are likely in cache (cycling
        // through cold megabytes costs more than a cache line). Small ones: keep taking from
        // the owner's list, so receivers' returns do not bounce its head.
        let index = if self.pool.buffer_size >= HOT_REUSE_SIZE {
            freelist::pop_recent(&*self.pool)
        } else {
            freelist::pop(&*self.pool)
        }
        .ok_or_else(|| {
            Error::BufferExhausted(format!(
                "all {} buffers of the pool are in use",
                self.pool.count
            ))
        })?;
        Ok(ZeroCopyBuffer {
            storage: Storage::Pooled {
                pool: self.pool.clone(),
                index,
            },
            capacity: self.pool.buffer_size,
            len: 0,
            enable_compression: false,
            enable_encryption: false,
        })
    }

    /// Free buffers now.
    pub fn available(&self) -> usize {
        let h = self.pool.header();
        (h.free.load(Ordering::Relaxed) + h.returned_free.load(Ordering::Relaxed)) as usize
    }

    /// Buffers in the pool.
    pub fn pool_size(&self) -> usize {
        self.pool.count
    }

    /// Bytes per buffer.
    pub fn buffer_size(&self) -> usize {
        self.pool.buffer_size
    }

    /// Reads the bytes a descriptor names (a buffer another process of this pool filled).
    pub fn read_descriptor(&self, d: &BufferDescriptor) -> Result<&[u8]> {
        if d.index as usize >= self.pool.count || d.len as usize > self.pool.buffer_size {
            return Err(Error::InvalidArgument(format!(
                "descriptor {d:?} is outside the pool ({} buffers of {} bytes)",
                self.pool.count, self.pool.buffer_size
            )));
        }
        // SAFETY: in bounds (checked); the sender wrote these bytes before sending the
        // descriptor and does not write them again until the receiver releases the buffer.
        Ok(unsafe { std::slice::from_raw_parts(self.pool.buffer_ptr(d.index), d.len as usize) })
    }

    /// Takes ownership of buffer `index`, which arrived by descriptor, as the payload of
    /// bytes `start..start + len` read in place; the buffer returns to the free list when the
    /// payload is dropped.
    pub fn take_payload(&self, index: u32, start: usize, len: usize) -> Result<Payload> {
        let in_bounds = (index as usize) < self.pool.count
            && start
                .checked_add(len)
                .is_some_and(|e| e <= self.pool.buffer_size);
        if !in_bounds {
            return Err(Error::InvalidArgument(format!(
                "descriptor (buffer {index}, bytes {start}+{len}) is outside the pool \
                 ({} buffers of {} bytes)",
                self.pool.count, self.pool.buffer_size
            )));
        }
        Ok(Payload {
            repr: Repr::Shared {
                pool: self.pool.clone(),
                index,
                start,
                len,
            },
        })
    }

    /// Identity of this pool (process-local; clones share it).
    pub fn pool_id(&self) -> u64 {
        self.pool.id
    }

    /// Returns a buffer that arrived by descriptor to the free list.
    pub fn release_descriptor(&self, d: &BufferDescriptor) -> Result<()> {
        if d.index as usize >= self.pool.count {
            return Err(Error::InvalidArgument(format!(
                "descriptor {d:?} is outside the pool"
            )));
        }
        freelist::give_back(&*self.pool, d.index);
        Ok(())
    }
}

/// Names a filled buffer of a shared pool: what travels instead of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferDescriptor {
    /// Buffer index in the pool.
    pub index: u32,
    /// Bytes of valid data.
    pub len: u32,
}

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
    /// `compress` or the buffer's default says so); returns the bytes written.
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

    /// Reads `size` bytes at `offset` (and decompresses them when `decompress` or the
    /// buffer's default says so). `BufferUnderflowError` when fewer bytes were written.
    pub fn read_data(&self, size: usize, offset: usize, decompress: bool) -> Result<Vec<u8>> {
        let end = offset
            .checked_add(size)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                Error::BufferUnderflow(format!(
                    "reading {size} bytes at offset {offset}: only {} bytes of data in the buffer",
                    self.len
                ))
            })?;
        let bytes = &self.as_slice()[offset..end];
        if decompress || self.enable_compression {
            // lz4 expands at most ~255x; refuse claims beyond that (or 1 GiB).
            let limit = size.saturating_mul(255).min(MAX_BUFFER_SIZE);
            crate::codec::decompress(bytes, limit)
        } else {
            Ok(bytes.to_vec())
        }
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
    /// the pool. A standalone buffer comes back as `Err`.
    pub fn into_pooled(mut self) -> std::result::Result<(u32, usize), ZeroCopyBuffer> {
        match std::mem::replace(&mut self.storage, Storage::Moved) {
            Storage::Pooled { index, .. } => Ok((index, self.len)),
            other => {
                self.storage = other;
                Err(self)
            }
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

/// Bytes of a received message: owned, or read in place from a buffer of the sender's shared
/// pool (zero copy) that returns to that pool when the payload is dropped.
pub struct Payload {
    repr: Repr,
}

/// Payloads up to this size are held inline (no allocation).
const PAYLOAD_INLINE: usize = 64;

enum Repr {
    Inline {
        len: u8,
        bytes: [u8; PAYLOAD_INLINE],
    },
    Owned {
        bytes: Vec<u8>,
        start: usize,
    },
    Shared {
        pool: Arc<Pool>,
        index: u32,
        start: usize,
        len: usize,
    },
}

impl Payload {
    /// Owned bytes.
    pub fn from_vec(bytes: Vec<u8>) -> Payload {
        Payload {
            repr: Repr::Owned { bytes, start: 0 },
        }
    }

    /// A copy of `bytes` (held inline, without allocation, when small).
    pub fn copy_from(bytes: &[u8]) -> Payload {
        if bytes.len() <= PAYLOAD_INLINE {
            let mut inline = [0u8; PAYLOAD_INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Payload {
                repr: Repr::Inline {
                    len: bytes.len() as u8,
                    bytes: inline,
                },
            }
        } else {
            Payload::from_vec(bytes.to_vec())
        }
    }

    /// The bytes of `bytes` from `start` on, without copying.
    pub fn from_vec_at(bytes: Vec<u8>, start: usize) -> Payload {
        let start = start.min(bytes.len());
        Payload {
            repr: Repr::Owned { bytes, start },
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Owned { bytes, start } => &bytes[*start..],
            // SAFETY: the payload owns buffer `index` (it came off the free list by
            // descriptor and goes back only on drop), and start + len <= buffer_size was
            // checked by `take_payload`.
            Repr::Shared {
                pool,
                index,
                start,
                len,
            } => unsafe { std::slice::from_raw_parts(pool.buffer_ptr(*index).add(*start), *len) },
        }
    }

    /// Whether the bytes are read in place from the sender's buffer.
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.repr, Repr::Shared { .. })
    }

    /// The bytes as a vector (moved when owned from the start, else copied; a shared buffer
    /// then returns to its pool).
    pub fn into_vec(mut self) -> Vec<u8> {
        match &mut self.repr {
            Repr::Owned { bytes, start: 0 } => std::mem::take(bytes),
            _ => self.as_slice().to_vec(),
        }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        if let Repr::Shared { pool, index, .. } = &self.repr {
            freelist::give_back(&**pool, *index);
        }
    }
}

impl Default for Payload {
    fn default() -> Payload {
        Payload::from_vec(Vec::new())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        Payload::from_vec(v)
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Clone for Payload {
    /// A copy in owned memory (a shared buffer has one owner).
    fn clone(&self) -> Payload {
        Payload::copy_from(self.as_slice())
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("len", &self.len())
            .field("zero_copy", &self.is_zero_copy())
            .finish()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for Payload {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl PartialEq<Vec<u8>> for Payload {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Payload {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.as_slice() == other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Payload {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.as_slice() == *other
    }
}

impl Drop for ZeroCopyBuffer {
    fn drop(&mut self) {
        if let Storage::Pooled { pool, index } = &self.storage {
            freelist::push(&**pool, *index);
        }
    }
}
