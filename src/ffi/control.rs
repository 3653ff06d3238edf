//! The control plane in the C ABI: `hf_topology_manager` (nodes, links, routes, link
//! metrics, bottlenecks), fabric configuration files, hardware detection, and
//! `measure_network_performance`. Results with structure come back as JSON strings (release
//! with `hf_string_free`), routes as `hf_route`.

use super::protocol::{hf_node_signature, hf_protocol, signature};
use super::status::hf_status;
use super::{boundary, c_string, lib, mut_arg, ref_arg, str_arg, FfiError, FfiResult};
use crate::config::FabricConfig;
use crate::model::DataType;
use crate::routing::Metric;
use crate::routing::TopologyManager;
use crate::topology::LinkSpec;
use std::ffi::c_char;

/// Route metric (`hf_topology_find_shortest_path`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hf_metric {
    /// Lowest path latency; ties: fewer hops.
    HF_METRIC_LATENCY = 0,
    /// Widest path (largest bottleneck bandwidth); ties: lower latency, then fewer hops.
    HF_METRIC_BANDWIDTH = 1,
    /// Fewest links; ties: lower latency.
    HF_METRIC_HOPS = 2,
}

/// A topology of nodes, links and zones with routing tables kept current (the reference's
/// `TopologyManager`, with its `RoutingEngine`). Thread-safe.
pub struct hf_topology_manager {
    inner: TopologyManager,
}

/// A fabric configuration read from YAML (the reference's configuration dictionary).
pub struct hf_fabric_config {
    inner: FabricConfig,
}

/// A route, owned by the library: release with `hf_route_free`.
#[repr(C)]
#[derive(Debug)]
pub struct hf_route {
    /// Node ids from source to destination.
    pub path: *mut *mut c_char,
    /// Entries of `path`.
    pub path_len: usize,
    /// Sum of link and node latencies, ns.
    pub latency_ns: u64,
    /// Bottleneck bandwidth, Gbit/s.
    pub bandwidth_gbps: f64,
    /// Links.
    pub hops: u32,
}

pub(crate) fn tm<'a>(p: *const hf_topology_manager) -> FfiResult<&'a TopologyManager> {
    // SAFETY: `p` is NULL or a live handle (the caller's contract).
    Ok(&unsafe { ref_arg(p, "manager") }?.inner)
}

fn store_route(out: *mut *mut hf_route, r: crate::routing::Route) -> FfiResult<()> {
    // SAFETY: `out` is NULL (reported) or writable (the caller's contract).
    let out = unsafe { mut_arg(out, "route") }?;
    let (path, path_len) = super::c_strings(&r.path);
    *out = Box::into_raw(Box::new(hf_route {
        path,
        path_len,
        latency_ns: r.latency_ns,
        bandwidth_gbps: r.bandwidth_gbps,
        hops: r.hops,
    }));
    Ok(())
}

fn store_json(out: *mut *mut c_char, value: &impl serde::Serialize) -> FfiResult<()> {
    // SAFETY: `out` is NULL (reported) or writable (the caller's contract).
    let out = unsafe { mut_arg(out, "json") }?;
    let text = serde_json::to_string(value)
        .map_err(|e| FfiError::from(crate::Error::InvalidArgument(format!("json: {e}"))))?;
    *out = c_string(&text).into_raw();
    Ok(())
}

/// An empty topology manager in `*out`; `enable_auto_optimization` spreads flows over
/// equal-cost next hops.
///
/// # Safety
/// `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_manager_new(
    enable_auto_optimization: bool,
    out: *mut *mut hf_topology_manager,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(out, "out") }?;
        let inner = TopologyManager::new(enable_auto_optimization);
        *out = Box::into_raw(Box::new(hf_topology_manager { inner }));
        Ok(())
    })
}

/// Releases a topology manager. NULL is ignored.
///
/// # Safety
/// `manager` is NULL or a handle not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_manager_free(manager: *mut hf_topology_manager) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(manager) }
}

/// Adds a node (`HF_ERR_DUPLICATE_NODE`, `HF_ERR_INVALID_NODE`).
///
/// # Safety
/// `manager` is a live handle; `node` an initialised signature.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_add_node(
    manager: *const hf_topology_manager,
    node: *const hf_node_signature,
) -> hf_status {
    boundary(|| {
        let t = tm(manager)?;
        // SAFETY: as the caller promised.
        let sig = signature(unsafe { ref_arg(node, "node") }?)?;
        lib(t.add_node(sig))
    })
}

/// Removes a node with its links and memberships (`HF_ERR_NODE_NOT_FOUND`).
///
/// # Safety
/// `manager` is a live handle; `node_id` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_remove_node(
    manager: *const hf_topology_manager,
    node_id: *const c_char,
) -> hf_status {
    boundary(|| {
        let t = tm(manager)?;
        // SAFETY: as the caller promised.
        lib(t.remove_node(unsafe { str_arg(node_id, "node_id") }?))
    })
}

/// Declares a link between two nodes; `latency_ns` 0 and `bandwidth_gbps` <= 0 take the
/// values derived from the nodes (`HF_ERR_NODE_NOT_FOUND`, `HF_ERR_INVALID_ARGUMENT`).
///
/// # Safety
/// `manager` is a live handle; the ids are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_add_link(
    manager: *const hf_topology_manager,
    a: *const c_char,
    b: *const c_char,
    latency_ns: u64,
    bandwidth_gbps: f64,
) -> hf_status {
    boundary(|| {
        let t = tm(manager)?;
        // SAFETY: as the caller promised.
        let (a, b) = unsafe { (str_arg(a, "a")?, str_arg(b, "b")?) };
        let mut link = LinkSpec::new(a, b);
        if latency_ns > 0 {
            link = link.latency_ns(latency_ns);
        }
        if bandwidth_gbps > 0.0 {
            link = link.bandwidth_gbps(bandwidth_gbps);
        }
        lib(t.add_link(link))
    })
}

/// Removes a declared link (`HF_ERR_LINK_NOT_FOUND`).
///
/// # Safety
/// `manager` is a live handle; the ids are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_remove_link(
    manager: *const hf_topology_manager,
    a: *const c_char,
    b: *const c_char,
) -> hf_status {
    boundary(|| {
        let t = tm(manager)?;
        // SAFETY: as the caller promised.
        let (a, b) = unsafe { (str_arg(a, "a")?, str_arg(b, "b")?) };
        lib(t.remove_link(a, b))
    })
}

/// The best route by `metric` (an `hf_metric`) into `*route` (`HF_ERR_NODE_NOT_FOUND`,
/// `HF_ERR_NO_ROUTE_FOUND`, `HF_ERR_ZONE_ISOLATION_VIOLATION`).
///
/// # Safety
/// `manager` is a live handle; the ids are NUL-terminated strings; `route` writable.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_find_shortest_path(
    manager: *const hf_topology_manager,
    source: *const c_char,
    destination: *const c_char,
    metric: u32,
    route: *mut *mut hf_route,
) -> hf_status {
    boundary(|| {
        let t = tm(manager)?;
        // SAFETY: as the caller promised.
        let (s, d) = unsafe {
            (
                str_arg(source, "source")?,
                str_arg(destination, "destination")?,
            )
        };
        let m = match metric {
            0 => Metric::Latency,
            1 => Metric::Bandwidth,
            2 => Metric::Hops,
            v => return Err(FfiError::enumeration("metric", v)),
        };
        store_route(route, lib(t.shortest_route(s, d, m))?)
    })
}

/// The reference's `RoutingEngine.find_optimal_path`: the lowest-latency route (learned
/// latency with ML routing) for data of `data_type` that meets `latency_constraint_ns` (0:
/// none) and `bandwidth_requirement_gbps` (<= 0: none), zone and quantum rules included
/// (`HF_ERR_LATENCY_CONSTRAINT_VIOLATION`, `HF_ERR_QUANTUM_COHERENCE`,
/// `HF_ERR_NO_ROUTE_FOUND`, ...).
///
/// # Safety
/// As `hf_topology_find_shortest_path`.
#[no_mangle]
pub unsafe extern "C" fn hf_find_optimal_path(
    manager: *const hf_topology_manager,
    source: *const c_char,
    destination: *const c_char,
    data_type: u32,
    latency_constraint_ns: u64,
    bandwidth_requirement_gbps: f64,
    route: *mut *mut hf_route,
) -> hf_status {
    boundary(|| {
        let t = tm(manager)?;
        // SAFETY: as the caller promised.
        let (s, d) = unsafe {
            (
                str_arg(source, "source")?,
                str_arg(destination, "destination")?,
            )
        };
        let dt = DataType::from_u32(data_type)
            .ok_or_else(|| FfiError::enumeration("data_type", data_type))?;
        let req = crate::routing::RouteRequest {
            data_type: dt,
            latency_constraint_ns: (latency_constraint_ns > 0).then_some(latency_constraint_ns),
            bandwidth_requirement_gbps: (bandwidth_requirement_gbps > 0.0)
                .then_some(bandwidth_requirement_gbps),
            ..crate::routing::RouteRequest::new(s, d)
        };
        store_route(route, lib(t.route(&req))?)
    })
}

/// Releases a route. NULL is ignored.
///
/// # Safety
/// `route` is NULL or a route from this library not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_route_free(route: *mut hf_route) {
    let _ = boundary(|| {
        if route.is_null() {
            return Ok(());
        }
        // SAFETY: built by store_route (a Box and c_strings); freed once.
        unsafe {
            let r = Box::from_raw(route);
            super::free_c_strings(r.path, r.path_len);
        }
        Ok(())
    });
}

/// Records measurements of the link between two nodes (latency, utilised bandwidth, loss
/// rate in 0..=1); with ML routing they change the routes.
///
/// # Safety
/// `manager` is a live handle; the ids are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn hf_update_link_metrics(
    manager: *const hf_topology_manager,
    source: *const c_char,
    destination: *const c_char,
    latency_ns: u64,
    bandwidth_utilized_gbps: f64,
    packet_loss_rate: f64,
) -> hf_status {
    boundary(|| {
        let t = tm(manager)?;
        // SAFETY: as the caller promised.
        let (s, d) = unsafe {
            (
                str_arg(source, "source")?,
                str_arg(destination, "destination")?,
            )
        };
        lib(t.update_link_metrics(s, d, latency_ns, bandwidth_utilized_gbps, packet_loss_rate))
    })
}

/// The current bottlenecks, most severe first, as a JSON array of the reference's
/// `BottleneckInfo` objects, in `*json`.
///
/// # Safety
/// `manager` is a live handle; `json` writable.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_analyze_bottlenecks(
    manager: *const hf_topology_manager,
    json: *mut *mut c_char,
) -> hf_status {
    boundary(|| store_json(json, &lib(tm(manager)?.analyze_bottlenecks())?))
}

/// The nodes, as a JSON array of node signatures in insertion order, in `*json`.
///
/// # Safety
/// `manager` is a live handle; `json` writable.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_nodes(
    manager: *const hf_topology_manager,
    json: *mut *mut c_char,
) -> hf_status {
    boundary(|| {
        let nodes: Vec<crate::model::NodeSignature> =
            tm(manager)?.read(|t| t.nodes().cloned().collect());
        store_json(json, &nodes)
    })
}

/// The topology as the reference's `TopologyInfo` (JSON) in `*json`.
///
/// # Safety
/// `manager` is a live handle; `json` writable.
#[no_mangle]
pub unsafe extern "C" fn hf_topology_get_info(
    manager: *const hf_topology_manager,
    json: *mut *mut c_char,
) -> hf_status {
    boundary(|| store_json(json, &lib(tm(manager)?.topology_info())?))
}

/// Reads and checks a fabric configuration file (YAML) into `*config`: `HF_ERR_CONFIG` with
/// `FILE:LINE: FIELD: ...` in the last error message.
///
/// # Safety
/// `path` is a NUL-terminated string; `config` writable.
#[no_mangle]
pub unsafe extern "C" fn hf_load_fabric_config(
    path: *const c_char,
    config: *mut *mut hf_fabric_config,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let path = unsafe { str_arg(path, "path") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(config, "config") }?;
        let inner = lib(crate::config::load_fabric_config(path))?;
        *out = Box::into_raw(Box::new(hf_fabric_config { inner }));
        Ok(())
    })
}

/// Writes a configuration as YAML, atomically (loading it gives back an equal one).
///
/// # Safety
/// `config` is a live handle; `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hf_save_fabric_config(
    config: *const hf_fabric_config,
    path: *const c_char,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let c = unsafe { ref_arg(config, "config") }?;
        // SAFETY: as the caller promised.
        let path = unsafe { str_arg(path, "path") }?;
        lib(crate::config::save_fabric_config(&c.inner, path))
    })
}

/// A topology manager holding the configuration's nodes, links and zones, in `*manager`.
///
/// # Safety
/// `config` is a live handle; `manager` writable.
#[no_mangle]
pub unsafe extern "C" fn hf_fabric_config_topology(
    config: *const hf_fabric_config,
    manager: *mut *mut hf_topology_manager,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let c = unsafe { ref_arg(config, "config") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(manager, "manager") }?;
        let inner = lib(c.inner.topology_manager())?;
        *out = Box::into_raw(Box::new(hf_topology_manager { inner }));
        Ok(())
    })
}

/// Releases a configuration. NULL is ignored.
///
/// # Safety
/// `config` is NULL or a handle not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_fabric_config_free(config: *mut hf_fabric_config) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(config) }
}

/// This machine's devices as node signatures: a JSON array in `*json`.
///
/// # Safety
/// `json` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_detect_hardware_capabilities(json: *mut *mut c_char) -> hf_status {
    boundary(|| store_json(json, &crate::hw::detect_hardware_capabilities()))
}

/// Whether a node's hardware meets the fabric's requirements, in `*compatible` (an invalid
/// signature gives its error instead).
///
/// # Safety
/// `node` is an initialised signature; `compatible` writable.
#[no_mangle]
pub unsafe extern "C" fn hf_validate_hardware_compatibility(
    node: *const hf_node_signature,
    compatible: *mut bool,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(compatible, "compatible") }?;
        // SAFETY: as the caller promised.
        let sig = signature(unsafe { ref_arg(node, "node") }?)?;
        *out = crate::hw::validate_hardware_compatibility(&sig);
        Ok(())
    })
}

/// The reference's `measure_network_performance`: pings every other node from the nodes
/// this protocol hosts for `duration_ms` and reports the metrics as a JSON object of numbers
/// in `*json` (`HF_ERR_NODE_NOT_FOUND` when it hosts none).
///
/// # Safety
/// `protocol` is a live handle; `json` writable.
#[no_mangle]
pub unsafe extern "C" fn hf_measure_network_performance(
    protocol: *const hf_protocol,
    duration_ms: u64,
    json: *mut *mut c_char,
) -> hf_status {
    boundary(|| {
        let p = super::protocol::protocol(protocol)?;
        let m = lib(crate::fabric::measure_network_performance(
            p,
            std::time::Duration::from_millis(duration_ms),
        ))?;
        store_json(json, &m)
    })
}

/// What the kernel's io_uring offers the TCP transport (see `hf_transport_probe`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hf_transport_support {
    /// The kernel release (`uname -r`), NUL-terminated.
    pub kernel: [c_char; 65],
    /// Whether an io_uring could be set up at all.
    pub io_uring: bool,
    /// Zero-copy sends (`IORING_OP_SEND_ZC`) completed on a TCP socket.
    pub send_zc: bool,
    /// A multishot receive delivered data into provided buffers and stayed armed.
    pub recv_multishot: bool,
    /// Provided-buffer rings (`IORING_REGISTER_PBUF_RING`) can be registered.
    pub buffer_ring: bool,
    /// A kernel submission thread (`IORING_SETUP_SQPOLL`) is allowed to this user.
    pub sqpoll: bool,
    /// `io_uring_enter` takes a timeout (an idle engine sleeps a bounded time in it).
    pub enter_timeout: bool,
    /// Why no io_uring could be set up (empty when one could), NUL-terminated, truncated.
    pub unavailable_reason: [c_char; 128],
}

/// Copies `s` into `out` (not empty) as a NUL-terminated C string, truncated to fit at a
/// character boundary.
fn fill_c_string(out: &mut [c_char], s: &str) {
    let mut n = s.len().min(out.len() - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    for (o, &b) in out.iter_mut().zip(&s.as_bytes()[..n]) {
        *o = b as c_char;
    }
    out[n] = 0;
}

/// Tries what the TCP transport uses of io_uring on this kernel, on a real ring and a
/// loopback TCP connection (a few milliseconds), and fills `*out`. `hyperfabric detect`
/// prints the same.
///
/// # Safety
/// `out` points to writable memory for an `hf_transport_support`.
#[no_mangle]
pub unsafe extern "C" fn hf_transport_probe(out: *mut hf_transport_support) -> hf_status {
    boundary(|| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        let s = crate::sys::uring::probe();
        let mut r = hf_transport_support {
            kernel: [0; 65],
            io_uring: s.available,
            send_zc: s.send_zc,
            recv_multishot: s.recv_multishot,
            buffer_ring: s.buffer_ring,
            sqpoll: s.sqpoll,
            enter_timeout: s.enter_timeout,
            unavailable_reason: [0; 128],
        };
        fill_c_string(&mut r.kernel, &s.kernel);
        fill_c_string(&mut r.unavailable_reason, s.error.as_deref().unwrap_or(""));
        // SAFETY: not NULL, and writable for an hf_transport_support as the caller promised
        // (written whole, never read: what was there need not be a valid value).
        unsafe { out.write(r) };
        Ok(())
    })
}
