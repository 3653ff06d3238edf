//! Sends: `hf_send_data` (waits for the response), `hf_send_data_nb` (a request) and `hf_post`.

use super::bytes::hf_bytes;
use super::lifecycle::{hf_protocol, protocol};
use super::options::{hf_send_options, send_options};
use crate::fabric::{HyperFabricProtocol, SendOptions};
use crate::ffi::request::hf_request;
use crate::ffi::status::hf_status;
use crate::ffi::{boundary, bytes_arg, lib, mut_arg, str_arg, FfiResult};
use std::ffi::c_char;

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

/// One-way send: returns once the message is in the destination's ring (errors as
/// `hf_send_data`, before sending). Each calling thread keeps an endpoint per (source,
/// destination) pair it sends to (at most 32; `hf_protocol_options.endpoints_by_name`; see
/// `docs/dataplane.md`), so a post by name costs about what `hf_endpoint_post` costs; sends
/// from one thread to one pair stay in order.
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
