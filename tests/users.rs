//! Many Unix users on one host, the normal case on an HPC node: each user's fabrics live under
//! a root of their own, so a fabric of one user never blocks another's (a single root made
//! 0700 by whoever came first had locked every other user out), and users share a fabric only
//! through a group they name. The processes of other users are this test binary re-run under
//! other uids with `setpriv`, which needs root; run as another user, the test checks what one
//! user can (the per-user root) and says what it skipped.

mod common;

use common::{node, FabricDir};
use hyperfabric::fabric::{HyperFabricProtocol, ProtocolConfig, SendOptions};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROLE: &str = "HF_USERS_ROLE";
const FABRIC: &str = "HF_USERS_FABRIC";
const UID_A: u32 = 64_101;
const UID_B: u32 = 64_102;
const GID_SHARED: u32 = 64_150;

fn protocol(fabric: &str) -> HyperFabricProtocol {
    HyperFabricProtocol::with_config(ProtocolConfig {
        fabric_name: Some(fabric.into()),
        ..Default::default()
    })
    .unwrap()
}

/// Child process of the tests below, run as another user. "private": a fabric of its own,
/// a message between two of its nodes. "host": hosts `ga` in the group-shared fabric and
/// answers requests until its stdin closes. "client": asks `ga` from node `gb`.
#[test]
#[ignore = "child process of the tests of this file, started by them under another uid"]
fn child_as_another_user() {
    let role = common::child_var(ROLE);
    let fabric = std::env::var(FABRIC).unwrap();
    let p = protocol(&fabric);
    match role.as_str() {
        "private" => {
            p.register_node(node("u-a")).unwrap();
            p.register_node(node("u-b")).unwrap();
            p.post("u-a", "u-b", b"mine", &SendOptions::default())
                .unwrap();
            let m = p.recv("u-b", Duration::from_secs(5)).unwrap();
            assert_eq!(&m.data[..], b"mine");
            println!("root {}", hyperfabric::sys::state_root().display());
            drop(p);
            let _ = std::fs::remove_dir_all(hyperfabric::sys::state_root().join(&fabric));
        }
        "host" => {
            p.register_node(node("ga")).unwrap();
            p.on_receive("ga", |m| Ok(m.data.iter().rev().copied().collect()))
                .unwrap();
            p.start_background_services().unwrap();
            println!("ready");
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        "client" => {
            p.register_node(node("gb")).unwrap();
            let r = p
                .send_data("gb", "ga", b"across users", &SendOptions::default())
                .unwrap();
            assert_eq!(r, b"sresu ssorca");
            println!("answered");
        }
        other => panic!("unknown role {other}"),
    }
}

fn as_user(uid: u32, groups: &[u32], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let g: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        cmd.arg(format!("--groups={}", g.join(",")));
    }
    cmd.arg(std::env::current_exe().unwrap()).args([
        "--exact",
        "child_as_another_user",
        "--ignored",
        "--nocapture",
    ]);
    cmd.env_remove("HF_SHM_DIR").env_remove("HF_SHM_GROUP");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped()).stdin(Stdio::piped());
    cmd
}

fn line_ending(child: &mut Child, suffix: &str) -> String {
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains(suffix))
        .unwrap_or_default();
    std::thread::spawn(move || lines.for_each(drop));
    line
}

fn is_root() -> bool {
    hyperfabric::sys::process::euid() == 0
}

#[test]
fn each_user_has_fabrics_of_their_own() {
    let root = hyperfabric::sys::state_root();
    if std::env::var_os("HF_SHM_DIR").is_none() {
        let uid = hyperfabric::sys::process::euid();
        assert!(root.ends_with(format!("hyperfabric-{uid}")), "{root:?}");
    }
    if !is_root() {
        eprintln!("not root: the part run as two other users is skipped");
        return;
    }
    let dir = FabricDir(format!("users-{}", std::process::id()));
    // This user holds the fabric name first, as the first user of a node did.
    let mine = protocol(&dir.0);
    mine.register_node(node("u-a")).unwrap();
    let mut roots = Vec::new();
    for uid in [UID_A, UID_B] {
        let mut child = as_user(uid, &[], &[(ROLE, "private"), (FABRIC, &dir.0)])
            .spawn()
            .unwrap();
        let line = line_ending(&mut child, "root ");
        let status = child.wait().unwrap();
        assert!(status.success(), "uid {uid}: {status}");
        roots.push(line);
    }
    assert!(
        roots[0].ends_with(&format!("hyperfabric-{UID_A}")),
        "{roots:?}"
    );
    assert!(
        roots[1].ends_with(&format!("hyperfabric-{UID_B}")),
        "{roots:?}"
    );
    for uid in [UID_A, UID_B] {
        let _ = std::fs::remove_dir_all(format!("/dev/shm/hyperfabric-{uid}"));
    }
}

#[test]
fn a_group_shares_a_fabric_across_users() {
    if !is_root() {
        eprintln!("not root: sharing across two other users is not tried");
        return;
    }
    let fabric = format!("users-g-{}", std::process::id());
    let gid = GID_SHARED.to_string();
    let env = |role| {
        [
            (ROLE, role),
            (FABRIC, fabric.as_str()),
            ("HF_SHM_GROUP", gid.as_str()),
        ]
    };
    let root = format!("/dev/shm/hyperfabric-g{GID_SHARED}");
    let _cleanup = RemoveOnDrop(root.clone());
    let mut host = as_user(UID_A, &[GID_SHARED], &env("host")).spawn().unwrap();
    assert!(
        line_ending(&mut host, "ready").contains("ready"),
        "host not ready"
    );
    let mut client = as_user(UID_B, &[GID_SHARED], &env("client"))
        .spawn()
        .unwrap();
    let answered = line_ending(&mut client, "answered");
    let status = client.wait().unwrap();
    drop(host.stdin.take());
    host.wait().unwrap();
    assert!(
        status.success() && answered.contains("answered"),
        "{status}"
    );
    // The state belongs to the group and to nobody else.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(format!("{root}/{fabric}")).unwrap();
    assert_eq!((meta.gid(), meta.mode() & 0o7777), (GID_SHARED, 0o2770));
    let reg = std::fs::metadata(format!("{root}/{fabric}/registry")).unwrap();
    assert_eq!((reg.gid(), reg.mode() & 0o777), (GID_SHARED, 0o660));
    // A user outside the group cannot join it.
    let out = as_user(UID_B, &[], &env("client")).output().unwrap();
    assert!(!out.status.success(), "a user outside the group joined");
}

struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
