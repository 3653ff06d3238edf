//! The protocol's host topology, kept in step with the registry (the host's live nodes, the
//! configured links, the fabric's zones and memberships), and the topology report.

use super::{lock, HyperFabricProtocol, Inner};
use crate::error::Result;
use crate::model::TopologyInfo;
use crate::routing::TopologyManager;
use crate::transport::registry::NodeEntry;
use std::sync::atomic::Ordering;

impl HyperFabricProtocol {
    /// The topology of the host's nodes (kept in step with the registry).
    pub fn topology(&self) -> Result<&TopologyManager> {
        self.inner.check_process()?;
        self.sync_topology()?;
        Ok(&self.inner.topology)
    }

    pub(super) fn sync_topology(&self) -> Result<()> {
        sync_topology(&self.inner)
    }

    /// Topology state, with the engine's traffic counters in `performance_metrics`.
    pub fn get_topology_info(&self) -> Result<TopologyInfo> {
        self.inner.check_process()?;
        topology_info(&self.inner)
    }
}

/// [`HyperFabricProtocol::get_topology_info`] of `inner`.
pub(super) fn topology_info(inner: &Inner) -> Result<TopologyInfo> {
    sync_topology(inner)?;
    let mut info = inner.topology.topology_info()?;
    let c = inner.counters();
    let m = &mut info.performance_metrics;
    m.insert("frames_sent".into(), c.frames_sent as f64);
    m.insert("frames_received".into(), c.frames_received as f64);
    m.insert("bytes_sent".into(), c.bytes_sent as f64);
    m.insert("bytes_received".into(), c.bytes_received as f64);
    m.insert("errors".into(), c.errors as f64);
    m.insert("corrupt_channels".into(), c.corrupt_channels as f64);
    m.insert(
        "abandoned_reassemblies".into(),
        c.abandoned_reassemblies as f64,
    );
    m.insert("forward_stalls".into(), c.forward_stalls as f64);
    m.insert("forward_unrouted".into(), c.forward_unrouted as f64);
    m.insert("forwards_waiting".into(), c.forwards_waiting as f64);
    m.insert("reassemblies".into(), c.reassemblies as f64);
    m.insert("reassembly_bytes".into(), c.reassembly_bytes as f64);
    m.insert("low_isolation_waits".into(), inner.paced_waits() as f64);
    if inner.options.enable_ml_routing {
        let l = lock(&inner.learned);
        m.insert("learned_samples".into(), l.samples as f64);
        m.insert("learned_handovers".into(), l.handovers as f64);
        m.insert("route_changes".into(), l.route_changes as f64);
        m.insert("learned_scored".into(), l.scored as f64);
        m.insert("learned_links".into(), l.links.len() as f64);
        m.insert("learned_error_ns".into(), l.learned_error_ns);
        m.insert("fixed_model_error_ns".into(), l.fixed_error_ns);
    }
    let e = lock(&inner.engine);
    m.insert("inbound_rings".into(), e.inbound_rings() as f64);
    let d = e.delivery_counters();
    for (name, v) in [
        ("delivery_sequenced", d.sequenced),
        ("delivery_resent", d.resent),
        ("delivery_timeouts", d.timeouts),
        ("delivery_acks_sent", d.acks_sent),
        ("delivery_acks_received", d.acks_received),
        ("delivery_duplicates_refused", d.duplicates),
        ("delivery_out_of_order_refused", d.out_of_order),
        ("delivery_corrupt_refused", d.corrupt),
        ("delivery_stale_refused", d.stale),
        ("delivery_failed", d.failed),
        ("delivery_failed_requests", d.failed_requests),
        ("delivery_failed_unreceipted", d.unreceipted),
        ("delivery_kept_frames", d.kept_frames),
        ("delivery_kept_bytes", d.kept_bytes),
        ("delivery_streams_out", d.streams_out),
        ("delivery_streams_in", d.streams_in),
    ] {
        m.insert(name.into(), v as f64);
    }
    if let Some(f) = e.fault_counters() {
        for (name, v) in [
            ("faults_dropped", f.dropped),
            ("faults_duplicated", f.duplicated),
            ("faults_corrupted", f.corrupted),
            ("faults_reordered", f.reordered),
            ("faults_delayed", f.delayed),
            ("faults_stalled", f.stalled),
        ] {
            m.insert(name.into(), v as f64);
        }
    }
    if inner.tcp.is_some() {
        let t = e.host_counters();
        m.insert("tcp_connections".into(), t.connections as f64);
        m.insert("tcp_closed".into(), t.closed as f64);
        m.insert("tcp_closed_silent".into(), t.silent as f64);
        m.insert("tcp_frames_refused".into(), t.refused as f64);
        m.insert("tcp_receives_held".into(), t.held as f64);
        m.insert("tcp_receive_holds".into(), t.holds as f64);
        m.insert("tcp_frames_in_place".into(), t.in_place as f64);
        m.insert("tcp_frames_landed".into(), t.landed as f64);
        m.insert("tcp_messages_handed".into(), t.handed as f64);
        m.insert("tcp_messages_into_buffers".into(), t.into_buffers as f64);
        m.insert("tcp_receive_buffers_taken_back".into(), t.taken_back as f64);
        m.insert(
            "tcp_receipt_notes_overflowed".into(),
            t.notes_overflowed as f64,
        );
    }
    if let Some(t) = &inner.tcp {
        m.insert(
            "tcp_handshakes_refused".into(),
            t.refused.load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
    }
    if let Some(o) = e.opener() {
        // Sealed frames dropped at this process: not authentic, or replayed.
        m.insert("sealed_refused".into(), o.refused() as f64);
        m.insert("sealed_replays_refused".into(), o.replays_refused() as f64);
    }
    Ok(info)
}

/// Brings the topology in step with the registry: the host's live nodes, and the configured
/// links between them. Uses the protocol's own registry handle, never the engine, so the
/// engine's router may call it.
pub(super) fn sync_topology(inner: &Inner) -> Result<()> {
    let mut seen = lock(&inner.topology_epoch);
    let remote = inner.tcp.as_ref().map(|t| t.directory.list());
    let epoch = (
        inner.registry.nodes_epoch(),
        inner.registry.zones_epoch(),
        inner.tcp.as_ref().map_or(0, |t| t.directory.epoch()),
    );
    if *seen == epoch {
        return Ok(());
    }
    let mut peers: Vec<NodeEntry> = inner.registry.list()?;
    // Nodes of other hosts that are up, with their host in their metadata.
    for n in remote.into_iter().flatten().filter(|n| n.up) {
        let mut signature = n.signature;
        if !n.host.is_empty() {
            signature
                .metadata
                .get_or_insert_with(Default::default)
                .insert("host".into(), n.host.clone().into());
        }
        peers.push(NodeEntry {
            index: n.index,
            signature,
            owner_pid: 0,
            owner_start: 0,
            generation: n.generation,
            since_unix_ns: 0,
        });
    }
    let tm = &inner.topology;
    // Tables for the nodes of this process: the sources of its sends and forwards (a query
    // from another node is answered by a search of its own).
    let me = crate::sys::process::pid();
    let mut hosted: Vec<String> = peers
        .iter()
        .filter(|p| p.owner_pid == me)
        .map(|p| p.signature.node_id.clone())
        .collect();
    hosted.sort();
    tm.routing()
        .set_sources(crate::routing::SourceSet::Nodes(hosted));
    let host_of = |n: &crate::model::NodeSignature| {
        n.metadata
            .as_ref()
            .and_then(|m| m.get("host"))
            .map(|h| h.to_string())
    };
    let known: Vec<(String, Option<String>)> =
        tm.read(|t| t.nodes().map(|n| (n.node_id.clone(), host_of(n))).collect());
    let by_id: std::collections::HashMap<&str, &NodeEntry> = peers
        .iter()
        .map(|p| (p.signature.node_id.as_str(), p))
        .collect();
    let mut known_ids = std::collections::HashSet::with_capacity(known.len());
    for (id, host) in known {
        // A node of another host whose host became known (or changed) is taken anew.
        match by_id.get(id.as_str()) {
            Some(p)
                if p.index < crate::transport::tcp::REMOTE_BASE
                    || host_of(&p.signature) == host =>
            {
                known_ids.insert(id);
            }
            _ => tm.remove_node(&id)?,
        }
    }
    let known = known_ids;
    for p in &peers {
        if !known.contains(&p.signature.node_id) {
            tm.add_node(p.signature.clone())?;
        }
    }
    let present = |id: &str| by_id.contains_key(id);
    let declared = |a: &str, b: &str| {
        tm.read(|t| {
            t.declared_links()
                .iter()
                .any(|d| (d.a == a && d.b == b) || (d.a == b && d.b == a))
        })
    };
    for l in &inner.links {
        if present(&l.a) && present(&l.b) && !declared(&l.a, &l.b) {
            tm.add_link(l.clone())?;
        }
    }
    // Where links are declared, a node registered at run time (a tool attaching to a
    // running fabric) declares its own in its signature's metadata; with implied links
    // every pair is linked already. One link, and only for a node the configured links do
    // not name: such a node is a leaf, so no route of the fabric can be drawn through it.
    if tm.read(|t| t.link_policy()) == crate::topology::LinkPolicy::Explicit {
        for p in &peers {
            let id = &p.signature.node_id;
            let configured = inner.links.iter().any(|l| &l.a == id || &l.b == id);
            let mut wanted = declared_links(&p.signature);
            let (Some(other), None) = (wanted.next(), wanted.next()) else {
                continue;
            };
            if !configured && present(other) && other != id && !declared(id, other) {
                tm.add_link(crate::topology::LinkSpec::new(
                    id.clone(),
                    other.to_string(),
                ))?;
            }
        }
    }
    sync_zones(inner, &present)?;
    *seen = epoch;
    inner.zones_seen.store(epoch.1, Ordering::Release);
    Ok(())
}

/// Metadata key under which a node registered at run time names the node it is linked to
/// (an array of one id; a node that names more, or that configured links name, gets none).
pub const LINKS_KEY: &str = "hf_links";

/// The links `node` declares in its metadata ([`LINKS_KEY`]); entries that are not strings
/// are ignored.
fn declared_links(node: &crate::model::NodeSignature) -> impl Iterator<Item = &str> {
    node.metadata
        .as_ref()
        .and_then(|m| m.get(LINKS_KEY))
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
}

/// Brings the topology's zones and memberships in step with the fabric's zone table (members
/// that are not registered now join when they are).
fn sync_zones(inner: &Inner, present: &dyn Fn(&str) -> bool) -> Result<()> {
    let table = inner.registry.zones()?;
    let tm = &inner.topology;
    let local: Vec<crate::model::FabricZone> =
        tm.read(|t| t.zones().iter().map(|z| z.zone.clone()).collect());
    for z in &local {
        if !table.zones.contains(z) {
            tm.delete_zone(&z.zone_id)?;
        }
    }
    for z in &table.zones {
        if !local.contains(z) {
            // Admitted by the process that created it; this view may count capacity
            // differently while nodes come and go, so it is taken as given.
            let _ = tm.create_zone(z.clone());
        }
        let want: Vec<&String> = table
            .members
            .get(&z.zone_id)
            .map(|m| m.iter().filter(|id| present(id)).collect())
            .unwrap_or_default();
        let have: Vec<String> = tm.read(|t| {
            t.zone(&z.zone_id)
                .map(|s| s.members.iter().cloned().collect())
                .unwrap_or_default()
        });
        for id in &have {
            if !want.contains(&id) {
                tm.unassign_from_zone(&z.zone_id, id)?;
            }
        }
        for id in want {
            if !have.contains(id) {
                let _ = tm.assign_to_zone(&z.zone_id, id);
            }
        }
    }
    // Sends are checked while some zone isolates, or limits the rate across its boundary.
    let active = tm.read(|t| {
        t.zones().iter().any(|z| {
            let level = z.zone.isolation_level;
            !z.members.is_empty()
                && (level >= crate::model::IsolationLevel::Medium
                    || level == crate::model::IsolationLevel::Low
                        && z.zone.required_bandwidth_gbps > 0.0)
        })
    });
    inner.zones_active.store(active, Ordering::Release);
    Ok(())
}
