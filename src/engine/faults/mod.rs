//! Built-in fault injection, where an engine forwards frames: drop, duplicate, corrupt,
//! reorder and delay frames on chosen hops with given probabilities, stall forwarding, cut
//! a hop. Off unless a [`FaultPlan`] is given (`HF_FAULTS` or a configuration's `faults:`
//! section; the protocol prints the plan when it starts). Each decision is a function of
//! the seed, the hop's two node ids and how many frames the hop passed before: the same
//! seed makes the same decisions for the same traffic, whatever else the machine does.

mod plan;

use super::{Engine, MSG_HEADER};
use crate::codec::id_tag;
use crate::ring::{PushError, SlotHeader};
use crate::transport::channel::Lane;
pub use plan::{FaultPlan, Hop};
use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frames held back (delayed or reordered) at most, and their bytes; more are dropped
/// instead.
const HELD_MAX: usize = 4096;
const HELD_BYTES: usize = 64 << 20;
/// How long a held frame whose time came may wait for room onward before it is dropped.
const HELD_LIMIT: Duration = Duration::from_secs(5);
/// How long a reordered frame waits for a later frame of its hop.
const REORDER_WAIT: Duration = Duration::from_millis(1);

/// What the injector did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Frames dropped (cut hops included).
    pub dropped: u64,
    /// Frames passed on twice.
    pub duplicated: u64,
    /// Frames passed on with a bit flipped.
    pub corrupted: u64,
    /// Frames held back behind later ones.
    pub reordered: u64,
    /// Frames held back for the plan's delay.
    pub delayed: u64,
    /// Times a frame found forwarding stalled.
    pub stalled: u64,
}

/// What happens to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passed on unharmed.
    Pass,
    /// Dropped.
    Drop,
    /// Passed on twice.
    Duplicate,
    /// Bit `n` (of the payload, modulo its length) flipped.
    Corrupt(u64),
    /// Held until the hop's next frame passed.
    Reorder,
    /// Held for the plan's delay.
    Delay,
    /// Left where it is: forwarding is stalled.
    Stall,
}

/// The injector's decisions: pure, so the same seed reproduces them.
#[derive(Debug)]
pub struct Injector {
    plan: FaultPlan,
    started: Instant,
    /// Frames each hop passed so far.
    seen: HashMap<(u32, u32), u64>,
    counters: FaultCounters,
}

/// SplitMix64's output function: a well-mixed word from any input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Injector {
    /// An injector following `plan`, its clock (for stalls and cuts) starting now.
    pub fn new(plan: FaultPlan) -> Injector {
        Injector {
            plan,
            started: Instant::now(),
            seen: HashMap::default(),
            counters: FaultCounters::default(),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// What the injector did so far.
    pub fn counters(&self) -> FaultCounters {
        self.counters
    }

    /// The fault for the next frame of hop `from` → `to` (node ids `names`, indices
    /// `hop`), at `now`.
    pub fn decide(&mut self, names: (&str, &str), hop: (u32, u32), now: Instant) -> Fault {
        let named = |h: &Hop| h.0 == names.0 && h.1 == names.1;
        let since = now.duration_since(self.started);
        let cut = self.plan.cut.iter().any(|(h, when)| {
            named(h)
                && when.is_none_or(|(start, len)| {
                    since >= start && start.checked_add(len).is_none_or(|end| since < end)
                })
        });
        if cut {
            self.counters.dropped += 1;
            return Fault::Drop;
        }
        if let Some((length, every)) = self.plan.stall {
            if since.as_nanos() % every.as_nanos().max(1) < length.as_nanos() {
                self.counters.stalled += 1;
                return Fault::Stall;
            }
        }
        if !self.plan.links.is_empty() && !self.plan.links.iter().any(named) {
            return Fault::Pass;
        }
        let n = self.seen.entry(hop).or_insert(0);
        let count = *n;
        *n += 1;
        let word = mix(self.plan.seed
            ^ mix((id_tag(names.0) as u64) << 32 | id_tag(names.1) as u64)
            ^ mix(count.wrapping_mul(0x2545_f491_4f6c_dd1d)));
        let u = (word >> 11) as f64 / (1u64 << 53) as f64;
        let p = &self.plan;
        let mut edge = p.drop;
        let fault = if u < edge {
            Fault::Drop
        } else if u < {
            edge += p.duplicate;
            edge
        } {
            Fault::Duplicate
        } else if u < {
            edge += p.corrupt;
            edge
        } {
            Fault::Corrupt(mix(word))
        } else if u < {
            edge += p.reorder;
            edge
        } {
            Fault::Reorder
        } else if u < edge + p.delay {
            Fault::Delay
        } else {
            Fault::Pass
        };
        let c = &mut self.counters;
        match fault {
            Fault::Drop => c.dropped += 1,
            Fault::Duplicate => c.duplicated += 1,
            Fault::Corrupt(_) => c.corrupted += 1,
            Fault::Reorder => c.reordered += 1,
            Fault::Delay => c.delayed += 1,
            Fault::Pass | Fault::Stall => {}
        }
        fault
    }
}

/// A frame held back by the injector.
struct Held {
    release: Instant,
    /// Released as soon as another frame of this hop passed (reordered), else at `release`.
    reorder: bool,
    hop: (u32, u32),
    lane: Lane,
    slot: SlotHeader,
    bytes: Vec<u8>,
}

/// The engine's injector and the frames it holds back.
#[derive(Default)]
pub(super) struct Faults {
    injector: Option<Injector>,
    held: VecDeque<Held>,
    held_bytes: usize,
}

impl Engine {
    /// Injects the faults of `plan` where this engine forwards frames (`None`: none).
    pub fn set_faults(&mut self, plan: Option<FaultPlan>) {
        self.faults = Faults {
            injector: plan.map(Injector::new),
            held: VecDeque::new(),
            held_bytes: 0,
        };
    }

    /// What the fault injector did, when one runs.
    pub fn fault_counters(&self) -> Option<FaultCounters> {
        self.faults.injector.as_ref().map(Injector::counters)
    }

    /// Applies the injector to a frame forwarded from `at` to `next` (`parts` are its
    /// payload): `None` when it passes unharmed (the caller pushes it), else whether it
    /// was left in its ring (a stall, or no room for it).
    pub(super) fn inject(
        &mut self,
        (at, next, lane): (u32, u32, Lane),
        slot: SlotHeader,
        parts: &[&[u8]],
    ) -> Option<bool> {
        self.faults.injector.as_ref()?;
        if slot.flags & super::FLAG_DESCRIPTOR != 0 {
            // Its bytes are a buffer lent by the sender's pool: dropped, doubled or damaged,
            // the buffer would be lost or taken twice.
            return None;
        }
        let now = Instant::now();
        let names = (self.name_of(at), self.name_of(next));
        let injector = self.faults.injector.as_mut().expect("checked above");
        let fault = injector.decide((&names.0, &names.1), (at, next), now);
        let bytes = || parts.concat();
        let push = |e: &mut Engine, bytes: &[u8]| -> std::result::Result<(), PushError> {
            let p = e
                .producer(at, next, lane)
                .map_err(|_| PushError::TooLarge)?;
            p.try_push(slot, &[bytes])?;
            e.registry.ring_bell(next);
            e.counters.frames_sent += 1;
            Ok(())
        };
        match fault {
            Fault::Pass => None,
            Fault::Drop => Some(false),
            Fault::Stall => Some(true),
            Fault::Duplicate => {
                let b = bytes();
                if push(self, &b) == Err(PushError::Full) {
                    return Some(true);
                }
                let _ = push(self, &b);
                Some(false)
            }
            Fault::Corrupt(bit) => {
                let mut b = bytes();
                // Past the message header: a flipped destination would send the frame
                // astray rather than damage it.
                let body = b.len().saturating_sub(MSG_HEADER).max(1);
                let at_bit = (bit % (body as u64 * 8)) as usize;
                let i = (MSG_HEADER + at_bit / 8).min(b.len() - 1);
                b[i] ^= 1 << (at_bit % 8);
                Some(push(self, &b) == Err(PushError::Full))
            }
            Fault::Reorder | Fault::Delay => {
                let len: usize = parts.iter().map(|p| p.len()).sum();
                if self.faults.held.len() < HELD_MAX && self.faults.held_bytes + len <= HELD_BYTES {
                    self.faults.held_bytes += len;
                    let reorder = fault == Fault::Reorder;
                    let by = self.faults.injector.as_ref().expect("set").plan().delay_by;
                    self.faults.held.push_back(Held {
                        release: now
                            .checked_add(if reorder { REORDER_WAIT } else { by })
                            .unwrap_or(now),
                        reorder,
                        hop: (at, next),
                        lane,
                        slot,
                        bytes: bytes(),
                    });
                } else {
                    // Too much held already: dropped instead.
                    let c = &mut self.faults.injector.as_mut().expect("set").counters;
                    c.dropped += 1;
                    match fault {
                        Fault::Reorder => c.reordered -= 1,
                        _ => c.delayed -= 1,
                    }
                }
                Some(false)
            }
        }
    }

    /// Passes on the frames held back whose time came, and those of `passed` waiting for a
    /// later frame of their hop (one just passed). A frame that finds no room waits.
    pub(super) fn release_held(&mut self, passed: Option<(u32, u32)>) {
        if self.faults.held.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut held = std::mem::take(&mut self.faults.held);
        let mut freed = 0;
        held.retain(|h| {
            let due = now >= h.release || (h.reorder && passed == Some(h.hop));
            if !due {
                return true;
            }
            let keep = match self.producer(h.hop.0, h.hop.1, h.lane) {
                Ok(p) => match p.try_push(h.slot, &[&h.bytes]) {
                    Ok(()) => {
                        self.registry.ring_bell(h.hop.1);
                        self.counters.frames_sent += 1;
                        false
                    }
                    // A next hop that takes nothing (or died) does not hold it forever.
                    Err(PushError::Full) => now.duration_since(h.release) < HELD_LIMIT,
                    Err(_) => false,
                },
                Err(_) => false,
            };
            if !keep {
                freed += h.bytes.len();
            }
            keep
        });
        self.faults.held_bytes -= freed;
        held.append(&mut self.faults.held);
        self.faults.held = held;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(plan: &FaultPlan, hops: &[(&str, &str)], frames: usize) -> Vec<Fault> {
        let mut i = Injector::new(plan.clone());
        let now = i.started;
        let mut out = Vec::new();
        for n in 0..frames {
            let (a, b) = hops[n % hops.len()];
            let idx = hops.iter().position(|h| *h == (a, b)).unwrap() as u32;
            out.push(i.decide((a, b), (idx, idx + 100), now));
        }
        out
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions_and_another_seed_others() {
        let plan =
            FaultPlan::parse("seed=7,drop=0.1,duplicate=0.1,corrupt=0.1,reorder=0.1").unwrap();
        let hops = [("a", "f"), ("f", "b")];
        let first = run(&plan, &hops, 20_000);
        assert_eq!(first, run(&plan, &hops, 20_000));
        // Each hop's decisions depend on its own frames only: interleaving differently
        // changes nothing for a hop.
        let alone: Vec<Fault> = run(&plan, &[("f", "b")], 10_000);
        let of_fb: Vec<Fault> = first.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(alone, of_fb);
        let other = FaultPlan {
            seed: 8,
            ..plan.clone()
        };
        assert_ne!(first, run(&other, &hops, 20_000));
        // The rates are the plan's (20,000 frames: within a few standard deviations).
        let drops = first.iter().filter(|f| **f == Fault::Drop).count();
        assert!((1700..2300).contains(&drops), "{drops} drops");
        let passes = first.iter().filter(|f| **f == Fault::Pass).count();
        assert!((11_400..12_600).contains(&passes), "{passes} passes");
    }

    #[test]
    fn links_limit_the_faults_and_a_cut_drops_everything() {
        let plan = FaultPlan::parse("drop=1,links=a>f,cut=x>y").unwrap();
        let mut i = Injector::new(plan);
        let now = i.started;
        assert_eq!(i.decide(("a", "f"), (0, 1), now), Fault::Drop);
        assert_eq!(i.decide(("f", "a"), (1, 0), now), Fault::Pass);
        assert_eq!(i.decide(("x", "y"), (2, 3), now), Fault::Drop);
        let timed = FaultPlan::parse("cut=a>b@1s+1s").unwrap();
        let mut i = Injector::new(timed);
        let t0 = i.started;
        assert_eq!(i.decide(("a", "b"), (0, 1), t0), Fault::Pass);
        let mid = t0 + Duration::from_millis(1500);
        assert_eq!(i.decide(("a", "b"), (0, 1), mid), Fault::Drop);
        let after = t0 + Duration::from_millis(2500);
        assert_eq!(i.decide(("a", "b"), (0, 1), after), Fault::Pass);
    }

    #[test]
    fn a_stall_holds_frames_for_its_length_every_period() {
        let plan = FaultPlan::parse("stall=10ms/100ms").unwrap();
        let mut i = Injector::new(plan);
        let t0 = i.started;
        assert_eq!(i.decide(("a", "b"), (0, 1), t0), Fault::Stall);
        let later = t0 + Duration::from_millis(50);
        assert_eq!(i.decide(("a", "b"), (0, 1), later), Fault::Pass);
        let next = t0 + Duration::from_millis(105);
        assert_eq!(i.decide(("a", "b"), (0, 1), next), Fault::Stall);
        assert_eq!(i.counters().stalled, 2);
    }
}
