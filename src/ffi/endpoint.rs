//! Endpoints from C: `hf_endpoint_create` resolves a (source, destination) pair once and
//! gives it a ring of its own; its sends take no lock and look nothing up.

use super::protocol::{hf_bytes, hf_protocol, protocol, send_options};
use super::request::hf_request;
use super::status::{hf_status, HF_ERR_INVALID_ARGUMENT};
use super::{boundary, bytes_arg, lib, mut_arg, str_arg, FfiError, FfiResult};
use crate::fabric::Endpoint;
use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

/// An endpoint: the fast path of `hf_post` and `hf_send_data` for one (source,
/// destination) pair. Use it from one thread at a time (give each sending thread its own);
/// a second thread calling while another is inside gets `HF_ERR_INVALID_ARGUMENT`.
/// Messages of one endpoint arrive in order. Free it with `hf_endpoint_free` before the
/// protocol.
pub struct hf_endpoint {
    endpoint: std::cell::UnsafeCell<Endpoint>,
    busy: AtomicBool,
    /// The endpoint's process, readable without `busy` (the fork rule is checked first).
    origin: crate::sys::process::Origin,
}

// SAFETY: the endpoint is reached only while `busy` is held (`with`), by one thread.
unsafe impl Sync for hf_endpoint {}

impl hf_endpoint {
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Endpoint) -> FfiResult<T>) -> FfiResult<T> {
        // A fork() child's copy: the flag may be the state a parent's thread left.
        super::same_process(self.origin)?;
        if self.busy.swap(true, Ordering::Acquire) {
            return Err(FfiError {
                status: HF_ERR_INVALID_ARGUMENT,
                message: "the endpoint is in use by another thread (give each thread its own)"
                    .into(),
            });
        }
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _release = Release(&self.busy);
        // SAFETY: `busy` was false and is now ours: no other reference to the endpoint
        // exists until `_release` drops.
        f(unsafe { &mut *self.endpoint.get() })
    }
}

/// # Safety
/// `ep` is NULL or a live handle.
pub(super) unsafe fn endpoint<'a>(ep: *const hf_endpoint) -> FfiResult<&'a hf_endpoint> {
    // SAFETY: as the caller promised.
    unsafe { super::ref_arg(ep, "endpoint") }
}

/// Creates an endpoint from hosted node `source` to `destination` (a live node of any
/// process of the host) into `*endpoint`. `HF_ERR_NODE_NOT_FOUND` for an unknown node,
/// `HF_ERR_ZONE_ISOLATION_VIOLATION` when a zone forbids the pair.
///
/// # Safety
/// `protocol` is a live handle; `source` and `destination` NUL-terminated strings;
/// `endpoint` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_endpoint_create(
    protocol: *const hf_protocol,
    source: *const c_char,
    destination: *const c_char,
    endpoint: *mut *mut hf_endpoint,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let source = unsafe { str_arg(source, "source") }?;
        // SAFETY: as the caller promised.
        let destination = unsafe { str_arg(destination, "destination") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(endpoint, "endpoint") }?;
        let ep = lib(p.endpoint(source, destination))?;
        *out = Box::into_raw(Box::new(hf_endpoint {
            origin: ep.origin(),
            endpoint: std::cell::UnsafeCell::new(ep),
            busy: AtomicBool::new(false),
        }));
        Ok(())
    })
}

/// One-way send of `len` bytes at `data` through the endpoint: returns once the message is
/// in the ring (errors as `hf_post`). `options` NULL: the defaults.
///
/// # Safety
/// `endpoint` is a live handle; `data` points to `len` readable bytes (may be NULL when
/// `len` is 0); `options` NULL or initialised.
#[no_mangle]
pub unsafe extern "C" fn hf_endpoint_post(
    endpoint: *const hf_endpoint,
    data: *const u8,
    len: usize,
    options: *const super::protocol::hf_send_options,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let ep = unsafe { self::endpoint(endpoint) }?;
        // SAFETY: as the caller promised.
        let data = unsafe { bytes_arg(data, len, "data") }?;
        if options.is_null() {
            return ep.with(|e| lib(e.post(data)));
        }
        let opts = send_options(options)?;
        ep.with(|e| lib(e.post_with(data, &opts)))
    })
}

/// One-way sends of `count` messages through the endpoint, in order (message `i`: `lens[i]`
/// bytes at `data[i]`), with default options: one check and one doorbell for the batch.
/// Returns once all are in the ring. Every entry is checked before any is sent (a NULL
/// `data[i]` with a length: `HF_ERR_NULL_ARGUMENT`; a length above the largest message, 1 GiB:
/// `HF_ERR_INVALID_ARGUMENT`; nothing sent); an error while sending leaves the messages
/// before it sent.
///
/// # Safety
/// `endpoint` is a live handle; `data` and `lens` point to `count` entries each (may be NULL
/// when `count` is 0); each `data[i]` points to `lens[i]` readable bytes (may be NULL when
/// `lens[i]` is 0).
#[no_mangle]
pub unsafe extern "C" fn hf_endpoint_post_batch(
    endpoint: *const hf_endpoint,
    data: *const *const u8,
    lens: *const usize,
    count: usize,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let ep = unsafe { self::endpoint(endpoint) }?;
        if count == 0 {
            return Ok(());
        }
        if data.is_null() {
            return Err(FfiError::null("data"));
        }
        if lens.is_null() {
            return Err(FfiError::null("lens"));
        }
        if count > isize::MAX as usize / std::mem::size_of::<*const u8>() {
            return Err(invalid(format!("{count} entries is no length of an array")));
        }
        // SAFETY: non-NULL, `count` entries each (the caller's contract).
        let (ptrs, lens) = unsafe {
            (
                std::slice::from_raw_parts(data, count),
                std::slice::from_raw_parts(lens, count),
            )
        };
        if let Some(n) = lens.iter().find(|&&n| n > crate::engine::MAX_MESSAGE) {
            return Err(invalid(format!(
                "a message of {n} bytes exceeds the largest message ({} bytes); nothing sent",
                crate::engine::MAX_MESSAGE
            )));
        }
        let mut batch = Vec::with_capacity(count);
        for (&p, &n) in ptrs.iter().zip(lens) {
            // SAFETY: as the caller promised for each entry.
            batch.push(unsafe { bytes_arg(p, n, "data[i]") }?);
        }
        ep.with(|e| lib(e.post_many(&batch)))
    })
}

fn invalid(message: String) -> FfiError {
    FfiError {
        status: HF_ERR_INVALID_ARGUMENT,
        message,
    }
}

/// `hf_send_data` through the endpoint: waits for the response, stored in `*response`
/// (release it with `hf_bytes_free`).
///
/// # Safety
/// As `hf_endpoint_post`; `response` points to writable memory for an `hf_bytes`.
#[no_mangle]
pub unsafe extern "C" fn hf_endpoint_send_data(
    endpoint: *const hf_endpoint,
    data: *const u8,
    len: usize,
    options: *const super::protocol::hf_send_options,
    response: *mut hf_bytes,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let ep = unsafe { self::endpoint(endpoint) }?;
        // SAFETY: as the caller promised.
        let data = unsafe { bytes_arg(data, len, "data") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(response, "response") }?;
        let opts = send_options(options)?;
        let r = ep.with(|e| lib(e.send_data_nb(data, &opts)))?;
        *out = hf_bytes::from_vec(lib(r.wait())?);
        Ok(())
    })
}

/// `hf_send_data_nb` through the endpoint: returns once the request is in the ring, with a
/// request in `*request` (complete it with `hf_request_test` or `hf_request_wait`, release
/// it with `hf_request_free`).
///
/// # Safety
/// As `hf_endpoint_post`; `request` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_endpoint_send_data_nb(
    endpoint: *const hf_endpoint,
    data: *const u8,
    len: usize,
    options: *const super::protocol::hf_send_options,
    request: *mut *mut hf_request,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let ep = unsafe { self::endpoint(endpoint) }?;
        // SAFETY: as the caller promised.
        let data = unsafe { bytes_arg(data, len, "data") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(request, "request") }?;
        let opts = send_options(options)?;
        let r = ep.with(|e| lib(e.send_data_nb(data, &opts)))?;
        *out = hf_request::new(r);
        Ok(())
    })
}

/// Releases an endpoint (its ring goes away once the receiver drained it). NULL is ignored.
///
/// # Safety
/// `endpoint` is NULL or a handle not freed before, not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn hf_endpoint_free(endpoint: *mut hf_endpoint) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(endpoint) }
}
