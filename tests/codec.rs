//! The wire format: frames round-trip through every combination of compression and
//! encryption, any changed byte of a sealed frame is rejected, a sealed frame opens only in
//! the envelope it was sealed in and only once, and the decoder never panics.

use hyperfabric::codec::{
    decode_frame, encode_frame, flags, Envelope, FabricKey, FrameKind, FrameOptions, Opener,
    Sealer, SealingKey, WireHeader, HEADER_LEN, SEAL_OVERHEAD,
};
use hyperfabric::{DataType, ErrorKind, PacketPriority};
use proptest::prelude::*;

fn header(kind: u8, prio: u32, dt: u32, src: u32, dst: u32, req: u64) -> WireHeader {
    let kinds = [
        FrameKind::Data,
        FrameKind::Response,
        FrameKind::Ack,
        FrameKind::Ping,
        FrameKind::Pong,
        FrameKind::Heartbeat,
        FrameKind::Control,
        FrameKind::Error,
    ];
    let mut h = WireHeader::new(kinds[kind as usize % kinds.len()], src, dst);
    h.priority = PacketPriority::from_u32(prio % 5).unwrap();
    h.data_type = DataType::from_u32(dt % 15).unwrap();
    h.request_id = req;
    h.flags = flags::ONE_WAY;
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn frames_round_trip(
        kind in 0u8..8, prio in 0u32..5, dt in 0u32..15, src: u32, dst: u32, req: u64,
        metadata in proptest::collection::vec(any::<u8>(), 0..300),
        payload in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2000),
            (0usize..5000).prop_map(|n| b"tensor-".iter().copied().cycle().take(n).collect()),
        ],
        compress: bool, encrypt: bool,
    ) {
        let key = SealingKey::new(&FabricKey::from_bytes([42; 32]), "test").unwrap();
        let mut sealer = Sealer::new(&key, src, 3, 77);
        let mut opener = Opener::new(&key);
        let h = header(kind, prio, dt, src, dst, req);
        let (src_id, dst_id) = (format!("node-{src}"), format!("node-{dst}"));
        let env = Envelope {
            origin: src,
            origin_id: &src_id,
            destination: dst,
            destination_id: &dst_id,
            destination_generation: 5,
            kind: h.kind as u8,
            request_id: req,
        };
        let mut out = Vec::new();
        encode_frame(h, &metadata, &payload, FrameOptions { compress, seal: encrypt.then_some((&mut sealer, env)) }, &mut out).unwrap();
        let f = decode_frame(&out, Some((&mut opener, &env)), 1 << 20).unwrap();
        prop_assert_eq!(&f.metadata, &metadata);
        prop_assert_eq!(&f.payload, &payload);
        prop_assert_eq!(f.header.kind, h.kind);
        prop_assert_eq!((f.header.src, f.header.dst, f.header.request_id), (src, dst, req));
        prop_assert_eq!(f.header.flags & flags::ONE_WAY, flags::ONE_WAY);
        prop_assert_eq!(f.header.flags & flags::ENCRYPTED != 0, encrypt);
        if f.header.flags & flags::COMPRESSED != 0 {
            prop_assert!(compress);
            let seal = if encrypt { SEAL_OVERHEAD } else { 0 };
            prop_assert!(out.len() < HEADER_LEN + metadata.len() + payload.len() + seal);
        }
        if encrypt {
            // Any changed byte, header or body, is rejected.
            let i = (req as usize) % out.len();
            let mut t = out.clone();
            t[i] ^= 0x40;
            let e = decode_frame(&t, Some((&mut Opener::new(&key), &env)), 1 << 20).unwrap_err();
            prop_assert!(matches!(e.kind(), ErrorKind::AuthenticationFailed | ErrorKind::MalformedFrame), "{:?}", e);
            // Opened once only, and only in its own envelope.
            let again = decode_frame(&out, Some((&mut opener, &env)), 1 << 20).unwrap_err();
            prop_assert_eq!(again.kind(), ErrorKind::AuthenticationFailed);
            let other = format!("node-{}", dst ^ 1);
            let moved = Envelope { destination: dst ^ 1, destination_id: &other, ..env };
            let e = decode_frame(&out, Some((&mut Opener::new(&key), &moved)), 1 << 20).unwrap_err();
            prop_assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
            // Without the key, an encrypted frame is refused.
            prop_assert_eq!(decode_frame(&out, None, 1 << 20).unwrap_err().kind(), ErrorKind::AuthenticationFailed);
        }
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), fix_magic: bool) {
        let mut b = bytes;
        if fix_magic && b.len() >= 3 {
            b[0] = b'H';
            b[1] = b'F';
            b[2] = 1;
        }
        let key = SealingKey::new(&FabricKey::from_bytes([1; 32]), "test").unwrap();
        let _ = decode_frame(&b, Some((&mut Opener::new(&key), &Envelope::default())), 1 << 16);
    }
}

#[test]
fn oversize_metadata_and_bombs_are_refused() {
    let h = WireHeader::new(FrameKind::Data, 1, 2);
    let mut out = Vec::new();
    let e = encode_frame(h, &[0; 4097], b"", FrameOptions::default(), &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // A compressed body that expands beyond the receiver's limit.
    let big = vec![0u8; 1 << 20];
    encode_frame(
        h,
        b"",
        &big,
        FrameOptions {
            compress: true,
            seal: None,
        },
        &mut out,
    )
    .unwrap();
    assert!(out.len() < 10_000);
    assert_eq!(
        decode_frame(&out, None, 1 << 16).unwrap_err().kind(),
        ErrorKind::MalformedFrame
    );
    assert_eq!(decode_frame(&out, None, 1 << 20).unwrap().payload, big);
    // Truncated frames.
    assert_eq!(
        decode_frame(&out[..out.len() - 1], None, 1 << 20)
            .unwrap_err()
            .kind(),
        ErrorKind::MalformedFrame
    );
}
