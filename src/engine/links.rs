//! What the channels only this process can read carried, per pair of nodes: rings between
//! its own nodes (in its memory, so no other process reads their headers) and its
//! connections to other hosts. Published for operators' tools, and read by learned routing
//! with the probes that timed them.

use super::hosts::ProbeCounts;
use super::Engine;
use crate::transport::stats::LocalLink;

/// A link of this process's nodes that only it can read ([`Engine::own_links`]).
#[derive(Debug, Clone)]
pub(crate) struct OwnLink {
    /// Its counts, as published.
    pub(crate) link: LocalLink,
    /// Its probes; `None` on a connection this engine does not time.
    pub(crate) probes: Option<ProbeCounts>,
}

/// The lanes of a pair's rings, summed: (messages, bytes, slots queued, slots), and probes.
#[derive(Default)]
struct RingTotals {
    counts: [u64; 4],
    answered: u64,
    delay_sum_ns: u64,
}

impl Engine {
    /// Every link only this process can read: its rings between its own nodes (lanes
    /// summed), then its connections to other hosts, each with its probes.
    pub(crate) fn own_links(&mut self) -> Vec<OwnLink> {
        let mut rings: std::collections::BTreeMap<(u32, u32), RingTotals> = Default::default();
        for ((src, dst, _), out) in &self.out {
            if out.is_connection() || !self.hosted.contains_key(dst) {
                continue;
            }
            if let Some((m, b, q, c)) = out.traffic() {
                let r = rings.entry((*src, *dst)).or_default();
                for (acc, v) in r.counts.iter_mut().zip([m, b, q, c]) {
                    *acc = acc.wrapping_add(v);
                }
                let (n, sum) = out.probes().unwrap_or_default();
                r.answered = r.answered.wrapping_add(n);
                r.delay_sum_ns = r.delay_sum_ns.wrapping_add(sum);
            }
        }
        let rings: Vec<_> = rings
            .into_iter()
            .map(|(pair, r)| {
                let p = ProbeCounts {
                    answered: r.answered,
                    delay_sum_ns: r.delay_sum_ns,
                    // A ring's probe on its way shows as slots queued.
                    pending: false,
                    source: 0,
                };
                (pair, r.counts, false, Some(p))
            })
            .collect();
        let connections: Vec<_> = self
            .connection_traffic()
            .into_iter()
            .map(|((s, via), t)| ((s, via), t, true, self.connection_probes(via)))
            .collect();
        rings
            .into_iter()
            .chain(connections)
            .filter_map(
                |((s, d), [messages, bytes, queued_slots, capacity], connection, probes)| {
                    Some(OwnLink {
                        link: LocalLink {
                            src: self.node_id(s)?,
                            dst: self.node_id(d)?,
                            messages,
                            bytes,
                            queued_slots,
                            capacity,
                            connection,
                        },
                        probes,
                    })
                },
            )
            .collect()
    }

    /// What the channels this process alone can read carried, per pair (see
    /// [`Engine::own_links`]).
    pub fn local_links(&mut self) -> Vec<LocalLink> {
        self.own_links().into_iter().map(|l| l.link).collect()
    }
}
