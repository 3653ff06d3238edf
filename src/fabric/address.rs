//! Address blobs: what one process hands another (through MPI, PMIx or a file) so that it can
//! reach a node the first one hosts.
//!
//! Layout: `"HFAD"`, version 1, then the host's boot id, the fabric name and the node id, each
//! as one length byte followed by that many bytes of UTF-8.

use super::{lock, HyperFabricProtocol};
use crate::error::{Error, Result};

/// Largest address blob ([`HyperFabricProtocol::node_address`](super::HyperFabricProtocol::node_address)).
pub const ADDRESS_MAX: usize = 256;

const MAGIC: &[u8; 4] = b"HFAD";
const VERSION: u8 = 1;

/// The fields of an address blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress {
    /// Boot id of the host running the node's process.
    pub host: String,
    /// Fabric the node is registered in.
    pub fabric: String,
    /// The node id.
    pub node: String,
}

impl PeerAddress {
    /// The blob of this address (`InvalidArgumentError` when a field exceeds 255 bytes, which
    /// its one length byte cannot say).
    ///
    /// ```
    /// use hyperfabric::fabric::PeerAddress;
    /// let a = PeerAddress { host: "h".into(), fabric: "f".into(), node: "gpu-01".into() };
    /// assert_eq!(PeerAddress::decode(&a.encode()?)?, a);
    /// # Ok::<(), hyperfabric::Error>(())
    /// ```
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut b = Vec::with_capacity(ADDRESS_MAX);
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        for part in [&self.host, &self.fabric, &self.node] {
            let n = u8::try_from(part.len()).map_err(|_| {
                Error::InvalidArgument(format!(
                    "address blob: a field of {} bytes, at most 255 fit",
                    part.len()
                ))
            })?;
            b.push(n);
            b.extend_from_slice(part.as_bytes());
        }
        Ok(b)
    }

    /// Parses a blob; `InvalidArgumentError` names what is wrong. Bytes after the node id are
    /// ignored: C callers pass whole `HF_ADDRESS_MAX` slots gathered by `MPI_Allgather`.
    pub fn decode(blob: &[u8]) -> Result<PeerAddress> {
        let bad = |why: &str| Error::InvalidArgument(format!("address blob: {why}"));
        let rest = blob
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("not a HyperFabric address"))?;
        let (&version, mut rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
        if version != VERSION {
            return Err(bad(&format!("version {version} is not supported")));
        }
        let mut part = || -> Result<String> {
            let (&n, tail) = rest.split_first().ok_or_else(|| bad("truncated"))?;
            let (s, tail) = tail
                .split_at_checked(n as usize)
                .ok_or_else(|| bad("truncated"))?;
            rest = tail;
            Ok(std::str::from_utf8(s)
                .map_err(|_| bad("not UTF-8"))?
                .to_string())
        };
        Ok(PeerAddress {
            host: part()?,
            fabric: part()?,
            node: part()?,
        })
    }
}

impl HyperFabricProtocol {
    /// The address blob of hosted node `node_id`: what another process passes to
    /// [`insert_peer`](Self::insert_peer) to reach it (MPI, PMIx or a file carry it). At most
    /// [`ADDRESS_MAX`] bytes: magic, version, the host's boot id, the fabric name and the node
    /// id.
    pub fn node_address(&self, node_id: &str) -> Result<Vec<u8>> {
        self.inner.check_process()?;
        lock(&self.inner.engine).hosted_index(node_id)?;
        PeerAddress {
            host: host_id()?,
            fabric: self.inner.fabric.clone(),
            node: node_id.to_string(),
        }
        .encode()
    }

    /// Takes another process's address blob (from [`node_address`](Self::node_address)) and
    /// returns the node id to send to. The peer must be on this host and fabric (the TCP
    /// transport between hosts is not here yet: `NoRouteFoundError`) and registered
    /// (`NodeNotFoundError`); a blob that does not decode is `InvalidArgumentError`.
    pub fn insert_peer(&self, blob: &[u8]) -> Result<String> {
        self.inner.check_process()?;
        let PeerAddress { host, fabric, node } = PeerAddress::decode(blob)?;
        if host != host_id()? {
            return Err(Error::NoRouteFound(format!(
                "node {node:?} is on another host: only nodes of this host are reachable until \
                 the TCP transport exists"
            )));
        }
        if fabric != self.inner.fabric {
            return Err(Error::InvalidArgument(format!(
                "address blob: node {node:?} is on fabric {fabric:?}, this protocol on {:?}",
                self.inner.fabric
            )));
        }
        lock(&self.inner.engine).resolve(&node)?;
        Ok(node)
    }
}

/// This host's identity: its boot id (a fresh random id at every boot of the kernel).
fn host_id() -> Result<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io("reading /proc/sys/kernel/random/boot_id", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> PeerAddress {
        PeerAddress {
            host: "0b7e2c1a-6f4d-4d8e-9a57-1c2d3e4f5a6b".into(),
            fabric: "training".into(),
            node: "gpu-01".into(),
        }
    }

    #[test]
    fn round_trips_and_ignores_trailing_bytes() {
        let a = address();
        let mut b = a.encode().unwrap();
        assert!(b.len() <= ADDRESS_MAX);
        assert_eq!(&b[..5], b"HFAD\x01");
        assert_eq!(PeerAddress::decode(&b).unwrap(), a);
        b.resize(ADDRESS_MAX, 0);
        assert_eq!(PeerAddress::decode(&b).unwrap(), a);
    }

    #[test]
    fn each_defect_is_named() {
        let b = address().encode().unwrap();
        let why = |blob: &[u8]| {
            let e = PeerAddress::decode(blob).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
            e.to_string()
        };
        assert!(why(b"garbage").contains("not a HyperFabric address"));
        assert!(why(&b[..4]).contains("truncated"));
        assert!(why(&b[..b.len() - 1]).contains("truncated"));
        let mut v2 = b.clone();
        v2[4] = 2;
        assert!(why(&v2).contains("version 2"));
        let mut latin1 = b.clone();
        latin1[6] = 0xff;
        assert!(why(&latin1).contains("UTF-8"));
        let long = PeerAddress {
            node: "n".repeat(256),
            ..address()
        };
        assert!(long
            .encode()
            .unwrap_err()
            .to_string()
            .contains("at most 255"));
    }
}
