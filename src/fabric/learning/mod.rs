//! Learned routing from live traffic (`enable_ml_routing`): a thread of the protocol samples
//! the host's links every [`SAMPLE_EVERY`], learns per link what its queueing delay will be
//! at a given load ([`LinkLearner`]), and hands fresh link latencies to the route service
//! when the hysteresis ([`RouteHold`]) says routes may move.
//!
//! A sample of a link direction `a -> b` reads the headers of its rings in the fabric
//! directory, whichever process drives them (the engines' two lanes `ch-<a>-<b>-l` and
//! `ch-<a>-<b>-b`, each endpoint's ring, the reply rings of endpoints from `b`, direct
//! channels): the traffic counts (bytes, a descriptor counting the data it hands over), the
//! slots queued, and the timing probes the receiver completed since the last sample
//! ([`crate::ring::Probe`]). No engine does more per message for it: producers mark a probe
//! once a millisecond when something waits, receivers complete it when they publish their
//! position. A ring of one sender (an endpoint's, its reply ring, a direct channel) gives its
//! bytes, not its queue: what waits in it delays only that sender (see
//! [`reading::private`]).
//!
//! The links this process's engine alone sees are read from it: rings between its own
//! nodes, in its memory (the engine's and its endpoints'), and its connections to other
//! hosts. While it learns, the engine
//! times each connection with an echo queued behind its data (`engine::hosts::timing`): the
//! round trip above the smallest one lately is the connection's queueing delay.
//!
//! A link's learned latency is its base (the latency reported by `update_link_metrics`, else
//! the declared one) plus the larger prediction of its two directions.
//!
//! The ring headers are written by other processes: every count is a difference of two
//! readings, checked for going backwards (a ring made anew), and a mean probe delay beyond a
//! minute is not taken.

mod reading;

use super::{lock, Inner};
use crate::error::{Error, Result};
use crate::routing::{HoldRules, LinkLearner, Metric, ModelErrors, RouteHold, Search, SearchOrder};
use reading::{own_links, Reading, RingFile};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often links are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// What learned routing did and how well its models predict (see
/// [`super::HyperFabricProtocol::learned_routing`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LearnedRouting {
    /// Samples taken (one per [`SAMPLE_EVERY`] while links are known).
    pub samples: u64,
    /// Times fresh latencies were handed to the route service.
    pub handovers: u64,
    /// (source, destination) pairs of this process's nodes whose route changed at a
    /// hand-over, summed over hand-overs.
    pub route_changes: u64,
    /// Samples with a measured delay, each scored on both models before they learned from
    /// it (of every link direction, also those since gone).
    pub scored: u64,
    /// Mean absolute error of the learned models over those samples, ns.
    pub learned_error_ns: f64,
    /// Mean absolute error of the fixed M/M/1 model over the same samples, ns.
    pub fixed_error_ns: f64,
    /// Each link direction sampled at the last sample.
    pub links: Vec<LearnedLink>,
}

/// One link direction as learned routing last saw it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LearnedLink {
    /// Sending node.
    pub src: String,
    /// Receiving node.
    pub dst: String,
    /// The link's declared capacity, Gbit/s.
    pub capacity_gbps: f64,
    /// Utilisation of the declared capacity over the last interval.
    pub utilisation: f64,
    /// Bytes queued when last sampled.
    pub queued_bytes: f64,
    /// Mean queueing delay the probes measured in the last interval, ns.
    pub measured_delay_ns: Option<f64>,
    /// Queueing delay predicted at the last sample's load, ns.
    pub predicted_delay_ns: f64,
    /// Whether the prediction is the learned model's (else the fixed M/M/1 one's).
    pub learned: bool,
    /// The errors of both models on this direction's samples.
    pub errors: ModelErrors,
}

/// The sampling thread.
pub(super) struct Learner {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Learner {
    pub(super) fn start(inner: Weak<Inner>, report: Arc<Mutex<LearnedRouting>>) -> Result<Learner> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hf-learn".into())
            .spawn(move || {
                let mut state = State::new();
                let mut next = Instant::now();
                while !flag.load(Ordering::Acquire) {
                    let now = Instant::now();
                    if now >= next {
                        let Some(inner) = inner.upgrade() else { return };
                        // A failed sample (the fabric directory unreadable) is skipped.
                        let _ = state.sample(&inner, &report, now);
                        next = now + SAMPLE_EVERY;
                    }
                    // Woken early by `stop`.
                    std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
                }
            })
            .map_err(|e| Error::io("starting the learned routing thread", e))?;
        Ok(Learner { stop, thread })
    }

    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

struct State {
    /// Registry index of each node id, as of registry nodes epoch `index_epoch`.
    index: HashMap<String, u32>,
    /// Registration generation and owning process of each index, as of the same epoch.
    registrations: HashMap<u32, (u64, u32)>,
    index_epoch: Option<u64>,
    /// Errors of every model over every scored sample, also of models since dropped:
    /// (samples, learned sum, fixed sum), ns.
    scored: (u64, f64, f64),
    last: HashMap<(String, String), Reading>,
    /// The ring files of each direction (channel lanes, endpoints' rings and their reply
    /// rings, direct channels), as of the registry's channels epoch `channels_epoch`.
    rings: HashMap<(u32, u32), Vec<RingFile>>,
    /// How many more of them may be kept open ([`reading::KEPT_OPEN`] when listed).
    open: std::cell::Cell<usize>,
    channels_epoch: u64,
    /// Each link's fresh latency when routes were last weighed, ns, and whether that
    /// weighing found a pair that wants to move.
    weighed: HashMap<(String, String), u64>,
    wanting: bool,
    models: HashMap<(String, String), LinkLearner>,
    hold: RouteHold,
    search: Search,
}

/// Largest latency learned routing gives a link, ns (1,000 s): sums over long paths stay
/// far from the searches' mark of an unreached node.
const MAX_LEARNED_NS: u64 = 1_000_000_000_000;

impl State {
    fn new() -> State {
        State {
            index: HashMap::new(),
            registrations: HashMap::new(),
            index_epoch: None,
            scored: (0, 0.0, 0.0),
            last: HashMap::new(),
            rings: Default::default(),
            open: std::cell::Cell::new(reading::KEPT_OPEN),
            channels_epoch: u64::MAX,
            weighed: HashMap::new(),
            wanting: false,
            models: HashMap::new(),
            hold: RouteHold::new(HoldRules::default()),
            search: Search::new(0),
        }
    }

    fn sample(
        &mut self,
        inner: &Inner,
        report: &Mutex<LearnedRouting>,
        now: Instant,
    ) -> Result<()> {
        super::topology::sync_topology(inner)?;
        let links = inner.topology.read(|t| t.links());
        let mut fresh: HashMap<(String, String), u64> = HashMap::new();
        // Whether some link's fresh latency moved by more than a tenth (and 1 us) since routes
        // were last weighed: else, unless that weighing wanted a move (whose saving must be
        // seen to last), no route gains anything new and pairs are not weighed again.
        let mut moved = false;
        let mut seen = Vec::new();
        let mut read = std::collections::HashSet::new();
        // The registry is listed again only when its nodes changed (a listing reads every
        // entry, and checks its owner's liveness in /proc).
        let epoch = inner.registry.nodes_epoch();
        if self.index_epoch != Some(epoch) {
            let entries = inner.registry.list()?;
            self.registrations = entries
                .iter()
                .map(|e| (e.index, (e.generation, e.owner_pid)))
                .collect();
            self.index = entries
                .into_iter()
                .map(|e| (e.signature.node_id, e.index))
                .collect();
            self.index_epoch = Some(epoch);
        }
        // The directory is read again only when channels came or went.
        if let Some(rd) = inner.registry.channels_changed(&mut self.channels_epoch) {
            self.rings.clear();
            self.open.set(reading::KEPT_OPEN);
            for e in rd.flatten() {
                let name = e.file_name();
                if let Some((pair, f)) = name.to_str().and_then(|n| RingFile::of(n, e.path())) {
                    self.rings.entry(pair).or_default().push(f);
                }
            }
        }
        // Links of this process's own nodes without a ring file (rings in its memory, and
        // connections to other hosts) are read from its engine, once per sample.
        let mut own: Option<HashMap<(String, String), Reading>> = None;
        for l in links.iter().filter(|l| l.up) {
            let base = if l.metrics.samples > 0 {
                l.metrics.ewma_latency_ns.max(0.0).round() as u64
            } else {
                l.latency_ns
            };
            let mut worst: Option<f64> = None;
            for (s, d) in [(&l.a, &l.b), (&l.b, &l.a)] {
                let ring = match (self.index.get(s), self.index.get(d)) {
                    (Some(&si), Some(&di)) => self.rings.get(&(si, di)).and_then(|files| {
                        Reading::of_files(files, &self.open, &self.registrations, (si, di), now)
                    }),
                    _ => None,
                };
                // Both, where a direction has rings in files and rings or a connection only
                // this process reads (two of its nodes with a direct channel, say): no ring
                // is both.
                let engine = own
                    .get_or_insert_with(|| own_links(inner, now))
                    .get(&(s.clone(), d.clone()))
                    .copied();
                let reading = match (ring, engine) {
                    (Some(a), Some(b)) => Some(a.with(&b)),
                    (a, b) => a.or(b),
                };
                let Some(reading) = reading else { continue };
                let key = (s.clone(), d.clone());
                read.insert(key.clone());
                let before = self.last.insert(key.clone(), reading);
                let Some(sample) = before.and_then(|b| reading.load_since(&b, l.bandwidth_gbps))
                else {
                    continue;
                };
                let model = self
                    .models
                    .entry(key)
                    .or_insert_with(|| LinkLearner::new(l.bandwidth_gbps));
                if let Some((learned, fixed)) = model.observe(&sample) {
                    self.scored.0 += 1;
                    self.scored.1 += learned;
                    self.scored.2 += fixed;
                }
                let predicted = model.predict_ns(&sample);
                worst = Some(worst.map_or(predicted, |w: f64| w.max(predicted)));
                seen.push(LearnedLink {
                    src: s.clone(),
                    dst: d.clone(),
                    capacity_gbps: l.bandwidth_gbps,
                    utilisation: sample.utilisation,
                    queued_bytes: sample.queued_bytes,
                    measured_delay_ns: sample.delay_ns,
                    predicted_delay_ns: predicted,
                    learned: model.trusted(),
                    errors: model.errors(),
                });
            }
            if let Some(w) = worst {
                // A reported loss rate costs retransmissions, as in the formula over reported
                // figures.
                let loss = if l.metrics.samples > 0 {
                    l.metrics.loss_rate.clamp(0.0, 0.9)
                } else {
                    0.0
                };
                let ns = ((base as f64 + w) / (1.0 - loss)).min(MAX_LEARNED_NS as f64) as u64;
                let key = ordered(&l.a, &l.b);
                let then = self.weighed.get(&key).copied().unwrap_or(base);
                moved |= ns.abs_diff(then) > (then / 10).max(1_000);
                fresh.insert(key, ns);
            }
        }
        let (handed, changes) = if moved || self.wanting {
            self.maybe_hand_over(inner, &links, &fresh, now)?
        } else {
            self.hold.decide(now, false);
            (false, 0)
        };
        // Links and nodes that went away are forgotten.
        self.models.retain(|k, _| read.contains(k));
        self.last.retain(|k, _| read.contains(k));
        let mut r = lock(report);
        r.samples += 1;
        let (n, learned, fixed) = self.scored;
        r.scored = n;
        if n > 0 {
            r.learned_error_ns = learned / n as f64;
            r.fixed_error_ns = fixed / n as f64;
        }
        r.handovers += handed as u64;
        r.route_changes += changes;
        seen.sort_by(|a, b| (&a.src, &a.dst).cmp(&(&b.src, &b.dst)));
        r.links = seen;
        Ok(())
    }

    /// Hands `fresh` to the route service if the hysteresis says so: whether it did, and how
    /// many pairs of this process's nodes changed route.
    fn maybe_hand_over(
        &mut self,
        inner: &Inner,
        links: &[crate::topology::LinkView],
        fresh: &HashMap<(String, String), u64>,
        now: Instant,
    ) -> Result<(bool, u64)> {
        let routing = inner.topology.routing();
        let tables = routing.current_tables()?;
        let g = tables
            .graph()
            .with_link_latencies(|a, b| fresh.get(&ordered(a, b)).copied());
        let n = g.node_count() as u32;
        let mut wanted = false;
        'pairs: for &s in tables.sources() {
            self.search.run(&g, s, SearchOrder::Latency, 0.0, None);
            for d in (0..n).filter(|&d| d != s && self.search.reached(d)) {
                let best = self.search.latency_ns[d as usize];
                let Some(current) = tables
                    .path(s, d, Metric::Latency)
                    .and_then(|p| g.path_latency(&p))
                else {
                    continue;
                };
                if self.hold.wants_move(current, best) {
                    wanted = true;
                    break 'pairs;
                }
            }
        }
        self.weighed = fresh.clone();
        self.wanting = wanted;
        if !self.hold.decide(now, wanted) {
            return Ok((false, 0));
        }
        self.wanting = false;
        let first_hops = |t: &crate::routing::RoutingTables| {
            let mut hops = Vec::new();
            for &s in t.sources() {
                for d in 0..t.graph().node_count() as u32 {
                    let hop = t
                        .path(s, d, Metric::Latency)
                        .and_then(|p| p.get(1).copied());
                    hops.push((
                        (t.graph().id(s).to_string(), t.graph().id(d).to_string()),
                        hop,
                    ));
                }
            }
            hops
        };
        let before: HashMap<_, _> = first_hops(&tables).into_iter().collect();
        // Links without a fresh figure (their rings are gone) go back to the figures reported
        // or declared for them.
        let update: Vec<(String, String, Option<u64>)> = links
            .iter()
            .map(|l| {
                let key = ordered(&l.a, &l.b);
                let ns = fresh.get(&key).copied();
                (key.0, key.1, ns)
            })
            .collect();
        // New sends take the new routes: the change bumps the routes' generation, so the
        // engine asks for its next hops anew (its router waits for the tables that hold them).
        routing.set_learned_latencies(&update)?;
        inner.routes_moved();
        // Counted on the tables once rebuilt (a rebuild for another change since the
        // weighing would be counted with it).
        let changed = routing.current_tables().map_or(0, |after| {
            first_hops(&after)
                .into_iter()
                .filter(|(pair, hop)| {
                    let id = |h: &Option<u32>| h.map(|i| after.graph().id(i).to_string());
                    let was = before
                        .get(pair)
                        .map(|h| h.map(|i| tables.graph().id(i).to_string()));
                    was.is_some_and(|w| w != id(hop))
                })
                .count() as u64
        });
        Ok((true, changed))
    }
}

fn ordered(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}
