//! A process of a job started by a PMIx launcher (`mpirun -np 3 target/release/examples/pmix_peers`):
//! it hosts node `rank-<rank>`, finds every other rank's node through PMIx alone (no MPI
//! call), asks each of them to echo, and waits at a PMIx fence before it leaves. The fabric
//! key comes from `HF_PMIX_KEY` (hex) and the fabric name from `HF_PMIX_FABRIC`. Prints one
//! line: `rank R found N peers, all answered`.

use hyperfabric::codec::FabricKey;
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions, TcpConfig};
use hyperfabric::model::{HardwareType, NodeSignature};
use hyperfabric::sys::pmix::Client;

fn main() -> Result<(), hyperfabric::Error> {
    let pmix = Client::init()?;
    let rank = pmix.rank();
    let key = FabricKey::from_hex(&std::env::var("HF_PMIX_KEY").unwrap_or_default())?;
    let p = HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: std::env::var("HF_PMIX_FABRIC").ok(),
        key: Some(key),
        // Every rank listens; ranks on this host are reached over TCP too, as ranks on
        // other hosts would be.
        tcp: Some(TcpConfig {
            listen: Some("127.0.0.1:0".parse().expect("an address")),
            force: true,
            ..Default::default()
        }),
        ..Default::default()
    })?;
    let me = format!("rank-{rank}");
    p.register_node(NodeSignature::new(
        &me,
        HardwareType::CpuServer,
        100.0,
        1000,
    )?)?;
    p.on_receive(&me, |m| Ok(m.data.to_vec()))?;
    p.start_background_services()?;
    let peers = p.bootstrap_pmix()?;
    for peer in &peers {
        let question = format!("{me} to {peer}");
        let answer = p.send_data(&me, peer, question.as_bytes(), &SendOptions::default())?;
        assert_eq!(answer, question.as_bytes());
        assert_eq!(p.transport_to(peer)?, "tcp");
    }
    println!("rank {rank} found {} peers, all answered", peers.len());
    // Nobody leaves before every rank got its answers.
    pmix.fence()?;
    Ok(())
}
