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
//! message nobody sent). The producer therefore clears the first word of the slot right after
//! each message (the next boundary) before it publishes the message: it reserves that slot
//! with the message, so it is free and is not the slot the consumer polls. When the consumer
//! polls a boundary, its word holds 0 or the sequence the producer stored for this lap. (The
//! consumer clearing what it frees, as Aeron does, would work too, but makes the consumer write
//! every line of a message it may never read: 4 KiB one-way went from 80 to 145 ns.)
//!
//! Everything the consumer reads from a slot header is checked in every build (another process
//! may have written it): a length that does not fit the ring, or padding that does not end at
//! the end of the slot array, marks the ring corrupt in its header, and both ends refuse it
//! from then on ([`Corrupt`]).
//!
//! Probes: now and then (every millisecond of its engine's clock) a producer that has
//! messages waiting in the ring marks the position after its last one, with the time, in the
//! header's [`Probe`]; on a ring whose producer keeps no clock (an endpoint's), the engine
//! consuming it marks the producer's published tail instead. The consumer, when it publishes a head at or past that position,
//! stores how long it took and clears the mark. That is the time the consumer needed to take
//! what was queued at the mark: the queueing delay of the ring, measured without a clock read
//! per message (the consumer's check is one load per published head). Learned routing reads
//! it, with the traffic counts, as samples of the link.
//!
//! The algorithm is written against [`RingMemory`], implemented by [`Region`] (a mapping:
//! process-local heap memory, or a shared-memory file) and, under `--cfg loom`, by a model
//! with the same slot layout (the sequence word is the first word of each slot, payload
//! written over it in continuation slots) whose bytes are checked cells, so `loom` explores
//! the interleavings.

mod doorstep;
mod probe;
#[cfg(not(loom))]
mod region;

#[cfg(loom)]
pub mod model;

#[cfg(not(loom))]
pub use region::{
    region_len, Region, RingHeader, HEADER_PAGE, MAX_CAPACITY, RING_MAGIC, RING_VERSION,
};

pub use doorstep::Doorstep;
use probe::complete_probe;
pub use probe::{Probe, MAX_PROBE_DELAY_NS};

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

/// Largest payload a ring of `capacity` slots accepts: half the ring, so a message, the
/// padding before it and the boundary slot after it always fit in an empty ring.
pub const fn max_payload(capacity: usize) -> usize {
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
    /// Messages and payload bytes published, for observers (not for sync).
    fn traffic(&self) -> (&AtomicU64, &AtomicU64);
    /// The ring's state word ([`STATE_CORRUPT`]).
    fn state(&self) -> &AtomicU32;
    /// The ring's timing probe, when its memory has one (see the module documentation).
    fn probe(&self) -> Option<&Probe> {
        None
    }
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
    /// One bit per slot: set while the slot's first word may hold payload (it was last
    /// written as a continuation slot, or this producer does not know). Only such a word must
    /// be cleared when it becomes a message boundary; a boundary that held a sequence needs
    /// no store, so a stream of one-slot messages costs no extra cache line.
    dirty: Box<[u64]>,
    /// Messages and payload bytes published (the header's counts, kept here too).
    messages: u64,
    bytes: u64,
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
    /// Largest payload a producer of this ring writes ([`max_payload`]).
    max_len: usize,
}

/// Splits a ring into its two ends: a new (zeroed) ring, or one opened from a file, whose
/// positions are checked (a ring whose header holds impossible ones is poisoned).
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
            // Unknown contents: every word may be payload until this producer writes it.
            dirty: vec![u64::MAX; (cap as usize).div_ceil(64)].into_boxed_slice(),
            messages: mem.traffic().0.load(Ordering::Relaxed),
            bytes: mem.traffic().1.load(Ordering::Relaxed),
        },
        Consumer {
            mem,
            head,
            published: head,
            publish_every: (cap / 4).max(1),
            mask: cap - 1,
            corrupt,
            max_len: max_payload(cap as usize),
        },
    )
}

impl<M: RingMemory> Producer<M> {
    /// What this producer published: (messages, payload bytes), and the slots the consumer
    /// has not released yet.
    pub fn traffic(&self) -> (u64, u64, u64) {
        let head = self.mem.head().load(Ordering::Acquire);
        (self.messages, self.bytes, self.tail.saturating_sub(head))
    }

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

    /// Whether the consumer took every message pushed, as far as it published (it stores
    /// its head lazily, so a `false` may be stale). A head that cannot be right (ahead of
    /// the tail, or a ring behind it) reads as not drained.
    pub fn is_drained(&mut self) -> bool {
        if self.cached_head != self.tail {
            self.refresh_head();
        }
        self.cached_head == self.tail
    }

    /// Reads the consumer's head into the cached copy; `false` (and the copy unchanged) for
    /// a head that cannot be right: it comes from shared memory, and one past the tail, or
    /// more than a ring behind it, is not a position this consumer can have published.
    fn refresh_head(&mut self) -> bool {
        let head = self.mem.head().load(Ordering::Acquire);
        if head > self.tail || self.tail - head > self.capacity {
            return false;
        }
        self.cached_head = self.cached_head.max(head);
        true
    }

    /// Records that slots `idx+1..idx+n` now start with payload. (A first slot keeps its bit:
    /// at worst its word is cleared once more than needed, when it next becomes a boundary.)
    #[inline]
    fn mark_continuations(&mut self, idx: usize, n: usize) {
        let (mut s, end) = (idx + 1, idx + n);
        while s < end {
            let (w, b) = (s / 64, s % 64);
            let k = (64 - b).min(end - s);
            let bits = if k == 64 {
                u64::MAX
            } else {
                ((1u64 << k) - 1) << b
            };
            self.dirty[w] |= bits;
            s += k;
        }
    }

    /// Clears the first word of slot `idx` (a boundary the consumer will poll next) if it may
    /// hold payload. The slot is free and is not the one the consumer polls now.
    #[inline]
    fn clear_boundary(&mut self, idx: usize) {
        let (w, b) = (idx / 64, 1u64 << (idx % 64));
        if self.dirty[w] & b != 0 {
            self.mem.seq(idx).store(0, Ordering::Relaxed);
            self.dirty[w] &= !b;
        }
    }

    /// Counts `bytes` more as carried by the last message: the data of a buffer it hands
    /// over by descriptor, which observers count as the link's traffic.
    pub fn count_carried(&mut self, bytes: u64) {
        self.bytes = self.bytes.wrapping_add(bytes);
        self.mem.traffic().1.store(self.bytes, Ordering::Relaxed);
    }

    /// The ring's memory (for observers of its header).
    pub(crate) fn memory(&self) -> &Arc<M> {
        &self.mem
    }

    /// Whether the consumer marked the ring corrupt (one load of the header's state word).
    pub fn is_corrupt(&self) -> bool {
        self.mem.state().load(Ordering::Relaxed) & STATE_CORRUPT != 0
    }

    /// The padding slots and message slots a message of `len` bytes takes at the tail, if
    /// they are free now together with the slot after them, whose first word the push clears
    /// (the consumer's head, and whether it marked the ring corrupt, are read again only when
    /// the cached copy says they are not).
    #[inline]
    fn reserve(&mut self, len: usize) -> Result<(u64, u64), PushError> {
        let n = slots_for(len) as u64;
        let idx = self.tail & self.mask;
        let pad = if idx + n > self.capacity {
            self.capacity - idx
        } else {
            0
        };
        if self.free() < pad + n + 1 {
            if self.is_corrupt() || !self.refresh_head() {
                return Err(PushError::Corrupt);
            }
            if self.free() < pad + n + 1 {
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
            // Slot 0 is the boundary after the padding (free: reserved above).
            self.clear_boundary(0);
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
        // The next message boundary: the consumer polls its first word as soon as it has
        // read this message, and an earlier lap may have left payload there. Clearing it
        // before the publish below means the consumer sees 0 there, or the next message.
        // The slot is free (reserved above) and never the one the consumer polls now.
        if n > 1 {
            self.mark_continuations(idx, n as usize);
        }
        self.clear_boundary(((self.tail + n) & self.mask) as usize);
        // Sync point "publish": everything written above happens-before the consumer's
        // Acquire load that sees this value.
        self.mem
            .seq(idx)
            .store(seq_of(self.tail), Ordering::Release);
        self.tail += n;
        self.mem.tail().store(self.tail, Ordering::Relaxed);
        // Counted by the only producer: plain stores into the line just written.
        // Wrapping: they started from a header another process may have written.
        self.messages = self.messages.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(len as u64);
        let (messages, bytes) = self.mem.traffic();
        messages.store(self.messages, Ordering::Relaxed);
        bytes.store(self.bytes, Ordering::Relaxed);
        Ok(())
    }
}

/// The sequence word that marks position `pos` as published: never the zero of a fresh
/// ring at `pos < capacity`, never the value left by the previous lap.
#[inline]
fn seq_of(pos: u64) -> u32 {
    (pos as u32).wrapping_add(1)
}

/// Whether the slot of position `pos` (in a ring of `mask + 1` slots) holds the message of
/// that position: its sequence word says so (Acquire: the message's bytes are visible).
#[inline]
fn holds<M: RingMemory>(mem: &M, mask: u64, pos: u64) -> bool {
    mem.seq((pos & mask) as usize).load(Ordering::Acquire) == seq_of(pos)
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
        self.try_pop_or_leave(|h, d| (f(h, d), true))
    }

    /// [`try_pop`](Self::try_pop) for a reader that may not be able to take the message now:
    /// `f` answers its result and whether it took the message. One it did not take stays the
    /// ring's next, to be read again by a later call.
    #[inline]
    pub fn try_pop_or_leave<R>(
        &mut self,
        f: impl FnOnce(SlotHeader, &[u8]) -> (R, bool),
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
                self.advance(len as u64);
                continue;
            }
            let n = slots_for(len);
            if len > self.max_len || idx + n > capacity {
                return Err(self.poison("message length runs past the ring"));
            }
            // SAFETY: the message's slots were published together with its first slot, and
            // they lie inside the slot array (checked above).
            let (r, taken) = unsafe { self.mem.read(idx, SLOT_HEADER, len, |p| f(h, p)) };
            if taken {
                self.advance(n as u64);
            }
            return Ok(Some(r));
        }
    }

    /// The slot header of the next message, left in the ring (`None` when none is waiting or
    /// the ring is corrupt): for a reader that leaves some messages to another. Padding
    /// before it is taken; its header is checked as [`try_pop`](Self::try_pop) checks it.
    pub fn peek(&mut self) -> Option<SlotHeader> {
        if self.corrupt.is_some() {
            return None;
        }
        let capacity = self.mask as usize + 1;
        loop {
            let idx = (self.head & self.mask) as usize;
            // Sync point "publish" (consumer side), as in `try_pop`.
            if self.mem.seq(idx).load(Ordering::Acquire) != seq_of(self.head) {
                return None;
            }
            // SAFETY: the slot was published (Acquire above) and is not released until head
            // is stored past it.
            let h = unsafe { self.mem.read(idx, 4, SLOT_HEADER - 4, SlotHeader::decode) };
            if h.kind != KIND_PAD {
                return Some(h);
            }
            if h.len as usize != capacity - idx {
                self.poison("padding does not end at the end of the ring");
                return None;
            }
            self.advance(h.len as u64);
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

    /// Marks the ring corrupt for a reason found above the ring (a frame its producer
    /// cannot have written): as a bad slot header does, both ends refuse it from then on.
    pub fn mark_corrupt(&mut self, reason: &'static str) -> Corrupt {
        self.poison(reason)
    }

    /// Whether this consumer found the ring corrupt.
    pub fn corruption(&self) -> Option<Corrupt> {
        self.corrupt
    }

    /// Gives back `n` slots (the consumer writes nothing into them: a payload it did not
    /// read costs it no cache line).
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
            if let Some(p) = self.mem.probe() {
                let at = p.position.load(Ordering::Acquire);
                if at != 0 && self.head >= at {
                    complete_probe(p);
                } else if at > self.head.saturating_add(self.mask + 1) {
                    // More than a ring ahead: no producer marked it. Cleared, not measured.
                    p.position.store(0, Ordering::Release);
                }
            }
        }
    }

    /// The ring's memory (for observers of its header).
    pub(crate) fn memory(&self) -> &Arc<M> {
        &self.mem
    }

    /// Whether nothing else holds the ring's memory (for a ring in process memory: its
    /// producer was dropped, and nobody will write to it again).
    pub fn is_alone(&self) -> bool {
        // `strong_count` is a relaxed load: the fence orders the producer's last writes
        // (before its drop released its reference) before what the caller reads next.
        let alone = Arc::strong_count(&self.mem) == 1;
        if alone {
            std::sync::atomic::fence(Ordering::Acquire);
        }
        alone
    }

    /// Whether a message is waiting (one Acquire load). `false` for a corrupt ring.
    pub fn has_message(&self) -> bool {
        self.corrupt.is_none() && holds(&*self.mem, self.mask, self.head)
    }

    /// The position the consumer reads next.
    #[inline]
    pub fn position(&self) -> u64 {
        self.head
    }

    /// A view of the ring's slots for a thread that does not hold the consumer (see
    /// [`Doorstep`]).
    pub fn doorstep(&self) -> Doorstep<M> {
        Doorstep {
            mem: self.mem.clone(),
            mask: self.mask,
        }
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
