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
}

impl Tally {
    /// Numbers one frame, with a note when it ends a one-way message. Whether the oldest
    /// note was let go for it (beyond [`NOTES_LIMIT`]).
    pub(super) fn count(&mut self, note: Option<(u32, u32)>) -> bool {
        self.sent += 1;
        let Some((src, dst)) = note else {
            return false;
        };
        let over = self.notes.len() >= NOTES_LIMIT;
        if over {
            self.notes.pop_front();
        }
        self.notes.push_back((self.sent, src, dst));
        over
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
        let Some(t) = self.tally_mut(id) else {
            return Ok(());
        };
        if frames > t.sent || frames < t.receipted {
            return Err("a receipt for frames that were never sent");
        }
        t.receipted = frames;
        while t.notes.front().is_some_and(|&(n, _, _)| n <= frames) {
            t.notes.pop_front();
        }
        Ok(())
    }

    /// Applies the peer's word that it dropped frame `frame` of `id`: the (sending node,
    /// receiving node) of the one-way message it ended, if it ended one. `Err` for a frame
    /// not sent yet or already receipted (no honest peer says so).
    pub fn dropped(
        &mut self,
        id: ConnId,
        frame: u64,
    ) -> std::result::Result<Option<(u32, u32)>, &'static str> {
        let Some(t) = self.tally_mut(id) else {
            return Ok(None);
        };
        if frame > t.sent || frame <= t.receipted {
            return Err("a frame named dropped that was never sent or was receipted");
        }
        let Ok(i) = t.notes.binary_search_by_key(&frame, |&(n, _, _)| n) else {
            return Ok(None);
        };
        Ok(t.notes.remove(i).map(|(_, s, d)| (s, d)))
    }

    /// Notes let go unreceipted beyond [`NOTES_LIMIT`] so far (their peers sent no
    /// receipts: a message of theirs lost with its connection would not be reported).
    pub fn notes_overflowed(&self) -> u64 {
        self.notes_overflowed
    }

    /// Frames numbered on `id` so far, and notes waiting for a receipt there.
    pub fn tally(&self, id: ConnId) -> (u64, usize) {
        self.conn(id)
            .map_or((0, 0), |c| (c.tally.sent, c.tally.notes.len()))
    }

    /// The tally of `id`: its connection's, or the one it left when it closed (receipts
    /// that came with its close still count).
    fn tally_mut(&mut self, id: ConnId) -> Option<&mut Tally> {
        let live = self
            .conns
            .get(id.slot)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.generation == id.generation && !c.reported);
        if live {
            return self.conns[id.slot].as_mut().map(|c| &mut c.tally);
        }
        self.unreceipted
            .iter_mut()
            .find(|(c, _)| *c == id)
            .map(|(_, t)| t)
    }

    /// Moves the tally of connection `slot`, which closed, where
    /// [`Reactor::take_unreceipted`] finds it.
    pub(super) fn keep_unreceipted(&mut self, slot: usize) {
        let id = self.id_of(slot);
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        let t = std::mem::take(&mut c.tally);
        self.unreceipted.push((id, t));
    }

    /// The (sending node, receiving node) of the one-way messages that connection `id`,
    /// now closed, carried last and that its peer never receipted, oldest first (once).
    pub fn take_unreceipted(&mut self, id: ConnId) -> Vec<(u32, u32)> {
        match self.unreceipted.iter().position(|(c, _)| *c == id) {
            Some(i) => {
                let t = self.unreceipted.swap_remove(i).1;
                t.notes.into_iter().map(|(_, s, d)| (s, d)).collect()
            }
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
        assert_eq!(
            r.dropped(id, 7).unwrap(),
            Some((6, 106)),
            "frame 7 ended the note of 6"
        );
        assert_eq!(
            r.dropped(id, 8).unwrap(),
            None,
            "frame 8 ended no one-way message"
        );
        assert!(r.dropped(id, 4).is_err(), "a frame receipted");
        assert!(r.dropped(id, 11).is_err(), "a frame never sent");
        assert_eq!(r.tally(id), (10, 1));
        r.close(id);
        let mut closed = 0;
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while closed == 0 {
            r.poll(&mut |_, ev| closed += matches!(ev, Event::Closed(_)) as u32);
            assert!(std::time::Instant::now() < until, "never reported closed");
        }
        // A receipt that comes with the close still counts.
        r.receipt(id, 9).unwrap();
        assert!(
            r.receipt(id, 11).is_err(),
            "frames never sent, also once closed"
        );
        assert_eq!(
            r.take_unreceipted(id),
            vec![(9, 109)],
            "frame 10 not receipted"
        );
        let (a, _b) = pair();
        let id = r.add(a).unwrap();
        assert!(r
            .send_noted(id, &header(1, 4), &[b"abcd"], Some((1, 2)))
            .unwrap());
        assert!(r
            .send_noted(id, &header(1, 4), &[b"abcd"], Some((3, 4)))
            .unwrap());
        r.close(id);
        let mut closed = 0;
        while closed == 0 {
            r.poll(&mut |_, ev| closed += matches!(ev, Event::Closed(_)) as u32);
            assert!(std::time::Instant::now() < until, "never reported closed");
        }
        assert_eq!(r.take_unreceipted(id), vec![(1, 2), (3, 4)]);
        assert!(r.take_unreceipted(id).is_empty(), "handed over once");
    }
}
