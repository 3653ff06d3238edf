//! A protocol made from a configuration file, as `hyperfabric serve` makes one: the fabric's
//! options, name, key file and links (so C programs get multi-hop routes through switch
//! nodes as Rust programs do), and its nodes registered by id.

use super::lifecycle::{hf_protocol, protocol};
use crate::config::FabricConfig;
use crate::fabric::{HyperFabricProtocol, ProtocolConfig};
use crate::ffi::status::hf_status;
use crate::ffi::{boundary, lib, mut_arg, opt_str_arg, ref_arg, str_arg};
use std::ffi::c_char;

/// Creates a protocol from the configuration file at `path` (YAML, `docs/config.md`) and
/// stores it in `*out`: its protocol options, links and `key_file`; its fabric name unless
/// `fabric_name` is not NULL; with `host` not NULL, as that host of its `hosts` section
/// (listening at its address, connecting to the hosts listed before it). A file that does
/// not load is `HF_ERR_CONFIG`, with the file, line and field in `hf_last_error_message`.
/// Register its nodes with `hf_register_configured_node`. Free it with `hf_protocol_free`.
///
/// # Safety
/// `path` is a NUL-terminated string; `fabric_name` and `host` are NULL or NUL-terminated
/// strings; `out` points to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn hf_protocol_from_config(
    path: *const c_char,
    fabric_name: *const c_char,
    host: *const c_char,
    out: *mut *mut hf_protocol,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let (path, fabric, host, out) = unsafe {
            (
                str_arg(path, "path")?,
                opt_str_arg(fabric_name, "fabric_name")?,
                opt_str_arg(host, "host")?,
                mut_arg(out, "out")?,
            )
        };
        let cfg = lib(crate::config::load_fabric_config(path))?;
        let mut config = match host {
            Some(h) => lib(ProtocolConfig::for_host(&cfg, h))?,
            None => lib(ProtocolConfig::from_config(&cfg))?,
        };
        if let Some(f) = fabric {
            config.fabric_name = Some(f.to_string());
        }
        let inner = lib(HyperFabricProtocol::with_config(config))?;
        *out = Box::into_raw(Box::new(hf_protocol {
            inner,
            config: Some(Box::new(cfg)),
        }));
        Ok(())
    })
}

/// Registers node `node_id` of the configuration the protocol was made from, with its
/// signature there. `HF_ERR_NODE_NOT_FOUND` when the configuration has no such node,
/// `HF_ERR_INVALID_ARGUMENT` for a protocol not made by `hf_protocol_from_config`.
///
/// # Safety
/// `protocol` is a live handle; `node_id` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hf_register_configured_node(
    protocol: *const hf_protocol,
    node_id: *const c_char,
) -> hf_status {
    boundary(|| {
        let p = self::protocol(protocol)?;
        // SAFETY: as the caller promised (checked live by `protocol` above).
        let cfg: &FabricConfig = match &unsafe { ref_arg(protocol, "protocol") }?.config {
            Some(c) => c,
            None => {
                return Err(crate::ffi::FfiError {
                    status: crate::ffi::status::HF_ERR_INVALID_ARGUMENT,
                    message: "this protocol was not made from a configuration \
                              (hf_protocol_from_config)"
                        .into(),
                })
            }
        };
        // SAFETY: as the caller promised.
        let id = unsafe { str_arg(node_id, "node_id") }?;
        let node = cfg.nodes.iter().find(|n| n.node_id == id).ok_or_else(|| {
            crate::ffi::FfiError::from(crate::Error::NodeNotFound(format!(
                "node {id:?} is not in the configuration"
            )))
        })?;
        lib(p.register_node(node.clone())).map(drop)
    })
}
