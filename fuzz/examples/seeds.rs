//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/` from the real
//! encoders, so each run starts from valid inputs and mutates them into invalid ones.
//!
//! `cargo run --example seeds` (from `fuzz/`). Files are named by a hash of their content, so
//! running it again rewrites the same files.

use hyperfabric::codec::{
    encode_frame, flags, FabricKey, FrameKind, FrameOptions, Sealer, WireHeader,
};
use hyperfabric::fabric::{PeerAddress, ADDRESS_MAX};
use hyperfabric::ring::{self, Region, RingMemory, SlotHeader, SLOT_SIZE};
use hyperfabric::transport::channel::{Descriptor, SegmentKey};
use hyperfabric::{DataType, PacketPriority};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The key of the `frame` target (its frames must open with it).
const KEY: [u8; 32] = [0x5a; 32];

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    write(&corpus.join("frame"), &frames()?)?;
    write(&corpus.join("descriptor"), &descriptors())?;
    write(&corpus.join("address"), &addresses()?)?;
    let mut configs = Vec::new();
    for name in ["ai-cluster.yaml", "torus-2d.yaml"] {
        configs.push(std::fs::read(root.join("../examples").join(name))?);
    }
    configs.push(std::fs::read(root.join("../tests/data/ok-small.yaml"))?);
    write(&corpus.join("config"), &configs)?;
    write(&corpus.join("ring"), &rings()?)?;
    Ok(())
}

fn write(dir: &PathBuf, inputs: &[Vec<u8>]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for input in inputs {
        std::fs::write(dir.join(format!("seed-{:016x}", fnv1a(input))), input)?;
    }
    println!("{}: {} seeds", dir.display(), inputs.len());
    Ok(())
}

/// A hash that stays the same across toolchains (file names must not change).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Mode byte 0 (raw frames), 1 (encoder fields) and 2 (header and body to seal).
fn frames() -> Result<Vec<Vec<u8>>> {
    let mut h = WireHeader::new(FrameKind::Data, 3, 9);
    h.priority = PacketPriority::High;
    h.data_type = DataType::Tensor;
    h.request_id = 77;
    let text = b"gradient ".repeat(20);
    let mut sealer = Sealer::new(&FabricKey::from_bytes(KEY), 3, 1000);
    let mut out = Vec::new();
    for (metadata, payload, compress, seal) in [
        (&b""[..], &b"hello"[..], false, false),
        (&b"{\"step\":1}"[..], &text[..], true, false),
        (&b"{\"step\":2}"[..], &b"secret"[..], false, true),
        (&b""[..], &text[..], true, true),
    ] {
        let mut frame = vec![0u8];
        let opts = FrameOptions {
            compress,
            seal: seal.then_some(&mut sealer),
        };
        encode_frame(h, metadata, payload, opts, &mut frame)?;
        out.push(frame);
    }
    // A fragment in the clear.
    let mut frag = h;
    frag.flags = flags::FRAGMENT;
    frag.total_len = 100;
    frag.frag_offset = 40;
    frag.body_len = 20;
    let mut frame = vec![0u8];
    frame.extend_from_slice(&frag.encode());
    frame.extend_from_slice(&[7; 20]);
    out.push(frame);
    // Encoder fields: bytes the target reads one field after another.
    out.push([&[1u8][..], &[0; 40], &text].concat());
    out.push([&[1u8][..], &[0xff; 40], b"metadata", &text].concat());
    // A header and a compressed body, sealed by the target.
    let mut c = h;
    c.flags = flags::COMPRESSED;
    c.total_len = text.len() as u32;
    let body = hyperfabric::codec::compress_if_smaller(&text).ok_or("compressible")?;
    c.body_len = body.len() as u32;
    out.push([&[2u8][..], &c.encode(), &body].concat());
    Ok(out)
}

fn descriptors() -> Vec<Vec<u8>> {
    let key = SegmentKey {
        pid: 4242,
        n: 3,
        start: 987_654_321,
    };
    let d = Descriptor {
        key,
        index: 7,
        len: 1 << 20,
    };
    vec![
        key.encode().to_vec(),
        d.encode().to_vec(),
        [&d.encode()[..], b"inline bytes"].concat(),
        b"ch-1-2-l".to_vec(),
        b"ch-4294967295-0-b".to_vec(),
        b"seg-4242-987654321-3".to_vec(),
        b"dc-1-2-31337-0".to_vec(),
    ]
}

fn addresses() -> Result<Vec<Vec<u8>>> {
    let a = PeerAddress {
        host: "0b7e2c1a-6f4d-4d8e-9a57-1c2d3e4f5a6b".into(),
        fabric: "training".into(),
        node: "gpu-01".into(),
    };
    let b = a.encode()?;
    let mut slot = b.clone();
    slot.resize(ADDRESS_MAX, 0);
    Ok(vec![b, slot])
}

/// Rings as an honest producer leaves them: control byte, then (with bit 2) head and tail,
/// then the slot array.
fn rings() -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for (ctl, sizes, popped) in [
        (0u8, &[5usize, 48, 100][..], 0),
        (1 | 4, &[200, 10, 400, 3][..], 2),
        (3 | 4, &[0, 1000, 64, 2000][..], 1),
    ] {
        let capacity = 8usize << (ctl & 3);
        let region = Arc::new(Region::heap(capacity)?);
        let (mut producer, mut consumer) = ring::split(region.clone());
        for (i, &len) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..len).map(|b| (b + i) as u8).collect();
            let h = SlotHeader {
                kind: 1,
                src: i as u32,
                ..SlotHeader::default()
            };
            producer
                .try_push(h, &[&payload])
                .map_err(|e| format!("push: {e:?}"))?;
        }
        for _ in 0..popped {
            consumer.try_pop(|_, _| ());
        }
        consumer.publish();
        let mut input = vec![ctl];
        if ctl & 4 != 0 {
            let head = region.head().load(std::sync::atomic::Ordering::Relaxed);
            let tail = region.tail().load(std::sync::atomic::Ordering::Relaxed);
            input.extend_from_slice(&head.to_le_bytes());
            input.extend_from_slice(&tail.to_le_bytes());
        }
        // SAFETY: both ends are idle; the range is the whole slot array.
        unsafe { region.read(0, 0, capacity * SLOT_SIZE, |b| input.extend_from_slice(b)) };
        out.push(input);
    }
    Ok(out)
}
