//! The wire format: a fixed 48-byte little-endian header ([`WireHeader`]), optional lz4
//! compression kept only when smaller, and AES-256-GCM with the header as associated data.
//! Pure functions, no I/O; documented in `docs/wire.md`.
#![forbid(unsafe_code)]

mod compress;
mod crypto;
mod frame;
mod wire;

pub use compress::{compress_if_smaller, decompress, COMPRESS_MIN};
pub use crypto::{FabricKey, Opener, Sealer, KEY_LEN, SEAL_OVERHEAD};
pub use frame::{decode_frame, encode_frame, Frame, FrameOptions, MAX_METADATA};
pub use wire::{flags, FrameKind, WireHeader, HEADER_LEN, WIRE_MAGIC, WIRE_VERSION};
