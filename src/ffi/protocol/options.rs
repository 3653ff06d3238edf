//! The option structs C fills (`hf_protocol_options`, `hf_node_signature`, `hf_send_options`),
//! their `_init` functions with the defaults, and their checked conversion to Rust values.

use super::enums::{
    enum_arg, hf_data_type, hf_hardware_type, hf_idle_strategy, hf_packet_priority,
};
use crate::fabric::SendOptions;
use crate::ffi::status::hf_status;
use crate::ffi::{boundary, check_size, lib, mut_arg, opt_str_arg, str_arg, FfiError, FfiResult};
use crate::model::{DataType, HardwareType, NodeSignature, PacketPriority};
use std::ffi::c_char;
use std::time::Duration;

/// Options of `hf_protocol_new`. Fill with `hf_protocol_options_init`, then change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hf_protocol_options {
    /// `sizeof(hf_protocol_options)` of the header the program was built with, set by
    /// `hf_protocol_options_init`. Fields are only ever appended: a program built against an
    /// earlier header has a smaller struct, which is filled and read as it is, and the
    /// fields it lacks keep their defaults (the layouts from the one that ends with
    /// `tcp_sqpoll` are taken; any other size is refused).
    pub struct_size: usize,
    /// Route on latency predicted from measurements (default false).
    pub enable_ml_routing: bool,
    /// Coherence-deadline routing for quantum traffic (default false).
    pub enable_quantum_optimization: bool,
    /// Delivery guarantees (default true): each message arrives exactly once and in order
    /// per (source, destination, priority), or its sender is told (a request fails; a
    /// one-way message fails the next send of the pair). Through forwarders, frames a hop
    /// loses are sent again; straight over TCP, one-way messages a closed connection
    /// carried unconfirmed are reported (some may have arrived). False: best effort. See
    /// `docs/delivery.md`.
    pub enable_fault_tolerance: bool,
    /// Latency constraint of sends that give none, ns; 0: none (default).
    pub default_latency_constraint_ns: u64,
    /// Buffers in the zero-copy pool (default 1000).
    pub buffer_pool_size: u32,
    /// Largest frame in a ring, bytes; larger payloads are fragmented (default 65536).
    /// Frames over TCP to the process hosting the destination carry 256 KiB of body
    /// whatever this is.
    pub max_packet_size: u32,
    /// Fabric name: its host state is `/dev/shm/hyperfabric-<uid>/<name>/`; NULL: `"default"`.
    pub fabric_name: *const c_char,
    /// An `hf_idle_strategy` (default `HF_IDLE_ADAPTIVE`).
    pub idle_strategy: u32,
    /// Core the background thread is pinned to; -1: not pinned (default).
    pub engine_core: i32,
    /// 32-byte AES-256 fabric key for encrypted sends; NULL: none (default).
    pub key: *const u8,
    /// From how many bytes `hf_endpoint_post_mem` lets the receiver copy the bytes once,
    /// straight from this process's memory (smaller sends are posted through shared memory);
    /// -1: measured once per process at the first such send (default; where the kernel's copy
    /// never beats shared memory, as on some virtual machines, every send is posted); 0:
    /// always.
    pub single_copy_from: i64,
    /// Whether `hf_post`, `hf_send_data` and `hf_send_data_nb` go through an endpoint the
    /// calling thread keeps for the (source, destination) pair (default true; at most 32 per
    /// thread, a ring file each; sends from one thread to one pair stay in order). false:
    /// through the engine's lock and rings, for applications with many short-lived threads or
    /// thousands of pairs per thread.
    pub endpoints_by_name: bool,
    /// Address and port to accept connections from other hosts on (`"0.0.0.0:7100"`; port
    /// 0 picks a free one); NULL: none, unless the environment asks for TCP
    /// (`HF_TRANSPORT=tcp`, see the README). With it, nodes of other hosts are reached by
    /// `hf_insert_peer` and `hf_connect_host`.
    pub tcp_listen: *const c_char,
    /// Accept connections between hosts without a fabric key (default false: without `key`,
    /// `hf_protocol_new` with `tcp_listen` fails).
    pub tcp_insecure: bool,
    /// Reach nodes of this host over TCP too when a connection hosts them (default false;
    /// for measuring TCP on one machine).
    pub tcp_force: bool,
    /// With `tcp_listen`: poll the engine's io_uring with a kernel thread
    /// (`IORING_SETUP_SQPOLL`, default false; `HF_TCP_SQPOLL=1` sets it for any TCP
    /// configuration, `HF_TRANSPORT=tcp` included): receives complete without entering the kernel,
    /// for a thread that spins while there is traffic. `hf_protocol_new` fails where the
    /// kernel refuses it.
    pub tcp_sqpoll: bool,
    /// With `tcp_listen`: flights of frames (queued while a socket was full) of at least this
    /// many bytes go out as zero-copy sends (`IORING_OP_SEND_ZC`) where the kernel has them;
    /// 0 (the default) for 65536, negative for never. A connection whose kernel copies them
    /// anyway (a peer on this host) sends plainly from then on. `HF_TCP_ZEROCOPY_MIN`
    /// (`off` or bytes) overrides it.
    pub tcp_zerocopy_min: i64,
}

/// A node signature (`hf_register_node`). Fill with `hf_node_signature_init`, then set at
/// least `node_id`, `hardware_type`, `bandwidth_gbps` and `latency_ns`. Optional numbers are
/// unset when negative (floating point) or 0 (counts); optional strings when NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hf_node_signature {
    /// `sizeof(hf_node_signature)`, set by `hf_node_signature_init`.
    pub struct_size: usize,
    /// Unique id: 1 to 63 bytes of UTF-8, no control characters.
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

pub(super) fn json_object(
    p: *const c_char,
    name: &str,
) -> FfiResult<Option<serde_json::Map<String, serde_json::Value>>> {
    // SAFETY: the caller's struct field is NULL or a NUL-terminated string.
    let Some(text) = (unsafe { opt_str_arg(p, name) })? else {
        return Ok(None);
    };
    serde_json::from_str(text).map(Some).map_err(|e| FfiError {
        status: crate::ffi::status::HF_ERR_INVALID_ARGUMENT,
        message: format!("argument `{name}` is not a JSON object: {e}"),
    })
}

/// Fills the first `size` bytes of `options` with the defaults, `struct_size` set to `size`:
/// the header's `hf_protocol_options_init(options)` passes `sizeof(hf_protocol_options)` of
/// the header the program was built with, so a program built against an earlier header
/// (with fewer fields) gets its own struct filled and nothing past it. `size` is the size of
/// some version of the struct: from the layout that ends with `tcp_sqpoll`.
///
/// # Safety
/// `options` is NULL or points to `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn hf_protocol_options_init_size(
    options: *mut hf_protocol_options,
    size: usize,
) -> hf_status {
    boundary(|| {
        if options.is_null() {
            return Err(FfiError::null("options"));
        }
        let size = known_size("size", size)?;
        let mut d = default_options();
        d.struct_size = size;
        // SAFETY: the caller's struct has `size` writable bytes; `d` has `size` readable ones.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&d as *const hf_protocol_options).cast::<u8>(),
                options.cast::<u8>(),
                size,
            )
        };
        Ok(())
    })
}

/// Fills the options of the layout that ends with `tcp_sqpoll` with the defaults (what
/// programs built against that header call). The header maps `hf_protocol_options_init` to
/// [`hf_protocol_options_init_size`] with the program's own struct size.
///
/// # Safety
/// `options` is NULL or points to a writable `hf_protocol_options` of that layout or later.
#[no_mangle]
pub unsafe extern "C" fn hf_protocol_options_init(options: *mut hf_protocol_options) -> hf_status {
    // SAFETY: as the caller promised.
    unsafe { hf_protocol_options_init_size(options, OLDEST_OPTIONS) }
}

/// The struct size of a version of `hf_protocol_options` this library knows (at most its
/// own: a larger one is read as its own), or an error naming `name`.
fn known_size(name: &str, size: usize) -> crate::ffi::FfiResult<usize> {
    let own = std::mem::size_of::<hf_protocol_options>();
    if size == OLDEST_OPTIONS || size >= own {
        return Ok(size.min(own));
    }
    Err(FfiError {
        status: crate::ffi::status::HF_ERR_INVALID_ARGUMENT,
        message: format!(
            "argument `{name}`: {size} bytes is no size of hf_protocol_options ({OLDEST_OPTIONS} \
             or {own}; initialise it with hf_protocol_options_init)"
        ),
    })
}

/// The defaults of `hf_protocol_options`.
pub(crate) fn default_options() -> hf_protocol_options {
    let d = crate::config::ProtocolOptions::default();
    hf_protocol_options {
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
        single_copy_from: -1,
        endpoints_by_name: true,
        tcp_listen: std::ptr::null(),
        tcp_insecure: false,
        tcp_force: false,
        tcp_sqpoll: false,
        tcp_zerocopy_min: 0,
    }
}

/// The smallest `struct_size` of `hf_protocol_options` taken: its size before
/// `tcp_zerocopy_min` was added. Fields a caller's smaller struct lacks keep their defaults,
/// so programs built against an older header keep working.
pub(crate) const OLDEST_OPTIONS: usize =
    std::mem::offset_of!(hf_protocol_options, tcp_zerocopy_min);

/// The caller's options over the defaults: the first `struct_size` bytes of its struct (at
/// most this library's size), after checking that size.
///
/// # Safety
/// `options` points to an initialised `hf_protocol_options` of at least its `struct_size`
/// bytes, as built against some version of the header.
pub(crate) unsafe fn read_options(
    options: *const hf_protocol_options,
) -> crate::ffi::FfiResult<hf_protocol_options> {
    // SAFETY: every version starts with `struct_size`.
    let declared = unsafe { std::ptr::addr_of!((*options).struct_size).read_unaligned() };
    let n = known_size("options.struct_size", declared)?;
    let mut o = default_options();
    // SAFETY: the caller's struct has `declared` readable bytes; `o` has room for `n`, the
    // end of some version's layout (fields are only ever appended).
    unsafe {
        std::ptr::copy_nonoverlapping(
            options.cast::<u8>(),
            (&mut o as *mut hf_protocol_options).cast::<u8>(),
            n,
        )
    };
    o.struct_size = std::mem::size_of::<hf_protocol_options>();
    Ok(o)
}

/// Size of `hf_node_signature` in the header of programs that call the exported
/// `hf_node_signature_init` (before the header mapped it to
/// [`hf_node_signature_init_size`]). When a field is appended, this stays the size of the
/// layout before it.
const NODE_SIGNATURE_V1: usize = std::mem::size_of::<hf_node_signature>();

/// Fills `node` (of the layout the header of programs before sized inits had).
///
/// # Safety
/// `node` is NULL or points to writable memory for an `hf_node_signature`.
#[no_mangle]
pub unsafe extern "C" fn hf_node_signature_init(node: *mut hf_node_signature) -> hf_status {
    // SAFETY: as the caller promised.
    unsafe { hf_node_signature_init_size(node, NODE_SIGNATURE_V1) }
}

/// Fills `node` with an empty signature (every optional field unset) once its `size` (the
/// header's `hf_node_signature_init(node)` passes `sizeof(hf_node_signature)` of the header
/// the program was built with) is found to hold this library's struct: nothing past the
/// program's struct is written. A smaller size is refused.
///
/// # Safety
/// `node` is NULL or points to `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn hf_node_signature_init_size(
    node: *mut hf_node_signature,
    size: usize,
) -> hf_status {
    boundary(|| {
        // SAFETY: NULL or `size` writable bytes, checked below to hold a whole struct.
        let n = unsafe { mut_arg(node, "node") }?;
        check_size("size", size, std::mem::size_of::<hf_node_signature>())?;
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

/// Size of `hf_send_options` in the header of programs that call the exported
/// `hf_send_options_init` (before the header mapped it to [`hf_send_options_init_size`]).
/// When a field is appended, this stays the size of the layout before it.
const SEND_OPTIONS_V1: usize = std::mem::size_of::<hf_send_options>();

/// Fills `options` (of the layout the header of programs before sized inits had).
///
/// # Safety
/// `options` is NULL or points to writable memory for an `hf_send_options`.
#[no_mangle]
pub unsafe extern "C" fn hf_send_options_init(options: *mut hf_send_options) -> hf_status {
    // SAFETY: as the caller promised.
    unsafe { hf_send_options_init_size(options, SEND_OPTIONS_V1) }
}

/// Fills `options` with the defaults of a send once its `size` (the header's
/// `hf_send_options_init(options)` passes `sizeof(hf_send_options)` of the header the
/// program was built with) is found to hold this library's struct: nothing past the
/// program's struct is written. A smaller size is refused.
///
/// # Safety
/// `options` is NULL or points to `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn hf_send_options_init_size(
    options: *mut hf_send_options,
    size: usize,
) -> hf_status {
    boundary(|| {
        // SAFETY: NULL or `size` writable bytes, checked below to hold a whole struct.
        let o = unsafe { mut_arg(options, "options") }?;
        check_size("size", size, std::mem::size_of::<hf_send_options>())?;
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
