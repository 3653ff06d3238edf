//! Single-producer single-consumer message rings over 64-byte slots.
//!
//! A ring is a header page followed by `capacity` slots of [`SLOT_SIZE`] bytes (capacity a
//! power of two). A message occupies consecutive slots: the first starts with a 16-byte slot
//! header (sequence word, length, kind, flags, aux, source) and carries up to
//! [`INLINE_PAYLOAD`] bytes; longer payloads continue through the next slots, so the payload
//! is one contiguous byte range that the consumer reads in place. A message never wraps: when
//! it would, the producer fills the slots up to the end with a padding message.
//!
//! Synchronisation (one sync point per direction):
//! - *publish*: the producer writes header and payload, then stores the first slot's sequence
//!   word (`position + 1`) with Release; the consumer polls that word with Acquire. A
//!   message of up to 48 bytes is therefore one cache-line transfer.
//! - *reclaim*: the consumer stores its head position with Release after it has read the
//!   slots, lazily (every `capacity / 4` slots, or when it finds the ring empty); the
//!   producer loads it with Acquire only when its cached copy says the ring is full.
//!
//! Format v2: a continuation slot's first word is payload, so a consumer waiting at a message
//! boundary could read a payload value from an earlier lap as the sequence it expects (a
//! message nobody sent). The consumer therefore zeroes the first word of every slot after the
//! first of each message (and of each padding run) before it releases them: when it polls a
//! boundary, that word holds zero, a sequence of an earlier lap (never the expected value), or
//! the sequence the producer stored for this lap. The first slot needs no zeroing: its word
//! holds the previous lap's sequence, `capacity` below the expected one.
//!
//! Everything the consumer reads from a slot header is checked in every build (another process
//! may have written it): a length that does not fit the ring, or padding that does not end at
//! the end of the slot array, marks the ring corrupt in its header, and both ends refuse it
//! from then on ([`Corrupt`]).
//!
//! The algorithm is written against [`RingMemory`], implemented by [`Region`] (a mapping:
//! process-local heap memory, or a shared-memory file) and, under `--cfg loom`, by a model
//! with the same slot layout (the sequence word is the first word of each slot, payload
//! written over it in continuation slots) whose bytes are checked cells, so `loom` explores
//! the interleavings.

#[cfg(not(loom))]
mod region;

#[cfg(loom)]
pub mod model;

#[cfg(not(loom))]
pub use region::{
    region_len, Region, RingHeader, HEADER_PAGE, MAX_CAPACITY, RING_MAGIC, RING_VERSION,
};

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes per slot: one cache line.
pub const SLOT_SIZE: usize = 64;
/// Bytes of the slot header at the start of a message's first slot.
pub const SLOT_HEADER: usize = 16;
/// Payload bytes that fit in the first slot.
pub const INLINE_PAYLOAD: usize = SLOT_SIZE - SLOT_HEADER;
/// `kind` reserved for padding messages.
pub const KIND_PAD: u8 = 0xff;
/// Bit of the ring's state word: a consumer found a slot header that cannot be right; both
/// ends refuse the ring from then on.
pub const STATE_CORRUPT: u32 = 1;

/// A ring whose shared memory held something the protocol cannot have written (a length past
/// the ring, padding that does not end at the end of the slots): another process wrote it,
/// or memory was damaged. The ring is marked corrupt in its header and both ends refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt {
    /// What was wrong.
    pub reason: &'static str,
    /// Ring position of the slot where it was found.
    pub position: u64,
}

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "corrupt ring at position {}: {}",
            self.position, self.reason
        )
    }
}

impl From<Corrupt> for crate::error::Error {
    fn from(c: Corrupt) -> crate::error::Error {
        crate::error::Error::MalformedFrame(c.to_string())
    }
}

/// What travels in the slot header beside the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotHeader {
    /// Payload length in bytes.
    pub len: u32,
    /// Message kind (any value but [`KIND_PAD`]).
    pub kind: u8,
    /// Kind-specific flags.
    pub flags: u8,
    /// Kind-specific 16 bits (lane, priority, ...).
    pub aux: u16,
    /// Dense index of the sending node.
    pub src: u32,
}

impl SlotHeader {
    fn encode(&self) -> [u8; SLOT_HEADER - 4] {
        let mut b = [0u8; SLOT_HEADER - 4];
        b[0..4].copy_from_slice(&self.len.to_le_bytes());
        b[4] = self.kind;
        b[5] = self.flags;
        b[6..8].copy_from_slice(&self.aux.to_le_bytes());
        b[8..12].copy_from_slice(&self.src.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> SlotHeader {
        SlotHeader {
            len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            kind: b[4],
            flags: b[5],
            aux: u16::from_le_bytes([b[6], b[7]]),
            src: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// Slots a payload of `len` bytes occupies.
#[inline]
pub fn slots_for(len: usize) -> usize {
    1 + len.saturating_sub(INLINE_PAYLOAD).div_ceil(SLOT_SIZE)
}

/// Largest payload a ring of `capacity` slots accepts: half the ring, so a message and the
/// padding before it always fit in an empty ring.
pub fn max_payload(capacity: usize) -> usize {
    INLINE_PAYLOAD + (capacity / 2 - 1) * SLOT_SIZE
}

/// Storage of a ring: slot memory, sequence words and the two shared positions.
///
/// # Safety
/// Implementations must return, for every slot index below `capacity()`, the same atomic
/// each call, and `write`/`read` must access exactly the bytes named, inside the slot array.
pub unsafe trait RingMemory {
    /// Number of slots (a power of two, at least 2).
    fn capacity(&self) -> usize;
    /// The sequence word of slot `slot` (the first 4 bytes of the slot in a [`Region`]).
    fn seq(&self, slot: usize) -> &AtomicU32;
    /// The consumer's published head position.
    fn head(&self) -> &AtomicU64;
    /// The producer's tail position, published per batch for observers (not for sync).
    fn tail(&self) -> &AtomicU64;
    /// The ring's state word ([`STATE_CORRUPT`]).
    fn state(&self) -> &AtomicU32;
    /// Copies `data` to byte `offset` of slot `slot` onwards, through following slots.
    ///
    /// # Safety
    /// The caller is the ring's only producer and the ring protocol gives it these bytes:
    /// they belong to slots the consumer has released and not yet been published again.
    /// `slot * SLOT_SIZE + offset + data.len()` is within the slot array.
    unsafe fn write(&self, slot: usize, offset: usize, data: &[u8]);
    /// Calls `f` with `len` bytes from byte `offset` of slot `slot` onwards.
    ///
    /// # Safety
    /// The caller is the ring's only consumer and these bytes were published to it (the
    /// sequence word was observed with Acquire) and not yet released; the range is within
    /// the slot array.
    unsafe fn read<R>(
        &self,
        slot: usize,
        offset: usize,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R;
}

/// Why a push failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Not enough free slots now; retry after the consumer makes progress.
    Full,
    /// The payload exceeds [`max_payload`]: fragment it or send a descriptor.
    TooLarge,
    /// The consumer found the ring corrupt: it reads nothing more from it.
    Corrupt,
}

/// The producing end of a ring. Not `Clone`: one producer per ring.
#[derive(Debug)]
pub struct Producer<M: RingMemory> {
    mem: Arc<M>,
    /// Next position to write. Invariant: `tail - cached_head <= capacity`.
    tail: u64,
    /// Last head position read from the consumer (a lower bound of the real one).
    cached_head: u64,
    mask: u64,
    capacity: u64,
}

/// The consuming end of a ring. Not `Clone`: one consumer per ring.
#[derive(Debug)]
pub struct Consumer<M: RingMemory> {
    mem: Arc<M>,
    /// Next position to read (always a message boundary).
    head: u64,
    /// Last head position stored for the producer.
    published: u64,
    publish_every: u64,
    mask: u64,
    /// Set once a slot header failed its checks: nothing more is read.
    corrupt: Option<Corrupt>,
}

/// Splits a fresh ring into its two ends. The memory must be zeroed (a new ring).
pub fn split<M: RingMemory>(mem: Arc<M>) -> (Producer<M>, Consumer<M>) {
    let cap = mem.capacity() as u64;
    debug_assert!(cap.is_power_of_two() && cap >= 2);
    let mut head = mem.head().load(Ordering::Acquire);
    let mut tail = mem.tail().load(Ordering::Acquire);
    // Positions come from shared memory. No ring gets near 2^62 slots in a lifetime, and
    // the producer's tail is never more than a ring ahead of the published head.
    let plausible = head < 1 << 62 && tail < 1 << 62 && tail.abs_diff(head) <= cap;
    let mut corrupt = None;
    if !plausible {
        mem.state().fetch_or(STATE_CORRUPT, Ordering::Relaxed);
        corrupt = Some(Corrupt {
            reason: "positions in the ring header are not ones a ring can reach",
            position: head,
        });
        // A producer that sees no free slot asks the header, which says corrupt.
        (head, tail) = (0, cap);
    }
    (
        Producer {
            mem: mem.clone(),
            tail,
            cached_head: head.min(tail),
            mask: cap - 1,
            capacity: cap,
        },
        Consumer {
            mem,
            head,
            published: head,
            publish_every: (cap / 4).max(1),
            mask: cap - 1,
            corrupt,
        },
    )
}

impl<M: RingMemory> Producer<M> {
    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Free slots as last seen (a lower bound).
    fn free(&self) -> u64 {
        self.capacity - (self.tail - self.cached_head)
    }

    /// Whether a message of `len` payload bytes fits now (refreshes the consumer's head when
    /// the cached copy says no). A `true` holds until this producer pushes.
    pub fn has_room(&mut self, len: usize) -> bool {
        len <= max_payload(self.capacity as usize) && self.reserve(len).is_ok()
    }

    /// Whether the consumer marked the ring corrupt (one load of the header's state word).
    pub fn is_corrupt(&self) -> bool {
        self.mem.state().load(Ordering::Relaxed) & STATE_CORRUPT != 0
    }

    /// The padding slots and message slots a message of `len` bytes takes at the tail, if
    /// they are free now (the consumer's head, and whether it marked the ring corrupt, are
    /// read again only when the cached copy says they are not).
    #[inline]
    fn reserve(&mut self, len: usize) -> Result<(u64, u64), PushError> {
        let n = slots_for(len) as u64;
        let idx = self.tail & self.mask;
        let pad = if idx + n > self.capacity {
            self.capacity - idx
        } else {
            0
        };
        if self.free() < pad + n {
            if self.is_corrupt() {
                return Err(PushError::Corrupt);
            }
            let head = self.mem.head().load(Ordering::Acquire);
            // The head comes from shared memory: one past the tail, or more than a ring
            // behind it, is not a position this consumer can have published.
            if head > self.tail || self.tail - head > self.capacity {
                return Err(PushError::Corrupt);
            }
            self.cached_head = self.cached_head.max(head);
            if self.free() < pad + n {
                return Err(PushError::Full);
            }
        }
        Ok((pad, n))
    }

    /// Publishes one message whose payload is the concatenation of `parts`.
    ///
    /// Steady state: no allocation, no syscall; one Acquire load of the consumer's head only
    /// when the cached copy says the ring is full.
    #[inline]
    pub fn try_push(&mut self, header: SlotHeader, parts: &[&[u8]]) -> Result<(), PushError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        debug_assert!(header.kind != KIND_PAD);
        if len > max_payload(self.capacity as usize) || len > u32::MAX as usize {
            return Err(PushError::TooLarge);
        }
        let (pad, n) = self.reserve(len)?;
        let idx = self.tail & self.mask;
        if pad > 0 {
            let h = SlotHeader {
                len: pad as u32,
                kind: KIND_PAD,
                ..SlotHeader::default()
            };
            // SAFETY: slots tail..tail+pad are free (checked against the Acquire-loaded head
            // above) and inside the array (idx + pad == capacity).
            unsafe { self.mem.write(idx as usize, 4, &h.encode()) };
            self.mem
                .seq(idx as usize)
                .store(seq_of(self.tail), Ordering::Release);
            self.tail += pad;
        }
        let idx = (self.tail & self.mask) as usize;
        let h = SlotHeader {
            len: len as u32,
            ..header
        };
        let mut offset = SLOT_HEADER;
        for p in parts {
            // SAFETY: slots tail..tail+n are free (checked above) and contiguous in the array
            // (idx + n <= capacity after padding); the parts add up to len, which fits in n
            // slots after the header.
            unsafe { self.mem.write(idx, offset, p) };
            offset += p.len();
        }
        // SAFETY: as above, bytes 4..16 of the first slot.
        unsafe { self.mem.write(idx, 4, &h.encode()) };
        // Sync point "publish": everything written above happens-before the consumer's
        // Acquire load that sees this value.
        self.mem
            .seq(idx)
            .store(seq_of(self.tail), Ordering::Release);
        self.tail += n;
        self.mem.tail().store(self.tail, Ordering::Relaxed);
        Ok(())
    }
}

/// The sequence word that marks position `pos` as published: never the zero of a fresh
/// ring at `pos < capacity`, never the value left by the previous lap.
#[inline]
fn seq_of(pos: u64) -> u32 {
    (pos as u32).wrapping_add(1)
}

impl<M: RingMemory> Consumer<M> {
    /// Reads the next message in place: `f` gets its header and payload. `Ok(None)` when the
    /// ring is empty (then pending progress is published to the producer); `Err` once a slot
    /// header failed its checks (the ring is marked corrupt and nothing more is read).
    ///
    /// Steady state: one Acquire load of the slot's sequence word per poll; the head is
    /// stored for the producer once every `capacity / 4` slots.
    #[inline]
    pub fn try_pop<R>(
        &mut self,
        f: impl FnOnce(SlotHeader, &[u8]) -> R,
    ) -> Result<Option<R>, Corrupt> {
        if let Some(c) = self.corrupt {
            return Err(c);
        }
        let capacity = self.mask as usize + 1;
        loop {
            let idx = (self.head & self.mask) as usize;
            // Sync point "publish" (consumer side).
            if self.mem.seq(idx).load(Ordering::Acquire) != seq_of(self.head) {
                self.publish();
                return Ok(None);
            }
            // SAFETY: the slot was published (Acquire above) and is not released until head
            // is stored past it.
            let h = unsafe { self.mem.read(idx, 4, SLOT_HEADER - 4, SlotHeader::decode) };
            let len = h.len as usize;
            if h.kind == KIND_PAD {
                // The producer pads exactly to the end of the slot array.
                if len != capacity - idx {
                    return Err(self.poison("padding does not end at the end of the ring"));
                }
                self.release(idx, len);
                continue;
            }
            let n = slots_for(len);
            if len > max_payload(capacity) || idx + n > capacity {
                return Err(self.poison("message length runs past the ring"));
            }
            // SAFETY: the message's slots were published together with its first slot, and
            // they lie inside the slot array (checked above).
            let r = unsafe { self.mem.read(idx, SLOT_HEADER, len, |p| f(h, p)) };
            self.release(idx, n);
            return Ok(Some(r));
        }
    }

    /// Marks the ring corrupt (in its header too, so the producer stops) and stops reading.
    #[cold]
    fn poison(&mut self, reason: &'static str) -> Corrupt {
        let c = Corrupt {
            reason,
            position: self.head,
        };
        self.mem.state().fetch_or(STATE_CORRUPT, Ordering::Relaxed);
        self.corrupt = Some(c);
        c
    }

    /// Whether this consumer found the ring corrupt.
    pub fn corruption(&self) -> Option<Corrupt> {
        self.corrupt
    }

    /// Gives back the `n` slots from `idx`: zeroes the first word of each slot after the
    /// first (a continuation word is payload and must not look like a sequence next lap),
    /// then advances the head. The zeroing happens-before the producer reuses the slots
    /// through the Release store of the head.
    #[inline]
    fn release(&mut self, idx: usize, n: usize) {
        for s in idx + 1..idx + n {
            self.mem.seq(s).store(0, Ordering::Relaxed);
        }
        self.advance(n as u64);
    }

    fn advance(&mut self, n: u64) {
        self.head += n;
        if self.head - self.published >= self.publish_every {
            self.publish();
        }
    }

    /// Stores the head for the producer now (sync point "reclaim": the reads of released
    /// slots happen-before the producer's Acquire load that sees it).
    pub fn publish(&mut self) {
        if self.published != self.head {
            self.mem.head().store(self.head, Ordering::Release);
            self.published = self.head;
        }
    }

    /// Whether a message is waiting (one Acquire load). `false` for a corrupt ring.
    pub fn has_message(&self) -> bool {
        let idx = (self.head & self.mask) as usize;
        self.corrupt.is_none() && self.mem.seq(idx).load(Ordering::Acquire) == seq_of(self.head)
    }

    /// Whether a message is waiting; when none is, the head is stored for the producer (a
    /// caller that polls only rings with messages would otherwise never release a drained
    /// ring's last slots, and its producer could stall on a stale view of free space).
    #[inline]
    pub fn ready(&mut self) -> bool {
        if self.has_message() {
            return true;
        }
        self.publish();
        false
    }
}

impl<M: RingMemory> Drop for Consumer<M> {
    /// A consumer opened later on the same ring starts where this one stopped, not at the
    /// last lazily published head (which would deliver up to a quarter ring again).
    fn drop(&mut self) {
        if self.corrupt.is_none() {
            self.publish();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
