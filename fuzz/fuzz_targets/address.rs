//! Address blobs from other processes (`insert_peer` / `hf_insert_peer`): whatever decodes
//! encodes back to the start of the blob, and every refusal is an invalid argument.
#![no_main]

use hyperfabric::fabric::PeerAddress;
use hyperfabric::ErrorKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match PeerAddress::decode(data) {
        Ok(a) => {
            let b = a.encode().expect("decoded fields fit their length bytes");
            // Trailing bytes are ignored (C callers pass fixed-size slots).
            assert!(data.starts_with(&b), "re-encodes to a prefix of the blob");
            assert_eq!(PeerAddress::decode(&b).ok(), Some(a));
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}"),
    }
});
