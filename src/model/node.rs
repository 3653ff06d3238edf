//! `NodeSignature`: what a node declares when it joins a fabric.

use super::HardwareType;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Longest node id in bytes (ids travel in fixed 64-byte fields with a NUL terminator).
pub const MAX_NODE_ID_LEN: usize = 63;

/// Specification of a fabric node. Build it with [`NodeSignature::new`] (which validates) or
/// as a struct literal followed by [`NodeSignature::validate`].
///
/// ```
/// use hyperfabric::model::{HardwareType, NodeSignature};
/// let mut n = NodeSignature::new("gpu-cluster-01", HardwareType::NvidiaH100, 400.0, 100).unwrap();
/// n.memory_gb = Some(80.0);
/// assert!(n.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSignature {
    /// Unique id: 1..=63 bytes of UTF-8 without NUL.
    pub node_id: String,
    /// What the node is.
    pub hardware_type: HardwareType,
    /// Injection bandwidth in Gbit/s; positive and finite.
    pub bandwidth_gbps: f64,
    /// Latency the node adds to every path through it, in ns.
    pub latency_ns: u64,
    /// Memory in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gb: Option<f64>,
    /// Cores, SMs or other compute units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_units: Option<u64>,
    /// Power draw in W.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_watts: Option<f64>,
    /// Rack position label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack_position: Option<String>,
    /// Physical location label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_location: Option<String>,
    /// Coherence time of a quantum processor in µs; required for `quantum_qpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantum_coherence_time_us: Option<f64>,
    /// Neurons of a neuromorphic chip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neuromorphic_neurons: Option<u64>,
    /// Channels of a photonic component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photonic_channels: Option<u64>,
    /// Host the node lives on. Nodes on one host reach each other through shared memory;
    /// `None` means "this host".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl NodeSignature {
    /// A validated signature with the four required fields and no optional ones.
    pub fn new(
        node_id: impl Into<String>,
        hardware_type: HardwareType,
        bandwidth_gbps: f64,
        latency_ns: u64,
    ) -> Result<NodeSignature> {
        let node = NodeSignature {
            node_id: node_id.into(),
            hardware_type,
            bandwidth_gbps,
            latency_ns,
            memory_gb: None,
            compute_units: None,
            power_watts: None,
            rack_position: None,
            physical_location: None,
            quantum_coherence_time_us: None,
            neuromorphic_neurons: None,
            photonic_channels: None,
            host: None,
            metadata: None,
        };
        node.validate()?;
        Ok(node)
    }

    /// The reference's `__post_init__` rules plus the id rules; the error names the field.
    pub fn validate(&self) -> Result<()> {
        validate_node_id(&self.node_id)?;
        let id = &self.node_id;
        let bad = |field: &str, why: &str| {
            Err(Error::InvalidNode(format!("node {id:?}: {field}: {why}")))
        };
        if !self.bandwidth_gbps.is_finite() {
            return bad("bandwidth_gbps", "must be a finite number");
        }
        if self.bandwidth_gbps <= 0.0 {
            return bad("bandwidth_gbps", "Bandwidth must be positive");
        }
        for (field, value) in [
            ("memory_gb", self.memory_gb),
            ("power_watts", self.power_watts),
            ("quantum_coherence_time_us", self.quantum_coherence_time_us),
        ] {
            if let Some(v) = value {
                if !v.is_finite() {
                    return bad(field, "must be a finite number");
                }
                if v < 0.0 {
                    return bad(field, "cannot be negative");
                }
            }
        }
        if self.hardware_type == HardwareType::QuantumQpu
            && self.quantum_coherence_time_us.unwrap_or(0.0) == 0.0
        {
            return bad(
                "quantum_coherence_time_us",
                "Quantum QPU requires coherence time specification",
            );
        }
        for (field, value) in [
            ("rack_position", &self.rack_position),
            ("physical_location", &self.physical_location),
            ("host", &self.host),
        ] {
            if value.as_deref().is_some_and(|s| s.contains('\0')) {
                return bad(field, "must not contain NUL");
            }
        }
        if self.host.as_deref() == Some("") {
            return bad("host", "must not be empty");
        }
        Ok(())
    }

    /// Coherence time as a latency budget in ns, for quantum processors that declare one.
    pub fn coherence_deadline_ns(&self) -> Option<u64> {
        match self.quantum_coherence_time_us {
            Some(us) if self.hardware_type.is_quantum() && us > 0.0 => {
                Some((us * 1000.0).min(u64::MAX as f64) as u64)
            }
            _ => None,
        }
    }
}

/// Checks a node id: non-empty, at most [`MAX_NODE_ID_LEN`] bytes, no NUL.
pub(crate) fn validate_node_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidNode("node_id: must not be empty".into()));
    }
    if id.len() > MAX_NODE_ID_LEN {
        return Err(Error::InvalidNode(format!(
            "node_id: {id:?} is {} bytes, at most {MAX_NODE_ID_LEN} allowed",
            id.len()
        )));
    }
    if id.chars().any(char::is_control) {
        // A newline or an escape in an id would forge lines of every table, log and
        // metrics page that names the node.
        return Err(Error::InvalidNode(format!(
            "node_id: {id:?} must not contain control characters (NUL, newline, escape...)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn ids_with_control_characters_are_refused() {
        for id in ["a\nb", "a\0", "\x1b[2J", "tab\there"] {
            let e = NodeSignature::new(id, HardwareType::CpuServer, 1.0, 1).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidNode, "{id:?}");
            assert!(e.to_string().contains("control characters"), "{e}");
        }
        assert!(NodeSignature::new("gpu-ä-1", HardwareType::CpuServer, 1.0, 1).is_ok());
    }

    fn msg(r: Result<NodeSignature>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidNode);
        e.to_string()
    }

    #[test]
    fn post_init_rules_hold() {
        assert!(
            msg(NodeSignature::new("a", HardwareType::CpuServer, 0.0, 1))
                .contains("bandwidth_gbps")
        );
        assert!(
            msg(NodeSignature::new("a", HardwareType::CpuServer, -1.0, 1)).contains("positive")
        );
        assert!(msg(NodeSignature::new(
            "a",
            HardwareType::CpuServer,
            f64::NAN,
            1
        ))
        .contains("finite"));
        assert!(msg(NodeSignature::new(
            "a",
            HardwareType::CpuServer,
            f64::INFINITY,
            1
        ))
        .contains("finite"));
        assert!(
            msg(NodeSignature::new("q", HardwareType::QuantumQpu, 10.0, 1))
                .contains("quantum_coherence_time_us")
        );
        assert!(msg(NodeSignature::new("", HardwareType::CpuServer, 1.0, 1)).contains("node_id"));
        assert!(msg(NodeSignature::new("a\0b", HardwareType::CpuServer, 1.0, 1)).contains("NUL"));
        let long = "x".repeat(64);
        assert!(msg(NodeSignature::new(long, HardwareType::CpuServer, 1.0, 1)).contains("63"));
        assert!(NodeSignature::new("x".repeat(63), HardwareType::CpuServer, 1.0, 1).is_ok());
        let mut q = NodeSignature::new("q", HardwareType::QuantumAnnealer, 10.0, 1).unwrap();
        q.hardware_type = HardwareType::QuantumQpu;
        q.quantum_coherence_time_us = Some(120.0);
        assert!(q.validate().is_ok());
        assert_eq!(q.coherence_deadline_ns(), Some(120_000));
        q.memory_gb = Some(-2.0);
        assert!(q.validate().unwrap_err().to_string().contains("memory_gb"));
    }
}
