//! [`FabricKey`]: the 32-byte AES-256 key of a fabric, from configuration or a key file.

use crate::error::{Error, Result};
use std::fmt;
use std::path::Path;

/// Key length in bytes.
pub const KEY_LEN: usize = 32;

/// A fabric (or zone) key. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct FabricKey([u8; KEY_LEN]);

impl fmt::Debug for FabricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FabricKey(..)")
    }
}

impl FabricKey {
    /// The key's bytes, for the cipher.
    pub(super) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> FabricKey {
        FabricKey(bytes)
    }

    /// A key from 64 hexadecimal digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<FabricKey> {
        let t = text.trim();
        if t.len() != 2 * KEY_LEN || !t.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::InvalidArgument(format!(
                "a fabric key is {} hexadecimal digits ({} given)",
                2 * KEY_LEN,
                t.len()
            )));
        }
        let mut k = [0u8; KEY_LEN];
        for (i, byte) in k.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).expect("checked hex digits");
        }
        Ok(FabricKey(k))
    }

    /// Eight bytes that tell keys apart without revealing them (the start of SHA-256 over a
    /// label and the key): address blobs carry it, so a process with another key is refused
    /// before it connects.
    pub fn fingerprint(&self) -> [u8; 8] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"hyperfabric key fingerprint");
        h.update(self.0);
        let d = h.finalize();
        let mut f = [0u8; 8];
        f.copy_from_slice(&d[..8]);
        f
    }

    /// A key from a file holding 64 hex digits or exactly 32 raw bytes. The file must not be
    /// readable by group or others.
    pub fn from_file(path: &Path) -> Result<FabricKey> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::io(format!("reading key file {}", path.display()), e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::InvalidArgument(format!(
                "key file {} is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("reading key file {}", path.display()), e))?;
        if let Ok(k) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
            return Ok(FabricKey(k));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::InvalidArgument(format!(
                "key file {}: neither 32 bytes nor hex",
                path.display()
            ))
        })?;
        FabricKey::from_hex(&text)
            .map_err(|e| Error::InvalidArgument(format!("key file {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, format!("{}\n", "0f".repeat(32))).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(FabricKey::from_file(&p)
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            FabricKey::from_file(&p).unwrap(),
            FabricKey::from_bytes([0x0f; 32])
        );
        std::fs::write(&p, [9u8; 32]).unwrap();
        assert_eq!(
            FabricKey::from_file(&p).unwrap(),
            FabricKey::from_bytes([9; 32])
        );
        std::fs::write(&p, b"nope").unwrap();
        assert!(FabricKey::from_file(&p).is_err());
    }
}
