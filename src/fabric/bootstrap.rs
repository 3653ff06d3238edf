//! Bootstrap through PMIx: a process started by `srun`, `prterun` or Open MPI's `mpirun`
//! publishes the address blobs of the nodes it hosts under its rank, waits at a fence for
//! every process of the job, and takes every other process's blobs, without any MPI call.

use super::{lock, HyperFabricProtocol};
use crate::error::{Error, Result};

/// The PMIx key this library's blobs are published under.
pub const PMIX_KEY: &str = "hyperfabric.nodes";

/// Blobs packed one after another, each after its length (u16 LE).
fn pack(blobs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in blobs {
        out.extend_from_slice(&(b.len() as u16).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// The blobs of [`pack`]; `InvalidArgumentError` for bytes that are not.
#[cfg_attr(not(feature = "pmix"), allow(dead_code))]
fn unpack(mut b: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let bad = || Error::InvalidArgument("PMIx: a node list that does not decode".into());
        let (n, rest) = b.split_first_chunk::<2>().ok_or_else(bad)?;
        let (blob, rest) = rest
            .split_at_checked(u16::from_le_bytes(*n) as usize)
            .ok_or_else(bad)?;
        out.push(blob);
        b = rest;
    }
    Ok(out)
}

impl HyperFabricProtocol {
    /// Finds the nodes of every other process of a job started by a PMIx launcher: puts the
    /// address blobs of the nodes this protocol hosts (register them first) with `PMIx_Put`,
    /// commits, waits at a fence of the whole job, gets every other rank's blobs and inserts
    /// them ([`insert_peer`](Self::insert_peer): nodes on other hosts are reached over TCP,
    /// which must be configured). Returns their node ids. `ConfigError` when the library was
    /// built without the `pmix` feature or the process was not started by a PMIx launcher.
    pub fn bootstrap_pmix(&self) -> Result<Vec<String>> {
        self.inner.check_process()?;
        let ids = lock(&self.inner.engine).hosted_ids();
        let blobs = ids
            .iter()
            .map(|id| self.node_address(id))
            .collect::<Result<Vec<_>>>()?;
        self.exchange_pmix(&pack(&blobs))
    }

    #[cfg(feature = "pmix")]
    fn exchange_pmix(&self, mine: &[u8]) -> Result<Vec<String>> {
        let c = crate::sys::pmix::Client::init()?;
        c.put(PMIX_KEY, mine)?;
        c.commit()?;
        c.fence()?;
        let mut found = Vec::new();
        for rank in (0..c.job_size()?).filter(|&r| r != c.rank()) {
            let theirs = c.get_bytes(rank, PMIX_KEY)?;
            for blob in unpack(&theirs)? {
                found.push(self.insert_peer(blob)?);
            }
        }
        Ok(found)
    }

    #[cfg(not(feature = "pmix"))]
    fn exchange_pmix(&self, _: &[u8]) -> Result<Vec<String>> {
        Err(Error::Config(
            "this library was built without PMIx (cargo feature `pmix`)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_pack_and_unpack() {
        let blobs = vec![vec![1u8, 2, 3], vec![], vec![9u8; 300]];
        let packed = pack(&blobs);
        let back: Vec<Vec<u8>> = unpack(&packed)
            .unwrap()
            .iter()
            .map(|b| b.to_vec())
            .collect();
        assert_eq!(back, blobs);
        assert!(unpack(&packed[..packed.len() - 1]).is_err());
        assert!(unpack(&[5]).is_err());
        assert!(unpack(&[]).unwrap().is_empty());
    }
}
