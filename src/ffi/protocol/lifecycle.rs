//! The `hf_protocol` handle: creation and release, the fabric's removal, the nodes it hosts,
//! address blobs, and who drives its engine (background services, `hf_progress`).

use super::options::{hf_node_signature, hf_protocol_options, signature};
use crate::error::Error;
use crate::fabric::{HyperFabricProtocol, IdleStrategy, ProtocolConfig};
use crate::ffi::status::hf_status;
use crate::ffi::{
    boundary, bytes_arg, c_string, lib, mut_arg, opt_str_arg, ref_arg, str_arg, FfiError, FfiResult,
};
use std::ffi::c_char;

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
    /// The configuration it was made from (`hf_protocol_from_config`).
    pub(crate) config: Option<Box<crate::config::FabricConfig>>,
}

/// The protocol behind a handle, in the process that created it (the fork rule).
pub(crate) fn protocol<'a>(p: *const hf_protocol) -> FfiResult<&'a HyperFabricProtocol> {
    // SAFETY: `p` is NULL or a handle from hf_protocol_new that the caller has not freed.
    let p = &unsafe { ref_arg(p, "protocol") }?.inner;
    lib(p.check_process())?;
    Ok(p)
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
            // SAFETY: non-NULL, initialised by the caller (of its version of the struct).
            let o = unsafe { super::options::read_options(options) }?;
            let o = &o;
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
            config.endpoints_by_name = o.endpoints_by_name;
            config.single_copy_from = match o.single_copy_from {
                -1 => None,
                n if n >= 0 => Some(n as usize),
                n => {
                    return Err(FfiError {
                        status: crate::ffi::status::HF_ERR_INVALID_ARGUMENT,
                        message: format!("single_copy_from is -1 or a size in bytes, not {n}"),
                    })
                }
            };
            // SAFETY: NULL or a NUL-terminated string, by the caller's contract.
            if let Some(listen) = unsafe { opt_str_arg(o.tcp_listen, "tcp_listen") }? {
                let listen = listen.parse().map_err(|_| FfiError {
                    status: crate::ffi::status::HF_ERR_INVALID_ARGUMENT,
                    message: format!(
                        "tcp_listen {listen:?} is not an address and port like 0.0.0.0:7100"
                    ),
                })?;
                config.tcp = Some(crate::fabric::TcpConfig {
                    listen: Some(listen),
                    peers: Vec::new(),
                    insecure: o.tcp_insecure,
                    force: o.tcp_force,
                    sqpoll: o.tcp_sqpoll,
                    zerocopy: crate::transport::tcp::reactor::ZeroCopy {
                        min: match o.tcp_zerocopy_min {
                            0 => Some(crate::transport::tcp::reactor::ZC_DEFAULT_MIN),
                            n if n < 0 => None,
                            n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                        },
                        always: false,
                    },
                    ..Default::default()
                });
            }
            if !o.key.is_null() {
                // SAFETY: a non-NULL key points to 32 readable bytes.
                let k: [u8; 32] = unsafe { *(o.key as *const [u8; 32]) };
                config.key = Some(crate::codec::FabricKey::from_bytes(k));
            }
        }
        let inner = lib(HyperFabricProtocol::with_config(config))?;
        *out = Box::into_raw(Box::new(hf_protocol {
            inner,
            config: None,
        }));
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
    unsafe { crate::ffi::free_box(protocol) }
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

/// Connects to the process listening on `address` (`"10.0.0.2:7100"`) and waits until its
/// nodes are known: from then on they are sent to by name. `HF_ERR_AUTHENTICATION` when
/// either side refuses the other's key, `HF_ERR_DUPLICATE_NODE` when both host a node of
/// the same id, `HF_ERR_IO` when nothing listens there, `HF_ERR_TIMEOUT` when its nodes do
/// not come in time, `HF_ERR_INVALID_ARGUMENT` for a malformed address or a protocol
/// without TCP.
///
/// # Safety
/// `protocol` is a live handle; `address` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hf_connect_host(
    protocol: *const hf_protocol,
    address: *const c_char,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let a = unsafe { str_arg(address, "address") }?;
        let addr = a.parse().map_err(|_| FfiError {
            status: crate::ffi::status::HF_ERR_INVALID_ARGUMENT,
            message: format!("address {a:?} is not an address and port like 10.0.0.2:7100"),
        })?;
        lib(p.connect_host(addr))
    })
}

/// Finds the nodes of every other process of a job started by a PMIx launcher (`srun`,
/// `prterun`, Open MPI's `mpirun`): publishes the address blobs of the nodes this protocol
/// hosts (register them first), waits at a fence of the whole job, and inserts every other
/// rank's nodes, as `hf_insert_peer` does; no MPI call is needed. Their count goes to
/// `*peers`. `HF_ERR_CONFIG` when the library was built without PMIx (cargo feature `pmix`)
/// or the process was not started by a PMIx launcher.
///
/// # Safety
/// `protocol` is a live handle; `peers` is writable.
#[no_mangle]
pub unsafe extern "C" fn hf_bootstrap_pmix(
    protocol: *const hf_protocol,
    peers: *mut usize,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let peers = unsafe { mut_arg(peers, "peers") }?;
        *peers = lib(p.bootstrap_pmix())?.len();
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
