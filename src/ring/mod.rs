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
//!   slots, lazily (every `capacity / 8` slots, or when it finds the ring empty); the
//!   producer loads it with Acquire only when its cached copy says the ring is full.
//!
//! The algorithm is written against [`RingMemory`], implemented by [`Region`] (a mapping:
//! process-local heap memory, or a shared-memory file) and, under `--cfg loom`, by a model
//! whose every slot is a checked cell, so `loom` explores the interleavings.

#[cfg(not(loom))]
mod region;

#[cfg(loom)]
pub mod model;

#[cfg(not(loom))]
pub use region::{region_len, Region, RingHeader, HEADER_PAGE, MAX_CAPACITY, RING_MAGIC};

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
}

/// Splits a fresh ring into its two ends. The memory must be zeroed (a new ring).
pub fn split<M: RingMemory>(mem: Arc<M>) -> (Producer<M>, Consumer<M>) {
    let cap = mem.capacity() as u64;
    debug_assert!(cap.is_power_of_two() && cap >= 2);
    let head = mem.head().load(Ordering::Acquire);
    let tail = mem.tail().load(Ordering::Acquire);
    (
        Producer {
            mem: mem.clone(),
            tail,
            cached_head: head,
            mask: cap - 1,
            capacity: cap,
        },
        Consumer {
            mem,
            head,
            published: head,
            publish_every: (cap / 8).max(1),
            mask: cap - 1,
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
        len <= max_payload(self.capacity as usize) && self.reserve(len).is_some()
    }

    /// The padding slots and message slots a message of `len` bytes takes at the tail, if
    /// they are free now (the consumer's head is read again only when the cached copy says
    /// they are not).
    #[inline]
    fn reserve(&mut self, len: usize) -> Option<(u64, u64)> {
        let n = slots_for(len) as u64;
        let idx = self.tail & self.mask;
        let pad = if idx + n > self.capacity {
            self.capacity - idx
        } else {
            0
        };
        if self.free() < pad + n {
            self.cached_head = self.mem.head().load(Ordering::Acquire);
            if self.free() < pad + n {
                return None;
            }
        }
        Some((pad, n))
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
        let Some((pad, n)) = self.reserve(len) else {
            return Err(PushError::Full);
        };
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
    /// Reads the next message in place: `f` gets its header and payload. `None` when the ring
    /// is empty (then pending progress is published to the producer).
    ///
    /// Steady state: one Acquire load of the slot's sequence word per poll; the head is
    /// stored for the producer once every `capacity / 8` slots.
    #[inline]
    pub fn try_pop<R>(&mut self, f: impl FnOnce(SlotHeader, &[u8]) -> R) -> Option<R> {
        loop {
            let idx = (self.head & self.mask) as usize;
            // Sync point "publish" (consumer side).
            if self.mem.seq(idx).load(Ordering::Acquire) != seq_of(self.head) {
                self.publish();
                return None;
            }
            // SAFETY: the slot was published (Acquire above) and is not released until head
            // is stored past it.
            let h = unsafe { self.mem.read(idx, 4, SLOT_HEADER - 4, SlotHeader::decode) };
            if h.kind == KIND_PAD {
                self.advance(h.len as u64);
                continue;
            }
            let len = h.len as usize;
            debug_assert!(idx + slots_for(len) <= self.mask as usize + 1);
            // SAFETY: the message's slots were published together with its first slot.
            let r = unsafe { self.mem.read(idx, SLOT_HEADER, len, |p| f(h, p)) };
            self.advance(slots_for(len) as u64);
            return Some(r);
        }
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

    /// Whether a message is waiting (one Acquire load).
    pub fn has_message(&self) -> bool {
        let idx = (self.head & self.mask) as usize;
        self.mem.seq(idx).load(Ordering::Acquire) == seq_of(self.head)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ring(cap: usize) -> (Producer<Region>, Consumer<Region>) {
        split(Arc::new(Region::heap(cap).unwrap()))
    }

    #[test]
    fn slot_arithmetic() {
        assert_eq!(slots_for(0), 1);
        assert_eq!(slots_for(48), 1);
        assert_eq!(slots_for(49), 2);
        assert_eq!(slots_for(48 + 64), 2);
        assert_eq!(slots_for(48 + 65), 3);
        assert_eq!(max_payload(8), 48 + 3 * 64);
    }

    #[test]
    fn messages_arrive_in_order_across_wraps_and_padding() {
        let (mut p, mut c) = ring(16);
        let mut expect = std::collections::VecDeque::new();
        let mut next = 0u32;
        for round in 0..2000usize {
            let len = (round * 37) % (max_payload(16) + 1);
            let payload: Vec<u8> = (0..len).map(|i| (i as u32 ^ next) as u8).collect();
            let h = SlotHeader {
                kind: 1,
                flags: 2,
                aux: 3,
                src: next,
                len: 0,
            };
            match p.try_push(h, &[&payload[..len / 2], &payload[len / 2..]]) {
                Ok(()) => {
                    expect.push_back((next, payload));
                    next += 1;
                }
                Err(PushError::Full) => {
                    while let Some((src, data)) = c.try_pop(|h, d| (h.src, d.to_vec())) {
                        let (e_src, e_data) = expect.pop_front().unwrap();
                        assert_eq!((src, &data), (e_src, &e_data));
                    }
                }
                Err(PushError::TooLarge) => unreachable!("len within max_payload"),
            }
        }
        while let Some((src, data)) = c.try_pop(|h, d| (h.src, d.to_vec())) {
            let (e_src, e_data) = expect.pop_front().unwrap();
            assert_eq!((src, &data), (e_src, &e_data));
        }
        assert!(expect.is_empty());
        let big = vec![0u8; max_payload(16) + 1];
        assert_eq!(
            p.try_push(SlotHeader::default(), &[&big]),
            Err(PushError::TooLarge)
        );
    }

    #[test]
    fn two_threads_stream_without_loss() {
        let (mut p, mut c) = ring(64);
        const N: u32 = 200_000;
        let t = std::thread::spawn(move || {
            for i in 0..N {
                let len = (i % 300) as usize;
                let payload = vec![i as u8; len];
                let h = SlotHeader {
                    kind: 7,
                    src: i,
                    ..Default::default()
                };
                while p.try_push(h, &[&payload]) == Err(PushError::Full) {
                    std::hint::spin_loop();
                }
            }
        });
        let mut i = 0u32;
        while i < N {
            if let Some(ok) = c.try_pop(|h, d| {
                h.src == i
                    && h.kind == 7
                    && d.len() == (i % 300) as usize
                    && d.iter().all(|&b| b == i as u8)
            }) {
                assert!(ok, "message {i} corrupted");
                i += 1;
            }
        }
        t.join().unwrap();
        assert!(!c.has_message());
    }
}
