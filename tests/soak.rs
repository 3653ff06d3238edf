//! `hyperfabric soak`, short: messages between two processes through two forwarders that
//! lose, duplicate and damage frames, one of them killed and restarted every 2 s. Every
//! message arrives exactly once, whole and in order, or its sender is told; nothing of the
//! run is left in the shared-memory directory. (`scripts/test.sh` runs 10^5 messages.)

use std::process::Command;

fn soak_dirs() -> Vec<String> {
    let root = hyperfabric::sys::state_root();
    std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("soak-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_soak_with_faults_and_a_killed_forwarder_loses_nothing() {
    let before = soak_dirs();
    let out = Command::new(env!("CARGO_BIN_EXE_hyperfabric"))
        .args([
            "soak",
            "--messages",
            "20000",
            "--kill-every-ms",
            "1500",
            "--json",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "soak failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert_eq!(n("messages"), 20_000);
    assert_eq!(n("lost_unreported"), 0);
    assert_eq!(n("duplicated_or_reordered"), 0);
    assert_eq!(n("corrupt_delivered"), 0);
    assert!(n("delivered") <= 20_000);
    assert!(n("delivered") + n("reported_failed") >= 20_000, "{v}");
    assert!(n("forwarder_kills") >= 1, "{v}");
    assert!(n("resent") > 0 && n("refused_at_receivers") > 0, "{v}");
    assert_eq!(
        soak_dirs(),
        before,
        "the soak left its fabric directory behind"
    );
}
