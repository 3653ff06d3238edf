//! Buffers: pools in shared segments of this process, and sends that pass one of their buffers
//! by descriptor (zero copy) or, when they cannot, its bytes.

use super::endpoint::named::Prefer;
use super::framing::{data_frame, encode_metadata};
use super::{lock, Deadline, HyperFabricProtocol, SendOptions};
use crate::engine::Outgoing;
use crate::error::Result;

impl HyperFabricProtocol {
    /// A `BufferManager` whose buffers live in a shared segment of this process: a buffer
    /// filled here and passed to [`send_buffer`](Self::send_buffer) or
    /// [`post_buffer`](Self::post_buffer) reaches any node of the host without a copy (the
    /// receiver reads the same pages, and the buffer returns to this pool when the received
    /// message is dropped).
    pub fn create_buffer_manager(
        &self,
        pool_size: usize,
        buffer_size: usize,
    ) -> Result<crate::buffer::BufferManager> {
        self.inner.check_process()?;
        lock(&self.inner.engine).create_pool(pool_size, buffer_size)
    }

    /// `send_data` of a buffer's data by descriptor (zero copy) when the buffer comes from
    /// [`create_buffer_manager`](Self::create_buffer_manager) and neither compression nor
    /// encryption is asked (by `opts` or by the buffer); otherwise its bytes are sent as by
    /// `send_data`. The buffer is consumed either way.
    pub fn send_buffer(
        &self,
        source: &str,
        destination: &str,
        buffer: crate::buffer::ZeroCopyBuffer,
        opts: &SendOptions,
    ) -> Result<Vec<u8>> {
        self.inner.check_sender()?;
        match self.send_buffer_as(source, destination, buffer, opts, false)? {
            BufferSend::Descriptor(id, deadline) => self.request(id, deadline).wait(),
            BufferSend::Bytes(response) => Ok(response.unwrap_or_default()),
        }
    }

    /// `post` of a buffer (zero copy under the conditions of
    /// [`send_buffer`](Self::send_buffer)).
    pub fn post_buffer(
        &self,
        source: &str,
        destination: &str,
        buffer: crate::buffer::ZeroCopyBuffer,
        opts: &SendOptions,
    ) -> Result<()> {
        self.inner.check_sender()?;
        self.send_buffer_as(source, destination, buffer, opts, true)
            .map(drop)
    }

    /// Sends a buffer by descriptor when it can travel so, else its bytes (sealed when the
    /// buffer, the options or a zone ask for it) through `send_data` / `post`.
    fn send_buffer_as(
        &self,
        source: &str,
        destination: &str,
        buffer: crate::buffer::ZeroCopyBuffer,
        opts: &SendOptions,
        one_way: bool,
    ) -> Result<BufferSend> {
        let (src, dst) = self.inner.endpoints(source, destination)?;
        // Through a forwarder with fault tolerance on, the bytes travel sequenced (a copy is
        // kept for resending), not by descriptor.
        let by_descriptor = self.descriptor_options(&buffer, opts).is_some()
            && !self.inner.check_route(source, destination, opts)?
            && !lock(&self.inner.engine).sequences_toward(src, dst.index);
        if !by_descriptor {
            let opts = SendOptions {
                encryption_enabled: opts.encryption_enabled || buffer.encryption_enabled(),
                ..opts.clone()
            };
            let data = buffer.as_slice();
            return if one_way {
                self.post(source, destination, data, &opts)
                    .map(|()| BufferSend::Bytes(None))
            } else {
                self.send_data(source, destination, data, &opts)
                    .map(|r| BufferSend::Bytes(Some(r)))
            };
        }
        // The engine carries the descriptor; while this thread's endpoint of the pair holds
        // earlier sends, the bytes go after them through it instead.
        let named = Prefer::of(opts, true).and_then(|prefer| {
            self.with_named((source, destination), prefer, |ep| {
                if one_way {
                    ep.post_with(buffer.as_slice(), opts)
                        .map(|()| BufferSend::Bytes(None))
                } else {
                    ep.send_data(buffer.as_slice(), opts)
                        .map(|r| BufferSend::Bytes(Some(r)))
                }
            })
        });
        if let Some(sent) = named {
            return sent;
        }
        let mut deadline = Deadline::after(opts.timeout);
        let metadata = encode_metadata(opts)?;
        let id = {
            let mut e = lock(&self.inner.engine);
            if one_way {
                e.next_id()
            } else {
                e.new_request(&dst)
            }
        };
        let o = data_frame(opts, id, one_way, &metadata, false);
        if let Err(e) = self.push_buffer(src, dst.index, &o, buffer, &mut deadline) {
            if !one_way {
                lock(&self.inner.engine).cancel(id);
            }
            return Err(e);
        }
        Ok(BufferSend::Descriptor(id, deadline))
    }

    /// `opts` when `buffer` can travel by descriptor.
    fn descriptor_options<'o>(
        &self,
        buffer: &crate::buffer::ZeroCopyBuffer,
        opts: &'o SendOptions,
    ) -> Option<&'o SendOptions> {
        let plain =
            !(opts.compression_enabled || opts.encryption_enabled || buffer.encryption_enabled());
        let shared = buffer
            .pool_id()
            .is_some_and(|id| lock(&self.inner.engine).owns_pool(id));
        (plain && shared).then_some(opts)
    }

    fn push_buffer(
        &self,
        src: u32,
        dst: u32,
        o: &Outgoing<'_>,
        buffer: crate::buffer::ZeroCopyBuffer,
        deadline: &mut Deadline,
    ) -> Result<()> {
        let mut buffer = Some(buffer);
        self.until_room(deadline, format_args!("node index {dst}"), |e| {
            e.try_send_buffer(src, dst, o, &mut buffer)
        })
    }
}

/// How a buffer went out: by descriptor (the message id and its deadline), or as bytes
/// through `send_data` / `post` (the response of a request).
enum BufferSend {
    Descriptor(u64, Deadline),
    Bytes(Option<Vec<u8>>),
}
