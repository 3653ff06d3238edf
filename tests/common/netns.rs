//! Hosts as network namespaces: each gets a veth pair whose other end joins a bridge in a
//! hub namespace of its own, so the hosts reach each other by address and nothing of the
//! machine's own network changes. Everything is removed when the guard is dropped (also
//! when the test fails), and namespaces a killed test left behind are removed at the next
//! start.

use std::process::Command;

/// Runs `ip` with `args`; the error names the command and what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces `hfN-<pid>-...` of test processes that are gone.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("hfN-") else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// `n` hosts on one subnet (10.231.<subnet>.1 ...), removed when dropped.
pub struct Netns {
    names: Vec<String>,
    hub: String,
    addresses: Vec<String>,
}

impl Netns {
    /// Creates the hosts, or says why this machine does not allow it.
    pub fn new(n: usize) -> Result<Netns, String> {
        remove_stale();
        let pid = std::process::id();
        let subnet = pid % 200 + 20;
        let hub = format!("hfN-{pid}-hub");
        let mut ns = Netns {
            names: Vec::new(),
            hub: hub.clone(),
            addresses: Vec::new(),
        };
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 1..=n {
            let name = format!("hfN-{pid}-h{i}");
            ip(&["netns", "add", &name])?;
            ns.names.push(name.clone());
            let (inner, outer) = (format!("hfv{i}"), format!("hfb{i}"));
            ip(&[
                "-n", &name, "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ])?;
            ip(&["-n", &name, "link", "set", &outer, "netns", &hub])?;
            ip(&["-n", &hub, "link", "set", &outer, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &outer, "up"])?;
            let addr = format!("10.231.{subnet}.{i}");
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &name, "link", "set", &inner, "up"])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
            ns.addresses.push(addr);
        }
        Ok(ns)
    }

    /// The name of host `i` (0-based), for `ip netns exec`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The address of host `i`.
    pub fn address(&self, i: usize) -> &str {
        &self.addresses[i]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in self.names.iter().chain(std::iter::once(&self.hub)) {
            let _ = ip(&["netns", "del", n]);
        }
    }
}
