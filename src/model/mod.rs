//! The data model of the API reference: enums, node and zone specifications, result records and
//! constants, with the same names and string values as the reference.
#![forbid(unsafe_code)]

mod enums;
pub(crate) mod node;
mod results;
mod zone;

pub use enums::{DataType, HardwareType, IsolationLevel, PacketPriority, ZoneType};
pub use node::{NodeSignature, MAX_NODE_ID_LEN};
pub use results::{unix_now, BottleneckInfo, PingResult, TopologyInfo};
pub use zone::FabricZone;

/// Latency budget of quantum control traffic: 100 µs.
pub const MAX_LATENCY_QUANTUM_NS: u64 = 100_000;
/// Latency budget of AI inference traffic: 1 ms.
pub const MAX_LATENCY_AI_INFERENCE_NS: u64 = 1_000_000;
/// Latency budget of training traffic: 10 ms.
pub const MAX_LATENCY_TRAINING_NS: u64 = 10_000_000;
/// Default zero-copy buffer size: 64 KiB.
pub const DEFAULT_BUFFER_SIZE: usize = 65_536;
/// Buffer size for large transfers: 1 MiB.
pub const LARGE_BUFFER_SIZE: usize = 1_048_576;
/// Buffer size for quantum state transfers: 4 KiB.
pub const QUANTUM_BUFFER_SIZE: usize = 4096;
/// Smallest node bandwidth the fabric supports, in Gbit/s.
pub const MIN_BANDWIDTH_GBPS: f64 = 1.0;
/// Largest node bandwidth the fabric supports, in Gbit/s.
pub const MAX_BANDWIDTH_GBPS: f64 = 1000.0;
/// Smallest coherence time a QPU must declare to join a fabric, in µs.
pub const QUANTUM_COHERENCE_THRESHOLD_US: f64 = 10.0;
/// Largest number of nodes that may share an entanglement-requiring route or zone.
pub const MAX_QUANTUM_ENTANGLED_NODES: usize = 100;
