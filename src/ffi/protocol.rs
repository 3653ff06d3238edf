//! `hf_protocol`: the protocol API of the C ABI (nodes, send/post/recv, requests, handlers,
//! ping, zones, topology info, background services), with the enums and option structs it
//! takes and the owned results it hands out.

use super::request::hf_request;
use super::status::hf_status;
use super::{
    boundary, bytes_arg, c_string, check_size, lib, mut_arg, opt_str_arg, ref_arg, str_arg,
    FfiError, FfiResult,
};
use crate::error::Error;
use crate::fabric::{
    HyperFabricProtocol, IdleStrategy, ProtocolConfig, ReceivedMessage, SendOptions,
};
use crate::model::{
    DataType, FabricZone, HardwareType, IsolationLevel, NodeSignature, PacketPriority, ZoneType,
};
use std::ffi::{c_char, c_void, CString};
use std::time::Duration;

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

/// A protocol instance: the nodes this process hosts on one fabric. Thread-safe: any thread
/// may call any `hf_` function on it.
///
/// It belongs to the process that created it, with everything made through it (requests,
/// endpoints, senders, receivers, messages, pools from `hf_protocol_create_buffer_manager`
/// and their buffers): in the child of `fork()`, each call on them returns
/// `HF_ERR_INVALID_ARGUMENT` ("this protocol was created by process N; after fork() create a
/// new one") instead of touching the parent's rings, locks and engine, and their `_free`
/// functions release nothing of the parent's. The child creates a protocol of its own.
pub struct hf_protocol {
    pub(crate) inner: HyperFabricProtocol,
}

/// Options of `hf_protocol_new`. Fill with `hf_protocol_options_init`, then change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hf_protocol_options {
    /// `sizeof(hf_protocol_options)`, set by `hf_protocol_options_init`.
    pub struct_size: usize,
    /// Route on latency predicted from measurements (default false).
    pub enable_ml_routing: bool,
    /// Coherence-deadline routing for quantum traffic (default false).
    pub enable_quantum_optimization: bool,
    /// Detect failed peers and reroute around them (default true).
    pub enable_fault_tolerance: bool,
    /// Latency constraint of sends that give none, ns; 0: none (default).
    pub default_latency_constraint_ns: u64,
    /// Buffers in the zero-copy pool (default 1000).
    pub buffer_pool_size: u32,
    /// Largest frame, bytes; larger payloads are fragmented (default 65536).
    pub max_packet_size: u32,
    /// Fabric name: its host state is `/dev/shm/hyperfabric-<uid>/<name>/`; NULL: `"default"`.
    pub fabric_name: *const c_char,
    /// An `hf_idle_strategy` (default `HF_IDLE_ADAPTIVE`).
    pub idle_strategy: u32,
    /// Core the background thread is pinned to; -1: not pinned (default).
    pub engine_core: i32,
    /// 32-byte AES-256 fabric key for encrypted sends; NULL: none (default).
    pub key: *const u8,
}

/// A node signature (`hf_register_node`). Fill with `hf_node_signature_init`, then set at
/// least `node_id`, `hardware_type`, `bandwidth_gbps` and `latency_ns`. Optional numbers are
/// unset when negative (floating point) or 0 (counts); optional strings when NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hf_node_signature {
    /// `sizeof(hf_node_signature)`, set by `hf_node_signature_init`.
    pub struct_size: usize,
    /// Unique id: 1 to 63 bytes of UTF-8.
    pub node_id: *const c_char,
    /// An `hf_hardware_type`.
    pub hardware_type: u32,
    /// Bandwidth, Gbit/s; positive.
    pub bandwidth_gbps: f64,
    /// Latency, ns.
    pub latency_ns: u64,
    /// Memory, GB; negative: unset.
    pub memory_gb: f64,
    /// Compute units; 0: unset.
    pub compute_units: u64,
    /// Power draw, W; negative: unset.
    pub power_watts: f64,
    /// Rack position; NULL: unset.
    pub rack_position: *const c_char,
    /// Physical location; NULL: unset.
    pub physical_location: *const c_char,
    /// Quantum coherence time, µs (required for quantum processors); negative: unset.
    pub quantum_coherence_time_us: f64,
    /// Neuromorphic neurons; 0: unset.
    pub neuromorphic_neurons: u64,
    /// Photonic channels; 0: unset.
    pub photonic_channels: u64,
    /// Metadata as a JSON object; NULL: none.
    pub metadata_json: *const c_char,
}

/// Options of a send (`hf_send_data`, `hf_post`, ...). Fill with `hf_send_options_init`; a
/// NULL options pointer means the defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hf_send_options {
    /// `sizeof(hf_send_options)`, set by `hf_send_options_init`.
    pub struct_size: usize,
    /// An `hf_data_type` (default `HF_DATA_GENERIC`).
    pub data_type: u32,
    /// An `hf_packet_priority` (default `HF_PRIORITY_MEDIUM`).
    pub priority: u32,
    /// Refuse the send if the route is slower, ns; 0: no constraint (default).
    pub latency_constraint_ns: u64,
    /// Route across quantum-capable nodes only (default false).
    pub requires_quantum_entanglement: bool,
    /// Compress the payload, kept only when smaller (default false).
    pub compression_enabled: bool,
    /// Seal the payload with the fabric key (default false).
    pub encryption_enabled: bool,
    /// Metadata delivered with the message, a JSON object; NULL: none (default).
    pub metadata_json: *const c_char,
    /// How long to wait, ms (default 5000).
    pub timeout_ms: u64,
}

/// A zone specification (`hf_create_zone`). Fill with `hf_fabric_zone_init`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hf_fabric_zone {
    /// `sizeof(hf_fabric_zone)`, set by `hf_fabric_zone_init`.
    pub struct_size: usize,
    /// Unique id: 1 to 63 bytes of UTF-8.
    pub zone_id: *const c_char,
    /// An `hf_zone_type`.
    pub zone_type: u32,
    /// An `hf_isolation_level`.
    pub isolation_level: u32,
    /// Most members; positive.
    pub max_nodes: u32,
    /// Bandwidth reserved, Gbit/s; positive.
    pub required_bandwidth_gbps: f64,
    /// Free text; NULL: none.
    pub description: *const c_char,
    /// Members must be quantum-capable.
    pub quantum_coherence_required: bool,
    /// Neuromorphic traffic inside the zone is coalesced.
    pub neuromorphic_optimization: bool,
}

/// Bytes the library hands out (a response): read `data[0..len]`, then release with
/// `hf_bytes_free`. A zeroed `hf_bytes` (NULL data) is empty.
#[repr(C)]
#[derive(Debug)]
pub struct hf_bytes {
    /// The bytes (NULL when `len` is 0).
    pub data: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// Allocation size, for `hf_bytes_free`.
    pub capacity: usize,
}

impl hf_bytes {
    pub(crate) fn from_vec(v: Vec<u8>) -> hf_bytes {
        if v.capacity() == 0 {
            return hf_bytes {
                data: std::ptr::null_mut(),
                len: 0,
                capacity: 0,
            };
        }
        let mut v = std::mem::ManuallyDrop::new(v);
        hf_bytes {
            data: v.as_mut_ptr(),
            len: v.len(),
            capacity: v.capacity(),
        }
    }
}

/// A message taken by `hf_recv`: read it with `hf_message_get_view`, release it with
/// `hf_message_free` (a buffer sent by descriptor then returns to its sender's pool).
pub struct hf_message {
    message: ReceivedMessage,
    source: CString,
    destination: CString,
    /// The process that received it (its bytes may be a buffer of another process's pool,
    /// lent to this one).
    origin: crate::sys::process::Origin,
}

/// A borrowed view of a message: every pointer stays valid while the message (or, in a
/// handler, the call) lives.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hf_message_view {
    /// Sending node id.
    pub source: *const c_char,
    /// Receiving node id.
    pub destination: *const c_char,
    /// Payload.
    pub data: *const u8,
    /// Payload bytes.
    pub len: usize,
    /// Metadata (a JSON object), or NULL.
    pub metadata: *const u8,
    /// Metadata bytes.
    pub metadata_len: usize,
    /// An `hf_data_type`.
    pub data_type: u32,
    /// An `hf_packet_priority`.
    pub priority: u32,
    /// Message id.
    pub request_id: u64,
    /// Whether the sender waits for no response (`hf_post`).
    pub one_way: bool,
}

/// The response a handler gives (`hf_response_set`).
pub struct hf_response {
    bytes: Vec<u8>,
}

/// A request handler (`hf_on_receive`): gets `user_data` and the message (valid during the
/// call), may set the response with `hf_response_set`, and returns `HF_OK` or an error
/// status, which the requester receives as its error. It runs on the thread that drives the
/// engine: the engine thread with background services, otherwise whichever thread is inside
/// a call that drives it (see `hf_progress`). It must not call `hf_` functions on the same
/// protocol, and while it runs the engine delivers nothing else (other handlers, and the
/// answers to this process's requests, wait for it).
#[allow(non_camel_case_types)]
pub type hf_handler = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        message: *const hf_message_view,
        response: *mut hf_response,
    ) -> hf_status,
>;

/// The outcome of `hf_ping`, owned by the library: release with `hf_ping_result_free`.
#[repr(C)]
#[derive(Debug)]
pub struct hf_ping_result {
    /// Source node id.
    pub source: *mut c_char,
    /// Destination node id.
    pub destination: *mut c_char,
    /// Median round trip / 2, ns.
    pub latency_ns: u64,
    /// Bandwidth of a pipelined burst of probes, Gbit/s.
    pub bandwidth_gbps: f64,
    /// Node ids along the path the probes took, source first.
    pub path: *mut *mut c_char,
    /// Entries of `path`.
    pub path_len: usize,
    /// Share of probes that timed out.
    pub packet_loss_rate: f64,
    /// Unix time of the ping, s.
    pub timestamp: f64,
    /// Whether any probe came back.
    pub success: bool,
}

fn enum_arg<T>(value: u32, name: &str, f: impl Fn(u32) -> Option<T>) -> FfiResult<T> {
    f(value).ok_or_else(|| FfiError::enumeration(name, value))
}

fn json_object(
    p: *const c_char,
    name: &str,
) -> FfiResult<Option<serde_json::Map<String, serde_json::Value>>> {
    // SAFETY: the caller's struct field is NULL or a NUL-terminated string.
    let Some(text) = (unsafe { opt_str_arg(p, name) })? else {
        return Ok(None);
    };
    serde_json::from_str(text).map(Some).map_err(|e| FfiError {
        status: super::status::HF_ERR_INVALID_ARGUMENT,
        message: format!("argument `{name}` is not a JSON object: {e}"),
    })
}

/// The protocol behind a handle, in the process that created it (the fork rule).
pub(crate) fn protocol<'a>(p: *const hf_protocol) -> FfiResult<&'a HyperFabricProtocol> {
    // SAFETY: `p` is NULL or a handle from hf_protocol_new that the caller has not freed.
    let p = &unsafe { ref_arg(p, "protocol") }?.inner;
    lib(p.check_process())?;
    Ok(p)
}

/// Fills `options` with the defaults (and its `struct_size`).
///
/// # Safety
/// `options` is NULL or points to writable memory for an `hf_protocol_options`.
#[no_mangle]
pub unsafe extern "C" fn hf_protocol_options_init(options: *mut hf_protocol_options) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let o = unsafe { mut_arg(options, "options") }?;
        let d = crate::config::ProtocolOptions::default();
        *o = hf_protocol_options {
            struct_size: std::mem::size_of::<hf_protocol_options>(),
            enable_ml_routing: d.enable_ml_routing,
            enable_quantum_optimization: d.enable_quantum_optimization,
            enable_fault_tolerance: d.enable_fault_tolerance,
            default_latency_constraint_ns: 0,
            buffer_pool_size: d.buffer_pool_size,
            max_packet_size: d.max_packet_size,
            fabric_name: std::ptr::null(),
            idle_strategy: hf_idle_strategy::HF_IDLE_ADAPTIVE as u32,
            engine_core: -1,
            key: std::ptr::null(),
        };
        Ok(())
    })
}

/// Creates a protocol instance and stores it in `*out` (`HF_ERR_INVALID_ARGUMENT` for bad
/// options, `HF_ERR_IO` when the fabric directory cannot be used). `options` NULL: the
/// defaults. Free it with `hf_protocol_free`.
///
/// # Safety
/// `options` is NULL or an initialised `hf_protocol_options` whose strings and key stay valid
/// during the call; `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_protocol_new(
    options: *const hf_protocol_options,
    out: *mut *mut hf_protocol,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(out, "out") }?;
        let mut config = ProtocolConfig::default();
        if !options.is_null() {
            // SAFETY: non-NULL, initialised by the caller.
            let o = unsafe { &*options };
            check_size(
                "options",
                o.struct_size,
                std::mem::size_of::<hf_protocol_options>(),
            )?;
            let opts = &mut config.options;
            opts.enable_ml_routing = o.enable_ml_routing;
            opts.enable_quantum_optimization = o.enable_quantum_optimization;
            opts.enable_fault_tolerance = o.enable_fault_tolerance;
            opts.default_latency_constraint_ns =
                (o.default_latency_constraint_ns > 0).then_some(o.default_latency_constraint_ns);
            opts.buffer_pool_size = o.buffer_pool_size;
            opts.max_packet_size = o.max_packet_size;
            // SAFETY: NULL or a NUL-terminated string, by the caller's contract.
            config.fabric_name =
                unsafe { opt_str_arg(o.fabric_name, "fabric_name") }?.map(str::to_string);
            config.idle = match o.idle_strategy {
                0 => IdleStrategy::Adaptive,
                1 => IdleStrategy::Spin,
                v => return Err(FfiError::enumeration("idle_strategy", v)),
            };
            config.engine_core = (o.engine_core >= 0).then_some(o.engine_core as usize);
            if !o.key.is_null() {
                // SAFETY: a non-NULL key points to 32 readable bytes.
                let k: [u8; 32] = unsafe { *(o.key as *const [u8; 32]) };
                config.key = Some(crate::codec::FabricKey::from_bytes(k));
            }
        }
        let inner = lib(HyperFabricProtocol::with_config(config))?;
        *out = Box::into_raw(Box::new(hf_protocol { inner }));
        Ok(())
    })
}

/// Stops the background thread, unregisters the nodes this instance hosts, and frees it.
/// NULL is ignored.
///
/// # Safety
/// `protocol` is NULL or a handle from `hf_protocol_new` not freed before; no other thread
/// uses it during or after the call.
#[no_mangle]
pub unsafe extern "C" fn hf_protocol_free(protocol: *mut hf_protocol) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(protocol) }
}

/// Deletes the host state of fabric `name` once no process hosts a node in it (call it after
/// the last protocol of the fabric is freed); `*removed` (if not NULL) says whether it was.
///
/// # Safety
/// `name` is a NUL-terminated string; `removed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hf_fabric_remove(name: *const c_char, removed: *mut bool) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let n = unsafe { str_arg(name, "name") }?;
        let r = lib(HyperFabricProtocol::remove_fabric(n))?;
        // SAFETY: as the caller promised.
        if let Some(out) = unsafe { removed.as_mut() } {
            *out = r;
        }
        Ok(())
    })
}

/// Largest address blob `hf_node_address` writes.
pub const HF_ADDRESS_MAX: usize = 256;

/// Writes the address blob of hosted node `node_id` into `blob` (`capacity` bytes; at most
/// `HF_ADDRESS_MAX` are needed) and its length into `*len`: what another process passes to
/// `hf_insert_peer`, carried by MPI (`MPI_Allgather`), PMIx or a file.
/// `HF_ERR_BUFFER_OVERFLOW` when `capacity` is too small.
///
/// # Safety
/// `protocol` is a live handle; `node_id` a NUL-terminated string; `blob` points to
/// `capacity` writable bytes; `len` is writable.
#[no_mangle]
pub unsafe extern "C" fn hf_node_address(
    protocol: *const hf_protocol,
    node_id: *const c_char,
    blob: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(node_id, "node_id") }?;
        // SAFETY: as the caller promised.
        let len = unsafe { mut_arg(len, "len") }?;
        if blob.is_null() {
            return Err(FfiError::null("blob"));
        }
        let b = lib(p.node_address(id))?;
        if b.len() > capacity {
            return Err(FfiError::from(Error::BufferOverflow(format!(
                "the address takes {} bytes, the buffer has {capacity}",
                b.len()
            ))));
        }
        // SAFETY: `blob` has `capacity` >= b.len() writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), blob, b.len()) };
        *len = b.len();
        Ok(())
    })
}

/// Takes another process's address blob and stores the node id to send to in `*node_id`
/// (release with `hf_string_free`): `HF_ERR_NO_ROUTE_FOUND` for a node of another host (the
/// TCP transport is not here yet), `HF_ERR_NODE_NOT_FOUND` when it is not registered,
/// `HF_ERR_INVALID_ARGUMENT` for a blob that does not decode or names another fabric.
///
/// # Safety
/// `protocol` is a live handle; `blob` points to `len` readable bytes; `node_id` writable.
#[no_mangle]
pub unsafe extern "C" fn hf_insert_peer(
    protocol: *const hf_protocol,
    blob: *const u8,
    len: usize,
    node_id: *mut *mut c_char,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let b = unsafe { bytes_arg(blob, len, "blob") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(node_id, "node_id") }?;
        let id = lib(p.insert_peer(b))?;
        *out = c_string(&id).into_raw();
        Ok(())
    })
}

/// Fills `node` with an empty signature (every optional field unset).
///
/// # Safety
/// `node` is NULL or points to writable memory for an `hf_node_signature`.
#[no_mangle]
pub unsafe extern "C" fn hf_node_signature_init(node: *mut hf_node_signature) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let n = unsafe { mut_arg(node, "node") }?;
        *n = hf_node_signature {
            struct_size: std::mem::size_of::<hf_node_signature>(),
            node_id: std::ptr::null(),
            hardware_type: hf_hardware_type::HF_HARDWARE_CPU_SERVER as u32,
            bandwidth_gbps: 0.0,
            latency_ns: 0,
            memory_gb: -1.0,
            compute_units: 0,
            power_watts: -1.0,
            rack_position: std::ptr::null(),
            physical_location: std::ptr::null(),
            quantum_coherence_time_us: -1.0,
            neuromorphic_neurons: 0,
            photonic_channels: 0,
            metadata_json: std::ptr::null(),
        };
        Ok(())
    })
}

pub(crate) fn signature(n: &hf_node_signature) -> FfiResult<NodeSignature> {
    check_size(
        "node",
        n.struct_size,
        std::mem::size_of::<hf_node_signature>(),
    )?;
    // SAFETY: the struct's strings are NULL or NUL-terminated (the caller's contract).
    let id = unsafe { str_arg(n.node_id, "node_id") }?;
    let hw = enum_arg(n.hardware_type, "hardware_type", HardwareType::from_u32)?;
    let mut sig = lib(NodeSignature::new(id, hw, n.bandwidth_gbps, n.latency_ns))?;
    let real = |x: f64| (x >= 0.0).then_some(x);
    let count = |x: u64| (x > 0).then_some(x);
    sig.memory_gb = real(n.memory_gb);
    sig.compute_units = count(n.compute_units);
    sig.power_watts = real(n.power_watts);
    sig.quantum_coherence_time_us = real(n.quantum_coherence_time_us);
    sig.neuromorphic_neurons = count(n.neuromorphic_neurons);
    sig.photonic_channels = count(n.photonic_channels);
    // SAFETY: as above.
    unsafe {
        sig.rack_position = opt_str_arg(n.rack_position, "rack_position")?.map(str::to_string);
        sig.physical_location =
            opt_str_arg(n.physical_location, "physical_location")?.map(str::to_string);
    }
    sig.metadata = json_object(n.metadata_json, "metadata_json")?;
    lib(sig.validate())?;
    Ok(sig)
}

/// Registers a node hosted by this process: `HF_ERR_DUPLICATE_NODE` when any process of the
/// fabric hosts the id, `HF_ERR_INVALID_NODE` for an invalid signature.
///
/// # Safety
/// `protocol` is a live handle; `node` is NULL or an initialised `hf_node_signature` whose
/// strings stay valid during the call.
#[no_mangle]
pub unsafe extern "C" fn hf_register_node(
    protocol: *const hf_protocol,
    node: *const hf_node_signature,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let sig = signature(unsafe { ref_arg(node, "node") }?)?;
        lib(p.register_node(sig)).map(drop)
    })
}

/// Removes a node this process hosts (`HF_ERR_NODE_NOT_FOUND` otherwise).
///
/// # Safety
/// `protocol` is a live handle; `node_id` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hf_unregister_node(
    protocol: *const hf_protocol,
    node_id: *const c_char,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(node_id, "node_id") }?;
        lib(p.unregister_node(id)).map(drop)
    })
}

/// Fills `options` with the defaults of a send.
///
/// # Safety
/// `options` is NULL or points to writable memory for an `hf_send_options`.
#[no_mangle]
pub unsafe extern "C" fn hf_send_options_init(options: *mut hf_send_options) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let o = unsafe { mut_arg(options, "options") }?;
        *o = hf_send_options {
            struct_size: std::mem::size_of::<hf_send_options>(),
            data_type: hf_data_type::HF_DATA_GENERIC as u32,
            priority: hf_packet_priority::HF_PRIORITY_MEDIUM as u32,
            latency_constraint_ns: 0,
            requires_quantum_entanglement: false,
            compression_enabled: false,
            encryption_enabled: false,
            metadata_json: std::ptr::null(),
            timeout_ms: 5000,
        };
        Ok(())
    })
}

pub(crate) fn send_options(o: *const hf_send_options) -> FfiResult<SendOptions> {
    if o.is_null() {
        return Ok(SendOptions::default());
    }
    // SAFETY: non-NULL and initialised (the caller's contract).
    let o = unsafe { &*o };
    check_size(
        "options",
        o.struct_size,
        std::mem::size_of::<hf_send_options>(),
    )?;
    Ok(SendOptions {
        data_type: enum_arg(o.data_type, "data_type", DataType::from_u32)?,
        priority: enum_arg(o.priority, "priority", PacketPriority::from_u32)?,
        latency_constraint_ns: (o.latency_constraint_ns > 0).then_some(o.latency_constraint_ns),
        requires_quantum_entanglement: o.requires_quantum_entanglement,
        compression_enabled: o.compression_enabled,
        encryption_enabled: o.encryption_enabled,
        metadata: json_object(o.metadata_json, "metadata_json")?,
        timeout: Duration::from_millis(o.timeout_ms),
    })
}

/// The arguments every send shares.
struct SendArgs<'a> {
    protocol: &'a HyperFabricProtocol,
    source: &'a str,
    destination: &'a str,
    data: &'a [u8],
    options: SendOptions,
}

/// # Safety
/// As the send functions' contracts.
unsafe fn send_args<'a>(
    protocol: *const hf_protocol,
    source: *const c_char,
    destination: *const c_char,
    data: *const u8,
    len: usize,
    options: *const hf_send_options,
) -> FfiResult<SendArgs<'a>> {
    Ok(SendArgs {
        protocol: self::protocol(protocol)?,
        // SAFETY: as the caller promised.
        source: unsafe { str_arg(source, "source") }?,
        // SAFETY: as the caller promised.
        destination: unsafe { str_arg(destination, "destination") }?,
        // SAFETY: as the caller promised.
        data: unsafe { bytes_arg(data, len, "data") }?,
        options: send_options(options)?,
    })
}

/// Sends `len` bytes at `data` from hosted node `source` to `destination` and waits for the
/// response (a node without handler answers with an empty delivery receipt), stored in
/// `*response` (release it with `hf_bytes_free`). Fails before sending with
/// `HF_ERR_LATENCY_CONSTRAINT_VIOLATION`, `HF_ERR_ZONE_ISOLATION_VIOLATION`,
/// `HF_ERR_NODE_NOT_FOUND`, ...; with `HF_ERR_TIMEOUT` when no answer comes in time; with
/// the handler's status when it fails. `options` NULL: the defaults. Without background
/// services the call drives the engine while it waits (see `hf_progress`).
///
/// # Safety
/// `protocol` is a live handle; `source` and `destination` NUL-terminated strings; `data`
/// points to `len` readable bytes (may be NULL when `len` is 0); `options` NULL or
/// initialised; `response` points to writable memory for an `hf_bytes`.
#[no_mangle]
pub unsafe extern "C" fn hf_send_data(
    protocol: *const hf_protocol,
    source: *const c_char,
    destination: *const c_char,
    data: *const u8,
    len: usize,
    options: *const hf_send_options,
    response: *mut hf_bytes,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let s = unsafe { send_args(protocol, source, destination, data, len, options) }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(response, "response") }?;
        let r = lib(s
            .protocol
            .send_data(s.source, s.destination, s.data, &s.options))?;
        *out = hf_bytes::from_vec(r);
        Ok(())
    })
}

/// Like `hf_send_data`, but returns once the message is in the ring, with a request in
/// `*request` to complete with `hf_request_test` or `hf_request_wait` and release with
/// `hf_request_free`. Errors found before sending come back here.
///
/// # Safety
/// As `hf_send_data`; `request` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_send_data_nb(
    protocol: *const hf_protocol,
    source: *const c_char,
    destination: *const c_char,
    data: *const u8,
    len: usize,
    options: *const hf_send_options,
    request: *mut *mut hf_request,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let s = unsafe { send_args(protocol, source, destination, data, len, options) }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(request, "request") }?;
        let r = lib(s
            .protocol
            .send_data_nb(s.source, s.destination, s.data, &s.options))?;
        *out = hf_request::new(r);
        Ok(())
    })
}

/// Releases bytes the library handed out and zeroes `*bytes`. NULL, or an already released
/// (zeroed) `hf_bytes`, is ignored.
///
/// # Safety
/// `bytes` is NULL or an `hf_bytes` filled by this library (or zeroed).
#[no_mangle]
pub unsafe extern "C" fn hf_bytes_free(bytes: *mut hf_bytes) {
    let _ = boundary(|| {
        // SAFETY: as the caller promised.
        if let Some(b) = unsafe { bytes.as_mut() } {
            if !b.data.is_null() {
                // SAFETY: data/len/capacity came from a Vec<u8> (hf_bytes::from_vec).
                drop(unsafe { Vec::from_raw_parts(b.data, b.len, b.capacity) });
            }
            *b = hf_bytes {
                data: std::ptr::null_mut(),
                len: 0,
                capacity: 0,
            };
        }
        Ok(())
    });
}

/// One-way send: returns once the message is in the destination's ring (errors as
/// `hf_send_data`, before sending).
///
/// # Safety
/// As `hf_send_data`, without `response`.
#[no_mangle]
pub unsafe extern "C" fn hf_post(
    protocol: *const hf_protocol,
    source: *const c_char,
    destination: *const c_char,
    data: *const u8,
    len: usize,
    options: *const hf_send_options,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let s = unsafe { send_args(protocol, source, destination, data, len, options) }?;
        lib(s.protocol.post(s.source, s.destination, s.data, &s.options))
    })
}

/// Takes the oldest message queued for hosted node `node_id` (one without handler), waiting
/// up to `timeout_ms` (0: just look), into `*message` (release with `hf_message_free`).
/// `HF_ERR_TIMEOUT` when nothing came.
///
/// Progress: the call reads the node's endpoint rings itself, so messages sent through
/// endpoints arrive without anyone else driving this process (a request among them gets
/// its delivery receipt when taken here). Without background services it also drives the
/// engine while it waits (every few looks, and once with `timeout_ms` 0), which delivers
/// what came through the engine's rings; handlers of this process's other nodes may run
/// in the calling thread then.
///
/// # Safety
/// `protocol` is a live handle; `node_id` a NUL-terminated string; `message` points to
/// writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_recv(
    protocol: *const hf_protocol,
    node_id: *const c_char,
    timeout_ms: u64,
    message: *mut *mut hf_message,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(node_id, "node_id") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(message, "message") }?;
        let m = lib(p.recv(id, Duration::from_millis(timeout_ms)))?;
        *out = Box::into_raw(Box::new(hf_message {
            source: c_string(&m.source),
            destination: c_string(&m.destination),
            message: m,
            origin: crate::sys::process::Origin::current(),
        }));
        Ok(())
    })
}

/// What `hf_recv_into` received (its data is in the caller's buffer).
#[repr(C)]
#[derive(Debug)]
pub struct hf_recv_info {
    /// Bytes of data written to the buffer (when the call failed with
    /// `HF_ERR_BUFFER_OVERFLOW`: the size of the message, which stays queued).
    pub len: usize,
    /// Sending node id, a NUL-terminated string valid for the life of the process.
    pub source: *const c_char,
    /// `HF_DATA_*`.
    pub data_type: u32,
    /// `HF_PRIORITY_*`.
    pub priority: u32,
    /// Message id.
    pub request_id: u64,
    /// Whether the sender waits for no response.
    pub one_way: bool,
    /// Metadata sent with it (JSON object bytes; empty when none, else release with
    /// `hf_bytes_free`).
    pub metadata: hf_bytes,
}

/// Takes the next message of hosted node `node_id` (one without handler) into the caller's
/// buffer, as `MPI_Recv` does: its data is copied into `buf` (`cap` bytes), the rest
/// described in `*info`. Waits up to `timeout_ms` (0: just look). No allocation for a message
/// without metadata. `HF_ERR_TIMEOUT` when nothing came; `HF_ERR_BUFFER_OVERFLOW` when the
/// next message is larger than `cap`: `info->len` is then its size and it stays the node's
/// next message (call again with a larger buffer).
///
/// # Safety
/// `protocol` is a live handle; `node_id` a NUL-terminated string; `buf` points to `cap`
/// writable bytes (may be NULL when `cap` is 0); `info` points to writable memory for an
/// `hf_recv_info`.
#[no_mangle]
pub unsafe extern "C" fn hf_recv_into(
    protocol: *const hf_protocol,
    node_id: *const c_char,
    timeout_ms: u64,
    buf: *mut u8,
    cap: usize,
    info: *mut hf_recv_info,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(node_id, "node_id") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(info, "info") }?;
        let buf: &mut [u8] = if cap == 0 {
            &mut []
        } else if buf.is_null() {
            return Err(FfiError::null("buf"));
        } else {
            // SAFETY: non-NULL and `cap` writable bytes (the caller's contract).
            unsafe { std::slice::from_raw_parts_mut(buf, cap) }
        };
        let r = match lib(p.recv_into_or_size(id, Duration::from_millis(timeout_ms), buf))? {
            Ok(r) => r,
            Err(size) => {
                out.len = size;
                return Err(FfiError::from(Error::BufferOverflow(format!(
                    "the next message of {id:?} has {size} bytes, the buffer {cap}; it stays \
                     queued"
                ))));
            }
        };
        *out = hf_recv_info {
            len: r.len,
            // Interned ids are stored with a NUL after them (engine::NodeName::intern).
            source: r.source.as_str().as_ptr().cast(),
            data_type: r.data_type as u32,
            priority: r.priority as u32,
            request_id: r.request_id,
            one_way: r.one_way,
            metadata: if r.metadata.is_empty() {
                hf_bytes {
                    data: std::ptr::null_mut(),
                    len: 0,
                    capacity: 0,
                }
            } else {
                hf_bytes::from_vec(r.metadata)
            },
        };
        Ok(())
    })
}

fn view(m: &ReceivedMessage, source: &CString, destination: &CString) -> hf_message_view {
    hf_message_view {
        source: source.as_ptr(),
        destination: destination.as_ptr(),
        data: m.data.as_ptr(),
        len: m.data.len(),
        metadata: if m.metadata.is_empty() {
            std::ptr::null()
        } else {
            m.metadata.as_ptr()
        },
        metadata_len: m.metadata.len(),
        data_type: m.data_type as u32,
        priority: m.priority as u32,
        request_id: m.request_id,
        one_way: m.one_way,
    }
}

/// Fills `*view` with pointers into `message` (valid until `hf_message_free`).
///
/// # Safety
/// `message` is a live handle; `view` points to writable memory for an `hf_message_view`.
#[no_mangle]
pub unsafe extern "C" fn hf_message_get_view(
    message: *const hf_message,
    out: *mut hf_message_view,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let m = unsafe { ref_arg(message, "message") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(out, "view") }?;
        super::same_process(m.origin)?;
        *out = view(&m.message, &m.source, &m.destination);
        Ok(())
    })
}

/// Releases a message. NULL is ignored.
///
/// # Safety
/// `message` is NULL or a handle from `hf_recv` not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_message_free(message: *mut hf_message) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(message) }
}

/// Sets the response of a handler call (copied; a later call replaces it).
///
/// # Safety
/// `response` is the pointer the handler received; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn hf_response_set(
    response: *mut hf_response,
    data: *const u8,
    len: usize,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let r = unsafe { mut_arg(response, "response") }?;
        // SAFETY: as the caller promised.
        let d = unsafe { bytes_arg(data, len, "data") }?;
        r.bytes.clear();
        r.bytes.extend_from_slice(d);
        Ok(())
    })
}

/// `user_data` crosses into the engine thread with the handler.
struct UserData(*mut c_void);
// SAFETY: the caller of hf_on_receive promises the data may be used from the engine's thread.
unsafe impl Send for UserData {}

/// Sets the request handler of hosted node `node_id` (`handler` NULL removes it: requests are
/// then queued for `hf_recv` and answered with a delivery receipt). The handler's response
/// goes back to `hf_send_data`; a non-`HF_OK` status becomes the requester's error.
///
/// # Safety
/// `protocol` is a live handle; `node_id` a NUL-terminated string; `user_data` stays valid,
/// and may be used from another thread, until the handler is replaced or the protocol freed.
#[no_mangle]
pub unsafe extern "C" fn hf_on_receive(
    protocol: *const hf_protocol,
    node_id: *const c_char,
    handler: hf_handler,
    user_data: *mut c_void,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(node_id, "node_id") }?;
        let Some(f) = handler else {
            return lib(p.clear_handler(id));
        };
        let user = UserData(user_data);
        lib(p.on_receive(id, move |m| {
            let user = &user;
            let (source, destination) = (c_string(&m.source), c_string(&m.destination));
            let v = view(m, &source, &destination);
            let mut response = hf_response { bytes: Vec::new() };
            // SAFETY: the handler and its user data are the caller's, valid per contract;
            // the view and response outlive the call.
            let status = unsafe { f(user.0, &v, &mut response) };
            if status == super::status::HF_OK {
                Ok(response.bytes)
            } else {
                let kind = crate::ErrorKind::from_status_code(status)
                    .unwrap_or(crate::ErrorKind::InvalidArgument);
                Err(Error::new(
                    kind,
                    format!(
                        "the handler of {:?} returned status {status}",
                        m.destination
                    ),
                ))
            }
        }))
    })
}

/// Pings `destination` from hosted node `source` with probes of `packet_size` bytes, into
/// `*result` (release with `hf_ping_result_free`).
///
/// # Safety
/// `protocol` is a live handle; `source` and `destination` NUL-terminated strings; `result`
/// points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_ping(
    protocol: *const hf_protocol,
    source: *const c_char,
    destination: *const c_char,
    packet_size: usize,
    timeout_ms: u64,
    result: *mut *mut hf_ping_result,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let (src, dst) = unsafe {
            (
                str_arg(source, "source")?,
                str_arg(destination, "destination")?,
            )
        };
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(result, "result") }?;
        let r = lib(p.ping(src, dst, packet_size, timeout_ms))?;
        let (path, path_len) = super::c_strings(&r.path);
        *out = Box::into_raw(Box::new(hf_ping_result {
            source: c_string(&r.source).into_raw(),
            destination: c_string(&r.destination).into_raw(),
            latency_ns: r.latency_ns,
            bandwidth_gbps: r.bandwidth_gbps,
            path,
            path_len,
            packet_loss_rate: r.packet_loss_rate,
            timestamp: r.timestamp,
            success: r.success,
        }));
        Ok(())
    })
}

/// Releases a ping result. NULL is ignored.
///
/// # Safety
/// `result` is NULL or a result from `hf_ping` not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_ping_result_free(result: *mut hf_ping_result) {
    let _ = boundary(|| {
        if result.is_null() {
            return Ok(());
        }
        // SAFETY: built by hf_ping from Box, CString::into_raw and a boxed slice; freed once.
        unsafe {
            let r = Box::from_raw(result);
            drop(CString::from_raw(r.source));
            drop(CString::from_raw(r.destination));
            super::free_c_strings(r.path, r.path_len);
        }
        Ok(())
    });
}

/// Fills `zone` with an empty specification.
///
/// # Safety
/// `zone` is NULL or points to writable memory for an `hf_fabric_zone`.
#[no_mangle]
pub unsafe extern "C" fn hf_fabric_zone_init(zone: *mut hf_fabric_zone) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let z = unsafe { mut_arg(zone, "zone") }?;
        *z = hf_fabric_zone {
            struct_size: std::mem::size_of::<hf_fabric_zone>(),
            zone_id: std::ptr::null(),
            zone_type: hf_zone_type::HF_ZONE_COMPUTE_CLUSTER as u32,
            isolation_level: hf_isolation_level::HF_ISOLATION_NONE as u32,
            max_nodes: 0,
            required_bandwidth_gbps: 0.0,
            description: std::ptr::null(),
            quantum_coherence_required: false,
            neuromorphic_optimization: false,
        };
        Ok(())
    })
}

/// Creates a zone of the fabric (every process enforces it): `HF_ERR_DUPLICATE_ZONE`,
/// `HF_ERR_INSUFFICIENT_RESOURCES`, `HF_ERR_INVALID_ZONE`.
///
/// # Safety
/// `protocol` is a live handle; `zone` NULL or an initialised `hf_fabric_zone` whose strings
/// stay valid during the call.
#[no_mangle]
pub unsafe extern "C" fn hf_create_zone(
    protocol: *const hf_protocol,
    zone: *const hf_fabric_zone,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let z = unsafe { ref_arg(zone, "zone") }?;
        check_size("zone", z.struct_size, std::mem::size_of::<hf_fabric_zone>())?;
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(z.zone_id, "zone_id") }?;
        let mut spec = lib(FabricZone::new(
            id,
            enum_arg(z.zone_type, "zone_type", ZoneType::from_u32)?,
            enum_arg(
                z.isolation_level,
                "isolation_level",
                IsolationLevel::from_u32,
            )?,
            z.max_nodes,
            z.required_bandwidth_gbps,
        ))?;
        // SAFETY: as the caller promised.
        spec.description =
            unsafe { opt_str_arg(z.description, "description") }?.map(str::to_string);
        spec.quantum_coherence_required = z.quantum_coherence_required;
        spec.neuromorphic_optimization = z.neuromorphic_optimization;
        lib(p.create_zone(spec)).map(drop)
    })
}

/// Makes a registered node a member of a zone (`HF_ERR_ZONE_NOT_FOUND`,
/// `HF_ERR_NODE_NOT_FOUND`, `HF_ERR_INSUFFICIENT_RESOURCES` when full).
///
/// # Safety
/// `protocol` is a live handle; the ids are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn hf_assign_to_zone(
    protocol: *const hf_protocol,
    zone_id: *const c_char,
    node_id: *const c_char,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let (z, n) = unsafe { (str_arg(zone_id, "zone_id")?, str_arg(node_id, "node_id")?) };
        lib(p.assign_to_zone(z, n)).map(drop)
    })
}

/// The topology (nodes, links, zones, route metrics, traffic counters) as a JSON object with
/// the fields of the reference's `TopologyInfo`, in `*json` (release with `hf_string_free`).
///
/// # Safety
/// `protocol` is a live handle; `json` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_get_topology_info(
    protocol: *const hf_protocol,
    json: *mut *mut c_char,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(json, "json") }?;
        let info = lib(p.get_topology_info())?;
        let text = serde_json::to_string(&info)
            .map_err(|e| FfiError::from(Error::InvalidArgument(format!("topology info: {e}"))))?;
        *out = c_string(&text).into_raw();
        Ok(())
    })
}

/// Releases a string the library handed out. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string from this library not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_string_free(s: *mut c_char) {
    let _ = boundary(|| {
        if !s.is_null() {
            // SAFETY: from CString::into_raw, freed once.
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(())
    });
}

/// Starts the background engine thread (pinned to `engine_core` when set): from then on it
/// drives the engine, so messages are delivered, handlers run (on that thread), requests and
/// pings are answered, and the hosted nodes send heartbeats (peers mark a node down after
/// 200 ms without one), whatever the process's other threads do. The calls that wait then
/// only look for their results. Without it, the engine moves only inside calls (see
/// `hf_progress`).
///
/// # Safety
/// `protocol` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn hf_start_background_services(protocol: *const hf_protocol) -> hf_status {
    boundary(|| lib(self::protocol(protocol)?.start_background_services()))
}

/// Stops the background engine thread.
///
/// # Safety
/// `protocol` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn hf_stop_background_services(protocol: *const hf_protocol) -> hf_status {
    boundary(|| lib(self::protocol(protocol)?.stop_background_services()))
}

/// One engine pass in the calling thread; `*handled` (if not NULL) gets the number of
/// messages handled. The pass delivers what arrived in this process's rings: it runs
/// handlers (in the calling thread), queues messages for `hf_recv`, answers requests and
/// pings, completes this process's requests, forwards what is routed through its nodes, and
/// sends coalesced events whose window passed; every 256th call also does the periodic work
/// (finding peers whose process died, and failing the requests waiting on them).
///
/// Progress rule: without background services nothing happens between calls. The calls
/// that wait (`hf_send_data`, `hf_request_wait`, `hf_request_wait_any`,
/// `hf_request_wait_all`, `hf_recv`, `hf_ping`) drive the engine until they return,
/// `hf_request_test` and `hf_progress` make one pass each, and a send finding the
/// destination's ring full drains this process's rings while it waits. A process computing
/// for long without such calls answers nothing meanwhile (its peers' requests wait up to
/// their timeouts; its nodes are not declared dead for it): call `hf_progress` in the loop,
/// or start the background services, with which this call is not needed.
///
/// # Safety
/// `protocol` is a live handle; `handled` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hf_progress(
    protocol: *const hf_protocol,
    handled: *mut usize,
) -> hf_status {
    boundary(|| {
        let n = self::protocol(protocol)?.progress();
        // SAFETY: as the caller promised.
        if let Some(h) = unsafe { handled.as_mut() } {
            *h = n;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
