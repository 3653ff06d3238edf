//! The start of a connection between hosts: both sides prove they hold the fabric key
//! without sending it, and agree on a key for this connection alone.
//!
//! ```text
//! client -> server  HELLO      "HFTC" version:u16 flags:u16 nonce_c:[32]
//!                               fabric_len:u8 fabric  label_len:u8 label
//! server -> client  CHALLENGE  "HFTS" version:u16 flags:u16 nonce_s:[32] proof_s:[32]
//! client -> server  PROOF      proof_c:[32]
//! server -> client  WELCOME    "HFOK"
//! server -> client  REFUSAL    "HFNO" len:u8 reason   (instead of CHALLENGE: another
//!                                                     fabric, version or key mode)
//! ```
//!
//! `proof_s = HMAC-SHA256(key, "hyperfabric server" || SHA-256(HELLO) || nonce_s)` and
//! `proof_c` the same with `"hyperfabric client"`: each side's proof covers both nonces, so
//! it cannot be replayed on another connection or reflected back to its sender. The client
//! checks the server's proof before it proves anything itself. The session key is
//! HKDF-SHA256 of the fabric key with both nonces as salt and the fabric name in the info.
//!
//! A fabric without a key connects only when both sides say so (`insecure`, flag bit 0):
//! no proofs, no session key. A keyed side refuses an insecure peer, and the reverse.
//! Every field is bounded and checked; a peer that goes silent fails the handshake at its
//! deadline.

use super::FabricKey;
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The handshake's version; a peer with another one is refused. Version 4: echoes
/// (`tcp::control::KIND_ECHO`), which a peer of version 3 would take for a frame of an
/// unknown kind and close the connection for. Version 3: frames of up to
/// [`MAX_FRAME`](crate::transport::tcp::MAX_FRAME) bytes, 256 KiB of body and a message
/// header (version 2 took 256 KiB in all, version 1 a lane's).
pub const VERSION: u16 = 4;
const HELLO: &[u8; 4] = b"HFTC";
const CHALLENGE: &[u8; 4] = b"HFTS";
const WELCOME: &[u8; 4] = b"HFOK";
const REFUSAL: &[u8; 4] = b"HFNO";
const INSECURE: u16 = 1;
const NONCE: usize = 32;
const PROOF: usize = 32;

/// How this side proves itself: with the fabric key, or (both sides agreeing) without.
#[derive(Clone, Copy)]
pub enum Credentials<'a> {
    /// The fabric key.
    Key(&'a FabricKey),
    /// No key: only a peer that is insecure too is accepted.
    Insecure,
}

/// What a handshake agreed on.
#[derive(Debug)]
pub struct Session {
    /// The key of this connection alone (`None` on an insecure fabric).
    pub key: Option<[u8; 32]>,
    /// The label the client gave (who it is, for reports), as sent.
    pub peer_label: String,
}

/// Runs the client's side on `stream` for fabric `fabric`, as `label` (at most 255
/// bytes), within `deadline`.
pub fn client(
    stream: &mut TcpStream,
    fabric: &str,
    label: &str,
    credentials: Credentials<'_>,
    deadline: Duration,
) -> Result<Session> {
    let until = deadline_at(deadline);
    let (fabric_b, label_b) = (short(fabric, "fabric name")?, short(label, "label")?);
    let nonce_c = nonce()?;
    let mut hello = Vec::with_capacity(44 + fabric_b.len() + label_b.len());
    hello.extend_from_slice(HELLO);
    hello.extend_from_slice(&VERSION.to_le_bytes());
    hello.extend_from_slice(&flags(credentials).to_le_bytes());
    hello.extend_from_slice(&nonce_c);
    hello.push(fabric_b.len() as u8);
    hello.extend_from_slice(fabric_b);
    hello.push(label_b.len() as u8);
    hello.extend_from_slice(label_b);
    write(stream, &hello, until)?;

    let mut ch = [0u8; 8 + NONCE + PROOF];
    read(stream, &mut ch[..4], until)?;
    if &ch[..4] == REFUSAL {
        let mut len = [0u8];
        read(stream, &mut len, until)?;
        let mut why = vec![0u8; len[0] as usize];
        read(stream, &mut why, until)?;
        return Err(Error::AuthenticationFailed(format!(
            "the server refused the connection: {}",
            String::from_utf8_lossy(&why)
        )));
    }
    read(stream, &mut ch[4..], until)?;
    if &ch[..4] != CHALLENGE {
        return Err(malformed(
            "the server's answer is not a HyperFabric challenge",
        ));
    }
    version_and_mode(&ch[4..8], credentials)?;
    let nonce_s: [u8; NONCE] = ch[8..8 + NONCE].try_into().expect("nonce");
    let key = match credentials {
        Credentials::Insecure => None,
        Credentials::Key(k) => {
            if !verify(k, b"hyperfabric server", &hello, &nonce_s, &ch[8 + NONCE..]) {
                return Err(Error::AuthenticationFailed(
                    "the server does not hold this fabric's key".into(),
                ));
            }
            let proof = prove(k, b"hyperfabric client", &hello, &nonce_s);
            write(stream, &proof, until)?;
            Some(session_key(k, &nonce_c, &nonce_s, fabric))
        }
    };
    let mut ok = [0u8; 4];
    read(stream, &mut ok, until).map_err(|e| match e {
        Error::Io { .. } => Error::AuthenticationFailed(
            "the server closed the connection instead of accepting this side's proof".into(),
        ),
        e => e,
    })?;
    if &ok != WELCOME {
        return Err(malformed(
            "the server's last handshake message is not a welcome",
        ));
    }
    done(
        stream,
        Session {
            key,
            peer_label: String::new(),
        },
    )
}

/// Runs the server's side on `stream` for fabric `fabric` within `deadline`. A client that
/// fails is answered with nothing (the caller drops the connection).
pub fn server(
    stream: &mut TcpStream,
    fabric: &str,
    credentials: Credentials<'_>,
    deadline: Duration,
) -> Result<Session> {
    let until = deadline_at(deadline);
    let mut head = [0u8; 8 + NONCE + 1];
    read(stream, &mut head, until)?;
    if &head[..4] != HELLO {
        return Err(malformed("not a HyperFabric connection (no hello)"));
    }
    version_and_mode(&head[4..8], credentials).map_err(|e| refuse(stream, e, until))?;
    let nonce_c: [u8; NONCE] = head[8..8 + NONCE].try_into().expect("nonce");
    let mut name = vec![0u8; head[8 + NONCE] as usize + 1];
    read(stream, &mut name, until)?;
    let label_len = name.pop().expect("one more byte") as usize;
    if name != fabric.as_bytes() {
        let theirs = String::from_utf8_lossy(&name).into_owned();
        // The client is told its fabric is not served here, not which one is.
        let told = format!("this server is not of fabric {theirs:?}");
        let _ = refuse(stream, Error::AuthenticationFailed(told), until);
        return Err(Error::AuthenticationFailed(format!(
            "the client is of fabric {theirs:?}, not {fabric:?}"
        )));
    }
    let mut label = vec![0u8; label_len];
    read(stream, &mut label, until)?;
    let mut hello = head.to_vec();
    hello.extend_from_slice(&name);
    hello.push(label_len as u8);
    hello.extend_from_slice(&label);
    let peer_label = String::from_utf8_lossy(&label).into_owned();

    let nonce_s = nonce()?;
    let mut ch = Vec::with_capacity(8 + NONCE + PROOF);
    ch.extend_from_slice(CHALLENGE);
    ch.extend_from_slice(&VERSION.to_le_bytes());
    ch.extend_from_slice(&flags(credentials).to_le_bytes());
    ch.extend_from_slice(&nonce_s);
    let key = match credentials {
        Credentials::Insecure => {
            ch.extend_from_slice(&[0; PROOF]);
            write(stream, &ch, until)?;
            None
        }
        Credentials::Key(k) => {
            ch.extend_from_slice(&prove(k, b"hyperfabric server", &hello, &nonce_s));
            write(stream, &ch, until)?;
            let mut proof = [0u8; PROOF];
            read(stream, &mut proof, until)?;
            if !verify(k, b"hyperfabric client", &hello, &nonce_s, &proof) {
                return Err(Error::AuthenticationFailed(format!(
                    "the client {peer_label:?} does not hold this fabric's key"
                )));
            }
            Some(session_key(k, &nonce_c, &nonce_s, fabric))
        }
    };
    write(stream, WELCOME, until)?;
    done(stream, Session { key, peer_label })
}

/// Tells the client why it is refused (best effort: a REFUSAL with the error's text) and
/// returns the error.
fn refuse(stream: &mut TcpStream, e: Error, until: Instant) -> Error {
    let why = e.to_string();
    let mut n = why.len().min(255);
    while !why.is_char_boundary(n) {
        n -= 1;
    }
    let msg = [&REFUSAL[..], &[n as u8], &why.as_bytes()[..n]].concat();
    let _ = write(stream, &msg, until);
    e
}

/// The instant `deadline` from now (a deadline too far to say is a year).
fn deadline_at(deadline: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(deadline)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}

/// The stream as the caller had it: no timeouts left from the handshake.
fn done(stream: &TcpStream, s: Session) -> Result<Session> {
    stream
        .set_read_timeout(None)
        .and_then(|()| stream.set_write_timeout(None))
        .map_err(|e| Error::io("clearing the handshake's timeouts", e))?;
    Ok(s)
}

fn flags(c: Credentials<'_>) -> u16 {
    match c {
        Credentials::Key(_) => 0,
        Credentials::Insecure => INSECURE,
    }
}

/// Checks the peer's version and that both sides agree on keyed or insecure.
fn version_and_mode(b: &[u8], mine: Credentials<'_>) -> Result<()> {
    let version = u16::from_le_bytes([b[0], b[1]]);
    if version != VERSION {
        return Err(malformed(&format!(
            "the peer speaks handshake version {version}, this side {VERSION}"
        )));
    }
    let insecure = u16::from_le_bytes([b[2], b[3]]) & INSECURE != 0;
    match (mine, insecure) {
        (Credentials::Key(_), true) => Err(Error::AuthenticationFailed(
            "the peer has no fabric key (insecure) and this side requires one".into(),
        )),
        (Credentials::Insecure, false) => Err(Error::AuthenticationFailed(
            "the peer requires the fabric key and this side has none".into(),
        )),
        _ => Ok(()),
    }
}

fn short<'a>(s: &'a str, what: &str) -> Result<&'a [u8]> {
    if s.len() > 255 {
        return Err(Error::InvalidArgument(format!(
            "a {what} of more than 255 bytes ({})",
            s.len()
        )));
    }
    Ok(s.as_bytes())
}

fn malformed(why: &str) -> Error {
    Error::MalformedFrame(format!("handshake: {why}"))
}

fn nonce() -> Result<[u8; NONCE]> {
    let mut n = [0u8; NONCE];
    getrandom::fill(&mut n).map_err(|e| {
        Error::io(
            "reading random bytes for a handshake",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(n)
}

fn mac(key: &FabricKey, role: &[u8], hello: &[u8], nonce_s: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.bytes()).expect("any key length");
    m.update(role);
    m.update(&Sha256::digest(hello));
    m.update(nonce_s);
    m
}

fn prove(key: &FabricKey, role: &[u8], hello: &[u8], nonce_s: &[u8]) -> [u8; PROOF] {
    mac(key, role, hello, nonce_s)
        .finalize()
        .into_bytes()
        .into()
}

/// Compares in constant time.
fn verify(key: &FabricKey, role: &[u8], hello: &[u8], nonce_s: &[u8], proof: &[u8]) -> bool {
    mac(key, role, hello, nonce_s).verify_slice(proof).is_ok()
}

fn session_key(key: &FabricKey, nonce_c: &[u8], nonce_s: &[u8], fabric: &str) -> [u8; 32] {
    let salt = [nonce_c, nonce_s].concat();
    let hk = hkdf::Hkdf::<Sha256>::new(Some(&salt), key.bytes());
    let mut out = [0u8; 32];
    hk.expand(
        &[b"hyperfabric tcp session ".as_slice(), fabric.as_bytes()].concat(),
        &mut out,
    )
    .expect("32 bytes is a valid HKDF length");
    out
}

/// Writes all of `b` before `until`.
fn write(s: &mut TcpStream, b: &[u8], until: Instant) -> Result<()> {
    s.set_write_timeout(Some(left(until)?))
        .and_then(|()| s.write_all(b))
        .map_err(|e| io_or_timeout(e, "sending the handshake"))
}

/// Reads exactly `b.len()` bytes before `until`.
fn read(s: &mut TcpStream, b: &mut [u8], until: Instant) -> Result<()> {
    let mut got = 0;
    while got < b.len() {
        s.set_read_timeout(Some(left(until)?))
            .map_err(|e| Error::io("setting a handshake timeout", e))?;
        match s.read(&mut b[got..]) {
            Ok(0) => {
                return Err(Error::io(
                    "reading the handshake",
                    std::io::ErrorKind::UnexpectedEof.into(),
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_or_timeout(e, "reading the handshake")),
        }
    }
    Ok(())
}

fn left(until: Instant) -> Result<Duration> {
    let d = until.saturating_duration_since(Instant::now());
    if d.is_zero() {
        return Err(Error::Timeout(
            "the peer did not complete the handshake in time".into(),
        ));
    }
    Ok(d)
}

fn io_or_timeout(e: std::io::Error, what: &str) -> Error {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            Error::Timeout("the peer did not complete the handshake in time".into())
        }
        _ => Error::io(what, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const FABRIC: &str = "hs-test";
    const WAIT: Duration = Duration::from_secs(5);

    fn key(b: u8) -> FabricKey {
        FabricKey::from_bytes([b; 32])
    }

    /// Runs a server side with `serve` on one end of a loopback connection and returns
    /// the client's stream and the server's outcome (joined when asked).
    fn with_server<T: Send + 'static>(
        serve: impl FnOnce(&mut TcpStream) -> T + Send + 'static,
    ) -> (TcpStream, std::thread::JoinHandle<T>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || serve(&mut l.accept().unwrap().0));
        (TcpStream::connect(addr).unwrap(), t)
    }

    #[test]
    fn both_sides_with_the_key_agree_on_a_key_of_their_own_per_connection() {
        let mut keys = Vec::new();
        for _ in 0..2 {
            let (mut c, t) = with_server(|s| server(s, FABRIC, Credentials::Key(&key(7)), WAIT));
            let mine = client(&mut c, FABRIC, "host-a:42", Credentials::Key(&key(7)), WAIT);
            let theirs = t.join().unwrap().unwrap();
            let mine = mine.unwrap();
            assert_eq!(theirs.peer_label, "host-a:42");
            assert!(mine.key.is_some());
            assert_eq!(mine.key, theirs.key);
            assert_ne!(mine.key, Some(*key(7).bytes()), "not the fabric key itself");
            // The stream is left as it was: no timeouts of the handshake's.
            assert_eq!(c.read_timeout().unwrap(), None);
            keys.push(mine.key);
        }
        assert_ne!(keys[0], keys[1], "a fresh key per connection");
    }

    #[test]
    fn a_peer_without_the_key_is_refused_on_both_sides() {
        // The server has another key: the client finds out before proving anything.
        let (mut c, t) = with_server(|s| server(s, FABRIC, Credentials::Key(&key(1)), WAIT));
        let e = client(&mut c, FABRIC, "a", Credentials::Key(&key(2)), WAIT).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::AuthenticationFailed, "{e}");
        drop(c);
        assert!(t.join().unwrap().is_err());

        // A client that replays another connection's proof: the server refuses it.
        let (mut c, t) = with_server(|s| server(s, FABRIC, Credentials::Key(&key(1)), WAIT));
        let hello = [
            &HELLO[..],
            &VERSION.to_le_bytes(),
            &0u16.to_le_bytes(),
            &[9u8; NONCE],
            &[FABRIC.len() as u8],
            FABRIC.as_bytes(),
            &[0],
        ]
        .concat();
        c.write_all(&hello).unwrap();
        let mut ch = [0u8; 8 + NONCE + PROOF];
        c.read_exact(&mut ch).unwrap();
        c.write_all(&[0x42; PROOF]).unwrap();
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::AuthenticationFailed, "{e}");
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty(), "no welcome for a wrong proof");
    }

    #[test]
    fn another_fabric_another_version_or_garbage_is_refused_with_its_reason() {
        let (mut c, t) = with_server(|s| server(s, FABRIC, Credentials::Key(&key(1)), WAIT));
        let e = client(&mut c, "other", "a", Credentials::Key(&key(1)), WAIT).unwrap_err();
        drop(c);
        let s = t.join().unwrap().unwrap_err();
        assert!(s.to_string().contains("\"other\""), "{s}");
        assert_eq!(e.kind(), crate::ErrorKind::AuthenticationFailed, "{e}");
        assert!(e.to_string().contains("refused") && e.to_string().contains("\"other\""));

        let (mut c, t) = with_server(|s| server(s, FABRIC, Credentials::Key(&key(1)), WAIT));
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n....................")
            .unwrap();
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::MalformedFrame, "{e}");

        let (mut c, t) = with_server(|s| server(s, FABRIC, Credentials::Key(&key(1)), WAIT));
        let mut hello = [0u8; 8 + NONCE + 1];
        hello[..4].copy_from_slice(HELLO);
        hello[4..6].copy_from_slice(&9u16.to_le_bytes());
        c.write_all(&hello).unwrap();
        let e = t.join().unwrap().unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
    }

    #[test]
    fn a_deadline_too_far_to_add_is_a_long_one() {
        let (mut c, t) =
            with_server(|s| server(s, FABRIC, Credentials::Key(&key(3)), Duration::MAX));
        let mine = client(
            &mut c,
            FABRIC,
            "a",
            Credentials::Key(&key(3)),
            Duration::MAX,
        );
        assert!(mine.unwrap().key.is_some() && t.join().unwrap().is_ok());
    }

    #[test]
    fn a_silent_peer_fails_at_the_deadline() {
        let (c, t) = with_server(|s| {
            let start = Instant::now();
            let r = server(
                s,
                FABRIC,
                Credentials::Key(&key(1)),
                Duration::from_millis(200),
            );
            (r, start.elapsed())
        });
        let (r, took) = t.join().unwrap();
        assert_eq!(r.unwrap_err().kind(), crate::ErrorKind::Timeout);
        assert!(took < Duration::from_secs(3), "{took:?}");
        drop(c);
    }

    #[test]
    fn insecure_sides_connect_only_to_each_other() {
        let (mut c, t) = with_server(|s| server(s, FABRIC, Credentials::Insecure, WAIT));
        let mine = client(&mut c, FABRIC, "a", Credentials::Insecure, WAIT).unwrap();
        assert!(mine.key.is_none() && t.join().unwrap().unwrap().key.is_none());

        let (mut c, t) = with_server(|s| server(s, FABRIC, Credentials::Key(&key(1)), WAIT));
        let e = client(&mut c, FABRIC, "a", Credentials::Insecure, WAIT).unwrap_err();
        drop(c);
        let s = t.join().unwrap().unwrap_err();
        assert_eq!(s.kind(), crate::ErrorKind::AuthenticationFailed, "{s}");
        assert_eq!(e.kind(), crate::ErrorKind::AuthenticationFailed, "{e}");

        let (mut c, t) = with_server(|s| server(s, FABRIC, Credentials::Insecure, WAIT));
        let e = client(&mut c, FABRIC, "a", Credentials::Key(&key(1)), WAIT).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::AuthenticationFailed, "{e}");
        drop(c);
        let _ = t.join().unwrap();
    }
}
