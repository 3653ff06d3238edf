//! Whole frames: header, then the body `metadata ‖ payload`, compressed if asked and smaller,
//! then sealed if asked.

use super::crypto::{Envelope, Opener, Sealer};
use super::wire::{flags, WireHeader, HEADER_LEN};
use crate::compress::{compress_if_smaller, decompress};
use crate::error::{Error, Result};

/// Largest metadata block, bytes.
pub const MAX_METADATA: usize = 4096;

/// How to encode a frame.
#[derive(Debug, Default)]
pub struct FrameOptions<'a> {
    /// Compress the body when that makes it smaller.
    pub compress: bool,
    /// Seal the body with this sealer, bound to the envelope the frame travels in.
    pub seal: Option<(&'a mut Sealer, Envelope<'a>)>,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header as received (flags say how the body travelled).
    pub header: WireHeader,
    /// Metadata bytes.
    pub metadata: Vec<u8>,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Appends a frame to `out`. `header.flags` keeps its fragment/descriptor/one-way bits; the
/// compression and encryption bits, lengths and `metadata_len` are set here.
pub fn encode_frame(
    mut header: WireHeader,
    metadata: &[u8],
    payload: &[u8],
    opts: FrameOptions<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    if metadata.len() > MAX_METADATA {
        return Err(Error::InvalidArgument(format!(
            "metadata is {} bytes, at most {MAX_METADATA} allowed",
            metadata.len()
        )));
    }
    let total = metadata.len() + payload.len();
    if total > u32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "message of {total} bytes is too large"
        )));
    }
    header.flags &= !(flags::COMPRESSED | flags::ENCRYPTED);
    header.metadata_len = metadata.len() as u16;
    header.total_len = total as u32;
    let mut body = Vec::with_capacity(total);
    body.extend_from_slice(metadata);
    body.extend_from_slice(payload);
    if opts.compress {
        if let Some(c) = compress_if_smaller(&body) {
            body = c;
            header.flags |= flags::COMPRESSED;
        }
    }
    match opts.seal {
        None => {
            header.body_len = body.len() as u32;
            out.extend_from_slice(&header.encode());
            out.extend_from_slice(&body);
        }
        Some((sealer, env)) => {
            // The header names the same sender and destination as the envelope: the receiver
            // authenticates both.
            if (header.src, header.dst, header.kind as u8, header.request_id)
                != (env.origin, env.destination, env.kind, env.request_id)
            {
                return Err(Error::InvalidArgument(
                    "frame header and envelope name different endpoints, kind or request".into(),
                ));
            }
            header.flags |= flags::ENCRYPTED;
            header.body_len = (body.len() + super::SEAL_OVERHEAD) as u32;
            let h = header.encode();
            out.extend_from_slice(&h);
            sealer.seal(&h, &env, &body, out)?;
        }
    }
    Ok(())
}

/// Decodes one frame. An encrypted frame needs an opener and the envelope it came in (else
/// `AuthenticationError`): it opens only if the envelope is the one it was sealed in and it
/// was not opened before. A compressed body may expand to at most `max_body` bytes.
pub fn decode_frame(
    bytes: &[u8],
    open: Option<(&mut Opener, &Envelope)>,
    max_body: usize,
) -> Result<Frame> {
    let header = WireHeader::decode(bytes)?;
    let body = &bytes[HEADER_LEN..];
    if body.len() != header.body_len as usize {
        return Err(Error::MalformedFrame(format!(
            "frame body is {} bytes, header says {}",
            body.len(),
            header.body_len
        )));
    }
    let opened;
    let body = if header.flags & flags::ENCRYPTED != 0 {
        let (o, env) = open.ok_or_else(|| {
            Error::AuthenticationFailed("encrypted frame but no fabric key is configured".into())
        })?;
        // Replay windows are per lane: frames of one lane arrive in order.
        let class = u8::from(!header.priority.is_latency_lane());
        opened = o.open(env, class, &bytes[..HEADER_LEN], body)?;
        &opened[..]
    } else {
        body
    };
    let decompressed;
    let body = if header.flags & flags::COMPRESSED != 0 {
        decompressed = decompress(body, max_body.min(header.total_len as usize))?;
        &decompressed[..]
    } else {
        body
    };
    if body.len() != header.total_len as usize && header.flags & flags::FRAGMENT == 0 {
        return Err(Error::MalformedFrame(format!(
            "body decodes to {} bytes, header says {}",
            body.len(),
            header.total_len
        )));
    }
    let m = (header.metadata_len as usize).min(body.len());
    Ok(Frame {
        header,
        metadata: body[..m].to_vec(),
        payload: body[m..].to_vec(),
    })
}
