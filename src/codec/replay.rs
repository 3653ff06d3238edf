//! Replay protection for sealed frames: a sliding window over each sender's 64-bit nonce
//! counter, as IPsec (RFC 4303 §3.4.3) and DTLS keep one.
//!
//! Windows are kept per stream: (origin node index, destination node index, lane class).
//! Frames of one stream travel in order through one ring, so they arrive almost in order: a
//! message sealed first may still complete after later ones when its fragments interleave with
//! theirs or when two threads seal and push in opposite orders. A counter is accepted once,
//! and only while it is above `highest - WINDOW`.
//!
//! Each frame also names its sender's registration generation (authenticated with it). A
//! sender that registers again (after a restart, or unregistering and registering the node
//! again) has a higher generation and a fresh random counter: its first authentic frame
//! restarts the window. Frames of a lower generation than the window's are refused, so frames
//! captured from an earlier registration cannot be replayed after the sender came back.
//!
//! The window moves only for frames that authenticated: a forged frame can neither advance
//! it nor mark a counter as seen.

use rustc_hash::FxHashMap as HashMap;

/// Counters a window remembers below the highest one seen.
pub const WINDOW: u64 = 2048;
const WORDS: usize = (WINDOW / 64) as usize;

/// One stream of sealed frames: who sent them, to whom, on which lane class (0 latency, 1
/// bulk). The lane class is taken from the authenticated header, not from the ring the frame
/// came through, so moving a frame to the other lane's ring does not escape its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stream {
    /// Sending node index (the nonce's sender index).
    pub origin: u32,
    /// Receiving node index.
    pub destination: u32,
    /// 0 latency lane, 1 bulk lane.
    pub class: u8,
}

/// Why a counter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Already accepted once.
    Seen,
    /// `WINDOW` or more below the highest counter accepted.
    TooOld,
    /// From an earlier registration of the sender than the one the window follows.
    EarlierRegistration,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Seen => "its counter was already seen (replayed)",
            Refusal::TooOld => "its counter is below the replay window (replayed or too late)",
            Refusal::EarlierRegistration => {
                "it comes from an earlier registration of its sender (replayed)"
            }
        })
    }
}

/// The window of one stream. Bit `c % WINDOW` of `bits` says whether counter `c` was seen,
/// for `highest - WINDOW < c <= highest`.
#[derive(Debug, Clone)]
struct Window {
    generation: u64,
    highest: u64,
    bits: [u64; WORDS],
}

impl Window {
    fn new(generation: u64, counter: u64) -> Window {
        let mut w = Window {
            generation,
            highest: counter,
            bits: [0; WORDS],
        };
        w.set(counter);
        w
    }

    fn bit(counter: u64) -> (usize, u64) {
        let i = counter % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn set(&mut self, counter: u64) {
        let (w, m) = Window::bit(counter);
        self.bits[w] |= m;
    }

    fn check(&self, counter: u64) -> Result<(), Refusal> {
        if counter > self.highest {
            return Ok(());
        }
        if self.highest - counter >= WINDOW {
            return Err(Refusal::TooOld);
        }
        let (w, m) = Window::bit(counter);
        if self.bits[w] & m != 0 {
            Err(Refusal::Seen)
        } else {
            Ok(())
        }
    }

    fn accept(&mut self, counter: u64) {
        if counter > self.highest {
            let ahead = counter - self.highest;
            if ahead >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                // The counters between the old highest and the new one were not seen.
                for c in self.highest + 1..counter {
                    let (w, m) = Window::bit(c);
                    self.bits[w] &= !m;
                }
            }
            self.highest = counter;
        }
        self.set(counter);
    }
}

/// The replay windows of one receiver, by stream. Entries are made only for frames that
/// authenticated, so their number is bounded by the streams of key holders.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    windows: HashMap<Stream, Window>,
    refused: u64,
}

impl ReplayGuard {
    /// Whether a frame of `stream` from registration `generation` with `counter` may be
    /// opened (nothing is recorded: call [`ReplayGuard::accept`] once it authenticated).
    pub fn check(&self, stream: Stream, generation: u64, counter: u64) -> Result<(), Refusal> {
        match self.windows.get(&stream) {
            None => Ok(()),
            Some(w) if generation < w.generation => Err(Refusal::EarlierRegistration),
            Some(w) if generation > w.generation => Ok(()),
            Some(w) => w.check(counter),
        }
    }

    /// Records an authentic frame: a newer registration restarts the stream's window.
    pub fn accept(&mut self, stream: Stream, generation: u64, counter: u64) {
        match self.windows.get_mut(&stream) {
            Some(w) if w.generation == generation => w.accept(counter),
            Some(w) if w.generation > generation => {}
            _ => {
                self.windows
                    .insert(stream, Window::new(generation, counter));
            }
        }
    }

    /// Counts a refused frame.
    pub fn count_refusal(&mut self) {
        self.refused += 1;
    }

    /// Frames refused as replays so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Stream = Stream {
        origin: 1,
        destination: 2,
        class: 0,
    };

    fn take(g: &mut ReplayGuard, stream: Stream, generation: u64, c: u64) -> Result<(), Refusal> {
        g.check(stream, generation, c)?;
        g.accept(stream, generation, c);
        Ok(())
    }

    #[test]
    fn each_counter_once_and_only_inside_the_window() {
        let mut g = ReplayGuard::default();
        let start = u64::MAX / 3;
        for c in start..start + 5000 {
            assert_eq!(take(&mut g, S, 1, c), Ok(()));
            assert_eq!(take(&mut g, S, 1, c), Err(Refusal::Seen), "{c}");
        }
        let top = start + 4999;
        assert_eq!(take(&mut g, S, 1, top - WINDOW), Err(Refusal::TooOld));
        assert_eq!(take(&mut g, S, 1, top - WINDOW + 1), Err(Refusal::Seen));
        assert_eq!(take(&mut g, S, 1, start), Err(Refusal::TooOld));
    }

    #[test]
    fn late_frames_inside_the_window_are_accepted_once() {
        let mut g = ReplayGuard::default();
        // Counters 100..200 arrive with every third one late, after 20 later ones.
        let mut late = Vec::new();
        for c in 100..200u64 {
            if c % 3 == 0 {
                late.push(c);
            } else {
                take(&mut g, S, 1, c).unwrap();
            }
        }
        for &c in &late {
            assert_eq!(take(&mut g, S, 1, c), Ok(()), "{c}");
        }
        for &c in &late {
            assert_eq!(take(&mut g, S, 1, c), Err(Refusal::Seen), "{c}");
        }
        // A jump of more than the window forgets everything below it.
        take(&mut g, S, 1, 200 + 3 * WINDOW).unwrap();
        assert_eq!(take(&mut g, S, 1, 199), Err(Refusal::TooOld));
        // Skipped counters just behind a jump are still open, once.
        let top = 200 + 3 * WINDOW;
        take(&mut g, S, 1, top + 10).unwrap();
        assert_eq!(take(&mut g, S, 1, top + 5), Ok(()));
        assert_eq!(take(&mut g, S, 1, top + 5), Err(Refusal::Seen));
        assert_eq!(take(&mut g, S, 1, top), Err(Refusal::Seen));
    }

    #[test]
    fn a_new_registration_restarts_the_window_and_old_ones_stay_out() {
        let mut g = ReplayGuard::default();
        take(&mut g, S, 4, 1_000_000).unwrap();
        // The sender registered again with a fresh counter far below the old one.
        assert_eq!(take(&mut g, S, 5, 7), Ok(()));
        assert_eq!(take(&mut g, S, 5, 8), Ok(()));
        assert_eq!(take(&mut g, S, 5, 7), Err(Refusal::Seen));
        // Frames of the earlier registration, old or not, are refused.
        assert_eq!(
            take(&mut g, S, 4, 1_000_001),
            Err(Refusal::EarlierRegistration)
        );
        // Streams are separate: another destination or lane has its own window.
        for other in [
            Stream {
                destination: 3,
                ..S
            },
            Stream { class: 1, ..S },
            Stream { origin: 9, ..S },
        ] {
            assert_eq!(take(&mut g, other, 5, 7), Ok(()));
        }
    }

    #[test]
    fn check_records_nothing() {
        let mut g = ReplayGuard::default();
        assert_eq!(g.check(S, 1, 10), Ok(()));
        assert_eq!(g.check(S, 1, 10), Ok(()));
        g.accept(S, 1, 10);
        assert_eq!(g.check(S, 1, 10), Err(Refusal::Seen));
        g.count_refusal();
        assert_eq!(g.refused(), 1);
    }
}
