//! Messages that arrive in fragments, put back together. Everything about a fragment (its
//! offset, the total it claims, who sent it) was read from shared memory, so this state is
//! bounded: memory grows with the bytes that really arrived (never with a claimed total), each
//! source has at most [`MAX_PER_SOURCE`] messages in progress, and a message that stops
//! arriving is freed when its sender leaves or after [`TIMEOUT`].

use rustc_hash::FxHashMap as HashMap;
use std::time::{Duration, Instant};

/// Messages one source may have half-received at a time; a new one beyond it frees the
/// source's oldest (the sender gets no reply for it and times out).
pub const MAX_PER_SOURCE: usize = 16;
/// How many times its first fragment a message's buffer takes when that fragment arrives.
const UP_FRONT: usize = 16;
/// Most bytes reserved up front for one message.
const UP_FRONT_MAX: usize = 1 << 20;
/// A message none of whose fragments arrived for this long is freed.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Identifies a message in progress: origin node index, message id, frame kind (a reply and a
/// request may share an id).
pub type Key = (u32, u64, u8);

struct Partial {
    body: Vec<u8>,
    total: usize,
    /// When a fragment last arrived, at the engine's coarse clock.
    touched: Instant,
}

/// What a fragment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Stored; more to come.
    More,
    /// The message is whole.
    Done(Vec<u8>),
    /// Inconsistent with what arrived before (or with no start): dropped with the message.
    Rejected,
}

/// The messages in progress of one engine.
#[derive(Default)]
pub struct Reassembly {
    partial: HashMap<Key, Partial>,
    /// Messages freed before completion, for the engine's counters.
    abandoned: u64,
}

impl Reassembly {
    /// Adds the fragment `parts` (concatenated) at `offset` of a message of `total` bytes.
    /// `largest` bounds `total`; `now` is the engine's coarse clock.
    pub fn add(
        &mut self,
        key: Key,
        (offset, total): (usize, usize),
        parts: &[&[u8]],
        largest: usize,
        now: Instant,
    ) -> Step {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if offset == 0 {
            if total > largest || len > total {
                return Step::Rejected;
            }
            if self.partial.remove(&key).is_some() {
                // A restart of the same message id: the old one never completes.
                self.abandoned += 1;
            }
            self.make_room_for(key.0);
            self.partial.insert(
                key,
                Partial {
                    // Sixteen times the first fragment (a megabyte for a 64 KiB fragment: one
                    // allocation for common sizes, no copies as it grows), never more than
                    // the claimed total nor a megabyte (a peer's large frames do not reserve
                    // more); beyond, the buffer grows with what arrives.
                    body: crate::buffer::recycle::take(
                        total.min(len.saturating_mul(UP_FRONT)).min(UP_FRONT_MAX),
                    ),
                    total,
                    touched: now,
                },
            );
        }
        let Some(p) = self.partial.get_mut(&key) else {
            return Step::Rejected;
        };
        if p.body.len() != offset || p.total != total || offset + len > total {
            self.partial.remove(&key);
            self.abandoned += 1;
            return Step::Rejected;
        }
        // Grow with what arrived (doubling, capped at the total), never by the claimed total
        // up front: a forged header cannot make this process allocate a gigabyte.
        let need = offset + len;
        if need > p.body.capacity() {
            let cap = need.max(p.body.capacity() * 2).min(total);
            p.body.reserve_exact(cap - p.body.len());
        }
        for part in parts {
            p.body.extend_from_slice(part);
        }
        p.touched = now;
        if p.body.len() < total {
            return Step::More;
        }
        Step::Done(
            self.partial
                .remove(&key)
                .map(|p| p.body)
                .unwrap_or_default(),
        )
    }

    /// Lends the buffer of message `key` for a fragment of `len` bytes at `offset` (of a
    /// message of `total`, at most `largest`): the fragment is appended to it elsewhere
    /// (received straight into it), and the buffer comes back through
    /// [`Reassembly::put_back`]. A first fragment gets a new buffer. `None` when the
    /// fragment does not follow what arrived (it is then added, and refused, as usual).
    pub fn lend(
        &mut self,
        key: Key,
        (offset, total): (usize, usize),
        len: usize,
        largest: usize,
    ) -> Option<Vec<u8>> {
        if offset == 0 {
            if total > largest || len > total {
                return None;
            }
            if self.partial.remove(&key).is_some() {
                self.abandoned += 1;
            }
            self.make_room_for(key.0);
            let up_front = total.min(len.saturating_mul(UP_FRONT)).min(UP_FRONT_MAX);
            return Some(crate::buffer::recycle::take(up_front.max(len)));
        }
        let p = self.partial.get(&key)?;
        if p.body.len() != offset || p.total != total || offset + len > total {
            return None;
        }
        self.partial.remove(&key).map(|p| p.body)
    }

    /// Takes back a buffer [`Reassembly::lend`] lent, a fragment longer: the message is
    /// whole, or in progress again.
    pub fn put_back(&mut self, key: Key, total: usize, body: Vec<u8>, now: Instant) -> Step {
        match body.len().cmp(&total) {
            std::cmp::Ordering::Equal => Step::Done(body),
            std::cmp::Ordering::Greater => {
                self.abandoned += 1;
                Step::Rejected
            }
            std::cmp::Ordering::Less => {
                self.make_room_for(key.0);
                self.partial.insert(
                    key,
                    Partial {
                        body,
                        total,
                        touched: now,
                    },
                );
                Step::More
            }
        }
    }

    /// Counts a message given up outside this map (one lent by [`Reassembly::lend`] that
    /// never came back).
    pub fn note_abandoned(&mut self) {
        self.abandoned += 1;
    }

    /// Frees the oldest message of `src` when it has [`MAX_PER_SOURCE`] in progress.
    fn make_room_for(&mut self, src: u32) {
        let mine = self.partial.iter().filter(|(k, _)| k.0 == src);
        if mine.clone().count() < MAX_PER_SOURCE {
            return;
        }
        if let Some(oldest) = mine.min_by_key(|(_, p)| p.touched).map(|(k, _)| *k) {
            self.partial.remove(&oldest);
            self.abandoned += 1;
        }
    }

    /// Frees every message in progress from `src` (it left, or its process died).
    pub fn drop_source(&mut self, src: u32) {
        let before = self.partial.len();
        self.partial.retain(|k, _| k.0 != src);
        self.abandoned += (before - self.partial.len()) as u64;
    }

    /// Frees every message in progress from a source `keep` refuses (one no longer on the
    /// host, also one this engine never saw alive).
    pub fn retain_sources(&mut self, keep: impl Fn(u32) -> bool) {
        let before = self.partial.len();
        self.partial.retain(|k, _| keep(k.0));
        self.abandoned += (before - self.partial.len()) as u64;
    }

    /// Frees the messages with no fragment since [`TIMEOUT`] before `now`.
    pub fn expire(&mut self, now: Instant) {
        let before = self.partial.len();
        self.partial
            .retain(|_, p| now.saturating_duration_since(p.touched) < TIMEOUT);
        self.abandoned += (before - self.partial.len()) as u64;
    }

    /// Messages freed before completion so far.
    pub fn abandoned(&self) -> u64 {
        self.abandoned
    }

    /// Messages in progress.
    pub fn len(&self) -> usize {
        self.partial.len()
    }

    /// Whether no message is in progress.
    pub fn is_empty(&self) -> bool {
        self.partial.is_empty()
    }

    /// Bytes held by messages in progress.
    pub fn bytes(&self) -> usize {
        self.partial.values().map(|p| p.body.capacity()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_make_a_message_and_bad_ones_free_it() {
        let now = Instant::now();
        let mut r = Reassembly::default();
        assert_eq!(r.add((1, 1, 1), (0, 6), &[b"ab"], 100, now), Step::More);
        assert_eq!(
            r.add((1, 1, 1), (2, 6), &[b"c", b"d"], 100, now),
            Step::More
        );
        assert_eq!(
            r.add((1, 1, 1), (4, 6), &[b"ef"], 100, now),
            Step::Done(b"abcdef".to_vec())
        );
        assert!(r.is_empty());
        // A claimed total past the limit, a gap, a changed total, no start.
        assert_eq!(
            r.add((1, 2, 1), (0, 101), &[b"a"], 100, now),
            Step::Rejected
        );
        assert_eq!(r.add((1, 3, 1), (0, 10), &[b"a"], 100, now), Step::More);
        assert_eq!(r.add((1, 3, 1), (5, 10), &[b"a"], 100, now), Step::Rejected);
        assert_eq!(r.add((1, 4, 1), (0, 10), &[b"a"], 100, now), Step::More);
        assert_eq!(r.add((1, 4, 1), (1, 11), &[b"a"], 100, now), Step::Rejected);
        assert_eq!(r.add((1, 5, 1), (3, 10), &[b"a"], 100, now), Step::Rejected);
        assert!(r.is_empty());
        assert_eq!(r.abandoned(), 2);
    }

    #[test]
    fn memory_follows_the_bytes_that_arrived_not_the_claim() {
        let now = Instant::now();
        let mut r = Reassembly::default();
        assert_eq!(
            r.add((1, 1, 1), (0, 1 << 30), &[&[0u8; 64]], 1 << 30, now),
            Step::More
        );
        assert!(r.bytes() < 4096, "{} bytes held for 64 received", r.bytes());
    }

    #[test]
    fn sources_are_bounded_and_freed_when_they_leave_or_go_quiet() {
        let t0 = Instant::now();
        let mut r = Reassembly::default();
        for id in 0..(MAX_PER_SOURCE as u64 + 5) {
            r.add(
                (7, id, 1),
                (0, 100),
                &[b"x"],
                100,
                t0 + Duration::from_millis(id),
            );
        }
        assert_eq!(r.len(), MAX_PER_SOURCE);
        assert_eq!(r.abandoned(), 5);
        r.add((8, 0, 1), (0, 100), &[b"x"], 100, t0 + TIMEOUT);
        r.drop_source(7);
        assert_eq!((r.len(), r.abandoned()), (1, 5 + MAX_PER_SOURCE as u64));
        r.expire(t0 + TIMEOUT + TIMEOUT / 2);
        assert_eq!(r.len(), 1);
        r.expire(t0 + 2 * TIMEOUT + Duration::from_secs(1));
        assert!(r.is_empty());
    }
}
