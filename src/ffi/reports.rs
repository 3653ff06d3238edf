//! Reports as C structs (beside the JSON functions): the topology report with its
//! bottlenecks and metrics, node lists (of a topology, or of this machine's hardware), and
//! the traffic of a node of a running fabric. Each owned struct has its `_free`.

use super::control::{hf_topology_manager, tm};
use super::protocol::{hf_protocol, protocol};
use super::status::hf_status;
use super::{boundary, c_string, c_strings, free_c_strings, lib, mut_arg, str_arg};
use crate::model::{NodeSignature, TopologyInfo};
use std::ffi::{c_char, CString};

/// A bottleneck and what to do about it.
#[repr(C)]
#[derive(Debug)]
pub struct hf_bottleneck {
    /// A node id, or `a<->b` for a link.
    pub location: *mut c_char,
    /// What is short (`bandwidth`, `latency`, ...).
    pub bottleneck_type: *mut c_char,
    /// 0..1.
    pub severity: f64,
    /// 0..1.
    pub current_utilization: f64,
    /// What to do.
    pub recommended_action: *mut c_char,
}

/// The topology report (`get_topology_info`), owned by the library: release with
/// `hf_topology_report_free`.
#[repr(C)]
#[derive(Debug)]
pub struct hf_topology_report {
    /// Registered nodes.
    pub total_nodes: usize,
    /// Links.
    pub total_links: usize,
    /// Zones.
    pub zones: usize,
    /// Quantum processors.
    pub quantum_enabled_nodes: usize,
    /// Neuromorphic processors.
    pub neuromorphic_nodes: usize,
    /// Unix time of the report, s.
    pub timestamp: f64,
    /// The bottlenecks, `bottlenecks_len` of them.
    pub bottlenecks: *mut hf_bottleneck,
    /// Entries of `bottlenecks`.
    pub bottlenecks_len: usize,
    /// Names of the figures (`route_epoch`, `frames_sent`, ...), `metrics_len` of them.
    pub metric_names: *mut *mut c_char,
    /// Their values, in the same order.
    pub metric_values: *mut f64,
    /// Entries of `metric_names` and `metric_values`.
    pub metrics_len: usize,
}

fn report(info: TopologyInfo) -> *mut hf_topology_report {
    let bottlenecks: Box<[hf_bottleneck]> = info
        .bottlenecks
        .iter()
        .map(|b| hf_bottleneck {
            location: c_string(&b.location).into_raw(),
            bottleneck_type: c_string(&b.bottleneck_type).into_raw(),
            severity: b.severity,
            current_utilization: b.current_utilization,
            recommended_action: c_string(&b.recommended_action).into_raw(),
        })
        .collect();
    let bottlenecks_len = bottlenecks.len();
    let names: Vec<String> = info.performance_metrics.keys().cloned().collect();
    let values: Box<[f64]> = info.performance_metrics.values().copied().collect();
    let (metric_names, metrics_len) = c_strings(&names);
    Box::into_raw(Box::new(hf_topology_report {
        total_nodes: info.total_nodes,
        total_links: info.total_links,
        zones: info.zones.len(),
        quantum_enabled_nodes: info.quantum_enabled_nodes,
        neuromorphic_nodes: info.neuromorphic_nodes,
        timestamp: info.timestamp,
        bottlenecks: Box::into_raw(bottlenecks).cast(),
        bottlenecks_len,
        metric_names,
        metric_values: Box::into_raw(values).cast(),
        metrics_len,
    }))
}

/// The protocol's topology report (`get_topology_info`, with its traffic counters among the
/// metrics) in `*out`.
///
/// # Safety
/// `protocol` is a live handle; `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_protocol_topology_report(
    protocol: *const hf_protocol,
    out: *mut *mut hf_topology_report,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(out, "out") }?;
        *out = report(lib(p.get_topology_info())?);
        Ok(())
    })
}

/// A topology manager's report in `*out`.
///
/// # Safety
/// `manager` is a live handle; `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_manager_report(
    manager: *const hf_topology_manager,
    out: *mut *mut hf_topology_report,
) -> hf_status {
    boundary(|| {
        let info = lib(tm(manager)?.topology_info())?;
        // SAFETY: as the caller promised.
        *unsafe { mut_arg(out, "out") }? = report(info);
        Ok(())
    })
}

/// Releases a topology report. NULL is ignored.
///
/// # Safety
/// `report` is NULL or a report from this library not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_report_free(report: *mut hf_topology_report) {
    if report.is_null() {
        return;
    }
    // SAFETY: made by `report` above with Box::into_raw, released once (the contract).
    let r = unsafe { Box::from_raw(report) };
    // SAFETY: each array came from a boxed slice of its length.
    unsafe {
        let b = Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            r.bottlenecks,
            r.bottlenecks_len,
        ));
        for x in b.iter() {
            drop(CString::from_raw(x.location));
            drop(CString::from_raw(x.bottleneck_type));
            drop(CString::from_raw(x.recommended_action));
        }
        free_c_strings(r.metric_names, r.metrics_len);
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            r.metric_values,
            r.metrics_len,
        )));
    }
}

/// A node as a list shows it.
#[repr(C)]
#[derive(Debug)]
pub struct hf_node_info {
    /// Its id.
    pub node_id: *mut c_char,
    /// `hf_hardware_type` (`hf_hardware_type_name` gives its name).
    pub hardware_type: u32,
    /// Gbit/s.
    pub bandwidth_gbps: f64,
    /// ns.
    pub latency_ns: u64,
    /// GB; negative when not given.
    pub memory_gb: f64,
    /// Compute units; -1 when not given.
    pub compute_units: i64,
    /// The host it runs on, or NULL.
    pub host: *mut c_char,
}

/// A list of nodes, owned by the library: release with `hf_node_list_free`.
#[repr(C)]
#[derive(Debug)]
pub struct hf_node_list {
    /// The nodes.
    pub items: *mut hf_node_info,
    /// Entries of `items`.
    pub len: usize,
}

fn node_list(nodes: &[NodeSignature]) -> *mut hf_node_list {
    let items: Box<[hf_node_info]> = nodes
        .iter()
        .map(|n| hf_node_info {
            node_id: c_string(&n.node_id).into_raw(),
            hardware_type: n.hardware_type as u32,
            bandwidth_gbps: n.bandwidth_gbps,
            latency_ns: n.latency_ns,
            memory_gb: n.memory_gb.unwrap_or(-1.0),
            compute_units: n.compute_units.map_or(-1, |c| c as i64),
            host: n
                .host
                .as_deref()
                .map_or(std::ptr::null_mut(), |h| c_string(h).into_raw()),
        })
        .collect();
    let len = items.len();
    Box::into_raw(Box::new(hf_node_list {
        items: Box::into_raw(items).cast(),
        len,
    }))
}

/// This machine's hardware as nodes (`detect_hardware_capabilities`) in `*out`.
///
/// # Safety
/// `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_detect_hardware(out: *mut *mut hf_node_list) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(out, "out") }?;
        *out = node_list(&crate::hw::detect_hardware_capabilities());
        Ok(())
    })
}

/// A topology manager's nodes, in insertion order, in `*out`.
///
/// # Safety
/// `manager` is a live handle; `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_node_list(
    manager: *const hf_topology_manager,
    out: *mut *mut hf_node_list,
) -> hf_status {
    boundary(|| {
        let nodes: Vec<NodeSignature> = tm(manager)?.read(|t| t.nodes().cloned().collect());
        // SAFETY: as the caller promised.
        *unsafe { mut_arg(out, "out") }? = node_list(&nodes);
        Ok(())
    })
}

/// Releases a node list. NULL is ignored.
///
/// # Safety
/// `list` is NULL or a list from this library not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_node_list_free(list: *mut hf_node_list) {
    if list.is_null() {
        return;
    }
    // SAFETY: made by `node_list` with Box::into_raw, released once (the contract).
    let l = unsafe { Box::from_raw(list) };
    // SAFETY: the items came from a boxed slice of `len`; their strings from into_raw.
    unsafe {
        let items = Box::from_raw(std::ptr::slice_from_raw_parts_mut(l.items, l.len));
        for n in items.iter() {
            drop(CString::from_raw(n.node_id));
            if !n.host.is_null() {
                drop(CString::from_raw(n.host));
            }
        }
    }
}

/// A node of a running fabric as this host sees it (filled in by `hf_get_node_stats`; the
/// caller owns it, nothing to free).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct hf_node_stats {
    /// Registered here by a live process.
    pub up: bool,
    /// The hosting process (0 when down).
    pub pid: u32,
    /// Unix time of its registration (up) or of its leaving (down), s; 0 when never seen.
    pub since_unix: f64,
    /// Messages its rings carried out (sends, forwards, answers).
    pub sent_messages: u64,
    /// Their payload bytes.
    pub sent_bytes: u64,
    /// Messages put into rings toward it.
    pub received_messages: u64,
    /// Their payload bytes.
    pub received_bytes: u64,
    /// Ring slots waiting for it now.
    pub queued_slots: u64,
}

/// The state and traffic of node `node_id` of the fabric `fabric` running on this host, in
/// `*out`: read from the host's registry, the rings' headers and the counters processes
/// publish, without joining the fabric. `HF_ERR_NODE_NOT_FOUND` when the fabric does not
/// run here, or the node is neither registered nor remembered as departed.
///
/// # Safety
/// `fabric` and `node_id` are NUL-terminated strings; `out` points to a writable
/// `hf_node_stats`.
#[no_mangle]
pub unsafe extern "C" fn hf_get_node_stats(
    fabric: *const c_char,
    node_id: *const c_char,
    out: *mut hf_node_stats,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let (fabric, id, out) = unsafe {
            (
                str_arg(fabric, "fabric")?,
                str_arg(node_id, "node_id")?,
                mut_arg(out, "out")?,
            )
        };
        let s = lib(crate::transport::stats::node_stats(fabric, id))?;
        *out = hf_node_stats {
            up: s.up,
            pid: s.pid,
            since_unix: s.since_unix_ns as f64 / 1e9,
            sent_messages: s.sent_messages,
            sent_bytes: s.sent_bytes,
            received_messages: s.received_messages,
            received_bytes: s.received_bytes,
            queued_slots: s.queued_slots,
        };
        Ok(())
    })
}
