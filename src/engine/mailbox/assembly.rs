//! Messages of several fragments assembled where the receiver wants them: straight into the
//! buffer of `recv_into` (or one allocation for `recv`), fragment by fragment as the sender
//! pushes them, instead of through the engine's reassembly and a copy out of it.
//!
//! An endpoint writes the fragments of a message one after the other into its ring (it has
//! one producer), so the receiver that took the first one keeps the ring and takes the rest
//! as they come: the sender copies a fragment into its chunk while the receiver copies the
//! previous one out, on two cores. A frame that does not continue the message (its sender
//! gave the rest up: a send that timed out midway) ends the assembly and goes the engine's
//! way; so does a sender that stops for [`GAP`] or whose process dies (the fragments that
//! come later are refused by the engine's reassembly, which never saw their start).

use super::plain::Plain;
use super::Sink;
use crate::buffer::Payload;
use crate::engine::{MsgHeader, FLAG_DESCRIPTOR, FLAG_ONE_WAY, MSG_HEADER};
use crate::ring::SlotHeader;
use crate::transport::channel::{Descriptor, SegmentMaps};
use std::time::{Duration, Instant};

/// How long an assembly waits for the next fragment of a live sender.
const GAP: Duration = Duration::from_secs(5);
/// Empty looks at the ring between two reads of the clock while waiting for a fragment.
const LOOKS_PER_CHECK: u32 = 4096;

/// A message being assembled: the header of its first fragment and what came so far.
pub(super) struct Assembly {
    m: MsgHeader,
    /// Bytes that came (the offset the next fragment starts at).
    got: usize,
    /// The message's bytes, for `recv` (a `recv_into` assembles into its buffer).
    owned: Option<Vec<u8>>,
}

/// The bytes of one fragment: inline in the ring, or (descriptor frames) in a buffer of
/// the sender's segment, which the payload returns when dropped.
pub(super) enum Part<'d> {
    Inline(&'d [u8]),
    Shared(Payload),
}

impl Part<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Part::Inline(b) => b,
            Part::Shared(p) => p,
        }
    }
}

/// What the next frame did to an assembly.
pub(super) enum Next {
    /// It continued the message (which may now be whole).
    Continued,
    /// It is no fragment of this message: the assembly ends, the frame goes the engine's way.
    Other,
    /// A fragment outside the sender's own segment: the ring is corrupt.
    Bad(&'static str),
}

/// The fragment of a plain one-way data frame without metadata: its bytes after the message
/// header and, for a descriptor frame, its descriptor; `None` for any other frame.
fn plain_fragment(h: SlotHeader, d: &[u8]) -> Option<(&[u8], Option<Descriptor>)> {
    if h.flags & !FLAG_DESCRIPTOR != FLAG_ONE_WAY || h.aux != 0 || d.len() < MSG_HEADER {
        return None;
    }
    let rest = &d[MSG_HEADER..];
    if h.flags & FLAG_DESCRIPTOR == 0 {
        return Some((rest, None));
    }
    let desc = Descriptor::decode(rest)?;
    (rest.len() == Descriptor::LEN).then_some((rest, Some(desc)))
}

/// The bytes of a fragment from [`plain_fragment`]: inline, or the buffer its descriptor
/// names (taken from the sender's segment); `None` for a buffer that cannot be taken.
fn take_part<'d>(
    (rest, desc): (&'d [u8], Option<Descriptor>),
    segments: &mut SegmentMaps,
    dir: &std::path::Path,
) -> Option<Result<Part<'d>, &'static str>> {
    let Some(desc) = desc else {
        return Some(Ok(Part::Inline(rest)));
    };
    match segments.take(dir, &desc) {
        Ok(p) => Some(Ok(Part::Shared(p))),
        Err(_) if segments.get(&desc.key).is_some() => {
            Some(Err("a descriptor outside its segment"))
        }
        Err(_) => None,
    }
}

impl Plain {
    /// Starts assembling the message whose first fragment is frame (`h`, `d`, header `m`)
    /// into `sink`, when it is a plain one-way data message without metadata that has more
    /// fragments, and the sink takes it whole: a `recv_into` buffer large enough, or `recv`.
    /// `None` otherwise, with nothing taken (the frame then goes its usual way).
    pub(super) fn begin(
        &self,
        (h, d, m): (SlotHeader, &[u8], &MsgHeader),
        segments: &mut SegmentMaps,
        dir: &std::path::Path,
        sink: &mut Sink<'_>,
    ) -> Option<Result<Assembly, &'static str>> {
        if m.offset != 0 {
            return None;
        }
        let fragment = plain_fragment(h, d)?;
        let len = fragment
            .1
            .map_or(fragment.0.len(), |desc| desc.len as usize);
        let total = m.total as usize;
        if len == 0 || len >= total {
            return None;
        }
        let owned = match sink {
            Sink::Buffer { buf, .. } if total <= buf.len() => None,
            Sink::Message(None) => Some(Vec::with_capacity(total)),
            _ => return None,
        };
        let part = match take_part(fragment, segments, dir)? {
            Ok(p) if p.bytes().len() == len => p,
            Ok(_) => return Some(Err("a descriptor whose buffer disagrees with its length")),
            Err(why) => return Some(Err(why)),
        };
        let mut a = Assembly {
            m: *m,
            got: 0,
            owned,
        };
        a.put(part.bytes(), sink);
        Some(Ok(a))
    }

    /// Delivers an assembly whose bytes all came.
    pub(super) fn finish(&self, a: Assembly, sink: &mut Sink<'_>) {
        debug_assert!(a.is_whole());
        match sink {
            Sink::Buffer { got, .. } => *got = Some(self.received(&a.m, a.got, &[])),
            _ => {
                let data = Payload::from_vec(a.owned.unwrap_or_default());
                self.give(sink, &a.m, (&[], &[], Some(data)));
            }
        }
    }
}

impl Assembly {
    /// Whether every byte came.
    pub(super) fn is_whole(&self) -> bool {
        self.got == self.m.total as usize
    }

    /// Copies the next `bytes` of the message into place.
    fn put(&mut self, bytes: &[u8], sink: &mut Sink<'_>) {
        let at = self.got;
        match (&mut self.owned, sink) {
            (Some(v), _) => v.extend_from_slice(bytes),
            (None, Sink::Buffer { buf, .. }) => buf[at..at + bytes.len()].copy_from_slice(bytes),
            _ => unreachable!("started only for a buffer or an owned message"),
        }
        self.got += bytes.len();
    }

    /// Takes frame (`h`, `d`, header `m`) as the next fragment if it is one.
    pub(super) fn next(
        &mut self,
        (h, d, m): (SlotHeader, &[u8], &MsgHeader),
        (segments, dir): (&mut SegmentMaps, &std::path::Path),
        sink: &mut Sink<'_>,
    ) -> Next {
        if m.id != self.m.id || m.total != self.m.total || m.offset as usize != self.got {
            return Next::Other;
        }
        let part = match plain_fragment(h, d).and_then(|f| take_part(f, segments, dir)) {
            Some(Ok(p)) => p,
            Some(Err(why)) => return Next::Bad(why),
            None => return Next::Other,
        };
        let bytes = part.bytes();
        if bytes.is_empty() || bytes.len() > self.m.total as usize - self.got {
            return Next::Other;
        }
        self.put(bytes, sink);
        Next::Continued
    }
}

/// The wait of an assembly for its next fragment: spins, reads the clock every
/// [`LOOKS_PER_CHECK`] empty looks, gives up after [`GAP`] without a fragment or when the
/// ring's producing process `pid` is gone.
pub(super) struct Wait {
    pid: u32,
    looks: u32,
    since: Option<Instant>,
}

impl Wait {
    pub(super) fn new(pid: u32) -> Wait {
        Wait {
            pid,
            looks: 0,
            since: None,
        }
    }

    /// A fragment came.
    pub(super) fn progressed(&mut self) {
        self.looks = 0;
        self.since = None;
    }

    /// The ring was empty: whether to keep waiting.
    pub(super) fn keep_waiting(&mut self) -> bool {
        self.looks += 1;
        if self.looks % LOOKS_PER_CHECK != 0 {
            std::hint::spin_loop();
            return true;
        }
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= GAP {
            return false;
        }
        if self.pid != crate::sys::process::pid() && !crate::sys::process::alive(self.pid, 0) {
            return false;
        }
        std::thread::yield_now();
        true
    }
}

impl super::Mailbox {
    /// Takes the rest of assembly `a` from ring `consumer` (see the module documentation):
    /// `Ok` once the message is in `sink`, or once the assembly ended without it (a frame of
    /// another message, which went to `slow`; a sender gone or stalled; the node closed);
    /// the ring's corruption when a frame its producer cannot have written came.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn assemble(
        &self,
        mut a: Assembly,
        at: &Plain,
        consumer: &mut crate::ring::Consumer<crate::ring::Region>,
        reply: &mut Option<crate::ring::Producer<crate::ring::Region>>,
        (segments, dir): (&mut SegmentMaps, &std::path::Path),
        slow: super::Slow<'_>,
        sink: &mut Sink<'_>,
    ) -> Result<(), crate::ring::Corrupt> {
        let mut wait = Wait::new(at.pid);
        while !a.is_whole() {
            let mut next = None;
            let popped = consumer.try_pop(|h, d| {
                let m = match at.check(h, d) {
                    Ok(m) => m,
                    Err(why) => {
                        next = Some(Next::Bad(why));
                        return;
                    }
                };
                let n = a.next((h, d, &m), (&mut *segments, dir), sink);
                if let Next::Other = n {
                    slow(at.node, h, d, Some(at.via(reply)));
                }
                next = Some(n);
            })?;
            match (popped, next) {
                (Some(()), Some(Next::Continued)) => wait.progressed(),
                (Some(()), Some(Next::Bad(why))) => return Err(consumer.mark_corrupt(why)),
                (Some(()), _) => {
                    self.abandoned
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(());
                }
                (None, _) => {
                    if self.is_closed() || !wait.keep_waiting() {
                        self.abandoned
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return Ok(());
                    }
                }
            }
        }
        at.finish(a, sink);
        Ok(())
    }
}
