//! An endpoint's own ring: made with the endpoint when its destination is a direct neighbour,
//! or later, when its route comes back to the direct link (see [`super::reroute`]). In process
//! memory when this process hosts the destination (handed to its mailbox), else a file of the
//! fabric directory, with the reply ring beside it.

use super::{Path, Peer};
use crate::engine::{Engine, NodeName, Replies, BULK_SLOTS, REPLY_SLOTS};
use crate::error::{Error, Result};
use crate::fabric::Inner;
use crate::ring::{self, Region};
use crate::transport::channel::{endpoint_path, reply_path};
use std::sync::Arc;

/// A ring made for an endpoint.
pub(super) struct OwnRing {
    /// The way in (`Path::Own`).
    pub(super) path: Path,
    /// The process hosting the destination (pid, start time) when it is another process.
    pub(super) owner: Option<(u32, u64)>,
    /// The answers to requests sent through it.
    pub(super) replies: Replies,
}

impl OwnRing {
    /// A ring from hosted node `src` (index, generation) to `dst`, a direct neighbour on this
    /// host, named `source` and `destination`. `NodeNotFoundError` when `dst` left the fabric.
    pub(super) fn make(
        inner: &Inner,
        e: &mut Engine,
        (src, src_generation): (u32, u64),
        dst: Peer,
        (source, destination): (&NodeName, &NodeName),
    ) -> Result<OwnRing> {
        if let Some(mb) = e.mailbox_of(dst.index) {
            let (producer, consumer) = ring::split(Arc::new(Region::heap(BULK_SLOTS)?));
            let (answer, answers) = ring::split(Arc::new(Region::heap(REPLY_SLOTS)?));
            mb.hand_over((src, *source, consumer, Some(answer)));
            return Ok(OwnRing {
                path: Path::Own {
                    producer,
                    file: None,
                },
                owner: None,
                replies: Replies::new(answers, dst, None),
            });
        }
        let entry = inner
            .registry
            .get(dst.index)
            .filter(|x| {
                x.generation == dst.generation
                    && crate::sys::process::alive(x.owner_pid, x.owner_start)
            })
            .ok_or_else(|| Error::NodeNotFound(format!("node {destination} left the fabric")))?;
        let n = crate::fabric::next_ring_number();
        let file = endpoint_path(
            inner.registry.dir(),
            (src, dst.index, dst.generation),
            crate::sys::process::pid(),
            n,
        );
        // The reply ring first: the destination opens it with the endpoint ring.
        let answers = reply_file(&file, (src, src_generation))?;
        let _ = std::fs::remove_file(&file);
        let region = Region::create_file(&file, BULK_SLOTS)?;
        stamp(&region, (dst.index, dst.generation));
        inner.registry.bump_channels_epoch();
        let owner = (entry.owner_pid, entry.owner_start);
        let region = Arc::new(region);
        Ok(OwnRing {
            path: Path::Own {
                producer: ring::split(region.clone()).0,
                file: Some(file),
            },
            owner: Some(owner),
            replies: Replies::new(answers, dst, Some(owner)).with_request_ring(region),
        })
    }
}

/// Stamps a ring with the node (index, registration) it is made for.
fn stamp(region: &Region, (index, generation): (u32, u64)) {
    let h = region.header();
    h.destination_generation
        .store(generation, std::sync::atomic::Ordering::Relaxed);
    h.destination
        .store(u64::from(index) + 1, std::sync::atomic::Ordering::Release);
}

/// Makes the reply ring beside endpoint ring `file`, stamped with the requesting node, and
/// returns its reading end.
fn reply_file(file: &std::path::Path, src: (u32, u64)) -> Result<ring::Consumer<Region>> {
    let path = reply_path(file)
        .ok_or_else(|| Error::InvalidArgument(format!("{} is no endpoint ring", file.display())))?;
    let _ = std::fs::remove_file(&path);
    let region = Region::create_file(&path, REPLY_SLOTS)?;
    stamp(&region, src);
    Ok(ring::split(Arc::new(region)).1)
}
