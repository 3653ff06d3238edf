//! What a peer or another process controls in the fabric directory: buffer descriptors and
//! segment keys read from frames and direct rings, and the ring, segment and direct-channel
//! file names read back from the directory. Whatever decodes must encode back to itself.
#![no_main]

use hyperfabric::transport::channel::{
    parse_ring_name, parse_segment_name, ring_path, segment_path, Descriptor, SegmentKey,
};
use hyperfabric::transport::direct::{direct_path, parse_direct_name};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};

fuzz_target!(|data: &[u8]| {
    check_binary(data);
    if let Ok(name) = std::str::from_utf8(data) {
        check_names(name);
    }
});

/// Descriptors and keys are read from the start of a longer body: they decode exactly when
/// there are enough bytes, and encode back to the bytes they came from.
fn check_binary(data: &[u8]) {
    let key = SegmentKey::decode(data);
    assert_eq!(key.is_some(), data.len() >= SegmentKey::LEN);
    if let Some(k) = key {
        assert_eq!(k.encode()[..], data[..SegmentKey::LEN]);
        assert_eq!(SegmentKey::from_tag(k.to_tag()), k);
    }
    let d = Descriptor::decode(data);
    assert_eq!(d.is_some(), data.len() >= Descriptor::LEN);
    if let Some(d) = d {
        assert_eq!(d.encode()[..], data[..Descriptor::LEN]);
        assert_eq!(Some(d.key), key);
    }
}

/// A parsed name names a file whose name parses to the same thing. (Names are not checked
/// for being canonical: `ch-+1-02-l` parses like `ch-1-2-l`, as `u32::from_str` reads it.)
fn check_names(name: &str) {
    let file = |p: PathBuf| {
        p.file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .expect("a file name")
    };
    let dir = Path::new("/fabric");
    if let Some((src, dst, lane)) = parse_ring_name(name) {
        let again = file(ring_path(dir, src, dst, lane));
        assert_eq!(parse_ring_name(&again), Some((src, dst, lane)), "{again}");
    }
    if let Some(k) = parse_segment_name(name) {
        let again = file(segment_path(dir, k));
        assert_eq!(parse_segment_name(&again), Some(k), "{again}");
    }
    if let Some((src, dst, pid, n)) = parse_direct_name(name) {
        let again = file(direct_path(dir, src, dst, pid, n));
        assert_eq!(
            parse_direct_name(&again),
            Some((src, dst, pid, n)),
            "{again}"
        );
    }
    // The three families never claim the same file.
    let claims = [
        parse_ring_name(name).is_some(),
        parse_segment_name(name).is_some(),
        parse_direct_name(name).is_some(),
    ];
    assert!(claims.iter().filter(|&&c| c).count() <= 1, "{name:?}");
}
