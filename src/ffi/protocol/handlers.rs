//! Request handlers: a C callback per hosted node, which answers through `hf_response_set`
//! or `hf_response_buffer`.

use super::lifecycle::{hf_protocol, protocol};
use super::messages::{hf_message_view, view};
use crate::engine::Reply;
use crate::error::Error;
use crate::ffi::status::hf_status;
use crate::ffi::{boundary, bytes_arg, lib, mut_arg, str_arg};
use std::ffi::{c_char, c_void};

/// The response a handler gives (`hf_response_set`, `hf_response_buffer`): the engine's
/// answer buffer, reused from one request to the next, during one handler call.
pub struct hf_response {
    reply: *mut Reply,
}

impl hf_response {
    /// The answer buffer.
    fn reply(&mut self) -> &mut Reply {
        // SAFETY: made by `hf_on_receive`'s wrapper from the `&mut Reply` of the handler
        // call it lives in; the C handler gets it only during that call.
        unsafe { &mut *self.reply }
    }
}

/// A request handler (`hf_on_receive`): gets `user_data` and the message (valid during the
/// call), may set the response with `hf_response_set` (a copy) or write it in place after
/// `hf_response_buffer`, and returns `HF_OK` or an error
/// status, which the requester receives as its error. It runs on the thread that drives the
/// engine: the engine thread with background services, otherwise whichever thread is inside
/// a call that drives it (see `hf_progress`). It must not call `hf_` functions on the same
/// protocol but posts through an endpoint made before to a node of this host one hop away
/// (`hf_endpoint_post`, up to 16 KiB); sends by node names (`hf_post`, `hf_send_data`) from
/// a handler, and sends through an endpoint whose node is on another host or hops away,
/// fail with `HF_ERR_INVALID_ARGUMENT`.
/// While it runs the engine delivers nothing else (other handlers, and the answers to this
/// process's requests, wait for it).
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
        let reply = r.reply();
        reply.clear();
        reply.write(d);
        Ok(())
    })
}

/// Makes the response of a handler call `len` bytes long (zeroed) and stores in `*out`
/// where to write them: the handler fills the answer in place, with no copy and, once the
/// engine's buffer is large enough, no allocation. The pointer is valid until the handler
/// returns or calls `hf_response_set` / `hf_response_buffer` again. `len` may be 0 (then
/// `*out` is a valid pointer to nothing). `HF_ERR_NULL_ARGUMENT` for a NULL argument,
/// `HF_ERR_INVALID_ARGUMENT` for `len` above the largest message.
///
/// # Safety
/// `response` is the pointer the handler received; `out` points to a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_response_buffer(
    response: *mut hf_response,
    len: usize,
    out: *mut *mut u8,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let r = unsafe { mut_arg(response, "response") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(out, "out") }?;
        if len > crate::engine::MAX_MESSAGE {
            return Err(Error::InvalidArgument(format!(
                "response of {len} bytes exceeds the largest message ({} bytes)",
                crate::engine::MAX_MESSAGE
            ))
            .into());
        }
        *out = r.reply().buffer(len).as_mut_ptr();
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
        lib(p.on_request(id, move |m, reply| {
            let user = &user;
            let v = view(m);
            let mut response = hf_response { reply };
            // SAFETY: the handler and its user data are the caller's, valid per contract;
            // the view and the response outlive the call.
            let status = unsafe { f(user.0, &v, &mut response) };
            if status == crate::ffi::status::HF_OK {
                Ok(())
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
