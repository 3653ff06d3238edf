//! Sends from registered memory in flight, and how a sender takes one back.
//!
//! A send from registered memory puts no bytes in the ring: its frame names the bytes in the
//! sender's memory, and the receiver copies them with one `process_vm_readv` straight into
//! where they go. The sender's buffer must stay as it is until the receiver has copied it:
//! the request of the send completes when the receiver acknowledges the copy. A sender
//! that gives the request up first (its deadline passed, it cancelled or dropped it) may
//! reuse the buffer at once, so every such send has a *lent word* in the sender's memory,
//! holding the request's id while the send is wanted and zero once it is not. The receiver
//! reads the word after its copy: a word that no longer names the request means the copy
//! may hold bytes written after the sender gave up, and the message is dropped. (The sender
//! clears the word before its caller regains the buffer, so a copy followed by a read of the
//! word that still finds the id saw the bytes as they were sent.)

use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

/// Sends from registered memory one endpoint has in flight at most.
pub const LENT_MAX: usize = 64;

/// The lent words of one endpoint's sends (see the module documentation).
pub struct Lent {
    words: Box<[AtomicU64]>,
    /// Words in use: zero lets every answer skip the scan.
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
            words: (0..LENT_MAX).map(|_| AtomicU64::new(0)).collect(),
            active: AtomicUsize::new(0),
        }
    }
}

impl Lent {
    /// Takes a free word for request `id` (never zero) and returns its address in this
    /// process; `None` when [`LENT_MAX`] sends are in flight.
    pub fn claim(&self, id: u64) -> Option<u64> {
        debug_assert_ne!(id, 0, "ids start at 1");
        for w in self.words.iter() {
            if w.load(Ordering::Relaxed) == 0
                && w.compare_exchange(0, id, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                self.active.fetch_add(1, Ordering::AcqRel);
                return Some(w.as_ptr() as u64);
            }
        }
        None
    }

    /// Frees request `id`'s word, if it has one: its send is complete or given up. Once this
    /// returns, a receiver that has not read the word yet drops the send.
    #[inline]
    pub fn release(&self, id: u64) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        for w in self.words.iter() {
            if w.load(Ordering::Relaxed) == id
                && w.compare_exchange(id, 0, Ordering::AcqRel, Ordering::Relaxed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_claimed_once_and_released_by_their_id() {
        let lent = Lent::default();
        let addrs: Vec<u64> = (1..=LENT_MAX as u64)
            .map(|id| lent.claim(id).expect("room"))
            .collect();
        assert_eq!(lent.claim(1000), None, "all words in use");
        // Read the way a receiver reads them.
        let me = crate::sys::process::pid();
        let word = |a: u64| crate::sys::cma::read_word(me, a).unwrap();
        assert_eq!(word(addrs[4]), 5);
        lent.release(5);
        lent.release(5);
        assert_eq!(word(addrs[4]), 0);
        assert_eq!(lent.active(), LENT_MAX - 1);
        assert_eq!(lent.claim(77), Some(addrs[4]));
        assert_eq!(word(addrs[4]), 77);
    }
}
