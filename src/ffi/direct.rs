//! Direct channels in the C ABI: the lock-free fast path. An `hf_sender` pushes into a ring of
//! its own; the one `hf_receiver` of the destination node polls every direct ring to it. Each
//! handle belongs to one thread at a time.

use super::buffer::hf_buffer;
use super::protocol::hf_protocol;
use super::status::hf_status;
use super::{boundary, bytes_arg, lib, mut_arg, str_arg, FfiError};
use crate::fabric::DirectReceiver;
use crate::transport::direct::{Received, Sender};
use std::ffi::{c_char, c_void};
use std::time::Duration;

/// The sending end of a direct channel (`hf_open_sender`). One thread at a time.
pub struct hf_sender {
    inner: Sender,
}

/// The receiver of every direct channel to one node (`hf_open_receiver`). One thread at a
/// time.
pub struct hf_receiver {
    inner: DirectReceiver,
}

/// Gets each message `hf_receiver_poll` takes: `user_data`, the source node's index, and the
/// bytes, valid during the call only (read in place in the ring, or in the sender's buffer).
pub type hf_receive_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, source: u32, data: *const u8, len: usize)>;

/// Largest message `hf_sender_try_send` carries inline (larger ones: send a buffer).
#[no_mangle]
pub extern "C" fn hf_direct_max_inline() -> usize {
    crate::transport::direct::max_inline()
}

/// Opens a direct channel from hosted node `source` to `destination` (a live node of any
/// process of the host) into `*out`: `HF_ERR_NODE_NOT_FOUND`, or
/// `HF_ERR_ZONE_ISOLATION_VIOLATION` when a zone forbids the pair.
///
/// # Safety
/// `protocol` is a live handle; the ids are NUL-terminated strings; `out` points to writable
/// memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_open_sender(
    protocol: *const hf_protocol,
    source: *const c_char,
    destination: *const c_char,
    out: *mut *mut hf_sender,
) -> hf_status {
    boundary(|| {
        let p = super::protocol::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let (s, d) = unsafe {
            (
                str_arg(source, "source")?,
                str_arg(destination, "destination")?,
            )
        };
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(out, "out") }?;
        let inner = lib(p.open_sender(s, d))?;
        *out = Box::into_raw(Box::new(hf_sender { inner }));
        Ok(())
    })
}

/// Closes a sender (the receiver still reads what it holds). NULL is ignored.
///
/// # Safety
/// `sender` is NULL or a handle not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_sender_free(sender: *mut hf_sender) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(sender) }
}

/// Pushes `len` bytes (at most `hf_direct_max_inline()`); `*sent` is false when the ring is
/// full now (try again). No lock, no allocation, no system call.
///
/// # Safety
/// `sender` is a live handle used by this thread only; `data` points to `len` readable
/// bytes; `sent` points to writable memory.
#[no_mangle]
pub unsafe extern "C" fn hf_sender_try_send(
    sender: *mut hf_sender,
    data: *const u8,
    len: usize,
    sent: *mut bool,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let s = unsafe { mut_arg(sender, "sender") }?;
        // SAFETY: as the caller promised.
        let d = unsafe { bytes_arg(data, len, "data") }?;
        // SAFETY: as the caller promised.
        let sent = unsafe { mut_arg(sent, "sent") }?;
        super::same_process(s.inner.origin())?;
        *sent = lib(s.inner.try_send(d))?;
        Ok(())
    })
}

/// Pushes `len` bytes, spinning while the ring is full: `HF_ERR_TIMEOUT` after `timeout_ms`,
/// `HF_ERR_NODE_NOT_FOUND` once the destination left the fabric or its process died (checked
/// every 10 ms while waiting, with or without background services), `HF_ERR_MALFORMED_FRAME`
/// when the receiver found the channel corrupt.
///
/// # Safety
/// As `hf_sender_try_send`, without `sent`.
#[no_mangle]
pub unsafe extern "C" fn hf_sender_send(
    sender: *mut hf_sender,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let s = unsafe { mut_arg(sender, "sender") }?;
        // SAFETY: as the caller promised.
        let d = unsafe { bytes_arg(data, len, "data") }?;
        super::same_process(s.inner.origin())?;
        lib(s.inner.send(d, Duration::from_millis(timeout_ms)))?;
        Ok(())
    })
}

/// Passes a buffer of a pool from `hf_protocol_create_buffer_manager` by descriptor (zero
/// copy): on `*sent`, `*buffer` is consumed and set to NULL (the receiver returns it to its
/// pool); when the ring is full, `*sent` is false and the buffer stays yours.
/// `HF_ERR_INVALID_ARGUMENT` (buffer kept) for a buffer of another pool.
///
/// # Safety
/// `sender` is a live handle; `buffer` points to a live buffer handle; `sent` is writable.
#[no_mangle]
pub unsafe extern "C" fn hf_sender_try_send_buffer(
    sender: *mut hf_sender,
    buffer: *mut *mut hf_buffer,
    sent: *mut bool,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let s = unsafe { mut_arg(sender, "sender") }?;
        // SAFETY: as the caller promised.
        let slot = unsafe { mut_arg(buffer, "buffer") }?;
        // SAFETY: as the caller promised.
        let sent = unsafe { mut_arg(sent, "sent") }?;
        if slot.is_null() {
            return Err(FfiError::null("*buffer"));
        }
        super::same_process(s.inner.origin())?;
        // SAFETY: a live handle; taken back below unless it was consumed.
        let boxed = unsafe { Box::from_raw(*slot) };
        let mut b = Some(boxed.inner);
        let result = s.inner.try_send_buffer(&mut b);
        match b {
            // Not sent (full ring or error): the handle stays the caller's.
            Some(inner) => *slot = Box::into_raw(Box::new(hf_buffer { inner })),
            None => *slot = std::ptr::null_mut(),
        }
        *sent = lib(result)?;
        Ok(())
    })
}

/// Opens the receiver of hosted node `node_id` into `*out` (`HF_ERR_INVALID_ARGUMENT` while
/// another is open for the node).
///
/// # Safety
/// `protocol` is a live handle; `node_id` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn hf_open_receiver(
    protocol: *const hf_protocol,
    node_id: *const c_char,
    out: *mut *mut hf_receiver,
) -> hf_status {
    boundary(|| {
        let p = super::protocol::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(node_id, "node_id") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(out, "out") }?;
        let inner = lib(p.open_receiver(id))?;
        *out = Box::into_raw(Box::new(hf_receiver { inner }));
        Ok(())
    })
}

/// Closes a receiver (another may then be opened for the node). NULL is ignored.
///
/// # Safety
/// `receiver` is NULL or a handle not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_receiver_free(receiver: *mut hf_receiver) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(receiver) }
}

/// Takes at most one message and gives it to `callback` in place; `*got` (if not NULL) says
/// whether one was taken. Never blocks.
///
/// # Safety
/// `receiver` is a live handle used by this thread only; `callback` is a valid function;
/// `got` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hf_receiver_poll(
    receiver: *mut hf_receiver,
    callback: hf_receive_fn,
    user_data: *mut c_void,
    got: *mut bool,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let r = unsafe { mut_arg(receiver, "receiver") }?;
        let f = callback.ok_or_else(|| FfiError::null("callback"))?;
        super::same_process(r.inner.origin())?;
        let taken = r
            .inner
            .try_recv_with(|src, m| {
                let bytes = m.bytes();
                // SAFETY: the callback is the caller's; the bytes outlive the call.
                unsafe { f(user_data, src, bytes.as_ptr(), bytes.len()) };
            })
            .is_some();
        // SAFETY: as the caller promised.
        if let Some(g) = unsafe { got.as_mut() } {
            *g = taken;
        }
        Ok(())
    })
}

/// Takes at most one message and copies it into `buf` (`capacity` bytes): `*got` says
/// whether one was taken, `*len` its size and `*source` its source node's index.
/// `HF_ERR_BUFFER_OVERFLOW` when it does not fit (the message is then dropped; `*len` says
/// how large it was).
///
/// # Safety
/// `receiver` is a live handle used by this thread only; `buf` points to `capacity`
/// writable bytes; `len`, `source` and `got` point to writable memory.
#[no_mangle]
pub unsafe extern "C" fn hf_receiver_try_recv(
    receiver: *mut hf_receiver,
    buf: *mut u8,
    capacity: usize,
    len: *mut usize,
    source: *mut u32,
    got: *mut bool,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let r = unsafe { mut_arg(receiver, "receiver") }?;
        // SAFETY: as the caller promised.
        let (len, source, got) = unsafe {
            (
                mut_arg(len, "len")?,
                mut_arg(source, "source")?,
                mut_arg(got, "got")?,
            )
        };
        if buf.is_null() && capacity > 0 {
            return Err(FfiError::null("buf"));
        }
        super::same_process(r.inner.origin())?;
        let taken = r.inner.try_recv_with(|src, m: Received<'_>| {
            let bytes = m.bytes();
            let fits = bytes.len() <= capacity;
            if fits && !bytes.is_empty() {
                // SAFETY: `buf` has `capacity` writable bytes and the message fits.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
            }
            (src, bytes.len(), fits)
        });
        *got = taken.is_some();
        let Some((src, n, fits)) = taken else {
            return Ok(());
        };
        *len = n;
        *source = src;
        if !fits {
            return Err(FfiError::from(crate::Error::BufferOverflow(format!(
                "a message of {n} bytes does not fit {capacity} bytes"
            ))));
        }
        Ok(())
    })
}

/// The id of node `index` (a source from `hf_receiver_poll` or `hf_receiver_try_recv`) in
/// `*node_id`: a static string, never freed. `HF_ERR_NODE_NOT_FOUND` for an unknown index.
///
/// # Safety
/// `receiver` is a live handle; `node_id` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_receiver_node_name(
    receiver: *mut hf_receiver,
    index: u32,
    node_id: *mut *const c_char,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let r = unsafe { mut_arg(receiver, "receiver") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(node_id, "node_id") }?;
        super::same_process(r.inner.origin())?;
        let name = r.inner.node_name(index).ok_or_else(|| {
            FfiError::from(crate::Error::NodeNotFound(format!(
                "no node has index {index}"
            )))
        })?;
        *out = name_cstr(name.as_str());
        Ok(())
    })
}

/// Interned node names as C strings (each distinct id once for the life of the process).
fn name_cstr(name: &'static str) -> *const c_char {
    static NAMES: std::sync::Mutex<Vec<(&'static str, &'static std::ffi::CStr)>> =
        std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = names.iter().find(|(n, _)| *n == name) {
        return c.as_ptr();
    }
    let c: &'static std::ffi::CStr = Box::leak(super::c_string(name).into_boxed_c_str());
    names.push((name, c));
    c.as_ptr()
}
