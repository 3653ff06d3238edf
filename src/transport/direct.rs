//! Direct channels: the lock-free fast path between two nodes of one host. A [`Sender`] owns
//! the producing end of its own ring (`dc-<src>-<dst>-<pid>-<n>` in the fabric directory) and
//! pushes into it with no lock, no lookup and no allocation; the [`Receiver`] of the
//! destination node, owned by one thread of the process hosting it, polls every direct ring to
//! that node. The engine never touches these rings: messages skip dispatch, routing and
//! reassembly, so they cost what the ring costs. Payloads larger than a ring slot run travel
//! as buffer descriptors (see [`Sender::try_send_buffer`]).

use super::channel::{Descriptor, SegmentKey, SegmentMaps};
use super::registry::Registry;
use crate::buffer::{Payload, ZeroCopyBuffer};
use crate::error::{Error, Result};
use crate::ring::{self, Consumer, Producer, PushError, Region, SlotHeader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Slots of a direct ring (64 KiB).
pub const DIRECT_SLOTS: usize = 1024;
/// Slot kind of an inline message.
const KIND_INLINE: u8 = 1;
/// Slot kind of a descriptor (segment key, buffer index, length).
const KIND_DESCRIPTOR: u8 = 2;

/// Largest payload [`Sender::try_send`] carries inline.
pub fn max_inline() -> usize {
    ring::max_payload(DIRECT_SLOTS)
}

/// Path of direct ring `n` of process `pid` from `src` to `dst`.
pub fn direct_path(dir: &Path, src: u32, dst: u32, pid: u32, n: u32) -> PathBuf {
    dir.join(format!("dc-{src}-{dst}-{pid}-{n}"))
}

/// Parses a direct ring file name into (src, dst, pid, n).
pub fn parse_direct_name(name: &str) -> Option<(u32, u32, u32, u32)> {
    super::channel::parse_four(name.strip_prefix("dc-")?)
}

/// The sending end of a direct channel. `Send` but not `Sync`: one thread pushes at a time.
#[derive(Debug)]
pub struct Sender {
    producer: Producer<Region>,
    registry: Arc<Registry>,
    src: u32,
    dst: u32,
    dst_generation: u64,
    /// The process hosting the destination (pid, start time), to notice it died even when
    /// nobody reclaimed its registry entry yet.
    dst_owner: (u32, u64),
    path: PathBuf,
    /// The process that made the channel: a `fork()` child leaves its ring file alone.
    origin: crate::sys::process::Origin,
}

/// How often a blocked [`Sender::send`] checks that its destination still lives.
const LIVENESS_CHECK: std::time::Duration = std::time::Duration::from_millis(10);

impl Sender {
    /// Creates the ring of a new direct channel from `src` to `dst` (a live node of the host
    /// with registration `dst_generation`); `n` makes its name unique within this process.
    pub fn create(
        registry: Arc<Registry>,
        (src, dst, dst_generation): (u32, u32, u64),
        n: u32,
    ) -> Result<Sender> {
        let owner = registry
            .get(dst)
            .filter(|e| e.generation == dst_generation)
            .ok_or_else(|| Error::NodeNotFound(format!("node index {dst} left the fabric")))?;
        let dst_owner = (owner.owner_pid, owner.owner_start);
        let path = direct_path(registry.dir(), src, dst, crate::sys::process::pid(), n);
        let _ = std::fs::remove_file(&path);
        let region = Region::create_file(&path, DIRECT_SLOTS)?;
        registry.bump_channels_epoch();
        Ok(Sender {
            producer: ring::split(Arc::new(region)).0,
            registry,
            src,
            dst,
            dst_generation,
            dst_owner,
            path,
            origin: crate::sys::process::Origin::current(),
        })
    }

    /// The process that opened the channel (a `fork()` child must not send through it: the
    /// ring has one producer).
    pub fn origin(&self) -> crate::sys::process::Origin {
        self.origin
    }

    /// `InvalidArgumentError` in a `fork()` child of the process that opened the channel,
    /// as every value of a protocol says it (one atomic load otherwise).
    #[inline]
    fn check_process(&self) -> Result<()> {
        if self.origin.is_current() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "this direct channel was opened by process {}; after fork() open a new one",
                self.origin.pid()
            )))
        }
    }

    /// Pushes `data` (at most [`max_inline`] bytes). `Ok(false)` when the ring is full now.
    #[inline]
    pub fn try_send(&mut self, data: &[u8]) -> Result<bool> {
        self.check_process()?;
        let h = SlotHeader {
            kind: KIND_INLINE,
            src: self.src,
            ..SlotHeader::default()
        };
        match self.producer.try_push(h, &[data]) {
            // No doorbell: direct rings are polled by their receiver's own thread, never by
            // an engine that could be asleep.
            Ok(()) => Ok(true),
            Err(PushError::Full) => Ok(false),
            Err(PushError::Corrupt) => Err(self.corrupt()),
            Err(PushError::TooLarge) => Err(Error::InvalidArgument(format!(
                "{} bytes exceed a direct channel's inline limit of {} (send a buffer)",
                data.len(),
                max_inline()
            ))),
        }
    }

    /// Pushes `data`, waiting while the ring is full: `NodeNotFoundError` as soon as the
    /// destination is gone (checked every 10 ms while waiting: it left the fabric, or its
    /// process died, even if nobody has reclaimed its registry entry yet), `TimeoutError`
    /// after `timeout`, `MalformedFrameError` when the receiver found the ring corrupt.
    pub fn send(&mut self, data: &[u8], timeout: std::time::Duration) -> Result<()> {
        let mut spins = 0u32;
        // Set on the first wait: a send that finds room reads no clock.
        let mut times: Option<(std::time::Instant, std::time::Instant)> = None;
        while !self.try_send(data)? {
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 {
                let now = std::time::Instant::now();
                let (end, check) = times.get_or_insert((now + timeout, now));
                if now >= *check {
                    if !self.peer_alive() {
                        return Err(Error::NodeNotFound(format!(
                            "destination node index {} is gone (left the fabric or its \
                             process died)",
                            self.dst
                        )));
                    }
                    *check = now + LIVENESS_CHECK;
                }
                if now >= *end {
                    return Err(Error::Timeout(format!(
                        "the direct ring to node index {} stayed full for {timeout:?}",
                        self.dst
                    )));
                }
            }
            std::hint::spin_loop();
        }
        Ok(())
    }

    #[cold]
    fn corrupt(&self) -> Error {
        Error::MalformedFrame(format!(
            "the receiver of node index {} found this direct channel corrupt and no longer \
             reads it; open a new sender",
            self.dst
        ))
    }

    /// Passes a buffer of a pool made by a protocol's `create_buffer_manager` as a
    /// descriptor (zero copy): the receiver reads its pages, and it returns to its pool when
    /// the receiver drops the payload. `Ok(false)` when the ring is full now (the buffer
    /// stays in `buf`).
    pub fn try_send_buffer(&mut self, buf: &mut Option<ZeroCopyBuffer>) -> Result<bool> {
        self.check_process()?;
        let b = buf
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("no buffer to send".into()))?;
        let key = b.pool_tag().map(SegmentKey::from_tag).ok_or_else(|| {
            Error::InvalidArgument(
                "the buffer does not come from a shared pool of this protocol".into(),
            )
        })?;
        if !self.producer.has_room(Descriptor::LEN) {
            if self.producer.is_corrupt() {
                return Err(self.corrupt());
            }
            return Ok(false);
        }
        // The destination's process holds it until it drops it; if it dies first, this
        // process's engine takes the buffer back.
        b.lend(self.dst_owner.0)?;
        let (index, len) = buf
            .take()
            .expect("checked above")
            .into_pooled()
            .map_err(|_| Error::InvalidArgument("the buffer is not pooled".into()))?;
        let desc = Descriptor {
            key,
            index,
            len: len as u32,
        }
        .encode();
        let h = SlotHeader {
            kind: KIND_DESCRIPTOR,
            src: self.src,
            ..SlotHeader::default()
        };
        self.producer
            .try_push(h, &[&desc])
            .map_err(|_| Error::InvalidArgument("descriptor did not fit the ring".into()))?;
        Ok(true)
    }

    /// Whether the destination is still the node this channel was opened to (it did not
    /// leave, its index was not taken by a new registration, and its process lives). Reads
    /// the registry and `/proc`: for a sender that waits, not per message.
    pub fn peer_alive(&self) -> bool {
        self.registry
            .get(self.dst)
            .is_some_and(|e| e.generation == self.dst_generation)
            && crate::sys::process::alive(self.dst_owner.0, self.dst_owner.1)
    }

    /// Source node index.
    pub fn source(&self) -> u32 {
        self.src
    }

    /// Destination node index.
    pub fn destination(&self) -> u32 {
        self.dst
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if !self.origin.is_current() {
            // A fork() child's copy: the ring is its parent's.
            return;
        }
        // The receiver keeps its mapping and reads what is left; new receivers no longer
        // find the ring, and observers of the directory stop reading it.
        let _ = std::fs::remove_file(&self.path);
        self.registry.bump_channels_epoch();
    }
}

struct Inbound {
    src: u32,
    ino: u64,
    consumer: Consumer<Region>,
}

/// What a [`Receiver`] hands out: bytes read in place in the ring, or a buffer of the
/// sender's pool.
#[derive(Debug)]
pub enum Received<'a> {
    /// An inline message, valid for the callback.
    Inline(&'a [u8]),
    /// A buffer passed by descriptor; returns to the sender's pool when dropped.
    Buffer(Payload),
}

impl Received<'_> {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Received::Inline(b) => b,
            Received::Buffer(p) => p,
        }
    }
}

/// The receiving end of every direct channel to one node. `Send` but not `Sync`.
pub struct Receiver {
    registry: Arc<Registry>,
    node: u32,
    rings: Vec<Inbound>,
    next: usize,
    channels_epoch: u64,
    segments: SegmentMaps,
    /// The process that opened it: a `fork()` child's copy takes nothing (the buffers it
    /// would take are lent to the parent).
    origin: crate::sys::process::Origin,
    /// Inodes of rings found corrupt: dropped, and not opened again.
    poisoned: Vec<u64>,
    corrupt_channels: u64,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("node", &self.node)
            .field("rings", &self.rings.len())
            .finish()
    }
}

impl Receiver {
    /// The receiver of node `node` (hosted by this process; the caller makes sure there is
    /// one receiver per node).
    pub fn new(registry: Arc<Registry>, node: u32) -> Receiver {
        Receiver {
            registry,
            node,
            rings: Vec::new(),
            next: 0,
            channels_epoch: u64::MAX,
            segments: SegmentMaps::default(),
            origin: crate::sys::process::Origin::current(),
            poisoned: Vec::new(),
            corrupt_channels: 0,
        }
    }

    /// Rings found corrupt so far (each dropped; its sender gets `MalformedFrameError`).
    pub fn corrupt_channels(&self) -> u64 {
        self.corrupt_channels
    }

    /// The node index.
    pub fn node(&self) -> u32 {
        self.node
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Picks up rings created (or recreated) since the last look: one atomic load when none.
    fn discover(&mut self) {
        let Some(rd) = self.registry.channels_changed(&mut self.channels_epoch) else {
            return;
        };
        let mut live = Vec::new();
        for e in rd.flatten() {
            let Some((src, dst, _, _)) = e.file_name().to_str().and_then(parse_direct_name) else {
                continue;
            };
            if dst != self.node {
                continue;
            }
            let ino = e
                .metadata()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .unwrap_or(0);
            live.push(ino);
            if self.rings.iter().any(|r| r.ino == ino) || self.poisoned.contains(&ino) {
                continue;
            }
            if let Ok(region) = Region::open_file(&e.path()) {
                self.rings.push(Inbound {
                    src,
                    ino,
                    consumer: ring::split(Arc::new(region)).1,
                });
            }
        }
        // A ring whose file is gone keeps what it holds until it is drained.
        let before = self.rings.len();
        self.rings
            .retain(|r| live.contains(&r.ino) || r.consumer.has_message());
        self.poisoned.retain(|ino| live.contains(ino));
        if self.rings.len() < before {
            // A sender left: unmap the segments of processes that died.
            self.segments.retain_live(crate::sys::process::pid());
        }
    }

    /// Takes one message, if any, and gives it to `f` with the source node index. Rings are
    /// taken in turn, so no sender starves another. A descriptor whose segment cannot be
    /// mapped is dropped. A ring whose shared memory fails its checks is dropped (counted in
    /// [`Receiver::corrupt_channels`]); the others keep working. In a `fork()` child of the
    /// process that opened the receiver, nothing is taken.
    #[inline]
    pub fn try_recv_with<R>(&mut self, f: impl FnOnce(u32, Received<'_>) -> R) -> Option<R> {
        if !self.origin.is_current() {
            return None;
        }
        self.discover();
        let Receiver {
            rings,
            segments,
            registry,
            next,
            ..
        } = self;
        let n = rings.len();
        for k in 0..n {
            let i = (*next + k) % n;
            // Publishes the position of a drained ring, so its sender sees the room.
            if !rings[i].consumer.ready() {
                continue;
            }
            *next = (i + 1) % n;
            let src = rings[i].src;
            let popped = rings[i].consumer.try_pop(|h, d| {
                if h.kind == KIND_DESCRIPTOR {
                    Descriptor::decode(d)
                        .and_then(|d| segments.take(registry.dir(), &d).ok())
                        .map(|p| f(src, Received::Buffer(p)))
                } else {
                    Some(f(src, Received::Inline(d)))
                }
            });
            match popped {
                Ok(r) => return r.flatten(),
                Err(_) => {
                    let bad = rings.swap_remove(i);
                    self.poisoned.push(bad.ino);
                    self.corrupt_channels += 1;
                    return None;
                }
            }
        }
        None
    }
}
