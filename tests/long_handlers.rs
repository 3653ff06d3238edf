//! A handler that runs longer than the silence after which a node is marked down: its node
//! stays up for the other processes (its heartbeats go on while the handler runs), and the
//! request it answers completes.

mod common;

use common::FabricDir;
use hyperfabric::engine::{HEARTBEAT_INTERVAL, HEARTBEAT_MISSES};
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use hyperfabric::model::{HardwareType, NodeSignature};
use std::time::Duration;

fn protocol(fabric: &str, node: &str) -> HyperFabricProtocol {
    let p = HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        ..Default::default()
    })
    .unwrap();
    p.register_node(NodeSignature::new(node, HardwareType::NvidiaH100, 400.0, 10).unwrap())
        .unwrap();
    p
}

#[test]
fn a_node_whose_handler_runs_long_stays_up() {
    let fabric = format!("test-long-handler-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let silence = HEARTBEAT_INTERVAL * HEARTBEAT_MISSES;
    let cli = protocol(&fabric, "cli");
    let srv = protocol(&fabric, "srv");
    let (started_tx, started) = std::sync::mpsc::channel();
    let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
    let finish_rx = std::sync::Mutex::new(finish_rx);
    srv.on_receive("srv", move |m| {
        started_tx.send(()).unwrap();
        // Runs until the test has watched for three times the silence.
        finish_rx.lock().unwrap().recv().unwrap();
        Ok(m.data.iter().rev().copied().collect())
    })
    .unwrap();
    cli.start_background_services().unwrap();
    srv.start_background_services().unwrap();
    let up = || cli.topology().unwrap().read(|t| t.node_up("srv")).unwrap();
    std::thread::scope(|s| {
        let answer = s.spawn(|| {
            let opts = SendOptions {
                timeout: Duration::from_secs(30),
                ..Default::default()
            };
            cli.send_data("cli", "srv", b"slow", &opts)
        });
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        let until = std::time::Instant::now() + 3 * silence;
        while std::time::Instant::now() < until {
            assert!(up(), "srv was marked down while its handler ran");
            std::thread::sleep(Duration::from_millis(5));
        }
        finish.send(()).unwrap();
        assert_eq!(answer.join().unwrap().unwrap(), b"wols");
    });
    assert!(up());
}
