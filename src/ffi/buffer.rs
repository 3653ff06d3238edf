//! Buffers in the C ABI: `hf_buffer_manager` (a pool, private or shared with the processes of
//! the fabric) and `hf_buffer` (one zero-copy buffer), and sending a buffer by descriptor.

use super::protocol::{hf_bytes, hf_protocol, hf_send_options};
use super::status::hf_status;
use super::{boundary, bytes_arg, lib, mut_arg, ref_arg, str_arg, FfiResult};
use crate::buffer::{BufferManager, ZeroCopyBuffer};
use std::ffi::c_char;

/// A pool of equal buffers (thread-safe). Free it with `hf_buffer_manager_free`; buffers
/// taken from it stay valid after that.
pub struct hf_buffer_manager {
    pub(crate) inner: BufferManager,
}

/// One buffer, from a pool (returned to it by `hf_buffer_free`) or standalone.
pub struct hf_buffer {
    pub(crate) inner: ZeroCopyBuffer,
}

fn store<T>(out: *mut *mut T, value: T) -> FfiResult<()> {
    // SAFETY: `out` is NULL (reported) or writable, by the caller's contract.
    let out = unsafe { mut_arg(out, "out") }?;
    *out = Box::into_raw(Box::new(value));
    Ok(())
}

/// A pool of `pool_size` buffers of `buffer_size` bytes in this process's memory, in `*out`
/// (`HF_ERR_INVALID_ARGUMENT` for a zero or oversized count or size).
///
/// # Safety
/// `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_buffer_manager_new(
    pool_size: usize,
    buffer_size: usize,
    out: *mut *mut hf_buffer_manager,
) -> hf_status {
    boundary(|| {
        let inner = lib(BufferManager::new(pool_size, buffer_size))?;
        store(out, hf_buffer_manager { inner })
    })
}

/// A pool whose buffers live in a shared segment of this process: they reach any node of the
/// host by descriptor (`hf_send_buffer`, `hf_post_buffer`, `hf_sender_try_send_buffer`)
/// without a copy.
///
/// # Safety
/// `protocol` is a live handle; `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_protocol_create_buffer_manager(
    protocol: *const hf_protocol,
    pool_size: usize,
    buffer_size: usize,
    out: *mut *mut hf_buffer_manager,
) -> hf_status {
    boundary(|| {
        let p = super::protocol::protocol(protocol)?;
        let inner = lib(p.create_buffer_manager(pool_size, buffer_size))?;
        store(out, hf_buffer_manager { inner })
    })
}

/// Releases a pool handle. NULL is ignored.
///
/// # Safety
/// `manager` is NULL or a handle not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_buffer_manager_free(manager: *mut hf_buffer_manager) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(manager) }
}

/// Takes a free buffer into `*out` (`HF_ERR_BUFFER_EXHAUSTED` when all are in use).
/// Lock-free.
///
/// # Safety
/// `manager` is a live handle; `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_buffer_manager_acquire(
    manager: *const hf_buffer_manager,
    out: *mut *mut hf_buffer,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let m = unsafe { ref_arg(manager, "manager") }?;
        let inner = lib(m.inner.acquire())?;
        store(out, hf_buffer { inner })
    })
}

/// Free buffers of the pool now, in `*available`.
///
/// # Safety
/// `manager` is a live handle; `available` points to writable memory.
#[no_mangle]
pub unsafe extern "C" fn hf_buffer_manager_available(
    manager: *const hf_buffer_manager,
    available: *mut usize,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let m = unsafe { ref_arg(manager, "manager") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(available, "available") }?;
        lib(m.inner.check_process())?;
        *out = m.inner.available();
        Ok(())
    })
}

/// A standalone buffer of `size` bytes (the reference's `ZeroCopyBuffer`): with
/// `enable_compression` reads and writes compress by default; `enable_encryption` seals it
/// when sent.
///
/// # Safety
/// `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_zero_copy_buffer_new(
    size: usize,
    enable_compression: bool,
    enable_encryption: bool,
    out: *mut *mut hf_buffer,
) -> hf_status {
    boundary(|| {
        let inner = lib(ZeroCopyBuffer::new(
            size,
            enable_compression,
            enable_encryption,
        ))?;
        store(out, hf_buffer { inner })
    })
}

/// Releases a buffer (a pooled one returns to its pool). NULL is ignored.
///
/// # Safety
/// `buffer` is NULL or a handle not freed or consumed before.
#[no_mangle]
pub unsafe extern "C" fn hf_buffer_free(buffer: *mut hf_buffer) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(buffer) }
}

/// Writes `len` bytes at `offset` (lz4-compressed with a 4-byte length prefix when `compress`
/// or the buffer's default says so); `*written` gets the bytes stored (fewer than `len` when
/// compressed: the next free offset is `offset + *written`; `hf_buffer_read` takes `len`).
/// `HF_ERR_BUFFER_OVERFLOW`, with nothing written, when they do not fit.
///
/// # Safety
/// `buffer` is a live handle; `data` points to `len` readable bytes; `written` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn hf_buffer_write(
    buffer: *mut hf_buffer,
    data: *const u8,
    len: usize,
    offset: usize,
    compress: bool,
    written: *mut usize,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let b = unsafe { mut_arg(buffer, "buffer") }?;
        // SAFETY: as the caller promised.
        let d = unsafe { bytes_arg(data, len, "data") }?;
        lib(b.inner.check_process())?;
        let n = lib(b.inner.write_data(d, offset, compress))?;
        // SAFETY: as the caller promised.
        if let Some(w) = unsafe { written.as_mut() } {
            *w = n;
        }
        Ok(())
    })
}

/// Reads `size` bytes of data at `offset` into `*out` (release with `hf_bytes_free`).
/// `size` is always the length of the data as the caller wrote it: for data written
/// compressed (read with `decompress` or the buffer's default), the original, uncompressed
/// length passed to `hf_buffer_write`, not the `*written` it returned; a smaller `size`
/// gives the first bytes. `HF_ERR_BUFFER_UNDERFLOW` when fewer bytes were written,
/// `HF_ERR_MALFORMED_FRAME` when the bytes at `offset` are not compressed data.
///
/// # Safety
/// `buffer` is a live handle; `out` points to writable memory for an `hf_bytes`.
#[no_mangle]
pub unsafe extern "C" fn hf_buffer_read(
    buffer: *const hf_buffer,
    size: usize,
    offset: usize,
    decompress: bool,
    out: *mut hf_bytes,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let b = unsafe { ref_arg(buffer, "buffer") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(out, "out") }?;
        lib(b.inner.check_process())?;
        *out = hf_bytes::from_vec(lib(b.inner.read_data(size, offset, decompress))?);
        Ok(())
    })
}

/// The buffer's memory for filling in place: `*data` (valid until the buffer is freed or
/// consumed) and `*capacity`; mark the bytes written with `hf_buffer_set_len`.
///
/// # Safety
/// `buffer` is a live handle; `data` and `capacity` point to writable memory.
#[no_mangle]
pub unsafe extern "C" fn hf_buffer_data(
    buffer: *mut hf_buffer,
    data: *mut *mut u8,
    capacity: *mut usize,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let b = unsafe { mut_arg(buffer, "buffer") }?;
        // SAFETY: as the caller promised.
        let (d, c) = unsafe { (mut_arg(data, "data")?, mut_arg(capacity, "capacity")?) };
        lib(b.inner.check_process())?;
        let s = b.inner.as_mut_slice();
        *d = s.as_mut_ptr();
        *c = s.len();
        Ok(())
    })
}

/// Marks the first `len` bytes valid (`HF_ERR_BUFFER_OVERFLOW` beyond the capacity).
///
/// # Safety
/// `buffer` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn hf_buffer_set_len(buffer: *mut hf_buffer, len: usize) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let b = unsafe { mut_arg(buffer, "buffer") }?;
        lib(b.inner.check_process())?;
        lib(b.inner.set_len(len))
    })
}

/// Bytes of valid data, in `*len`.
///
/// # Safety
/// `buffer` is a live handle; `len` points to writable memory.
#[no_mangle]
pub unsafe extern "C" fn hf_buffer_len(buffer: *const hf_buffer, len: *mut usize) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let b = unsafe { ref_arg(buffer, "buffer") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(len, "len") }?;
        lib(b.inner.check_process())?;
        *out = b.inner.len();
        Ok(())
    })
}

/// Takes the buffer handle (the send consumes it, whatever its outcome).
fn take_buffer(buffer: *mut hf_buffer) -> FfiResult<ZeroCopyBuffer> {
    if buffer.is_null() {
        return Err(super::FfiError::null("buffer"));
    }
    // SAFETY: a live handle (the caller's contract), consumed here exactly once.
    Ok(unsafe { Box::from_raw(buffer) }.inner)
}

/// `hf_send_data` of a buffer's valid bytes: by descriptor (zero copy) when it comes from
/// `hf_protocol_create_buffer_manager` and neither compression nor encryption is asked,
/// else as bytes. The call consumes `buffer` whatever its outcome.
///
/// # Safety
/// As `hf_send_data`; `buffer` is a live handle, not used after the call.
#[no_mangle]
pub unsafe extern "C" fn hf_send_buffer(
    protocol: *const hf_protocol,
    source: *const c_char,
    destination: *const c_char,
    buffer: *mut hf_buffer,
    options: *const hf_send_options,
    response: *mut hf_bytes,
) -> hf_status {
    boundary(|| {
        let b = take_buffer(buffer)?;
        let p = super::protocol::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let (s, d) = unsafe {
            (
                str_arg(source, "source")?,
                str_arg(destination, "destination")?,
            )
        };
        let opts = super::protocol::send_options(options)?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(response, "response") }?;
        *out = hf_bytes::from_vec(lib(p.send_buffer(s, d, b, &opts))?);
        Ok(())
    })
}

/// `hf_post` of a buffer (zero copy under the conditions of `hf_send_buffer`). The call
/// consumes `buffer` whatever its outcome.
///
/// # Safety
/// As `hf_post`; `buffer` is a live handle, not used after the call.
#[no_mangle]
pub unsafe extern "C" fn hf_post_buffer(
    protocol: *const hf_protocol,
    source: *const c_char,
    destination: *const c_char,
    buffer: *mut hf_buffer,
    options: *const hf_send_options,
) -> hf_status {
    boundary(|| {
        let b = take_buffer(buffer)?;
        let p = super::protocol::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let (s, d) = unsafe {
            (
                str_arg(source, "source")?,
                str_arg(destination, "destination")?,
            )
        };
        let opts = super::protocol::send_options(options)?;
        lib(p.post_buffer(s, d, b, &opts))
    })
}
