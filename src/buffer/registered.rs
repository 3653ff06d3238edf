//! Registered memory: a range of the caller's own memory that endpoints send from without
//! copying it into a ring or a segment (as `ucp_mem_map` or `fi_mr_reg` register memory).
//!
//! [`Endpoint::post_mem`](crate::fabric::Endpoint::post_mem) sends bytes of a region: its
//! frame names them, and the receiving process copies them once, with `process_vm_readv`,
//! straight from the sender's memory into the buffer of its `recv_into` (or into the message
//! of its `recv`). No shared segment holds them and the sender copies nothing; the send
//! completes when the receiver has copied the bytes. Receives need no registration: whatever
//! buffer a `recv_into` is given receives the single copy. Where that copy is not possible or
//! not faster, the bytes are posted through shared memory as by `post`.

use crate::error::{Error, Result};
use crate::sys::process::Origin;

/// A registered range of this process's memory (see the module documentation). Dropping it
/// ends the registration; sends in flight keep their guarantee (each completes, fails, or,
/// when given up, is dropped by its receiver).
#[derive(Debug)]
pub struct MemoryRegion {
    /// First byte; with `len`, a range mapped readable for the region's life (the contract
    /// of [`MemoryRegion::new`]).
    base: usize,
    len: usize,
    origin: Origin,
}

impl MemoryRegion {
    /// Registers `len` bytes at `addr`. `InvalidArgumentError` for a null address, a zero
    /// length, or a range that wraps or is not mapped now.
    ///
    /// # Safety
    /// The range stays mapped and readable until the region is dropped (this process may
    /// read it to post a send where the receiver cannot copy it), and unchanged while a send
    /// from it is in flight (else the receiver gets the bytes as they were when it copied).
    pub unsafe fn new(addr: *const u8, len: usize) -> Result<MemoryRegion> {
        let base = addr as usize;
        if base == 0 || len == 0 {
            return Err(Error::InvalidArgument(
                "a registered region has a non-null address and at least one byte".into(),
            ));
        }
        if base.checked_add(len).is_none() || !crate::sys::cma::is_mapped(base, len) {
            return Err(Error::InvalidArgument(format!(
                "{len} bytes at {base:#x} are not mapped memory of this process"
            )));
        }
        Ok(MemoryRegion {
            base,
            len,
            origin: Origin::current(),
        })
    }

    /// The region's first byte.
    pub fn addr(&self) -> *const u8 {
        self.base as *const u8
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never: a region has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The address of `len` bytes at `offset` in the region, checked against its bounds
    /// and the process that registered it.
    pub fn range(&self, offset: usize, len: usize) -> Result<u64> {
        if !self.origin.is_current() {
            return Err(Error::InvalidArgument(
                "a region registered by another process (before fork())".into(),
            ));
        }
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok((self.base + offset) as u64),
            _ => Err(Error::InvalidArgument(format!(
                "{len} bytes at offset {offset} exceed the registered region ({} bytes)",
                self.len
            ))),
        }
    }

    /// The `len` bytes at `offset`, checked as by [`range`](Self::range).
    pub fn bytes(&self, offset: usize, len: usize) -> Result<&[u8]> {
        let addr = self.range(offset, len)?;
        if len == 0 {
            return Ok(&[]);
        }
        // SAFETY: [addr, addr + len) lies inside the region (checked above), which the
        // caller of `new` keeps mapped and readable while it lives, and this borrow does not
        // outlive it; in this process (checked above: not a fork() child's copy).
        Ok(unsafe { std::slice::from_raw_parts(addr as usize as *const u8, len) })
    }
}
