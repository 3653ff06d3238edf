//! Where the payload of a frame landing goes: a buffer of the engine's, or the memory of
//! the receive that waits for the message, lent for as long as it waits.
//!
//! Lent memory is written only by non-blocking `recv`s while a poll runs and by copies of
//! bytes already received, never by a receive armed on the ring: the kernel would write
//! there after the receive that lent it has returned. Before a receive into it is armed,
//! and whenever its lender stops waiting ([`Reactor::spill_landing`]), what it holds is
//! copied into a buffer of the engine's, which the landing goes on into.
//!
//! [`Reactor::spill_landing`]: super::Reactor::spill_landing

use std::ptr::NonNull;

/// Memory lent by a waiting receive: `len` bytes written of `cap` at `ptr`.
#[derive(Debug)]
pub struct Lent {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: a `Lent` stands for a `&mut [u8]` its lender does not use while it is lent (see
// `Lent::new`); moving it to another thread is moving that exclusive borrow.
unsafe impl Send for Lent {}

impl Lent {
    /// `cap` bytes at `ptr`, of which the first `len` hold the message so far.
    ///
    /// # Safety
    /// `ptr` is valid for reads and writes of `cap` bytes, `len <= cap`, and nothing else
    /// reads or writes them until the landing hands them back ([`super::Event::Landed`])
    /// or they are taken back ([`super::Reactor::spill_landing`]).
    pub unsafe fn new(ptr: NonNull<u8>, len: usize, cap: usize) -> Lent {
        Lent {
            ptr,
            len: len.min(cap),
            cap,
        }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy of what is written, in a buffer of the engine's with room for `need` bytes
    /// (at least what is written, at most the memory's size: not a length a peer claims).
    pub fn to_vec(&self, need: usize) -> Vec<u8> {
        let mut v = crate::buffer::recycle::take(need.clamp(self.len, self.cap));
        // SAFETY: the first `len` bytes at `ptr` were written (`Lent::new`, `Body::advance`).
        v.extend_from_slice(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) });
        v
    }
}

/// The buffer a landing frame's payload is appended to.
#[derive(Debug)]
pub enum Body {
    /// The engine's: the message so far, the rest appended.
    Owned(Vec<u8>),
    /// A waiting receive's memory.
    Lent(Lent),
}

impl Body {
    /// Bytes in it.
    pub fn len(&self) -> usize {
        match self {
            Body::Owned(v) => v.len(),
            Body::Lent(l) => l.len,
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for `more` bytes after what it holds without moving again: lent memory
    /// too small for them is copied into a buffer of the engine's first.
    pub(super) fn reserve(&mut self, more: usize) {
        if let Body::Lent(l) = self {
            if l.cap - l.len >= more {
                return;
            }
            let need = l.len + more;
            self.spill(need);
        }
        if let Body::Owned(v) = self {
            v.reserve(more);
        }
    }

    /// Appends `bytes`, within the room [`Body::reserve`] made.
    pub(super) fn extend_from_slice(&mut self, bytes: &[u8]) {
        match self {
            Body::Owned(v) => v.extend_from_slice(bytes),
            Body::Lent(l) => {
                let n = bytes.len().min(l.cap - l.len);
                // SAFETY: `l.len + n <= l.cap` bytes at `l.ptr` are writable (`Lent::new`),
                // and `bytes` is not lent memory (it comes from the decoder or a peek).
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), l.ptr.as_ptr().add(l.len), n)
                };
                l.len += n;
            }
        }
    }

    /// Where the next bytes go, and how many fit there.
    pub(super) fn spare(&mut self) -> (*mut u8, usize) {
        match self {
            Body::Owned(v) => {
                let s = v.spare_capacity_mut();
                (s.as_mut_ptr().cast(), s.len())
            }
            // SAFETY: `l.len <= l.cap`: the pointer stays within (or one past) the memory.
            Body::Lent(l) => (unsafe { l.ptr.as_ptr().add(l.len) }, l.cap - l.len),
        }
    }

    /// Counts `n` bytes written at [`Body::spare`].
    ///
    /// # Safety
    /// The `n` bytes at [`Body::spare`] were written, and `n` is at most its room.
    pub(super) unsafe fn advance(&mut self, n: usize) {
        match self {
            // SAFETY: the caller wrote `n` bytes of spare capacity.
            Body::Owned(v) => unsafe { v.set_len(v.len() + n) },
            Body::Lent(l) => l.len += n.min(l.cap - l.len),
        }
    }

    /// Whether it is lent memory.
    pub fn is_lent(&self) -> bool {
        matches!(self, Body::Lent(_))
    }

    /// Copies lent memory into a buffer of the engine's with room for `need` bytes (the end
    /// of the frame landing: not the message's claimed length, which a peer chooses), which
    /// it is from then on; a buffer of the engine's stays as it is. Returns whether it was
    /// lent.
    pub(super) fn spill(&mut self, need: usize) -> bool {
        let Body::Lent(l) = self else {
            return false;
        };
        *self = Body::Owned(l.to_vec(need));
        true
    }

    /// The engine's buffer (empty for lent memory).
    pub fn into_owned(self) -> Vec<u8> {
        match self {
            Body::Owned(v) => v,
            Body::Lent(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lent_memory_takes_bytes_within_its_room_and_spills_what_it_holds() {
        let mut mem = vec![0u8; 8];
        let ptr = NonNull::new(mem.as_mut_ptr()).unwrap();
        // SAFETY: `mem` outlives `b` and is not touched while lent.
        let mut b = Body::Lent(unsafe { Lent::new(ptr, 2, 8) });
        b.reserve(6);
        assert!(b.is_lent(), "room for 6 more: still lent");
        b.extend_from_slice(b"abcdefgh");
        assert_eq!(b.len(), 8, "only the room is written");
        assert!(b.spill(8));
        assert!(!b.is_lent());
        let v = b.into_owned();
        assert_eq!(&v[..], &[0, 0, b'a', b'b', b'c', b'd', b'e', b'f']);
        assert!(v.capacity() >= 8);

        let mut b = Body::Lent(unsafe { Lent::new(ptr, 0, 4) });
        b.reserve(5);
        assert!(!b.is_lent(), "too small: copied into a buffer of its own");
        let (_, room) = b.spare();
        assert!(room >= 5);
    }
}
