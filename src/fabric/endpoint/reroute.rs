//! Endpoints follow route changes. An endpoint keeps a ring of its own only to a destination
//! its routes reach directly. When routes move (learned routing moved pairs, or a node went
//! down or came back: [`Inner::routes_moved`]) and its destination is now reached through
//! other nodes, it sends through the engine from then on, which follows the routes hop by
//! hop; when they come back to the direct link, it takes a ring of its own again. Other
//! changes of the routes (a node registering) do not move endpoints.
//!
//! Order is kept both ways. Leaving, the endpoint goes on pushing into its ring until the
//! receiver took everything in it, and moves then: a latency-sensitive sender, whose ring is
//! empty between its sends, moves at its next send; a sender that keeps its ring full moves
//! at its first pause. Coming back, it goes on sending through the engine until the engine
//! holds nothing of the pair: every frame it pushed toward the destination taken (on both
//! lanes: an endpoint's messages keep their order at every priority), none kept
//! for an acknowledgement (frames through forwarders are kept until the destination
//! acknowledges them, with fault tolerance on). With fault tolerance off nothing tells that
//! frames through forwarders arrived, so an endpoint that left its ring stays on the engine.
//! Sends by name follow the same rules (they go through the endpoint their thread keeps).
//!
//! Inside a handler (run while the engine is held, whose sends the engine would refuse) an
//! endpoint keeps its way: the change is taken as seen.
//!
//! The check costs the fast path one load of the protocol's routes epoch.

use super::{remove_ring_files, Endpoint, OwnRing, Path, ID_BLOCK};
use crate::fabric::{lock, Inner};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Inner {
    /// Tells the endpoints that routes moved: each checks its way at its next send.
    pub(in crate::fabric) fn routes_moved(&self) {
        self.routes_epoch.fetch_add(1, Ordering::Release);
    }

    /// The routes epoch (see [`Inner::routes_moved`]).
    #[inline]
    pub(in crate::fabric) fn routes_epoch(&self) -> u64 {
        self.routes_epoch.load(Ordering::Acquire)
    }
}

impl Endpoint {
    /// After routes moved: an endpoint with a ring of its own whose destination is no longer
    /// reached directly moves to the engine, once its ring is drained; one through the
    /// engine whose destination is reached directly again takes a ring of its own, once the
    /// engine holds nothing of the pair (see the module).
    pub(super) fn follow_routes(&mut self) {
        let epoch = self.inner.routes_epoch();
        if epoch == self.routes_epoch {
            return;
        }
        if crate::engine::in_handler(self.inner.engine_token) {
            self.routes_epoch = epoch;
            return;
        }
        if matches!(self.path, Path::Engine) {
            self.return_to_ring(epoch);
            return;
        }
        if self.leaving != Some(epoch) {
            let direct = lock(&self.inner.engine)
                .via(self.src, self.dst.index)
                .map_or(true, |v| v == self.dst.index);
            if direct {
                self.routes_epoch = epoch;
                self.leaving = None;
                return;
            }
            self.leaving = Some(epoch);
        }
        let Path::Own { producer, .. } = &mut self.path else {
            return;
        };
        if producer.is_drained() {
            self.leave_ring();
            self.routes_epoch = epoch;
            self.leaving = None;
        }
    }

    /// An endpoint through the engine takes a ring of its own when its destination is a
    /// direct neighbour on this host again and the engine holds nothing of the pair; while
    /// it still does, the endpoint looks again at its next send.
    fn return_to_ring(&mut self, epoch: u64) {
        let inner = self.inner.clone();
        if !inner.options.enable_fault_tolerance {
            self.routes_epoch = epoch;
            return;
        }
        let mut e = lock(&inner.engine);
        let (src, dst) = (self.src, self.dst.index);
        let direct = e.via(src, dst).is_ok_and(|v| v == dst) && !e.over_tcp(dst);
        if !direct {
            self.routes_epoch = epoch;
            return;
        }
        // The endpoint's messages keep their order whatever their priority: the bulk lane
        // too, if it sent on it.
        let drained = if self.bulk_lane {
            e.drained_toward_every_lane(src, dst)
        } else {
            e.drained_toward(src, dst)
        };
        if !drained {
            return;
        }
        let names = (&self.source, &self.destination);
        let Ok(own) = OwnRing::make(&inner, &mut e, (src, self.src_generation), self.dst, names)
        else {
            // The destination left: sends through the engine say so.
            self.routes_epoch = epoch;
            return;
        };
        let replies = Arc::new(own.replies);
        let ids = e.reserve_ids_for(ID_BLOCK, &replies);
        drop(e);
        if let Path::Own {
            file: Some(file), ..
        } = &own.path
        {
            if self.named {
                lock(&inner.ring_files).push(file.clone());
            }
        }
        self.path = own.path;
        self.dst_owner = own.owner;
        self.lend_to = own
            .owner
            .map_or_else(crate::sys::process::pid, |(pid, _)| pid);
        self.replies = Some(replies);
        self.ids = ids..ids + ID_BLOCK;
        self.routes_epoch = epoch;
        self.leaving = None;
        self.bulk_lane = false;
        inner.registry.ring_bell(dst);
    }

    /// Lets go of the endpoint's own ring, drained, and of its reply ring: it sends through
    /// the engine from now on (requests issued before are still answered by their ring,
    /// which they hold).
    fn leave_ring(&mut self) {
        if let Path::Own {
            file: Some(file), ..
        } = std::mem::replace(&mut self.path, Path::Engine)
        {
            if self.named {
                self.inner.unlist(&file);
            }
            // The receiver keeps its mappings; nobody finds the rings again. It is told that
            // channels changed, so it looks and lets go of the ring.
            remove_ring_files(&self.inner.registry, &file);
        }
        self.replies = None;
        // Ids for the engine's answers, not the reply ring's.
        self.ids = 0..0;
    }
}
