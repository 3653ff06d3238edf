//! `hf_ping` and its owned result.

use super::lifecycle::{hf_protocol, protocol};
use crate::ffi::status::hf_status;
use crate::ffi::{boundary, c_string, lib, mut_arg, str_arg};
use std::ffi::{c_char, CString};

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
        let (path, path_len) = crate::ffi::c_strings(&r.path);
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
            crate::ffi::free_c_strings(r.path, r.path_len);
        }
        Ok(())
    });
}
