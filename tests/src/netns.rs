//! [`NetLab`]: network namespaces with a rate-limited link each, for the scale-out benchmark (P3).
//!
//! Layout (all made here, all removed on Drop):
//! - a hub namespace `bmhub<tag>` holding a bridge `br0`;
//! - a veth pair from the root namespace into the hub: the root end `bmr<tag>` gets
//!   `10.77.T.254/24` ([`NetLab::root_ip`]) — the S3 servers and the harness's proxies bind here;
//! - per host `i` ([`NetLab::add_host`]) a namespace `bmh<tag>n<i>` whose `eth0` (`10.77.T.(10+i)`)
//!   pairs with a port on the bridge. Both ends carry a `tc tbf` limit of `cap` Mbit/s, so what
//!   the host sends (uploads) and what it receives (downloads) are each capped — an emulated NIC.
//!
//! One /24 on one bridge: no routing, no `ip_forward`, nothing touched outside these namespaces
//! but the one veth end in the root namespace. Needs root, `ip` and `tc`; [`NetLab::create`]
//! says why it cannot run instead of failing half-way, and first removes what a killed earlier
//! run left (namespaces `bmh…` with no process in them).

use std::net::Ipv4Addr;
use std::process::Command;

use rand::Rng;

/// The namespaces of one benchmark. See the module docs.
#[derive(Debug)]
pub struct NetLab {
    tag: u8,
    hosts: Vec<String>,
    cap_mbit: u32,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetLab {
    /// The hub and the root link. Err names what is missing (not root, no `ip` or `tc`, the
    /// kernel refused a namespace, a veth or tbf).
    pub fn create(cap_mbit: u32) -> Result<NetLab, String> {
        if !crate::sys::is_root() {
            return Err("network namespaces and tc need root".into());
        }
        for tool in ["ip", "tc"] {
            if Command::new(tool).arg("-V").output().is_err() {
                return Err(format!("`{tool}` is not installed (Debian: iproute2)"));
            }
        }
        remove_leftovers();
        let tag = rand::thread_rng().gen_range(1..=250u8);
        let lab = NetLab {
            tag,
            hosts: Vec::new(),
            cap_mbit,
        };
        let hub = lab.hub();
        let root_if = format!("bmr{tag}");
        let peer = format!("bmr{tag}h");
        run(&["ip", "netns", "add", &hub])?;
        let steps: Vec<Vec<String>> = vec![
            lab.in_hub(&["ip", "link", "set", "lo", "up"]),
            lab.in_hub(&["ip", "link", "add", "br0", "type", "bridge"]),
            lab.in_hub(&["ip", "link", "set", "br0", "up"]),
            svec(&["ip", "link", "add", &root_if, "type", "veth", "peer", "name", &peer]),
            svec(&["ip", "link", "set", &peer, "netns", &hub]),
            lab.in_hub(&["ip", "link", "set", &peer, "master", "br0"]),
            lab.in_hub(&["ip", "link", "set", &peer, "up"]),
            svec(&["ip", "addr", "add", &format!("{}/24", lab.root_ip()), "dev", &root_if]),
            svec(&["ip", "link", "set", &root_if, "up"]),
        ];
        for s in steps {
            let args: Vec<&str> = s.iter().map(String::as_str).collect();
            run(&args)?;
        }
        Ok(lab)
    }

    fn hub(&self) -> String {
        format!("bmhub{}", self.tag)
    }

    fn in_hub(&self, args: &[&str]) -> Vec<String> {
        let mut v = svec(&["ip", "netns", "exec", &self.hub()]);
        v.extend(svec(args));
        v
    }

    /// The root namespace's address on the lab's network.
    pub fn root_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.tag, 254)
    }

    /// The address of host `i`.
    pub fn host_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.tag, 10 + i as u8)
    }

    /// The namespace of host `i`.
    pub fn host_ns(&self, i: usize) -> &str {
        &self.hosts[i]
    }

    /// The link limit of every host, in Mbit/s.
    pub fn cap_mbit(&self) -> u32 {
        self.cap_mbit
    }

    /// Adds host `hosts()` (its namespace, its capped link); returns its index.
    pub fn add_host(&mut self) -> Result<usize, String> {
        let i = self.hosts.len();
        assert!(i < 200, "too many hosts");
        let ns = format!("bmh{}n{i}", self.tag);
        let port = format!("bmp{}n{i}", self.tag);
        run(&["ip", "netns", "add", &ns])?;
        self.hosts.push(ns.clone());
        let ip = format!("{}/24", self.host_ip(i));
        let rate = format!("{}mbit", self.cap_mbit);
        // tbf: a burst of ~10 ms at the rate (at least 64 KiB, larger than one TSO segment) and
        // up to 100 ms of queue.
        let burst = format!("{}", (self.cap_mbit as u64 * 1_000_000 / 8 / 100).max(65_536));
        let tbf = |dev: &str| {
            svec(&[
                "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst", &burst, "latency", "100ms",
            ])
        };
        let in_ns = |args: Vec<String>| {
            let mut v = svec(&["ip", "netns", "exec", &ns]);
            v.extend(args);
            v
        };
        let mut steps: Vec<Vec<String>> = vec![
            in_ns(svec(&["ip", "link", "set", "lo", "up"])),
            self.in_hub(&[
                "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]),
            self.in_hub(&["ip", "link", "set", &port, "master", "br0"]),
            self.in_hub(&["ip", "link", "set", &port, "up"]),
            in_ns(svec(&["ip", "addr", "add", &ip, "dev", "eth0"])),
            in_ns(svec(&["ip", "link", "set", "eth0", "up"])),
            // Uploads: the host's own egress.
            in_ns(tbf("eth0")),
        ];
        // Downloads: the bridge port's egress towards the host.
        let mut down = svec(&["ip", "netns", "exec", &self.hub()]);
        down.extend(tbf(&port));
        steps.push(down);
        for s in steps {
            let args: Vec<&str> = s.iter().map(String::as_str).collect();
            run(&args)?;
        }
        Ok(i)
    }

    /// A command that runs `program` inside host `i`'s namespace (`ip netns exec` execs it, so
    /// the child's pid is the program's).
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i]]).arg(program);
        c
    }
}

/// Deletes the namespaces of earlier runs that were killed before their Drop (names `bmh…`,
/// no process left in them); their veth pairs go with them.
fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for ns in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        if !ns.starts_with("bmh") {
            continue;
        }
        let idle = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.is_empty());
        if idle {
            eprintln!("removing network namespace {ns} left by an earlier run");
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

fn svec(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

impl Drop for NetLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends inside it, and with them their peers.
        for ns in self.hosts.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = run(&["ip", "netns", "del", &self.hub()]);
        let _ = run(&["ip", "link", "del", &format!("bmr{}", self.tag)]);
    }
}
