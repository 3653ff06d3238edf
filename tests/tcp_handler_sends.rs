//! A handler that sends through an endpoint whose destination is on another host: the
//! endpoint's sends go through the engine, which the handler's thread holds, so they are
//! refused with a clear error instead of waiting for the engine forever. The engine goes on
//! serving.

mod common;

use common::{node, tcp_protocol, test_key, until_tcp, FabricDir};
use hyperfabric::fabric::SendOptions;
use hyperfabric::ErrorKind;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

#[test]
fn a_handler_sending_through_the_engine_is_refused_not_stuck() {
    let f = FabricDir(format!("tcp-handler-sends-{}", std::process::id()));
    let a = tcp_protocol(&f.0, Some(test_key()), true);
    let b = tcp_protocol(&f.0, Some(test_key()), false);
    a.register_node(node("a")).unwrap();
    a.start_background_services().unwrap();
    b.register_node(node("b")).unwrap();
    b.start_background_services().unwrap();
    b.connect_host(a.listen_address().unwrap()).unwrap();
    until_tcp(&b, "a");
    // Made before, outside the handler: through the engine, the node being on another host.
    let ep = Mutex::new(b.endpoint("b", "a").unwrap());
    let (tx, rx) = mpsc::channel();
    b.on_receive("b", move |m| {
        let mut ep = ep.lock().unwrap();
        let opts = SendOptions {
            priority: hyperfabric::model::PacketPriority::High,
            ..Default::default()
        };
        let sent = [
            ep.post(&m.data).map(drop),
            ep.post_with(&m.data, &opts).map(drop),
            ep.send_data_nb(&m.data, &opts).map(drop),
        ];
        tx.send(sent.map(|r| r.map_err(|e| (e.kind(), e.to_string()))))
            .unwrap();
        Ok(Vec::new())
    })
    .unwrap();
    for i in 0..3u8 {
        a.post("a", "b", &[i], &SendOptions::default()).unwrap();
        let sent = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the handler returned");
        for r in sent {
            let (kind, why) = r.expect_err("a send through the engine from its handler");
            assert_eq!(kind, ErrorKind::InvalidArgument, "{why}");
            assert!(why.contains("another thread"), "{why}");
        }
    }
    // Nothing reached "a" from the handler, and "b"'s engine still answers.
    let none = a.recv("a", Duration::from_millis(50));
    assert_eq!(none.unwrap_err().kind(), ErrorKind::Timeout);
    a.send_data("a", "b", &[9], &SendOptions::default())
        .expect("b answers after its handler's refused sends");
}
