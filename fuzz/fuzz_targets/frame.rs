//! Frames from a hostile peer: the 48-byte wire header and whole frames, with and without the
//! fabric key. The first byte picks how the rest is used:
//! - 0: raw bytes into the decoders; whatever decodes must encode back to the same frame;
//! - 1: fields for `encode_frame` (compressed and sealed or not), which must decode back;
//! - 2: a header and a body that are sealed as they are, so the decoder runs on arbitrary
//!   plaintext behind a valid tag (a fuzzer cannot forge one) and must treat it like the
//!   same frame sent in the clear.
#![no_main]

use hyperfabric::codec::{
    decode_frame, encode_frame, flags, Envelope, FabricKey, Frame, FrameKind, FrameOptions,
    Opener, Sealer, SealingKey, WireHeader, HEADER_LEN, MAX_METADATA, SEAL_OVERHEAD,
};
use std::sync::{Arc, OnceLock};
use hyperfabric::{DataType, ErrorKind, PacketPriority};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Decompression limit of the decoder: above any total length inputs of libFuzzer's sizes
/// make, so only forged lengths hit it.
const MAX_BODY: usize = 1 << 20;
/// The fabric key of every run (fixed, so crashes reproduce).
const KEY: [u8; 32] = [0x5a; 32];
/// The bits `encode_frame` owns: it sets them from its options.
const CODEC_BITS: u16 = flags::COMPRESSED | flags::ENCRYPTED;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => decode_raw(rest),
        1 => {
            let _ = encode_fields(rest);
        }
        _ => seal_raw(rest),
    }
});

/// The expanded key, made once (as a protocol does).
fn key() -> &'static Arc<SealingKey> {
    static KEY_SCHEDULE: OnceLock<Arc<SealingKey>> = OnceLock::new();
    KEY_SCHEDULE.get_or_init(|| SealingKey::new(&FabricKey::from_bytes(KEY), "fuzz").unwrap())
}

/// A fresh opener (its replay window would refuse a counter seen by an earlier input).
fn opener() -> Opener {
    Opener::new(key())
}

/// Node ids the fuzz frames are bound to (any pair works: sealing and opening agree).
const ORIGIN_ID: &str = "fuzz-src";
const DESTINATION_ID: &str = "fuzz-dst";

/// What a ring carrying a frame with header `h` would say about it.
fn envelope(h: &WireHeader) -> Envelope<'static> {
    Envelope {
        origin: h.src,
        origin_id: ORIGIN_ID,
        destination: h.dst,
        destination_id: DESTINATION_ID,
        destination_generation: 0,
        kind: h.kind as u8,
        request_id: h.request_id,
    }
}

/// Decodes with the key, in the envelope the frame's own header names.
fn decode_keyed(bytes: &[u8], max_body: usize) -> hyperfabric::Result<Frame> {
    let env = WireHeader::decode(bytes).map_or_else(|_| Envelope::default(), |h| envelope(&h));
    decode_frame(bytes, Some((&mut opener(), &env)), max_body)
}

/// Mode 0: the header decoder must give back the bytes it read, and a key changes the
/// outcome only for encrypted frames.
fn decode_raw(bytes: &[u8]) {
    if let Ok(h) = WireHeader::decode(bytes) {
        assert_eq!(h.encode()[..], bytes[..HEADER_LEN], "header re-encodes");
    }
    let encrypted = WireHeader::decode(bytes).is_ok_and(|h| h.flags & flags::ENCRYPTED != 0);
    let clear = decode_frame(bytes, None, MAX_BODY);
    let keyed = decode_keyed(bytes, MAX_BODY);
    match (clear, keyed) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the key changed a frame in the clear");
            check_decoded(bytes, &a);
        }
        (Err(e), Ok(f)) => {
            assert!(encrypted, "only a sealed frame needs the key: {e}");
            assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
            check_decoded(bytes, &f);
        }
        (Ok(_), Err(e)) => panic!("the key made a frame undecodable: {e}"),
        (Err(a), Err(b)) => {
            if !encrypted {
                assert_eq!(a.kind(), b.kind(), "{a} / {b}");
            }
        }
    }
}

/// A frame decoded from `bytes` is what its header says, and encodes back to an equal frame
/// (to the very same bytes when it travelled uncompressed and in the clear).
fn check_decoded(bytes: &[u8], f: &Frame) {
    let h = f.header;
    assert_eq!(Ok(h), WireHeader::decode(bytes).map_err(|e| e.kind()));
    if h.flags & flags::FRAGMENT != 0 {
        // encode_frame builds whole messages: it sets the total length to the body it gets.
        return;
    }
    let total = f.metadata.len() + f.payload.len();
    assert_eq!(total, h.total_len as usize, "body length");
    assert_eq!(f.metadata.len(), h.metadata_len as usize, "metadata length");
    if f.metadata.len() > MAX_METADATA {
        // The decoder accepts metadata the encoder refuses to produce.
        let mut out = Vec::new();
        let e = encode_frame(
            h,
            &f.metadata,
            &f.payload,
            FrameOptions::default(),
            &mut out,
        );
        assert_eq!(e.map_err(|e| e.kind()), Err(ErrorKind::InvalidArgument));
        return;
    }
    if h.flags & CODEC_BITS == 0 {
        let mut out = Vec::new();
        encode_frame(
            h,
            &f.metadata,
            &f.payload,
            FrameOptions::default(),
            &mut out,
        )
        .expect("a decoded frame encodes");
        assert_eq!(out, bytes, "a plain frame re-encodes to its bytes");
    }
    for (compress, seal) in [(false, None), (true, None), (true, Some(h.request_id))] {
        round_trip(h, &f.metadata, &f.payload, compress, seal).expect("a decoded frame encodes");
    }
}

/// Encodes, decodes and compares; `Err` when `encode_frame` refuses (and then checks that it
/// had to).
fn round_trip(
    h: WireHeader,
    metadata: &[u8],
    payload: &[u8],
    compress: bool,
    seal: Option<u64>,
) -> Result<(), ErrorKind> {
    let mut sealer = seal.map(|counter| Sealer::new(key(), h.src, 1, counter));
    let opts = FrameOptions {
        compress,
        seal: sealer.as_mut().map(|s| (s, envelope(&h))),
    };
    let mut out = Vec::new();
    if let Err(e) = encode_frame(h, metadata, payload, opts, &mut out) {
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(metadata.len() > MAX_METADATA, "refused: {e}");
        return Err(e.kind());
    }
    let f = decode_keyed(&out, MAX_BODY)
        .unwrap_or_else(|e| panic!("an encoded frame does not decode: {e}"));
    assert_eq!(f.metadata, metadata);
    assert_eq!(f.payload, payload);
    let total = (metadata.len() + payload.len()) as u32;
    let want = WireHeader {
        flags: h.flags & !CODEC_BITS | f.header.flags & CODEC_BITS,
        metadata_len: metadata.len() as u16,
        total_len: total,
        body_len: (out.len() - HEADER_LEN) as u32,
        ..h
    };
    assert_eq!(f.header, want);
    assert_eq!(seal.is_some(), f.header.flags & flags::ENCRYPTED != 0);
    assert!(compress || f.header.flags & flags::COMPRESSED == 0);
    if seal.is_some() {
        let clear = decode_frame(&out, None, MAX_BODY).map_err(|e| e.kind());
        assert_eq!(clear, Err(ErrorKind::AuthenticationFailed));
    }
    if f.header.flags & flags::COMPRESSED != 0 {
        // The receiver's limit holds even for an honest sender.
        let small = decode_keyed(&out, total as usize - 1);
        assert_eq!(small.map_err(|e| e.kind()), Err(ErrorKind::MalformedFrame));
    }
    Ok(())
}

/// Mode 1: a whole message from fields.
fn encode_fields(bytes: &[u8]) -> ArbResult<()> {
    let mut u = Unstructured::new(bytes);
    let kinds: Vec<FrameKind> = (1..=8).filter_map(FrameKind::from_u8).collect();
    let mut h = WireHeader::new(*u.choose(&kinds)?, u.arbitrary()?, u.arbitrary()?);
    h.flags = u.arbitrary::<u16>()? & (flags::LAST | flags::DESCRIPTOR | flags::ONE_WAY);
    h.priority = *u.choose(PacketPriority::ALL)?;
    h.data_type = *u.choose(DataType::ALL)?;
    h.hop_limit = u.arbitrary()?;
    h.hop_count = u.int_in_range(0..=h.hop_limit)?;
    h.request_id = u.arbitrary()?;
    h.frag_offset = u.arbitrary()?;
    h.route_epoch = u.arbitrary()?;
    let compress = u.arbitrary()?;
    let seal: Option<u64> = u.arbitrary()?;
    let meta_len = u.int_in_range(0..=MAX_METADATA + 64)?;
    let metadata = u.bytes(meta_len.min(u.len()))?;
    let payload = u.take_rest();
    let _ = round_trip(h, metadata, payload, compress, seal);
    Ok(())
}

/// Mode 2: `bytes` is a header and a body; the body is sealed as it is under the header
/// (with its encrypted flag set and its body length adjusted).
fn seal_raw(bytes: &[u8]) {
    let Ok(h) = WireHeader::decode(bytes) else {
        return;
    };
    let body = &bytes[HEADER_LEN..];
    let clear_h = WireHeader {
        flags: h.flags & !flags::ENCRYPTED,
        body_len: body.len() as u32,
        ..h
    };
    let mut clear = clear_h.encode().to_vec();
    clear.extend_from_slice(body);
    let sealed_h = WireHeader {
        flags: h.flags | flags::ENCRYPTED,
        body_len: (body.len() + SEAL_OVERHEAD) as u32,
        ..h
    };
    let mut sealed = sealed_h.encode().to_vec();
    let mut sealer = Sealer::new(key(), h.src, 1, h.request_id);
    let header = sealed.clone();
    sealer
        .seal(&header, &envelope(&h), body, &mut sealed)
        .expect("sealing");

    let a = decode_frame(&clear, None, MAX_BODY);
    let b = decode_keyed(&sealed, MAX_BODY);
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!((a.metadata, a.payload), (b.metadata, b.payload));
            assert_eq!(b.header, sealed_h);
        }
        (Ok(_), Err(e)) => panic!("sealing made a frame undecodable: {e}"),
        (Err(e), Ok(_)) => {
            // The header alone cannot bound a sealed fragment (its body length includes the
            // seal), so only fragments in the clear are checked against the total.
            assert!(h.flags & flags::FRAGMENT != 0, "only sealed decodes: {e}");
        }
        (Err(_), Err(e)) => assert_ne!(e.kind(), ErrorKind::AuthenticationFailed, "{e}"),
    }
    assert_eq!(
        decode_frame(&sealed, None, MAX_BODY).map_err(|e| e.kind()),
        Err(ErrorKind::AuthenticationFailed)
    );
    // Any flipped bit, in the header or the body, fails; but the low flag byte is left
    // alone: without its encrypted bit the frame is another one, read in the clear.
    let i = match h.route_epoch as usize % sealed.len() {
        4 => 5,
        i => i,
    };
    sealed[i] ^= 1 << (h.dst % 8);
    assert!(decode_keyed(&sealed, MAX_BODY).is_err());
}
