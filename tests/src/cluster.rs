//! [`TestCluster`]: real `meshd` processes on loopback, each behind a [`FaultProxy`].
//!
//! Addressing: every test picks a random base `127.A.B.0` and node `i` gets `127.A.B.(10+i)`, so
//! tests running in parallel never share an address. Ports are chosen at run time (bind port 0,
//! read it, release it). Node `i` listens on `IP:port`, serves metrics on `IP:metrics_port`, and
//! advertises its proxy `IP:proxy_port` (`--advertise`), so all peer traffic to it crosses the
//! proxy and can be cut.
//!
//! Files, under one temporary directory per cluster: `pki/` (CA and node certs made by
//! `meshctl tls`), `nI/` (data dir), `nI.log` (stdout+stderr of every run of node I, appended, with
//! a `=== harness:` line per start). When a test panics, Drop prints each log's path and tail and
//! keeps the directory; `MESH_TESTS_KEEP=1` keeps it always.
//!
//! All waiting is polling with deadlines ([`crate::wait`]). Children are SIGKILLed on Drop (and get
//! `PR_SET_PDEATHSIG` so they die with the test process even if Drop never runs; the signal fires
//! when the *thread* that spawned them exits, so start and restart nodes from the thread that owns
//! the cluster, as the tests do).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::ctl::{self, Status};
use crate::netns::NetLab;
use crate::proc::{self, ProcOutput};
use crate::proxy::FaultProxy;
use crate::tls::{NodeCert, Pki};
use crate::wait::{wait_for, wait_until};
use crate::{bins, grpc};

/// Default deadline for a cluster to become ready / elect a leader.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline for one meshctl invocation.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(20);

/// How a node is started the first time.
#[derive(Debug, Clone)]
pub enum StartMode {
    /// `--bootstrap-expect expect --join <advertised addrs of these nodes>`.
    Bootstrap { expect: usize, join: Vec<usize> },
    /// `--join <advertised addrs of these nodes>` (an existing cluster).
    Join { via: Vec<usize> },
    /// Neither flag (a restart of an initialized node).
    Plain,
}

/// Builder of a [`TestCluster`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    bootstrap_expect: Option<usize>,
    snapshot_every: Option<u64>,
    heartbeat: Option<String>,
    election_timeout: Option<String>,
    extra_args: Vec<String>,
    ready_timeout: Duration,
    netns: Option<std::sync::Arc<NetLab>>,
}

impl ClusterBuilder {
    /// `--snapshot-every N` on every node.
    pub fn snapshot_every(mut self, n: u64) -> Self {
        self.snapshot_every = Some(n);
        self
    }

    /// `--heartbeat-interval` / `--election-timeout` on every node (the default is 150ms / 1000ms;
    /// `None` leaves meshd's own default).
    pub fn timing(mut self, heartbeat: Option<&str>, election_timeout: Option<&str>) -> Self {
        self.heartbeat = heartbeat.map(str::to_string);
        self.election_timeout = election_timeout.map(str::to_string);
        self
    }

    /// `--bootstrap-expect` (default: the number of nodes).
    pub fn bootstrap_expect(mut self, n: usize) -> Self {
        self.bootstrap_expect = Some(n);
        self
    }

    /// An extra flag for every node.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.extra_args.push(a.into());
        self
    }

    /// Runs node `i` in host `i`'s namespace of `lab` (its address, its capped link) instead of
    /// on a loopback address; the proxies bind the lab's root address. The lab must already
    /// have a host per node.
    pub fn in_namespaces(mut self, lab: std::sync::Arc<NetLab>) -> Self {
        self.netns = Some(lab);
        self
    }

    /// Deadline for [`start`](Self::start) to see a leader.
    pub fn ready_timeout(mut self, d: Duration) -> Self {
        self.ready_timeout = d;
        self
    }

    /// Prepares the cluster (addresses, proxies, certs, args) without starting anything.
    pub fn build(self) -> TestCluster {
        TestCluster::prepare(self)
    }

    /// Builds, starts every node in bootstrap mode and waits until all agree on a leader.
    pub fn start(self) -> TestCluster {
        let timeout = self.ready_timeout;
        let mut c = self.build();
        for i in 0..c.nodes.len() {
            c.start(i);
        }
        c.wait_ready(timeout);
        c
    }
}

/// One node of a [`TestCluster`].
pub struct Node {
    pub idx: usize,
    /// `nI`: the certificate name and the log/data dir name.
    pub name: String,
    pub ip: Ipv4Addr,
    /// Where meshd listens (clients and meshctl talk here directly).
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    /// In front of `listen`; its address is what the node advertises.
    pub proxy: FaultProxy,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub cert: NodeCert,
    pub mode: StartMode,
    /// Extra flags for this node only (after the common ones).
    pub extra_args: Vec<String>,
    child: Option<Child>,
    stopped: bool,
    starts: u32,
    exit: Option<ExitStatus>,
}

impl Node {
    /// The advertised address (the proxy's).
    pub fn advertise(&self) -> SocketAddr {
        self.proxy.addr()
    }
}

/// A cluster of real meshd processes. See the module docs.
pub struct TestCluster {
    rt: tokio::runtime::Runtime,
    tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    pub pki: Pki,
    base: [u8; 3],
    nodes: Vec<Node>,
    common_args: Vec<String>,
    token: OnceLock<String>,
    ids: std::sync::Mutex<std::collections::HashMap<usize, u64>>,
    netns: Option<std::sync::Arc<NetLab>>,
}

fn free_port(ip: Ipv4Addr) -> std::net::TcpListener {
    std::net::TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("cannot bind {ip}:0: {e}"))
}

impl TestCluster {
    /// A builder for `n` nodes.
    pub fn builder(n: usize) -> ClusterBuilder {
        ClusterBuilder {
            nodes: n,
            bootstrap_expect: None,
            snapshot_every: None,
            heartbeat: Some("150ms".into()),
            election_timeout: Some("1000ms".into()),
            extra_args: Vec::new(),
            ready_timeout: READY_TIMEOUT,
            netns: None,
        }
    }

    /// `builder(n).start()`.
    pub fn start_new(n: usize) -> TestCluster {
        Self::builder(n).start()
    }

    fn prepare(b: ClusterBuilder) -> TestCluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("mesh-tests-proxy")
            .build()
            .expect("tokio runtime");
        let tmp = tempfile::Builder::new().prefix("mesh-e2e-").tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let pki = Pki::create(&root.join("pki"));
        let mut rng = rand::thread_rng();
        let base = [127u8, rng.gen_range(1..=250), rng.gen_range(0..=255)];
        let mut common_args = Vec::new();
        if let Some(h) = &b.heartbeat {
            common_args.extend(["--heartbeat-interval".to_string(), h.clone()]);
        }
        if let Some(e) = &b.election_timeout {
            common_args.extend(["--election-timeout".to_string(), e.clone()]);
        }
        if let Some(s) = b.snapshot_every {
            common_args.extend(["--snapshot-every".to_string(), s.to_string()]);
        }
        common_args.extend(b.extra_args.iter().cloned());
        let mut c = TestCluster {
            rt,
            tmp: Some(tmp),
            root,
            pki,
            base,
            nodes: Vec::new(),
            common_args,
            token: OnceLock::new(),
            ids: Default::default(),
            netns: b.netns.clone(),
        };
        let expect = b.bootstrap_expect.unwrap_or(b.nodes);
        let all: Vec<usize> = (0..b.nodes).collect();
        for _ in 0..b.nodes {
            c.add_node(StartMode::Bootstrap {
                expect,
                join: all.clone(),
            });
        }
        eprintln!(
            "[mesh-tests] cluster of {} at {}.{}.{}.x in {}",
            b.nodes,
            base[0],
            base[1],
            base[2],
            c.root.display()
        );
        c
    }

    /// Adds a node (not started): address, ports, proxy, certificate, data dir. Returns its index.
    pub fn add_node(&mut self, mode: StartMode) -> usize {
        let idx = self.nodes.len();
        assert!(idx < 240, "too many nodes");
        let (ip, listen, metrics, proxy) = match &self.netns {
            // The node alone in its namespace: fixed ports; the proxy on the root side.
            Some(lab) => {
                let ip = lab.host_ip(idx);
                let listen = SocketAddr::new(IpAddr::V4(ip), 7400);
                let proxy = FaultProxy::start(self.rt.handle(), SocketAddr::new(IpAddr::V4(lab.root_ip()), 0), listen)
                    .unwrap_or_else(|e| panic!("proxy for node {idx} on {}: {e}", lab.root_ip()));
                (ip, listen, SocketAddr::new(IpAddr::V4(ip), 7401), proxy)
            }
            None => {
                let ip = Ipv4Addr::new(self.base[0], self.base[1], self.base[2], 10 + idx as u8);
                let (l1, l2) = (free_port(ip), free_port(ip));
                let listen = l1.local_addr().unwrap();
                let metrics = l2.local_addr().unwrap();
                // The proxy binds its own port while l1 and l2 still hold theirs, so the three differ.
                let proxy = FaultProxy::start(self.rt.handle(), SocketAddr::new(IpAddr::V4(ip), 0), listen)
                    .unwrap_or_else(|e| panic!("proxy for node {idx} on {ip}: {e}"));
                drop((l1, l2));
                (ip, listen, metrics, proxy)
            }
        };
        let name = format!("n{idx}");
        let proxy_ip = proxy.addr().ip();
        let mut ips = vec![IpAddr::V4(ip)];
        if proxy_ip != IpAddr::V4(ip) {
            ips.push(proxy_ip);
        }
        let cert = self.pki.node_cert(&name, &ips, &[]);
        let data_dir = self.root.join(&name);
        std::fs::create_dir_all(&data_dir).unwrap();
        let log = self.root.join(format!("{name}.log"));
        self.nodes.push(Node {
            idx,
            name,
            ip,
            listen,
            metrics,
            proxy,
            data_dir,
            log,
            cert,
            mode,
            extra_args: Vec::new(),
            child: None,
            stopped: false,
            starts: 0,
            exit: None,
        });
        idx
    }

    /// Adds a node that joins through `via` and starts it. Returns its index.
    pub fn join_node(&mut self, via: usize) -> usize {
        let i = self.add_node(StartMode::Join { via: vec![via] });
        self.start(i);
        i
    }

    // ---------------------------------------------------------------- accessors

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// The cluster's temporary directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The tokio runtime the proxies run on (use it for async clients).
    pub fn rt(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// `ca.pem`.
    pub fn ca(&self) -> PathBuf {
        self.pki.ca()
    }

    /// The advertised (proxy) address of node `i`, as a string.
    pub fn advertise(&self, i: usize) -> String {
        self.nodes[i].advertise().to_string()
    }

    /// Indices of nodes whose process is running and not SIGSTOPped.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.is_running(i) && !self.nodes[i].stopped)
            .collect()
    }

    /// Whether node `i`'s process is alive (SIGSTOPped counts as alive).
    pub fn is_running(&self, i: usize) -> bool {
        match &self.nodes[i].child {
            Some(_) => self.nodes[i].exit.is_none(),
            None => false,
        }
    }

    // ---------------------------------------------------------------- processes

    /// The meshd command line of node `i` for its current mode.
    pub fn args(&self, i: usize) -> Vec<String> {
        let n = &self.nodes[i];
        let mut a: Vec<String> = vec![
            "--data-dir".into(),
            n.data_dir.display().to_string(),
            "--listen".into(),
            n.listen.to_string(),
            "--advertise".into(),
            n.advertise().to_string(),
            "--metrics-listen".into(),
            n.metrics.to_string(),
            "--tls-ca".into(),
            self.pki.ca().display().to_string(),
            "--tls-cert".into(),
            n.cert.cert.display().to_string(),
            "--tls-key".into(),
            n.cert.key.display().to_string(),
        ];
        match &n.mode {
            StartMode::Bootstrap { expect, join } => {
                a.extend(["--bootstrap-expect".into(), expect.to_string()]);
                a.extend(["--join".into(), self.join_list(join)]);
            }
            StartMode::Join { via } => {
                a.extend(["--join".into(), self.join_list(via)]);
            }
            StartMode::Plain => {}
        }
        a.extend(self.common_args.iter().cloned());
        a.extend(n.extra_args.iter().cloned());
        a
    }

    /// Comma-separated advertised addresses of `nodes`.
    pub fn join_list(&self, nodes: &[usize]) -> String {
        nodes.iter().map(|&j| self.advertise(j)).collect::<Vec<_>>().join(",")
    }

    /// A meshd `Command` with a clean environment (no inherited `MESHD_*`), cwd = cluster root.
    pub fn meshd_command(&self) -> Command {
        self.meshd_command_for(None)
    }

    /// [`Self::meshd_command`], inside node `i`'s namespace when the cluster has them.
    fn meshd_command_for(&self, i: Option<usize>) -> Command {
        let mut cmd = match (&self.netns, i) {
            (Some(lab), Some(i)) => lab.command(i, bins::meshd()),
            _ => Command::new(bins::meshd()),
        };
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MESHD_") {
                cmd.env_remove(k);
            }
        }
        // Plain logs (no ANSI colours) in nI.log.
        cmd.env("NO_COLOR", "1");
        cmd.current_dir(&self.root);
        cmd
    }

    /// Starts node `i` with [`args`](Self::args) (output appended to its log).
    pub fn start(&mut self, i: usize) {
        let args = self.args(i);
        self.spawn_with(i, args);
    }

    /// Starts node `i` with exactly `args` (output appended to its log).
    pub fn spawn_with(&mut self, i: usize, args: Vec<String>) {
        assert!(!self.is_running(i), "node {i} is already running");
        let mut cmd = self.meshd_command_for(Some(i));
        let n = &mut self.nodes[i];
        n.starts += 1;
        let mut log = OpenOptions::new().create(true).append(true).open(&n.log).unwrap();
        writeln!(
            log,
            "=== harness: start #{} of {}: meshd {}",
            n.starts,
            n.name,
            args.join(" ")
        )
        .unwrap();
        let log2 = log.try_clone().unwrap();
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        // Die with the test process even if Drop never runs.
        crate::sys::die_with_parent(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn meshd for node {i}: {e}"));
        n.child = Some(child);
        n.stopped = false;
        n.exit = None;
    }

    /// The process id of node `i`, while it runs (benchmarks read `/proc/PID/status`).
    pub fn node_pid(&self, i: usize) -> Option<u32> {
        if !self.is_running(i) {
            return None;
        }
        self.nodes[i].child.as_ref().map(|c| c.id())
    }

    fn pid(&self, i: usize) -> i32 {
        self.nodes[i]
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} was never started"))
            .id() as i32
    }

    fn signal(&self, i: usize, sig: i32) {
        let pid = self.pid(i);
        if let Err(e) = crate::sys::kill(pid, sig) {
            panic!("kill({pid}, {sig}) for node {i}: {e}");
        }
    }

    /// Refreshes the exit status of node `i`; returns it when the process has exited.
    pub fn try_exit(&mut self, i: usize) -> Option<ExitStatus> {
        let n = &mut self.nodes[i];
        if n.exit.is_none() {
            if let Some(c) = n.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    n.exit = Some(st);
                }
            }
        }
        n.exit
    }

    /// Waits up to `timeout` for node `i` to exit.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit(i) {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL node `i` and reap it.
    pub fn kill9(&mut self, i: usize) {
        if self.try_exit(i).is_some() {
            return;
        }
        self.signal(i, libc::SIGKILL);
        let st = self.wait_exit(i, Duration::from_secs(10));
        assert!(st.is_some(), "node {i} did not die after SIGKILL");
        self.nodes[i].stopped = false;
    }

    /// SIGSTOP node `i` (frozen: sockets stay open, nothing answers).
    pub fn sigstop(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.nodes[i].stopped = true;
    }

    /// SIGCONT node `i`.
    pub fn sigcont(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.nodes[i].stopped = false;
    }

    /// SIGTERM node `i` and wait up to `timeout` for it to exit. Panics if it does not.
    pub fn sigterm(&mut self, i: usize, timeout: Duration) -> ExitStatus {
        self.signal(i, libc::SIGTERM);
        match self.wait_exit(i, timeout) {
            Some(st) => st,
            None => panic!("node {i} did not exit within {timeout:?} of SIGTERM"),
        }
    }

    /// Restarts node `i` (which must have exited) with the same data dir and flags, without
    /// `--bootstrap-expect` (the `--join` list stays, as a service unit would keep it).
    pub fn restart(&mut self, i: usize) {
        assert!(
            !self.is_running(i),
            "restart({i}): node is still running; kill it first"
        );
        if let StartMode::Bootstrap { join, .. } = &self.nodes[i].mode {
            self.nodes[i].mode = StartMode::Join { via: join.clone() };
        }
        self.start(i);
    }

    /// The log of node `i` so far.
    pub fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// The log of node `i` from its last start on.
    pub fn last_run_log(&self, i: usize) -> String {
        let t = self.log_text(i);
        match t.rfind("=== harness: start #") {
            Some(p) => t[p..].to_string(),
            None => t,
        }
    }

    /// Runs meshd once with `args` (not as a cluster node) and waits up to `timeout` for it to
    /// exit; output is captured (and also copied into `<root>/oneshot-K.log`).
    pub fn run_meshd(&self, args: &[String], timeout: Duration) -> ProcOutput {
        let mut cmd = self.meshd_command();
        cmd.args(args);
        let out = proc::run(cmd, timeout);
        static K: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let k = K.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = std::fs::write(self.root.join(format!("oneshot-{k}.log")), out.describe());
        out
    }

    // ---------------------------------------------------------------- faults

    /// Node `i` can neither reach nor be reached by any other node.
    pub fn partition(&self, i: usize) {
        let ip = IpAddr::V4(self.nodes[i].ip);
        self.nodes[i].proxy.cut();
        for (j, n) in self.nodes.iter().enumerate() {
            if j != i {
                n.proxy.block_from(ip);
            }
        }
    }

    /// Undoes every cut and block.
    pub fn heal_all(&self) {
        for n in &self.nodes {
            n.proxy.heal();
            n.proxy.unblock_all();
        }
    }

    // ---------------------------------------------------------------- meshctl

    /// Reads `<data-dir>/root-token` of node `i`.
    pub fn read_root_token(&self, i: usize) -> Option<String> {
        std::fs::read_to_string(self.nodes[i].data_dir.join("root-token"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// The root token (from whichever node wrote it; waits for it up to 30 s).
    pub fn token(&self) -> String {
        if let Some(t) = self.token.get() {
            return t.clone();
        }
        let t = wait_for("a root-token file in some node's data dir", READY_TIMEOUT, || {
            (0..self.nodes.len())
                .find_map(|i| self.read_root_token(i))
                .ok_or_else(|| "no <data-dir>/root-token yet".to_string())
        });
        let _ = self.token.set(t.clone());
        t
    }

    /// A meshctl `Command` with a clean environment (no `MESH_*`), cwd = cluster root.
    pub fn meshctl_command(&self) -> Command {
        let mut cmd = Command::new(bins::meshctl());
        for k in ["MESH_ADDR", "MESH_TOKEN", "MESH_CACERT", "MESH_CONFIG"] {
            cmd.env_remove(k);
        }
        cmd.current_dir(&self.root);
        cmd
    }

    /// `meshctl --addr <listen of i> --cacert ca.pem --token <root> -o json ARGS`.
    pub fn ctl(&self, i: usize, args: &[&str]) -> ProcOutput {
        self.ctl_with(i, &self.token(), args, CTL_TIMEOUT)
    }

    /// A meshctl `Command` talking to node `i` with `token` (`--addr`, `--cacert`, `--token`);
    /// the caller adds the output format and the arguments.
    pub fn ctl_command(&self, i: usize, token: &str) -> Command {
        let mut cmd = self.meshctl_command();
        cmd.arg("--addr")
            .arg(self.nodes[i].listen.to_string())
            .arg("--cacert")
            .arg(self.pki.ca())
            .arg("--token")
            .arg(token);
        cmd
    }

    /// Like [`ctl`](Self::ctl) with an explicit token and deadline.
    pub fn ctl_with(&self, i: usize, token: &str, args: &[&str], timeout: Duration) -> ProcOutput {
        let mut cmd = self.ctl_command(i, token);
        cmd.args(["-o", "json"]).args(args);
        proc::run(cmd, timeout)
    }

    /// Waits until node 0 sees at least `n` nodes `active` (a job submitted before may run on
    /// fewer nodes).
    pub fn wait_active(&self, n: usize, timeout: Duration) {
        wait_for(&format!("{n} active nodes"), timeout, || {
            let st = self.status(0).map_err(|o| o.describe())?;
            let active = st.nodes.iter().filter(|x| x.state == "active").count();
            if active >= n {
                Ok(())
            } else {
                Err(st.summary())
            }
        });
    }

    /// Like [`ctl`](Self::ctl) but panics unless it exits 0; returns stdout parsed as JSON (or
    /// `Null` when stdout is empty).
    pub fn ctl_ok(&self, i: usize, args: &[&str]) -> serde_json::Value {
        let out = self.ctl(i, args);
        assert!(out.success(), "meshctl on node {i} failed: {}", out.describe());
        if out.stdout.trim().is_empty() {
            serde_json::Value::Null
        } else {
            out.json().unwrap_or_else(|e| panic!("{e}"))
        }
    }

    fn parse_status(out: ProcOutput) -> Result<Status, ProcOutput> {
        if !out.success() {
            return Err(out);
        }
        match out.json() {
            Ok(v) => Ok(Status::from_json(v)),
            Err(_) => Err(out),
        }
    }

    /// `cluster status -o json` on node `i` (linearizable).
    pub fn status(&self, i: usize) -> Result<Status, ProcOutput> {
        Self::parse_status(self.ctl(i, &["cluster", "status"]))
    }

    /// `cluster status --local -o json` on node `i` (its own view).
    pub fn status_local(&self, i: usize) -> Result<Status, ProcOutput> {
        Self::parse_status(self.ctl(i, &["cluster", "status", "--local"]))
    }

    /// `setting set NAME VALUE` through node `i`.
    pub fn set_setting(&self, i: usize, name: &str, value: &str) -> Result<(), ProcOutput> {
        let out = self.ctl(i, &["setting", "set", name, value]);
        if out.success() {
            Ok(())
        } else {
            Err(out)
        }
    }

    /// `set_setting` with a deadline for meshctl.
    pub fn set_setting_timeout(&self, i: usize, name: &str, value: &str, t: Duration) -> Result<(), ProcOutput> {
        let out = self.ctl_with(i, &self.token(), &["setting", "set", name, value], t);
        if out.success() {
            Ok(())
        } else {
            Err(out)
        }
    }

    /// `setting get NAME [--local]` through node `i`: the value.
    pub fn get_setting(&self, i: usize, name: &str, local: bool) -> Result<String, ProcOutput> {
        let mut args = vec!["setting", "get", name];
        if local {
            args.push("--local");
        }
        let out = self.ctl(i, &args);
        if !out.success() {
            return Err(out);
        }
        match out.json().ok().as_ref().and_then(ctl::setting_value) {
            Some(v) => Ok(v),
            None => Err(out),
        }
    }

    /// Sets a setting through node `i`, retrying on failure for up to `timeout` (a write may
    /// fail while a leader is being elected). Panics when it never succeeds.
    pub fn set_setting_eventually(&self, i: usize, name: &str, value: &str, timeout: Duration) {
        wait_for(
            &format!("`setting set {name} {value}` through node {i} to succeed"),
            timeout,
            || self.set_setting(i, name, value).map_err(|o| o.describe()),
        )
    }

    /// Waits until `setting get NAME [--local]` on node `i` returns `value`.
    pub fn wait_setting(&self, i: usize, name: &str, value: &str, local: bool, timeout: Duration) {
        let how = if local { "local" } else { "linearizable" };
        wait_for(
            &format!("node {i} to read ({how}) {name} = {value}"),
            timeout,
            || match self.get_setting(i, name, local) {
                Ok(v) if v == value => Ok(()),
                Ok(v) => Err(format!("{name} = {v}")),
                Err(o) => Err(o.describe()),
            },
        )
    }

    // ---------------------------------------------------------------- ids and leaders

    /// The node id of node `i`: `<data-dir>/node-id`, else looked up by advertised address.
    pub fn node_id(&self, i: usize) -> u64 {
        if let Some(id) = self.ids.lock().unwrap().get(&i) {
            return *id;
        }
        let id = self.node_id_uncached(i);
        self.ids.lock().unwrap().insert(i, id);
        id
    }

    fn node_id_uncached(&self, i: usize) -> u64 {
        if let Ok(s) = std::fs::read_to_string(self.nodes[i].data_dir.join("node-id")) {
            if let Ok(id) = s.trim().parse::<u64>() {
                return id;
            }
        }
        let adv = self.advertise(i);
        wait_for(
            &format!("node {i} ({adv}) to appear in cluster status"),
            READY_TIMEOUT,
            || {
                for j in self.live() {
                    if let Ok(st) = self.status_local(j) {
                        if let Some(n) = st.node_by_addr(&adv) {
                            return Ok(n.id);
                        }
                    }
                }
                Err(format!("no live node lists {adv}"))
            },
        )
    }

    /// The index of the node with id `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.node_id(i) == id)
    }

    /// Every live node's own view (`status --local`) names the same leader, which is live and
    /// calls itself leader. Ok(leader id) or Err(what disagrees).
    pub fn agreed_leader(&self) -> Result<u64, String> {
        self.agreed_leader_among(&self.live())
    }

    /// [`agreed_leader`](Self::agreed_leader) over the given nodes only.
    pub fn agreed_leader_among(&self, nodes: &[usize]) -> Result<u64, String> {
        let mut seen = Vec::new();
        for &i in nodes {
            match self.status_local(i) {
                Ok(st) => seen.push((i, st.leader_id)),
                Err(o) => return Err(format!("node {i}: {}", o.describe())),
            }
        }
        let first = seen.first().map(|s| s.1).unwrap_or(0);
        if first == 0 || seen.iter().any(|s| s.1 != first) {
            return Err(format!("leader ids by node index: {seen:?}"));
        }
        match nodes.iter().find(|&&i| self.node_id(i) == first) {
            Some(_) => Ok(first),
            None => Err(format!("agreed leader {first} is not among nodes {nodes:?}: {seen:?}")),
        }
    }

    /// Waits until the live nodes agree on a leader; returns its id.
    pub fn wait_leader(&self, timeout: Duration) -> u64 {
        wait_for("all live nodes to agree on a live leader", timeout, || {
            self.agreed_leader()
        })
    }

    /// Waits until the given nodes agree on a leader among them; returns its id.
    pub fn wait_leader_among(&self, nodes: &[usize]) -> u64 {
        wait_for(
            &format!("nodes {nodes:?} to agree on a leader among them"),
            READY_TIMEOUT,
            || self.agreed_leader_among(nodes),
        )
    }

    /// [`wait_leader`](Self::wait_leader) with the default deadline.
    pub fn leader(&self) -> u64 {
        self.wait_leader(READY_TIMEOUT)
    }

    /// The index of the agreed leader.
    pub fn leader_index(&self) -> usize {
        let id = self.leader();
        self.index_of(id).expect("leader id maps to a node")
    }

    /// Waits until the live nodes agree on a leader other than `old`; returns its id.
    pub fn wait_new_leader(&self, old: u64, timeout: Duration) -> u64 {
        wait_for(&format!("a new leader other than {old}"), timeout, || {
            let l = self.agreed_leader()?;
            if l == old {
                Err(format!("still {old}"))
            } else {
                Ok(l)
            }
        })
    }

    /// Waits for the root token, then for every live node to answer a linearizable
    /// `cluster status` with a leader, and for the live nodes to agree on it.
    pub fn wait_ready(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        self.token();
        for i in self.live() {
            let left = deadline.saturating_duration_since(Instant::now());
            wait_for(
                &format!("node {i} to report a leader in `cluster status`"),
                left,
                || match self.status(i) {
                    Ok(st) if st.leader_id != 0 => Ok(()),
                    Ok(st) => Err(format!("leader_id 0: {}", st.summary())),
                    Err(o) => Err(o.describe()),
                },
            );
        }
        self.wait_leader(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
        )
    }

    /// Waits until node `i`'s own applied index (its entry in `status --local`) reaches `index`.
    pub fn wait_applied(&self, i: usize, index: u64, timeout: Duration) {
        let id = self.node_id(i);
        wait_for(&format!("node {i} (id {id}) to apply index {index}"), timeout, || {
            let st = self.status_local(i).map_err(|o| o.describe())?;
            let me = st
                .node(id)
                .ok_or_else(|| format!("node {id} not in its own status: {}", st.summary()))?;
            if me.applied_index >= index {
                Ok(())
            } else {
                Err(st.summary())
            }
        })
    }

    /// A TLS gRPC client of node `i` (root token).
    pub fn grpc_client(&self, i: usize) -> grpc::Client {
        let addr = self.nodes[i].listen;
        let ca = self.pki.ca();
        let tok = self.token();
        self.rt
            .block_on(grpc::connect(addr, &ca, Some(&tok)))
            .unwrap_or_else(|e| panic!("gRPC connect to node {i} ({addr}): {e:#}"))
    }

    /// A `meshctl::client` connection to node `i` (root token).
    pub fn meshctl_client(&self, i: usize) -> meshctl::client::Clients {
        let addr = self.nodes[i].listen;
        let ca = self.pki.ca();
        let tok = self.token();
        self.rt
            .block_on(grpc::meshctl_client(addr, &ca, &tok))
            .unwrap_or_else(|e| panic!("meshctl::client::connect to node {i} ({addr}): {e}"))
    }

    /// Waits until `f` holds, polling (re-exported for convenience).
    pub fn wait_until(&self, desc: &str, timeout: Duration, f: impl FnMut() -> bool) {
        wait_until(desc, timeout, f)
    }

    fn dump_on_failure(&mut self) {
        eprintln!(
            "\n[mesh-tests] ===== test failed; cluster dir kept: {} =====",
            self.root.display()
        );
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            eprintln!(
                "[mesh-tests] node {i} {} listen={} advertise={} running={} stopped={} exit={:?} log={}",
                n.name,
                n.listen,
                n.advertise(),
                n.child.is_some() && n.exit.is_none(),
                n.stopped,
                n.exit.map(|e| e
                    .code()
                    .map(|c| c.to_string())
                    .unwrap_or(format!("signal {:?}", e.signal()))),
                n.log.display()
            );
        }
        for i in 0..self.nodes.len() {
            let text = self.log_text(i);
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("[mesh-tests] ----- tail of {} -----", self.nodes[i].log.display());
            for l in tail {
                eprintln!("  {l}");
            }
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            let _ = self.try_exit(i);
        }
        let failing = std::thread::panicking();
        if failing {
            self.dump_on_failure();
        }
        for n in &mut self.nodes {
            if let Some(c) = n.child.as_mut() {
                if n.exit.is_none() {
                    let _ = crate::sys::kill(c.id() as i32, libc::SIGKILL);
                    let _ = c.wait();
                }
            }
        }
        let keep = failing || std::env::var_os("MESH_TESTS_KEEP").is_some_and(|v| v != "0");
        if keep {
            if let Some(t) = self.tmp.take() {
                let p = t.keep();
                eprintln!("[mesh-tests] kept {}", p.display());
            }
        }
    }
}

/// Opens (creating) a file for appending; used for logs.
pub fn append(path: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(path).unwrap()
}
