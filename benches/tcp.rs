//! Round trips over loopback TCP between two threads pinned to two CPUs: the io_uring
//! reactor of the transport between hosts (both ends polling, frames of the wire format),
//! next to the baseline of the same run, a plain socket ping-pong (blocking `write` /
//! `read_exact` of the same bytes, `TCP_NODELAY`), and the same sockets read busy
//! (non-blocking reads in a loop). Each iteration is one round trip; one-way latency is half
//! of it.

use criterion::{criterion_group, criterion_main, Criterion};
use hyperfabric::ring::SlotHeader;
use hyperfabric::sys::{available_cpus, pin_current_thread};
use hyperfabric::transport::channel::Lane;
use hyperfabric::transport::tcp::{ConnId, Event, FrameHeader, Reactor, RecvMode};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const SIZES: [usize; 3] = [64, 4096, 65536];

fn pin(cpu: usize) {
    if available_cpus() >= 2 {
        pin_current_thread(cpu).unwrap();
    }
}

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    for s in [&c, &s] {
        s.set_nodelay(true).unwrap();
    }
    (c, s)
}

fn header(len: usize) -> FrameHeader {
    FrameHeader {
        slot: SlotHeader {
            len: len as u32,
            kind: 1,
            ..SlotHeader::default()
        },
        dst: 1,
        lane: Lane::Latency,
    }
}

/// Polls (without sleeping) until one frame arrives on `r`; its length.
fn next_frame(r: &mut Reactor) -> usize {
    loop {
        let mut got = None;
        r.poll(&mut |_, e| match e {
            Event::Frame(_, d) => got = Some(d.len()),
            Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
            Event::Closed(why) => panic!("closed: {why}"),
        });
        if let Some(n) = got {
            return n;
        }
        std::hint::spin_loop();
    }
}

fn reactor_round_trips(c: &mut Criterion) {
    for mode in [RecvMode::Multishot, RecvMode::Single] {
        let (a_sock, b_sock) = pair();
        let mut a = Reactor::new(1 << 20, Some(mode), false).unwrap();
        let ca: ConnId = a.add(a_sock).unwrap();
        let echo = std::thread::spawn(move || {
            pin(1);
            let mut b = Reactor::new(1 << 20, Some(mode), false).unwrap();
            let cb = b.add(b_sock).unwrap();
            let mut back = vec![0u8; 1 << 20];
            loop {
                let mut got = None;
                let mut closed = false;
                b.poll(&mut |_, e| match e {
                    Event::Frame(_, d) => {
                        back[..d.len()].copy_from_slice(d);
                        got = Some(d.len());
                    }
                    Event::Land { .. } | Event::Landed { .. } => unreachable!("landing is off"),
                    Event::Closed(_) => closed = true,
                });
                if closed {
                    return;
                }
                if let Some(n) = got {
                    while !b.send(cb, &header(n), &[&back[..n]]).unwrap() {}
                }
            }
        });
        pin(0);
        for size in SIZES {
            let data = vec![7u8; size];
            let name = format!("tcp/reactor_{mode:?}_round_trip_{size}B").to_lowercase();
            c.bench_function(&name, |bn| {
                bn.iter(|| {
                    while !a.send(ca, &header(size), &[&data]).unwrap() {}
                    assert_eq!(next_frame(&mut a), size);
                })
            });
        }
        a.close(ca);
        a.poll(&mut |_, _| ());
        drop(a);
        echo.join().unwrap();
    }
}

fn socket_round_trips(c: &mut Criterion) {
    for busy in [false, true] {
        let (mut a, mut b) = pair();
        let echo = std::thread::spawn(move || {
            pin(1);
            let mut buf = vec![0u8; 1 << 20];
            b.set_nonblocking(busy).unwrap();
            let mut len = [0u8; 4];
            loop {
                if read_all(&mut b, &mut len).is_err() {
                    return;
                }
                let n = u32::from_le_bytes(len) as usize;
                if read_all(&mut b, &mut buf[..n]).is_err() {
                    return;
                }
                b.set_nonblocking(false).unwrap();
                b.write_all(&[&len[..], &buf[..n]].concat()).unwrap();
                b.set_nonblocking(busy).unwrap();
            }
        });
        pin(0);
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for size in SIZES {
            // Length and bytes in one write, as the reactor sends a frame.
            let data = [&(size as u32).to_le_bytes()[..], &vec![7u8; size]].concat();
            let mut back = vec![0u8; size];
            let name = if busy {
                format!("tcp/socket_busy_poll_round_trip_{size}B")
            } else {
                format!("tcp/socket_blocking_round_trip_{size}B")
            };
            a.set_nonblocking(busy).unwrap();
            c.bench_function(&name, |bn| {
                bn.iter(|| {
                    a.set_nonblocking(false).unwrap();
                    a.write_all(&data).unwrap();
                    a.set_nonblocking(busy).unwrap();
                    let mut len = [0u8; 4];
                    read_all(&mut a, &mut len).unwrap();
                    read_all(&mut a, &mut back).unwrap();
                })
            });
        }
        drop(a);
        echo.join().unwrap();
    }
}

/// Reads exactly `buf.len()` bytes, spinning on a non-blocking socket.
fn read_all(s: &mut TcpStream, mut buf: &mut [u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match s.read(buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

criterion_group!(benches, socket_round_trips, reactor_round_trips);
criterion_main!(benches);
