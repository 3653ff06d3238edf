//! The enums of the API reference, each with its reference string (or number) and a parser
//! whose error lists the accepted values.

use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];

            /// The reference's string for this value.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }

            /// The value whose numeric code (as it crosses the C ABI) is `code`.
            pub fn from_u32(code: u32) -> Option<$name> {
                match code { $( $value => Some($name::$variant), )* _ => None }
            }

            /// The list of accepted strings, for error messages.
            pub fn accepted() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                names.join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $( $text => Ok($name::$variant), )*
                    _ => Err(format!(
                        "unknown {} {:?} (expected one of: {})",
                        $what, s, Self::accepted()
                    )),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum! {
    /// Hardware of a fabric node.
    HardwareType, "hardware type" {
        /// NVIDIA H100 GPU.
        NvidiaH100 = 0 => "nvidia_h100",
        /// NVIDIA A100 GPU.
        NvidiaA100 = 1 => "nvidia_a100",
        /// NVIDIA RTX 4090 GPU.
        NvidiaRtx4090 = 2 => "nvidia_rtx4090",
        /// AMD Instinct MI300X.
        AmdMi300x = 3 => "amd_mi300x",
        /// AMD Instinct MI250X.
        AmdMi250x = 4 => "amd_mi250x",
        /// Intel Gaudi 2.
        IntelGaudi2 = 5 => "intel_gaudi2",
        /// Gate-based quantum processing unit.
        QuantumQpu = 6 => "quantum_qpu",
        /// Quantum annealer.
        QuantumAnnealer = 7 => "quantum_annealer",
        /// Neuromorphic chip.
        NeuromorphicChip = 8 => "neuromorphic_chip",
        /// Intel Loihi.
        IntelLoihi = 9 => "intel_loihi",
        /// Photonic switch.
        PhotonicSwitch = 10 => "photonic_switch",
        /// Optical interconnect.
        OpticalInterconnect = 11 => "optical_interconnect",
        /// CPU server.
        CpuServer = 12 => "cpu_server",
        /// Storage array.
        StorageArray = 13 => "storage_array",
        /// Network switch.
        NetworkSwitch = 14 => "network_switch",
        /// Anything else.
        Custom = 15 => "custom",
    }
}

impl HardwareType {
    /// Quantum processors (QPU, annealer): they declare a coherence time.
    pub fn is_quantum(self) -> bool {
        matches!(
            self,
            HardwareType::QuantumQpu | HardwareType::QuantumAnnealer
        )
    }

    /// Nodes an entanglement-requiring route may cross: quantum processors and photonic
    /// components.
    pub fn is_quantum_capable(self) -> bool {
        self.is_quantum()
            || matches!(
                self,
                HardwareType::PhotonicSwitch | HardwareType::OpticalInterconnect
            )
    }

    /// Neuromorphic processors.
    pub fn is_neuromorphic(self) -> bool {
        matches!(
            self,
            HardwareType::NeuromorphicChip | HardwareType::IntelLoihi
        )
    }

    /// GPUs and AI accelerators.
    pub fn is_accelerator(self) -> bool {
        matches!(
            self,
            HardwareType::NvidiaH100
                | HardwareType::NvidiaA100
                | HardwareType::NvidiaRtx4090
                | HardwareType::AmdMi300x
                | HardwareType::AmdMi250x
                | HardwareType::IntelGaudi2
        )
    }

    /// Nodes that only forward traffic (switches).
    pub fn is_switch(self) -> bool {
        matches!(
            self,
            HardwareType::NetworkSwitch | HardwareType::PhotonicSwitch
        )
    }
}

string_enum! {
    /// Kind of data carried by a message; it selects latency budgets and quantum rules.
    DataType, "data type" {
        /// Tensor.
        Tensor = 0 => "tensor",
        /// Model parameters.
        Parameter = 1 => "parameter",
        /// Gradients.
        Gradient = 2 => "gradient",
        /// Activations.
        Activation = 3 => "activation",
        /// Embeddings.
        Embedding = 4 => "embedding",
        /// Quantum state (coherence-deadline routed).
        QuantumState = 5 => "quantum_state",
        /// Quantum circuit (coherence-deadline routed).
        QuantumCircuit = 6 => "quantum_circuit",
        /// Neuromorphic spike event.
        NeuromorphicSpike = 7 => "neuromorphic_spike",
        /// Train of spike events.
        SpikeTrain = 8 => "spike_train",
        /// Control message.
        ControlMessage = 9 => "control_message",
        /// Metadata.
        Metadata = 10 => "metadata",
        /// Heartbeat.
        Heartbeat = 11 => "heartbeat",
        /// Generic data (the default).
        Generic = 12 => "generic",
        /// Binary blob.
        Binary = 13 => "binary",
        /// JSON document.
        Json = 14 => "json",
    }
}

impl DataType {
    /// Quantum traffic: routed against the coherence deadline of its QPU endpoints.
    pub fn is_quantum(self) -> bool {
        matches!(self, DataType::QuantumState | DataType::QuantumCircuit)
    }

    /// Neuromorphic traffic: coalesced by the data plane.
    pub fn is_neuromorphic(self) -> bool {
        matches!(self, DataType::NeuromorphicSpike | DataType::SpikeTrain)
    }
}

// The enum macro derives a fixed set of traits; the default is given by hand.
#[allow(clippy::derivable_impls)]
impl Default for DataType {
    fn default() -> Self {
        DataType::Generic
    }
}

string_enum! {
    /// Quality-of-service class of a message; the numeric value is the reference's.
    PacketPriority, "packet priority" {
        /// Real-time critical.
        UltraHigh = 0 => "ultra_high",
        /// Low-latency applications.
        High = 1 => "high",
        /// Standard applications (the default).
        Medium = 2 => "medium",
        /// Background tasks.
        Low = 3 => "low",
        /// Large transfers.
        Bulk = 4 => "bulk",
    }
}

impl PacketPriority {
    /// Whether the message travels on the latency lane (ULTRA_HIGH, HIGH, MEDIUM) rather than
    /// the bulk lane (LOW, BULK).
    pub fn is_latency_lane(self) -> bool {
        self <= PacketPriority::Medium
    }
}

#[allow(clippy::derivable_impls)]
impl Default for PacketPriority {
    fn default() -> Self {
        PacketPriority::Medium
    }
}

string_enum! {
    /// Workload class of a zone.
    ZoneType, "zone type" {
        /// AI training cluster.
        ComputeCluster = 0 => "compute_cluster",
        /// Real-time inference.
        InferenceFarm = 1 => "inference_farm",
        /// Storage systems.
        StorageTier = 2 => "storage_tier",
        /// Quantum processing.
        QuantumRealm = 3 => "quantum_realm",
        /// Neuromorphic computing.
        NeuromorphicNet = 4 => "neuromorphic_net",
        /// Edge computing.
        EdgeNetwork = 5 => "edge_network",
        /// Management and monitoring; its members may talk to every zone.
        ControlPlane = 6 => "control_plane",
    }
}

string_enum! {
    /// Isolation of a zone, ordered from none to quantum-secure.
    IsolationLevel, "isolation level" {
        /// No rule.
        None = 0 => "none",
        /// Inter-zone traffic is rate-limited to leave the reservation.
        Low = 1 => "low",
        /// Only members and control-plane nodes exchange traffic with members.
        Medium = 2 => "medium",
        /// Medium, and routes between members never transit outside the zone.
        High = 3 => "high",
        /// High, and traffic is always encrypted with the zone key.
        QuantumSecure = 4 => "quantum_secure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_match_the_reference() {
        for &h in HardwareType::ALL {
            assert_eq!(h.as_str().parse::<HardwareType>(), Ok(h));
            assert_eq!(HardwareType::from_u32(h as u32), Some(h));
        }
        assert_eq!(HardwareType::NvidiaH100.as_str(), "nvidia_h100");
        assert_eq!(HardwareType::ALL.len(), 16);
        assert_eq!(DataType::ALL.len(), 15);
        assert_eq!(DataType::QuantumCircuit.as_str(), "quantum_circuit");
        assert_eq!(PacketPriority::Bulk as u32, 4);
        assert_eq!(PacketPriority::UltraHigh as u32, 0);
        assert_eq!(ZoneType::ControlPlane.as_str(), "control_plane");
        assert_eq!(IsolationLevel::QuantumSecure.as_str(), "quantum_secure");
        assert!(IsolationLevel::High > IsolationLevel::Medium);
        let err = "nvidia_h200".parse::<HardwareType>().unwrap_err();
        assert!(
            err.contains("nvidia_h200") && err.contains("nvidia_h100"),
            "{err}"
        );
        assert_eq!(HardwareType::from_u32(16), None);
    }
}
