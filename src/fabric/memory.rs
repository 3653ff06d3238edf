//! Registered memory: a range of the caller's own memory that endpoints send from without
//! copying it into a ring or a segment (as `ucp_mem_map` or `fi_mr_reg` register memory).
//!
//! [`Endpoint::post_mem`](super::Endpoint::post_mem) sends bytes of a region: its frame names
//! them, and the receiving process copies them once, with `process_vm_readv`, straight from
//! the sender's memory into the buffer of its `recv_into` (or into the message of its `recv`).
//! No shared segment holds them and the sender copies nothing; the send completes when the
//! receiver has copied the bytes. Receives need no registration: whatever buffer a
//! `recv_into` is given receives the single copy.
//!
//! Everything that touches the region goes through the kernel (`process_vm_readv`), in the
//! receiver and in this process alike, so a range that is unmapped after registration makes
//! a send fail with an error, never a fault.

use super::HyperFabricProtocol;
use crate::error::{Error, Result};
use crate::sys::process::Origin;

/// A registered range of this process's memory (see the module documentation). Dropping it
/// deregisters it: sends from it are refused from then on, and sends in flight keep their
/// guarantee (each completes, fails, or, when given up, is dropped by its receiver).
#[derive(Debug)]
pub struct MemoryRegion {
    base: usize,
    len: usize,
    origin: Origin,
}

impl HyperFabricProtocol {
    /// Registers `len` bytes at `addr` of this process's memory for sends without copies.
    /// The bytes must stay mapped while the region is registered, and unchanged while a send
    /// from them is in flight. `InvalidArgumentError` for a null or wrapping range or one
    /// that is not mapped now.
    pub fn register_memory(&self, addr: *const u8, len: usize) -> Result<MemoryRegion> {
        self.inner.check_process()?;
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
            origin: self.inner.origin,
        })
    }
}

impl MemoryRegion {
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
    pub(crate) fn range(&self, offset: usize, len: usize) -> Result<u64> {
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
}
