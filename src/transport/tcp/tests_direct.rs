//! Busy receives (`reactor/direct.rs`): connections read directly while the reactor is
//! polled keep every frame whole and in order, in both receive modes and with busy
//! receives off; a quiet connection, and every connection before a sleep, gets its receive
//! armed again, so data wakes a sleeper; at most `DIRECT_MAX` connections are read
//! directly; a peer that breaks the framing or closes inside a frame while its connection
//! is read directly costs only that connection.

use super::reactor::{DIRECT_MAX, DIRECT_QUIET};
use super::tests::{header, pair, payload, reactor, until_closed};
use super::wire::HEADER;
use super::*;
use std::io::Write;
use std::time::{Duration, Instant};

/// Frame `i`'s payload in blocks of [`BLOCK`] frames, small ones (under `DIRECT_BULK`)
/// and a mix up to 70 KiB alternately, its bytes naming it.
fn mixed(i: u32) -> Vec<u8> {
    let mut p = payload(i);
    if (i / BLOCK) % 2 == 0 {
        p.truncate(1500 + i as usize % 97);
    }
    p
}

const BLOCK: u32 = 500;

/// Polls `r` (never sleeping) until `n` frames came from `id`, checking each against
/// `mixed`, starting at frame `first`; returns whether `id` was read directly at some
/// poll. Fails the test at a deadline rather than hang.
fn spin_receive(r: &mut Reactor, id: ConnId, first: u32, n: u32) -> bool {
    spin_counting(r, id, first, n, first).0
}

/// [`spin_receive`], and how many of the frames from `counted` on arrived in a poll that
/// left `id` read directly.
fn spin_counting(r: &mut Reactor, id: ConnId, first: u32, n: u32, counted: u32) -> (bool, u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = first;
    let mut direct = false;
    let mut frames = 0;
    while got < first + n {
        assert!(Instant::now() < deadline, "got {got} of {}", first + n);
        let before = got;
        r.poll(&mut |from, e| match e {
            Event::Frame(h, data) => {
                assert_eq!(from, id);
                assert_eq!(h, header(got, data.len()), "frame {got}");
                assert!(data == mixed(got).as_slice(), "bytes of frame {got}");
                got += 1;
            }
            Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
            Event::Closed(why) => panic!("closed after {got} frames: {why}"),
        });
        if r.is_direct(id) {
            direct = true;
            frames += got.saturating_sub(before.max(counted));
        }
    }
    (direct, frames)
}

/// Frames `0..n` (of `mixed`) sent by a plain socket writer thread in bursts of 1 to 4
/// frames.
fn writer(mut s: std::net::TcpStream, n: u32) -> std::thread::JoinHandle<std::net::TcpStream> {
    std::thread::spawn(move || {
        let mut i = 0;
        while i < n {
            let mut burst = Vec::new();
            for _ in 0..(1 + i % 4).min(n - i) {
                let p = mixed(i);
                burst.extend_from_slice(&header(i, p.len()).encode());
                burst.extend_from_slice(&p);
                i += 1;
            }
            s.write_all(&burst).unwrap();
        }
        s
    })
}

fn spun(mode: RecvMode, busy: bool) {
    let Some(mut r) = reactor(mode) else {
        return;
    };
    r.set_busy_receive(busy);
    assert_eq!(r.busy_receive(), busy);
    let (c, s) = pair();
    let id = r.add(s).unwrap();
    // A stream of blocks of small frames and of bulk ones.
    let n = 6 * BLOCK;
    let w = writer(c, n);
    spin_receive(&mut r, id, 0, n);
    let mut c = w.join().unwrap();
    // Then one small frame at a time: read directly with busy receives (once the receive
    // armed for the bulk before is cancelled), through the ring without.
    let mut direct = false;
    for i in n..n + 20 {
        write_frame(&mut c, i);
        direct |= spin_receive(&mut r, id, i, 1);
    }
    assert_eq!(direct, busy, "read directly");
}

/// While the reactor spins, bulk frames are read directly too (no receive armed on the
/// ring whose wake-up the sender's kernel would pay for): nearly every frame of a block of
/// large ones arrives in a poll that leaves the connection direct.
#[test]
fn bulk_frames_are_read_directly_while_spinning() {
    for mode in [RecvMode::Multishot, RecvMode::Single] {
        let Some(mut r) = reactor(mode) else {
            return;
        };
        let (c, s) = pair();
        let id = r.add(s).unwrap();
        let w = writer(c, 2 * BLOCK);
        // The small block, then the bulk one (each frame checked), counting the bulk one.
        let (_, direct) = spin_counting(&mut r, id, 0, 2 * BLOCK, BLOCK);
        w.join().unwrap();
        assert!(
            direct >= BLOCK * 9 / 10,
            "{mode:?}: {direct} of {BLOCK} bulk frames read directly"
        );
    }
}

#[test]
fn frames_read_directly_arrive_whole_and_in_order_with_provided_buffers() {
    spun(RecvMode::Multishot, true);
}

#[test]
fn frames_read_directly_arrive_whole_and_in_order_with_single_receives() {
    spun(RecvMode::Single, true);
}

#[test]
fn without_busy_receives_frames_come_only_through_the_ring() {
    spun(RecvMode::Multishot, false);
    spun(RecvMode::Single, false);
}

/// Writes frame `i` (of `mixed`) on `s`.
fn write_frame(s: &mut std::net::TcpStream, i: u32) {
    let p = mixed(i);
    s.write_all(&[&header(i, p.len()).encode()[..], &p].concat())
        .unwrap();
}

#[test]
fn a_quiet_connection_is_armed_again_and_a_sleep_wakes_for_its_data() {
    let Some(mut r) = reactor(RecvMode::Multishot) else {
        return;
    };
    let (mut c, s) = pair();
    let id = r.add(s).unwrap();
    assert!(!r.is_direct(id), "armed at first");
    write_frame(&mut c, 0);
    assert!(spin_receive(&mut r, id, 0, 1));
    // Nothing more comes: after DIRECT_QUIET empty reads (the poll that took the frame
    // read once more) it is armed again.
    let mut polls = 0;
    while r.is_direct(id) {
        assert!(
            polls < DIRECT_QUIET,
            "still direct after {polls} empty polls"
        );
        r.poll(&mut |_, e| panic!("{e:?}"));
        polls += 1;
    }
    assert!(polls >= DIRECT_QUIET - 1, "armed after {polls} polls");
    write_frame(&mut c, 1);
    assert!(
        spin_receive(&mut r, id, 1, 1),
        "direct again after its data"
    );

    // A sleep arms it: a frame written while the reactor sleeps wakes it.
    let w = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        write_frame(&mut c, 2);
        c
    });
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got == 0 {
        assert!(
            Instant::now() < deadline,
            "the sleep never woke for the frame"
        );
        r.wait(Duration::from_secs(30), &mut |_, e| match e {
            Event::Frame(h, d) => {
                assert_eq!((h, d), (header(2, d.len()), mixed(2).as_slice()));
                got += 1;
            }
            Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
            Event::Closed(why) => panic!("{why}"),
        });
    }
    drop(w.join().unwrap());
}

#[test]
fn at_most_direct_max_connections_are_read_directly() {
    let Some(mut r) = reactor(RecvMode::Multishot) else {
        return;
    };
    let n = DIRECT_MAX + 3;
    let (mut peers, ids): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| {
            let (c, s) = pair();
            (c, r.add(s).unwrap())
        })
        .unzip();
    for round in 0..3u32 {
        for c in &mut peers {
            write_frame(c, round);
        }
        let mut got = vec![0u32; n];
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.contains(&0) {
            assert!(Instant::now() < deadline, "got {got:?}");
            r.poll(&mut |from, e| match e {
                Event::Frame(h, d) => {
                    let i = ids.iter().position(|&x| x == from).unwrap();
                    assert_eq!((h, d), (header(round, d.len()), mixed(round).as_slice()));
                    got[i] += 1;
                }
                Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
                Event::Closed(why) => panic!("{why}"),
            });
            let direct = ids.iter().filter(|&&id| r.is_direct(id)).count();
            assert!(direct <= DIRECT_MAX, "{direct} read directly");
        }
        assert!(got.iter().all(|&g| g == 1), "{got:?}");
    }
}

/// With every direct place taken by bulk connections, a connection of small messages
/// takes the place of one of them (which goes on through the ring), and every frame still
/// arrives whole.
#[test]
fn small_messages_take_a_direct_place_from_bulk_traffic() {
    const BULK: u32 = BLOCK + 4; // 70 KB, in a bulk block
    const SMALL: u32 = 2; // 1.5 KB
    for mode in [RecvMode::Multishot, RecvMode::Single] {
        let Some(mut r) = reactor(mode) else {
            continue;
        };
        let (mut peers, ids): (Vec<_>, Vec<_>) = (0..=DIRECT_MAX)
            .map(|_| {
                let (c, s) = pair();
                (c, r.add(s).unwrap())
            })
            .unzip();
        let mut got = vec![0u32; ids.len()];
        let mut until = |r: &mut Reactor, want: &[u32], direct: &dyn Fn(&Reactor) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while got != want || !direct(r) {
                assert!(Instant::now() < deadline, "{mode:?}: got {got:?}");
                r.poll(&mut |from, e| match e {
                    Event::Frame(h, d) => {
                        let i = ids.iter().position(|&x| x == from).unwrap();
                        let k = if i < DIRECT_MAX { BULK } else { SMALL };
                        assert_eq!((h, d), (header(k, d.len()), mixed(k).as_slice()));
                        got[i] += 1;
                    }
                    _ => panic!("a frame only"),
                });
                let direct = ids.iter().filter(|&&id| r.is_direct(id)).count();
                assert!(direct <= DIRECT_MAX, "{direct} read directly");
            }
        };
        // The bulk connections take every place.
        for c in &mut peers[..DIRECT_MAX] {
            write_frame(c, BULK);
        }
        let mut want = vec![1; DIRECT_MAX];
        want.push(0);
        let bulk_direct = |r: &Reactor| ids[..DIRECT_MAX].iter().all(|&id| r.is_direct(id));
        until(&mut r, &want, &bulk_direct);
        // A small message: its connection is read directly after it.
        write_frame(&mut peers[DIRECT_MAX], SMALL);
        want[DIRECT_MAX] = 1;
        let small_direct = |r: &Reactor| r.is_direct(ids[DIRECT_MAX]);
        until(&mut r, &want, &small_direct);
        // Bulk goes on arriving, on the connection that lost its place too.
        for c in &mut peers[..DIRECT_MAX] {
            write_frame(c, BULK);
        }
        want[..DIRECT_MAX].fill(2);
        until(&mut r, &want, &|_| true);
    }
}

#[test]
fn a_peer_that_breaks_the_stream_while_read_directly_costs_only_its_connection() {
    for mode in [RecvMode::Multishot, RecvMode::Single] {
        let Some(mut r) = reactor(mode) else {
            continue;
        };
        let good = |i: u32| [&header(i, 3).encode()[..], b"abc"].concat();
        let (mut c1, s1) = pair();
        let (mut c2, s2) = pair();
        let (mut c3, s3) = pair();
        let ids: Vec<ConnId> = [s1, s2, s3].map(|s| r.add(s).unwrap()).into();
        // A good frame first on each: every connection is then read directly.
        for c in [&mut c1, &mut c2, &mut c3] {
            c.write_all(&good(0)).unwrap();
        }
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while got < 3 || ids.iter().any(|&id| !r.is_direct(id)) {
            assert!(Instant::now() < deadline);
            r.poll(&mut |_, e| match e {
                Event::Frame(_, d) => {
                    assert_eq!(d, b"abc");
                    got += 1;
                }
                Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
                Event::Closed(why) => panic!("{why}"),
            });
        }
        // Garbage on the first, a frame cut by a close on the second.
        c1.write_all(&[0xee; 64]).unwrap();
        c2.write_all(&good(1)[..HEADER + 1]).unwrap();
        c2.shutdown(std::net::Shutdown::Write).unwrap();
        let closed = until_closed(&mut r, &ids[..2]);
        assert!(
            closed[0].0.is_empty() && closed[1].0.is_empty(),
            "{closed:?}"
        );
        assert!(closed[0].1.contains("mark"), "{}", closed[0].1);
        assert!(closed[1].1.contains("inside a frame"), "{}", closed[1].1);
        assert!(r.send(ids[0], &header(0, 0), &[]).is_err());
        // The third goes on, both ways.
        c3.write_all(&good(1)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut third = 0;
        while third == 0 {
            assert!(Instant::now() < deadline);
            r.poll(&mut |from, e| {
                if let Event::Frame(h, d) = e {
                    assert_eq!((from, h.slot.src, d), (ids[2], 1, &b"abc"[..]));
                    third += 1;
                }
            });
        }
        assert!(r.send(ids[2], &header(9, 2), &[b"ok"]).unwrap());
        let mut back = [0u8; HEADER + 2];
        c3.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        std::io::Read::read_exact(&mut c3, &mut back).unwrap();
        assert_eq!(&back[HEADER..], b"ok");
    }
}

#[test]
fn a_connection_paused_while_read_directly_is_not_read_until_resumed() {
    let Some(mut r) = reactor(RecvMode::Multishot) else {
        return;
    };
    let (mut c, s) = pair();
    let id = r.add(s).unwrap();
    write_frame(&mut c, 0);
    assert!(spin_receive(&mut r, id, 0, 1));
    r.pause(id);
    assert!(!r.is_direct(id));
    write_frame(&mut c, 1);
    // Paused: many polls take nothing (the frame waits in the socket).
    for _ in 0..2 * DIRECT_QUIET {
        r.poll(&mut |_, e| panic!("paused, yet {e:?}"));
    }
    r.resume(id);
    spin_receive(&mut r, id, 1, 1);
}

#[test]
fn small_frames_cut_across_reads_stay_direct() {
    let Some(mut r) = reactor(RecvMode::Multishot) else {
        return;
    };
    let (mut c, s) = pair();
    let id = r.add(s).unwrap();
    let mut flips = 0;
    let mut was = false;
    // 4 KiB frames, each written in two pieces with the reader polling between them (as
    // over a link whose segments are smaller than a frame).
    for i in 0..400u32 {
        let p = vec![i as u8; 4096];
        let f = [&header(i, p.len()).encode()[..], &p].concat();
        c.write_all(&f[..1000]).unwrap();
        let mut got = false;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut first = true;
        while !got {
            assert!(Instant::now() < deadline, "frame {i}");
            r.poll(&mut |_, e| match e {
                Event::Frame(h, d) => {
                    assert_eq!((h, d), (header(i, 4096), &p[..]));
                    got = true;
                }
                Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
                Event::Closed(why) => panic!("{why}"),
            });
            if first {
                c.write_all(&f[1000..]).unwrap();
                first = false;
            }
            let now = r.is_direct(id);
            flips += u32::from(now != was);
            was = now;
        }
    }
    // Direct early on, and not switched per frame.
    assert!(was, "read directly at the end");
    assert!(
        flips <= 4,
        "{flips} switches between direct and armed in 400 frames"
    );
}
