//! Draining a stream from C: `hf_recv_batch` lends each message in place to a callback.

use super::protocol::{hf_message_view, hf_protocol, protocol, view_of};
use super::status::hf_status;
use super::{boundary, lib, mut_arg, str_arg};
use std::ffi::{c_char, c_void};
use std::time::Duration;

/// Gets each message of `hf_recv_batch`: `user_data` and a view valid during the call.
#[allow(non_camel_case_types)]
pub type hf_message_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, message: *const hf_message_view)>;

/// Receives up to `max` messages of hosted node `node_id` (one without handler) in one call,
/// each lent in place to `callback` (no copy, no allocation; the view and its bytes are valid
/// during the callback only): waits up to `timeout_ms` for the first (0: just look), then
/// takes what else is there without waiting. `*count` gets how many the callback got.
/// `HF_ERR_TIMEOUT` when nothing came; `HF_ERR_INVALID_ARGUMENT` for `max` 0. The callback
/// must not call `hf_` functions on the same protocol.
///
/// # Safety
/// `protocol` is a live handle; `node_id` a NUL-terminated string; `callback` a function
/// that may be called with `user_data`; `count` points to writable memory for a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn hf_recv_batch(
    protocol: *const hf_protocol,
    node_id: *const c_char,
    timeout_ms: u64,
    max: usize,
    callback: hf_message_fn,
    user_data: *mut c_void,
    count: *mut usize,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(node_id, "node_id") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(count, "count") }?;
        let f = callback.ok_or_else(|| super::FfiError::null("callback"))?;
        let n = lib(
            p.recv_batch(id, Duration::from_millis(timeout_ms), max, |m| {
                let view = view_of(m);
                // SAFETY: the caller's callback, with its user data and a view that lives
                // through the call.
                unsafe { f(user_data, &view) };
            }),
        )?;
        *out = n;
        Ok(())
    })
}
