//! What a send's body becomes: its metadata as JSON, and, when compression or encryption is
//! asked (or a zone requires it), a codec frame sealed by the sending node's sealer.

use super::{lock, Inner, SendOptions};
use crate::codec::{self, Envelope, FrameKind, FrameOptions, Sealer, WireHeader};
use crate::engine::{Outgoing, Peer};
use crate::error::{Error, Result};

impl Inner {
    /// `opts` with encryption on when a zone requires it (`ZoneIsolationViolationError`
    /// without a fabric key).
    pub(super) fn sealed_options<'o>(
        &self,
        must_seal: bool,
        opts: &'o SendOptions,
    ) -> Result<std::borrow::Cow<'o, SendOptions>> {
        if !must_seal || opts.encryption_enabled {
            return Ok(std::borrow::Cow::Borrowed(opts));
        }
        if self.sealing.is_none() {
            return Err(Error::ZoneIsolationViolation(
                "a quantum_secure zone requires encryption and no fabric key is configured".into(),
            ));
        }
        Ok(std::borrow::Cow::Owned(SendOptions {
            encryption_enabled: true,
            ..opts.clone()
        }))
    }

    /// Encodes metadata and, when compression or encryption is asked, frames metadata and
    /// payload together (sealed for message `id` from `src` to `dst`, whose ids are
    /// `names`); returns (metadata, body, framed).
    pub(super) fn prepare<'d>(
        &self,
        (src, dst, id): (u32, &Peer, u64),
        names: (&str, &str),
        data: &'d [u8],
        opts: &SendOptions,
    ) -> Result<(Vec<u8>, std::borrow::Cow<'d, [u8]>, bool)> {
        let metadata = encode_metadata(opts)?;
        if !(opts.compression_enabled || opts.encryption_enabled) {
            // Plain sends go from the caller's buffer straight into the ring.
            return Ok((metadata, std::borrow::Cow::Borrowed(data), false));
        }
        let mut h = WireHeader::new(FrameKind::Data, src, dst.index);
        h.priority = opts.priority;
        h.data_type = opts.data_type;
        h.request_id = id;
        let mut out = Vec::with_capacity(
            codec::HEADER_LEN + metadata.len() + data.len() + codec::SEAL_OVERHEAD,
        );
        let mut sealers = lock(&self.sealers);
        let seal = if opts.encryption_enabled {
            let key = self.sealing.as_ref().ok_or_else(|| {
                Error::InvalidArgument(
                    "encryption requested but no fabric key is configured".into(),
                )
            })?;
            let sealer = match sealers.entry(src) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let generation =
                        lock(&self.engine).hosted_generation(src).ok_or_else(|| {
                            Error::NodeNotFound(format!("node index {src} is not hosted here"))
                        })?;
                    v.insert(Sealer::new(key, src, generation, crate::sys::random_u64()))
                }
            };
            let envelope = Envelope {
                origin: src,
                origin_id: names.0,
                destination: dst.index,
                destination_id: names.1,
                destination_generation: dst.generation,
                kind: FrameKind::Data as u8,
                request_id: id,
            };
            Some((sealer, envelope))
        } else {
            None
        };
        codec::encode_frame(
            h,
            &metadata,
            data,
            FrameOptions {
                compress: opts.compression_enabled,
                seal,
            },
            &mut out,
        )?;
        Ok((Vec::new(), std::borrow::Cow::Owned(out), true))
    }
}

/// The metadata of a send as JSON bytes (empty without metadata), at most
/// [`codec::MAX_METADATA`] bytes.
/// The outgoing form of data message `request_id` sent with `opts` (its priority and data
/// type), `metadata` and the body framed or not.
pub(super) fn data_frame<'m>(
    opts: &SendOptions,
    request_id: u64,
    one_way: bool,
    metadata: &'m [u8],
    framed: bool,
) -> Outgoing<'m> {
    Outgoing {
        kind: FrameKind::Data,
        request_id,
        priority: opts.priority,
        data_type: opts.data_type,
        one_way,
        metadata,
        framed,
        coalesced: false,
    }
}

pub(super) fn encode_metadata(opts: &SendOptions) -> Result<Vec<u8>> {
    let metadata = match &opts.metadata {
        Some(m) => {
            serde_json::to_vec(m).map_err(|e| Error::InvalidArgument(format!("metadata: {e}")))?
        }
        None => Vec::new(),
    };
    if metadata.len() > codec::MAX_METADATA {
        return Err(Error::InvalidArgument(format!(
            "metadata is {} bytes encoded, at most {} allowed",
            metadata.len(),
            codec::MAX_METADATA
        )));
    }
    Ok(metadata)
}
