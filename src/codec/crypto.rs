//! AES-256-GCM sealing of frame bodies with the fabric key.
//!
//! Nonce = sender node index (4 bytes LE) ‖ 64-bit counter (LE). Each [`Sealer`] belongs to
//! one sender and counts up from a start value its owner draws at random, so a sender that
//! restarts with the same index does not reuse nonces. The counter travels in front of the
//! ciphertext; the frame header is the associated data, so a changed header fails too.

use crate::error::{Error, Result};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use std::fmt;
use std::path::Path;

/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// Bytes sealing adds to a body: 8 of counter, 16 of tag.
pub const SEAL_OVERHEAD: usize = 8 + 16;

/// A fabric (or zone) key. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct FabricKey([u8; KEY_LEN]);

impl fmt::Debug for FabricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FabricKey(..)")
    }
}

impl FabricKey {
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

fn nonce(sender: u32, counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&sender.to_le_bytes());
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

/// Seals bodies for one sender.
pub struct Sealer {
    cipher: Aes256Gcm,
    sender: u32,
    counter: u64,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for node index `sender` whose counter starts at `start` (draw it at random).
    pub fn new(key: &FabricKey, sender: u32, start: u64) -> Sealer {
        Sealer {
            cipher: Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&key.0)),
            sender,
            counter: start,
        }
    }

    /// The sender index this sealer stamps into nonces.
    pub fn sender(&self) -> u32 {
        self.sender
    }

    /// Appends `counter ‖ ciphertext(body) ‖ tag` to `out`, authenticating `aad`.
    pub fn seal(&mut self, aad: &[u8], body: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let counter = self.counter;
        self.counter = self.counter.wrapping_add(1);
        out.extend_from_slice(&counter.to_le_bytes());
        let start = out.len();
        out.extend_from_slice(body);
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce(self.sender, counter)),
                aad,
                &mut out[start..],
            )
            .map_err(|_| Error::AuthenticationFailed("sealing failed".into()))?;
        out.extend_from_slice(&tag);
        Ok(())
    }
}

/// Opens sealed bodies from any sender.
pub struct Opener {
    cipher: Aes256Gcm,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Opener(..)")
    }
}

impl Opener {
    /// An opener for `key`.
    pub fn new(key: &FabricKey) -> Opener {
        Opener {
            cipher: Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&key.0)),
        }
    }

    /// Checks and decrypts a sealed body from `sender`; `AuthenticationError` when the key,
    /// the header (`aad`) or any byte differs from what was sealed.
    pub fn open(&self, sender: u32, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(Error::AuthenticationFailed(format!(
                "sealed body of {} bytes is shorter than its counter and tag",
                sealed.len()
            )));
        }
        let counter = u64::from_le_bytes(sealed[..8].try_into().expect("8 bytes"));
        let (ct, tag) = sealed[8..].split_at(sealed.len() - 8 - 16);
        let mut plain = ct.to_vec();
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce(sender, counter)),
                aad,
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| {
                Error::AuthenticationFailed(format!(
                    "frame from node {sender} failed authentication (wrong key or tampered)"
                ))
            })?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let key = FabricKey::from_hex(&"ab".repeat(32)).unwrap();
        let mut s = Sealer::new(&key, 7, 1000);
        let o = Opener::new(&key);
        let mut sealed = Vec::new();
        s.seal(b"header", b"secret payload", &mut sealed).unwrap();
        assert_eq!(sealed.len(), 14 + SEAL_OVERHEAD);
        assert_eq!(o.open(7, b"header", &sealed).unwrap(), b"secret payload");
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(o.open(7, b"header", &t).is_err(), "flip at {i} accepted");
        }
        assert!(
            o.open(8, b"header", &sealed).is_err(),
            "other sender's nonce"
        );
        assert!(
            o.open(7, b"headex", &sealed).is_err(),
            "header is authenticated"
        );
        let other = Opener::new(&FabricKey::from_bytes([1; 32]));
        assert_eq!(
            other.open(7, b"header", &sealed).unwrap_err().kind(),
            crate::ErrorKind::AuthenticationFailed
        );
        // Nonces advance: the same body seals differently.
        let mut again = Vec::new();
        s.seal(b"header", b"secret payload", &mut again).unwrap();
        assert_ne!(again, sealed);
        assert!(FabricKey::from_hex("abc").is_err());
        assert!(
            !format!("{key:?}").contains("abab"),
            "Debug must not print the key"
        );
    }

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
