//! Large message buffers kept for reuse. A buffer of a megabyte allocated and freed per
//! message is mapped fresh by the allocator every time (glibc serves a request as large as
//! the last one freed from new mappings), and the kernel clears every page of it: at a
//! gigabyte per second, that costs more than the copies. Buffers of received messages go
//! back here when dropped, and reassembly takes them from here.

use std::sync::Mutex;

/// Smallest buffer kept.
const MIN: usize = 256 << 10;
/// Largest buffer kept.
const MAX: usize = 64 << 20;
/// Bytes kept at most.
const KEPT_BYTES: usize = 128 << 20;

static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer of at least `capacity` bytes, reused when one is kept.
pub fn take(capacity: usize) -> Vec<u8> {
    if capacity >= MIN {
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest that fits.
        let best = kept
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= capacity)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        if let Some(i) = best {
            let mut v = kept.swap_remove(i);
            v.clear();
            return v;
        }
    }
    Vec::with_capacity(capacity)
}

/// Keeps `v` for reuse when it is large and there is room; else frees it.
pub fn give(v: Vec<u8>) {
    let cap = v.capacity();
    if !(MIN..=MAX).contains(&cap) {
        return;
    }
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let held: usize = kept.iter().map(Vec::capacity).sum();
    if held + cap <= KEPT_BYTES {
        kept.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_come_back_small_ones_do_not() {
        let v = take(1 << 20);
        assert!(v.capacity() >= 1 << 20 && v.is_empty());
        let p = v.as_ptr();
        give(v);
        let again = take(900 << 10);
        assert_eq!(again.as_ptr(), p, "the kept buffer is reused");
        assert!(again.is_empty());
        give(Vec::with_capacity(1000));
        assert!(take(1000).capacity() >= 1000);
        give(again);
    }
}
