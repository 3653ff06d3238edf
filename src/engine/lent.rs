//! Sends from registered memory in flight, and how a sender takes one back.
//!
//! A send from registered memory puts no bytes in the ring: its frame names the bytes in the
//! sender's memory, and the receiver copies them with one `process_vm_readv` straight into
//! where they go. The sender's buffer must stay as it is until the receiver has copied it:
//! the request of the send completes when the receiver acknowledges the copy. A sender
//! that gives the request up first (its deadline passed, it cancelled or dropped it) may
//! reuse the buffer at once, so every such send has a *lent entry* in the sender's memory:
//! the request's id, the address and the length of the bytes while the send is wanted, an id
//! of zero once it is not. The receiver reads the entry before its copy (a send given up is
//! not copied at all) and after it: an entry that no longer names the request means the copy
//! may hold bytes written after the sender gave up, and the message is dropped. (The sender
//! clears the id before its caller regains the buffer, so a copy followed by a read of the
//! entry that still finds the id saw the bytes as they were sent.)
//!
//! The entry also vouches for the frame. Whoever can write the ring can rewrite a frame, and
//! the frame of a send in flight shows its entry's address and id; only the sender's process
//! writes the entry, so a frame whose address or length differs from its entry's (bytes the
//! sender never sent, a secret beside them) is dropped before anything is copied.

use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

/// Sends from registered memory one endpoint has in flight at most.
pub const LENT_MAX: usize = 64;

/// Bytes of a lent entry as a receiver reads them: id, address, length (native-endian words).
pub const ENTRY_LEN: usize = 24;

/// The id of an entry being filled: never a request's (ids count up from 1).
const FILLING: u64 = u64::MAX;

/// One send's lent entry (see the module documentation). `repr(C)`: a receiver reads the
/// three words at the entry's address.
#[repr(C)]
#[derive(Default)]
struct Entry {
    /// The request's id while the send is wanted; 0 when free; [`FILLING`] while claimed
    /// and not yet filled.
    id: AtomicU64,
    /// Address of the bytes in this process; meaningful while `id` names a request.
    addr: AtomicU64,
    /// Their length; as `addr`.
    len: AtomicU64,
}

/// The lent entries of one endpoint's sends (see the module documentation).
pub struct Lent {
    entries: Box<[Entry]>,
    /// Entries in use: zero lets every answer skip the scan.
    active: AtomicUsize,
}

impl std::fmt::Debug for Lent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lent")
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Lent {
    fn default() -> Self {
        Lent {
            entries: (0..LENT_MAX).map(|_| Entry::default()).collect(),
            active: AtomicUsize::new(0),
        }
    }
}

impl Lent {
    /// Takes a free entry for request `id` (never zero) sending `len` bytes at `addr`, and
    /// returns the entry's address in this process; `None` when [`LENT_MAX`] sends are in
    /// flight.
    pub fn claim(&self, id: u64, addr: u64, len: u64) -> Option<u64> {
        debug_assert!(id != 0 && id != FILLING, "ids start at 1");
        for e in self.entries.iter() {
            if e.id.load(Ordering::Relaxed) == 0
                && e.id
                    .compare_exchange(0, FILLING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                e.addr.store(addr, Ordering::Relaxed);
                e.len.store(len, Ordering::Relaxed);
                // Release: a reader that finds the id finds the address and length with it.
                e.id.store(id, Ordering::Release);
                self.active.fetch_add(1, Ordering::AcqRel);
                return Some(e as *const Entry as u64);
            }
        }
        None
    }

    /// Frees request `id`'s entry, if it has one: its send is complete or given up. Once this
    /// returns, a receiver that has not read the entry yet drops the send.
    #[inline]
    pub fn release(&self, id: u64) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        for e in self.entries.iter() {
            if e.id.load(Ordering::Relaxed) == id
                && e.id
                    .compare_exchange(id, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                self.active.fetch_sub(1, Ordering::AcqRel);
                // The store is visible to a receiver's read before the caller touches the
                // buffer again.
                fence(Ordering::SeqCst);
                return;
            }
        }
    }

    /// Sends in flight.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
}

/// Whether the `ENTRY_LEN` bytes read at a lent entry's address name request `id` sending
/// `len` bytes at `addr`.
pub fn names(entry: &[u8; ENTRY_LEN], (id, addr, len): (u64, u64, u64)) -> bool {
    let word = |i: usize| u64::from_ne_bytes(entry[i..i + 8].try_into().expect("8 bytes"));
    word(0) == id && word(8) == addr && word(16) == len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_claimed_once_and_released_by_their_id() {
        let lent = Lent::default();
        let addrs: Vec<u64> = (1..=LENT_MAX as u64)
            .map(|id| lent.claim(id, 0x1000 * id, id + 7).expect("room"))
            .collect();
        assert_eq!(lent.claim(1000, 1, 1), None, "all entries in use");
        // Read the way a receiver reads them.
        let me = crate::sys::process::pid();
        let entry = |a: u64| {
            let mut b = [0u8; ENTRY_LEN];
            crate::sys::cma::read(me, a, &mut b).unwrap();
            b
        };
        assert!(names(&entry(addrs[4]), (5, 0x5000, 12)));
        assert!(!names(&entry(addrs[4]), (5, 0x5001, 12)));
        assert!(!names(&entry(addrs[4]), (5, 0x5000, 13)));
        assert!(!names(&entry(addrs[4]), (6, 0x5000, 12)));
        lent.release(5);
        lent.release(5);
        assert!(!names(&entry(addrs[4]), (5, 0x5000, 12)));
        assert_eq!(lent.active(), LENT_MAX - 1);
        assert_eq!(lent.claim(77, 0x77, 1), Some(addrs[4]));
        assert!(names(&entry(addrs[4]), (77, 0x77, 1)));
    }
}
