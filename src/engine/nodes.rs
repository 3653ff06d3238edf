//! The nodes: those this process hosts (registration, handlers, mailboxes) and the host's
//! other live nodes as the registry lists them (their ids, indices and owners).

use super::mailbox::Mailbox;
use super::{Engine, Handler, Hosted, Message, NodeName, Peer};
use crate::error::{Error, Result};
use crate::model::NodeSignature;
use crate::transport::registry::NodeEntry;
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

impl Engine {
    /// Registers a node hosted by this process.
    pub fn register(&mut self, node: &NodeSignature) -> Result<u32> {
        let index = self.registry.register(node)?;
        let generation = self.registry.get(index).map_or(0, |e| e.generation);
        let bell = *self.bell.get_or_insert(index);
        self.registry.set_bell(index, bell);
        let mailbox = Arc::new(Mailbox::new(
            self.registry.clone(),
            (index, generation),
            NodeName::from(node.node_id.as_str()),
        ));
        self.hosted.insert(
            index,
            Hosted {
                id: NodeName::from(node.node_id.as_str()),
                generation,
                handler: None,
                mailbox: mailbox.clone(),
            },
        );
        self.mailboxes.push(mailbox);
        self.by_name.insert(node.node_id.clone(), index);
        self.handler_watch.set_nodes(self.hosted.keys().copied());
        Ok(index)
    }

    /// Removes a node hosted by this process, its rings and its queued messages. Returns its
    /// handler, for the caller to drop once it let go of the engine (see
    /// [`set_handler`](Self::set_handler)).
    pub fn unregister(&mut self, node_id: &str) -> Result<Option<Handler>> {
        let index = self.hosted_index(node_id)?;
        // No heartbeat of this process may land in the entry once another node takes it.
        self.handler_watch
            .set_nodes(self.hosted.keys().copied().filter(|&i| i != index));
        self.registry.unregister(index)?;
        let mut handler = None;
        if let Some(h) = self.hosted.remove(&index) {
            h.mailbox.close();
            handler = h.handler;
        }
        self.mailboxes.retain(|m| m.node() != index);
        self.by_name.remove(node_id);
        self.out.retain(|&(s, d, _), _| s != index && d != index);
        self.inbound.retain(|i| i.dst != index);
        self.forget_tcp_rings(index);
        self.host.forget(index);
        self.local.forget(index);
        self.partial.drop_source(index);
        if self.bell == Some(index) {
            // Move the doorbell to a node that stays.
            self.bell = self.hosted.keys().next().copied();
            if let Some(b) = self.bell {
                for &i in self.hosted.keys() {
                    self.registry.set_bell(i, b);
                }
            }
        }
        Ok(handler)
    }

    /// The index of a node this process hosts.
    pub fn hosted_index(&self, node_id: &str) -> Result<u32> {
        self.by_name.get(node_id).copied().ok_or_else(|| {
            Error::NodeNotFound(format!("node {node_id:?} is not hosted by this process"))
        })
    }

    /// The registration generation of a node this process hosts.
    pub fn hosted_generation(&self, index: u32) -> Option<u64> {
        self.hosted.get(&index).map(|h| h.generation)
    }
    /// Ids of the nodes this process hosts.
    pub fn hosted_ids(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// Sets (or clears) a node's request handler. While it runs, [`in_handler`] says so
    /// for this engine (the handler runs with the engine held: its thread must not wait for
    /// the engine again).
    /// Returns the handler it replaces, for the caller to drop once it let go of the engine
    /// (a handler may hold what takes the engine when dropped: a request, the protocol).
    pub fn set_handler(
        &mut self,
        node_id: &str,
        handler: Option<Handler>,
    ) -> Result<Option<Handler>> {
        let i = self.hosted_index(node_id)?;
        let token = self.token;
        let handler = handler.map(|mut f| -> Handler {
            Box::new(move |m, reply| {
                let _inside = Inside::enter(token);
                f(m, reply)
            })
        });
        let h = self.hosted.get_mut(&i).expect("indexed");
        h.mailbox.set_handled(handler.is_some());
        Ok(std::mem::replace(&mut h.handler, handler))
    }

    /// This engine's token: what [`in_handler`] is asked with.
    pub fn token(&self) -> usize {
        self.token
    }

    /// Takes the oldest queued message of a hosted node.
    pub fn take_inbox(&mut self, node_id: &str) -> Result<Option<Message>> {
        let i = self.hosted_index(node_id)?;
        Ok(self.hosted.get(&i).expect("indexed").mailbox.next_queued())
    }

    /// The mailbox of a hosted node: `recv` takes from it without the engine.
    pub fn mailbox(&self, node_id: &str) -> Result<Arc<Mailbox>> {
        let i = self.hosted_index(node_id)?;
        Ok(self.hosted.get(&i).expect("indexed").mailbox.clone())
    }

    /// The mailbox of hosted node `index`.
    pub fn mailbox_of(&self, index: u32) -> Option<Arc<Mailbox>> {
        self.hosted.get(&index).map(|h| h.mailbox.clone())
    }
    /// The id of node `index`, from a cache that is dropped whenever the host's nodes change
    /// (reading the registry entry decodes its signature: too slow for every message).
    pub(super) fn name_of(&mut self, index: u32) -> NodeName {
        self.fresh_names();
        if let Some(n) = self.names.get(&index) {
            return *n;
        }
        let name = NodeName::from(self.id_of(index).unwrap_or_else(|| format!("#{index}")));
        self.names.insert(index, name);
        name
    }

    /// Forgets the names of node indices when the registry's nodes changed (the names
    /// cached in [`Engine::name_of`] hold until then).
    pub(super) fn fresh_names(&mut self) {
        let epoch = self.registry.nodes_epoch();
        if epoch != self.names_epoch {
            // The peers too: an index may now belong to another node than the one listed.
            let _ = self.refresh_peers();
            self.names.clear();
            self.names_epoch = epoch;
        }
    }

    /// The id of node `index`: hosted here, of this host, or of another host.
    pub fn node_id(&self, index: u32) -> Option<String> {
        self.id_of(index)
    }

    /// How messages name node `index`: its id, quoted, with the index; the index alone for
    /// one no node holds now.
    pub fn name_for_errors(&self, index: u32) -> String {
        match self.id_of(index) {
            Some(id) => format!("{id:?} (index {index})"),
            None => format!("index {index}"),
        }
    }

    pub(super) fn id_of(&self, index: u32) -> Option<String> {
        self.hosted
            .get(&index)
            .map(|h| h.id.to_string())
            .or_else(|| {
                self.peers
                    .values()
                    .find(|e| e.index == index)
                    .map(|e| e.signature.node_id.clone())
            })
            .or_else(|| self.registry.get(index).map(|e| e.signature.node_id))
            .or_else(|| self.remote_id(index))
    }
    pub(super) fn refresh_peers(&mut self) -> Result<()> {
        let epoch = self.registry.nodes_epoch();
        if epoch != self.peers_epoch {
            self.hops.clear();
            let before: Vec<(u32, u64, u32, u64)> = self
                .peers
                .values()
                .map(|e| (e.index, e.generation, e.owner_pid, e.owner_start))
                .collect();
            self.peers = self
                .registry
                .list()?
                .into_iter()
                .map(|e| (e.signature.node_id.clone(), e))
                .collect();
            self.peers_epoch = epoch;
            self.forget_gone_peers(&before);
            // Rings to a destination that left, or came back as a new registration, lead
            // nowhere: drop them so the next send makes new ones.
            let live: HashMap<u32, u64> = self
                .peers
                .values()
                .map(|e| (e.index, e.generation))
                .collect();
            // A node of another host is judged by what its connection announced.
            let stale: Vec<u32> = self
                .out_generation
                .iter()
                .filter(|&(&d, g)| {
                    if crate::transport::tcp::is_remote(d) {
                        self.live_generation(d) != Some(*g)
                    } else {
                        live.get(&d) != Some(g)
                    }
                })
                .map(|(&d, _)| d)
                .collect();
            for d in stale {
                self.out_generation.remove(&d);
                self.out.retain(|&(_, dst, _), _| dst != d);
            }
        }
        Ok(())
    }

    /// Every live node of the host, by id.
    pub fn peers(&mut self) -> Result<&HashMap<String, NodeEntry>> {
        self.refresh_peers()?;
        Ok(&self.peers)
    }

    /// The registry entry of any live node of the host.
    pub fn resolve(&mut self, node_id: &str) -> Result<Peer> {
        self.refresh_peers()?;
        self.peers
            .get(node_id)
            .map(|e| Peer {
                index: e.index,
                generation: e.generation,
            })
            .or_else(|| {
                self.remote_by_name(node_id)
                    .map(|(index, generation)| Peer { index, generation })
            })
            .ok_or_else(|| {
                Error::NodeNotFound(format!("node {node_id:?} is not registered in this fabric"))
            })
    }
    /// Whether this process hosts node `index`.
    pub fn hosts(&self, index: u32) -> bool {
        self.hosted.contains_key(&index)
    }
    /// The pid of the process hosting node `index` when it is another process of the host.
    pub(crate) fn owner_of(&self, index: u32) -> Option<u32> {
        if self.hosted.contains_key(&index) {
            return None;
        }
        self.peers
            .values()
            .find(|e| e.index == index)
            .map(|e| e.owner_pid)
            // A node registered since the peers were listed: the registry knows it.
            .or_else(|| self.registry.get(index).map(|e| e.owner_pid))
    }
}

thread_local! {
    /// The tokens of the engines whose handlers this thread runs now, innermost last (a
    /// handler of one engine may wait for a request that runs another's).
    static HANDLING: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Tokens of engines, one per engine of the process.
static TOKENS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// A fresh engine token.
pub(super) fn new_token() -> usize {
    TOKENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Whether the calling thread runs a handler of the engine with `token` now.
pub fn in_handler(token: usize) -> bool {
    HANDLING
        .try_with(|h| h.try_borrow().is_ok_and(|h| h.contains(&token)))
        .unwrap_or(false)
}

/// Marks the thread as running a handler of an engine until dropped.
struct Inside;

impl Inside {
    fn enter(token: usize) -> Inside {
        let _ = HANDLING.try_with(|h| h.borrow_mut().push(token));
        Inside
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        let _ = HANDLING.try_with(|h| h.borrow_mut().pop());
    }
}
