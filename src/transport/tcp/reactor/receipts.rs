//! Receipts: what the peer process of a connection says it took off the connection, so that
//! one-way messages lost with a connection that closes are known.
//!
//! Each side numbers the frames it hands to a connection with [`Reactor::send`] (control
//! frames, sent with [`Reactor::send_control`], are not numbered). The receiving engine
//! counts the frames it takes of the same kinds and now and then says how many in a receipt
//! (`tcp::control::KIND_RECEIPT`); TCP keeps them in order, so a receipt of `n` covers
//! frames 1 to `n`. A frame that ends a one-way message is sent with a note of its sending
//! and receiving node ([`Reactor::send_noted`]); the notes wait until a receipt covers their
//! frame. When the connection closes, the notes left are the messages that may not have
//! arrived ([`Reactor::take_unreceipted`]): no one else would ever learn of them.

use super::*;
use std::collections::VecDeque;

/// Notes a connection keeps at most: a peer that sends no receipts (it does not follow
/// this protocol) does not make them grow without bound. The oldest go first.
pub const NOTES_LIMIT: usize = 1 << 20;

/// The sending side's tally of a connection.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Frames numbered so far.
    sent: u64,
    /// The highest frame a receipt covered.
    receipted: u64,
    /// (frame, sending node, receiving node) of one-way messages' last frames, oldest
    /// first.
    notes: VecDeque<(u64, u32, u32)>,
    /// Notes let go unreceipted beyond [`NOTES_LIMIT`].
    pub(super) overflowed: u64,
}

impl Tally {
    /// Numbers one frame, with a note when it ends a one-way message.
    pub(super) fn count(&mut self, note: Option<(u32, u32)>) {
        self.sent += 1;
        if let Some((src, dst)) = note {
            if self.notes.len() >= NOTES_LIMIT {
                self.notes.pop_front();
                self.overflowed += 1;
            }
            self.notes.push_back((self.sent, src, dst));
        }
    }
}

impl Reactor {
    /// [`Reactor::send`] of a frame that ends a one-way message from node `src` to node
    /// `dst`: kept in mind until a receipt covers it (see the module).
    pub fn send_noted(
        &mut self,
        id: ConnId,
        h: &FrameHeader,
        parts: &[&[u8]],
        note: Option<(u32, u32)>,
    ) -> Result<bool> {
        self.send_with(id, h, parts, false, note)
    }

    /// Applies a receipt of `frames` from the peer of `id`. `Err` for a receipt no honest
    /// peer sends (of frames never sent, or fewer than an earlier one).
    pub fn receipt(&mut self, id: ConnId, frames: u64) -> std::result::Result<(), &'static str> {
        let Some(c) = self.conn_mut(id).ok() else {
            return Ok(());
        };
        let t = &mut c.tally;
        if frames > t.sent || frames < t.receipted {
            return Err("a receipt for frames that were never sent");
        }
        t.receipted = frames;
        while t.notes.front().is_some_and(|&(n, _, _)| n <= frames) {
            t.notes.pop_front();
        }
        Ok(())
    }

    /// Frames numbered on `id` so far, and notes waiting for a receipt there.
    pub fn tally(&self, id: ConnId) -> (u64, usize) {
        self.conn(id)
            .map_or((0, 0), |c| (c.tally.sent, c.tally.notes.len()))
    }

    /// Moves the notes of connection `slot`, which closed, where
    /// [`Reactor::take_unreceipted`] finds them.
    pub(super) fn keep_unreceipted(&mut self, slot: usize) {
        let id = self.id_of(slot);
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        let notes = std::mem::take(&mut c.tally.notes);
        if !notes.is_empty() {
            self.unreceipted
                .push((id, notes.into_iter().map(|(_, s, d)| (s, d)).collect()));
        }
    }

    /// The (sending node, receiving node) of the one-way messages that connection `id`,
    /// now closed, carried last and that its peer never receipted, oldest first (once).
    pub fn take_unreceipted(&mut self, id: ConnId) -> Vec<(u32, u32)> {
        match self.unreceipted.iter().position(|(c, _)| *c == id) {
            Some(i) => self.unreceipted.swap_remove(i).1,
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::{header, pair, reactor};
    use super::*;

    /// Receipts release the notes of the frames they cover and no others; a receipt of
    /// frames never sent, or going back, is refused; a closed connection hands over the notes
    /// left, once; control frames are not numbered.
    #[test]
    fn receipts_release_notes_and_a_closed_connection_keeps_the_rest() {
        let Some(mut r) = reactor(RecvMode::Single) else {
            return;
        };
        let (a, _b) = pair();
        let id = r.add(a).unwrap();
        for i in 0..10u32 {
            let note = (i % 3 == 0).then_some((i, 100 + i));
            assert!(r.send_noted(id, &header(i, 4), &[b"abcd"], note).unwrap());
        }
        r.send_control(id, &header(99, 0), &[]).unwrap();
        assert_eq!(r.tally(id), (10, 4));
        assert!(r.receipt(id, 11).is_err(), "frames never sent");
        r.receipt(id, 4).unwrap();
        assert_eq!(
            r.tally(id),
            (10, 2),
            "frames 1 and 4 (notes of 0 and 3) receipted"
        );
        assert!(r.receipt(id, 3).is_err(), "a receipt going back");
        r.close(id);
        let mut closed = 0;
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while closed == 0 {
            r.poll(&mut |_, ev| closed += matches!(ev, Event::Closed(_)) as u32);
            assert!(std::time::Instant::now() < until, "never reported closed");
        }
        assert_eq!(r.take_unreceipted(id), vec![(6, 106), (9, 109)]);
        assert!(r.take_unreceipted(id).is_empty(), "handed over once");
    }
}
