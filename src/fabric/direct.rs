//! Direct channels, the lock-free fast path: a [`Sender`](crate::transport::direct::Sender)
//! per pair and one [`DirectReceiver`] per hosted node, which the engine never polls.

use super::{lock, HyperFabricProtocol, SendOptions};
use crate::error::{Error, Result};
use crate::sys::process::Origin;
use crate::transport::registry::Registry;
use std::sync::{Arc, Mutex};

impl HyperFabricProtocol {
    /// Opens a direct channel from hosted node `source` to `destination` (a live node of any
    /// process of the host): the lock-free fast path. Its [`Sender`] pushes into a ring of its
    /// own, which the destination's [`DirectReceiver`] polls; no lock, lookup, route or
    /// allocation per message. No zone, constraint, compression or encryption applies, and
    /// messages do not keep order with `post`/`send_data` ones. `NodeNotFoundError` for an
    /// unknown node; `ZoneIsolationViolationError` when a zone forbids the pair.
    ///
    /// [`Sender`]: crate::transport::direct::Sender
    pub fn open_sender(
        &self,
        source: &str,
        destination: &str,
    ) -> Result<crate::transport::direct::Sender> {
        self.inner.check_process()?;
        let (src, dst) = self.inner.endpoints(source, destination)?;
        if self
            .inner
            .check_route(source, destination, &SendOptions::default())?
        {
            return Err(Error::ZoneIsolationViolation(format!(
                "{source:?} -> {destination:?} crosses a quantum_secure zone: direct channels \
                 are not encrypted"
            )));
        }
        let n = super::next_ring_number();
        crate::transport::direct::Sender::create(
            self.inner.registry.clone(),
            (src, dst.index, dst.generation),
            n,
        )
    }

    /// The receiver of every direct channel to hosted node `node`. One per node at a time
    /// (`InvalidArgumentError` while another is open); it is polled by the thread that owns
    /// it, never by the engine.
    pub fn open_receiver(&self, node: &str) -> Result<DirectReceiver> {
        self.inner.check_process()?;
        let index = lock(&self.inner.engine).hosted_index(node)?;
        if !lock(&self.inner.receivers).insert(index) {
            return Err(Error::InvalidArgument(format!(
                "node {node:?} already has an open direct receiver"
            )));
        }
        Ok(DirectReceiver {
            receiver: crate::transport::direct::Receiver::new(self.inner.registry.clone(), index),
            claims: self.inner.receivers.clone(),
            names: Default::default(),
            origin: self.inner.origin,
        })
    }
}

/// The receiver of a node's direct channels (see [`HyperFabricProtocol::open_receiver`]);
/// derefs to [`crate::transport::direct::Receiver`].
pub struct DirectReceiver {
    receiver: crate::transport::direct::Receiver,
    claims: Arc<Mutex<std::collections::HashSet<u32>>>,
    names: rustc_hash::FxHashMap<u32, crate::engine::NodeName>,
    /// The process of the protocol that opened it (a `fork()` child must not poll the
    /// parent's rings: each has one consumer).
    origin: Origin,
}

impl DirectReceiver {
    /// The id of node `index` (a source given by `try_recv_with`), cached.
    pub fn node_name(&mut self, index: u32) -> Option<crate::engine::NodeName> {
        if let Some(n) = self.names.get(&index) {
            return Some(*n);
        }
        let name = crate::engine::NodeName::intern(
            &self.receiver_registry().get(index)?.signature.node_id,
        );
        self.names.insert(index, name);
        Some(name)
    }

    /// The process of the protocol that opened the receiver.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    fn receiver_registry(&self) -> &Registry {
        self.receiver.registry()
    }
}

impl std::fmt::Debug for DirectReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.receiver.fmt(f)
    }
}

impl std::ops::Deref for DirectReceiver {
    type Target = crate::transport::direct::Receiver;
    fn deref(&self) -> &Self::Target {
        &self.receiver
    }
}

impl std::ops::DerefMut for DirectReceiver {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.receiver
    }
}

impl Drop for DirectReceiver {
    fn drop(&mut self) {
        if !self.origin.is_current() {
            // A fork() child's copy: the claim is the parent's.
            return;
        }
        lock(&self.claims).remove(&self.receiver.node());
    }
}
