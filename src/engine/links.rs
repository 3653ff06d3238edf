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
    /// Of its slots queued, those in endpoints' rings (and their reply rings): each is one
    /// sender's, and delays only that sender's later messages.
    pub(crate) private_queued_slots: u64,
}

/// The rings of a pair, summed: (messages, bytes, slots queued, slots), probes, and which
/// rings they were.
#[derive(Default)]
struct RingTotals {
    counts: [u64; 4],
    answered: u64,
    delay_sum_ns: u64,
    source: u64,
    /// Slots queued in endpoints' rings.
    private_queued: u64,
}

impl RingTotals {
    fn add(&mut self, counts: [u64; 4], (n, sum): (u64, u64)) {
        for (acc, v) in self.counts.iter_mut().zip(counts) {
            *acc = acc.wrapping_add(v);
        }
        self.answered = self.answered.wrapping_add(n);
        self.delay_sum_ns = self.delay_sum_ns.wrapping_add(sum);
    }
}

/// A ring's identity spread over 64 bits (splitmix64's finaliser): summed over a pair's
/// rings, it names the set, so counts of two sets are never compared.
fn spread(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
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
                let probes = out.probes().unwrap_or_default();
                rings
                    .entry((*src, *dst))
                    .or_default()
                    .add([m, b, q, c], probes);
            }
        }
        // Endpoints' rings between its own nodes, and their reply rings.
        for mb in &self.mailboxes {
            for t in mb.memory_traffic() {
                let r = rings.entry(t.pair).or_default();
                r.add(t.counts, (0, 0));
                r.private_queued = r.private_queued.wrapping_add(t.counts[2]);
                r.source = r.source.wrapping_add(spread(t.ring));
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
                    source: r.source,
                };
                (pair, r.counts, false, Some(p), r.private_queued)
            })
            .collect();
        let connections: Vec<_> = self
            .connection_traffic()
            .into_iter()
            .map(|((s, via), t)| ((s, via), t, true, self.connection_probes(via), 0))
            .collect();
        rings
            .into_iter()
            .chain(connections)
            .filter_map(
                |(
                    (s, d),
                    [messages, bytes, queued_slots, capacity],
                    connection,
                    probes,
                    private,
                )| {
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
                        private_queued_slots: private,
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
