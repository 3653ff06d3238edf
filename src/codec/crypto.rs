//! AES-256-GCM sealing of frame bodies with the fabric key.
//!
//! Nonce = sender node index (4 bytes LE) ‖ 64-bit counter (LE). Each [`Sealer`] belongs to
//! one registration of one sender and counts up from a start value drawn at random, so a
//! sender that registers again under the same index does not reuse nonces. The sealed body is
//! `generation ‖ counter ‖ ciphertext ‖ tag`. The associated data is the frame header and the
//! envelope the frame travels in ([`Envelope`]: origin, destination, their registrations, kind,
//! request id) and the channel (the fabric name), so a frame moved to another sender,
//! destination, request or fabric fails authentication. The [`Opener`] refuses counters it has
//! seen ([`ReplayGuard`]). The AES key schedule is expanded once per key ([`SealingKey`]) and
//! shared by every sealer and the opener.
//!
//! [`ReplayGuard`]: super::replay::ReplayGuard

use super::key::FabricKey;
use super::replay::{ReplayGuard, Stream};
use super::wire::HEADER_LEN;
use crate::error::{Error, Result};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use std::fmt;
use std::sync::Arc;

/// Bytes sealing adds to a body: 8 of sender generation, 8 of counter, 16 of tag.
pub const SEAL_OVERHEAD: usize = 8 + 8 + 16;
/// Longest channel name a [`SealingKey`] binds (fabric names are at most 63 bytes).
pub const MAX_CHANNEL: usize = 64;
/// Longest node id the associated data binds (node ids are at most 63 bytes).
const MAX_ID: usize = 64;
/// Bytes of the fixed part of the envelope after the header in the associated data.
const BINDING_LEN: usize = 8 + 8 + 1 + 8;
/// Longest associated data: header, envelope, both node ids and the channel, each of
/// those after its length byte.
const MAX_AAD: usize = HEADER_LEN + BINDING_LEN + 3 + 2 * MAX_ID + MAX_CHANNEL;

/// The nonce of `counter` of the node with id `sender`: the id's 32-bit tag, then the
/// counter. The id, not an index, names the sender: indices are per host.
fn nonce(sender: &str, counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&id_tag(sender).to_le_bytes());
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

/// FNV-1a of a node id, folded to 32 bits: a node named the same way on every host.
pub fn id_tag(id: &str) -> u32 {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    (h ^ h >> 32) as u32
}

std::thread_local! {
    static SCHEDULES_BUILT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Key schedules built by this thread so far (each [`SealingKey::new`] builds one). Lets tests
/// and benchmarks check that sealing and opening reuse them instead of rebuilding one per
/// message or per change of sender.
pub fn key_schedules_built() -> u64 {
    SCHEDULES_BUILT.with(|n| n.get())
}

/// The fabric key expanded once (AES round keys and the GHASH key), with the channel its
/// frames are bound to. Shared (`Arc`) by every [`Sealer`] and the [`Opener`] of a protocol,
/// so no send or receive expands the key again.
pub struct SealingKey {
    cipher: Aes256Gcm,
    channel: [u8; MAX_CHANNEL],
    channel_len: u8,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("channel", &self.channel())
            .finish_non_exhaustive()
    }
}

impl SealingKey {
    /// Expands `key` for frames of `channel` (the fabric name: both ends must agree on it).
    /// `InvalidArgumentError` for a channel longer than [`MAX_CHANNEL`] bytes.
    pub fn new(key: &FabricKey, channel: &str) -> Result<Arc<SealingKey>> {
        let c = channel.as_bytes();
        if c.len() > MAX_CHANNEL {
            return Err(Error::InvalidArgument(format!(
                "sealing channel {channel:?} is longer than {MAX_CHANNEL} bytes"
            )));
        }
        let mut name = [0u8; MAX_CHANNEL];
        name[..c.len()].copy_from_slice(c);
        SCHEDULES_BUILT.with(|n| n.set(n.get() + 1));
        Ok(Arc::new(SealingKey {
            cipher: Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(key.bytes())),
            channel: name,
            channel_len: c.len() as u8,
        }))
    }

    /// The channel frames are bound to.
    pub fn channel(&self) -> &str {
        std::str::from_utf8(&self.channel[..self.channel_len as usize]).unwrap_or("")
    }

    /// The associated data of a frame: its header, then the envelope, the sender's
    /// registration generation and the channel. Built on the stack: no allocation.
    fn aad<'b>(
        &self,
        header: &[u8],
        env: &Envelope,
        origin_generation: u64,
        buf: &'b mut [u8; MAX_AAD],
    ) -> Result<&'b [u8]> {
        let header: &[u8; HEADER_LEN] = header.try_into().map_err(|_| {
            Error::MalformedFrame(format!(
                "frame header of {} bytes, {HEADER_LEN} expected",
                header.len()
            ))
        })?;
        buf[..HEADER_LEN].copy_from_slice(header);
        let b = &mut buf[HEADER_LEN..];
        b[0..8].copy_from_slice(&origin_generation.to_le_bytes());
        b[8..16].copy_from_slice(&env.destination_generation.to_le_bytes());
        b[16] = env.kind;
        b[17..25].copy_from_slice(&env.request_id.to_le_bytes());
        let mut at = HEADER_LEN + BINDING_LEN;
        let channel = &self.channel[..self.channel_len as usize];
        for part in [
            env.origin_id.as_bytes(),
            env.destination_id.as_bytes(),
            channel,
        ] {
            if part.len() > MAX_ID {
                return Err(Error::InvalidArgument(format!(
                    "a node id of {} bytes in a sealed frame's envelope",
                    part.len()
                )));
            }
            buf[at] = part.len() as u8;
            buf[at + 1..at + 1 + part.len()].copy_from_slice(part);
            at += 1 + part.len();
        }
        Ok(&buf[..at])
    }
}

/// What the carrier of a frame says about it (in a ring: the message header and the slot
/// header's kind), bound into the associated data: changing any of it fails authentication.
/// Nodes are bound by id (indices differ from host to host); the indices name the replay
/// stream at the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Envelope<'a> {
    /// The sending node's index in this process; must be the sealer's sender.
    pub origin: u32,
    /// The sending node's id.
    pub origin_id: &'a str,
    /// The destination node's index in this process.
    pub destination: u32,
    /// The destination node's id.
    pub destination_id: &'a str,
    /// The destination's registration generation (a frame for an earlier registration of
    /// the index does not open for a later one).
    pub destination_generation: u64,
    /// Frame kind code.
    pub kind: u8,
    /// Message id.
    pub request_id: u64,
}

/// Seals bodies for one registration of one sender.
pub struct Sealer {
    key: Arc<SealingKey>,
    sender: u32,
    generation: u64,
    counter: u64,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("sender", &self.sender)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for node index `sender` in its registration `generation`, whose counter
    /// starts at `start` (draw it at random; the top bit is cleared so the counter never
    /// wraps in practice). Builds no key schedule: it shares `key`'s.
    pub fn new(key: &Arc<SealingKey>, sender: u32, generation: u64, start: u64) -> Sealer {
        Sealer {
            key: key.clone(),
            sender,
            generation,
            counter: start >> 1,
        }
    }

    /// The sender index this sealer stamps into nonces.
    pub fn sender(&self) -> u32 {
        self.sender
    }

    /// The sender's registration generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Appends `generation ‖ counter ‖ ciphertext(body) ‖ tag` to `out`, authenticating the
    /// 48-byte frame `header`, the envelope and the channel. `InvalidArgumentError` when the
    /// envelope names another origin than this sealer's sender.
    pub fn seal(
        &mut self,
        header: &[u8],
        env: &Envelope,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        if env.origin != self.sender {
            return Err(Error::InvalidArgument(format!(
                "sealer of node {} asked to seal a frame from node {}",
                self.sender, env.origin
            )));
        }
        let counter = self.counter;
        self.counter = self.counter.checked_add(1).ok_or_else(|| {
            Error::AuthenticationFailed("nonce counter exhausted: register the node again".into())
        })?;
        let mut buf = [0u8; MAX_AAD];
        let aad = self.key.aad(header, env, self.generation, &mut buf)?;
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&counter.to_le_bytes());
        let start = out.len();
        out.extend_from_slice(body);
        let tag = self
            .key
            .cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce(env.origin_id, counter)),
                aad,
                &mut out[start..],
            )
            .map_err(|_| Error::AuthenticationFailed("sealing failed".into()))?;
        out.extend_from_slice(&tag);
        Ok(())
    }
}

/// Opens sealed bodies from any sender, each counter of a stream once.
pub struct Opener {
    key: Arc<SealingKey>,
    replay: ReplayGuard,
    failed: u64,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("replays_refused", &self.replay.refused())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// An opener sharing `key`'s schedule.
    pub fn new(key: &Arc<SealingKey>) -> Opener {
        Opener {
            key: key.clone(),
            replay: ReplayGuard::default(),
            failed: 0,
        }
    }

    /// Checks and decrypts a sealed body that came in `env`; `class` is the lane class of its
    /// authenticated header (0 latency, 1 bulk). `AuthenticationError` when the key, the
    /// header, the envelope, the channel or any byte differs from what was sealed, and when
    /// the frame is a replay (its counter seen before, below the window, or of an earlier
    /// registration of its sender).
    pub fn open(
        &mut self,
        env: &Envelope,
        class: u8,
        header: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let r = self.open_counted(env, class, header, sealed);
        if r.is_err() {
            self.failed += 1;
        }
        r
    }

    fn open_counted(
        &mut self,
        env: &Envelope,
        class: u8,
        header: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let too_short = || {
            Error::AuthenticationFailed(format!(
                "sealed body of {} bytes is shorter than its generation, counter and tag",
                sealed.len()
            ))
        };
        if sealed.len() < SEAL_OVERHEAD {
            return Err(too_short());
        }
        let (generation, rest) = sealed.split_first_chunk::<8>().ok_or_else(too_short)?;
        let (counter, rest) = rest.split_first_chunk::<8>().ok_or_else(too_short)?;
        let (ct, tag) = rest.split_last_chunk::<16>().ok_or_else(too_short)?;
        let (generation, counter) = (
            u64::from_le_bytes(*generation),
            u64::from_le_bytes(*counter),
        );
        let stream = Stream {
            origin: env.origin,
            destination: env.destination,
            class,
        };
        // Refused before decrypting: a replay costs no AES work.
        if let Err(why) = self.replay.check(stream, generation, counter) {
            self.replay.count_refusal();
            return Err(Error::AuthenticationFailed(format!(
                "frame from node {} refused: {why}",
                env.origin
            )));
        }
        let mut buf = [0u8; MAX_AAD];
        let aad = self.key.aad(header, env, generation, &mut buf)?;
        let mut plain = ct.to_vec();
        self.key
            .cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce(env.origin_id, counter)),
                aad,
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| {
                Error::AuthenticationFailed(format!(
                    "frame from node {} failed authentication (wrong key, tampered, or moved \
                     to another sender, destination, request or fabric)",
                    env.origin
                ))
            })?;
        self.replay.accept(stream, generation, counter);
        Ok(plain)
    }

    /// Frames refused as replays so far.
    pub fn replays_refused(&self) -> u64 {
        self.replay.refused()
    }

    /// Frames refused so far for any reason (replays included).
    pub fn refused(&self) -> u64 {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [u8; HEADER_LEN] = [0x5a; HEADER_LEN];
    const ENV: Envelope = Envelope {
        origin: 7,
        origin_id: "n7",
        destination: 3,
        destination_id: "n3",
        destination_generation: 2,
        kind: 1,
        request_id: 41,
    };

    fn sealing(k: u8, channel: &str) -> Arc<SealingKey> {
        SealingKey::new(&FabricKey::from_bytes([k; 32]), channel).unwrap()
    }

    fn auth_error(r: Result<Vec<u8>>) -> bool {
        matches!(r, Err(e) if e.kind() == crate::ErrorKind::AuthenticationFailed)
    }

    #[test]
    fn seal_open_and_tamper() {
        let key = sealing(0xab, "fab");
        let mut s = Sealer::new(&key, 7, 9, 2000);
        let mut sealed = Vec::new();
        s.seal(&HEADER, &ENV, b"secret payload", &mut sealed)
            .unwrap();
        assert_eq!(sealed.len(), 14 + SEAL_OVERHEAD);
        let mut o = Opener::new(&key);
        assert_eq!(
            o.open(&ENV, 0, &HEADER, &sealed).unwrap(),
            b"secret payload"
        );
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            let mut fresh = Opener::new(&key);
            assert!(
                auth_error(fresh.open(&ENV, 0, &HEADER, &t)),
                "flip at {i} accepted"
            );
        }
        let mut h = HEADER;
        h[20] ^= 1;
        assert!(
            auth_error(Opener::new(&key).open(&ENV, 0, &h, &sealed)),
            "header"
        );
        // Every field of the envelope is bound: moved frames fail.
        for env in [
            Envelope {
                origin_id: "n8",
                ..ENV
            },
            Envelope {
                destination_id: "n4",
                ..ENV
            },
            Envelope {
                destination_generation: 3,
                ..ENV
            },
            Envelope { kind: 2, ..ENV },
            Envelope {
                request_id: 42,
                ..ENV
            },
        ] {
            assert!(
                auth_error(Opener::new(&key).open(&env, 0, &HEADER, &sealed)),
                "{env:?}"
            );
        }
        // Another fabric with the same key, or another key.
        assert!(auth_error(
            Opener::new(&sealing(0xab, "other")).open(&ENV, 0, &HEADER, &sealed)
        ));
        assert!(auth_error(
            Opener::new(&sealing(1, "fab")).open(&ENV, 0, &HEADER, &sealed)
        ));
        assert!(auth_error(Opener::new(&key).open(
            &ENV,
            0,
            &HEADER,
            &sealed[..20]
        )));
        // The sealer refuses an envelope from another sender (the nonce names its sender).
        let e = s
            .seal(
                &HEADER,
                &Envelope { origin: 8, ..ENV },
                b"x",
                &mut Vec::new(),
            )
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        // Nonces advance: the same body seals differently.
        let mut again = Vec::new();
        s.seal(&HEADER, &ENV, b"secret payload", &mut again)
            .unwrap();
        assert_ne!(again, sealed);
        assert!(FabricKey::from_hex("abc").is_err());
        assert!(
            !format!("{:?}", FabricKey::from_bytes([0xab; 32])).contains("abab"),
            "Debug must not print the key"
        );
        assert!(SealingKey::new(&FabricKey::from_bytes([1; 32]), &"x".repeat(65)).is_err());
    }

    #[test]
    fn each_frame_opens_once() {
        let key = sealing(0xcd, "fab");
        let mut s = Sealer::new(&key, 7, 9, 1000);
        let mut o = Opener::new(&key);
        let frames: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                let mut out = Vec::new();
                s.seal(&HEADER, &ENV, &[i; 5], &mut out).unwrap();
                out
            })
            .collect();
        // Out of order is fine, twice is not.
        for i in [1, 0, 2] {
            assert_eq!(o.open(&ENV, 0, &HEADER, &frames[i]).unwrap(), [i as u8; 5]);
        }
        for f in &frames {
            let e = o.open(&ENV, 0, &HEADER, f).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::AuthenticationFailed);
            assert!(e.to_string().contains("replayed"), "{e}");
        }
        assert_eq!((o.replays_refused(), o.refused()), (3, 3));
        // A tampered frame does not mark its counter as seen.
        let mut s2 = Sealer::new(&key, 7, 9, 1 << 20);
        let mut f = Vec::new();
        s2.seal(&HEADER, &ENV, b"later", &mut f).unwrap();
        let mut bad = f.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(auth_error(o.open(&ENV, 0, &HEADER, &bad)));
        assert_eq!(o.open(&ENV, 0, &HEADER, &f).unwrap(), b"later");
        assert_eq!(o.replays_refused(), 3);
        // A new registration of the sender starts over; the old one stays refused.
        let mut reborn = Sealer::new(&key, 7, 10, 6);
        let mut f = Vec::new();
        reborn.seal(&HEADER, &ENV, b"again", &mut f).unwrap();
        assert_eq!(o.open(&ENV, 0, &HEADER, &f).unwrap(), b"again");
        let mut old = Vec::new();
        s2.seal(&HEADER, &ENV, b"stale", &mut old).unwrap();
        assert!(auth_error(o.open(&ENV, 0, &HEADER, &old)));
    }

    #[test]
    fn one_key_schedule_for_any_number_of_sealers_and_openers() {
        let before = key_schedules_built();
        let key = sealing(0xef, "fab");
        let mut o = Opener::new(&key);
        let mut sealers: Vec<Sealer> = (0..4).map(|i| Sealer::new(&key, i, 1, 100)).collect();
        for round in 0..50u32 {
            let s = &mut sealers[(round % 4) as usize];
            let env = Envelope {
                origin: s.sender(),
                origin_id: ["n0", "n1", "n2", "n3"][s.sender() as usize],
                ..ENV
            };
            let mut out = Vec::new();
            s.seal(&HEADER, &env, b"m", &mut out).unwrap();
            assert_eq!(o.open(&env, 0, &HEADER, &out).unwrap(), b"m");
        }
        assert_eq!(key_schedules_built() - before, 1);
    }
}
