//! [`Doorstep`]: a look at a ring's next slot by a thread that does not hold its consumer.

use super::{holds, RingMemory};
use std::sync::Arc;

/// Whether a message may wait at a ring position, asked by a thread that does not hold the
/// ring's consumer (the one that does publishes its position for it). One load of the
/// slot's sequence word; a stale position (the consumer moved on meanwhile) answers yes
/// or no at random, so a caller takes a `false` as "look again later", never as a fact.
#[derive(Debug, Clone)]
pub struct Doorstep<M: RingMemory> {
    pub(super) mem: Arc<M>,
    pub(super) mask: u64,
}

impl<M: RingMemory> Doorstep<M> {
    /// Whether the slot at `position` holds the message of that position.
    #[inline]
    pub fn may_hold(&self, position: u64) -> bool {
        holds(&*self.mem, self.mask, position)
    }
}
