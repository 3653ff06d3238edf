//! A PMIx client (the `pmix` feature): what a process started by `srun`, `prterun` or Open
//! MPI's `mpirun` uses to publish a value under its rank, wait for every process of the job
//! to have done so, and read theirs. Safe wrappers over the bindings generated from
//! `pmix.h` at build time.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code
)]

mod raw {
    #![allow(
        non_camel_case_types,
        non_snake_case,
        non_upper_case_globals,
        dead_code
    )]
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/pmix.rs"));
}

use crate::error::{Error, Result};
use std::ffi::{c_void, CStr, CString};

/// `PMIX_RANK_WILDCARD` (`UINT32_MAX-1`, an expression the bindings do not carry).
const RANK_WILDCARD: u32 = u32::MAX - 1;

fn check(what: &str, status: raw::pmix_status_t) -> Result<()> {
    if status == raw::PMIX_SUCCESS as raw::pmix_status_t {
        return Ok(());
    }
    // SAFETY: PMIx_Error_string returns a static string for any status.
    let why = unsafe { CStr::from_ptr(raw::PMIx_Error_string(status)) }
        .to_string_lossy()
        .into_owned();
    Err(Error::Config(format!("PMIx {what}: {why} ({status})")))
}

/// This process as a client of the PMIx server that launched it; finalized when dropped.
pub struct Client {
    me: raw::pmix_proc_t,
}

impl Client {
    /// Connects to the launcher's PMIx server (`ConfigError` when the process was not
    /// started by a PMIx launcher).
    pub fn init() -> Result<Client> {
        // SAFETY: a zeroed pmix_proc_t is a valid out-parameter; no info array.
        let mut me: raw::pmix_proc_t = unsafe { std::mem::zeroed() };
        // SAFETY: `me` is writable; NULL info with 0 entries.
        check(
            "init (was this process started by a PMIx launcher such as mpirun or srun?)",
            unsafe { raw::PMIx_Init(&mut me, std::ptr::null_mut(), 0) },
        )?;
        Ok(Client { me })
    }

    /// This process's rank in its job.
    pub fn rank(&self) -> u32 {
        self.me.rank
    }

    /// How many processes the job has.
    pub fn job_size(&self) -> Result<u32> {
        let mut wildcard = self.me;
        wildcard.rank = RANK_WILDCARD;
        let v = self.get(&wildcard, "pmix.job.size")?;
        // SAFETY: `v` is a value PMIx returned; its type says which union member is set.
        let size = unsafe {
            let size = ((*v).type_ == raw::PMIX_UINT32 as u16).then(|| (*v).data.uint32);
            release(v);
            size
        };
        size.ok_or_else(|| Error::Config("PMIx: the job size is not a uint32".into()))
    }

    /// Publishes `bytes` under `key` for every process of the job (after [`Client::commit`]).
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let key =
            CString::new(key).map_err(|_| Error::InvalidArgument("PMIx key with NUL".into()))?;
        let bo = raw::pmix_byte_object_t {
            bytes: bytes.as_ptr() as *mut std::ffi::c_char,
            size: bytes.len(),
        };
        // SAFETY: a zeroed value is an empty one; Value_load copies the byte object's bytes
        // into memory PMIx owns, which Value_destruct frees after the put copied them again.
        unsafe {
            let mut v: raw::pmix_value_t = std::mem::zeroed();
            check(
                "value",
                raw::PMIx_Value_load(
                    &mut v,
                    &bo as *const _ as *const c_void,
                    raw::PMIX_BYTE_OBJECT as u16,
                ),
            )?;
            let r = raw::PMIx_Put(raw::PMIX_GLOBAL as u8, key.as_ptr(), &mut v);
            raw::PMIx_Value_destruct(&mut v);
            check("put", r)
        }
    }

    /// Makes what was put visible to the server.
    pub fn commit(&self) -> Result<()> {
        // SAFETY: no arguments.
        check("commit", unsafe { raw::PMIx_Commit() })
    }

    /// Waits until every process of the job has reached its fence (and committed).
    pub fn fence(&self) -> Result<()> {
        let mut all = self.me;
        all.rank = RANK_WILDCARD;
        // SAFETY: one proc (this job, every rank); no info.
        check("fence", unsafe {
            raw::PMIx_Fence(&all, 1, std::ptr::null(), 0)
        })
    }

    /// The bytes rank `rank` of this job put under `key`.
    pub fn get_bytes(&self, rank: u32, key: &str) -> Result<Vec<u8>> {
        let mut who = self.me;
        who.rank = rank;
        let v = self.get(&who, key)?;
        // SAFETY: as in `job_size`; a byte object's `bytes` holds `size` bytes.
        let bytes = unsafe {
            let b = ((*v).type_ == raw::PMIX_BYTE_OBJECT as u16).then(|| {
                let bo = (*v).data.bo;
                if bo.bytes.is_null() {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(bo.bytes as *const u8, bo.size).to_vec()
                }
            });
            release(v);
            b
        };
        bytes.ok_or_else(|| Error::Config(format!("PMIx: {key} of rank {rank} is not bytes")))
    }

    fn get(&self, who: &raw::pmix_proc_t, key: &str) -> Result<*mut raw::pmix_value_t> {
        let key =
            CString::new(key).map_err(|_| Error::InvalidArgument("PMIx key with NUL".into()))?;
        let mut v: *mut raw::pmix_value_t = std::ptr::null_mut();
        // SAFETY: `who` and `key` live through the call; `v` receives an allocated value.
        check(&format!("get {key:?}"), unsafe {
            raw::PMIx_Get(who, key.as_ptr(), std::ptr::null(), 0, &mut v)
        })?;
        if v.is_null() {
            return Err(Error::Config(format!("PMIx: get {key:?} returned nothing")));
        }
        Ok(v)
    }
}

/// Frees a value PMIx_Get allocated (what `PMIX_VALUE_RELEASE` does).
///
/// # Safety
/// `v` came from PMIx_Get and is not used after.
unsafe fn release(v: *mut raw::pmix_value_t) {
    // SAFETY: by the caller's contract.
    unsafe {
        raw::PMIx_Value_destruct(v);
        libc::free(v.cast());
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: initialized in `init`; no info.
        unsafe {
            raw::PMIx_Finalize(std::ptr::null(), 0);
        }
    }
}
