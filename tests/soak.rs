//! `hyperfabric soak`, short: messages between two processes through two forwarders that
//! lose, duplicate and damage frames, one of them killed and restarted every 2 s. Every
//! message arrives exactly once, whole and in order, or its sender is told; nothing of the
//! run is left in the shared-memory directory; the same across hosts made of network
//! namespaces. (`scripts/test.sh` runs 10^5 messages.)

use std::process::Command;

/// Runs `hyperfabric soak` with `args`: its output, and whether its fabric's directory
/// (named after its process) is still there after it exited.
fn run_soak(args: &[&str]) -> (std::process::Output, bool) {
    let child = Command::new(env!("CARGO_BIN_EXE_hyperfabric"))
        .arg("soak")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let dir = hyperfabric::sys::state_root().join(format!("soak-{}", child.id()));
    let out = child.wait_with_output().unwrap();
    (out, dir.exists())
}

/// Runs `hyperfabric soak` with `args` for `messages`, and checks what every soak
/// promises; its JSON result.
fn soak(messages: u64, args: &[&str]) -> serde_json::Value {
    let n = messages.to_string();
    let (out, left) = run_soak(&[&["--messages", &n, "--json"], args].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "soak failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert_eq!(n("messages"), messages, "{v}");
    assert_eq!(n("lost_unreported"), 0, "{v}");
    assert_eq!(n("duplicated_or_reordered"), 0, "{v}");
    assert_eq!(n("corrupt_delivered"), 0, "{v}");
    assert!(n("delivered") <= messages, "{v}");
    assert!(n("delivered") + n("reported_failed") >= messages, "{v}");
    assert!(n("forwarder_kills") >= 1, "{v}");
    assert!(n("resent") > 0 && n("refused_at_receivers") > 0, "{v}");
    assert!(!left, "the soak left its fabric directory behind");
    v
}

#[test]
fn a_soak_with_faults_and_a_killed_forwarder_loses_nothing() {
    soak(20_000, &["--kill-every-ms", "1500"]);
}

/// The soak's own check can fail: with fault tolerance off, the forwarders' faults lose
/// messages that nobody reports, and it says so.
#[test]
fn a_soak_without_fault_tolerance_finds_messages_lost() {
    let (out, left) = run_soak(&[
        "--messages",
        "5000",
        "--kill-every-ms",
        "0",
        "--best-effort",
        "--timeout-ms",
        "500",
        "--json",
    ]);
    assert!(!left, "the soak left its fabric directory behind");
    assert!(!out.status.success(), "losses went unnoticed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["lost_unreported"].as_u64().unwrap() > 0, "{v}");
}

/// The same with every hop a TCP connection between hosts (network namespaces): the
/// forwarder's connections close when it is killed, and it dials the others again.
#[test]
fn a_soak_across_hosts_loses_nothing() {
    if let Err(why) = hyperfabric::testbed::Testbed::new(1, false) {
        println!("SKIPPED: this machine does not allow network namespaces: {why}");
        return;
    }
    let before = namespaces();
    // Long enough for two kills (the soak of this size takes about 3 s unkilled).
    soak(40_000, &["--hosts", "--kill-every-ms", "1000"]);
    assert_eq!(namespaces(), before, "the soak left namespaces behind");
}

/// The network namespaces of this machine.
fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}
