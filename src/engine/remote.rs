//! Frames of sends from registered memory (see [`super::lent`]): what they carry, how the
//! receiver copies the bytes, and its acknowledgement.
//!
//! The frame ([`FLAG_REMOTE`], endpoint rings only, a request: it has an id and no
//! [`super::FLAG_ONE_WAY`]) is the message header (its total is the data's length, no
//! metadata) and a [`RemoteBytes`]: the address and length of the data in the ring's
//! producing process, and the address of the send's lent entry. The receiver reads the lent
//! entry, copies the data with `process_vm_readv` (into the caller's buffer for
//! `recv_into`), reads the entry again, and answers an acknowledgement (`Ack`) that completes
//! the sender's request; the message is delivered as a one-way message. An entry that does
//! not name the frame's id, address and length (the sender gave the send up; a frame someone
//! rewrote) drops the message unanswered; a copy the kernel refuses (the range is not mapped
//! there: the sender freed the memory; another user) drops it with an error answer; a sender
//! that died is dropped silently.

use super::lent::{names, ENTRY_LEN};
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
    /// Address of the send's lent entry.
    pub entry: u64,
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
        b[16..].copy_from_slice(&self.entry.to_le_bytes());
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
            entry: at(16),
        };
        (m.offset == 0 && m.total as u64 == r.len && r.len <= MAX_MESSAGE as u64 && m.id != 0)
            .then_some(r)
    }

    /// Copies the bytes out of process `pid` into `buf` (exactly `len` bytes) when the send's
    /// lent entry names request `id` and these bytes, before and after the copy (nothing is
    /// copied of a send given up, and a copy that may hold bytes written after it was given
    /// up is refused).
    pub(crate) fn copy_into(&self, pid: u32, id: u64, buf: &mut [u8]) -> Result<(), Refused> {
        debug_assert_eq!(buf.len() as u64, self.len);
        self.check_entry(pid, id)?;
        self.read_checked(pid, id, buf)
    }

    /// [`copy_into`](Self::copy_into) a new payload (allocated once the entry was checked).
    pub(crate) fn copy(&self, pid: u32, id: u64) -> Result<Payload, Refused> {
        self.check_entry(pid, id)?;
        let mut v = vec![0u8; self.len as usize];
        self.read_checked(pid, id, &mut v)?;
        Ok(Payload::from_vec(v))
    }

    /// The copy, then the entry read again after every byte of it.
    fn read_checked(&self, pid: u32, id: u64, buf: &mut [u8]) -> Result<(), Refused> {
        crate::sys::cma::read(pid, self.addr, buf).map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => Refused::Gone,
            _ => Refused::Failed(Error::io(
                format!(
                    "copying {} bytes of registered memory out of process {pid}",
                    self.len
                ),
                e,
            )),
        })?;
        fence(Ordering::SeqCst);
        self.check_entry(pid, id)
    }

    /// Whether the lent entry in process `pid` names request `id` and these bytes: `Gone`
    /// when it does not, or cannot be read (a sender's entry is mapped while its send is
    /// wanted).
    fn check_entry(&self, pid: u32, id: u64) -> Result<(), Refused> {
        let mut entry = [0u8; ENTRY_LEN];
        match crate::sys::cma::read(pid, self.entry, &mut entry) {
            Ok(()) if names(&entry, (id, self.addr, self.len)) => Ok(()),
            Ok(()) => Err(Refused::Gone),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESRCH | libc::EFAULT)) => {
                Err(Refused::Gone)
            }
            Err(e) => Err(Refused::Failed(Error::io(
                format!("reading the lent entry of a send out of process {pid}"),
                e,
            ))),
        }
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
            entry: 0x2000,
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
    fn a_copy_is_refused_unless_its_entry_names_it() {
        let me = crate::sys::process::pid();
        let data = vec![7u8; 5000];
        let lent = super::super::lent::Lent::default();
        let (addr, len) = (data.as_ptr() as u64, data.len() as u64);
        let entry = lent.claim(42, addr, len).unwrap();
        let r = RemoteBytes { addr, len, entry };
        assert_eq!(&*r.copy(me, 42).unwrap(), &data[..]);
        assert!(matches!(r.copy(me, 41), Err(Refused::Gone)));
        // Other bytes than the entry's: nothing is copied.
        let beside = RemoteBytes {
            addr: addr + 1,
            ..r
        };
        let mut buf = vec![0u8; 5000];
        assert!(matches!(
            beside.copy_into(me, 42, &mut buf),
            Err(Refused::Gone)
        ));
        assert!(buf.iter().all(|&b| b == 0));
        let shorter = RemoteBytes { len: 10, ..r };
        assert!(matches!(shorter.copy(me, 42), Err(Refused::Gone)));
        let nowhere = RemoteBytes { entry: 8, ..r };
        assert!(matches!(nowhere.copy(me, 42), Err(Refused::Gone)));
        lent.release(42);
        assert!(matches!(r.copy_into(me, 42, &mut buf), Err(Refused::Gone)));
        assert!(buf.iter().all(|&b| b == 0), "a send given up is not copied");
        // Bytes the kernel refuses, named by their entry: the sender is told.
        let bad = lent.claim(43, 8, len).unwrap();
        let bad = RemoteBytes {
            addr: 8,
            len,
            entry: bad,
        };
        assert!(matches!(bad.copy(me, 43), Err(Refused::Failed(_))));
    }
}
