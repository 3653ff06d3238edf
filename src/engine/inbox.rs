//! The bound of what a node without a handler keeps for `recv` (the queue is the node's
//! [`super::mailbox::Mailbox`]): past [`INBOX_BYTES`] or [`INBOX_MESSAGES`], the engine stops
//! reading the node's inbound rings until `recv` takes some, so a sender faster than its
//! reader waits (its rings fill) instead of growing the reader's memory without limit.

/// Bytes a node's queue holds before its rings are left unread.
pub const INBOX_BYTES: usize = 256 << 20;
/// Messages a node's queue holds before its rings are left unread.
pub const INBOX_MESSAGES: usize = 1 << 16;
