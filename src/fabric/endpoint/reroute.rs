//! Endpoints follow route changes. An endpoint keeps a ring of its own only to a destination
//! its routes reach directly. When routes move (learned routing moved pairs, or a node went
//! down or came back: [`Inner::routes_moved`]) and its destination is now reached through
//! other nodes, it sends through the engine from then on, which follows the routes hop by
//! hop. Other changes of the routes (a node registering) do not move endpoints.
//!
//! Order is kept: the endpoint goes on pushing into its ring until the receiver took
//! everything in it, and moves then. A latency-sensitive sender, whose ring is empty between
//! its sends, moves at its next send; a sender that keeps its ring full moves at its first
//! pause. An endpoint that moved stays on the engine (so do sends by name of the thread that
//! keeps it); an endpoint made later takes its own ring again if the route is direct by then.
//!
//! Inside a handler (run while the engine is held, whose sends the engine would refuse) an
//! endpoint keeps its ring: the change is taken as seen.
//!
//! The check costs the fast path one load of the protocol's routes epoch.

use super::{remove_ring_files, Endpoint, Path};
use crate::fabric::{lock, Inner};
use std::sync::atomic::Ordering;

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
    /// reached directly moves to the engine, once its ring is drained (see the module).
    pub(super) fn follow_routes(&mut self) {
        let epoch = self.inner.routes_epoch();
        if epoch == self.routes_epoch {
            return;
        }
        if !matches!(self.path, Path::Own { .. })
            || crate::engine::in_handler(self.inner.engine_token)
        {
            self.routes_epoch = epoch;
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
