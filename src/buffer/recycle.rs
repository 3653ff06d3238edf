//! Message buffers kept for reuse. A buffer of a megabyte allocated and freed per message is
//! mapped fresh by the allocator every time (glibc serves a request as large as the last one
//! freed from new mappings), and the kernel clears every page of it: at a gigabyte per
//! second, that costs more than the copies. Buffers of kilobytes fare no better when many
//! are freed together (a batch of received messages): the heap's top shrinks, and the next
//! batch grows it again, page by page. Buffers of received messages go back here when
//! dropped; reassembly and the copies of received messages take them from here.
//!
//! Buffers are kept by size class (the power of two at or below their capacity), so that
//! taking one looks at one class, and at most a few buffers of a second.

use std::sync::Mutex;

/// Smallest buffer kept, as a power of two (4 KiB).
const MIN_CLASS: usize = 12;
/// Largest buffer kept, as a power of two (64 MiB).
const MAX_CLASS: usize = 26;
const CLASSES: usize = MAX_CLASS - MIN_CLASS + 1;
/// Bytes kept at most, over all classes.
const KEPT_BYTES: usize = 128 << 20;
/// Buffers kept at most per class (a batch of received messages of one size).
const PER_CLASS: usize = 256;
/// Buffers of the class below a request's looked at for one large enough.
const SCAN: usize = 8;

struct Kept {
    classes: [Vec<Vec<u8>>; CLASSES],
    bytes: usize,
}

static KEPT: Mutex<Kept> = Mutex::new(Kept {
    classes: [const { Vec::new() }; CLASSES],
    bytes: 0,
});

/// The class of a buffer of capacity `cap` (the power of two at or below it).
fn floor_class(cap: usize) -> usize {
    (usize::BITS - 1 - cap.leading_zeros()) as usize
}

/// Whether buffers of `size` bytes are kept.
fn kept_size(size: usize) -> bool {
    (1 << MIN_CLASS..=1 << MAX_CLASS).contains(&size)
}

/// An empty buffer of at least `capacity` bytes, reused when one is kept.
pub fn take(capacity: usize) -> Vec<u8> {
    if !kept_size(capacity) {
        return Vec::with_capacity(capacity);
    }
    let found = KEPT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take(capacity);
    found.unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Keeps `v` for reuse when its size is kept and there is room; else frees it.
pub fn give(v: Vec<u8>) {
    if kept_size(v.capacity()) {
        KEPT.lock().unwrap_or_else(|e| e.into_inner()).give(v);
    }
}

impl Kept {
    /// A kept buffer of at least `capacity` bytes (within the kept sizes), emptied.
    fn take(&mut self, capacity: usize) -> Option<Vec<u8>> {
        let below = floor_class(capacity);
        // Every buffer of the class above `capacity`'s holds it (a kept size: that class is
        // at most MAX_CLASS); some of its own class do.
        let above = capacity.next_power_of_two().trailing_zeros() as usize;
        let mut found = self.classes[above - MIN_CLASS].pop();
        if found.is_none() && above != below {
            let class = &mut self.classes[below - MIN_CLASS];
            let from = class.len().saturating_sub(SCAN);
            if let Some(i) = (from..class.len())
                .rev()
                .find(|&i| class[i].capacity() >= capacity)
            {
                found = Some(class.swap_remove(i));
            }
        }
        let mut v = found?;
        self.bytes -= v.capacity();
        v.clear();
        Some(v)
    }

    /// Keeps `v` (of a kept size) if there is room.
    fn give(&mut self, v: Vec<u8>) {
        let cap = v.capacity();
        if self.bytes + cap > KEPT_BYTES {
            return;
        }
        let class = &mut self.classes[floor_class(cap) - MIN_CLASS];
        if class.len() < PER_CLASS {
            class.push(v);
            self.bytes += cap;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_buffers_come_back_for_requests_they_hold() {
        let mut k = Kept {
            classes: [const { Vec::new() }; CLASSES],
            bytes: 0,
        };
        let v = Vec::<u8>::with_capacity(1 << 20);
        let p = v.as_ptr();
        k.give(v);
        let again = k.take(900 << 10).expect("kept");
        assert_eq!(again.as_ptr(), p, "the kept buffer is reused");
        assert!(again.is_empty());
        // A buffer of the same class but too small for a request is not handed out.
        let small = Vec::<u8>::with_capacity(40 << 10);
        let q = small.as_ptr();
        k.give(small);
        assert!(k.take(60 << 10).is_none());
        let fits = k
            .take(36 << 10)
            .expect("a buffer of the class below that holds it");
        assert_eq!(fits.as_ptr(), q);
        assert_eq!(k.bytes, 0);
        // Bounded per class.
        for _ in 0..PER_CLASS + 10 {
            k.give(Vec::with_capacity(4096));
        }
        assert_eq!(k.classes[0].len(), PER_CLASS);
        assert_eq!(k.bytes, PER_CLASS * 4096);
        assert_eq!((floor_class(4096), floor_class(8191)), (12, 12));
    }

    #[test]
    fn sizes_outside_the_classes_are_plain_allocations() {
        assert!(take(1000).capacity() >= 1000);
        give(Vec::with_capacity(1000));
        assert!(take((64 << 20) + 1).capacity() > 64 << 20);
    }
}
