//! [`Region`]: ring memory in one mapping (process-local heap, or a shared-memory file), laid
//! out as a [`RingHeader`] page followed by the slots.

use super::{RingMemory, SLOT_SIZE};
use crate::error::{Error, Result};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::CachePadded;
use crate::sys::Mapping;
use std::path::Path;

/// `"HFRING"` + format version, little-endian.
pub const RING_MAGIC: u64 = u64::from_le_bytes(*b"HFRING\x00\x02");
/// Format version: 2 since producers clear the boundary word after each message (a version-1
/// producer does not, so its rings are refused by name).
pub const RING_VERSION: u32 = 2;
/// Bytes before the first slot.
pub const HEADER_PAGE: usize = 4096;
/// Most slots a ring may have (1 GiB of slots).
pub const MAX_CAPACITY: usize = 1 << 24;

/// The first bytes of every ring mapping. Only atomics, so every process may read and write
/// it through shared references; offsets, never pointers.
#[derive(Debug)]
#[repr(C)]
pub struct RingHeader {
    /// [`RING_MAGIC`], stored last (Release) by the creator: an opener that loads it with
    /// Acquire sees every other field initialised.
    pub magic: AtomicU64,
    /// [`RING_VERSION`].
    pub version: AtomicU32,
    /// [`SLOT_SIZE`].
    pub slot_size: AtomicU32,
    /// Number of slots.
    pub capacity: AtomicU32,
    /// State bits: [`super::STATE_CORRUPT`].
    pub state: AtomicU32,
    /// Pid of the producing process (0: not attached).
    pub producer_pid: AtomicU32,
    /// Pid of the consuming process (0: not attached).
    pub consumer_pid: AtomicU32,
    /// Bumped each time the ring is re-created under the same name.
    pub generation: AtomicU64,
    /// The node the ring is for, plus one (0: any; endpoint rings name theirs, so a link
    /// to one planted under another node's name is not read by that node).
    pub destination: AtomicU64,
    /// The registration generation of [`RingHeader::destination`].
    pub destination_generation: AtomicU64,
    /// The producer's timing probe and what the consumer measured with it.
    pub probe: super::Probe,
    _reserved: [u64; 4],
    /// Producer's tail and traffic counts (published per message, Relaxed; observers only).
    pub tail: CachePadded<ProducerLine>,
    /// Consumer's head (sync point "reclaim").
    pub head: CachePadded<AtomicU64>,
}

/// The producer's cache line of the header: what it publishes for observers with each
/// message. The counts were padding before they were kept: rings of producers that do not
/// keep them read 0.
#[derive(Debug, Default)]
#[repr(C)]
pub struct ProducerLine {
    /// Position after the last message published.
    pub tail: AtomicU64,
    /// Messages published since the ring was created.
    pub messages: AtomicU64,
    /// Payload bytes of those messages, and the data of the buffers they handed over by
    /// descriptor.
    pub bytes: AtomicU64,
}

impl std::ops::Deref for ProducerLine {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.tail
    }
}

const _: () = assert!(std::mem::size_of::<RingHeader>() <= HEADER_PAGE);
const _: () = assert!(std::mem::offset_of!(RingHeader, tail) == 128);
const _: () = assert!(std::mem::offset_of!(RingHeader, head) == 256);
const _: () = assert!(std::mem::offset_of!(RingHeader, probe) == 56);

/// A ring's memory: header page and slots in one contiguous mapping.
#[derive(Debug)]
pub struct Region {
    base: *mut u8,
    capacity: usize,
    /// Owns the memory `base` points into.
    _map: Mapping,
}

// SAFETY: the mapping is only accessed through atomics (header, sequence words) and through
// the ring protocol, which gives each byte range to one side at a time; `base` stays valid
// for the Region's lifetime because the Region owns the mapping.
unsafe impl Send for Region {}
// SAFETY: as above; `&Region` exposes no unsynchronised mutation.
unsafe impl Sync for Region {}

fn check_capacity(capacity: usize) -> Result<()> {
    if !capacity.is_power_of_two() || !(2..=MAX_CAPACITY).contains(&capacity) {
        return Err(Error::InvalidArgument(format!(
            "ring capacity must be a power of two within 2..={MAX_CAPACITY} slots (got {capacity})"
        )));
    }
    Ok(())
}

/// Bytes of a ring mapping with `capacity` slots.
pub fn region_len(capacity: usize) -> usize {
    HEADER_PAGE + capacity * SLOT_SIZE
}

impl Region {
    /// A zeroed ring in process-local memory.
    pub fn heap(capacity: usize) -> Result<Region> {
        check_capacity(capacity)?;
        Ok(Region::new(
            Mapping::anonymous(region_len(capacity))?,
            capacity,
        ))
    }

    /// Creates a ring in a new file at `path` (mode 0600; fails if the file exists) and maps it.
    pub fn create_file(path: &Path, capacity: usize) -> Result<Region> {
        check_capacity(capacity)?;
        Ok(Region::new(
            Mapping::create_file(path, region_len(capacity))?,
            capacity,
        ))
    }

    fn new(map: Mapping, capacity: usize) -> Region {
        let r = Region {
            base: map.as_ptr(),
            capacity,
            _map: map,
        };
        r.init();
        r
    }

    /// Maps an existing ring file, checking its header against its size.
    pub fn open_file(path: &Path) -> Result<Region> {
        let map = Mapping::open_file(path)?;
        let len = map.len();
        let bad =
            |why: String| Error::InvalidArgument(format!("{}: not a ring: {why}", path.display()));
        if len < HEADER_PAGE + 2 * SLOT_SIZE {
            return Err(bad(format!("{len} bytes")));
        }
        let mut r = Region {
            base: map.as_ptr(),
            capacity: 0, // set once the header is checked
            _map: map,
        };
        let h = r.header();
        let magic = h.magic.load(Ordering::Acquire);
        let version = h.version.load(Ordering::Relaxed);
        if magic & 0xffff_ffff_ffff != RING_MAGIC & 0xffff_ffff_ffff {
            return Err(bad("bad magic (or not initialised yet)".into()));
        }
        if magic != RING_MAGIC || version != RING_VERSION {
            return Err(bad(format!(
                "ring format version {version}, this library speaks {RING_VERSION} \
                 (a process linked against another HyperFabric release?)"
            )));
        }
        if h.state.load(Ordering::Relaxed) & super::STATE_CORRUPT != 0 {
            return Err(bad("marked corrupt by its consumer".into()));
        }
        let slot = h.slot_size.load(Ordering::Relaxed) as usize;
        let capacity = h.capacity.load(Ordering::Relaxed) as usize;
        if slot != SLOT_SIZE || check_capacity(capacity).is_err() || region_len(capacity) != len {
            return Err(bad(format!(
                "slot size {slot}, capacity {capacity}, file {len} bytes"
            )));
        }
        r.capacity = capacity;
        Ok(r)
    }

    fn init(&self) {
        let h = self.header();
        h.version.store(RING_VERSION, Ordering::Relaxed);
        h.slot_size.store(SLOT_SIZE as u32, Ordering::Relaxed);
        h.capacity.store(self.capacity as u32, Ordering::Relaxed);
        h.magic.store(RING_MAGIC, Ordering::Release);
    }

    /// The header.
    pub fn header(&self) -> &RingHeader {
        // SAFETY: the mapping is at least HEADER_PAGE bytes, page-aligned, and RingHeader
        // (all atomics) fits in it; atomics may be shared between threads and processes.
        unsafe { &*(self.base as *const RingHeader) }
    }

    #[inline]
    fn slot_ptr(&self, slot: usize, offset: usize) -> *mut u8 {
        // SAFETY: callers keep slot < capacity and offset within the slot array.
        unsafe { self.base.add(HEADER_PAGE + slot * SLOT_SIZE + offset) }
    }
}

// SAFETY: sequence words are the 4-byte-aligned first bytes of each slot inside the mapping;
// write/read stay within the slot array (debug-asserted) as the trait requires.
unsafe impl RingMemory for Region {
    #[inline]
    fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn seq(&self, slot: usize) -> &AtomicU32 {
        debug_assert!(slot < self.capacity);
        // SAFETY: slot < capacity, so the word is inside the mapping and 64-byte aligned.
        unsafe { &*(self.slot_ptr(slot, 0) as *const AtomicU32) }
    }

    #[inline]
    fn head(&self) -> &AtomicU64 {
        &self.header().head
    }

    #[inline]
    fn tail(&self) -> &AtomicU64 {
        &self.header().tail.tail
    }

    #[inline]
    fn traffic(&self) -> (&AtomicU64, &AtomicU64) {
        let line = &self.header().tail;
        (&line.messages, &line.bytes)
    }

    #[inline]
    fn state(&self) -> &AtomicU32 {
        &self.header().state
    }

    #[inline]
    fn probe(&self) -> Option<&super::Probe> {
        Some(&self.header().probe)
    }

    #[inline]
    unsafe fn write(&self, slot: usize, offset: usize, data: &[u8]) {
        debug_assert!(slot * SLOT_SIZE + offset + data.len() <= self.capacity * SLOT_SIZE);
        // SAFETY: in bounds (caller contract, asserted above); the protocol gives these
        // bytes to the producer alone, so no other access overlaps.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.slot_ptr(slot, offset), data.len())
        }
    }

    #[inline]
    unsafe fn read<R>(
        &self,
        slot: usize,
        offset: usize,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        debug_assert!(slot * SLOT_SIZE + offset + len <= self.capacity * SLOT_SIZE);
        // SAFETY: in bounds; the bytes were published to the consumer and the producer does
        // not touch them until the consumer releases them after `f` returns.
        f(unsafe { std::slice::from_raw_parts(self.slot_ptr(slot, offset), len) })
    }
}
