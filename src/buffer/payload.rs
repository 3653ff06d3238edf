//! [`Payload`]: the bytes of a received message, owned or read in place from a buffer of the
//! sender's pool.

use super::pool::Pool;
use std::sync::Arc;

/// Bytes of a received message: owned, or read in place from a buffer of the sender's shared
/// pool (zero copy) that returns to that pool when the payload is dropped.
pub struct Payload {
    repr: Repr,
}

/// Payloads up to this size are held inline (no allocation).
const PAYLOAD_INLINE: usize = 64;

enum Repr {
    Inline {
        len: u8,
        bytes: [u8; PAYLOAD_INLINE],
    },
    Owned {
        bytes: Vec<u8>,
        start: usize,
    },
    Shared {
        pool: Arc<Pool>,
        index: u32,
        start: usize,
        len: usize,
    },
    /// Bytes read in place where they arrived (a ring slot), valid while the payload lives
    /// (see [`Payload::borrowed`]).
    Borrowed {
        ptr: *const u8,
        len: usize,
    },
}

// SAFETY: every representation is plain bytes readable from any thread: owned, a pool
// buffer this payload owns, or (`Borrowed`) bytes that stay valid and unwritten while the
// payload lives, by the contract of `Payload::borrowed`.
unsafe impl Send for Payload {}
// SAFETY: as above; a payload is never written through a shared reference.
unsafe impl Sync for Payload {}

impl Payload {
    /// Bytes `start..start + len` of buffer `index` of `pool`, read in place; the caller
    /// checked the range and owns the buffer (it arrived by descriptor).
    pub(super) fn shared(pool: Arc<Pool>, index: u32, start: usize, len: usize) -> Payload {
        Payload {
            repr: Repr::Shared {
                pool,
                index,
                start,
                len,
            },
        }
    }

    /// A payload that reads `bytes` in place, without a copy (a clone copies them).
    ///
    /// # Safety
    /// The payload, and everything it is moved into, is dropped before `bytes` is freed or
    /// written again: it may be lent by reference to code that runs meanwhile, never handed
    /// over to code that could keep it.
    #[inline]
    pub unsafe fn borrowed(bytes: &[u8]) -> Payload {
        Payload {
            repr: Repr::Borrowed {
                ptr: bytes.as_ptr(),
                len: bytes.len(),
            },
        }
    }

    /// Owned bytes.
    pub fn from_vec(bytes: Vec<u8>) -> Payload {
        Payload {
            repr: Repr::Owned { bytes, start: 0 },
        }
    }

    /// A copy of `bytes` (held inline, without allocation, when small).
    pub fn copy_from(bytes: &[u8]) -> Payload {
        if bytes.len() <= PAYLOAD_INLINE {
            let mut inline = [0u8; PAYLOAD_INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Payload {
                repr: Repr::Inline {
                    len: bytes.len() as u8,
                    bytes: inline,
                },
            }
        } else {
            let mut v = super::recycle::take(bytes.len());
            v.extend_from_slice(bytes);
            Payload::from_vec(v)
        }
    }

    /// The bytes of `bytes` from `start` on, without copying.
    pub fn from_vec_at(bytes: Vec<u8>, start: usize) -> Payload {
        let start = start.min(bytes.len());
        Payload {
            repr: Repr::Owned { bytes, start },
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Owned { bytes, start } => &bytes[*start..],
            // SAFETY: the payload owns buffer `index` (it came off the free list by
            // descriptor and goes back only on drop), and start + len <= buffer_size was
            // checked by `take_payload`.
            Repr::Shared {
                pool,
                index,
                start,
                len,
            } => unsafe { std::slice::from_raw_parts(pool.buffer_ptr(*index).add(*start), *len) },
            // SAFETY: valid and unwritten while the payload lives (`borrowed`'s contract).
            Repr::Borrowed { ptr, len } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }

    /// Whether the bytes are read in place from the sender's buffer.
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.repr, Repr::Shared { .. })
    }

    /// The bytes as a vector (moved when owned from the start, else copied; a shared buffer
    /// then returns to its pool).
    pub fn into_vec(mut self) -> Vec<u8> {
        match &mut self.repr {
            Repr::Owned { bytes, start: 0 } => std::mem::take(bytes),
            _ => self.as_slice().to_vec(),
        }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        match &mut self.repr {
            Repr::Shared { pool, index, .. } => pool.give_back(*index),
            // A large buffer is kept for the next large message.
            Repr::Owned { bytes, .. } => super::recycle::give(std::mem::take(bytes)),
            _ => {}
        }
    }
}

impl Default for Payload {
    fn default() -> Payload {
        Payload::from_vec(Vec::new())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        Payload::from_vec(v)
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Clone for Payload {
    /// A copy in owned memory (a shared buffer has one owner).
    fn clone(&self) -> Payload {
        Payload::copy_from(self.as_slice())
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("len", &self.len())
            .field("zero_copy", &self.is_zero_copy())
            .finish()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for Payload {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl PartialEq<Vec<u8>> for Payload {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Payload {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.as_slice() == other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Payload {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.as_slice() == *other
    }
}
