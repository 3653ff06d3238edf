//! Polling: discovery of the inbound rings other processes made, and the passes over the
//! inbound rings and mailboxes that hand each frame to the dispatch.

use super::mailbox;
use super::{Engine, Inbound, Want};
use crate::ring::SlotHeader;
use crate::transport::channel::Lane;

/// Bulk frames taken per ring per poll, after every latency-lane frame.
const BULK_BUDGET: usize = 4;

impl Engine {
    /// Handles a frame a mailbox did not deliver itself (see
    /// [`Mailbox::take`](mailbox::Mailbox::take)).
    pub fn dispatch_frame(
        &mut self,
        at: u32,
        h: SlotHeader,
        payload: &[u8],
        via: Option<super::Via<'_>>,
    ) {
        self.dispatch(at, h, payload, via);
        if self.take_left() {
            // Endpoint rings carry no frame to forward (the mailbox refuses them): one that
            // got here anyway is dropped, not left.
            self.counters.errors += 1;
        }
    }

    /// Takes the inbound channels the transports accepted since the last look.
    fn discover(&mut self) {
        let mut accepted = Vec::new();
        let hosted = &self.hosted;
        let is_hosted = |i: u32| hosted.contains_key(&i);
        self.local.accept(&is_hosted, &mut accepted);
        self.host.accept(&is_hosted, &mut accepted);
        if accepted.is_empty() {
            return;
        }
        for a in accepted {
            let key = (a.src, a.dst, a.lane);
            if a.replaces {
                // The sender restarted under the same index: its old ring is gone.
                self.inbound.retain(|i| (i.src, i.dst, i.lane) != key);
            }
            self.inbound.push(Inbound {
                src: a.src,
                dst: a.dst,
                lane: a.lane,
                consumer: a.inbound,
                stream: false,
                retired: false,
            });
            self.forget_stale_rings_to(a.src);
        }
    }

    /// Drops the rings to `node` made for an earlier registration of its index. A new ring
    /// from `node` may come from a new registration, which replies must reach, and sends do
    /// not check the registry's nodes epoch (replies would otherwise go to the ring of the
    /// index's earlier holder until the next periodic refresh).
    fn forget_stale_rings_to(&mut self, node: u32) {
        if self.ring_outlived(node) {
            self.out_generation.remove(&node);
            self.out.retain(|&(_, dst, _), _| dst != node);
        }
    }

    /// One pass over the inbound rings: delivers what arrived, each frame read in place in
    /// its ring. Returns how many messages.
    pub fn poll(&mut self) -> usize {
        self.poll_for(None)
    }

    /// [`poll`](Self::poll) by a receive waiting for hosted node `want`'s next message: one
    /// that arrives over TCP may go straight into its sink (see `engine::hosts::straight`).
    pub fn poll_for(&mut self, want: Option<&mut Want<'_, '_>>) -> usize {
        self.discover();
        if self.hosts.is_some() {
            self.poll_hosts(want);
        }
        if !self.spikes.is_empty() {
            self.flush_spikes(Some(std::time::Instant::now()));
        }
        if !self.deferred.is_empty() {
            self.flush_deferred();
        }
        let n = if self.inbound.is_empty() {
            0
        } else {
            self.poll_inbound()
        };
        if !self.watched.is_empty() {
            self.wake_watched(None);
        }
        let n = n + self.poll_mailboxes(false);
        self.release_held(None);
        if self.delivery.keeps() || self.delivery.resend_asked {
            self.resend_due();
        }
        if !self.delivery.ready.is_empty() {
            self.take_ahead();
        }
        if !self.delivery.due.is_empty() {
            self.flush_acks(n > 0);
        }
        n
    }

    /// The engine's own inbound rings (from other processes' engines, and between nodes of
    /// this process).
    fn poll_inbound(&mut self) -> usize {
        // Rings made while delivering (replies between nodes of this process) land in
        // `self.inbound` and join the others after the pass.
        let mut inbound = std::mem::take(&mut self.inbound);
        let mut n = 0;
        let mut corrupt = false;
        let mut held = 0;
        // Latency lanes first and fully (up to 64 frames a ring), then a few frames of each
        // bulk lane: an urgent message never waits behind a bulk transfer.
        for pass in [Lane::Latency, Lane::Bulk] {
            let budget = if pass == Lane::Latency {
                64
            } else {
                BULK_BUDGET
            };
            for i in inbound.iter_mut().filter(|i| i.lane == pass) {
                let budget = if i.stream { 64 } else { budget };
                if !i.consumer.ready() {
                    // Empty (or corrupt, which `try_pop` reports): nothing to look up.
                    if i.consumer.corruption().is_none() {
                        continue;
                    }
                }
                let at = i.dst;
                if self.hosted.get(&at).is_some_and(|h| h.mailbox.is_full()) {
                    // Back-pressure: the reader of `at` is behind.
                    continue;
                }
                for _ in 0..budget {
                    match i.consumer.try_pop(&mut |h, d| {
                        self.dispatch(at, h, d, None);
                        !self.take_left()
                    }) {
                        Ok(Some(true)) => n += 1,
                        Ok(Some(false)) => {
                            // A frame to forward found no room onward: the rest of this
                            // ring waits behind it (see `forward::Held`).
                            held += 1;
                            break;
                        }
                        Ok(None) => break,
                        Err(_) => {
                            corrupt = true;
                            break;
                        }
                    }
                }
            }
        }
        if corrupt {
            // The ring is marked in its header (its producer is refused from now on) and is
            // not read again; `opened` keeps its inode so it is not picked up again.
            let before = inbound.len();
            inbound.retain(|i| i.consumer.corruption().is_none());
            self.counters.corrupt_channels += (before - inbound.len()) as u64;
            self.counters.errors += (before - inbound.len()) as u64;
        }
        inbound.append(&mut self.inbound);
        self.inbound = inbound;
        self.set_holding(held);
        n
    }

    /// [`Engine::poll`], and the endpoint rings of nodes without handler too (their
    /// messages join the nodes' queues): for a sender waiting for room, whose peer may be
    /// waiting for this process to read.
    pub fn drain(&mut self) -> usize {
        self.poll() + self.poll_mailboxes(true)
    }

    /// Takes what the endpoint rings of hosted nodes with handlers hold (`all`, or when the
    /// engine's own thread runs: of every hosted node), through the full dispatch (handlers, replies, forwarding; data for
    /// `recv` joins the node's queue). Nodes without handler are otherwise left to `recv`,
    /// which reads their rings in place; a mailbox that a `recv` is polling now is skipped.
    fn poll_mailboxes(&mut self, all: bool) -> usize {
        if self.mailboxes.is_empty() {
            return 0;
        }
        let mailboxes = std::mem::take(&mut self.mailboxes);
        let mut n = 0;
        // Never filled: frames are not delivered here (`take` without `deliver`).
        let mut sink = mailbox::Sink::Message(None);
        for mb in &mailboxes {
            // With its own thread, the engine serves every node (requests to a node without
            // handler need their receipt even while nobody is in `recv`).
            if !mb.is_handled() && (!(all || self.beating) || mb.is_full()) {
                continue;
            }
            let Some(mut rings) = mb.try_rings() else {
                continue;
            };
            for _ in 0..64 {
                let took = mb.take(
                    &mut rings,
                    (false, true),
                    &mut |at, h, d, via| self.dispatch_frame(at, h, d, via),
                    &mut sink,
                );
                if !took {
                    break;
                }
                n += 1;
            }
        }
        // Nodes registered while delivering joined `self.mailboxes`.
        let mut added = std::mem::replace(&mut self.mailboxes, mailboxes);
        if !added.is_empty() {
            self.mailboxes.append(&mut added);
        }
        n
    }
}
