//! Page-aligned byte buffers for the benchmarks.
//!
//! glibc serves a request of 128 KiB or more from a mapping of its own and returns the
//! address 16 bytes past the mapping's start. The kernel's copy into such a buffer from a
//! socket whose bytes start near a page boundary then stores just ahead of where it loads,
//! 4 KiB apart (4K aliasing): measured here, a 1 MiB loopback ping-pong into buffers at
//! offset 16 took ~700 µs one way against ~200 µs into page-aligned ones. An HPC code
//! allocates its communication buffers page-aligned (`posix_memalign`, huge pages), and
//! UCX's perftest does too, so both the HyperFabric rows and the plain-socket baselines
//! use buffers that start on a page.

use std::ops::{Deref, DerefMut};

const PAGE: usize = 4096;

/// `len` bytes starting on a page boundary.
pub struct PageBuf {
    store: Vec<u8>,
    at: usize,
    len: usize,
}

impl PageBuf {
    /// `len` bytes of `fill`.
    pub fn new(len: usize, fill: u8) -> PageBuf {
        let store = vec![fill; len + PAGE];
        let at = store.as_ptr().align_offset(PAGE);
        PageBuf { store, at, len }
    }
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.store[self.at..self.at + self.len]
    }
}

impl DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.store[self.at..self.at + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_page_and_holds_its_length() {
        for len in [0, 1, 4095, 1 << 20] {
            let b = PageBuf::new(len, 7);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_ptr() as usize % PAGE, 0);
            assert!(b.iter().all(|&x| x == 7));
        }
    }
}
