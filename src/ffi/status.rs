//! Status codes, their names and categories, the library version, and the thread's last
//! error message.

use crate::error::{ErrorCategory, ErrorKind};
use std::cell::RefCell;
use std::ffi::{c_char, CString};

/// The result of a fallible call: `HF_OK` (0), or a negative code in the block of 100 of its
/// category (`hf_status_category`).
#[allow(non_camel_case_types)]
pub type hf_status = i32;

/// Success.
pub const HF_OK: hf_status = 0;
/// A node with this id already exists (DuplicateNodeError).
pub const HF_ERR_DUPLICATE_NODE: hf_status = -101;
/// The named node does not exist (NodeNotFoundError).
pub const HF_ERR_NODE_NOT_FOUND: hf_status = -102;
/// A node specification is invalid (InvalidNodeError).
pub const HF_ERR_INVALID_NODE: hf_status = -103;
/// No route satisfies the request (NoRouteFoundError).
pub const HF_ERR_NO_ROUTE_FOUND: hf_status = -201;
/// The best route is slower than the latency constraint (LatencyConstraintViolationError).
pub const HF_ERR_LATENCY_CONSTRAINT_VIOLATION: hf_status = -202;
/// The named link does not exist (LinkNotFoundError).
pub const HF_ERR_LINK_NOT_FOUND: hf_status = -203;
/// No route meets the quantum coherence deadline (QuantumCoherenceError).
pub const HF_ERR_QUANTUM_COHERENCE: hf_status = -301;
/// Data exceeds the buffer capacity (BufferOverflowError).
pub const HF_ERR_BUFFER_OVERFLOW: hf_status = -401;
/// Not enough data in the buffer (BufferUnderflowError).
pub const HF_ERR_BUFFER_UNDERFLOW: hf_status = -402;
/// Every buffer of the pool is in use (BufferExhaustedError).
pub const HF_ERR_BUFFER_EXHAUSTED: hf_status = -403;
/// A zone with this id already exists (DuplicateZoneError).
pub const HF_ERR_DUPLICATE_ZONE: hf_status = -501;
/// The named zone does not exist (ZoneNotFoundError).
pub const HF_ERR_ZONE_NOT_FOUND: hf_status = -502;
/// A zone specification is invalid (InvalidZoneError).
pub const HF_ERR_INVALID_ZONE: hf_status = -503;
/// The fabric cannot provide what the zone requires (InsufficientResourcesError).
pub const HF_ERR_INSUFFICIENT_RESOURCES: hf_status = -504;
/// Traffic would cross a zone's isolation boundary (ZoneIsolationViolationError).
pub const HF_ERR_ZONE_ISOLATION_VIOLATION: hf_status = -505;
/// A configuration file is unreadable or invalid (ConfigError).
pub const HF_ERR_CONFIG: hf_status = -601;
/// An operating-system call failed (IOError).
pub const HF_ERR_IO: hf_status = -701;
/// An operation did not complete in time (TimeoutError).
pub const HF_ERR_TIMEOUT: hf_status = -801;
/// An argument is invalid (InvalidArgumentError).
pub const HF_ERR_INVALID_ARGUMENT: hf_status = -901;
/// A pointer argument is NULL.
pub const HF_ERR_NULL_ARGUMENT: hf_status = -902;
/// A string argument is not valid UTF-8.
pub const HF_ERR_INVALID_UTF8: hf_status = -903;
/// An enum argument holds no valid value.
pub const HF_ERR_INVALID_ENUM: hf_status = -904;
/// The library failed internally (a bug: please report the message).
pub const HF_ERR_PANIC: hf_status = -999;
/// A frame failed authentication: wrong key or tampered (AuthenticationError).
pub const HF_ERR_AUTHENTICATION: hf_status = -1001;
/// A frame does not decode (MalformedFrameError).
pub const HF_ERR_MALFORMED_FRAME: hf_status = -1002;

/// Latency budget of quantum control traffic, ns (the reference's constant).
pub const HF_MAX_LATENCY_QUANTUM_NS: u64 = 100_000;
/// Latency budget of AI inference traffic, ns.
pub const HF_MAX_LATENCY_AI_INFERENCE_NS: u64 = 1_000_000;
/// Latency budget of training traffic, ns.
pub const HF_MAX_LATENCY_TRAINING_NS: u64 = 10_000_000;
/// Default zero-copy buffer size, bytes.
pub const HF_DEFAULT_BUFFER_SIZE: usize = 65_536;
/// Buffer size for large transfers, bytes.
pub const HF_LARGE_BUFFER_SIZE: usize = 1_048_576;
/// Buffer size for quantum state transfers, bytes.
pub const HF_QUANTUM_BUFFER_SIZE: usize = 4096;
/// Smallest node bandwidth the fabric supports, Gbit/s.
pub const HF_MIN_BANDWIDTH_GBPS: f64 = 1.0;
/// Largest node bandwidth the fabric supports, Gbit/s.
pub const HF_MAX_BANDWIDTH_GBPS: f64 = 1000.0;
/// Smallest coherence time a QPU must declare, µs.
pub const HF_QUANTUM_COHERENCE_THRESHOLD_US: f64 = 10.0;
/// Largest number of nodes sharing an entanglement-requiring route or zone.
pub const HF_MAX_QUANTUM_ENTANGLED_NODES: usize = 100;
/// Longest node or zone id, bytes.
pub const HF_MAX_NODE_ID_LEN: usize = 63;

/// The codes the C boundary adds to the invalid-argument block, with their names.
const FFI_CODES: [(hf_status, &str); 4] = [
    (HF_ERR_NULL_ARGUMENT, "NullArgumentError"),
    (HF_ERR_INVALID_UTF8, "InvalidUtf8Error"),
    (HF_ERR_INVALID_ENUM, "InvalidEnumError"),
    (HF_ERR_PANIC, "InternalError"),
];

thread_local! {
    /// The message of the thread's last failed call (`None` before the first failure).
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

pub(crate) fn set_last_error(message: String) {
    let c = super::c_string(&message);
    LAST_ERROR.with(|m| *m.borrow_mut() = Some(c));
}

/// The library version: `major << 16 | minor << 8 | patch`.
#[no_mangle]
pub extern "C" fn hf_version() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) << 16
        | part(env!("CARGO_PKG_VERSION_MINOR")) << 8
        | part(env!("CARGO_PKG_VERSION_PATCH"))
}

/// The library version as text (`"0.1.0"`); a static string, never freed.
#[no_mangle]
pub extern "C" fn hf_version_string() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of a status code: `"OK"`, the exception name of the API reference
/// (`"NodeNotFoundError"`, ...), or `"UnknownStatus"`; a static string, never freed.
#[no_mangle]
pub extern "C" fn hf_status_str(status: hf_status) -> *const c_char {
    static NAMES: std::sync::OnceLock<Vec<(hf_status, CString)>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut v = vec![(HF_OK, CString::new("OK").expect("no NUL"))];
        v.extend(
            ErrorKind::ALL
                .iter()
                .map(|k| (k.status_code(), CString::new(k.name()).expect("no NUL"))),
        );
        v.extend(
            FFI_CODES
                .iter()
                .map(|&(c, n)| (c, CString::new(n).expect("no NUL"))),
        );
        v
    });
    names
        .iter()
        .find(|(c, _)| *c == status)
        .map_or(c"UnknownStatus".as_ptr(), |(_, n)| n.as_ptr())
}

/// The category block of a status: `HF_OK` for success, else the first code of its block
/// (`-100` node errors, `-200` routing, `-300` quantum, `-400` buffer, `-500` zone, `-600`
/// config, `-700` I/O, `-800` timeout, `-900` invalid argument, `-1000` security); a code
/// outside every block gives `HF_ERR_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn hf_status_category(status: hf_status) -> hf_status {
    if status == HF_OK {
        return HF_OK;
    }
    if status > 0 {
        return HF_ERR_INVALID_ARGUMENT;
    }
    let block = (-((-(status as i64)) / 100 * 100)) as i32;
    if ErrorCategory::ALL.iter().any(|c| c.status_base() == block) {
        block
    } else {
        HF_ERR_INVALID_ARGUMENT
    }
}

/// The detail of the last failed call on this thread (empty before the first failure;
/// successful calls leave it as it is, like `errno`); valid until the next failing `hf_`
/// call on this thread; never freed by the caller.
#[no_mangle]
pub extern "C" fn hf_last_error_message() -> *const c_char {
    LAST_ERROR.with(|m| m.borrow().as_ref().map_or(c"".as_ptr(), |c| c.as_ptr()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_kind_has_its_constant_and_name() {
        let constants = [
            HF_ERR_DUPLICATE_NODE,
            HF_ERR_NODE_NOT_FOUND,
            HF_ERR_INVALID_NODE,
            HF_ERR_NO_ROUTE_FOUND,
            HF_ERR_LATENCY_CONSTRAINT_VIOLATION,
            HF_ERR_LINK_NOT_FOUND,
            HF_ERR_QUANTUM_COHERENCE,
            HF_ERR_BUFFER_OVERFLOW,
            HF_ERR_BUFFER_UNDERFLOW,
            HF_ERR_BUFFER_EXHAUSTED,
            HF_ERR_DUPLICATE_ZONE,
            HF_ERR_ZONE_NOT_FOUND,
            HF_ERR_INVALID_ZONE,
            HF_ERR_INSUFFICIENT_RESOURCES,
            HF_ERR_ZONE_ISOLATION_VIOLATION,
            HF_ERR_CONFIG,
            HF_ERR_IO,
            HF_ERR_TIMEOUT,
            HF_ERR_INVALID_ARGUMENT,
            HF_ERR_AUTHENTICATION,
            HF_ERR_MALFORMED_FRAME,
        ];
        let kinds: Vec<i32> = ErrorKind::ALL.iter().map(|k| k.status_code()).collect();
        assert_eq!(constants.to_vec(), kinds, "one constant per kind, in order");
        for k in ErrorKind::ALL {
            let name = unsafe { CStr::from_ptr(hf_status_str(k.status_code())) };
            assert_eq!(name.to_str().unwrap(), k.name());
            assert_eq!(
                hf_status_category(k.status_code()),
                k.category().status_base()
            );
        }
        let s = |c| {
            unsafe { CStr::from_ptr(hf_status_str(c)) }
                .to_str()
                .unwrap()
        };
        assert_eq!(s(HF_OK), "OK");
        assert_eq!(s(HF_ERR_NULL_ARGUMENT), "NullArgumentError");
        assert_eq!(s(-42), "UnknownStatus");
        assert_eq!(hf_status_category(HF_ERR_PANIC), -900);
        assert_eq!(hf_status_category(-5000), HF_ERR_INVALID_ARGUMENT);
        assert_eq!(hf_status_category(1), HF_ERR_INVALID_ARGUMENT);
        assert_eq!(hf_version() >> 16, 0);
        use crate::model as m;
        assert_eq!(HF_MAX_LATENCY_QUANTUM_NS, m::MAX_LATENCY_QUANTUM_NS);
        assert_eq!(
            HF_MAX_LATENCY_AI_INFERENCE_NS,
            m::MAX_LATENCY_AI_INFERENCE_NS
        );
        assert_eq!(HF_MAX_LATENCY_TRAINING_NS, m::MAX_LATENCY_TRAINING_NS);
        assert_eq!(HF_DEFAULT_BUFFER_SIZE, m::DEFAULT_BUFFER_SIZE);
        assert_eq!(HF_LARGE_BUFFER_SIZE, m::LARGE_BUFFER_SIZE);
        assert_eq!(HF_QUANTUM_BUFFER_SIZE, m::QUANTUM_BUFFER_SIZE);
        assert_eq!(HF_MIN_BANDWIDTH_GBPS, m::MIN_BANDWIDTH_GBPS);
        assert_eq!(HF_MAX_BANDWIDTH_GBPS, m::MAX_BANDWIDTH_GBPS);
        assert_eq!(
            HF_QUANTUM_COHERENCE_THRESHOLD_US,
            m::QUANTUM_COHERENCE_THRESHOLD_US
        );
        assert_eq!(
            HF_MAX_QUANTUM_ENTANGLED_NODES,
            m::MAX_QUANTUM_ENTANGLED_NODES
        );
        assert_eq!(HF_MAX_NODE_ID_LEN, m::MAX_NODE_ID_LEN);
    }
}
