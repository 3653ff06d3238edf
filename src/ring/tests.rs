//! The ring algorithm over process-local memory: order, wrap-around and padding, the format-v2
//! guarantees (no phantom message from stale payload), and the checks of what the consumer
//! reads from shared memory.

use super::*;

fn ring(cap: usize) -> (Producer<Region>, Consumer<Region>) {
    split(Arc::new(Region::heap(cap).unwrap()))
}

fn pop_vec(c: &mut Consumer<Region>) -> Option<(SlotHeader, Vec<u8>)> {
    c.try_pop(|h, d| (h, d.to_vec())).expect("ring not corrupt")
}

#[test]
fn slot_arithmetic() {
    assert_eq!(slots_for(0), 1);
    assert_eq!(slots_for(48), 1);
    assert_eq!(slots_for(49), 2);
    assert_eq!(slots_for(48 + 64), 2);
    assert_eq!(slots_for(48 + 65), 3);
    assert_eq!(max_payload(8), 48 + 3 * 64);
}

#[test]
fn a_message_left_is_read_again_and_keeps_its_room() {
    let (mut p, mut c) = ring(4);
    let h = |src| SlotHeader {
        kind: 1,
        flags: 0,
        aux: 0,
        src,
        len: 0,
    };
    // Three slots, then padding to the end and a wrapped message: both are left once.
    for src in 0..3 {
        p.try_push(h(src), &[&[src as u8; 40]]).unwrap();
    }
    for src in 0..3 {
        let left = c.try_pop_or_leave(|h, d| ((h.src, d.to_vec()), false));
        assert_eq!(left, Ok(Some((src, vec![src as u8; 40]))));
        assert_eq!(pop_vec(&mut c).map(|(h, _)| h.src), Some(src));
    }
    p.try_push(h(3), &[&[3; 100]]).unwrap();
    // A message left holds its slots: the producer finds no room behind it.
    assert_eq!(c.try_pop_or_leave(|h, _| (h.src, false)), Ok(Some(3)));
    c.publish();
    assert_eq!(p.try_push(h(4), &[&[4; 100]]), Err(PushError::Full));
    assert_eq!(
        pop_vec(&mut c).map(|(h, d)| (h.src, d.len())),
        Some((3, 100))
    );
    assert_eq!(pop_vec(&mut c), None);
    p.try_push(h(4), &[&[4; 100]]).unwrap();
}

#[test]
fn messages_arrive_in_order_across_wraps_and_padding() {
    let (mut p, mut c) = ring(16);
    let mut expect = std::collections::VecDeque::new();
    let mut next = 0u32;
    for round in 0..2000usize {
        let len = (round * 37) % (max_payload(16) + 1);
        let payload: Vec<u8> = (0..len).map(|i| (i as u32 ^ next) as u8).collect();
        let h = SlotHeader {
            kind: 1,
            flags: 2,
            aux: 3,
            src: next,
            len: 0,
        };
        match p.try_push(h, &[&payload[..len / 2], &payload[len / 2..]]) {
            Ok(()) => {
                expect.push_back((next, payload));
                next += 1;
            }
            Err(PushError::Full) => {
                while let Some((h, data)) = pop_vec(&mut c) {
                    let (e_src, e_data) = expect.pop_front().unwrap();
                    assert_eq!((h.src, &data), (e_src, &e_data));
                }
            }
            Err(e) => unreachable!("len within max_payload: {e:?}"),
        }
    }
    while let Some((h, data)) = pop_vec(&mut c) {
        let (e_src, e_data) = expect.pop_front().unwrap();
        assert_eq!((h.src, &data), (e_src, &e_data));
    }
    assert!(expect.is_empty());
    let big = vec![0u8; max_payload(16) + 1];
    assert_eq!(
        p.try_push(SlotHeader::default(), &[&big]),
        Err(PushError::TooLarge)
    );
}

/// `peek` shows the header of the message `try_pop` takes next, across wraps and padding,
/// and takes nothing itself.
#[test]
fn peek_shows_the_next_header_and_takes_nothing() {
    let (mut p, mut c) = ring(16);
    assert_eq!(c.peek(), None);
    let mut next = 0u32;
    let mut taken = 0u32;
    for round in 0..500usize {
        let len = (round * 53) % (max_payload(16) + 1);
        let h = SlotHeader {
            kind: 1,
            flags: round as u8,
            aux: 0,
            src: next,
            len: 0,
        };
        if p.try_push(h, &[&vec![7u8; len]]).is_ok() {
            next += 1;
            continue;
        }
        while let Some(seen) = c.peek() {
            assert_eq!(c.peek(), Some(seen));
            let (h, _) = pop_vec(&mut c).unwrap();
            assert_eq!((h.src, h.flags), (seen.src, seen.flags));
            assert_eq!(h.src, taken);
            taken += 1;
        }
        assert!(pop_vec(&mut c).is_none());
    }
    while let Some(seen) = c.peek() {
        assert_eq!(pop_vec(&mut c).unwrap().0.src, seen.src);
        taken += 1;
    }
    assert_eq!(taken, next);
}

/// A continuation slot whose first payload word equals the sequence the consumer will expect
/// at that slot one lap later (then a valid-looking header after it) must not be read as a
/// message: format v1 delivered it.
#[test]
fn stale_payload_is_never_read_as_a_message() {
    const CAP: usize = 16;
    let (mut p, mut c) = ring(CAP);
    // Message 0 takes slots 0..4; continuation slot j (1..4) starts at payload byte
    // 48 + 64 * (j - 1). Position CAP + j maps to slot j next lap: forge its sequence word,
    // then a header claiming 8 bytes of kind 1.
    let len = INLINE_PAYLOAD + 3 * SLOT_SIZE;
    let mut payload = vec![0xa5u8; len];
    for j in 1..4usize {
        let at = INLINE_PAYLOAD + SLOT_SIZE * (j - 1);
        payload[at..at + 4].copy_from_slice(&((CAP + j) as u32 + 1).to_le_bytes());
        payload[at + 4..at + 8].copy_from_slice(&8u32.to_le_bytes());
        payload[at + 8] = 1;
    }
    let h = SlotHeader {
        kind: 7,
        ..Default::default()
    };
    p.try_push(h, &[&payload]).unwrap();
    assert_eq!(pop_vec(&mut c).unwrap().1, payload);
    // Fill the rest of the lap and the first slot of the next one, one message each.
    for i in 0..(CAP - 4 + 1) as u32 {
        let h = SlotHeader {
            kind: 1,
            src: i,
            ..Default::default()
        };
        p.try_push(h, &[&i.to_le_bytes()]).unwrap();
        assert_eq!(pop_vec(&mut c).unwrap().0.src, i);
    }
    // The consumer now waits at position CAP + 1 (slot 1), which nobody wrote this lap.
    assert!(!c.has_message(), "stale payload read as a sequence word");
    assert_eq!(pop_vec(&mut c), None);
    // Real messages after it arrive, and only they.
    for i in 100..110u32 {
        let h = SlotHeader {
            kind: 1,
            src: i,
            ..Default::default()
        };
        p.try_push(h, &[&[1u8; 8]]).unwrap();
        assert_eq!(pop_vec(&mut c).unwrap().0.src, i);
    }
    assert_eq!(pop_vec(&mut c), None);
}

/// Writes a published first slot at position `pos` with a forged header, as another process
/// with write access to the mapping could.
fn forge(p: &Producer<Region>, pos: u64, len: u32, kind: u8) {
    let idx = (pos as usize) & (p.capacity() - 1);
    let h = SlotHeader {
        len,
        kind,
        ..Default::default()
    };
    // SAFETY: the test owns both ends; nothing reads the slot concurrently.
    unsafe { p.mem.write(idx, 4, &h.encode()) };
    p.mem.seq(idx).store(seq_of(pos), Ordering::Release);
}

#[test]
fn forged_lengths_poison_the_ring_instead_of_reading_past_it() {
    for (len, kind, why) in [
        (60_000u32, 1u8, "length"),
        (8 << 20, 1, "length"),
        (u32::MAX, 1, "length"),
        (3, KIND_PAD, "padding"),
        (0, KIND_PAD, "padding"),
    ] {
        let (mut p, mut c) = ring(1024);
        p.try_push(
            SlotHeader {
                kind: 1,
                ..Default::default()
            },
            &[b"real"],
        )
        .unwrap();
        assert_eq!(pop_vec(&mut c).unwrap().1, b"real");
        forge(&p, 1, len, kind);
        let err = c.try_pop(|_, d| d.len()).unwrap_err();
        assert!(err.to_string().contains(why), "{err} ({len}, {kind})");
        // Nothing more is read, the header says so, and the producer is refused once it
        // needs the consumer's head.
        assert!(c.try_pop(|_, d| d.len()).is_err());
        assert!(!c.has_message());
        assert!(p.is_corrupt());
        let mut pushed = 0;
        let refused = loop {
            match p.try_push(SlotHeader::default(), &[&[0u8; 8]]) {
                Ok(()) => pushed += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(refused, PushError::Corrupt);
        assert!(pushed < 1024);
    }
}

#[test]
fn forged_positions_in_the_header_poison_the_ring_when_it_is_opened() {
    for (head, tail) in [
        (u64::MAX, u64::MAX),
        (0, 1 << 40),
        (1 << 40, 0),
        (5, 5 + 17),
    ] {
        let region = Arc::new(Region::heap(16).unwrap());
        region.head().store(head, Ordering::Relaxed);
        region.tail().store(tail, Ordering::Relaxed);
        let (mut p, mut c) = split(region);
        assert!(c.try_pop(|_, d| d.len()).is_err(), "{head} {tail}");
        assert_eq!(
            p.try_push(SlotHeader::default(), &[&[0u8; 8]]),
            Err(PushError::Corrupt)
        );
    }
}

#[test]
fn a_forged_head_is_refused_by_the_producer() {
    let (mut p, _c) = ring(16);
    for _ in 0..15 {
        p.try_push(SlotHeader::default(), &[&[0u8; 8]]).unwrap();
    }
    // A head past the tail would let the producer overwrite unread slots.
    p.mem.head().store(1_000, Ordering::Release);
    assert_eq!(
        p.try_push(SlotHeader::default(), &[&[0u8; 8]]),
        Err(PushError::Corrupt)
    );
}

/// A consumer that only pops rings with messages (`ready`) still releases a drained ring:
/// 372 x 8 B, 1 x 8,176 B, 100 x 8 B, drained, then a message of half the ring fits.
#[test]
fn a_drained_ring_is_released_to_the_producer() {
    let (mut p, mut c) = ring(1024);
    let send = |p: &mut Producer<Region>, len: usize| {
        p.try_push(
            SlotHeader {
                kind: 1,
                ..Default::default()
            },
            &[&vec![7u8; len]],
        )
    };
    for len in std::iter::repeat_n(8, 372)
        .chain([8_176])
        .chain(std::iter::repeat_n(8, 100))
    {
        send(&mut p, len).unwrap();
        while c.ready() {
            pop_vec(&mut c).unwrap();
        }
    }
    assert!(!c.ready());
    send(&mut p, max_payload(1024)).expect("the drained ring has room");
}

#[test]
fn a_new_consumer_starts_where_the_last_one_stopped() {
    let region = Arc::new(Region::heap(64).unwrap());
    let (mut p, mut c) = split(region.clone());
    for i in 0..5u32 {
        let h = SlotHeader {
            src: i,
            ..Default::default()
        };
        p.try_push(h, &[&[0u8; 8]]).unwrap();
    }
    for i in 0..3 {
        assert_eq!(pop_vec(&mut c).unwrap().0.src, i);
    }
    drop(c);
    let (_, mut c) = split(region);
    assert_eq!(pop_vec(&mut c).unwrap().0.src, 3);
}

#[test]
fn two_threads_stream_without_loss() {
    let (mut p, mut c) = ring(64);
    const N: u32 = 200_000;
    let t = std::thread::spawn(move || {
        for i in 0..N {
            let len = (i % 300) as usize;
            // Payload words that look like sequence words of nearby positions.
            let payload: Vec<u8> = (0..len)
                .map(|k| (i.wrapping_add(k as u32 / 4)) as u8)
                .collect();
            let h = SlotHeader {
                kind: 7,
                src: i,
                ..Default::default()
            };
            while p.try_push(h, &[&payload]) == Err(PushError::Full) {
                std::hint::spin_loop();
            }
        }
    });
    let mut i = 0u32;
    while i < N {
        if let Some(ok) = c
            .try_pop(|h, d| {
                h.src == i
                    && h.kind == 7
                    && d.len() == (i % 300) as usize
                    && d.iter()
                        .enumerate()
                        .all(|(k, &b)| b == (i.wrapping_add(k as u32 / 4)) as u8)
            })
            .unwrap()
        {
            assert!(ok, "message {i} corrupted");
            i += 1;
        }
    }
    t.join().unwrap();
    assert!(!c.has_message());
}

/// Slots taken by pushing a message of `len` bytes at position `tail` of a ring of `cap`
/// slots, padding included: an independent statement of the layout rules.
fn model_slots(cap: u64, tail: u64, len: usize) -> u64 {
    let n = if len <= 48 {
        1
    } else {
        1 + (len as u64 - 48).div_ceil(64)
    };
    let idx = tail % cap;
    if idx + n > cap {
        cap - idx + n
    } else {
        n
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Random size mixes (sizes at the inline limit, which need padding, included), pushed and
    /// drained in random batches: every message arrives once, in order, intact; and whenever
    /// the consumer has drained the ring (a poll found it empty), the producer's view of free
    /// space is exact: pushes succeed until the model says the next one does not fit, and a
    /// message of the largest size always fits into a drained ring.
    #[test]
    fn producers_see_all_the_room_a_drained_ring_has(
        cap_log in 4u32..8,
        ops in proptest::collection::vec((0usize..4, 0usize..3, 1usize..40), 1..40),
    ) {
        let cap = 1usize << cap_log;
        let max = max_payload(cap);
        let (mut p, mut c) = ring(cap);
        let mut next = 0u32;
        let mut expect = std::collections::VecDeque::new();
        let mut tail = 0u64;
        for (size_class, drain, count) in ops {
            for _ in 0..count {
                let len = match size_class {
                    0 => (next as usize * 7) % 49,
                    1 => max,
                    2 => max - (next as usize % 64),
                    _ => (next as usize * 131) % (max + 1),
                };
                let h = SlotHeader { src: next, ..Default::default() };
                let payload = vec![next as u8; len];
                match p.try_push(h, &[&payload]) {
                    Ok(()) => {
                        tail += model_slots(cap as u64, tail, len);
                        expect.push_back((next, len));
                        next += 1;
                    }
                    Err(PushError::Full) => {
                        // Full is only allowed while unread slots hold the room.
                        proptest::prop_assert!(!expect.is_empty(), "full while drained");
                        break;
                    }
                    Err(e) => proptest::prop_assert!(false, "{e:?}"),
                }
            }
            // Exactly the messages there are: the consumer never polls an empty ring here, so
            // only `ready` (as a receiver polls) may publish a drained ring's position.
            let take = match drain { 0 => 0, 1 => expect.len() / 2, _ => expect.len() };
            for _ in 0..take {
                let (h, d) = pop_vec(&mut c).expect("a message waits");
                let (src, len) = expect.pop_front().unwrap();
                proptest::prop_assert_eq!((h.src, d.len()), (src, len));
                proptest::prop_assert!(d.iter().all(|&b| b == src as u8));
            }
            if expect.is_empty() {
                // Drained: the next poll finds the ring empty and publishes its position.
                proptest::prop_assert!(!c.ready());
                // The producer now fits exactly what the model says.
                let mut fits = 0u64;
                let mut t = tail;
                // A push also needs the slot after the message (its boundary word is cleared).
                while t + model_slots(cap as u64, t, 40) + 1 - tail <= cap as u64 {
                    t += model_slots(cap as u64, t, 40);
                    fits += 1;
                }
                for k in 0..fits {
                    let h = SlotHeader { src: next, ..Default::default() };
                    proptest::prop_assert!(p.try_push(h, &[&[next as u8; 40]]).is_ok(), "push {} of {}", k, fits);
                    tail += model_slots(cap as u64, tail, 40);
                    expect.push_back((next, 40));
                    next += 1;
                }
                proptest::prop_assert_eq!(
                    p.try_push(SlotHeader::default(), &[&[0u8; 40]]),
                    Err(PushError::Full)
                );
                while let Some((src, len)) = expect.pop_front() {
                    let (h, d) = pop_vec(&mut c).expect("a message waits");
                    proptest::prop_assert_eq!((h.src, d.len()), (src, len));
                }
                proptest::prop_assert!(!c.ready());
                let h = SlotHeader { src: next, ..Default::default() };
                proptest::prop_assert!(p.try_push(h, &[&vec![next as u8; max]]).is_ok(), "largest into drained");
                tail += model_slots(cap as u64, tail, max);
                expect.push_back((next, max));
                next += 1;
            }
        }
    }
}

#[test]
fn a_doorstep_sees_the_next_message_without_the_consumer() {
    let (mut p, mut c) = ring(8);
    let door = c.doorstep();
    assert!(!door.may_hold(c.position()), "an empty ring");
    p.try_push(SlotHeader::default(), &[b"one"]).unwrap();
    assert!(door.may_hold(c.position()), "the message pushed");
    assert_eq!(pop_vec(&mut c).unwrap().1, b"one");
    assert!(!door.may_hold(c.position()), "nothing after it");
    // Around the ring and back: the view follows the laps.
    for i in 0..20u8 {
        p.try_push(SlotHeader::default(), &[&[i]]).unwrap();
        assert!(door.may_hold(c.position()));
        assert_eq!(pop_vec(&mut c).unwrap().1, [i]);
        assert!(!door.may_hold(c.position()));
    }
}

#[test]
fn a_probe_measures_how_long_the_consumer_took_to_reach_the_queue_it_marked() {
    let (mut p, mut c) = ring(64);
    let h = SlotHeader {
        kind: 1,
        flags: 0,
        aux: 0,
        src: 0,
        len: 0,
    };
    let probe = |p: &Producer<Region>| {
        let pr = p.mem.probe().unwrap();
        (
            pr.position.load(Ordering::Relaxed),
            pr.completed.load(Ordering::Relaxed),
            pr.last_delay_ns.load(Ordering::Relaxed),
        )
    };
    // Nothing queued: no mark.
    p.mark_probe(crate::sys::monotonic_ns());
    assert_eq!(probe(&p).0, 0);
    for _ in 0..3 {
        p.try_push(h, &[&[7; 40]]).unwrap();
    }
    // Marked 5 ms in the past: the consumer takes all three, then finds the ring empty.
    p.mark_probe(crate::sys::monotonic_ns() - 5_000_000);
    assert_eq!(probe(&p).0, 3);
    // One mark at a time.
    p.mark_probe(crate::sys::monotonic_ns());
    assert_eq!(probe(&p).0, 3);
    assert!(pop_vec(&mut c).is_some());
    assert_eq!(probe(&p).1, 0, "not reached before its position");
    while pop_vec(&mut c).is_some() {}
    let (pos, done, delay) = probe(&p);
    assert_eq!((pos, done), (0, 1));
    assert!((5_000_000..1_000_000_000).contains(&delay), "{delay}");
    // A time from the future (a forged clock word) reads as no delay, not a wrapped one.
    p.try_push(h, &[&[7; 40]]).unwrap();
    p.mark_probe(u64::MAX);
    while pop_vec(&mut c).is_some() {}
    assert_eq!(probe(&p).1, 2);
    assert_eq!(probe(&p).2, 0);
    // A mark a minute old or more is cleared without being recorded.
    p.try_push(h, &[&[7; 40]]).unwrap();
    p.mark_probe(1);
    while pop_vec(&mut c).is_some() {}
    assert_eq!(probe(&p), (0, 2, 0));
    // A forged position no producer reaches: the consumer clears it without measuring,
    // and the producer marks over one past its tail, so probes go on.
    let mem = p.mem.clone();
    let pr = mem.probe().unwrap();
    pr.position.store(u64::MAX, Ordering::Relaxed);
    p.try_push(h, &[&[7; 40]]).unwrap();
    while pop_vec(&mut c).is_some() {}
    assert_eq!(probe(&p).0, 0);
    pr.position.store(u64::MAX, Ordering::Relaxed);
    p.try_push(h, &[&[7; 40]]).unwrap();
    p.mark_probe(crate::sys::monotonic_ns());
    assert_eq!(probe(&p).0, p.tail);
    while pop_vec(&mut c).is_some() {}
    assert_eq!(probe(&p).1, 3);
}
