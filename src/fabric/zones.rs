//! Zones of the fabric: created, deleted and joined through the fabric's zone table, so every
//! process of the host sees and enforces the same zones.

use super::HyperFabricProtocol;
use crate::error::{Error, Result};
use crate::model::FabricZone;

impl HyperFabricProtocol {
    /// The reference's `create_zone`: a zone of the whole fabric (every process of the host
    /// enforces it). `DuplicateZoneError` when the id exists, `InsufficientResourcesError`
    /// when the host's nodes cannot carry its bandwidth next to the other zones'
    /// reservations, `InvalidZoneError` for an invalid specification.
    pub fn create_zone(&self, zone: FabricZone) -> Result<bool> {
        self.inner.check_process()?;
        zone.validate()?;
        self.sync_topology()?;
        let tm = &self.inner.topology;
        self.inner.registry.update_zones(|t| {
            if t.zones.iter().any(|z| z.zone_id == zone.zone_id) {
                return Err(Error::DuplicateZone(format!(
                    "zone {:?} already exists",
                    zone.zone_id
                )));
            }
            // Admission against the host's nodes and the other zones.
            if tm.read(|t| t.zone(&zone.zone_id).is_err()) {
                tm.create_zone(zone.clone())?;
            }
            t.zones.push(zone.clone());
            Ok(())
        })?;
        self.sync_topology()?;
        Ok(true)
    }

    /// Deletes a zone of the fabric (`ZoneNotFoundError`); its members stay.
    pub fn delete_zone(&self, zone_id: &str) -> Result<bool> {
        self.inner.check_process()?;
        self.inner.registry.update_zones(|t| {
            let pos = t
                .zones
                .iter()
                .position(|z| z.zone_id == zone_id)
                .ok_or_else(|| Error::ZoneNotFound(format!("zone {zone_id:?} does not exist")))?;
            t.zones.remove(pos);
            t.members.remove(zone_id);
            Ok(())
        })?;
        self.sync_topology()?;
        Ok(true)
    }

    /// Makes a registered node (of any process) a member of a zone: `ZoneNotFoundError`,
    /// `NodeNotFoundError`, `InsufficientResourcesError` when the zone is full,
    /// `InvalidZoneError` when the zone needs quantum coherence the node lacks.
    pub fn assign_to_zone(&self, zone_id: &str, node_id: &str) -> Result<bool> {
        self.inner.check_process()?;
        self.sync_topology()?;
        let tm = &self.inner.topology;
        self.inner.registry.update_zones(|t| {
            if !t.zones.iter().any(|z| z.zone_id == zone_id) {
                return Err(Error::ZoneNotFound(format!(
                    "zone {zone_id:?} does not exist"
                )));
            }
            tm.assign_to_zone(zone_id, node_id)?;
            t.members
                .entry(zone_id.to_string())
                .or_default()
                .insert(node_id.to_string());
            Ok(())
        })?;
        self.sync_topology()?;
        Ok(true)
    }

    /// Removes a node from a zone (`ZoneNotFoundError`; `NodeNotFoundError` when it was not a
    /// member).
    pub fn unassign_from_zone(&self, zone_id: &str, node_id: &str) -> Result<bool> {
        self.inner.check_process()?;
        self.inner.registry.update_zones(|t| {
            if !t.zones.iter().any(|z| z.zone_id == zone_id) {
                return Err(Error::ZoneNotFound(format!(
                    "zone {zone_id:?} does not exist"
                )));
            }
            let removed = t
                .members
                .get_mut(zone_id)
                .is_some_and(|m| m.remove(node_id));
            if !removed {
                return Err(Error::NodeNotFound(format!(
                    "node {node_id:?} is not a member of zone {zone_id:?}"
                )));
            }
            Ok(())
        })?;
        self.sync_topology()?;
        Ok(true)
    }
}
