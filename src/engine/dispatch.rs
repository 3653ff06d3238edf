//! Delivery of one frame at a hosted node: reassembly, opening codec frames, the admission
//! check, handlers and mailboxes, pings, and the answers that complete pending requests.

use super::remote::{Refused, RemoteBytes, FLAG_READ, FLAG_REMOTE};
use super::send::decode_error;
use super::{
    max_message, reassembly, Admit, Back, Engine, Message, MsgHeader, NodeName, Outgoing, Via,
    FLAG_COALESCED, FLAG_COMPACT, FLAG_DESCRIPTOR, FLAG_FRAMED, FLAG_ONE_WAY, FLAG_SEQ,
    MAX_MESSAGE, MSG_HEADER,
};
use crate::buffer::Payload;
use crate::codec::FrameKind;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{DataType, PacketPriority};
use crate::ring::SlotHeader;
use crate::transport::channel::Descriptor;

/// A message's data while it is delivered: borrowed from the ring, or owned.
enum Body<'a> {
    Borrowed(&'a [u8]),
    Owned(Payload),
}

impl Body<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Borrowed(b) => b,
            Body::Owned(p) => p,
        }
    }

    fn into_payload(self) -> Payload {
        match self {
            Body::Borrowed(b) => Payload::copy_from(b),
            Body::Owned(p) => p,
        }
    }
}

/// The frame of an answer of `kind` (response, receipt, pong) to message `request_id`.
fn answer_frame(
    kind: FrameKind,
    request_id: u64,
    priority: PacketPriority,
    data_type: DataType,
) -> Outgoing<'static> {
    Outgoing {
        kind,
        request_id,
        priority,
        data_type,
        one_way: true,
        metadata: &[],
        framed: false,
        coalesced: false,
    }
}

/// A whole message at its destination, before [`Engine::deliver`].
struct Arrived<'a> {
    /// Its slot header, with its origin as source.
    h: SlotHeader,
    request_id: u64,
    priority: PacketPriority,
    data_type: DataType,
    one_way: bool,
    metadata: Vec<u8>,
    data: Body<'a>,
    /// Its source's id, when the ring it came through tells it.
    known: Option<NodeName>,
    /// The ring answers that fit go to.
    back: Back<'a>,
}

impl Engine {
    /// Sets (or clears) the delivery check of data messages.
    pub fn set_admit(&mut self, admit: Option<Admit>) {
        self.admit = admit;
    }
    /// Handles one frame that arrived at hosted node `at`: forwards it when it is for another
    /// node, else delivers it. `via`: the endpoint ring the frame came through, if it did
    /// (its source's id, and its reply ring, where answers that fit go).
    pub(super) fn dispatch(
        &mut self,
        at: u32,
        h: SlotHeader,
        payload: &[u8],
        via: Option<Via<'_>>,
    ) {
        let (known, mut back, pid) = match via {
            Some(v) => (Some(v.source), v.reply, Some(v.pid)),
            None => (None, None, None),
        };
        let compact = h.flags & FLAG_COMPACT != 0;
        if !compact && payload.len() < MSG_HEADER {
            return;
        }
        let (m, body) = if compact {
            match MsgHeader::of_compact(at, h, payload) {
                Some(c) => c,
                None => {
                    self.counters.frames_received += 1;
                    self.counters.errors += 1;
                    return;
                }
            }
        } else {
            (MsgHeader::decode(payload), &payload[MSG_HEADER..])
        };
        let dst = m.dst;
        // A frame for another node travels on along its route, even when this process hosts
        // that node too (the hop is real: a ring between the two nodes).
        if dst != at {
            // Counted by `forward` (a frame it leaves in its ring is read again).
            self.forward(at, h, payload);
            return;
        }
        self.counters.frames_received += 1;
        // Replies and errors go back to the origin, not to the previous hop.
        let h = SlotHeader { src: m.origin, ..h };
        if h.kind == FrameKind::Delivered as u8 {
            self.on_delivered(at, h.src, body);
            return;
        }
        let body = if h.flags & FLAG_SEQ != 0 && !compact {
            match self.accept_sequenced(at, &h, &m, body) {
                Some(rest) => rest,
                None => return,
            }
        } else {
            body
        };
        let request_id = m.id;
        let priority = m.priority();
        let data_type = DataType::from_u32(m.data_type as u32).unwrap_or_default();
        let (total, offset) = (m.total as usize, m.offset as usize);
        // A send from registered memory is answered once its bytes are copied, then
        // delivered as a one-way message.
        let remote = h.flags & FLAG_REMOTE != 0;
        let one_way = h.flags & FLAG_ONE_WAY != 0 || remote;
        // The frame of an answer (response, receipt, pong) to this message.
        let reply = |kind| answer_frame(kind, request_id, priority, data_type);
        let ack = reply(FrameKind::Ack);
        if h.flags & FLAG_READ != 0 {
            // Its receiver copied the bytes already.
            if pid.is_some() {
                self.answer(back, (dst, h.src), &ack, &[]);
            }
            return;
        }
        // The fragment: bytes in the ring, then (descriptor frames) bytes in a buffer of the
        // sender's segment, which this payload now owns, or (sends from registered memory)
        // bytes copied from the sender's memory.
        let (inline, shared) = if remote {
            let copied = match (pid, RemoteBytes::of_frame(&m, body)) {
                (Some(pid), Some(r)) => r.copy(pid, request_id),
                _ => Err(Refused::Failed(Error::MalformedFrame(
                    "a send from registered memory that did not come through an endpoint \
                     ring, or whose header contradicts it"
                        .into(),
                ))),
            };
            match copied {
                Ok(p) => {
                    self.answer(back.as_deref_mut(), (dst, h.src), &ack, &[]);
                    (&[][..], Some(p))
                }
                Err(why) => {
                    self.refused_remote(back, (dst, h.src), request_id, why);
                    return;
                }
            }
        } else if h.flags & FLAG_DESCRIPTOR != 0 {
            match self.take_descriptor(body) {
                Ok((inline, shared)) => (inline, Some(shared)),
                Err(e) => {
                    self.counters.errors += 1;
                    if !one_way && FrameKind::from_u8(h.kind) == Some(FrameKind::Data) {
                        let (kind, why) = (e.kind(), e.to_string());
                        self.answer_error(back, (dst, h.src), request_id, kind, &why);
                    }
                    return;
                }
            }
        } else {
            (body, None)
        };
        let fragment_len = inline.len() + shared.as_ref().map_or(0, |s| s.len());
        self.counters.bytes_received += fragment_len as u64;
        let meta_len = if compact { 0 } else { h.aux as usize };
        let (metadata, data): (Vec<u8>, Body<'_>) = if offset == 0 && fragment_len == total {
            // The whole message in one fragment: no reassembly, no copy of a shared buffer.
            match shared {
                None if meta_len <= inline.len() => (
                    inline[..meta_len].to_vec(),
                    Body::Borrowed(&inline[meta_len..]),
                ),
                Some(s) if meta_len == inline.len() => (inline.to_vec(), Body::Owned(s)),
                _ => {
                    self.counters.errors += 1;
                    return;
                }
            }
        } else {
            // Reassembly: fragments of one message arrive in order on one ring.
            let key = (h.src, request_id, h.kind);
            let shared_bytes: &[u8] = shared.as_deref().unwrap_or(&[]);
            let step = self.partial.add(
                key,
                (offset, total),
                &[inline, shared_bytes],
                MAX_MESSAGE,
                self.timers.now,
            );
            drop(shared);
            let whole = match step {
                reassembly::Step::More => return,
                reassembly::Step::Rejected => {
                    self.counters.errors += 1;
                    return;
                }
                reassembly::Step::Done(whole) => whole,
            };
            if meta_len > whole.len() {
                self.counters.errors += 1;
                return;
            }
            (
                whole[..meta_len].to_vec(),
                Body::Owned(Payload::from_vec_at(whole, meta_len)),
            )
        };
        self.deliver(
            dst,
            Arrived {
                h,
                request_id,
                priority,
                data_type,
                one_way,
                metadata,
                data,
                known,
                back,
            },
        );
    }

    /// Delivers a message that arrived whole (reassembled from fragments that came over
    /// TCP): `whole` is its metadata then its data, `h` and `m` its slot and message header
    /// (mapped onto this process's indices).
    pub(super) fn deliver_assembled(&mut self, h: SlotHeader, m: &MsgHeader, whole: Vec<u8>) {
        let meta_len = h.aux as usize;
        if meta_len > whole.len() {
            self.counters.errors += 1;
            return;
        }
        let h = SlotHeader { src: m.origin, ..h };
        self.deliver(
            m.dst,
            Arrived {
                h,
                request_id: m.id,
                priority: m.priority(),
                data_type: DataType::from_u32(m.data_type as u32).unwrap_or_default(),
                one_way: h.flags & FLAG_ONE_WAY != 0,
                metadata: whole[..meta_len].to_vec(),
                data: Body::Owned(Payload::from_vec_at(whole, meta_len)),
                known: None,
                back: None,
            },
        );
    }

    /// The delivery of a whole message at hosted node `dst`: opening a codec frame, the
    /// admission check, its handler or mailbox, and the answers.
    fn deliver(&mut self, dst: u32, a: Arrived<'_>) {
        let Arrived {
            h,
            request_id,
            priority,
            data_type,
            one_way,
            mut metadata,
            mut data,
            known,
            back,
        } = a;
        // The frame of an answer (response, receipt, pong) to this message.
        let reply = |kind| answer_frame(kind, request_id, priority, data_type);
        let mut sealed = false;
        if h.flags & FLAG_FRAMED != 0 {
            // The ring's envelope, which a sealed frame must have been sealed in.
            let origin_id = self.name_of(h.src);
            let destination_id = self.hosted.get(&dst).map_or("", |n| n.id.as_str());
            let envelope = crate::codec::Envelope {
                origin: h.src,
                origin_id: &origin_id,
                destination: dst,
                destination_id,
                destination_generation: self.hosted_generation(dst).unwrap_or(0),
                kind: h.kind,
                request_id,
            };
            let open = self.opener.as_mut().map(|o| (o, &envelope));
            match crate::codec::decode_frame(data.bytes(), open, max_message()) {
                Ok(f) => {
                    sealed = f.header.flags & crate::codec::flags::ENCRYPTED != 0;
                    metadata = f.metadata;
                    data = Body::Owned(Payload::from_vec(f.payload));
                }
                Err(e) => {
                    // Dropped, counted, and the sender told.
                    self.counters.errors += 1;
                    if !one_way {
                        let (kind, why) = (e.kind(), e.to_string());
                        self.answer_error(back, (dst, h.src), request_id, kind, &why);
                    }
                    return;
                }
            }
        }
        match FrameKind::from_u8(h.kind) {
            Some(FrameKind::Data) => {
                let source = match known {
                    Some(source) => source,
                    None => self.name_of(h.src),
                };
                if let Some(admit) = self.admit.as_mut() {
                    let to = self.hosted.get(&dst).map_or("", |n| n.id.as_str());
                    if let Some((kind, why)) = admit(&source, to, sealed) {
                        // Dropped at delivery, counted, and the sender told.
                        self.counters.errors += 1;
                        if !one_way {
                            self.answer_error(back, (dst, h.src), request_id, kind, &why);
                        }
                        return;
                    }
                }
                let Some(node) = self.hosted.get_mut(&dst) else {
                    if !one_way {
                        let msg =
                            format!("node index {dst} is not hosted by the receiving process");
                        let to = (dst, h.src);
                        self.answer_error(back, to, request_id, ErrorKind::NodeNotFound, &msg);
                    }
                    return;
                };
                if h.flags & FLAG_COALESCED != 0 {
                    // A batch of events: each is a message of its own, in order.
                    let mut rest = data.bytes();
                    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
                        let len = u32::from_le_bytes(*len) as usize;
                        let Some(event) = tail.get(..len) else {
                            self.counters.errors += 1;
                            break;
                        };
                        rest = &tail[len..];
                        let msg = Message {
                            source,
                            destination: node.id,
                            data: Payload::copy_from(event),
                            data_type,
                            priority,
                            metadata: Vec::new(),
                            request_id,
                            one_way: true,
                        };
                        match node.handler.as_mut() {
                            Some(handler) => {
                                let _running = self.handler_watch.enter();
                                let _ = run(handler, &msg, &mut self.reply);
                                self.reply.reset();
                            }
                            None => node.mailbox.push(msg),
                        }
                    }
                    return;
                }
                let data = match data {
                    // SAFETY: a handler gets the message by reference only (a borrow it
                    // cannot keep: `Handler` takes `&Message` for any lifetime), and the
                    // message is dropped at the end of this block, before the ring slot the
                    // bytes are in is released by the `try_pop` whose callback this is.
                    // Without handler the message is queued, so it owns its bytes.
                    Body::Borrowed(b) if node.handler.is_some() => unsafe { Payload::borrowed(b) },
                    data => data.into_payload(),
                };
                let msg = Message {
                    source,
                    destination: node.id,
                    data,
                    data_type,
                    priority,
                    metadata,
                    request_id,
                    one_way,
                };
                match node.handler.as_mut() {
                    Some(handler) if !one_way => {
                        let mut answer = std::mem::take(&mut self.reply);
                        let running = self.handler_watch.enter();
                        let answered = run(handler, &msg, &mut answer);
                        drop(running);
                        match answered {
                            Ok(()) => {
                                let o = reply(FrameKind::Response);
                                self.answer(back, (dst, h.src), &o, answer.as_slice())
                            }
                            Err(e) => {
                                self.counters.errors += 1;
                                let (kind, why) = (e.kind(), e.to_string());
                                self.answer_error(back, (dst, h.src), request_id, kind, &why);
                            }
                        }
                        answer.reset();
                        self.reply = answer;
                    }
                    Some(handler) => {
                        let _running = self.handler_watch.enter();
                        let _ = run(handler, &msg, &mut self.reply);
                        self.reply.reset();
                    }
                    None => {
                        node.mailbox.push(msg);
                        if !one_way {
                            let o = reply(FrameKind::Ack);
                            self.answer(back, (dst, h.src), &o, &[]);
                        }
                    }
                }
            }
            Some(FrameKind::Ping) if self.hosted.contains_key(&dst) => {
                // The pong carries the path the ping took, with this node at its end.
                let mut path = metadata;
                path.extend_from_slice(&dst.to_le_bytes());
                let pong = Outgoing {
                    metadata: &path,
                    ..reply(FrameKind::Pong)
                };
                self.send_reply(dst, h.src, &pong, data.bytes());
            }
            // Answers count only from the node the request went to (ids are per process, so
            // another node could name the same id); errors may come from a node on the way.
            Some(FrameKind::Pong) => {
                if let Some(p) = self.pending.get_mut(&request_id).filter(|p| p.dst == h.src) {
                    p.complete(Ok(metadata));
                }
            }
            Some(FrameKind::Response | FrameKind::Ack) => {
                let bytes = match data {
                    Body::Borrowed(b) => b.to_vec(),
                    Body::Owned(p) => p.into_vec(),
                };
                match self.pending.get_mut(&request_id) {
                    Some(p) if p.dst == h.src => p.complete(Ok(bytes)),
                    Some(_) => {}
                    None => self.answer_endpoint(request_id, Some(h.src), Ok(bytes)),
                }
            }
            Some(FrameKind::Error) => match self.pending.get_mut(&request_id) {
                Some(p) => p.complete(Err(decode_error(data.bytes()))),
                None => self.answer_endpoint(request_id, None, Err(decode_error(data.bytes()))),
            },
            _ => {}
        }
    }

    /// Splits a descriptor fragment (after the message header) into its inline bytes and the
    /// buffer it names, which the returned payload owns.
    pub(super) fn take_descriptor<'p>(&mut self, rest: &'p [u8]) -> Result<(&'p [u8], Payload)> {
        let d = Descriptor::decode(rest)
            .ok_or_else(|| Error::MalformedFrame("descriptor frame too short".into()))?;
        let payload = self.segments.take(self.registry.dir(), &d)?;
        Ok((&rest[Descriptor::LEN..], payload))
    }
}

/// Runs `handler` on `msg`. A panic in it is its error: it does not unwind through the
/// engine, in the middle of whose poll the handler runs (on whichever thread polls it), and
/// a request gets the error as its answer. The panic hook has printed the panic.
fn run(handler: &mut super::Handler, msg: &super::Message, reply: &mut super::Reply) -> Result<()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(msg, reply))).unwrap_or_else(
        |p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::io(
                "the receiving node's handler",
                std::io::Error::other(format!("panicked: {what}")),
            ))
        },
    )
}
