//! Zones of the topology: their members, admission (bandwidth, size, quantum capability) and
//! the isolation and encryption rules between nodes.

use super::graph::Topology;
use crate::error::{Error, Result};
use crate::model::{FabricZone, IsolationLevel, ZoneType};
use std::collections::BTreeSet;

/// A zone and its members.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneState {
    /// The zone's specification.
    pub zone: FabricZone,
    /// Member node ids, sorted.
    pub members: BTreeSet<String>,
}

impl Topology {
    /// Creates a zone. `DuplicateZoneError` if the id exists; `InsufficientResourcesError` if
    /// its reservation does not fit in the node bandwidth that other zones leave.
    pub fn create_zone(&mut self, zone: FabricZone) -> Result<()> {
        zone.validate()?;
        if self.zones.iter().any(|z| z.zone.zone_id == zone.zone_id) {
            return Err(Error::DuplicateZone(format!(
                "zone {:?} already exists",
                zone.zone_id
            )));
        }
        // Folded from +0 (an empty float sum is -0, printed "-0").
        let reserved: f64 = self
            .zones
            .iter()
            .map(|z| z.zone.required_bandwidth_gbps)
            .fold(0.0, |a, b| a + b);
        let capacity = self.capacity_gbps();
        if reserved + zone.required_bandwidth_gbps > capacity {
            return Err(Error::InsufficientResources(format!(
                "zone {:?} requires {} Gbit/s but the fabric has {} Gbit/s of node bandwidth \
                 of which {} Gbit/s is reserved by other zones",
                zone.zone_id, zone.required_bandwidth_gbps, capacity, reserved
            )));
        }
        self.zones.push(ZoneState {
            zone,
            members: BTreeSet::new(),
        });
        self.touch();
        Ok(())
    }

    fn zone_mut(&mut self, zone_id: &str) -> Result<&mut ZoneState> {
        self.zones
            .iter_mut()
            .find(|z| z.zone.zone_id == zone_id)
            .ok_or_else(|| Error::ZoneNotFound(format!("zone {zone_id:?} does not exist")))
    }

    /// A zone and its members.
    pub fn zone(&self, zone_id: &str) -> Result<&ZoneState> {
        self.zones
            .iter()
            .find(|z| z.zone.zone_id == zone_id)
            .ok_or_else(|| Error::ZoneNotFound(format!("zone {zone_id:?} does not exist")))
    }

    /// Deletes a zone (its members stay in the fabric).
    pub fn delete_zone(&mut self, zone_id: &str) -> Result<FabricZone> {
        self.zone(zone_id)?;
        let pos = self
            .zones
            .iter()
            .position(|z| z.zone.zone_id == zone_id)
            .expect("zone exists");
        let z = self.zones.remove(pos);
        self.touch();
        Ok(z.zone)
    }

    /// Makes a node a member of a zone. `InsufficientResourcesError` when the zone already has
    /// `max_nodes` members; `InvalidZoneError` when the zone requires quantum coherence and
    /// the node is not quantum-capable.
    pub fn assign_to_zone(&mut self, zone_id: &str, node_id: &str) -> Result<()> {
        let hw = self.node(node_id)?.hardware_type;
        let z = self.zone_mut(zone_id)?;
        if z.members.contains(node_id) {
            return Ok(());
        }
        if z.members.len() >= z.zone.max_nodes as usize {
            return Err(Error::InsufficientResources(format!(
                "zone {zone_id:?} is full: max_nodes is {}",
                z.zone.max_nodes
            )));
        }
        if z.zone.quantum_coherence_required && !hw.is_quantum_capable() {
            return Err(Error::InvalidZone(format!(
                "zone {zone_id:?} requires quantum coherence but node {node_id:?} is {hw}"
            )));
        }
        z.members.insert(node_id.to_string());
        self.touch();
        Ok(())
    }

    /// Removes a node from a zone; `NodeNotFoundError` if it was not a member.
    pub fn unassign_from_zone(&mut self, zone_id: &str, node_id: &str) -> Result<()> {
        let z = self.zone_mut(zone_id)?;
        if !z.members.remove(node_id) {
            return Err(Error::NodeNotFound(format!(
                "node {node_id:?} is not a member of zone {zone_id:?}"
            )));
        }
        self.touch();
        Ok(())
    }

    /// Zones in creation order.
    pub fn zones(&self) -> &[ZoneState] {
        &self.zones
    }

    /// Ids of zones with isolation at least `level` that contain `node_id`.
    pub fn zones_of(&self, node_id: &str, level: IsolationLevel) -> Vec<&str> {
        self.zones
            .iter()
            .filter(|z| z.zone.isolation_level >= level && z.members.contains(node_id))
            .map(|z| z.zone.zone_id.as_str())
            .collect()
    }

    /// The MEDIUM-and-above endpoint rule between two nodes: when one is a member of such a
    /// zone and the other is neither a member nor a control-plane node, why their traffic is
    /// forbidden.
    pub fn isolation_violation(&self, a: &str, b: &str) -> Option<String> {
        for z in &self.zones {
            if z.zone.isolation_level < IsolationLevel::Medium {
                continue;
            }
            let (ma, mb) = (z.members.contains(a), z.members.contains(b));
            if ma == mb {
                continue;
            }
            let (inside, outside) = if ma { (a, b) } else { (b, a) };
            if !self.is_control_plane(outside) {
                return Some(format!(
                    "zone {:?} ({}) isolates {inside:?}: {outside:?} is neither a member nor a \
                     control-plane node",
                    z.zone.zone_id, z.zone.isolation_level
                ));
            }
        }
        None
    }

    /// The rate limit of LOW isolation on traffic between `a` and `b`: for each LOW zone
    /// with a reservation of which exactly one of them is a member, the member's bandwidth
    /// less its share of the reservation (the reservation over the members), at least 1 % of
    /// its bandwidth. The lowest such limit in Gbit/s, with its zone; `None` when no LOW
    /// zone's boundary lies between them.
    pub fn low_isolation_limit(&self, a: &str, b: &str) -> Option<(String, f64)> {
        let mut limit: Option<(String, f64)> = None;
        for z in &self.zones {
            if z.zone.isolation_level != IsolationLevel::Low
                || z.zone.required_bandwidth_gbps <= 0.0
            {
                continue;
            }
            let (ma, mb) = (z.members.contains(a), z.members.contains(b));
            if ma == mb {
                continue;
            }
            let member = if ma { a } else { b };
            let Ok(sig) = self.node(member) else { continue };
            let share = z.zone.required_bandwidth_gbps / z.members.len().max(1) as f64;
            let gbps = (sig.bandwidth_gbps - share).max(sig.bandwidth_gbps / 100.0);
            if limit.as_ref().is_none_or(|(_, l)| gbps < *l) {
                limit = Some((z.zone.zone_id.clone(), gbps));
            }
        }
        limit
    }

    /// A QUANTUM_SECURE zone with `a` or `b` as member, if any: traffic between them must be
    /// encrypted.
    pub fn encryption_zone(&self, a: &str, b: &str) -> Option<&str> {
        self.zones
            .iter()
            .find(|z| {
                z.zone.isolation_level == IsolationLevel::QuantumSecure
                    && (z.members.contains(a) || z.members.contains(b))
            })
            .map(|z| z.zone.zone_id.as_str())
    }

    /// Whether the node belongs to a control-plane zone (it may talk to every zone).
    pub fn is_control_plane(&self, node_id: &str) -> bool {
        self.zones
            .iter()
            .any(|z| z.zone.zone_type == ZoneType::ControlPlane && z.members.contains(node_id))
    }
}
