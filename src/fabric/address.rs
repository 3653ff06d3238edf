//! Address blobs: what one process hands another (through MPI, PMIx or a file) so that it can
//! reach a node the first one hosts.
//!
//! Layout: `"HFAD"`, version 2, then the host's boot id, the fabric name, the node id and the
//! address other hosts reach its process at (`ip:port`, empty when it does not listen), each
//! as one length byte followed by that many bytes of UTF-8, then the fingerprint of the
//! fabric key (a length byte, 0 without a key or 8, then its bytes). Version 1 blobs (no
//! address, no fingerprint) are still read.

use super::{lock, HyperFabricProtocol};
use crate::error::{Error, Result};

/// Largest address blob ([`HyperFabricProtocol::node_address`](super::HyperFabricProtocol::node_address)).
pub const ADDRESS_MAX: usize = 256;

const MAGIC: &[u8; 4] = b"HFAD";
const VERSION: u8 = 2;

/// The fields of an address blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress {
    /// Boot id of the host running the node's process.
    pub host: String,
    /// Fabric the node is registered in.
    pub fabric: String,
    /// The node id.
    pub node: String,
    /// Where other hosts reach the node's process, if it listens.
    pub tcp: Option<std::net::SocketAddr>,
    /// The fingerprint of the fabric key its process holds (see
    /// [`FabricKey::fingerprint`](crate::codec::FabricKey::fingerprint)).
    pub key_fingerprint: Option<[u8; 8]>,
}

impl PeerAddress {
    /// The blob of this address (`InvalidArgumentError` when a field exceeds 255 bytes, which
    /// its one length byte cannot say).
    ///
    /// ```
    /// use hyperfabric::fabric::PeerAddress;
    /// let a = PeerAddress {
    ///     host: "h".into(),
    ///     fabric: "f".into(),
    ///     node: "gpu-01".into(),
    ///     tcp: Some("10.0.0.1:7100".parse().unwrap()),
    ///     key_fingerprint: None,
    /// };
    /// assert_eq!(PeerAddress::decode(&a.encode()?)?, a);
    /// # Ok::<(), hyperfabric::Error>(())
    /// ```
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut b = Vec::with_capacity(ADDRESS_MAX);
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        let tcp = self.tcp.map(|a| a.to_string()).unwrap_or_default();
        for part in [&self.host, &self.fabric, &self.node, &tcp] {
            let n = u8::try_from(part.len()).map_err(|_| {
                Error::InvalidArgument(format!(
                    "address blob: a field of {} bytes, at most 255 fit",
                    part.len()
                ))
            })?;
            b.push(n);
            b.extend_from_slice(part.as_bytes());
        }
        match self.key_fingerprint {
            Some(f) => {
                b.push(8);
                b.extend_from_slice(&f);
            }
            None => b.push(0),
        }
        if b.len() > ADDRESS_MAX {
            return Err(Error::InvalidArgument(format!(
                "address blob of {} bytes, at most {ADDRESS_MAX} fit",
                b.len()
            )));
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
        if version != VERSION && version != 1 {
            return Err(bad(&format!(
                "version {version} is not supported (this library reads 1 and {VERSION})"
            )));
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
        let (host, fabric, node) = (part()?, part()?, part()?);
        let tcp_text = if version == 1 { String::new() } else { part()? };
        // What an address blob can hold (a longer one could not be encoded back; a version 1
        // blob gains the two length bytes of the fields it lacks).
        let too_long = || bad(&format!("longer than {ADDRESS_MAX} bytes"));
        let lacks = if version == 1 { 2 } else { 0 };
        if blob.len() - rest.len() + lacks > ADDRESS_MAX {
            return Err(too_long());
        }
        if version == 1 {
            return Ok(PeerAddress {
                host,
                fabric,
                node,
                tcp: None,
                key_fingerprint: None,
            });
        }
        let tcp = match tcp_text.as_str() {
            "" => None,
            a => Some(
                a.parse()
                    .map_err(|_| bad(&format!("{a:?} is not an address and port")))?,
            ),
        };
        let (&n, tail) = rest.split_first().ok_or_else(|| bad("truncated"))?;
        if blob.len() - tail.len() + n as usize > ADDRESS_MAX {
            return Err(too_long());
        }
        let key_fingerprint = match n {
            0 => None,
            8 => Some(*tail.first_chunk::<8>().ok_or_else(|| bad("truncated"))?),
            _ => return Err(bad("a key fingerprint that is not 8 bytes")),
        };
        Ok(PeerAddress {
            host,
            fabric,
            node,
            tcp,
            key_fingerprint,
        })
    }
}

impl HyperFabricProtocol {
    /// The address blob of hosted node `node_id`: what another process passes to
    /// [`insert_peer`](Self::insert_peer) to reach it (MPI, PMIx or a file carry it). At most
    /// [`ADDRESS_MAX`] bytes: magic, version, the host's boot id, the fabric name, the node
    /// id, the address other hosts reach this process at (when it listens, see
    /// [`TcpConfig`](super::TcpConfig)) and the fabric key's fingerprint.
    pub fn node_address(&self, node_id: &str) -> Result<Vec<u8>> {
        self.inner.check_process()?;
        lock(&self.inner.engine).hosted_index(node_id)?;
        PeerAddress {
            host: host_id()?,
            fabric: self.inner.fabric.clone(),
            node: node_id.to_string(),
            tcp: self.inner.tcp.as_ref().and_then(|t| t.advertised()),
            key_fingerprint: self.inner.tcp.as_ref().and_then(|t| t.fingerprint()),
        }
        .encode()
    }

    /// Takes another process's address blob (from [`node_address`](Self::node_address)) and
    /// returns the node id to send to. A node of this host is found in its registry; one of
    /// another host (or of this one, when TCP is forced) is reached by connecting to the
    /// blob's address, which needs this protocol to have TCP configured. Errors:
    /// `InvalidArgumentError` for a blob that does not decode or is of another fabric,
    /// `AuthenticationError` when the blob's key fingerprint is not this protocol's,
    /// `NoRouteFoundError` when the node is on another host and one side has no TCP,
    /// `NodeNotFoundError` when its process no longer hosts it, `IOError` / `TimeoutError`
    /// when the connection fails.
    pub fn insert_peer(&self, blob: &[u8]) -> Result<String> {
        self.inner.check_process()?;
        let a = PeerAddress::decode(blob)?;
        if a.fabric != self.inner.fabric {
            return Err(Error::InvalidArgument(format!(
                "address blob: node {:?} is on fabric {:?}, this protocol on {:?}",
                a.node, a.fabric, self.inner.fabric
            )));
        }
        let tcp = self.inner.tcp.as_ref();
        let same_host = a.host == host_id()?;
        if same_host && !tcp.is_some_and(|t| t.forced()) {
            lock(&self.inner.engine).resolve(&a.node)?;
            return Ok(a.node);
        }
        let Some(t) = tcp else {
            return Err(Error::NoRouteFound(format!(
                "node {:?} is on another host: configure TCP (ProtocolConfig.tcp, or \
                 HF_TRANSPORT=tcp) to reach it",
                a.node
            )));
        };
        let Some(addr) = a.tcp else {
            return Err(Error::NoRouteFound(format!(
                "node {:?} is on another host whose process does not listen for connections",
                a.node
            )));
        };
        if a.key_fingerprint != t.fingerprint() {
            return Err(Error::AuthenticationFailed(format!(
                "address blob of node {:?}: its process holds another fabric key (or none) \
                 than this one",
                a.node
            )));
        }
        if !lock(&self.inner.engine).host_linked(&addr.to_string()) {
            self.connect_host(addr)?;
        }
        self.wait_for_remote(&a.node)?;
        Ok(a.node)
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
            tcp: Some("10.1.2.3:7100".parse().unwrap()),
            key_fingerprint: Some([1, 2, 3, 4, 5, 6, 7, 8]),
        }
    }

    #[test]
    fn round_trips_and_ignores_trailing_bytes() {
        let a = address();
        let mut b = a.encode().unwrap();
        assert!(b.len() <= ADDRESS_MAX);
        assert_eq!(&b[..5], b"HFAD\x02");
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
        let mut v3 = b.clone();
        v3[4] = 3;
        assert!(why(&v3).contains("version 3"));
        // Version 1: no address, no fingerprint.
        let mut v1 = b"HFAD\x01".to_vec();
        for part in ["h", "f", "n"] {
            v1.push(1);
            v1.extend_from_slice(part.as_bytes());
        }
        let one = PeerAddress::decode(&v1).unwrap();
        assert_eq!(
            (one.node.as_str(), one.tcp, one.key_fingerprint),
            ("n", None, None)
        );
        let raw = |addr: &str, fingerprint: &[u8]| {
            let mut v = b"HFAD\x02".to_vec();
            for part in ["h", "f", "n", addr] {
                v.push(part.len() as u8);
                v.extend_from_slice(part.as_bytes());
            }
            v.extend_from_slice(fingerprint);
            v
        };
        assert!(why(&raw("nonsense", &[0])).contains("not an address"));
        assert!(why(&raw(&"x".repeat(250), &[0])).contains("longer than 256"));
        assert!(why(&raw("", &[3, 1, 2, 3])).contains("fingerprint"));
        assert!(why(&raw("", &[8, 1, 2])).contains("truncated"));
        assert!(why(&raw("", &[])).contains("truncated"));
        assert!(PeerAddress::decode(&raw("", &[0])).unwrap().tcp.is_none());
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
