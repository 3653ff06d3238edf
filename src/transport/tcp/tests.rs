//! The reactor on loopback: frames both ways in order, in both receive modes; a peer that
//! breaks the framing, stops inside a frame, or claims a huge frame costs only its own
//! connection.

use super::reactor::{ZcStats, ZeroCopy, ZC_SLOTS};
use super::wire::HEADER;
use super::*;
use crate::ring::SlotHeader;
use crate::transport::channel::Lane;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const MAX: usize = 80 << 10;

/// A reactor in `mode`; `None` (with the reason printed) for multishot receives on a
/// kernel without them (the single-receive tests cover that kernel). The transport needs
/// io_uring: without it these tests fail, saying why.
pub(super) fn reactor(mode: RecvMode) -> Option<Reactor> {
    let s = crate::sys::uring::probe();
    assert!(s.available, "io_uring is needed: {:?}", s.error);
    if mode == RecvMode::Multishot && !s.recv_multishot {
        eprintln!("skipped: no multishot receives on kernel {}", s.kernel);
        return None;
    }
    Some(Reactor::new(MAX, Some(mode), false).expect("a reactor where the probe found io_uring"))
}

pub(super) fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

pub(super) fn header(src: u32, len: usize) -> FrameHeader {
    FrameHeader {
        slot: SlotHeader {
            len: len as u32,
            kind: 1,
            flags: 0,
            aux: (src % 7) as u16,
            src,
        },
        dst: 40,
        lane: if src % 3 == 0 {
            Lane::Bulk
        } else {
            Lane::Latency
        },
    }
}

/// Frame `i`'s payload: its length varies from 0 to 70 KiB, its bytes name it.
pub(super) fn payload(i: u32) -> Vec<u8> {
    let len = match i % 5 {
        0 => 0,
        1 => 8,
        2 => 1500,
        3 => 16 << 10,
        _ => 70_000,
    } + (i as usize * 13) % 97;
    (0..len)
        .map(|k| (k as u32).wrapping_mul(31) as u8 ^ i as u8)
        .collect()
}

/// Sends `n` frames on `id` while receiving `n` from the peer, checking each; fails the
/// test at a deadline rather than hang.
fn exchange(r: &mut Reactor, id: ConnId, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut sent, mut got) = (0u32, 0u32);
    let mut closed = false;
    while sent < n || got < n || !(r.is_flushed(id) || closed) {
        assert!(
            Instant::now() < deadline,
            "stuck: sent {sent}, got {got} of {n}"
        );
        if sent < n {
            let p = payload(sent);
            if r.send(
                id,
                &header(sent, p.len()),
                &[&p[..p.len() / 2], &p[p.len() / 2..]],
            )
            .unwrap()
            {
                sent += 1;
            }
        }
        r.wait(Duration::from_millis(5), &mut |from, e| match e {
            Event::Frame(h, data) => {
                assert_eq!(from, id);
                assert_eq!(h, header(got, data.len()), "frame {got}");
                assert!(data == payload(got).as_slice(), "bytes of frame {got}");
                got += 1;
            }
            // The peer leaves once it has everything: only an early close is wrong.
            Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
            Event::Closed(why) => {
                assert!(got == n, "closed after {got} frames: {why}");
                closed = true;
            }
        });
    }
}

fn both_ways(mode: RecvMode) {
    let (Some(mut a), Some(mut b)) = (reactor(mode), reactor(mode)) else {
        return;
    };
    assert_eq!(a.mode(), mode);
    let (c, s) = pair();
    let ca = a.add(c).unwrap();
    let cb = b.add(s).unwrap();
    let other = std::thread::spawn(move || exchange(&mut b, cb, 3000));
    exchange(&mut a, ca, 3000);
    other.join().unwrap();
}

#[test]
fn frames_cross_both_ways_in_order_with_multishot_receives() {
    both_ways(RecvMode::Multishot);
}

#[test]
fn frames_cross_both_ways_in_order_with_single_receives() {
    both_ways(RecvMode::Single);
}

/// Polls `r` until every one of `ids` closed: for each, the frames that came first and
/// why it closed.
pub(super) fn until_closed(r: &mut Reactor, ids: &[ConnId]) -> Vec<(Vec<Vec<u8>>, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out: Vec<(Vec<Vec<u8>>, Option<String>)> = vec![(Vec::new(), None); ids.len()];
    while out.iter().any(|o| o.1.is_none()) {
        assert!(Instant::now() < deadline, "never closed: {out:?}");
        r.wait(Duration::from_millis(10), &mut |from, e| {
            if let Some(i) = ids.iter().position(|&x| x == from) {
                match e {
                    Event::Frame(_, d) => out[i].0.push(d.to_vec()),
                    Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
                    Event::Closed(w) => out[i].1 = Some(w.to_string()),
                }
            }
        });
    }
    out.into_iter()
        .map(|(f, w)| (f, w.expect("closed")))
        .collect()
}

fn hostile(mode: RecvMode) {
    let Some(mut r) = reactor(mode) else {
        return;
    };
    let good = |i: u32| [&header(i, 3).encode()[..], b"abc"].concat();
    // Garbage after a good frame.
    let (mut c1, s1) = pair();
    // A frame cut off by the peer's close.
    let (mut c2, s2) = pair();
    // A header claiming a gigabyte.
    let (mut c3, s3) = pair();
    // A well-behaved peer on the same reactor.
    let (mut c4, s4) = pair();
    let ids: Vec<ConnId> = [s1, s2, s3, s4].map(|s| r.add(s).unwrap()).into();
    c1.write_all(&[good(0), vec![0xee; 64]].concat()).unwrap();
    c2.write_all(&good(0)[..HEADER + 1]).unwrap();
    c2.shutdown(std::net::Shutdown::Write).unwrap();
    let mut huge = header(0, 0).encode();
    huge[0..4].copy_from_slice(&(1u32 << 30).to_le_bytes());
    c3.write_all(&huge).unwrap();

    let closed = until_closed(&mut r, &ids[..3]);
    assert_eq!(closed[0].0, [b"abc".to_vec()]);
    assert!(closed[0].1.contains("mark"), "{}", closed[0].1);
    assert!(closed[1].0.is_empty());
    assert!(closed[1].1.contains("inside a frame"), "{}", closed[1].1);
    assert!(closed[2].1.contains("longer than"), "{}", closed[2].1);
    // Sending on a closed connection is an error, not a hang.
    assert!(r.send(ids[0], &header(0, 0), &[]).is_err());

    // The good peer is unaffected: its frames come, and it gets ours.
    c4.write_all(&[good(1), good(2)].concat()).unwrap();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < 2 {
        assert!(Instant::now() < deadline);
        r.wait(Duration::from_millis(10), &mut |from, e| {
            if let Event::Frame(h, d) = e {
                assert_eq!((from, d), (ids[3], &b"abc"[..]));
                got += 1;
                assert_eq!(h.slot.src, got);
            }
        });
    }
    assert!(r.send(ids[3], &header(9, 2), &[b"ok"]).unwrap());
    let mut back = [0u8; HEADER + 2];
    c4.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Read::read_exact(&mut c4, &mut back).unwrap();
    assert_eq!(&back[HEADER..], b"ok");
}

#[test]
fn hostile_peers_cost_only_their_own_connection_with_multishot_receives() {
    hostile(RecvMode::Multishot);
}

#[test]
fn hostile_peers_cost_only_their_own_connection_with_single_receives() {
    hostile(RecvMode::Single);
}

#[test]
fn a_frame_larger_than_the_limit_or_unlike_its_header_is_refused_before_sending() {
    let Some(mut r) = reactor(RecvMode::Single) else {
        return;
    };
    let (c, _s) = pair();
    let id = r.add(c).unwrap();
    let big = vec![0u8; MAX + 1];
    assert!(r.send(id, &header(0, big.len()), &[&big]).is_err());
    assert!(r.send(id, &header(0, 5), &[b"abc"]).is_err());
}

#[test]
fn an_id_outlives_its_connection_without_reaching_the_next_one() {
    let Some(mut r) = reactor(RecvMode::Single) else {
        return;
    };
    let (c1, s1) = pair();
    let old = r.add(s1).unwrap();
    drop(c1);
    until_closed(&mut r, &[old]);
    // The slot is taken by a new connection: the old id names nothing.
    let (mut c2, s2) = pair();
    let new = r.add(s2).unwrap();
    assert_ne!(old, new);
    assert!(r.send(old, &header(7, 5), &[b"stale"]).is_err());
    r.close(old);
    assert!(r.send(new, &header(8, 5), &[b"fresh"]).unwrap());
    let mut got = [0u8; HEADER + 5];
    c2.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Read::read_exact(&mut c2, &mut got).unwrap();
    assert_eq!(&got[HEADER..], b"fresh");
    // An id of another reactor, or of a slot it never had, is ignored too.
    let Some(mut other) = reactor(RecvMode::Single) else {
        return;
    };
    other.close(new);
    assert!(other.send(new, &header(0, 0), &[]).is_err());
    assert!(other.is_flushed(new));
}

/// Sends frames `sent..n` on `id` (waiting on the ring while it takes no more) until every
/// one left and `done` holds; fails the test at `deadline`.
fn send_until(
    a: &mut Reactor,
    id: ConnId,
    mut sent: u32,
    n: u32,
    deadline: Instant,
    done: impl Fn(&Reactor) -> bool,
) {
    while sent < n || !a.is_flushed(id) || !done(a) {
        assert!(
            Instant::now() < deadline,
            "stuck at {sent} of {n}: {:?}",
            a.zc_stats()
        );
        if sent < n {
            let p = payload(sent);
            if a.send(id, &header(sent, p.len()), &[&p]).unwrap() {
                sent += 1;
                continue;
            }
        }
        a.wait(Duration::from_millis(5), &mut |_, e| {
            assert!(!matches!(e, Event::Closed(_)), "{e:?}");
        });
    }
}

/// Receives frames `0..n` on `id`, checking each; `before` runs before every wait. Fails
/// the test at `deadline`.
fn receive_checked(
    b: &mut Reactor,
    id: ConnId,
    n: u32,
    deadline: Instant,
    mut before: impl FnMut(&mut Reactor),
) {
    let mut got = 0u32;
    while got < n {
        assert!(Instant::now() < deadline, "got {got} of {n}");
        before(b);
        b.wait(Duration::from_millis(1), &mut |from, e| match e {
            Event::Frame(h, data) => {
                assert_eq!(from, id);
                assert_eq!(h, header(got, data.len()), "frame {got}");
                assert!(data == payload(got).as_slice(), "bytes of frame {got}");
                got += 1;
            }
            Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
            Event::Closed(why) => panic!("closed after {got} frames: {why}"),
        });
    }
}

/// Two reactors on a loopback connection, the first sending flights from one byte
/// zero-copy (`always`: even though the kernel copies them); `None` (with the reason
/// printed) on a kernel without zero-copy sends.
fn zero_copy_pair(always: bool) -> Option<(Reactor, ConnId, Reactor, ConnId)> {
    let (mut a, b) = (reactor(RecvMode::Single)?, reactor(RecvMode::Single)?);
    a.set_zero_copy(ZeroCopy {
        min: Some(1),
        always,
    });
    if a.zero_copy_from().is_none() {
        eprintln!(
            "skipped: no zero-copy sends on kernel {}",
            crate::sys::uring::probe().kernel
        );
        return None;
    }
    let (c, s) = pair();
    let mut b = b;
    let (ca, cb) = (a.add(c).unwrap(), b.add(s).unwrap());
    Some((a, ca, b, cb))
}

/// Sends `n` frames on `a` while `b` reads nothing at first: the socket fills, frames
/// queue and leave in flights. Then `b` reads them all, checking each; `a` waits until
/// every frame left and the kernel let go of every flight.
/// Returns what the zero-copy sends did so far, whether send buffers were registered, and
/// `b` for another round.
fn through_full_socket(
    a: &mut Reactor,
    ca: ConnId,
    mut b: Reactor,
    cb: ConnId,
    n: u32,
) -> (ZcStats, Result<bool, String>, Reactor) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let sends_before = a.zc_stats().sends;
    let mut sent = 0u32;
    while sent < n {
        assert!(Instant::now() < deadline, "the socket never filled");
        let p = payload(sent);
        if !a.send(ca, &header(sent, p.len()), &[&p]).unwrap() {
            break;
        }
        sent += 1;
    }
    assert!(
        a.zc_stats().sends > sends_before,
        "frames queued behind a flight"
    );
    let reader = std::thread::spawn(move || {
        receive_checked(&mut b, cb, n, deadline, |_| {});
        // Kept open until the sender is done.
        b
    });
    send_until(a, ca, sent, n, deadline, |a| {
        a.zc_stats().notified >= a.zc_stats().sends
    });
    let b = reader.join().unwrap();
    (
        a.zc_stats(),
        a.registered_buffers().map_err(str::to_owned),
        b,
    )
}

#[test]
fn frames_sent_zero_copy_arrive_whole_and_in_order_and_every_flight_is_let_go() {
    let Some((mut a, ca, b, cb)) = zero_copy_pair(true) else {
        return;
    };
    let (_, _, b) = through_full_socket(&mut a, ca, b, cb, 3000);
    // A second round: the first round's notifications registered the send buffers (all of
    // its flights may have left before the first came back), so this round's flights are
    // queued straight into them and sent from them.
    let (z, registered, _) = through_full_socket(&mut a, ca, b, cb, 3000);
    assert!(z.sends > 1, "{z:?}");
    assert_eq!(z.notified, z.sends);
    assert_eq!(z.turned_off, 0);
    match registered {
        Ok(r) => {
            assert!(r, "{z:?}");
            assert!(z.fixed > 0, "{z:?}");
        }
        Err(why) if why.contains("memory") => {
            eprintln!("send buffers not registered (locked-memory limit): {why}")
        }
        Err(why) => panic!("{why}"),
    }
}

#[test]
fn a_connection_whose_kernel_copies_zero_copy_sends_turns_them_off() {
    let Some((mut a, ca, b, cb)) = zero_copy_pair(false) else {
        return;
    };
    let (z, registered, _) = through_full_socket(&mut a, ca, b, cb, 3000);
    // Nothing is pinned for a connection where zero-copy does not pay.
    assert_eq!(registered, Ok(false));
    assert_eq!(z.fixed, 0);
    // Loopback delivers into this host's sockets: the kernel copies the pages (and says
    // so in the notification), so the first notification turns zero-copy off. Sends
    // submitted before it came are the most there can be: one per slot.
    assert!(z.copied >= 1, "{z:?}");
    assert_eq!(z.turned_off, 1);
    assert!(z.sends as usize <= ZC_SLOTS, "{z:?}");
    assert_eq!(z.notified, z.sends);
}

/// Frames sent while the receiving side pauses and resumes its connection again and again
/// all arrive, once each and in order, in `mode`.
fn paused_and_resumed(mode: RecvMode) {
    let (Some(mut a), Some(mut b)) = (reactor(mode), reactor(mode)) else {
        return;
    };
    let (c, s) = pair();
    let (ca, cb) = (a.add(c).unwrap(), b.add(s).unwrap());
    let n = 2000u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    let sender = std::thread::spawn(move || {
        send_until(&mut a, ca, 0, n, deadline, |_| true);
        a
    });
    let mut polls = 0u32;
    receive_checked(&mut b, cb, n, deadline, |b| {
        polls += 1;
        // Paused for 3 polls in every 7.
        if polls % 7 == 0 {
            b.pause(cb);
            assert!(b.is_paused(cb));
        } else if polls % 7 == 3 {
            b.resume(cb);
            assert!(!b.is_paused(cb));
        }
    });
    drop(sender.join().unwrap());
}

#[test]
fn frames_arrive_once_and_in_order_across_pauses_with_multishot_receives() {
    paused_and_resumed(RecvMode::Multishot);
}

#[test]
fn frames_arrive_once_and_in_order_across_pauses_with_single_receives() {
    paused_and_resumed(RecvMode::Single);
}
