//! The wire format: a fixed 48-byte little-endian header ([`WireHeader`]), optional lz4
//! compression kept only when smaller, and AES-256-GCM with the header, the envelope and the
//! channel as associated data and a replay window per stream.
//! Pure functions, no I/O; documented in `docs/wire.md`.
#![forbid(unsafe_code)]

mod crypto;
mod frame;
pub mod handshake;
mod key;
mod replay;
mod wire;

pub use crate::compress::{compress_if_smaller, decompress, decompress_prefixed, COMPRESS_MIN};
pub use crypto::{
    id_tag, key_schedules_built, Envelope, Opener, Sealer, SealingKey, MAX_CHANNEL, SEAL_OVERHEAD,
};
pub use frame::{decode_frame, encode_frame, Frame, FrameOptions, MAX_METADATA};
pub use key::{FabricKey, KEY_LEN};
pub use replay::WINDOW as REPLAY_WINDOW;
pub use wire::{flags, FrameKind, WireHeader, HEADER_LEN, WIRE_MAGIC, WIRE_VERSION};
