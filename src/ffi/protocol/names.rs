//! The enums' names, as the configuration files and the API reference spell them
//! (`nvidia_h100`, `quantum_secure`, ...), and the values of names: for C programs that read
//! or print configurations.

use crate::ffi::status::{hf_status, HF_ERR_INVALID_ARGUMENT};
use crate::ffi::{boundary, mut_arg, str_arg, FfiError};
use crate::model::{DataType, HardwareType, IsolationLevel, PacketPriority, ZoneType};
use std::ffi::{c_char, CString};
use std::sync::OnceLock;

/// The names of an enum's values as C strings, made once and kept for the process's life.
fn names(cell: &'static OnceLock<Vec<CString>>, all: &[&'static str]) -> &'static [CString] {
    cell.get_or_init(|| {
        all.iter()
            .map(|n| CString::new(*n).expect("names have no NUL"))
            .collect()
    })
}

/// What the name functions need of an enum of `model`.
trait Named: Sized + Copy + PartialEq + std::str::FromStr<Err = String> + 'static {
    const ALL: &'static [Self];
    fn text(self) -> &'static str;
    fn code(self) -> u32;
    fn of(code: u32) -> Option<Self>;
    fn cell() -> &'static OnceLock<Vec<CString>>;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            const ALL: &'static [Self] = <$t>::ALL;
            fn text(self) -> &'static str {
                self.as_str()
            }
            fn code(self) -> u32 {
                self as u32
            }
            fn of(code: u32) -> Option<Self> {
                <$t>::from_u32(code)
            }
            fn cell() -> &'static OnceLock<Vec<CString>> {
                static CELL: OnceLock<Vec<CString>> = OnceLock::new();
                &CELL
            }
        }
    )*};
}

named!(
    HardwareType,
    DataType,
    PacketPriority,
    ZoneType,
    IsolationLevel
);

fn name_of<E: Named>(value: u32) -> *const c_char {
    let Some(v) = E::of(value) else {
        return std::ptr::null();
    };
    let all: Vec<&'static str> = E::ALL.iter().map(|v| v.text()).collect();
    let i = E::ALL.iter().position(|x| *x == v).expect("listed");
    names(E::cell(), &all)[i].as_ptr()
}

/// # Safety
/// As the `_from_name` functions.
unsafe fn value_of<E: Named>(name: *const c_char, value: *mut u32) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let (name, out) = unsafe { (str_arg(name, "name")?, mut_arg(value, "value")?) };
        let v = name.parse::<E>().map_err(|message| FfiError {
            status: HF_ERR_INVALID_ARGUMENT,
            message,
        })?;
        *out = v.code();
        Ok(())
    })
}

/// The name of hardware type `value` (`"nvidia_h100"`; a static string, not to be freed),
/// or NULL when `value` is none.
#[no_mangle]
pub extern "C" fn hf_hardware_type_name(value: u32) -> *const c_char {
    name_of::<HardwareType>(value)
}

/// The hardware type named `name` into `*value`; `HF_ERR_INVALID_ARGUMENT`, with the
/// accepted names in the message, when it is none (`*value` is then left alone).
///
/// # Safety
/// `name` is a NUL-terminated string; `value` points to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn hf_hardware_type_from_name(
    name: *const c_char,
    value: *mut u32,
) -> hf_status {
    // SAFETY: as the caller promised.
    unsafe { value_of::<HardwareType>(name, value) }
}

/// The name of data type `value` (static), or NULL.
#[no_mangle]
pub extern "C" fn hf_data_type_name(value: u32) -> *const c_char {
    name_of::<DataType>(value)
}

/// The data type named `name` into `*value`, as `hf_hardware_type_from_name`.
///
/// # Safety
/// `name` is a NUL-terminated string; `value` points to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn hf_data_type_from_name(name: *const c_char, value: *mut u32) -> hf_status {
    // SAFETY: as the caller promised.
    unsafe { value_of::<DataType>(name, value) }
}

/// The name of packet priority `value` (static), or NULL.
#[no_mangle]
pub extern "C" fn hf_packet_priority_name(value: u32) -> *const c_char {
    name_of::<PacketPriority>(value)
}

/// The packet priority named `name` into `*value`, as `hf_hardware_type_from_name`.
///
/// # Safety
/// `name` is a NUL-terminated string; `value` points to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn hf_packet_priority_from_name(
    name: *const c_char,
    value: *mut u32,
) -> hf_status {
    // SAFETY: as the caller promised.
    unsafe { value_of::<PacketPriority>(name, value) }
}

/// The name of zone type `value` (static), or NULL.
#[no_mangle]
pub extern "C" fn hf_zone_type_name(value: u32) -> *const c_char {
    name_of::<ZoneType>(value)
}

/// The zone type named `name` into `*value`, as `hf_hardware_type_from_name`.
///
/// # Safety
/// `name` is a NUL-terminated string; `value` points to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn hf_zone_type_from_name(name: *const c_char, value: *mut u32) -> hf_status {
    // SAFETY: as the caller promised.
    unsafe { value_of::<ZoneType>(name, value) }
}

/// The name of isolation level `value` (static), or NULL.
#[no_mangle]
pub extern "C" fn hf_isolation_level_name(value: u32) -> *const c_char {
    name_of::<IsolationLevel>(value)
}

/// The isolation level named `name` into `*value`, as `hf_hardware_type_from_name`.
///
/// # Safety
/// `name` is a NUL-terminated string; `value` points to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn hf_isolation_level_from_name(
    name: *const c_char,
    value: *mut u32,
) -> hf_status {
    // SAFETY: as the caller promised.
    unsafe { value_of::<IsolationLevel>(name, value) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn names_and_values_round_trip_and_strangers_are_refused() {
        for v in HardwareType::ALL {
            // SAFETY: a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(hf_hardware_type_name(*v as u32)) };
            assert_eq!(name.to_str().unwrap(), v.as_str());
            let mut back = u32::MAX;
            // SAFETY: valid pointers.
            assert_eq!(
                unsafe { hf_hardware_type_from_name(name.as_ptr(), &mut back) },
                0
            );
            assert_eq!(back, *v as u32);
        }
        assert!(hf_hardware_type_name(999).is_null());
        let mut back = 7;
        // SAFETY: valid pointers.
        let st = unsafe { hf_isolation_level_from_name(c"extreme".as_ptr(), &mut back) };
        assert_eq!(st, HF_ERR_INVALID_ARGUMENT);
        assert_eq!(back, 7, "left as it was");
        // SAFETY: a static NUL-terminated string.
        let high = unsafe { CStr::from_ptr(hf_packet_priority_name(1)) };
        assert_eq!(
            high.to_str().unwrap(),
            PacketPriority::from_u32(1).unwrap().as_str()
        );
    }
}
