//! Sending by descriptor: this process's shared segments (the engine's chunks for large
//! messages and the pools made for the protocol), and frames that name a buffer in one of them
//! instead of carrying its bytes.

use super::{lane_of, Engine, Outgoing, FLAG_DESCRIPTOR, MSG_HEADER};
use crate::buffer::{BufferManager, ZeroCopyBuffer};
use crate::error::{Error, Result};
use crate::transport::channel::{segment_path, Descriptor, SegmentKey};

/// Data larger than this travels by descriptor: copied once into a chunk of the sender's
/// segment, read in place by the receiver (below it, the copy through the ring is cheaper).
pub const DESCRIPTOR_THRESHOLD: usize = 2 << 10;
/// Bytes of a chunk of the engine's segment (the data one descriptor fragment carries).
pub const CHUNK_SIZE: usize = 1 << 20;
/// Chunks in the engine's segment of large chunks. The file is sparse: only written pages
/// take memory, and the free list hands out the most recently used chunk first.
pub const CHUNKS: usize = 64;
/// Bytes of a small chunk: data of at most this size takes one from the segment of small
/// chunks, so many messages in flight do not hold large chunks.
pub const SMALL_CHUNK_SIZE: usize = 64 << 10;
/// Chunks in the segment of small chunks (sparse too).
pub const SMALL_CHUNKS: usize = 256;

/// What one attempt to send a chunk by descriptor did.
pub(super) enum ChunkPush {
    /// Sent; the offset after the fragment.
    Sent(usize),
    /// The ring has no room now.
    Full,
    /// No free chunk: send this fragment through the ring instead.
    NoChunk,
}

impl Engine {
    /// A pool of `pool_size` buffers of `buffer_size` bytes in a new shared segment of this
    /// process: its buffers can be sent to any node of the host by descriptor.
    pub fn create_pool(&mut self, pool_size: usize, buffer_size: usize) -> Result<BufferManager> {
        // Numbered per process, not per engine: two protocols of one process on one fabric
        // must not name (and so replace) each other's segments.
        static NEXT_SEGMENT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let key = SegmentKey {
            pid: crate::sys::process::pid(),
            n: NEXT_SEGMENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            start: self.start_time,
        };
        let path = segment_path(self.registry.dir(), key);
        let _ = std::fs::remove_file(&path);
        let pool =
            BufferManager::create_shared_tagged(&path, pool_size, buffer_size, key.to_tag())?;
        self.own_segments.insert(pool.pool_id(), key);
        self.segments.insert(key, pool.clone());
        Ok(pool)
    }

    /// Whether pool `pool_id` is a shared segment of this engine.
    pub fn owns_pool(&self, pool_id: u64) -> bool {
        self.own_segments.contains_key(&pool_id)
    }

    /// The segment of chunks that fits `len` bytes (made on first use).
    pub(crate) fn chunk_pool(&mut self, len: usize) -> Result<(SegmentKey, BufferManager)> {
        let (class, count, size) = if len <= SMALL_CHUNK_SIZE {
            (0, SMALL_CHUNKS, SMALL_CHUNK_SIZE)
        } else {
            (1, CHUNKS, CHUNK_SIZE)
        };
        if self.chunks[class].is_none() {
            let pool = self.create_pool(count, size)?;
            let key = self.own_segments[&pool.pool_id()];
            self.chunks[class] = Some((key, pool));
        }
        Ok(self.chunks[class].clone().expect("made above"))
    }
    /// Sends the fragment at `offset` by descriptor: the metadata not yet sent travels
    /// inline, up to [`CHUNK_SIZE`] bytes of data are copied into a chunk of this process's
    /// segment.
    pub(super) fn try_push_chunk(
        &mut self,
        src: u32,
        dst: u32,
        o: &Outgoing<'_>,
        data: &[u8],
        offset: usize,
    ) -> Result<ChunkPush> {
        let m = o.metadata.len();
        let inline = &o.metadata[offset.min(m)..];
        let ds = offset.saturating_sub(m);
        let de = data.len().min(ds + CHUNK_SIZE);
        let via = self.via(src, dst)?;
        let lane = lane_of(o.priority);
        // Room first: a chunk filled for a full ring would be copied again.
        let p = self.producer(src, via, lane)?;
        if !p.has_room(MSG_HEADER + Descriptor::LEN + inline.len()) {
            if p.is_corrupt() {
                return Err(self.drop_corrupt(src, via, lane));
            }
            return Ok(ChunkPush::Full);
        }
        let (key, pool) = self.chunk_pool(de - ds)?;
        let Ok(mut chunk) = pool.acquire() else {
            return Ok(ChunkPush::NoChunk);
        };
        let n = de - ds;
        chunk.as_mut_slice()[..n].copy_from_slice(&data[ds..de]);
        chunk.set_len(n)?;
        let Ok((index, len)) = chunk.into_pooled() else {
            return Ok(ChunkPush::NoChunk);
        };
        let end = offset + inline.len() + len;
        let total = m + data.len();
        self.push_descriptor(
            (src, via, dst),
            o,
            (offset, total),
            (key, index, len),
            inline,
            &pool,
        )?;
        Ok(ChunkPush::Sent(end))
    }

    /// Pushes a descriptor fragment of a message of `total` bytes (room checked by the
    /// caller). On failure the buffer goes back to `pool`.
    fn push_descriptor(
        &mut self,
        (src, via, dst): (u32, u32, u32),
        o: &Outgoing<'_>,
        (offset, total): (usize, usize),
        (key, index, len): (SegmentKey, u32, usize),
        inline: &[u8],
        pool: &BufferManager,
    ) -> Result<()> {
        let hdr = o.header(src, dst, offset, total);
        let desc = Descriptor {
            key,
            index,
            len: len as u32,
        }
        .encode();
        let slot = o.slot(src, FLAG_DESCRIPTOR);
        let lane = lane_of(o.priority);
        // Lent to the destination's process (this one when it hosts the destination;
        // forwarders pass the descriptor on untouched): the receiver takes only a buffer lent
        // to it, and if it dies holding the buffer, this engine takes it back.
        let pid = self.owner_of(dst).unwrap_or(self.pid);
        let _ = pool.lend(index, pid);
        let pushed = self.producer(src, via, lane).map(|p| {
            let pushed = p.try_push(slot, &[&hdr, &desc, inline]);
            if pushed.is_ok() {
                p.count_carried(len as u64);
            }
            pushed
        });
        match pushed {
            Ok(Ok(())) => {
                self.registry.ring_bell(via);
                self.counters.frames_sent += 1;
                self.counters.bytes_sent += (inline.len() + len) as u64;
                Ok(())
            }
            other => {
                let _ = pool.release_descriptor(&crate::buffer::BufferDescriptor {
                    index,
                    len: len as u32,
                });
                match other {
                    Err(e) => Err(e),
                    _ => Err(Error::InvalidArgument(
                        "descriptor frame did not fit the ring".into(),
                    )),
                }
            }
        }
    }

    /// Sends a buffer of a pool made by [`Engine::create_pool`] by descriptor (metadata
    /// inline). `Ok(false)` when the ring has no room now (the buffer stays in `buf`); on
    /// success the receiver owns the buffer and returns it to the pool.
    pub fn try_send_buffer(
        &mut self,
        src: u32,
        dst: u32,
        o: &Outgoing<'_>,
        buf: &mut Option<ZeroCopyBuffer>,
    ) -> Result<bool> {
        let Some(b) = buf.as_ref() else {
            return Err(Error::InvalidArgument("no buffer to send".into()));
        };
        // Events queued for this pair go first: nothing overtakes them.
        if !self.spikes.is_empty() && !self.flush_batch((src, dst))? {
            return Ok(false);
        }
        let key = b
            .pool_id()
            .and_then(|id| self.own_segments.get(&id).copied())
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "the buffer does not come from a shared pool of this protocol".into(),
                )
            })?;
        let pool = self
            .segments
            .get(&key)
            .expect("own segments are mapped")
            .clone();
        let via = self.via(src, dst)?;
        if self.sequence_of((src, dst, via), o, 0)? {
            return Err(Error::InvalidArgument(
                "a buffer by descriptor does not travel through a forwarder with fault \
                 tolerance on: send its bytes"
                    .into(),
            ));
        }
        let lane = lane_of(o.priority);
        let p = self.producer(src, via, lane)?;
        if !p.has_room(MSG_HEADER + Descriptor::LEN + o.metadata.len()) {
            if p.is_corrupt() {
                return Err(self.drop_corrupt(src, via, lane));
            }
            return Ok(false);
        }
        let b = buf.take().expect("checked above");
        let (index, len) = b
            .into_pooled()
            .map_err(|_| Error::InvalidArgument("the buffer is not pooled".into()))?;
        let total = o.metadata.len() + len;
        self.push_descriptor(
            (src, via, dst),
            o,
            (0, total),
            (key, index, len),
            o.metadata,
            &pool,
        )?;
        Ok(true)
    }
}
