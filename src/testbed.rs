//! Hosts as network namespaces on one machine, for `hyperfabric demo --hosts N` and the tests
//! of the transport between hosts: each host is a namespace with a veth pair whose other end
//! joins a bridge in a hub namespace of its own, and, when asked, the calling process's own
//! namespace joins the bridge too (as one more host). Nothing of the machine's own network
//! changes, and everything is removed when the [`Testbed`] is dropped (also on a panic);
//! namespaces a killed process left behind are removed at the next start. Needs the rights to
//! create namespaces (root or `CAP_NET_ADMIN`) and the `ip` command.
#![forbid(unsafe_code)]

use crate::error::{Error, Result};
use std::process::Command;

/// Runs `ip` with `args`; the error names the command and what it printed.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::io("running ip (iproute2)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::io(
            format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            std::io::ErrorKind::PermissionDenied.into(),
        ))
    }
}

/// Namespaces `hfN-<pid>-...` of processes that are gone.
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

/// `n` hosts on one subnet (`10.231.<s>.1` and up; the caller's own namespace, when it
/// joins, is `10.231.<s>.254`), removed when dropped.
pub struct Testbed {
    names: Vec<String>,
    hub: String,
    addresses: Vec<String>,
    own: Option<String>,
    /// The caller's end of its pair, when it joined.
    own_link: Option<String>,
}

impl Testbed {
    /// Creates `n` hosts; with `join`, the calling process's namespace reaches them too.
    /// `IOError` saying why when this machine does not allow it.
    pub fn new(n: usize, join: bool) -> Result<Testbed> {
        remove_stale();
        let pid = std::process::id();
        // A subnet no route of the caller's namespace uses yet (another testbed that joined
        // it, or a real network).
        let taken = |s: u32| {
            Command::new("ip")
                .args(["-4", "route", "show", &format!("10.231.{s}.0/24")])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        };
        let subnet = (0..200)
            .map(|k| (pid + k) % 200 + 20)
            .find(|&s| !join || !taken(s))
            .unwrap_or(pid % 200 + 20);
        let hub = format!("hfN-{pid}-hub");
        let mut t = Testbed {
            names: Vec::new(),
            hub: hub.clone(),
            addresses: Vec::new(),
            own: None,
            own_link: None,
        };
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 1..=n {
            let name = format!("hfN-{pid}-h{i}");
            ip(&["netns", "add", &name])?;
            t.names.push(name.clone());
            let addr = format!("10.231.{subnet}.{i}");
            t.attach(Some(&name), &format!("hfv{i}"), &format!("hfb{i}"), &addr)?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
            t.addresses.push(addr);
        }
        if join {
            // The pair's ends are named after this process: two testbeds never collide.
            let addr = format!("10.231.{subnet}.254");
            let inner = format!("hfo{}", pid % 100_000_000);
            let outer = format!("hfp{}", pid % 100_000_000);
            t.own_link = Some(inner.clone());
            t.attach(None, &inner, &outer, &addr)?;
            t.own = Some(addr);
        }
        Ok(t)
    }

    /// A veth pair: `inner` (in namespace `ns`, or the caller's) with address `addr`, and
    /// `outer` on the hub's bridge.
    fn attach(&self, ns: Option<&str>, inner: &str, outer: &str, addr: &str) -> Result<()> {
        let hub = self.hub.as_str();
        let within = |args: &[&str]| -> Result<()> {
            match ns {
                Some(ns) => ip(&[&["-n", ns], args].concat()),
                None => ip(args),
            }
        };
        within(&["link", "add", inner, "type", "veth", "peer", "name", outer])?;
        within(&["link", "set", outer, "netns", hub])?;
        ip(&["-n", hub, "link", "set", outer, "master", "br0"])?;
        ip(&["-n", hub, "link", "set", outer, "up"])?;
        within(&["addr", "add", &format!("{addr}/24"), "dev", inner])?;
        within(&["link", "set", inner, "up"])
    }

    /// How many hosts (the caller's namespace not counted).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no hosts.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The namespace of host `i` (0-based), for `ip netns exec`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The address of host `i`.
    pub fn address(&self, i: usize) -> &str {
        &self.addresses[i]
    }

    /// The caller's own address on the subnet, when it joined.
    pub fn own_address(&self) -> Option<&str> {
        self.own.as_deref()
    }

    /// A command that runs `program` in the namespace of host `i`.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[i]]).arg(program);
        c
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // Deleting a namespace deletes its ends of the pairs, and so the other ends.
        for n in self.names.iter().chain(std::iter::once(&self.hub)) {
            let _ = ip(&["netns", "del", n]);
        }
        if let Some(l) = &self.own_link {
            // Gone with its peer already, unless a failure left the pair here.
            let _ = ip(&["link", "del", l]);
        }
    }
}
