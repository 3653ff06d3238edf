//! Registered memory from C: `hf_mem_register` makes a range of the caller's memory a region
//! that `hf_endpoint_post_mem` sends from without copying it (the receiving process copies it
//! once, straight into its `hf_recv_into` buffer).

use super::endpoint::hf_endpoint;
use super::protocol::{hf_protocol, protocol, send_options};
use super::request::hf_request;
use super::status::hf_status;
use super::{boundary, lib, mut_arg, ref_arg};
use crate::fabric::MemoryRegion;

/// A registered range of this process's memory. Free it with `hf_mem_deregister`.
pub struct hf_mem {
    region: MemoryRegion,
}

/// Registers `len` bytes at `addr` of this process's memory for `hf_endpoint_post_mem`, into
/// `*mem`. The bytes must stay mapped and readable while registered (the library may read
/// them itself to post a send the receiver cannot copy), and unchanged while a send from
/// them is in flight. `HF_ERR_INVALID_ARGUMENT` for a NULL address, a zero length, or a range
/// that is not mapped memory of this process.
///
/// # Safety
/// `protocol` is a live handle; `mem` points to writable memory for a pointer; the range
/// stays mapped and readable until `hf_mem_deregister`.
#[no_mangle]
pub unsafe extern "C" fn hf_mem_register(
    protocol: *const hf_protocol,
    addr: *const std::ffi::c_void,
    len: usize,
    mem: *mut *mut hf_mem,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(mem, "mem") }?;
        lib(p.check_process())?;
        // SAFETY: the caller keeps the range mapped while registered (the documented
        // contract of this function).
        let region = lib(unsafe { MemoryRegion::new(addr.cast(), len) })?;
        *out = Box::into_raw(Box::new(hf_mem { region }));
        Ok(())
    })
}

/// Deregisters a region: sends from it are refused from then on; sends in flight keep their
/// guarantee (each request completes, fails, or, once freed or cancelled, its receiver drops
/// the message if it had not copied it yet). NULL is ignored.
///
/// # Safety
/// `mem` is NULL or a handle not deregistered before.
#[no_mangle]
pub unsafe extern "C" fn hf_mem_deregister(mem: *mut hf_mem) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(mem) }
}

/// One-way send of `len` bytes at `offset` of registered region `mem` through the endpoint,
/// without copying them: the destination's process copies them once, from this process's memory
/// straight into its receiver's buffer. `*request` completes (empty response) when they are
/// copied, which is when the destination takes the message (`hf_recv_into`, `hf_recv`, or its
/// handler); until then they must not change. Freeing or cancelling the request earlier takes
/// the send back (its receiver drops it unless it copied it already), as does its deadline
/// (`options->timeout_ms`). Where the destination's process cannot read this one (another user,
/// a ptrace policy, a route through other nodes) or the options ask for metadata, compression,
/// encryption or a constraint, the bytes are sent as by `hf_endpoint_post` and the request is
/// complete at once. `HF_ERR_INVALID_ARGUMENT` for a range beyond the region,
/// `HF_ERR_BUFFER_EXHAUSTED` with 64 such sends of the endpoint in flight.
///
/// # Safety
/// `endpoint` and `mem` are live handles; `options` NULL or initialised; `request` points to
/// writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_endpoint_post_mem(
    endpoint: *const hf_endpoint,
    mem: *const hf_mem,
    offset: usize,
    len: usize,
    options: *const super::protocol::hf_send_options,
    request: *mut *mut hf_request,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let ep = unsafe { super::endpoint::endpoint(endpoint) }?;
        // SAFETY: as the caller promised.
        let mem = unsafe { ref_arg(mem, "mem") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(request, "request") }?;
        let opts = send_options(options)?;
        let r = ep.with(|e| lib(e.post_mem(&mem.region, offset, len, &opts)))?;
        *out = hf_request::new(r);
        Ok(())
    })
}
