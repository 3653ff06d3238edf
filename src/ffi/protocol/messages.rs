//! Receiving: `hf_recv` (an owned `hf_message`, read through `hf_message_get_view`) and
//! `hf_recv_into` (into the caller's buffer).

use super::bytes::hf_bytes;
use super::lifecycle::{hf_protocol, protocol};
use crate::fabric::MessageRef;
use crate::fabric::ReceivedMessage;
use crate::ffi::status::hf_status;
use crate::ffi::{boundary, lib, mut_arg, ref_arg, str_arg, FfiError};
use std::ffi::c_char;
use std::time::Duration;

/// A message taken by `hf_recv`: read it with `hf_message_get_view`, release it with
/// `hf_message_free` (a buffer sent by descriptor then returns to its sender's pool).
pub struct hf_message {
    message: ReceivedMessage,
    /// The process that received it (its bytes may be a buffer of another process's pool,
    /// lent to this one).
    origin: crate::sys::process::Origin,
}

/// A borrowed view of a message: every pointer stays valid while the message (or, in a
/// handler, the call) lives.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hf_message_view {
    /// Sending node id.
    pub source: *const c_char,
    /// Receiving node id.
    pub destination: *const c_char,
    /// Payload.
    pub data: *const u8,
    /// Payload bytes.
    pub len: usize,
    /// Metadata (a JSON object), or NULL.
    pub metadata: *const u8,
    /// Metadata bytes.
    pub metadata_len: usize,
    /// An `hf_data_type`.
    pub data_type: u32,
    /// An `hf_packet_priority`.
    pub priority: u32,
    /// Message id.
    pub request_id: u64,
    /// Whether the sender waits for no response (`hf_post`).
    pub one_way: bool,
}

/// Takes the oldest message queued for hosted node `node_id` (one without handler), waiting
/// up to `timeout_ms` (0: just look), into `*message` (release with `hf_message_free`).
/// `HF_ERR_TIMEOUT` when nothing came.
///
/// Progress: the call reads the node's endpoint rings itself, so messages sent through
/// endpoints arrive without anyone else driving this process (a request among them gets
/// its delivery receipt when taken here). Without background services it also drives the
/// engine while it waits (every few looks, and once with `timeout_ms` 0), which delivers
/// what came through the engine's rings; handlers of this process's other nodes may run
/// in the calling thread then.
///
/// # Safety
/// `protocol` is a live handle; `node_id` a NUL-terminated string; `message` points to
/// writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_recv(
    protocol: *const hf_protocol,
    node_id: *const c_char,
    timeout_ms: u64,
    message: *mut *mut hf_message,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(node_id, "node_id") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(message, "message") }?;
        let m = lib(p.recv(id, Duration::from_millis(timeout_ms)))?;
        *out = Box::into_raw(Box::new(hf_message {
            message: m,
            origin: crate::sys::process::Origin::current(),
        }));
        Ok(())
    })
}

/// What `hf_recv_into` received (its data is in the caller's buffer).
#[repr(C)]
#[derive(Debug)]
pub struct hf_recv_info {
    /// Bytes of data written to the buffer (when the call failed with
    /// `HF_ERR_BUFFER_OVERFLOW`: the size of the message, which stays queued).
    pub len: usize,
    /// Sending node id, a NUL-terminated string valid for the life of the process.
    pub source: *const c_char,
    /// `HF_DATA_*`.
    pub data_type: u32,
    /// `HF_PRIORITY_*`.
    pub priority: u32,
    /// Message id.
    pub request_id: u64,
    /// Whether the sender waits for no response.
    pub one_way: bool,
    /// Metadata sent with it (JSON object bytes; empty when none, else release with
    /// `hf_bytes_free`).
    pub metadata: hf_bytes,
}

/// Takes the next message of hosted node `node_id` (one without handler) into the caller's
/// buffer, as `MPI_Recv` does: its data is copied into `buf` (`cap` bytes), the rest
/// described in `*info`. Waits up to `timeout_ms` (0: just look). No allocation for a message
/// without metadata. `HF_ERR_TIMEOUT` when nothing came; `HF_ERR_BUFFER_OVERFLOW` when the
/// next message is larger than `cap`: `info->len` is then its size and it stays the node's
/// next message (call again with a larger buffer). A send from registered memory
/// (`hf_endpoint_post_mem`) is copied straight into `buf`; one whose copy then delivers
/// nothing (its sender gave it up during the copy, or freed part of its memory) may have
/// written `buf`: only the first `info->len` bytes of a successful call are the message.
/// So may a large message from another host that the kernel receives straight into `buf`
/// while the call waits, when the call ends before it is whole (it is then delivered by a
/// later call).
///
/// # Safety
/// `protocol` is a live handle; `node_id` a NUL-terminated string; `buf` points to `cap`
/// writable bytes (may be NULL when `cap` is 0); `info` points to writable memory for an
/// `hf_recv_info`.
#[no_mangle]
pub unsafe extern "C" fn hf_recv_into(
    protocol: *const hf_protocol,
    node_id: *const c_char,
    timeout_ms: u64,
    buf: *mut u8,
    cap: usize,
    info: *mut hf_recv_info,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(node_id, "node_id") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(info, "info") }?;
        let buf: &mut [u8] = if cap == 0 {
            &mut []
        } else if buf.is_null() {
            return Err(FfiError::null("buf"));
        } else {
            // SAFETY: non-NULL and `cap` writable bytes (the caller's contract).
            unsafe { std::slice::from_raw_parts_mut(buf, cap) }
        };
        let r = match lib(p.recv_into_or_size(id, Duration::from_millis(timeout_ms), buf))? {
            Ok(r) => r,
            Err(size) => {
                out.len = size;
                return Err(FfiError::from(crate::fabric::too_large(id, size, cap)));
            }
        };
        *out = hf_recv_info {
            len: r.len,
            // Interned ids are stored with a NUL after them (engine::NodeName::intern).
            source: r.source.as_str().as_ptr().cast(),
            data_type: r.data_type as u32,
            priority: r.priority as u32,
            request_id: r.request_id,
            one_way: r.one_way,
            metadata: if r.metadata.is_empty() {
                hf_bytes {
                    data: std::ptr::null_mut(),
                    len: 0,
                    capacity: 0,
                }
            } else {
                hf_bytes::from_vec(r.metadata)
            },
        };
        Ok(())
    })
}

/// A view of a message lent in place (its pointers live as long as the message).
pub(crate) fn view_of(m: &MessageRef<'_>) -> hf_message_view {
    hf_message_view {
        // Interned node ids are stored with a NUL after them (`engine::NodeName::intern`):
        // C strings valid for the life of the process.
        source: m.source.as_str().as_ptr().cast(),
        destination: m.destination.as_str().as_ptr().cast(),
        data: m.data.as_ptr(),
        len: m.data.len(),
        metadata: if m.metadata.is_empty() {
            std::ptr::null()
        } else {
            m.metadata.as_ptr()
        },
        metadata_len: m.metadata.len(),
        data_type: m.data_type as u32,
        priority: m.priority as u32,
        request_id: m.request_id,
        one_way: m.one_way,
    }
}

/// A view of an owned message.
pub(super) fn view(m: &ReceivedMessage) -> hf_message_view {
    view_of(&MessageRef::of(m))
}

/// Fills `*view` with pointers into `message` (valid until `hf_message_free`).
///
/// # Safety
/// `message` is a live handle; `view` points to writable memory for an `hf_message_view`.
#[no_mangle]
pub unsafe extern "C" fn hf_message_get_view(
    message: *const hf_message,
    out: *mut hf_message_view,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let m = unsafe { ref_arg(message, "message") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(out, "view") }?;
        crate::ffi::same_process(m.origin)?;
        *out = view(&m.message);
        Ok(())
    })
}

/// Releases a message. NULL is ignored.
///
/// # Safety
/// `message` is NULL or a handle from `hf_recv` not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_message_free(message: *mut hf_message) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { crate::ffi::free_box(message) }
}
