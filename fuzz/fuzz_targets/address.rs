//! Address blobs from other processes (`insert_peer` / `hf_insert_peer`): whatever decodes
//! encodes (in the current version) to a blob that decodes to the same address, no longer
//! than the one read, and every refusal is an invalid argument.
#![no_main]

use hyperfabric::fabric::PeerAddress;
use hyperfabric::ErrorKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match PeerAddress::decode(data) {
        Ok(a) => {
            let b = a.encode().expect("decoded fields fit their length bytes");
            assert_eq!(PeerAddress::decode(&b).ok(), Some(a.clone()), "re-encodes");
            // A current blob whose address is written canonically re-encodes to its start
            // (trailing bytes are ignored: C callers pass fixed-size slots).
            let canonical = a.tcp.map(|t| t.to_string()).unwrap_or_default();
            let current = data.get(4) == Some(&2);
            if current && data.windows(canonical.len().max(1)).any(|w| w == canonical.as_bytes()) {
                assert!(data.starts_with(&b) || a.tcp.is_none(), "a prefix of the blob");
            }
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}"),
    }
});
