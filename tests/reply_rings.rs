//! Answers to requests sent through endpoints, which come back through the endpoint's reply
//! ring when they fit and through the engine otherwise: far more answers outstanding than
//! the ring holds, answers too large for it, answers taken in any order, a future awaiting
//! one, and a reply ring another process forged frames into. (Processes that die: see
//! `reply_failures.rs`; more hostile cases: `hostile_replies.rs`.)

mod common;

use common::replies::*;
use hyperfabric::fabric::{wait_all, Completion};
use hyperfabric::ring::{Region, SlotHeader};
use hyperfabric::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn far_more_answers_than_the_reply_ring_holds_arrive_in_any_order() {
    let dir = fabric("many");
    let srv = server(&dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    // 3,000 answers of 1 KiB (3 MiB) with nobody reading: most go the engine's way.
    let mut requests: Vec<_> = (0..3_000u32)
        .map(|i| {
            ep.send_data_nb(&ask(1024, i as u8), &opts(Duration::from_secs(20)))
                .unwrap()
        })
        .collect();
    // Taken newest first: every older answer is held meanwhile.
    for (i, r) in requests.iter_mut().enumerate().rev() {
        assert_eq!(r.wait_mut().unwrap(), vec![i as u8; 1024], "request {i}");
    }
    // Answers above the reply ring's bound (by descriptor through the engine) and at it.
    for len in [16 << 10, (16 << 10) + 1, 100 << 10, 4 << 20, 0, 1] {
        assert_eq!(
            ep.send_data(&ask(len, 7), &opts(Duration::from_secs(20)))
                .unwrap(),
            vec![7u8; len as usize],
            "{len}"
        );
    }
    // wait_all over a mix.
    let mut mix: Vec<_> = (0..64u32)
        .map(|i| {
            let len = if i % 3 == 0 { 40_000 } else { i * 100 };
            ep.send_data_nb(&ask(len, i as u8), &opts(Duration::from_secs(20)))
                .unwrap()
        })
        .collect();
    let done = wait_all(&mut mix, Duration::from_secs(20)).unwrap();
    for (i, c) in done.into_iter().enumerate() {
        let len = if i % 3 == 0 { 40_000 } else { i * 100 };
        match c {
            Completion::Done(Ok(v)) => assert_eq!(v, vec![i as u8; len]),
            other => panic!("request {i}: {other:?}"),
        }
    }
    drop(srv);
}

#[test]
fn a_cancelled_request_leaves_the_next_answers_right() {
    let dir = fabric("cancel");
    let srv = server(&dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    for round in 0..200u32 {
        let mut first = ep
            .send_data_nb(&ask(64, 1), &opts(Duration::from_secs(20)))
            .unwrap();
        let second = ep
            .send_data_nb(&ask(32, 2), &opts(Duration::from_secs(20)))
            .unwrap();
        if round % 2 == 0 {
            assert!(first.cancel().unwrap());
        } else {
            drop(first);
        }
        assert_eq!(second.wait().unwrap(), vec![2u8; 32]);
    }
    drop(srv);
}

#[test]
fn a_future_is_woken_by_an_answer_in_the_reply_ring() {
    let dir = fabric("future");
    let srv = server(&dir.0);
    let cli = protocol(&dir.0, &["cli"]);
    cli.start_background_services().unwrap();
    let mut ep = cli.endpoint("cli", "srv").unwrap();
    for i in 0..200u32 {
        let r = ep
            .send_data_nb(&ask(i, 3), &opts(Duration::from_secs(20)))
            .unwrap();
        assert_eq!(
            block_on(r, Duration::from_secs(20)).0.unwrap(),
            vec![3u8; i as usize]
        );
    }
    drop(srv);
}

#[test]
fn forged_frames_in_a_reply_ring_cost_the_ring_not_the_answers() {
    let dir = fabric("forged");
    // A server that holds a request whose fill byte is 0xff until released.
    let srv = protocol(&dir.0, &["srv"]);
    let (release, held) = std::sync::mpsc::channel::<()>();
    srv.on_receive("srv", move |m| {
        if m.data[4] == 0xff {
            held.recv().unwrap();
        }
        let len = u32::from_le_bytes(m.data[..4].try_into().unwrap()) as usize;
        Ok(vec![m.data[4]; len])
    })
    .unwrap();
    srv.start_background_services().unwrap();
    let cli = protocol(&dir.0, &["cli"]);
    // Another process writes into a reply ring while a request waits for its answer: an
    // answer to a request never sent, or a frame of a kind no answer has. The waiting
    // request reads it first: it fails as corrupt, and the ring is dropped; later requests
    // are answered the engine's way.
    for (kind, id) in [(2u8, u64::MAX / 2), (1u8, 1)] {
        let before = files(&dir, "rp-");
        let mut ep = cli.endpoint("cli", "srv").unwrap();
        let file = files(&dir, "rp-")
            .into_iter()
            .find(|f| !before.contains(f))
            .unwrap();
        let srv_index = {
            let name = file.file_name().unwrap().to_str().unwrap().to_owned();
            name.split('-').nth(2).unwrap().parse::<u32>().unwrap()
        };
        let waiting = ep
            .send_data_nb(&ask(8, 0xff), &opts(Duration::from_secs(20)))
            .unwrap();
        let (mut forger, _) = hyperfabric::ring::split(Arc::new(Region::open_file(&file).unwrap()));
        let h = SlotHeader {
            len: 0,
            kind,
            flags: 0,
            aux: 0,
            src: srv_index,
        };
        forger.try_push(h, &[&id.to_le_bytes(), b"forged"]).unwrap();
        let e = waiting.wait().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MalformedFrame, "{e}");
        // The reader marked the ring: nobody opens it again.
        assert!(Region::open_file(&file).is_err());
        release.send(()).unwrap();
        for i in 0..100u32 {
            assert_eq!(
                ep.send_data(&ask(i, 9), &opts(Duration::from_secs(20)))
                    .unwrap(),
                vec![9u8; i as usize]
            );
        }
    }
}
