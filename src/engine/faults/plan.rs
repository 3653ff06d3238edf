//! What a fault injector does: a [`FaultPlan`], written as `key=value` pairs separated by
//! commas (the `HF_FAULTS` environment variable, or a configuration's `faults:` section):
//!
//! ```text
//! seed=42,drop=0.01,duplicate=0.001,corrupt=0.001,reorder=0.01,delay=0.01@2ms,
//! links=f>b|a>f,stall=20ms/1s,cut=f>b@2s+1s
//! ```
//!
//! Probabilities are per frame a forwarder passes on; `links` limits them to the hops named
//! (`from>to`, node ids; every hop a forwarder passes frames on when absent); `stall=D/E`
//! stops forwarding for `D` every `E`; `cut=from>to[@start+length]` drops every frame of a
//! hop (from the start, or for `length` from `start` after the injector began).

use crate::error::{Error, Result};
use std::time::Duration;

/// The longest delay a plan may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// A hop `from>to` between two nodes, by id.
pub type Hop = (String, String);

/// The faults an engine injects where it forwards frames.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultPlan {
    /// Seed of every decision: the same seed makes the same decisions for the same frames
    /// of each hop.
    pub seed: u64,
    /// Probability that a frame is dropped.
    pub drop: f64,
    /// Probability that a frame is passed on twice.
    pub duplicate: f64,
    /// Probability that one bit of a frame's payload is flipped.
    pub corrupt: f64,
    /// Probability that a frame is held back until the next frame of its hop has passed
    /// (or 1 ms).
    pub reorder: f64,
    /// Probability that a frame is held back, and for how long.
    pub delay: f64,
    /// How long a delayed frame is held.
    pub delay_by: Duration,
    /// The hops the probabilities apply to (all when empty).
    pub links: Vec<Hop>,
    /// Forwarding stops for `.0` every `.1`.
    pub stall: Option<(Duration, Duration)>,
    /// Hops whose every frame is dropped, from `start` for `length` (forever when `None`).
    pub cut: Vec<(Hop, Option<(Duration, Duration)>)>,
}

impl FaultPlan {
    /// Reads a plan; `Err(ConfigError)` names the part that is wrong.
    pub fn parse(text: &str) -> Result<FaultPlan> {
        let mut p = FaultPlan::default();
        let bad = |part: &str, why: &str| {
            Error::Config(format!("fault plan: `{part}`: {why} (see docs/faults.md)"))
        };
        let mut seen: Vec<&str> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(part, "expected key=value"))?;
            // `links` and `cut` add up; a value given twice is a mistake.
            let key = match k.trim() {
                "dup" => "duplicate",
                other => other,
            };
            if !matches!(key, "links" | "cut") && seen.contains(&key) {
                return Err(bad(part, "given twice"));
            }
            seen.push(key);
            let prob = |v: &str| -> Result<f64> {
                let x: f64 = v.parse().map_err(|_| bad(part, "not a number"))?;
                if !(0.0..=1.0).contains(&x) {
                    return Err(bad(part, "a probability is between 0 and 1"));
                }
                Ok(x)
            };
            match k.trim() {
                "seed" => p.seed = v.parse().map_err(|_| bad(part, "not an integer"))?,
                "drop" => p.drop = prob(v)?,
                "duplicate" | "dup" => p.duplicate = prob(v)?,
                "corrupt" => p.corrupt = prob(v)?,
                "reorder" => p.reorder = prob(v)?,
                "delay" => {
                    let (x, by) = v
                        .split_once('@')
                        .ok_or_else(|| bad(part, "expected delay=P@DURATION"))?;
                    p.delay = prob(x)?;
                    p.delay_by = duration(by).ok_or_else(|| bad(part, "bad duration"))?;
                }
                "links" => {
                    for h in v.split('|') {
                        p.links
                            .push(hop(h).ok_or_else(|| bad(part, "expected from>to"))?);
                    }
                }
                "stall" => {
                    let (d, e) = v
                        .split_once('/')
                        .ok_or_else(|| bad(part, "expected stall=LENGTH/EVERY"))?;
                    let (d, e) = (duration(d), duration(e));
                    match (d, e) {
                        (Some(d), Some(e)) if d < e => p.stall = Some((d, e)),
                        _ => return Err(bad(part, "a stall shorter than its period")),
                    }
                }
                "cut" => {
                    let (h, when) = match v.split_once('@') {
                        Some((h, w)) => {
                            let (s, l) = w
                                .split_once('+')
                                .ok_or_else(|| bad(part, "expected cut=from>to@START+LENGTH"))?;
                            let s = duration(s).ok_or_else(|| bad(part, "bad duration"))?;
                            let l = duration(l).ok_or_else(|| bad(part, "bad duration"))?;
                            (h, Some((s, l)))
                        }
                        None => (v, None),
                    };
                    p.cut
                        .push((hop(h).ok_or_else(|| bad(part, "expected from>to"))?, when));
                }
                _ => return Err(bad(part, "unknown key")),
            }
        }
        p.check()?;
        Ok(p)
    }

    /// Checks a plan (one built in code too): probabilities between 0 and 1 adding up to at
    /// most 1, a stall shorter than its period, cut windows that end.
    pub fn check(&self) -> Result<()> {
        let bad = |why: String| Err(Error::Config(format!("fault plan: {why}")));
        let probs = [
            self.drop,
            self.duplicate,
            self.corrupt,
            self.reorder,
            self.delay,
        ];
        if probs.iter().any(|p| !(0.0..=1.0).contains(p)) {
            return bad("a probability is between 0 and 1".into());
        }
        let total: f64 = probs.iter().sum();
        if total > 1.0 {
            return bad(format!("the probabilities add up to {total} (at most 1)"));
        }
        if let Some((length, every)) = self.stall {
            if length >= every {
                return bad("a stall shorter than its period".into());
            }
        }
        if self.delay_by > MAX_DELAY {
            return bad(format!("a delay of at most {MAX_DELAY:?}"));
        }
        if self
            .cut
            .iter()
            .any(|(_, w)| w.is_some_and(|(s, l)| s.checked_add(l).is_none()))
        {
            return bad("a cut that never ends".into());
        }
        Ok(())
    }

    /// The plan of the `HF_FAULTS` environment variable, if set.
    pub fn from_env() -> Result<Option<FaultPlan>> {
        match std::env::var("HF_FAULTS") {
            Ok(v) if !v.trim().is_empty() => FaultPlan::parse(&v).map(Some),
            _ => Ok(None),
        }
    }
}

impl std::fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed={},drop={},duplicate={},corrupt={},reorder={}",
            self.seed, self.drop, self.duplicate, self.corrupt, self.reorder
        )?;
        if self.delay > 0.0 {
            write!(f, ",delay={}@{}ns", self.delay, self.delay_by.as_nanos())?;
        }
        if !self.links.is_empty() {
            let l: Vec<String> = self.links.iter().map(|(a, b)| format!("{a}>{b}")).collect();
            write!(f, ",links={}", l.join("|"))?;
        }
        if let Some((d, e)) = self.stall {
            write!(f, ",stall={}ns/{}ns", d.as_nanos(), e.as_nanos())?;
        }
        for ((a, b), when) in &self.cut {
            write!(f, ",cut={a}>{b}")?;
            if let Some((s, l)) = when {
                write!(f, "@{}ns+{}ns", s.as_nanos(), l.as_nanos())?;
            }
        }
        Ok(())
    }
}

fn hop(s: &str) -> Option<Hop> {
    let (a, b) = s.trim().split_once('>')?;
    let (a, b) = (a.trim(), b.trim());
    (!a.is_empty() && !b.is_empty() && !b.contains('>')).then(|| (a.to_string(), b.to_string()))
}

/// `500ns`, `250us`, `2ms`, `1s`, or `1.5s`.
fn duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let x: f64 = num.parse().ok()?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(x * scale).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_parses_prints_and_parses_back_the_same() {
        let p = FaultPlan::parse(
            "seed=42, drop=0.01,dup=0.001,corrupt=0.001,reorder=0.02,delay=0.01@2ms,\
             links=f>b|a>f,stall=20ms/1s,cut=f>b@2s+500ms,cut=x>y",
        )
        .unwrap();
        assert_eq!(p.seed, 42);
        assert_eq!(p.duplicate, 0.001);
        assert_eq!(p.delay_by, Duration::from_millis(2));
        assert_eq!(
            p.links,
            vec![("f".into(), "b".into()), ("a".into(), "f".into())]
        );
        assert_eq!(
            p.stall,
            Some((Duration::from_millis(20), Duration::from_secs(1)))
        );
        assert_eq!(p.cut.len(), 2);
        assert_eq!(FaultPlan::parse(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn bad_plans_are_refused_with_the_part_named() {
        for (text, says) in [
            ("drop=2", "between 0 and 1"),
            ("drop=x", "not a number"),
            ("lose=0.1", "unknown key"),
            ("drop", "key=value"),
            ("delay=0.1", "P@DURATION"),
            ("delay=0.1@2parsecs", "bad duration"),
            ("delay=0.1@1e30s", "bad duration"),
            ("delay=0.1@10000000000000000000s", "at most"),
            ("delay=0.1@2h", "bad duration"),
            ("delay=0.1@7200s", "at most"),
            ("delay=0.1@-1s", "bad duration"),
            ("links=ab", "from>to"),
            ("links=a>b>c", "from>to"),
            ("cut=a>b>c", "from>to"),
            ("drop=0.5,drop=0.9", "given twice"),
            ("dup=0.1,duplicate=0.2", "given twice"),
            ("stall=2s/1s", "shorter than its period"),
            ("drop=0.6,corrupt=0.6", "add up"),
        ] {
            let e = FaultPlan::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
