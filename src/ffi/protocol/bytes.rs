//! What the library hands out and C releases: byte buffers (`hf_bytes`) and strings.

use crate::ffi::boundary;
use std::ffi::{c_char, CString};

/// Bytes the library hands out (a response): read `data[0..len]`, then release with
/// `hf_bytes_free`. A zeroed `hf_bytes` (NULL data) is empty.
#[repr(C)]
#[derive(Debug)]
pub struct hf_bytes {
    /// The bytes (NULL when `len` is 0).
    pub data: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// Allocation size, for `hf_bytes_free`.
    pub capacity: usize,
}

impl hf_bytes {
    pub(crate) fn from_vec(v: Vec<u8>) -> hf_bytes {
        if v.capacity() == 0 {
            return hf_bytes {
                data: std::ptr::null_mut(),
                len: 0,
                capacity: 0,
            };
        }
        let mut v = std::mem::ManuallyDrop::new(v);
        hf_bytes {
            data: v.as_mut_ptr(),
            len: v.len(),
            capacity: v.capacity(),
        }
    }
}

/// Releases bytes the library handed out and zeroes `*bytes`. NULL, or an already released
/// (zeroed) `hf_bytes`, is ignored.
///
/// # Safety
/// `bytes` is NULL or an `hf_bytes` filled by this library (or zeroed).
#[no_mangle]
pub unsafe extern "C" fn hf_bytes_free(bytes: *mut hf_bytes) {
    let _ = boundary(|| {
        // SAFETY: as the caller promised.
        if let Some(b) = unsafe { bytes.as_mut() } {
            if !b.data.is_null() {
                // SAFETY: data/len/capacity came from a Vec<u8> (hf_bytes::from_vec).
                drop(unsafe { Vec::from_raw_parts(b.data, b.len, b.capacity) });
            }
            *b = hf_bytes {
                data: std::ptr::null_mut(),
                len: 0,
                capacity: 0,
            };
        }
        Ok(())
    });
}

/// Releases a string the library handed out. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string from this library not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_string_free(s: *mut c_char) {
    let _ = boundary(|| {
        if !s.is_null() {
            // SAFETY: from CString::into_raw, freed once.
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(())
    });
}
