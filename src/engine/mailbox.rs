//! A hosted node's mailbox: what `recv` takes from without the engine lock.
//!
//! Two sources feed it. Endpoint rings (`ep-<src>-<dst>-<pid>-<n>.<generation>`, one per endpoint, so one
//! producer each) are polled by whichever thread holds the mailbox's [`SpinLock`]: a thread
//! in `recv`, or the engine, which only ever *tries* the lock. A plain frame (one fragment,
//! inline or by descriptor, no codec frame, no delivery check) becomes a [`Message`] right
//! there; any other frame goes to the engine's dispatch through a callback the poller gives.
//! The second source is the queue: messages the engine delivered (its own rings, and the
//! frames it dispatched). The queue is lock-free, bounded like [`super::inbox`]'s was: past
//! [`INBOX_BYTES`] or [`INBOX_MESSAGES`] the engine stops reading the node's rings.
//!
//! Lock order: a mailbox lock may be held while taking the engine lock, never the reverse
//! (the engine only tries mailbox locks), so the two never wait for each other.

mod assembly;
mod compact;
mod plain;
mod sink;
mod traffic;

pub(crate) use plain::{hand, hand_landed};
pub use sink::{MessageRef, Received, Sink};

use super::remote::{FLAG_READ, FLAG_REMOTE};
use super::FLAG_COMPACT;
use super::{Message, NodeName, Via};
use super::{INBOX_BYTES, INBOX_MESSAGES};
use crate::ring::{self, Consumer, Producer, Region, SlotHeader};
use crate::sync::{SpinGuard, SpinLock};
use crate::transport::channel::{parse_endpoint_name, reply_path, SegmentMaps};
use crate::transport::registry::Registry;
use crossbeam_queue::SegQueue;
use plain::{Plain, Taken};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// One endpoint ring into the node.
struct EpRing {
    src: u32,
    /// The source's id, resolved when the ring was found.
    source: NodeName,
    /// Inode of its file (0: a ring in process memory).
    ino: u64,
    /// The producing process (from the file's name): the one whose segment its descriptors
    /// name.
    pid: u32,
    /// Its file is gone: dropped once drained.
    orphan: bool,
    consumer: Consumer<Region>,
    /// The endpoint's reply ring, when it has one: answers to its requests go there.
    reply: Option<Producer<Region>>,
}

/// The endpoint rings of a node and what reading them needs; held under the mailbox lock.
pub struct Rings {
    list: Vec<EpRing>,
    next: usize,
    channels_epoch: u64,
    segments: SegmentMaps,
    /// Inodes of rings found corrupt: dropped, and not opened again.
    poisoned: Vec<u64>,
    /// Whether a ring of `list` is an orphan.
    orphans: bool,
}

/// The mailbox of one hosted node (see the module documentation).
pub struct Mailbox {
    node: u32,
    /// The node's registration generation: rings made for another are not read.
    generation: u64,
    id: NodeName,
    registry: Arc<Registry>,
    queue: SegQueue<Message>,
    /// A message a `recv_into` found too large for its buffer: the node's next one.
    front: SpinLock<Option<Message>>,
    has_front: AtomicBool,
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    rings: SpinLock<Rings>,
    /// Rings in process memory handed over by endpoints of this process (with their reply
    /// rings).
    handed: SegQueue<Handed>,
    /// Whether `handed` may hold rings (checked with a plain load).
    handing: AtomicBool,
    /// The rings in process memory handed over, as observers see them (their counts).
    memory: std::sync::Mutex<Vec<traffic::MemoryRing>>,
    /// The node has a handler: its frames go to the engine's dispatch, never to `recv`.
    handled: AtomicBool,
    /// The node left: `recv` fails, senders stop.
    closed: AtomicBool,
    corrupt: AtomicU64,
    /// Messages whose assembly in place ended before their last fragment.
    abandoned: AtomicU64,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("node", &self.id)
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What the poller does with a frame the mailbox does not deliver itself: the engine's
/// dispatch at the mailbox's node (the node's index, slot header, ring payload, and the
/// endpoint ring it came through).
pub type Slow<'a> = &'a mut dyn FnMut(u32, SlotHeader, &[u8], Option<Via<'_>>);

/// An endpoint ring in process memory handed over: its source (index and id), the
/// consumer, and the producer of its reply ring.
pub type Handed = (u32, NodeName, Consumer<Region>, Option<Producer<Region>>);

impl Mailbox {
    /// The mailbox of hosted node `node` (index) named `id`.
    pub fn new(registry: Arc<Registry>, (node, generation): (u32, u64), id: NodeName) -> Mailbox {
        Mailbox {
            node,
            generation,
            id,
            registry,
            queue: SegQueue::new(),
            front: SpinLock::new(None),
            has_front: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            rings: SpinLock::new(Rings {
                list: Vec::new(),
                next: 0,
                channels_epoch: u64::MAX,
                segments: SegmentMaps::default(),
                poisoned: Vec::new(),
                orphans: false,
            }),
            handed: SegQueue::new(),
            handing: AtomicBool::new(false),
            memory: Default::default(),
            handled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            corrupt: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
        }
    }

    /// The node's index.
    pub fn node(&self) -> u32 {
        self.node
    }

    /// The node's id.
    pub fn id(&self) -> NodeName {
        self.id
    }

    /// Queues a message the engine delivered.
    pub fn push(&self, m: Message) {
        self.queued_bytes
            .fetch_add(m.data.len() + m.metadata.len(), Ordering::Relaxed);
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.queue.push(m);
    }

    /// Whether the queue may hold a message (a plain load).
    #[inline]
    pub fn has_queued(&self) -> bool {
        self.queued.load(Ordering::Relaxed) != 0 || self.has_front.load(Ordering::Relaxed)
    }

    /// Puts `m` before every other message of the node (one too large for a caller's
    /// buffer; at most one at a time, as every receiver takes it first).
    pub fn push_front(&self, m: Message) {
        let mut f = self.front.lock();
        if let Some(earlier) = f.replace(m) {
            // Two receivers both found a message too large: keep the earlier first.
            let later = f.replace(earlier).expect("set above");
            self.push(later);
        }
        self.has_front.store(true, Ordering::Release);
    }

    /// The node's next queued message (the one put in front, else the queue's oldest) into
    /// `sink`. One too large for the sink's buffer stays the next, its size reported: it is
    /// never out of the mailbox, so no other receiver overtakes it meanwhile. Returns whether
    /// the sink got a result.
    pub fn take_queued(&self, sink: &mut Sink<'_>) -> bool {
        let mut f = self.front.lock();
        if f.is_none() {
            // Announced before the pop: a receiver that finds the queue empty meanwhile
            // waits for this lock instead of taking a later message from the rings.
            self.has_front.store(true, Ordering::Release);
            *f = self.pop();
            if f.is_none() {
                self.has_front.store(false, Ordering::Release);
                return false;
            }
        }
        if sink.refuses(f.as_ref().expect("set above")) {
            return true;
        }
        let m = f.take().expect("set above");
        self.has_front.store(false, Ordering::Release);
        drop(f);
        let kept = sink.put(m);
        debug_assert!(kept.is_none(), "checked to fit");
        true
    }

    /// The node's next queued message (the one put in front, else the queue's oldest).
    pub fn next_queued(&self) -> Option<Message> {
        let mut sink = Sink::Message(None);
        self.take_queued(&mut sink);
        match sink {
            Sink::Message(m) => m,
            _ => None,
        }
    }

    /// The oldest queued message.
    #[inline]
    pub fn pop(&self) -> Option<Message> {
        // A plain load first: the queue's own emptiness check fences, which would cost a
        // polling `recv` a store-buffer drain every look.
        if self.queued.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let m = self.queue.pop()?;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.queued_bytes
            .fetch_sub(m.data.len() + m.metadata.len(), Ordering::Relaxed);
        Some(m)
    }

    /// Whether the queue reached its bound (the engine leaves the node's rings unread).
    pub fn is_full(&self) -> bool {
        self.queued.load(Ordering::Relaxed) >= INBOX_MESSAGES
            || self.queued_bytes.load(Ordering::Relaxed) >= INBOX_BYTES
    }

    /// Marks the node as having a handler (or not).
    pub fn set_handled(&self, on: bool) {
        self.handled.store(on, Ordering::Release);
    }

    /// Whether the node has a handler.
    pub fn is_handled(&self) -> bool {
        self.handled.load(Ordering::Acquire)
    }

    /// Marks the node gone: its queue and rings are freed (now if no poller holds them,
    /// else by the next one).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        while self.pop().is_some() {}
        // Held only briefly by a receiver that never waits for the engine.
        *self.front.lock() = None;
        self.has_front.store(false, Ordering::Release);
        while self.handed.pop().is_some() {}
        if let Some(mut r) = self.rings.try_lock() {
            r.list.clear();
            r.segments = SegmentMaps::default();
        }
    }

    /// Whether the node left.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Messages whose assembly in place ended before their last fragment came (their
    /// sender gave the rest up, stalled for 5 s, or died).
    pub fn abandoned_assemblies(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Endpoint rings found corrupt so far.
    pub fn corrupt_channels(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Hands over the consumer of a ring in process memory from `src` (named `source`), and
    /// the producer of its reply ring.
    pub fn hand_over(&self, handed: Handed) {
        self.observe(&handed);
        self.handed.push(handed);
        self.handing.store(true, Ordering::Release);
    }

    /// The ring lock, if free now.
    #[inline]
    pub fn try_rings(&self) -> Option<SpinGuard<'_, Rings>> {
        self.rings.try_lock()
    }

    /// The ring lock, waiting for it.
    pub fn lock_rings(&self) -> SpinGuard<'_, Rings> {
        self.rings.lock()
    }

    /// Picks up rings made (or handed over) since the last look: two plain loads when none.
    #[inline(always)]
    fn discover(&self, r: &mut Rings) {
        if self.handing.load(Ordering::Relaxed)
            || self.registry.channels_epoch() != r.channels_epoch
        {
            self.discover_new(r);
        }
    }

    #[cold]
    #[inline(never)]
    fn discover_new(&self, r: &mut Rings) {
        if self.handing.load(Ordering::Acquire) {
            self.handing.store(false, Ordering::Relaxed);
            self.take_handed(r);
        }
        let Some(rd) = self.registry.channels_changed(&mut r.channels_epoch) else {
            return;
        };
        self.scan(r, rd);
    }

    fn take_handed(&self, r: &mut Rings) {
        // Rings in process memory whose endpoint was dropped go once drained (as orphans).
        // Under the views' lock: an observer reading a ring holds it a moment too.
        let views = self.views();
        for x in &mut r.list {
            if x.ino == 0 && x.consumer.is_alone() {
                x.orphan = true;
                r.orphans = true;
            }
        }
        drop(views);
        while let Some((src, source, consumer, reply)) = self.handed.pop() {
            r.list.push(EpRing {
                src,
                source,
                ino: 0,
                pid: crate::sys::process::pid(),
                orphan: false,
                consumer,
                reply,
            });
        }
    }

    /// Opens the endpoint rings to this node found in the fabric directory.
    fn scan(&self, r: &mut Rings, rd: std::fs::ReadDir) {
        let mut live = Vec::new();
        for e in rd.flatten() {
            let Some(((src, dst, pid, _), generation)) =
                e.file_name().to_str().and_then(parse_endpoint_name)
            else {
                continue;
            };
            if dst != self.node || generation != self.generation {
                continue;
            }
            let ino = e
                .metadata()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .unwrap_or(0);
            live.push(ino);
            if r.list.iter().any(|x| x.ino == ino) || r.poisoned.contains(&ino) {
                continue;
            }
            let Some(entry) = self.registry.get(src) else {
                continue;
            };
            let Ok(region) = Region::open_file(&e.path()) else {
                continue;
            };
            // Only a ring made for this registration: another's, linked under this node's
            // name, stays its own (and one not stamped yet is looked at again next scan).
            let h = region.header();
            if h.destination.load(Ordering::Acquire) != u64::from(dst) + 1
                || h.destination_generation.load(Ordering::Relaxed) != generation
            {
                continue;
            }
            r.list.push(EpRing {
                src,
                source: NodeName::intern(&entry.signature.node_id),
                ino,
                pid,
                orphan: false,
                consumer: ring::split(Arc::new(region)).1,
                reply: open_reply_ring(&e.path(), src, entry.generation),
            });
        }
        // A ring whose file is gone keeps what it holds until it is drained (one in process
        // memory, once its endpoint was dropped: under the views' lock, as above).
        let views = self.views();
        for x in &mut r.list {
            x.orphan = if x.ino != 0 {
                !live.contains(&x.ino)
            } else {
                x.consumer.is_alone()
            };
        }
        drop(views);
        r.poisoned.retain(|ino| live.contains(ino));
        r.orphans = true;
        Self::sweep(r);
    }

    /// Drops the orphans that hold nothing more (and the mappings of dead processes'
    /// segments with them).
    #[cold]
    fn sweep(r: &mut Rings) {
        let before = r.list.len();
        r.list.retain(|x| !x.orphan || x.consumer.has_message());
        r.orphans = r.list.iter().any(|x| x.orphan);
        if r.list.len() < before {
            if r.next >= r.list.len() {
                r.next = 0;
            }
            r.segments.retain_live(crate::sys::process::pid());
        }
    }

    /// Takes one frame from the endpoint rings (in turn, so no sender starves another).
    /// With `deliver`, a plain data frame goes to `sink`; every other frame (and every frame
    /// without `deliver`) goes to `slow`. With `leave_remote` (the engine's poll), a send
    /// from registered memory to a node without handler stays in its live ring, and the rest
    /// of that ring behind it: `recv` copies it straight where it goes, outside the engine
    /// lock (a copy of up to a gigabyte there would hold up every other delivery). Returns
    /// whether a frame was taken.
    #[inline]
    pub fn take(
        &self,
        r: &mut Rings,
        (deliver, leave_remote): (bool, bool),
        slow: Slow<'_>,
        sink: &mut Sink<'_>,
    ) -> bool {
        if self.is_closed() {
            // `close` found the lock taken: the first poller after it lets go of the rings.
            if !r.list.is_empty() {
                r.list.clear();
                r.segments = SegmentMaps::default();
            }
            while self.handed.pop().is_some() {}
            return false;
        }
        self.discover(r);
        if r.orphans {
            Self::sweep(r);
        }
        let Rings {
            list,
            next,
            segments,
            poisoned,
            ..
        } = r;
        let n = list.len();
        if *next >= n {
            *next = 0;
        }
        for k in 0..n {
            // (next + k) mod n, without a division per poll.
            let i = if *next + k >= n {
                *next + k - n
            } else {
                *next + k
            };
            if !list[i].consumer.ready() {
                continue;
            }
            if deliver && self.has_queued() {
                // What the engine queued comes first: a sender whose frames the engine took
                // from its rings into the queue may have gone on through this ring since the
                // caller looked at the queue.
                return false;
            }
            if leave_remote
                && !list[i].orphan
                && !self.is_handled()
                && list[i]
                    .consumer
                    .peek()
                    .is_some_and(|h| h.flags == FLAG_REMOTE)
            {
                continue;
            }
            *next = if i + 1 == n { 0 } else { i + 1 };
            if deliver {
                // Anything else (a corrupt ring too) takes the general path below.
                if let Ok(true) = list[i].take_compact(self.id, sink) {
                    return true;
                }
            }
            let at = Plain {
                node: self.node,
                id: self.id,
                src: list[i].src,
                source: list[i].source,
                pid: list[i].pid,
            };
            let dir = self.registry.dir();
            let mut bad = None;
            let mut started = None;
            let EpRing {
                consumer, reply, ..
            } = &mut list[i];
            let popped = consumer.try_pop(|h, d| {
                let m = match at.check(h, d) {
                    Ok(m) => m,
                    Err(why) => {
                        bad = Some(why);
                        return;
                    }
                };
                if deliver && h.flags & FLAG_COMPACT == 0 {
                    // The first of several fragments: assembled in place (below).
                    match at.begin((h, d, &m), segments, dir, sink) {
                        Some(Ok(a)) => {
                            started = Some(a);
                            return;
                        }
                        Some(Err(why)) => {
                            bad = Some(why);
                            return;
                        }
                        None => {}
                    }
                }
                match if deliver {
                    at.deliver((h, d, &m), segments, dir, sink)
                } else {
                    Taken::No
                } {
                    Taken::Yes => {}
                    Taken::Read => {
                        // Acknowledged by the dispatch, which copies nothing again.
                        let read = SlotHeader {
                            flags: h.flags | FLAG_READ,
                            ..h
                        };
                        slow(at.node, read, d, Some(at.via(reply)))
                    }
                    Taken::No => slow(at.node, h, d, Some(at.via(reply))),
                    Taken::Bad(why) => bad = Some(why),
                }
            });
            let popped = match (popped, bad, started) {
                // A frame its producer cannot have written: the ring is dropped as corrupt.
                (Ok(Some(())), Some(why), _) => Err(consumer.mark_corrupt(why)),
                (Ok(Some(())), None, Some(a)) => self
                    .assemble(a, &at, consumer, reply, (segments, dir), slow, sink)
                    .map(Some),
                (p, _, _) => p,
            };
            return match popped {
                Ok(Some(())) => {
                    if let Sink::Buffer { spill, .. } = sink {
                        if let Some(m) = spill.take() {
                            self.push_front(m);
                        }
                    }
                    true
                }
                Ok(None) => false,
                Err(_) => {
                    let bad = list.swap_remove(i);
                    if bad.ino != 0 {
                        poisoned.push(bad.ino);
                    }
                    self.corrupt.fetch_add(1, Ordering::Relaxed);
                    false
                }
            };
        }
        false
    }
}

/// The reply ring beside endpoint ring `path`, if its endpoint made one for registration
/// `generation` of `src` (its header is stamped with both).
fn open_reply_ring(path: &std::path::Path, src: u32, generation: u64) -> Option<Producer<Region>> {
    let region = Region::open_file(&reply_path(path)?).ok()?;
    let h = region.header();
    (h.destination.load(Ordering::Acquire) == u64::from(src) + 1
        && h.destination_generation.load(Ordering::Relaxed) == generation)
        .then(|| ring::split(Arc::new(region)).0)
}
