//! Landing (`reactor/land.rs`): large frames whose buffer the caller lends are received
//! into it, whole and in order with the frames around them, in both receive modes, read
//! directly or not; a refused offer gives the frame as usual; a paused landing goes on
//! when resumed; a peer that closes inside a landing frame costs only its connection.

use super::reactor::LAND_MIN;
use super::tests::{header, pair, payload, reactor};
use super::wire::HEADER;
use super::*;
use std::io::Write;
use std::time::{Duration, Instant};

/// Payload bytes shown with an offer.
const HEAD: usize = 8;
/// What a lent buffer holds before the rest of a frame is appended.
const PRE: &[u8] = b"lent:";

/// The bytes of frames `from..to` (of `payload`).
fn frames(from: u32, to: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for i in from..to {
        let p = payload(i);
        b.extend_from_slice(&header(i, p.len()).encode());
        b.extend_from_slice(&p);
    }
    b
}

/// Polls `r` until frames `first..first + n` came from `id`, lending a buffer to every
/// offer when `lend`; checks each frame, landed or not. Returns how many were landed.
fn receive(r: &mut Reactor, id: ConnId, first: u32, n: u32, lend: bool) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut got, mut landed) = (first, 0);
    let mut offered: Option<u32> = None;
    while got < first + n {
        assert!(Instant::now() < deadline, "got {got} of {}", first + n);
        r.poll(&mut |from, e| {
            assert_eq!(from, id);
            match e {
                Event::Frame(h, data) => {
                    assert!(
                        offered.is_none() || !lend,
                        "frame {got} came after its offer"
                    );
                    assert_eq!(h, header(got, data.len()), "frame {got}");
                    assert!(data == payload(got).as_slice(), "bytes of frame {got}");
                    offered = None;
                    got += 1;
                }
                Event::Land {
                    header: h,
                    head,
                    into,
                } => {
                    let p = payload(got);
                    assert!(
                        p.len() >= LAND_MIN,
                        "frame {got} of {} bytes offered",
                        p.len()
                    );
                    assert_eq!(h, header(got, p.len()));
                    assert_eq!(head, &p[..HEAD]);
                    offered = Some(got);
                    if lend {
                        *into = Some(Body::Owned(PRE.to_vec()));
                    }
                }
                Event::Landed {
                    header: h,
                    head,
                    body,
                } => {
                    assert_eq!(offered, Some(got), "landed without an offer");
                    let p = payload(got);
                    assert_eq!(h, header(got, p.len()));
                    assert_eq!(head, &p[..HEAD]);
                    let body = body.into_owned();
                    assert!(body[..PRE.len()] == *PRE, "frame {got}: the lent bytes");
                    assert!(body[PRE.len()..] == p[HEAD..], "frame {got}: landed bytes");
                    offered = None;
                    landed += 1;
                    got += 1;
                }
                Event::Closed(why) => panic!("closed after {got} frames: {why}"),
            }
        });
    }
    landed
}

/// Writes `bytes[..cut]` (frames, then the start of a large one) and polls `r` until the
/// large frame is offered, lending it a buffer (`PRE`); returns how many frames came
/// before it.
fn lend_at(r: &mut Reactor, c: &mut std::net::TcpStream, bytes: &[u8], cut: usize) -> u32 {
    c.write_all(&bytes[..cut]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    let mut offered = false;
    while !offered {
        assert!(Instant::now() < deadline, "no offer after {got} frames");
        r.poll(&mut |_, e| match e {
            Event::Frame(..) => got += 1,
            Event::Land { into, .. } => {
                offered = true;
                *into = Some(Body::Owned(PRE.to_vec()));
            }
            e => panic!("{e:?}"),
        });
    }
    got
}

/// A reactor in `mode` (`None` where the kernel lacks it) with busy receives `busy` and
/// landing on, one connection added, and the peer's socket.
fn landing_reactor(mode: RecvMode, busy: bool) -> Option<(Reactor, std::net::TcpStream, ConnId)> {
    let mut r = reactor(mode)?;
    r.set_busy_receive(busy);
    r.set_landing(HEAD);
    let (c, s) = pair();
    let id = r.add(s).unwrap();
    Some((r, c, id))
}

#[test]
fn lent_buffers_receive_large_frames_in_order() {
    for mode in [RecvMode::Multishot, RecvMode::Single] {
        for busy in [true, false] {
            let Some((mut r, mut c, id)) = landing_reactor(mode, busy) else {
                continue;
            };
            const N: u32 = 600;
            let w = std::thread::spawn(move || {
                // In bursts, and a large frame cut in three writes, so that offers come
                // from every receive: multishot, single, direct, and the one that reads
                // a frame's start after a landing.
                for b in (0..N).step_by(10) {
                    let bytes = frames(b, b + 10);
                    let third = bytes.len() / 3;
                    for part in bytes.chunks(third.max(1)) {
                        c.write_all(part).unwrap();
                    }
                }
                c
            });
            let landed = receive(&mut r, id, 0, N, true);
            drop(w.join().unwrap());
            let large = (0..N).filter(|&i| payload(i).len() >= LAND_MIN).count() as u32;
            // A large frame that a receive brought whole comes as a frame.
            assert!(
                landed > 0,
                "{mode:?} busy {busy}: {landed} of {large} landed"
            );
        }
    }
}

#[test]
fn a_refused_offer_gives_the_frame_whole() {
    let Some(mut r) = reactor(RecvMode::Multishot).or_else(|| reactor(RecvMode::Single)) else {
        return;
    };
    r.set_landing(HEAD);
    let (mut c, s) = pair();
    let id = r.add(s).unwrap();
    c.write_all(&frames(0, 50)).unwrap();
    assert_eq!(receive(&mut r, id, 0, 50, false), 0);
}

/// A pause while a frame lands: nothing more is read until resumed, then the frame
/// lands whole and the frames after it follow.
#[test]
fn a_paused_landing_goes_on_when_resumed() {
    for mode in [RecvMode::Multishot, RecvMode::Single] {
        let Some(mut r) = reactor(mode) else {
            continue;
        };
        r.set_landing(HEAD);
        let (mut c, s) = pair();
        let id = r.add(s).unwrap();
        // Frame 4 is large: its start, then (once offered) a pause, then the rest.
        let bytes = frames(0, 10);
        let cut = frames(0, 4).len() + HEADER + HEAD + 100;
        assert_eq!(lend_at(&mut r, &mut c, &bytes, cut), 4);
        let deadline = Instant::now() + Duration::from_secs(30);
        r.pause(id);
        c.write_all(&bytes[cut..]).unwrap();
        for _ in 0..200 {
            r.poll(&mut |_, e| panic!("{e:?} while paused"));
            std::thread::sleep(Duration::from_millis(1));
        }
        r.resume(id);
        let mut landed = None;
        let mut after = 0;
        while after < 5 {
            assert!(Instant::now() < deadline, "{:?} {after}", landed.is_some());
            r.poll(&mut |_, e| match e {
                Event::Landed { body, .. } => landed = Some(body.into_owned()),
                Event::Frame(h, d) => {
                    assert!(landed.is_some());
                    assert_eq!(h, header(5 + after, d.len()));
                    after += 1;
                }
                Event::Land { .. } => {}
                e => panic!("{e:?}"),
            });
        }
        let body = landed.unwrap();
        assert!(body[PRE.len()..] == payload(4)[HEAD..], "{mode:?}");
    }
}

/// A peer that closes inside a frame being landed, and one that sends garbage after a
/// landed frame: each costs its own connection, not the other's.
#[test]
fn a_peer_that_stops_inside_a_landing_frame_costs_only_its_connection() {
    let Some(mut r) = reactor(RecvMode::Multishot).or_else(|| reactor(RecvMode::Single)) else {
        return;
    };
    r.set_landing(HEAD);
    let (mut c1, s1) = pair();
    let (mut c2, s2) = pair();
    let (mut c3, s3) = pair();
    let ids: Vec<ConnId> = [s1, s2, s3].map(|s| r.add(s).unwrap()).into();
    let large = frames(4, 5);
    c1.write_all(&large[..large.len() / 2]).unwrap();
    c1.shutdown(std::net::Shutdown::Write).unwrap();
    c2.write_all(&large).unwrap();
    c2.write_all(&[0xee; 64]).unwrap();
    c3.write_all(&frames(0, 10)).unwrap();
    // The third gets its frames meanwhile; the first two close, the first saying why.
    let mut closed: Vec<(ConnId, String)> = Vec::new();
    let mut third = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while third < 10 || closed.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "third {third}, closed {closed:?}"
        );
        r.poll(&mut |from, e| match e {
            Event::Land { into, .. } => *into = Some(Body::Owned(Vec::new())),
            Event::Frame(..) | Event::Landed { .. } if from == ids[2] => third += 1,
            Event::Landed { .. } => assert_eq!(from, ids[1], "a landing cut by a close"),
            Event::Frame(..) => assert_eq!(from, ids[1], "a frame cut by a close"),
            Event::Closed(why) => closed.push((from, why.to_string())),
        });
    }
    assert!(closed.iter().all(|(id, _)| *id != ids[2]), "{closed:?}");
    let first = closed
        .iter()
        .find(|(id, _)| *id == ids[0])
        .expect("the first closed");
    assert!(first.1.contains("inside a frame"), "{closed:?}");
    assert!(r.is_open(ids[2]));
}

/// A pause after the landing receive brought the frame's end (its completion reaped while
/// paused): on resume the frame is handed back and the frames after it follow.
#[test]
fn a_landing_that_ends_while_paused_is_handed_back_on_resume() {
    for mode in [RecvMode::Multishot, RecvMode::Single] {
        for busy in [true, false] {
            let Some((mut r, mut c, id)) = landing_reactor(mode, busy) else {
                continue;
            };
            let bytes = frames(0, 10);
            let cut = frames(0, 4).len() + HEADER + HEAD + 100;
            c.write_all(&bytes[..cut]).unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut offered = false;
            while !offered {
                assert!(Instant::now() < deadline);
                r.poll(&mut |_, e| match e {
                    Event::Frame(..) => {}
                    Event::Land { into, .. } => {
                        offered = true;
                        *into = Some(Body::Owned(Vec::new()));
                    }
                    e => panic!("{e:?}"),
                });
            }
            // Without busy receives, the landing receive armed (after the multishot's
            // cancel, if one was armed), then the rest written, then a pause before its
            // completion is reaped; with them, the landing read directly, and the pause
            // before the read that would find the rest.
            for _ in 0..20 {
                r.poll(&mut |_, e| panic!("{e:?}"));
                std::thread::sleep(Duration::from_millis(2));
            }
            c.write_all(&bytes[cut..]).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            r.pause(id);
            for _ in 0..20 {
                r.poll(&mut |_, e| panic!("{mode:?} busy {busy}: {e:?} while paused"));
                std::thread::sleep(Duration::from_millis(2));
            }
            r.resume(id);
            // Frame 4 lands, then 5 to 9 follow (9 lands too).
            let mut next = 4;
            while next < 10 {
                assert!(
                    Instant::now() < deadline,
                    "{mode:?} busy {busy}: at frame {next}"
                );
                r.poll(&mut |_, e| match e {
                    Event::Landed {
                        header: h, body, ..
                    } => {
                        let want = &payload(next)[HEAD..];
                        assert_eq!(h, header(next, want.len() + HEAD));
                        assert!(
                            body.into_owned() == want,
                            "{mode:?} busy {busy}: frame {next}"
                        );
                        next += 1;
                    }
                    Event::Frame(h, d) => {
                        assert!(
                            next > 4,
                            "{mode:?} busy {busy}: a frame before the landed one"
                        );
                        assert_eq!(h, header(next, d.len()));
                        assert!(d == payload(next), "{mode:?} busy {busy}: frame {next}");
                        next += 1;
                    }
                    Event::Land { into, .. } => *into = Some(Body::Owned(Vec::new())),
                    Event::Closed(why) => panic!("{mode:?} busy {busy}: closed: {why}"),
                });
            }
        }
    }
}

/// While the reactor spins, the rest of a frame landing is read at every poll straight
/// into its buffer (no receive waits on the ring for it: its completion would make the
/// spinning thread enter the kernel every few segments); a reactor going to sleep arms
/// one, and the rest of the frame wakes it.
#[test]
fn a_landing_frame_is_read_directly_while_spinning_and_wakes_a_sleep() {
    for mode in [RecvMode::Multishot, RecvMode::Single] {
        for busy in [true, false] {
            let Some((mut r, mut c, id)) = landing_reactor(mode, busy) else {
                continue;
            };
            // Frame 4 is large: its start, then a part of its rest, then the end.
            let bytes = frames(0, 6);
            let start = frames(0, 4).len() + HEADER + HEAD + 100;
            let middle = start + 20_000;
            assert_eq!(lend_at(&mut r, &mut c, &bytes, start), 4);
            let deadline = Instant::now() + Duration::from_secs(30);
            c.write_all(&bytes[start..middle]).unwrap();
            for _ in 0..50 {
                r.poll(&mut |_, e| panic!("{e:?} before the frame's end"));
                assert_eq!(r.is_direct(id), busy, "{mode:?} busy {busy}: read directly");
            }
            // The end comes while the reactor sleeps.
            let rest = bytes[middle..].to_vec();
            let w = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                c.write_all(&rest).unwrap();
                c
            });
            let mut landed = None;
            while landed.is_none() {
                assert!(Instant::now() < deadline, "{mode:?} busy {busy}: not woken");
                r.wait(Duration::from_secs(10), &mut |_, e| match e {
                    Event::Landed { body, .. } => landed = Some(body.into_owned()),
                    Event::Frame(h, _) => {
                        assert!(landed.is_some(), "a frame before the one landing");
                        assert_eq!(h.slot.src, 5);
                    }
                    e => panic!("{e:?}"),
                });
            }
            let body = landed.unwrap();
            assert!(
                body[PRE.len()..] == payload(4)[HEAD..],
                "{mode:?} busy {busy}"
            );
            drop(w.join().unwrap());
        }
    }
}

/// A peer that stops inside a frame landing directly gives its direct place up after
/// `DIRECT_QUIET` empty reads (the landing's receive is armed on the ring instead), and the
/// frame still lands whole when the rest comes.
#[test]
fn a_stalled_landing_gives_its_direct_place_up() {
    for mode in [RecvMode::Multishot, RecvMode::Single] {
        let Some((mut r, mut c, id)) = landing_reactor(mode, true) else {
            continue;
        };
        let bytes = frames(0, 5);
        let cut = frames(0, 4).len() + HEADER + HEAD + 100;
        assert_eq!(lend_at(&mut r, &mut c, &bytes, cut), 4);
        let deadline = Instant::now() + Duration::from_secs(30);
        assert!(r.is_direct(id), "{mode:?}: the landing is read directly");
        for _ in 0..super::reactor::DIRECT_QUIET + 1 {
            r.poll(&mut |_, e| panic!("{e:?} from a silent peer"));
        }
        assert!(!r.is_direct(id), "{mode:?}: the silent peer kept its place");
        c.write_all(&bytes[cut..]).unwrap();
        let mut landed = None;
        while landed.is_none() {
            assert!(Instant::now() < deadline, "{mode:?}: the rest never landed");
            r.poll(&mut |_, e| match e {
                Event::Landed { body, .. } => landed = Some(body.into_owned()),
                e => panic!("{e:?}"),
            });
        }
        assert!(
            landed.unwrap()[PRE.len()..] == payload(4)[HEAD..],
            "{mode:?}"
        );
    }
}
