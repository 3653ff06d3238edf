//! Zones (`hf_fabric_zone`, creation, membership) and the topology report.

use super::enums::{enum_arg, hf_isolation_level, hf_zone_type};
use super::lifecycle::{hf_protocol, protocol};
use crate::error::Error;
use crate::ffi::status::hf_status;
use crate::ffi::{
    boundary, c_string, check_size, lib, mut_arg, opt_str_arg, ref_arg, str_arg, FfiError,
};
use crate::model::{FabricZone, IsolationLevel, ZoneType};
use std::ffi::c_char;

/// A zone specification (`hf_create_zone`). Fill with `hf_fabric_zone_init`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hf_fabric_zone {
    /// `sizeof(hf_fabric_zone)`, set by `hf_fabric_zone_init`.
    pub struct_size: usize,
    /// Unique id: 1 to 63 bytes of UTF-8, no control characters.
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
