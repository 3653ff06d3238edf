//! The C ABI: every `hf_*` function of `include/hyperfabric.h` (generated from this module by
//! cbindgen). This file holds the conventions every export follows:
//!
//! - the body runs behind [`boundary`]: a panic never crosses into C, it becomes
//!   `HF_ERR_PANIC` with its message;
//! - fallible calls return an `hf_status` (`int32_t`): `HF_OK` (0) or a negative code whose
//!   block of 100 names the error category; [`status`] has the codes, their names and the
//!   thread's last error message;
//! - pointers are turned into references only through the helpers here, which report a NULL
//!   argument by name (`HF_ERR_NULL_ARGUMENT`) and a string that is not UTF-8
//!   (`HF_ERR_INVALID_UTF8`); enums cross as `uint32_t` and are validated
//!   (`HF_ERR_INVALID_ENUM`);
//! - out-parameters come last and are written only on success;
//! - handles are `Box`es handed out as opaque pointers and taken back by their `_free`
//!   function (a NULL handle is ignored there);
//! - a protocol and the handles made through it belong to the process that created the
//!   protocol: in a `fork()` child each call on them fails first ([`same_process`] and the
//!   Rust methods' own checks), and their `_free` functions release nothing of the parent's.
// C names: `hf_protocol`, `HF_OK`, ... as the header spells them.
#![allow(non_camel_case_types)]

pub mod buffer;
pub mod control;
pub mod direct;
pub mod endpoint;
pub mod memory;
pub mod protocol;
pub mod receive;
pub mod reports;
pub mod request;
pub mod status;

use crate::error::{Error, Result};
use crate::sys::process::Origin;
use status::{hf_status, set_last_error, HF_ERR_PANIC, HF_OK};
use std::ffi::{c_char, CStr};

/// An error of the C boundary itself, with the status code it maps to.
pub(crate) struct FfiError {
    pub(crate) status: hf_status,
    pub(crate) message: String,
}

impl From<Error> for FfiError {
    fn from(e: Error) -> FfiError {
        FfiError {
            status: e.kind().status_code(),
            message: e.to_string(),
        }
    }
}

impl FfiError {
    pub(crate) fn null(name: &str) -> FfiError {
        FfiError {
            status: status::HF_ERR_NULL_ARGUMENT,
            message: format!("argument `{name}` is NULL"),
        }
    }

    pub(crate) fn utf8(name: &str) -> FfiError {
        FfiError {
            status: status::HF_ERR_INVALID_UTF8,
            message: format!("argument `{name}` is not valid UTF-8"),
        }
    }

    pub(crate) fn enumeration(name: &str, value: u32) -> FfiError {
        FfiError {
            status: status::HF_ERR_INVALID_ENUM,
            message: format!("argument `{name}`: {value} is not a valid value"),
        }
    }

    pub(crate) fn size(name: &str, got: usize, want: usize) -> FfiError {
        FfiError {
            status: status::HF_ERR_INVALID_ARGUMENT,
            message: format!(
                "argument `{name}`: struct_size is {got}, this library needs at least {want} \
                 (initialise it with its _init function)"
            ),
        }
    }
}

pub(crate) type FfiResult<T> = std::result::Result<T, FfiError>;

/// Runs an export's body: its error becomes the status (and the thread's last error message),
/// a panic becomes `HF_ERR_PANIC`.
#[inline]
pub(crate) fn boundary(f: impl FnOnce() -> FfiResult<()>) -> hf_status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        // A success leaves the last error message alone: no thread-local access (a call
        // through the dynamic TLS model) on the fast path.
        Ok(Ok(())) => HF_OK,
        Ok(Err(e)) => {
            set_last_error(e.message);
            e.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(format!("internal error (panic): {what}"));
            HF_ERR_PANIC
        }
    }
}

/// Frees a handle handed out as `Box::into_raw`, behind the panic boundary; NULL is ignored.
///
/// # Safety
/// `p` is NULL or came from `Box::into_raw` of a `T` and is not used again.
pub(crate) unsafe fn free_box<T>(p: *mut T) {
    let _ = boundary(|| {
        if !p.is_null() {
            // SAFETY: the caller's contract: a Box's pointer, freed once.
            drop(unsafe { Box::from_raw(p) });
        }
        Ok(())
    });
}

/// `p` as a string argument named `name`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| FfiError::utf8(name))
}

/// `p` as an optional string argument (NULL: none).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: as the caller promised.
        unsafe { str_arg(p, name) }.map(Some)
    }
}

/// `p` as a shared reference named `name`.
///
/// # Safety
/// `p` is NULL or points to a live, properly aligned `T` that outlives `'a`.
pub(crate) unsafe fn ref_arg<'a, T>(p: *const T, name: &str) -> FfiResult<&'a T> {
    // SAFETY: as the caller promised; NULL is reported.
    unsafe { p.as_ref() }.ok_or_else(|| FfiError::null(name))
}

/// `p` as an exclusive reference named `name`.
///
/// # Safety
/// `p` is NULL or points to a live, properly aligned `T` no one else uses during `'a`.
pub(crate) unsafe fn mut_arg<'a, T>(p: *mut T, name: &str) -> FfiResult<&'a mut T> {
    // SAFETY: as the caller promised; NULL is reported.
    unsafe { p.as_mut() }.ok_or_else(|| FfiError::null(name))
}

/// `len` bytes at `p` (NULL is accepted when `len` is 0).
///
/// # Safety
/// `p` points to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn bytes_arg<'a>(p: *const u8, len: usize, name: &str) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(FfiError::null(name));
    }
    if len > isize::MAX as usize {
        // No object is that large: a negative length converted, most likely.
        return Err(FfiError {
            status: status::HF_ERR_INVALID_ARGUMENT,
            message: format!("{name}: {len} bytes is no length of a buffer"),
        });
    }
    // SAFETY: non-NULL, `len` readable bytes by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Checks the `struct_size` a caller's options struct declares against the size this library
/// reads.
pub(crate) fn check_size(name: &str, declared: usize, needed: usize) -> FfiResult<()> {
    if declared < needed {
        return Err(FfiError::size(name, declared, needed));
    }
    Ok(())
}

/// A C string the library owns (NUL inside the text is replaced, so it always converts).
pub(crate) fn c_string(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s.replace('\0', "\u{fffd}")).expect("NUL removed")
}

/// An array of C strings the library owns (a path of node ids): the pointer and its length,
/// released by [`free_c_strings`].
pub(crate) fn c_strings(items: &[String]) -> (*mut *mut c_char, usize) {
    let array: Box<[*mut c_char]> = items.iter().map(|s| c_string(s).into_raw()).collect();
    let len = array.len();
    (Box::into_raw(array).cast(), len)
}

/// Releases an array made by [`c_strings`].
///
/// # Safety
/// `array` and `len` came from one call of [`c_strings`] and are released once.
pub(crate) unsafe fn free_c_strings(array: *mut *mut c_char, len: usize) {
    // SAFETY: the caller's contract: a boxed slice of `len` CString pointers.
    let items = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(array, len)) };
    for &s in items.iter() {
        // SAFETY: each entry came from CString::into_raw.
        drop(unsafe { std::ffi::CString::from_raw(s) });
    }
}

/// The fork rule of handles made through a protocol (requests, endpoints, direct channels,
/// messages): `HF_ERR_INVALID_ARGUMENT` in a `fork()` child of the process that created the
/// protocol, whose state the handle shares.
#[inline]
pub(crate) fn same_process(origin: Origin) -> FfiResult<()> {
    if origin.is_current() {
        Ok(())
    } else {
        Err(crate::fabric::forked(origin.pid()).into())
    }
}

/// Maps a library result into the boundary's.
pub(crate) fn lib<T>(r: Result<T>) -> FfiResult<T> {
    r.map_err(FfiError::from)
}
