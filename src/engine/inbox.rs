//! What a node without a handler keeps for `recv`.

use super::Message;
use std::collections::VecDeque;

/// Messages queued for `recv` at one node. Bounded: past [`INBOX_BYTES`] or
/// [`INBOX_MESSAGES`], the engine stops reading the node's inbound rings until `recv` takes
/// some, so a sender faster than its reader waits (its rings fill) instead of growing the
/// reader's memory without limit.
#[derive(Default)]
pub(super) struct Inbox {
    queue: VecDeque<Message>,
    bytes: usize,
}

impl Inbox {
    pub(super) fn push_back(&mut self, m: Message) {
        self.bytes += m.data.len() + m.metadata.len();
        self.queue.push_back(m);
    }

    pub(super) fn pop_front(&mut self) -> Option<Message> {
        let m = self.queue.pop_front()?;
        self.bytes -= m.data.len() + m.metadata.len();
        Some(m)
    }

    pub(super) fn is_full(&self) -> bool {
        self.bytes >= INBOX_BYTES || self.queue.len() >= INBOX_MESSAGES
    }
}

/// Bytes an inbox holds before its node's rings are left unread.
pub const INBOX_BYTES: usize = 256 << 20;
/// Messages an inbox holds before its node's rings are left unread.
pub const INBOX_MESSAGES: usize = 1 << 16;
