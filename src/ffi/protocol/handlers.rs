//! Request handlers: a C callback per hosted node, which answers through `hf_response_set`.

use super::lifecycle::{hf_protocol, protocol};
use super::messages::{hf_message_view, view};
use crate::error::Error;
use crate::ffi::status::hf_status;
use crate::ffi::{boundary, bytes_arg, lib, mut_arg, str_arg};
use std::ffi::{c_char, c_void};

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
            let v = view(m);
            let mut response = hf_response { bytes: Vec::new() };
            // SAFETY: the handler and its user data are the caller's, valid per contract;
            // the view and response outlive the call.
            let status = unsafe { f(user.0, &v, &mut response) };
            if status == crate::ffi::status::HF_OK {
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
