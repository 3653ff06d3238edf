//! The pool mapping and [`BufferManager`].
//!
//! Layout (format version 3; offsets only, never pointers, so every process can map the pool
//! at its own address):
//!
//! | offset | bytes | what |
//! |---|---|---|
//! | 0 | 4096 | [`PoolHeader`]: magic, sizes, free count, state, list heads |
//! | 4096 + 8 i | 4 | buffer `i`'s link word (the free list: the next index below it) |
//! | 4096 + 8 i + 4 | 4 | buffer `i`'s lending record: the pid it is lent to, 0 if none |
//! | the next page boundary + `buffer_size` i | `buffer_size` | buffer `i` (a multiple of 64) |
//!
//! A buffer's link word and lending record sit side by side so that both live on one cache
//! line: lending and returning each store to a line the list operation touches anyway.

use super::freelist::{self, lending, Corrupt, FreeListMemory};
use super::{Payload, ZeroCopyBuffer};
use crate::error::{Error, Result};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::CachePadded;
use crate::sys::process::Origin;
use crate::sys::Mapping;
use std::path::Path;
use std::sync::Arc;

/// `"HFPOOL"` + format version 3, little-endian.
pub const POOL_MAGIC: u64 = u64::from_le_bytes(*b"HFPOOL\x00\x03");
const PAGE: usize = 4096;
/// Bytes of a buffer's record (link word, lending record) after the header page.
const RECORD: usize = 8;
/// Most buffers a pool may hold.
pub const MAX_BUFFERS: usize = 1 << 20;
/// Buffers of at least this size are taken most-recently-returned first.
const HOT_REUSE_SIZE: usize = 64 << 10;
/// Largest buffer.
pub const MAX_BUFFER_SIZE: usize = 1 << 30;
/// [`PoolHeader::state`] bit: a list word held a value the algorithm never writes.
pub const STATE_CORRUPT: u32 = 1;

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
    /// [`STATE_CORRUPT`] once a process found the list corrupt (nothing clears it): the pool
    /// hands out no more buffers. On the owner's line (beside `free`), so checking it costs
    /// an acquire no extra cache line.
    pub state: AtomicU32,
    /// Corruptions detected (by any process of the pool).
    pub corruptions: AtomicU32,
    _reserved: [u32; 25],
    /// Free-list head, `tag << 32 | index`.
    pub head: CachePadded<AtomicU64>,
    /// Return-list head (buffers released by receivers), `tag << 32 | index`.
    pub returned: CachePadded<AtomicU64>,
    /// Buffers on the return list (on a line of its own, written by receivers).
    pub returned_free: CachePadded<AtomicU32>,
}

const _: () = assert!(std::mem::size_of::<PoolHeader>() <= PAGE);
const _: () = assert!(std::mem::offset_of!(PoolHeader, head) == 128);

/// One mapped pool; shared by the [`BufferManager`] clones and the buffers and payloads it
/// hands out.
#[derive(Debug)]
pub(super) struct Pool {
    base: *mut u8,
    /// Bytes per buffer (checked against the mapping's length when opened).
    pub(super) buffer_size: usize,
    /// Buffers (checked likewise); every index read from the mapping is checked against it.
    count: usize,
    data_offset: usize,
    /// Identity in this process.
    pub(super) id: u64,
    /// What the creator names the pool by (the transport's segment key), if anything.
    pub(super) tag: Option<u128>,
    /// The process that mapped a pool shared with other processes (None: private memory,
    /// which a `fork()` child gets a copy of). A child neither takes nor returns buffers of
    /// its parent's shared pools: the free list would hand one buffer to both.
    shared_by: Option<Origin>,
    _map: Mapping,
}

// SAFETY: the header and records are atomics; each buffer's bytes belong to the one holder
// that popped its index from the free list (ownership moves through the list's
// Acquire/Release), so no two threads or processes write a buffer at once. The Pool owns the
// mapping.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

/// Offset of the first buffer and length of the mapping.
fn layout(count: usize, buffer_size: usize) -> (usize, usize) {
    let data = (PAGE + RECORD * count).div_ceil(PAGE) * PAGE;
    (data, data + count * buffer_size)
}

impl Pool {
    fn header(&self) -> &PoolHeader {
        // SAFETY: the mapping starts with a page that holds a PoolHeader (all atomics).
        unsafe { &*(self.base as *const PoolHeader) }
    }

    /// First byte of buffer `index`; the caller checked `index < count`.
    pub(super) fn buffer_ptr(&self, index: u32) -> *mut u8 {
        debug_assert!((index as usize) < self.count);
        // SAFETY: index < count, so the buffer lies inside the mapping.
        unsafe {
            self.base
                .add(self.data_offset + index as usize * self.buffer_size)
        }
    }

    /// Word `word` (0: link, 1: lending record) of buffer `i`'s record, if `i` is in range.
    fn record(&self, i: u32, word: usize) -> Option<&AtomicU32> {
        debug_assert!(word < RECORD / 4);
        if i as usize >= self.count {
            return None;
        }
        // SAFETY: i < count, so PAGE + 8i + 4 word is inside the record area the mapping
        // holds (its length was checked against the layout), 4-byte aligned (the mapping is
        // page-aligned), and only ever accessed as an atomic.
        Some(unsafe {
            &*(self.base.add(PAGE + RECORD * i as usize + 4 * word) as *const AtomicU32)
        })
    }

    /// Records a corrupt list in the header, where every process of the pool sees it.
    fn mark_corrupt(&self) {
        let h = self.header();
        h.state.fetch_or(STATE_CORRUPT, Ordering::Relaxed);
        h.corruptions.fetch_add(1, Ordering::Relaxed);
    }

    fn is_corrupt(&self) -> bool {
        self.header().state.load(Ordering::Relaxed) & STATE_CORRUPT != 0
    }

    /// Puts back a buffer this process took with `acquire` and did not lend.
    /// Whether this is a `fork()` child's copy of a shared pool (one atomic load).
    #[inline]
    fn forked(&self) -> bool {
        self.shared_by.is_some_and(|o| !o.is_current())
    }

    /// `InvalidArgumentError` in a `fork()` child of the process that mapped a shared pool.
    pub(super) fn check_process(&self) -> Result<()> {
        match self.shared_by {
            Some(o) if !o.is_current() => Err(Error::InvalidArgument(format!(
                "this buffer pool is shared by process {}; after fork() create a new one",
                o.pid()
            ))),
            _ => Ok(()),
        }
    }

    pub(super) fn release(&self, index: u32) {
        if self.forked() {
            // The parent still holds the buffer: returning it here would free it there.
            return;
        }
        if freelist::push(self, index).is_err() {
            self.mark_corrupt();
        }
    }

    /// Returns a buffer that arrived by descriptor (clearing its lending record first).
    pub(super) fn give_back(&self, index: u32) {
        if self.forked() {
            return;
        }
        if lending::give_back(self, index).is_err() {
            self.mark_corrupt();
        }
    }
}

impl FreeListMemory for Pool {
    fn capacity(&self) -> u32 {
        self.count as u32
    }

    fn head(&self) -> &AtomicU64 {
        &self.header().head
    }

    fn link(&self, i: u32) -> Option<&AtomicU32> {
        self.record(i, 0)
    }

    fn lent(&self, i: u32) -> Option<&AtomicU32> {
        self.record(i, 1)
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
        Ok(BufferManager::init(map, pool_size, size, None))
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
        Ok(BufferManager::init(
            map,
            pool_size,
            size,
            Some(Origin::current()),
        ))
    }

    fn init(
        map: Mapping,
        count: usize,
        buffer_size: usize,
        shared_by: Option<Origin>,
    ) -> BufferManager {
        let pool = Pool {
            base: map.as_ptr(),
            buffer_size,
            count,
            data_offset: layout(count, buffer_size).0,
            id: NEXT_POOL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            tag: None,
            shared_by,
            _map: map,
        };
        let h = pool.header();
        h.buffer_size.store(buffer_size as u32, Ordering::Relaxed);
        h.count.store(count as u32, Ordering::Relaxed);
        freelist::init(&pool);
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
            return Err(bad(
                "bad magic (another format version, or not initialised yet)".into(),
            ));
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
                shared_by: Some(Origin::current()),
                _map: map,
            }),
        })
    }

    /// Takes a free buffer. Lock-free. `BufferExhaustedError` when all are in use, or when
    /// the pool is corrupt (a process wrote its list words: it then hands out nothing, since
    /// a list that was written over could give one buffer to two holders).
    pub fn acquire(&self) -> Result<ZeroCopyBuffer> {
        let pool = &*self.pool;
        if pool.forked() {
            pool.check_process()?;
        }
        if pool.is_corrupt() {
            return Err(corrupt_error());
        }
        // Large buffers: reuse the one returned last, whose bytes are likely in cache (cycling
        // through cold megabytes costs more than a cache line). Small ones: keep taking from
        // the owner's list, so receivers' returns do not bounce its head.
        let taken = if pool.buffer_size >= HOT_REUSE_SIZE {
            freelist::pop_recent(pool)
        } else {
            freelist::pop(pool)
        };
        match taken {
            Ok(Some(index)) => Ok(ZeroCopyBuffer::pooled(self.pool.clone(), index)),
            Ok(None) => Err(Error::BufferExhausted(format!(
                "all {} buffers of the pool are in use",
                pool.count
            ))),
            Err(Corrupt) => {
                pool.mark_corrupt();
                Err(corrupt_error())
            }
        }
    }

    /// `InvalidArgumentError` when the pool is shared with other processes and the caller is
    /// a `fork()` child of the process that mapped it: the child must not take, fill or
    /// return its parent's buffers (it can make a pool of its own). Private pools are copied
    /// into the child and stay usable there.
    pub fn check_process(&self) -> Result<()> {
        self.pool.check_process()
    }

    /// Free buffers now (at most the pool's size, whatever the shared counters say).
    pub fn available(&self) -> usize {
        let h = self.pool.header();
        let free = h.free.load(Ordering::Relaxed) as usize;
        let returned = h.returned_free.load(Ordering::Relaxed) as usize;
        (free + returned).min(self.pool.count)
    }

    /// Buffers in the pool.
    pub fn pool_size(&self) -> usize {
        self.pool.count
    }

    /// Bytes per buffer.
    pub fn buffer_size(&self) -> usize {
        self.pool.buffer_size
    }

    /// Whether a process found the pool's list corrupt (it then hands out no buffer).
    pub fn is_corrupt(&self) -> bool {
        self.pool.is_corrupt()
    }

    /// How many times a process of the pool found its list corrupt.
    pub fn corruptions(&self) -> u32 {
        self.pool.header().corruptions.load(Ordering::Relaxed)
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
        Ok(Payload::shared(self.pool.clone(), index, start, len))
    }

    /// [`take_payload`](Self::take_payload) of a buffer another process lent to this one
    /// (`me`): refused unless the buffer's lending record names `me` and no payload took it
    /// yet, so a descriptor the owner never published for this process (forged, or a copy of
    /// one already taken) cannot hand a free or busy buffer back to the pool.
    pub fn take_lent_payload(&self, index: u32, len: usize, me: u32) -> Result<Payload> {
        if (index as usize) < self.pool.count && !lending::claim(&*self.pool, index, me) {
            return Err(Error::InvalidArgument(format!(
                "buffer {index} is not lent to this process (a descriptor its owner did not \
                 publish for it, or one already taken)"
            )));
        }
        self.take_payload(index, 0, len).inspect_err(|_| {
            // Out of bounds after the claim: nothing was taken, the record goes back.
            if (index as usize) < self.pool.count {
                if let Some(r) = self.pool.lent(index) {
                    r.store(me, Ordering::Relaxed);
                }
            }
        })
    }

    /// Identity of this pool (process-local; clones share it).
    pub fn pool_id(&self) -> u64 {
        self.pool.id
    }

    /// Returns a buffer that arrived by descriptor to the free list (clearing its lending
    /// record).
    pub fn release_descriptor(&self, d: &BufferDescriptor) -> Result<()> {
        if d.index as usize >= self.pool.count {
            return Err(Error::InvalidArgument(format!(
                "descriptor {d:?} is outside the pool"
            )));
        }
        self.pool.give_back(d.index);
        Ok(())
    }

    /// Records that buffer `index` is lent to the process `pid`, so that
    /// [`reclaim_lent`](Self::reclaim_lent) can take it back if that process dies holding it.
    /// The caller holds the buffer (it came from [`ZeroCopyBuffer::into_pooled`] or
    /// [`ZeroCopyBuffer::into_descriptor`], or by descriptor, and was not released since)
    /// and calls this before it publishes the descriptor; the receiver's release clears the
    /// record. Costs one store, to the cache line of the buffer's link word.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use hyperfabric::buffer::BufferManager;
    /// let pool = BufferManager::create_shared(&dir.path().join("pool"), 4, 4096).unwrap();
    /// let mut receiver = std::process::Command::new("true").spawn().unwrap();
    /// let (index, _len) = pool.acquire().unwrap().into_pooled().unwrap();
    /// pool.lend(index, receiver.id()).unwrap(); // then send (index, len) to it
    /// assert_eq!(pool.lent_count(), 1);
    /// receiver.wait().unwrap(); // it died holding the buffer
    /// assert_eq!(pool.reclaim_lent(receiver.id()), 1);
    /// assert_eq!(pool.available(), 4);
    /// ```
    #[inline]
    pub fn lend(&self, index: u32, pid: u32) -> Result<()> {
        if pid == 0 || pid > i32::MAX as u32 {
            return Err(Error::InvalidArgument(format!("{pid} is not a process id")));
        }
        lending::lend(&*self.pool, index, pid).map_err(|Corrupt| {
            Error::InvalidArgument(format!(
                "buffer {index} is outside the pool ({} buffers)",
                self.pool.count
            ))
        })
    }

    /// Puts every buffer lent to the dead process `dead_pid` back on the free list and
    /// returns how many. Exactly once per buffer, also when called again or from several
    /// threads at once. Takes nothing while a process `dead_pid` runs (0, this process, or a
    /// live one: they may still read what they were lent), so call it once the process is
    /// gone and before lending to a new process that got the same pid. O(pool size).
    pub fn reclaim_lent(&self, dead_pid: u32) -> usize {
        if dead_pid == std::process::id() || crate::sys::process::alive(dead_pid, 0) {
            return 0;
        }
        lending::reclaim_lent(&*self.pool, dead_pid)
    }

    /// Buffers lent now (handed out by descriptor with [`lend`](Self::lend) and not yet
    /// returned). O(pool size): for tests and metrics.
    pub fn lent_count(&self) -> usize {
        lending::lent_count(&*self.pool)
    }
}

fn corrupt_error() -> Error {
    Error::BufferExhausted(
        "the pool is corrupt (its shared free list holds an index outside the pool or a \
         cycle): it hands out no more buffers"
            .into(),
    )
}

/// Names a filled buffer of a shared pool: what travels instead of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferDescriptor {
    /// Buffer index in the pool.
    pub index: u32,
    /// Bytes of valid data.
    pub len: u32,
}
