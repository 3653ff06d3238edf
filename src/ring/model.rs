//! Ring memory for `loom` with the slot layout of [`super::Region`]: each slot's first word
//! is its sequence word (a loom atomic) and continuation slots carry payload in that same
//! word, as they do in shared memory; the other 60 bytes are a loom cell, so a data race on a
//! payload byte is reported, and a consumer that read a stale payload word as a sequence
//! would deliver a message nobody sent, which the tests check for.

use super::{RingMemory, SLOT_SIZE};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::cell::UnsafeCell;

const WORD: usize = 4;

/// One slot: the word the consumer polls, then the rest of the line.
#[derive(Debug)]
struct Slot {
    word: AtomicU32,
    rest: UnsafeCell<[u8; SLOT_SIZE - WORD]>,
}

/// A ring of `capacity` slots for model checking.
#[derive(Debug)]
pub struct Model {
    slots: Vec<Slot>,
    head: AtomicU64,
    tail: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    state: AtomicU32,
}

impl Model {
    /// A zeroed ring.
    pub fn new(capacity: usize) -> Model {
        Model {
            slots: (0..capacity)
                .map(|_| Slot {
                    word: AtomicU32::new(0),
                    rest: UnsafeCell::new([0; SLOT_SIZE - WORD]),
                })
                .collect(),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            state: AtomicU32::new(0),
        }
    }
}

// SAFETY: one atomic per slot; byte ranges are split over the slots they cover, the first word
// of a slot going through its atomic exactly as plain bytes overlay it in a Region.
unsafe impl RingMemory for Model {
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn seq(&self, slot: usize) -> &AtomicU32 {
        &self.slots[slot].word
    }

    fn head(&self) -> &AtomicU64 {
        &self.head
    }

    fn tail(&self) -> &AtomicU64 {
        &self.tail
    }

    fn traffic(&self) -> (&AtomicU64, &AtomicU64) {
        (&self.messages, &self.bytes)
    }

    fn state(&self) -> &AtomicU32 {
        &self.state
    }

    unsafe fn write(&self, slot: usize, offset: usize, data: &[u8]) {
        let mut at = slot * SLOT_SIZE + offset;
        let mut rest = data;
        while !rest.is_empty() {
            let (s, o) = (at / SLOT_SIZE, at % SLOT_SIZE);
            let n = if o < WORD {
                // Payload over the sequence word: only the producer writes these words.
                let n = rest.len().min(WORD - o);
                let w = &self.slots[s].word;
                let mut b = w.load(Ordering::Relaxed).to_le_bytes();
                b[o..o + n].copy_from_slice(&rest[..n]);
                w.store(u32::from_le_bytes(b), Ordering::Relaxed);
                n
            } else {
                let n = rest.len().min(SLOT_SIZE - o);
                let r = o - WORD;
                // SAFETY: loom checks that no other access to this cell is concurrent.
                self.slots[s]
                    .rest
                    .with_mut(|p| unsafe { (&mut *p)[r..r + n].copy_from_slice(&rest[..n]) });
                n
            };
            rest = &rest[n..];
            at += n;
        }
    }

    unsafe fn read<R>(
        &self,
        slot: usize,
        offset: usize,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        let mut out = Vec::with_capacity(len);
        let mut at = slot * SLOT_SIZE + offset;
        while out.len() < len {
            let (s, o) = (at / SLOT_SIZE, at % SLOT_SIZE);
            let n = if o < WORD {
                let n = (len - out.len()).min(WORD - o);
                let b = self.slots[s].word.load(Ordering::Relaxed).to_le_bytes();
                out.extend_from_slice(&b[o..o + n]);
                n
            } else {
                let n = (len - out.len()).min(SLOT_SIZE - o);
                let r = o - WORD;
                // SAFETY: loom checks that no other access to this cell is concurrent.
                self.slots[s]
                    .rest
                    .with(|p| out.extend_from_slice(unsafe { &(&*p)[r..r + n] }));
                n
            };
            at += n;
        }
        f(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{split, PushError, SlotHeader, INLINE_PAYLOAD};
    use std::sync::Arc;

    /// Producer and consumer on a 4-slot ring, messages of 1 and 2 slots so that padding,
    /// wrap-around, lazy head publication and a full ring all occur; every interleaving loom
    /// finds delivers every message once, in order, intact.
    #[test]
    fn spsc_delivers_in_order_under_every_interleaving() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let (mut p, mut c) = split(Arc::new(Model::new(4)));
            const LENS: [usize; 4] = [60, 8, 100, 30];
            let t = loom::thread::spawn(move || {
                for (i, &len) in LENS.iter().enumerate() {
                    let payload = vec![i as u8 + 1; len];
                    let h = SlotHeader {
                        kind: 1,
                        src: i as u32,
                        ..Default::default()
                    };
                    loop {
                        match p.try_push(h, &[&payload]) {
                            Ok(()) => break,
                            Err(PushError::Full) => loom::thread::yield_now(),
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
            });
            let mut got = 0;
            while got < LENS.len() {
                let r = c
                    .try_pop(|h, d| (h.src, d.len(), d.iter().all(|&b| b == h.src as u8 + 1)))
                    .expect("not corrupt");
                match r {
                    Some((src, len, intact)) => {
                        assert_eq!(src as usize, got);
                        assert_eq!(len, LENS[got]);
                        assert!(intact);
                        got += 1;
                    }
                    None => loom::thread::yield_now(),
                }
            }
            t.join().unwrap();
        });
    }

    /// A 2-slot message whose continuation word holds the sequence that slot gets one lap
    /// later, then 1-slot messages: under every interleaving the consumer delivers exactly the
    /// messages sent (format v1 read the stale payload word as a message at position 5).
    #[test]
    fn stale_payload_words_are_never_messages() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let (mut p, mut c) = split(Arc::new(Model::new(4)));
            // Position 5 is slot 1 of the second lap; its sequence word would be 6.
            let mut first = vec![0u8; INLINE_PAYLOAD + 8];
            first[INLINE_PAYLOAD..INLINE_PAYLOAD + 4].copy_from_slice(&6u32.to_le_bytes());
            first[INLINE_PAYLOAD + 4] = 8;
            const SENT: usize = 4;
            let t = loom::thread::spawn(move || {
                for i in 0..SENT {
                    let payload = if i == 0 { first.clone() } else { vec![9u8; 8] };
                    let h = SlotHeader {
                        kind: 1,
                        src: i as u32,
                        ..Default::default()
                    };
                    loop {
                        match p.try_push(h, &[&payload]) {
                            Ok(()) => break,
                            Err(PushError::Full) => loom::thread::yield_now(),
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
            });
            let mut got = Vec::new();
            while got.len() < SENT {
                match c.try_pop(|h, _| h.src).expect("not corrupt") {
                    Some(src) => got.push(src),
                    None => loom::thread::yield_now(),
                }
            }
            t.join().unwrap();
            assert_eq!(got, [0, 1, 2, 3]);
            assert_eq!(c.try_pop(|h, _| h.src).expect("not corrupt"), None);
        });
    }
}
