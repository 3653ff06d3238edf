//! Frames of sends from registered memory (see [`super::lent`]): what they carry, how the
//! receiver copies the bytes, and its acknowledgement.
//!
//! The frame ([`FLAG_REMOTE`], endpoint rings only, a request: it has an id and no
//! [`super::FLAG_ONE_WAY`]) is the message header (its total is the data's length, no
//! metadata) and a [`RemoteBytes`]: the address and length of the data in the ring's
//! producing process, and the address of the send's lent word. The receiver copies the data
//! with `process_vm_readv` (into the caller's buffer for `recv_into`), reads the lent word,
//! and answers an acknowledgement (`Ack`) that completes the sender's request; the message
//! is delivered as a one-way message. A word that no longer holds the request's id (the
//! sender gave the send up) drops the message unanswered; a copy the kernel refuses (the
//! range is not mapped there: the sender freed the memory; another user) drops it with an
//! error answer; a sender that died is dropped silently.

use super::{Engine, MsgHeader, MAX_MESSAGE, MSG_HEADER};
use crate::buffer::Payload;
use crate::error::Error;
use std::sync::atomic::{fence, Ordering};

/// Slot flag: the data of the message is in the sender's memory (see the module
/// documentation).
pub const FLAG_REMOTE: u8 = 32;
/// Slot flag a ring never carries (an endpoint ring's check refuses it): set by the receiving
/// process on a [`FLAG_REMOTE`] frame whose bytes a receiver already copied, so that the
/// dispatch only acknowledges it.
pub(crate) const FLAG_READ: u8 = 64;

/// Where the bytes of a send from registered memory are, in its sender's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteBytes {
    /// Address of the data.
    pub addr: u64,
    /// Its length.
    pub len: u64,
    /// Address of the send's lent word.
    pub word: u64,
}

/// Why a copy of remote bytes delivered nothing.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The sender gave the send up, or its process is gone: nobody to answer.
    Gone,
    /// The kernel refused the copy: the sender is told.
    Failed(Error),
}

impl RemoteBytes {
    /// Bytes of an encoded [`RemoteBytes`].
    pub const LEN: usize = 24;

    /// Little-endian encoding.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..].copy_from_slice(&self.word.to_le_bytes());
        b
    }

    /// The bytes after the message header of a [`FLAG_REMOTE`] frame, checked against the
    /// header `m`: exactly one encoded value, for the whole message (no metadata), within the
    /// largest message. `None` for anything else.
    pub(crate) fn of_frame(m: &MsgHeader, rest: &[u8]) -> Option<RemoteBytes> {
        let b: &[u8; Self::LEN] = rest.try_into().ok()?;
        let at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let r = RemoteBytes {
            addr: at(0),
            len: at(8),
            word: at(16),
        };
        (m.offset == 0 && m.total as u64 == r.len && r.len <= MAX_MESSAGE as u64 && m.id != 0)
            .then_some(r)
    }

    /// Copies the bytes out of process `pid` into `buf` (exactly `len` bytes), then checks
    /// that send `id` is still wanted.
    pub(crate) fn copy_into(&self, pid: u32, id: u64, buf: &mut [u8]) -> Result<(), Refused> {
        debug_assert_eq!(buf.len() as u64, self.len);
        let refused = |e: std::io::Error| match e.raw_os_error() {
            Some(libc::ESRCH) => Refused::Gone,
            _ => Refused::Failed(Error::io(
                format!(
                    "copying {} bytes of registered memory out of process {pid}",
                    self.len
                ),
                e,
            )),
        };
        crate::sys::cma::read(pid, self.addr, buf).map_err(refused)?;
        // The word is read after every byte of the copy.
        fence(Ordering::SeqCst);
        match crate::sys::cma::read_word(pid, self.word).map_err(refused)? {
            w if w == id => Ok(()),
            _ => Err(Refused::Gone),
        }
    }

    /// [`copy_into`](Self::copy_into) a new payload.
    pub(crate) fn copy(&self, pid: u32, id: u64) -> Result<Payload, Refused> {
        let mut v = vec![0u8; self.len as usize];
        self.copy_into(pid, id, &mut v)?;
        Ok(Payload::from_vec(v))
    }
}

/// The payload of a [`FLAG_REMOTE`] frame from `src` to `dst`: message header, then the
/// encoded [`RemoteBytes`].
pub(crate) fn remote_frame(
    (src, dst): (u32, u32),
    id: u64,
    (priority, data_type): (u8, u8),
    bytes: &RemoteBytes,
) -> [u8; MSG_HEADER + RemoteBytes::LEN] {
    let h = MsgHeader {
        dst,
        id,
        hop: 0,
        priority,
        data_type,
        hop_limit: super::HOP_LIMIT,
        total: bytes.len as u32,
        offset: 0,
        origin: src,
    };
    let mut b = [0u8; MSG_HEADER + RemoteBytes::LEN];
    b[..MSG_HEADER].copy_from_slice(&h.encode());
    b[MSG_HEADER..].copy_from_slice(&bytes.encode());
    b
}

impl Engine {
    /// Counts a send from registered memory that delivered nothing, and tells its sender
    /// when the kernel refused the copy.
    pub(super) fn refused_remote(
        &mut self,
        back: super::Back<'_>,
        (at, src): (u32, u32),
        id: u64,
        why: Refused,
    ) {
        self.counters.errors += 1;
        if let Refused::Failed(e) = why {
            self.answer_error(back, (at, src), id, e.kind(), &e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_decodes_only_with_a_header_that_agrees() {
        let r = RemoteBytes {
            addr: 0x1000,
            len: 300,
            word: 0x2000,
        };
        let f = remote_frame((1, 2), 9, (0, 0), &r);
        let m = MsgHeader::decode(&f);
        assert_eq!(RemoteBytes::of_frame(&m, &f[MSG_HEADER..]), Some(r));
        assert_eq!(RemoteBytes::of_frame(&m, &f[MSG_HEADER + 1..]), None);
        let other = MsgHeader { total: 301, ..m };
        assert_eq!(RemoteBytes::of_frame(&other, &f[MSG_HEADER..]), None);
        let no_id = MsgHeader { id: 0, ..m };
        assert_eq!(RemoteBytes::of_frame(&no_id, &f[MSG_HEADER..]), None);
    }

    #[test]
    fn a_copy_is_refused_once_its_word_is_cleared() {
        let me = crate::sys::process::pid();
        let data = vec![7u8; 5000];
        let lent = super::super::lent::Lent::default();
        let word = lent.claim(42).unwrap();
        let r = RemoteBytes {
            addr: data.as_ptr() as u64,
            len: data.len() as u64,
            word,
        };
        assert_eq!(&*r.copy(me, 42).unwrap(), &data[..]);
        assert!(matches!(r.copy(me, 41), Err(Refused::Gone)));
        lent.release(42);
        assert!(matches!(r.copy(me, 42), Err(Refused::Gone)));
        let bad = RemoteBytes { addr: 8, ..r };
        assert!(matches!(bad.copy(me, 42), Err(Refused::Failed(_))));
    }
}
