//! What a node's endpoint rings carried. Learned routing and operators' tools read the rings
//! in files from their headers; the rings in process memory (endpoints of this process to a
//! node it hosts, and their reply rings) only this process sees, so the mailbox keeps a view
//! of each. Nothing times an endpoint's ring: what waits in it delays only its own sender,
//! so learned routing takes its bytes as the link's load, never its queue as the link's
//! delay.

use super::{Handed, Mailbox};
use crate::ring::Region;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard, Weak};

/// A view of a ring in process memory handed over to the mailbox. It keeps no ring alive;
/// while it reads one (a strong reference for a moment), it holds the views' lock, under
/// which the mailbox decides whether an endpoint dropped its ring (its only other one).
pub(super) struct MemoryRing {
    src: u32,
    /// Which ring, for as long as the process runs (an address could be a later ring's).
    id: u64,
    ring: Weak<Region>,
    reply: Option<Weak<Region>>,
}

/// The next ring's id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What one ring in process memory carried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryTraffic {
    /// (sending node, receiving node).
    pub(crate) pair: (u32, u32),
    /// Which ring (the reply ring of one is another).
    pub(crate) ring: u64,
    /// Messages, payload bytes (with the data handed over by descriptor), slots queued,
    /// slots.
    pub(crate) counts: [u64; 4],
}

impl MemoryTraffic {
    fn of(pair: (u32, u32), ring: u64, region: &Region) -> MemoryTraffic {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        let h = region.header();
        let tail = h.tail.tail.load(Acquire);
        let head = h.head.load(Acquire);
        MemoryTraffic {
            pair,
            ring,
            counts: [
                h.tail.messages.load(Relaxed),
                h.tail.bytes.load(Relaxed),
                tail.saturating_sub(head),
                u64::from(h.capacity.load(Relaxed)),
            ],
        }
    }
}

impl Mailbox {
    /// The views, locked (a leaf lock: nothing else is taken while it is held).
    pub(super) fn views(&self) -> MutexGuard<'_, Vec<MemoryRing>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a view of the rings of `handed`.
    pub(super) fn observe(&self, handed: &Handed) {
        let (src, _, consumer, reply) = handed;
        let mut m = self.views();
        m.retain(|r| r.ring.strong_count() > 0);
        m.push(MemoryRing {
            src: *src,
            id: NEXT_ID.fetch_add(2, Ordering::Relaxed),
            ring: Arc::downgrade(consumer.memory()),
            reply: reply.as_ref().map(|p| Arc::downgrade(p.memory())),
        });
    }

    /// What the live rings in process memory into this node (and their reply rings, from
    /// it) carried.
    pub(crate) fn memory_traffic(&self) -> Vec<MemoryTraffic> {
        let mut m = self.views();
        m.retain(|r| r.ring.strong_count() > 0);
        let mut out = Vec::with_capacity(m.len() * 2);
        for r in m.iter() {
            // Each strong reference is dropped before the lock.
            if let Some(ring) = r.ring.upgrade() {
                out.push(MemoryTraffic::of((r.src, self.node), r.id, &ring));
            }
            if let Some(reply) = r.reply.as_ref().and_then(Weak::upgrade) {
                out.push(MemoryTraffic::of((self.node, r.src), r.id + 1, &reply));
            }
        }
        drop(m);
        out
    }
}
