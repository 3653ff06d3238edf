//! The enums of the C API, each the integer of its Rust counterpart in `model`, and their
//! validation when C passes them as `uint32_t`.

use crate::ffi::{FfiError, FfiResult};

/// Hardware of a node (`hf_node_signature.hardware_type`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hf_hardware_type {
    /// NVIDIA H100 GPU.
    HF_HARDWARE_NVIDIA_H100 = 0,
    /// NVIDIA A100 GPU.
    HF_HARDWARE_NVIDIA_A100 = 1,
    /// NVIDIA RTX 4090 GPU.
    HF_HARDWARE_NVIDIA_RTX4090 = 2,
    /// AMD Instinct MI300X.
    HF_HARDWARE_AMD_MI300X = 3,
    /// AMD Instinct MI250X.
    HF_HARDWARE_AMD_MI250X = 4,
    /// Intel Gaudi 2.
    HF_HARDWARE_INTEL_GAUDI2 = 5,
    /// Gate-based quantum processing unit.
    HF_HARDWARE_QUANTUM_QPU = 6,
    /// Quantum annealer.
    HF_HARDWARE_QUANTUM_ANNEALER = 7,
    /// Neuromorphic chip.
    HF_HARDWARE_NEUROMORPHIC_CHIP = 8,
    /// Intel Loihi.
    HF_HARDWARE_INTEL_LOIHI = 9,
    /// Photonic switch.
    HF_HARDWARE_PHOTONIC_SWITCH = 10,
    /// Optical interconnect.
    HF_HARDWARE_OPTICAL_INTERCONNECT = 11,
    /// CPU server.
    HF_HARDWARE_CPU_SERVER = 12,
    /// Storage array.
    HF_HARDWARE_STORAGE_ARRAY = 13,
    /// Network switch.
    HF_HARDWARE_NETWORK_SWITCH = 14,
    /// Anything else.
    HF_HARDWARE_CUSTOM = 15,
}

/// Kind of data of a message (`hf_send_options.data_type`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hf_data_type {
    /// Tensor.
    HF_DATA_TENSOR = 0,
    /// Model parameters.
    HF_DATA_PARAMETER = 1,
    /// Gradients.
    HF_DATA_GRADIENT = 2,
    /// Activations.
    HF_DATA_ACTIVATION = 3,
    /// Embeddings.
    HF_DATA_EMBEDDING = 4,
    /// Quantum state (coherence-deadline routed).
    HF_DATA_QUANTUM_STATE = 5,
    /// Quantum circuit (coherence-deadline routed).
    HF_DATA_QUANTUM_CIRCUIT = 6,
    /// Neuromorphic spike event.
    HF_DATA_NEUROMORPHIC_SPIKE = 7,
    /// Train of spike events.
    HF_DATA_SPIKE_TRAIN = 8,
    /// Control message.
    HF_DATA_CONTROL_MESSAGE = 9,
    /// Metadata.
    HF_DATA_METADATA = 10,
    /// Heartbeat.
    HF_DATA_HEARTBEAT = 11,
    /// Generic data (the default).
    HF_DATA_GENERIC = 12,
    /// Binary blob.
    HF_DATA_BINARY = 13,
    /// JSON document.
    HF_DATA_JSON = 14,
}

/// Quality-of-service class (`hf_send_options.priority`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hf_packet_priority {
    /// Real-time critical.
    HF_PRIORITY_ULTRA_HIGH = 0,
    /// Low-latency applications.
    HF_PRIORITY_HIGH = 1,
    /// Standard applications (the default).
    HF_PRIORITY_MEDIUM = 2,
    /// Background tasks.
    HF_PRIORITY_LOW = 3,
    /// Large transfers.
    HF_PRIORITY_BULK = 4,
}

/// Workload class of a zone (`hf_fabric_zone.zone_type`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hf_zone_type {
    /// AI training cluster.
    HF_ZONE_COMPUTE_CLUSTER = 0,
    /// Real-time inference.
    HF_ZONE_INFERENCE_FARM = 1,
    /// Storage systems.
    HF_ZONE_STORAGE_TIER = 2,
    /// Quantum processing.
    HF_ZONE_QUANTUM_REALM = 3,
    /// Neuromorphic computing.
    HF_ZONE_NEUROMORPHIC_NET = 4,
    /// Edge computing.
    HF_ZONE_EDGE_NETWORK = 5,
    /// Management and monitoring; its members may talk to every zone.
    HF_ZONE_CONTROL_PLANE = 6,
}

/// Isolation of a zone (`hf_fabric_zone.isolation_level`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hf_isolation_level {
    /// No rule.
    HF_ISOLATION_NONE = 0,
    /// Inter-zone traffic is rate-limited to leave the reservation.
    HF_ISOLATION_LOW = 1,
    /// Only members and control-plane nodes exchange traffic with members.
    HF_ISOLATION_MEDIUM = 2,
    /// Medium, and routes between members never transit outside the zone.
    HF_ISOLATION_HIGH = 3,
    /// High, and traffic is always encrypted with the zone key.
    HF_ISOLATION_QUANTUM_SECURE = 4,
}

/// How the background engine thread waits when idle (`hf_protocol_options.idle_strategy`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hf_idle_strategy {
    /// Spin, then sleep on a doorbell (the default: an idle process uses almost no CPU).
    HF_IDLE_ADAPTIVE = 0,
    /// Poll without pause (lowest latency; one core busy).
    HF_IDLE_SPIN = 1,
}

pub(super) fn enum_arg<T>(value: u32, name: &str, f: impl Fn(u32) -> Option<T>) -> FfiResult<T> {
    f(value).ok_or_else(|| FfiError::enumeration(name, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DataType, HardwareType, IsolationLevel, PacketPriority, ZoneType};

    #[test]
    fn c_enums_match_the_model() {
        for v in 0..16u32 {
            let c: hf_hardware_type = unsafe { std::mem::transmute(v) };
            let name = format!("{c:?}")
                .trim_start_matches("HF_HARDWARE_")
                .to_lowercase();
            assert_eq!(HardwareType::from_u32(v).unwrap().to_string(), name);
        }
        assert!(HardwareType::from_u32(16).is_none());
        for v in 0..15u32 {
            let c: hf_data_type = unsafe { std::mem::transmute(v) };
            let name = format!("{c:?}")
                .trim_start_matches("HF_DATA_")
                .to_lowercase();
            assert_eq!(DataType::from_u32(v).unwrap().to_string(), name);
        }
        assert!(DataType::from_u32(15).is_none());
        for v in 0..5u32 {
            let c: hf_packet_priority = unsafe { std::mem::transmute(v) };
            let name = format!("{c:?}")
                .trim_start_matches("HF_PRIORITY_")
                .to_lowercase();
            assert_eq!(PacketPriority::from_u32(v).unwrap().to_string(), name);
            let c: hf_isolation_level = unsafe { std::mem::transmute(v) };
            let name = format!("{c:?}")
                .trim_start_matches("HF_ISOLATION_")
                .to_lowercase();
            assert_eq!(IsolationLevel::from_u32(v).unwrap().to_string(), name);
        }
        for v in 0..7u32 {
            let c: hf_zone_type = unsafe { std::mem::transmute(v) };
            let name = format!("{c:?}")
                .trim_start_matches("HF_ZONE_")
                .to_lowercase();
            assert_eq!(ZoneType::from_u32(v).unwrap().to_string(), name);
        }
    }
}
