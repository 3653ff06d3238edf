//! Send buffers registered with the io_uring (`IORING_REGISTER_BUFFERS`): a zero-copy send
//! from one of them names it by index (`IORING_RECVSEND_FIXED_BUF`), and the kernel uses the
//! pages it pinned once at registration instead of pinning the flight's pages for every
//! send. Frames queued while a socket is full are written straight into one, so a flight
//! leaves from it without another copy.
//!
//! The arena is registered the first time a zero-copy send proves worth it (the kernel did
//! not copy it, or zero-copy is kept on where it does): a process whose peers are all on
//! its own host pins nothing. Where registration fails (a locked-memory limit), flights
//! stay in ordinary buffers.

use crossbeam_queue::ArrayQueue;
use std::sync::Arc;

/// Buffers of the arena (the reactor's connections share them; a connection with none
/// free queues into an ordinary buffer).
pub const ARENA_BUFFERS: usize = 8;

/// The memory of an arena. Freed when the arena and every buffer taken from it are gone;
/// leaked with a buffer the kernel may still read.
struct Memory {
    /// The allocation (`Box::into_raw` of `len` bytes): only ever reached through this
    /// pointer, each range by the one [`Fixed`] that holds it.
    base: *mut u8,
    len: usize,
    free: ArrayQueue<u16>,
}

// SAFETY: the pointer is an allocation of its own; the ranges of it are used as described
// above, by one holder at a time.
unsafe impl Send for Memory {}
// SAFETY: as above (shared handles only read `free`, a thread-safe queue).
unsafe impl Sync for Memory {}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: made by `Box::into_raw` of a slice of `len` bytes, freed once.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.base, self.len)) });
    }
}

/// Registered send buffers of one reactor.
pub(super) struct Arena {
    memory: Arc<Memory>,
    size: usize,
}

/// One buffer of an arena: given back when dropped.
pub(super) struct Fixed {
    memory: Arc<Memory>,
    index: u16,
    at: usize,
    size: usize,
    len: usize,
}

impl Arena {
    /// Registers [`ARENA_BUFFERS`] buffers of `size` bytes with `ring`.
    pub fn register(ring: &io_uring::IoUring, size: usize) -> std::io::Result<Arena> {
        let len = size * ARENA_BUFFERS;
        let base = Box::into_raw(vec![0u8; len].into_boxed_slice()).cast::<u8>();
        // Freed with it when registration fails.
        let memory = Memory {
            base,
            len,
            free: ArrayQueue::new(ARENA_BUFFERS),
        };
        let iovecs: Vec<libc::iovec> = (0..ARENA_BUFFERS)
            .map(|i| libc::iovec {
                // SAFETY: within the allocation.
                iov_base: unsafe { base.add(i * size) }.cast(),
                iov_len: size,
            })
            .collect();
        // SAFETY: the memory lives as long as `Memory`, which outlives the registration:
        // the reactor drops its ring before its arena, and a buffer the kernel may still
        // read is leaked with the memory.
        unsafe { ring.submitter().register_buffers(&iovecs) }?;
        for i in 0..ARENA_BUFFERS {
            let _ = memory.free.push(i as u16);
        }
        Ok(Arena {
            memory: Arc::new(memory),
            size,
        })
    }

    /// A free buffer, if one is.
    pub fn take(&self) -> Option<Fixed> {
        let index = self.memory.free.pop()?;
        Some(Fixed {
            memory: self.memory.clone(),
            index,
            at: index as usize * self.size,
            size: self.size,
            len: 0,
        })
    }

    /// Buffers not taken.
    #[cfg(test)]
    pub fn free(&self) -> usize {
        self.memory.free.len()
    }
}

impl Fixed {
    /// The registered buffer's index.
    pub fn index(&self) -> u16 {
        self.index
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Room left.
    pub fn room(&self) -> usize {
        self.size - self.len
    }

    /// Appends `b` (which fits: see [`Fixed::room`]).
    pub fn push(&mut self, b: &[u8]) {
        assert!(b.len() <= self.room(), "a registered buffer overflowed");
        // SAFETY: within this buffer's range, which no other handle touches; the kernel
        // reads a range only while its holder keeps the `Fixed` alive and unchanged (a
        // flight in the air is not appended to).
        unsafe {
            let end = self.memory.base.add(self.at + self.len);
            std::ptr::copy_nonoverlapping(b.as_ptr(), end, b.len());
        }
        self.len += b.len();
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the bytes written so far of this buffer's range (see `push`).
        unsafe { std::slice::from_raw_parts(self.memory.base.add(self.at), self.len) }
    }
}

impl Drop for Fixed {
    fn drop(&mut self) {
        let _ = self.memory.free.push(self.index);
    }
}

/// Bytes of a connection's queue or flight: an ordinary buffer, or one of the arena's.
pub(super) enum Buf {
    Heap(Vec<u8>),
    Fixed(Fixed),
}

impl Default for Buf {
    fn default() -> Self {
        Buf::Heap(Vec::new())
    }
}

impl Buf {
    pub fn len(&self) -> usize {
        match self {
            Buf::Heap(v) => v.len(),
            Buf::Fixed(f) => f.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            Buf::Heap(v) => v,
            Buf::Fixed(f) => f.as_slice(),
        }
    }

    /// Appends `b`; a registered buffer without room for it is traded for an ordinary one
    /// (a control frame past the queue's limit).
    pub fn extend_from_slice(&mut self, b: &[u8]) {
        match self {
            Buf::Heap(v) => v.extend_from_slice(b),
            Buf::Fixed(f) if b.len() <= f.room() => f.push(b),
            Buf::Fixed(f) => {
                let mut v = Vec::with_capacity(f.len() + b.len());
                v.extend_from_slice(f.as_slice());
                v.extend_from_slice(b);
                *self = Buf::Heap(v);
            }
        }
    }

    /// The registered buffer's index, for one of the arena's.
    pub fn fixed_index(&self) -> Option<u16> {
        match self {
            Buf::Heap(_) => None,
            Buf::Fixed(f) => Some(f.index()),
        }
    }

    /// Emptied, keeping an ordinary buffer's memory unless it is larger than `keep`; one of
    /// the arena's goes back to it (a connection holds one only while it has bytes in it).
    pub fn reset(&mut self, keep: usize) {
        match self {
            Buf::Heap(v) if v.capacity() <= keep => v.clear(),
            _ => *self = Buf::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_handed_out_once_and_come_back_when_dropped() {
        let ring = io_uring::IoUring::new(4).expect("io_uring");
        let Ok(arena) = Arena::register(&ring, 4096) else {
            eprintln!("skipped: the kernel refused to register buffers");
            return;
        };
        let taken: Vec<Fixed> = std::iter::from_fn(|| arena.take()).collect();
        assert_eq!(taken.len(), ARENA_BUFFERS);
        let mut indices: Vec<u16> = taken.iter().map(Fixed::index).collect();
        indices.dedup();
        assert_eq!(indices.len(), ARENA_BUFFERS);
        assert_eq!(arena.free(), 0);
        drop(taken);
        assert_eq!(arena.free(), ARENA_BUFFERS);
    }

    #[test]
    fn a_registered_buffer_that_overflows_becomes_an_ordinary_one_with_the_same_bytes() {
        let ring = io_uring::IoUring::new(4).expect("io_uring");
        let Ok(arena) = Arena::register(&ring, 64) else {
            eprintln!("skipped: the kernel refused to register buffers");
            return;
        };
        let mut b = Buf::Fixed(arena.take().unwrap());
        b.extend_from_slice(&[1; 40]);
        b.extend_from_slice(&[2; 24]);
        assert!(b.fixed_index().is_some());
        assert_eq!(arena.free(), ARENA_BUFFERS - 1);
        b.extend_from_slice(&[3; 10]);
        assert!(b.fixed_index().is_none());
        assert_eq!(arena.free(), ARENA_BUFFERS);
        let want: Vec<u8> = [vec![1; 40], vec![2; 24], vec![3; 10]].concat();
        assert_eq!(b.as_slice(), &want[..]);
        b.reset(1 << 20);
        assert!(b.is_empty());
    }
}
