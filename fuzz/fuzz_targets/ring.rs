//! The consuming end of a ring whose shared memory a hostile or crashed producer wrote: slot
//! bytes (sequence words, slot headers, payloads) and the head and tail positions come from
//! the input. Popping must never read outside the ring, loop forever or panic.
//!
//! Input: one control byte (bits 0-1: capacity 8 << n slots; bit 2: head and tail follow as
//! two little-endian u64), then the slot array's bytes from slot 0 on.
#![no_main]

use hyperfabric::ring::{self, Consumer, Region, RingMemory, SlotHeader, SLOT_HEADER, SLOT_SIZE};
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, mut rest)) = data.split_first() else {
        return;
    };
    let capacity = 8usize << (ctl & 3);
    let region = Region::heap(capacity).expect("a heap ring");
    let mut positions = None;
    if ctl & 4 != 0 {
        if let (Some(head), Some(tail)) = (word(rest, 0), word(rest, 8)) {
            positions = Some((head, tail));
            rest = &rest[16..];
        }
    }
    let slots = &rest[..rest.len().min(capacity * SLOT_SIZE)];
    // SAFETY: nobody else holds the ring yet, and the bytes fit in the slot array.
    unsafe { region.write(0, 0, slots) };
    if let Some((head, tail)) = positions {
        region.head().store(head, Ordering::Relaxed);
        region.tail().store(tail, Ordering::Relaxed);
    }
    let (_producer, mut consumer) = ring::split(Arc::new(region));
    for (h, payload) in drain(&mut consumer, 4 * capacity) {
        // Longer than the slot array after one slot header: bytes from outside the ring.
        // (Up to that, a length no producer writes still reads inside the ring.)
        assert!(payload.len() <= capacity * SLOT_SIZE - SLOT_HEADER, "{h:?}");
    }
});

fn word(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Pops at most `limit` messages (a corrupt ring may look like an endless one).
fn drain(consumer: &mut Consumer<Region>, limit: usize) -> Vec<(SlotHeader, Vec<u8>)> {
    let mut got = Vec::new();
    while got.len() < limit {
        match consumer.try_pop(|h, p| (h, p.to_vec())) {
            Ok(Some(m)) => got.push(m),
            Ok(None) | Err(_) => break,
        }
    }
    got
}
