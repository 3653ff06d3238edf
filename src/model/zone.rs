//! `FabricZone`: a named group of nodes with an isolation level.

use super::{IsolationLevel, ZoneType};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A zone specification. Members are assigned separately (`TopologyManager::assign_to_zone`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FabricZone {
    /// Unique id: 1..=63 bytes of UTF-8 without NUL.
    pub zone_id: String,
    /// Workload class.
    pub zone_type: ZoneType,
    /// Isolation enforced in route computation and at delivery.
    pub isolation_level: IsolationLevel,
    /// Most members the zone admits; positive.
    pub max_nodes: u32,
    /// Bandwidth reserved for the zone in Gbit/s; positive and finite.
    pub required_bandwidth_gbps: f64,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Members must be quantum processors or quantum-capable interconnect.
    #[serde(default)]
    pub quantum_coherence_required: bool,
    /// Neuromorphic traffic inside the zone is coalesced.
    #[serde(default)]
    pub neuromorphic_optimization: bool,
}

impl FabricZone {
    /// A validated zone without description or flags.
    pub fn new(
        zone_id: impl Into<String>,
        zone_type: ZoneType,
        isolation_level: IsolationLevel,
        max_nodes: u32,
        required_bandwidth_gbps: f64,
    ) -> Result<FabricZone> {
        let z = FabricZone {
            zone_id: zone_id.into(),
            zone_type,
            isolation_level,
            max_nodes,
            required_bandwidth_gbps,
            description: None,
            quantum_coherence_required: false,
            neuromorphic_optimization: false,
        };
        z.validate()?;
        Ok(z)
    }

    /// The reference's `__post_init__` rules plus the id rules; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let id = &self.zone_id;
        let bad = |field: &str, why: &str| {
            Err(Error::InvalidZone(format!("zone {id:?}: {field}: {why}")))
        };
        if id.is_empty() || id.len() > super::MAX_NODE_ID_LEN || id.chars().any(char::is_control) {
            return bad(
                "zone_id",
                "must be 1 to 63 bytes without control characters (NUL, newline, escape...)",
            );
        }
        if self.max_nodes == 0 {
            return bad("max_nodes", "Max nodes must be positive");
        }
        if !self.required_bandwidth_gbps.is_finite() {
            return bad("required_bandwidth_gbps", "must be a finite number");
        }
        if self.required_bandwidth_gbps <= 0.0 {
            return bad(
                "required_bandwidth_gbps",
                "Required bandwidth must be positive",
            );
        }
        if self
            .description
            .as_deref()
            .is_some_and(|s| s.contains('\0'))
        {
            return bad("description", "must not contain NUL");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn post_init_rules_hold() {
        let e = FabricZone::new("z", ZoneType::ComputeCluster, IsolationLevel::Low, 0, 1.0)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidZone);
        assert!(e.to_string().contains("max_nodes"));
        let e = FabricZone::new("z", ZoneType::ComputeCluster, IsolationLevel::Low, 4, -1.0)
            .unwrap_err();
        assert!(e.to_string().contains("required_bandwidth_gbps"));
        let e =
            FabricZone::new("", ZoneType::ComputeCluster, IsolationLevel::Low, 4, 1.0).unwrap_err();
        assert!(e.to_string().contains("zone_id"));
        assert!(FabricZone::new("z", ZoneType::StorageTier, IsolationLevel::High, 4, 1.0).is_ok());
    }
}
