//! PMIx bootstrap under Open MPI's `mpirun -np 3` (its PMIx server): every rank finds the
//! others with no MPI call, over TCP, and each answers the others (`examples/pmix_peers.rs`).
#![cfg(feature = "pmix")]

use std::process::Command;

#[test]
fn three_ranks_find_each_other_through_pmix_alone() {
    let have = Command::new("sh")
        .args(["-c", "command -v mpirun"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have,
        "mpirun not found: install openmpi-bin (scripts/deps.sh does)"
    );
    // The example beside this test binary (cargo builds examples with the tests).
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples/pmix_peers");
    assert!(example.exists(), "{} not built", example.display());
    let fabric = format!("pmix-{}", std::process::id());
    let out = Command::new("timeout")
        .args([
            "120",
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            "3",
        ])
        .args(["-x", "HF_PMIX_KEY", "-x", "HF_PMIX_FABRIC"])
        .arg(&example)
        .env("HF_PMIX_KEY", "42".repeat(32))
        .env("HF_PMIX_FABRIC", &fabric)
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&fabric));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for rank in 0..3 {
        assert!(
            stdout.contains(&format!("rank {rank} found 2 peers, all answered")),
            "{stdout}\n{stderr}"
        );
    }
}
