//! A handler that runs longer than the silence after which a node is marked down: its node
//! stays up for the other processes (its heartbeats go on while the handler runs), and the
//! request it answers completes; one that runs past the grace a handler call gets (a hung
//! handler) has its node marked down, and up again once it returns.

mod common;

use common::FabricDir;
use hyperfabric::engine::{HANDLER_GRACE, HEARTBEAT_INTERVAL, HEARTBEAT_MISSES};
use hyperfabric::fabric::{HyperFabricProtocol, SendOptions};
use std::time::{Duration, Instant};

/// A protocol on `fabric` hosting `node`.
fn protocol(fabric: &str, node: &str) -> HyperFabricProtocol {
    let p = common::protocol(fabric);
    p.register_node(common::node(node)).unwrap();
    p
}

/// "cli" and "srv" (each its own protocol, background services running) on a fabric named
/// after `tag`; srv's handler tells `started` it began, then holds until `finish` (or 30 s),
/// and answers the bytes reversed.
struct Held {
    _cleanup: FabricDir,
    cli: HyperFabricProtocol,
    srv: HyperFabricProtocol,
    started: std::sync::mpsc::Receiver<()>,
    finish: std::sync::mpsc::Sender<()>,
}

fn held_handler(tag: &str) -> Held {
    let fabric = format!("test-{tag}-{}", std::process::id());
    let cleanup = FabricDir(fabric.clone());
    let cli = protocol(&fabric, "cli");
    let srv = protocol(&fabric, "srv");
    let (started_tx, started) = std::sync::mpsc::channel();
    let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
    let finish_rx = std::sync::Mutex::new(finish_rx);
    srv.on_receive("srv", move |m| {
        let _ = started_tx.send(());
        let _ = finish_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(30));
        Ok(m.data.iter().rev().copied().collect())
    })
    .unwrap();
    cli.start_background_services().unwrap();
    srv.start_background_services().unwrap();
    Held {
        _cleanup: cleanup,
        cli,
        srv,
        started,
        finish,
    }
}

/// The answer of srv to `body` sent from cli, waited for up to `timeout`.
fn request(
    cli: &HyperFabricProtocol,
    body: &[u8],
    timeout: Duration,
) -> hyperfabric::Result<Vec<u8>> {
    let opts = SendOptions {
        timeout,
        ..Default::default()
    };
    cli.send_data("cli", "srv", body, &opts)
}

/// Whether `cli`'s topology has srv up.
fn srv_up(cli: &HyperFabricProtocol) -> bool {
    cli.topology().unwrap().read(|t| t.node_up("srv")).unwrap()
}

#[test]
fn a_node_whose_handler_runs_long_stays_up() {
    let silence = HEARTBEAT_INTERVAL * HEARTBEAT_MISSES;
    let Held {
        cli,
        srv: _srv,
        started,
        finish,
        _cleanup: _fabric,
    } = held_handler("long-handler");
    let up = || srv_up(&cli);
    std::thread::scope(|s| {
        let answer = s.spawn(|| request(&cli, b"slow", Duration::from_secs(30)));
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        let until = std::time::Instant::now() + 3 * silence;
        let mut down = false;
        while std::time::Instant::now() < until && !down {
            down = !up();
            std::thread::sleep(Duration::from_millis(5));
        }
        finish.send(()).unwrap();
        assert!(!down, "srv was marked down while its handler ran");
        assert_eq!(answer.join().unwrap().unwrap(), b"wols");
    });
    assert!(up());
}

#[test]
fn a_node_whose_handler_hangs_is_marked_down_then_up_again() {
    let Held {
        cli,
        srv: _srv,
        started,
        finish,
        _cleanup: _fabric,
    } = held_handler("hung-handler");
    let up = || srv_up(&cli);
    std::thread::scope(|s| {
        let answer = s.spawn(|| request(&cli, b"hang", Duration::from_secs(60)));
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        let t = Instant::now();
        let limit = HANDLER_GRACE + Duration::from_secs(10);
        while up() && t.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(5));
        }
        let went_down = !up();
        let after = t.elapsed();
        finish.send(()).unwrap();
        assert!(
            went_down,
            "a handler hung for {after:?}: its node is still up"
        );
        assert!(
            after + Duration::from_millis(50) >= HANDLER_GRACE,
            "down after {after:?}"
        );
        let _ = answer.join().unwrap();
    });
    let t = Instant::now();
    while !up() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "srv never came back up"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
