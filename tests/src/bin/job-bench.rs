//! job-bench: distributed copy jobs (issue 4) through a real mesh, measured from the outside
//! (not run in CI). Prints, never asserts.
//!
//! ```text
//! job-bench p1 [--nodes 1,3] [--task-objects 1000,500] [--runs 3] [--objects 5000] [--size 16KiB]
//!              [--engine-concurrency 64] [--s5cmd PATH] [--timeout SECS]
//! job-bench p5 [--nodes 3,1] [--size 6GiB] [--split 1GiB] [--seed-part-size 8MiB] [--tools mesh,aws,engine]
//!              [--mesh-verify none|size|etag|checksum] [--aws PATH] [--timeout SECS]
//! job-bench latency [--nodes 1,3] [--jobs 10] [--timeout SECS]
//! job-bench plan [--nodes 3] [--files 100000] [--snapshot-every N] [--timeout SECS]
//! job-bench table FILE        markdown table (medians) of the RESULT lines in FILE
//! ```
//!
//! - **p1**: one SeaweedFS (`tests/src/seaweed.rs`) with buckets `src` and `dst`, seeded with
//!   `src/data/NNNNNN` (5,000 × 16 KiB). Starts one mesh per `--nodes` entry
//!   (`tests/src/cluster.rs`, meshd's default timing), each with a static credential and the
//!   locations `src` / `dst` on that server (same endpoint and credential → server-side
//!   CopyObject). Then `--runs` rounds, each running every copier back to back (so load drift
//!   hits all alike): the engine in-process (`ops::run_range`, as `engine-bench p1`), s5cmd, and
//!   for each mesh and each `job.copy_task_objects` value `meshctl cp src:data/ dst:PREFIX/
//!   --wait`. Wall time = the meshctl process (submit + `--wait`, which polls every 500 ms); job
//!   time = the job's own `ended_at_ms − created_at_ms`.
//! - **p5**: one object of `--size` (default 6 GiB, seeded by multipart upload in 8 MiB parts as
//!   aws-cli would upload it; falls back to 3 GiB when the disk is short), copied server-side
//!   (UploadPartCopy) by a mesh of each size with `job.split_object_bytes` and
//!   `job.part_task_bytes` = `--split` (1GiB), by aws-cli (`aws s3 cp s3://src/p5/big
//!   s3://dst/…`) and by the engine in-process. Every copy's ETag is printed next to the source's,
//!   then it is deleted and the server vacuumed before the next one.
//! - **latency**: submit → first object copied, per job of one 16 KiB object, through a
//!   pre-opened gRPC connection, timed from the Submit call (t0); once it returns, every 10 ms a
//!   HEAD of the destination object (when it first answers = the object is copied) and every 20 ms
//!   a `JobService.Get` (when
//!   `objects_done > 0` is first seen, and when the job is terminal), plus the job's own event
//!   times (planning = LIST assigned, running = first COPY task planned).
//! - **plan**: `--files` tiny files (100 folders) as an fs location, copied by `cp` to another fs
//!   location on a mesh; time to the first file at the destination, to the end of the listing
//!   (`objects_total` reaches the count), to the end; peak RSS (VmHWM) per meshd, the sled dir
//!   (`du -sb <data-dir>/db`) before, at its peak while running and after, the snapshots the
//!   nodes built (`built snapshot … bytes=N` in their logs), the Raft entries the job cost.
//!
//! Every run prints a report and a `RESULT {json}` line; `job-bench table FILE` summarizes them.
//! `JOB_BENCH_TRACE=1` prints the job's counters every 500 ms while a mesh run waits.
//! The load average is printed with every number. See tests/bench/README.md and
//! docs/benchmarks.md ("Distributed jobs (issue 4)").

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use mesh_engine::filter::Filter;
use mesh_engine::ops::{self, Action, KeyMap, RangeOp, RangeOptions, RangeTask};
use mesh_engine::store::{
    Body, CredentialSource, KeyRange, LocationSpec, ObjectStore, S3LocationSpec, Secret, WriteDefaults, WriteOptions,
};
use mesh_engine::transfer::CopyOptions;
use mesh_engine::verify::Verify;
use mesh_engine::{open_store, S3Clients};
use mesh_proto::v1::{self as pb, GetJobRequest, JobOp, JobSpec, ReadConsistency, SubmitJobRequest};
use mesh_tests::seaweed::SeaweedFs;
use mesh_tests::{ProcOutput, TestCluster};
use prost::Message;
use serde::{Deserialize, Serialize};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

// ---------------------------------------------------------------- options

#[derive(Clone, Debug)]
struct Opts {
    nodes: Vec<usize>,
    task_objects: Vec<u32>,
    runs: usize,
    objects: usize,
    size: Option<u64>,
    engine_concurrency: usize,
    seed_part_size: u64,
    tools: Vec<String>,
    jobs: usize,
    files: usize,
    snapshot_every: Option<u64>,
    /// p5: job.split_object_bytes and job.part_task_bytes.
    split: String,
    /// p5: `meshctl cp --verify V` (default: the server's default, size).
    mesh_verify: Option<String>,
    timeout: Duration,
    s5cmd: String,
    aws: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: job-bench p1 [--nodes 1,3] [--task-objects 1000,500] [--runs 3] [--objects N] [--size 16KiB]\n\
         \x20                   [--engine-concurrency 64] [--s5cmd PATH] [--timeout SECS]\n\
         \x20      job-bench p5 [--nodes 3,1] [--size 6GiB] [--seed-part-size 8MiB] [--tools mesh,aws,engine] [--aws PATH]\n\
         \x20      job-bench latency [--nodes 1,3] [--jobs 10]\n\
         \x20      job-bench plan [--nodes 3] [--files 100000] [--snapshot-every N]\n\
         \x20      job-bench table FILE"
    );
    std::process::exit(2)
}

fn parse_bytes(s: &str) -> u64 {
    let (num, mul) = if let Some(n) = s.strip_suffix("GiB") {
        (n, GIB)
    } else if let Some(n) = s.strip_suffix("MiB") {
        (n, MIB)
    } else if let Some(n) = s.strip_suffix("KiB") {
        (n, KIB)
    } else {
        (s, 1)
    };
    num.trim().parse::<u64>().unwrap_or_else(|_| usage()) * mul
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',')
        .map(|x| x.trim().parse().unwrap_or_else(|_| usage()))
        .collect()
}

fn parse(cmd: &str, args: &[String]) -> Opts {
    let mut o = Opts {
        nodes: match cmd {
            "p5" => vec![3, 1],
            "plan" => vec![3],
            "latency" => vec![1, 3],
            _ => vec![1, 3],
        },
        task_objects: vec![1000, 500],
        runs: 3,
        objects: 5000,
        size: None,
        engine_concurrency: 64,
        seed_part_size: 8 * MIB,
        tools: vec!["mesh".into(), "aws".into(), "engine".into()],
        jobs: 10,
        files: 100_000,
        snapshot_every: None,
        split: "1GiB".into(),
        mesh_verify: None,
        timeout: Duration::from_secs(match cmd {
            "p5" => 900,
            "plan" => 600,
            _ => 300,
        }),
        s5cmd: std::env::var("S5CMD").unwrap_or_else(|_| "s5cmd".into()),
        aws: std::env::var("AWS_CLI").unwrap_or_else(|_| "aws".into()),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--nodes" => o.nodes = list(&val()),
            "--task-objects" => o.task_objects = list(&val()),
            "--runs" => o.runs = val().parse().unwrap_or_else(|_| usage()),
            "--objects" => o.objects = val().parse().unwrap_or_else(|_| usage()),
            "--size" => o.size = Some(parse_bytes(&val())),
            "--engine-concurrency" => o.engine_concurrency = val().parse().unwrap_or_else(|_| usage()),
            "--seed-part-size" => o.seed_part_size = parse_bytes(&val()),
            "--tools" => o.tools = val().split(',').map(|s| s.trim().to_string()).collect(),
            "--jobs" => o.jobs = val().parse().unwrap_or_else(|_| usage()),
            "--files" => o.files = val().parse().unwrap_or_else(|_| usage()),
            "--snapshot-every" => o.snapshot_every = Some(val().parse().unwrap_or_else(|_| usage())),
            "--timeout" => o.timeout = Duration::from_secs(val().parse().unwrap_or_else(|_| usage())),
            "--split" => o.split = val(),
            "--mesh-verify" => o.mesh_verify = Some(val()),
            "--s5cmd" => o.s5cmd = val(),
            "--aws" => o.aws = val(),
            _ => usage(),
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("job-bench: {msg}");
    std::process::exit(1)
}

// ---------------------------------------------------------------- machine measurements

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(-1.0)
}

fn uptime_line() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            format!(
                "load average {}",
                s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            )
        })
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// user+sys CPU seconds of a process (from /proc/PID/stat).
fn proc_cpu_s(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = s.rsplit_once(')').map(|x| x.1) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields after the comm: [0]=state (field 3), utime = field 14, stime = field 15
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf is always safe.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ut + st) / hz.max(1.0)
}

/// A `VmXXX:` line of /proc/PID/status, in KiB.
fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn self_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut r);
        r
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

/// `du -sb PATH` in bytes (0 when it fails).
fn du_sb(p: &Path) -> u64 {
    std::process::Command::new("du")
        .arg("-sb")
        .arg(p)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Bytes available to unprivileged users on the filesystem of `p`.
fn disk_avail(p: &Path) -> u64 {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs fills the struct.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return 0;
        }
        s.f_bavail as u64 * s.f_frsize as u64
    }
}

fn human(n: u64) -> String {
    if n >= GIB && n.is_multiple_of(GIB) {
        format!("{} GiB", n / GIB)
    } else if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else if n >= 10 * MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= 10 * KIB {
        format!("{:.1} KiB", n as f64 / KIB as f64)
    } else {
        format!("{n} B")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

// ---------------------------------------------------------------- SeaweedFS

struct Server {
    sw: SeaweedFs,
    src: Arc<dyn ObjectStore>,
    dst: Arc<dyn ObjectStore>,
    _clients: S3Clients,
}

fn s3_spec(endpoint: &str, bucket: &str) -> LocationSpec {
    LocationSpec::S3(S3LocationSpec {
        bucket: bucket.into(),
        prefix: String::new(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        path_style: true,
        credential_name: "bench".into(),
        credential: CredentialSource::Static {
            access_key_id: "bench".into(),
            secret_access_key: Secret::new("bench-secret"),
            session_token: None,
        },
        defaults: WriteDefaults::default(),
    })
}

fn start_server(rt: &tokio::runtime::Runtime) -> Server {
    let sw = SeaweedFs::builder()
        .bucket("src")
        .bucket("dst")
        .start()
        .unwrap_or_else(|e| die(&e));
    let clients = S3Clients::new();
    let (src, dst) = rt.block_on(async {
        let src = open_store(&s3_spec(&sw.endpoint(), "src"), &clients)
            .await
            .unwrap_or_else(|e| die(&e.to_string()));
        let dst = open_store(&s3_spec(&sw.endpoint(), "dst"), &clients)
            .await
            .unwrap_or_else(|e| die(&e.to_string()));
        (src, dst)
    });
    println!("SeaweedFS at {} (metrics {})", sw.endpoint(), sw.metrics_addr());
    Server {
        sw,
        src,
        dst,
        _clients: clients,
    }
}

/// `SeaweedFS_s3_request_total` by type, and non-2xx by "type code".
fn s3_counters(sw: &SeaweedFs) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let mut by_type = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let Ok(text) = http_get(sw.metrics_addr(), "/metrics", Duration::from_secs(10)) else {
        return (by_type, errors);
    };
    let label = |labels: &str, name: &str| -> String {
        labels
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix("=\"")?.strip_suffix('"'))
            .unwrap_or("?")
            .to_string()
    };
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("SeaweedFS_s3_request_total{") else {
            continue;
        };
        let Some((labels, val)) = rest.split_once('}') else {
            continue;
        };
        let v: f64 = val.trim().parse().unwrap_or(0.0);
        let ty = label(labels, "type");
        let code = label(labels, "code");
        *by_type.entry(ty.clone()).or_default() += v;
        if !code.starts_with('2') {
            *errors.entry(format!("{ty} {code}")).or_default() += v;
        }
    }
    (by_type, errors)
}

fn diff(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> BTreeMap<String, u64> {
    b.iter()
        .map(|(k, v)| (k.clone(), (v - a.get(k).copied().unwrap_or(0.0)).round() as u64))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Pseudo-random, incompressible bytes (xorshift64*).
fn noise(len: usize, mut seed: u64) -> Bytes {
    let mut v = Vec::with_capacity(len + 8);
    seed |= 1;
    while v.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        v.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// `size` bytes in ≤ 1 MiB slices of `pool` (2 MiB) at offsets that depend on `i`.
fn body(pool: &Bytes, size: u64, i: u64) -> Body {
    let mut chunks = Vec::new();
    let mut left = size;
    let mut n = 0u64;
    while left > 0 {
        let len = left.min(MIB);
        let off = ((i * 7919 + n * 104_729) % MIB) as usize;
        chunks.push(pool.slice(off..off + len as usize));
        left -= len;
        n += 1;
    }
    Box::pin(stream::iter(chunks.into_iter().map(Ok)))
}

/// Seeds `prefix` + NNNNNN, `n` objects of `size`, 64 PUTs at once.
async fn seed_small(src: &Arc<dyn ObjectStore>, prefix: &str, n: usize, size: u64) {
    let t = Instant::now();
    let pool = noise(2 * MIB as usize, 0x5eed);
    let results: Vec<Result<(), String>> = stream::iter(0..n)
        .map(|i| {
            let (pool, src) = (pool.clone(), src.clone());
            let key = format!("{prefix}{i:06}");
            async move {
                let mut last = String::new();
                for _ in 0..5 {
                    match src
                        .put(&key, body(&pool, size, i as u64), size, &WriteOptions::default())
                        .await
                    {
                        Ok(_) => return Ok(()),
                        Err(e) => last = e.to_string(),
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(format!("seed {key}: {last}"))
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        die(&e);
    }
    println!(
        "seeded {n} × {} under src/{prefix} in {:.1}s",
        human(size),
        t.elapsed().as_secs_f64()
    );
}

/// Seeds one object by multipart upload in `part` parts, 8 at once.
async fn seed_big(src: &Arc<dyn ObjectStore>, key: &str, size: u64, part: u64) {
    let t = Instant::now();
    let pool = noise(2 * MIB as usize, 0xb16);
    let id = src
        .create_multipart(key, &WriteOptions::default())
        .await
        .unwrap_or_else(|e| die(&format!("create multipart: {e}")));
    let n = size.div_ceil(part);
    let parts: Vec<_> = stream::iter(1..=n)
        .map(|pn| {
            let (pool, src, id) = (pool.clone(), src.clone(), id.clone());
            let len = part.min(size - (pn - 1) * part);
            let key = key.to_string();
            async move {
                let mut last = String::new();
                for _ in 0..5 {
                    match src
                        .upload_part(&key, &id, pn as u32, body(&pool, len, pn), len, None)
                        .await
                    {
                        Ok(p) => return p,
                        Err(e) => last = e.to_string(),
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                die(&format!("seed part {pn}: {last}"))
            }
        })
        .buffered(8)
        .collect()
        .await;
    src.complete_multipart(key, &id, &parts, &WriteOptions::default())
        .await
        .unwrap_or_else(|e| die(&format!("complete multipart: {e}")));
    let secs = t.elapsed().as_secs_f64();
    println!(
        "seeded src/{key}: {} in {n} parts of {} in {secs:.1}s ({:.0} MiB/s)",
        human(size),
        human(part),
        size as f64 / MIB as f64 / secs
    );
}

/// Lists `prefix` of `store`: (objects, bytes, how many have `size`), ignoring `.bucketmesh/`.
async fn listing(store: &Arc<dyn ObjectStore>, prefix: &str, size: u64) -> Result<(u64, u64, u64), String> {
    let mut range = KeyRange {
        prefix: prefix.to_string(),
        ..Default::default()
    };
    let (mut n, mut bytes, mut right) = (0, 0, 0);
    loop {
        let p = store.list(&range, 1000).await.map_err(|e| e.to_string())?;
        for o in p.objects {
            if o.key.contains(".bucketmesh/") {
                continue;
            }
            n += 1;
            bytes += o.size;
            right += (o.size == size) as u64;
        }
        match p.next_start_after {
            Some(k) => range.start_after = Some(k),
            None => return Ok((n, bytes, right)),
        }
    }
}

// ---------------------------------------------------------------- the mesh

struct Mesh {
    c: TestCluster,
    n: usize,
    /// The node meshctl and the gRPC client talk to (the leader).
    via: usize,
    client: meshctl::client::Clients,
    /// Extra `meshctl cp` flags (e.g. `--verify none`).
    cp_flags: Vec<String>,
}

impl Mesh {
    fn start(n: usize, snapshot_every: Option<u64>) -> Mesh {
        let t = Instant::now();
        let mut b = TestCluster::builder(n)
            .timing(None, None)
            .ready_timeout(Duration::from_secs(90));
        if let Some(s) = snapshot_every {
            b = b.snapshot_every(s);
        }
        let c = b.start();
        // Every node registered and active (else the first job may run on fewer nodes).
        mesh_tests::wait_for(&format!("{n} active nodes"), Duration::from_secs(60), || {
            let st = c.status(0).map_err(|o| o.describe())?;
            let active = st.nodes.iter().filter(|x| x.state == "active").count();
            if active >= n {
                Ok(())
            } else {
                Err(st.summary())
            }
        });
        let via = c.leader_index();
        let client = c.meshctl_client(via);
        println!(
            "mesh of {n} node(s) ready in {:.1}s at {} (meshd default timing; talking to node {via}, the leader)",
            t.elapsed().as_secs_f64(),
            c.root().display()
        );
        Mesh {
            c,
            n,
            via,
            client,
            cp_flags: Vec::new(),
        }
    }

    fn ctl_env(&self, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> ProcOutput {
        let mut cmd = self.c.meshctl_command();
        cmd.arg("--addr")
            .arg(self.c.node(self.via).listen.to_string())
            .arg("--cacert")
            .arg(self.c.ca())
            .arg("--token")
            .arg(self.c.token())
            .args(["-o", "json"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        mesh_tests::proc::run(cmd, timeout)
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> ProcOutput {
        let o = self.ctl_env(args, env, Duration::from_secs(30));
        if !o.success() {
            die(&format!("meshctl failed: {}", o.describe()));
        }
        o
    }

    /// Credential `bench` and S3 locations `src` / `dst` on the server.
    fn add_s3(&self, endpoint: &str) {
        self.ok(
            &["credential", "add", "bench", "--access-key-id", "bench"],
            &[("MESH_SECRET_ACCESS_KEY", "bench-secret")],
        );
        for (name, bucket) in [("src", "src"), ("dst", "dst")] {
            self.ok(
                &[
                    "location",
                    "add",
                    name,
                    "--s3",
                    bucket,
                    "--endpoint",
                    endpoint,
                    "--path-style",
                    "--region",
                    "us-east-1",
                    "--credential",
                    "bench",
                ],
                &[],
            );
        }
    }

    fn set(&self, name: &str, value: &str) {
        self.ok(&["setting", "set", name, value], &[]);
    }

    fn pids(&self) -> Vec<u32> {
        (0..self.n).filter_map(|i| self.c.node_pid(i)).collect()
    }

    fn cpu_s(&self) -> f64 {
        self.pids().into_iter().map(proc_cpu_s).sum()
    }

    fn hwm_mib(&self) -> Vec<f64> {
        self.pids()
            .into_iter()
            .map(|p| proc_status_kib(&p.to_string(), "VmHWM:").unwrap_or(0) as f64 / 1024.0)
            .collect()
    }

    fn db_sizes(&self) -> Vec<u64> {
        (0..self.n)
            .map(|i| du_sb(&self.c.node(i).data_dir.join("db")))
            .collect()
    }

    fn commit_index(&self) -> u64 {
        self.c.status(self.via).map(|s| s.commit_index).unwrap_or(0)
    }

    fn get(&self, id: &str) -> Option<pb::JobView> {
        let mut cl = self.client.clone();
        let id = id.to_string();
        self.c
            .rt()
            .block_on(async move {
                cl.job
                    .get(GetJobRequest {
                        id,
                        consistency: ReadConsistency::Linearizable as i32,
                    })
                    .await
            })
            .ok()
            .and_then(|r| r.into_inner().job)
    }

    fn newest_job(&self) -> Option<String> {
        let mut cl = self.client.clone();
        self.c
            .rt()
            .block_on(async move { cl.job.list(pb::ListJobsRequest::default()).await })
            .ok()
            .and_then(|r| {
                r.into_inner()
                    .jobs
                    .first()
                    .and_then(|v| v.job.as_ref())
                    .map(|j| j.id.clone())
            })
    }

    /// `meshctl cp SRC DST --wait`: (wall time, output, job id).
    fn cp_wait(&self, src: &str, dst: &str, timeout: Duration) -> (f64, ProcOutput, Option<String>) {
        let t = Instant::now();
        let mut args = vec!["cp", src, dst, "--wait"];
        args.extend(self.cp_flags.iter().map(String::as_str));
        let out = self.ctl_env(&args, &[], timeout);
        let wall = t.elapsed().as_secs_f64();
        let id = out.json().ok().and_then(|v| find_id(&v)).or_else(|| self.newest_job());
        if out.timed_out {
            println!("  TIMEOUT after {timeout:?}: meshctl killed; cancelling the job");
            if let Some(id) = &id {
                let _ = self.ctl_env(&["job", "cancel", id], &[], Duration::from_secs(20));
            }
        }
        (wall, out, id)
    }

    /// The `running task` log lines per node for a job: {node index: {kind: count}}.
    fn task_runs(&self, job: &str) -> BTreeMap<usize, BTreeMap<String, u64>> {
        let mut m = BTreeMap::new();
        for i in 0..self.n {
            let e: &mut BTreeMap<String, u64> = m.entry(i).or_default();
            for l in self.c.log_text(i).lines() {
                if l.contains("running task") && l.contains(job) {
                    let kind = l
                        .split("kind=")
                        .nth(1)
                        .and_then(|r| r.split_whitespace().next())
                        .unwrap_or("?")
                        .trim_matches('"')
                        .to_string();
                    *e.entry(kind).or_default() += 1;
                }
            }
        }
        m
    }

    /// `built snapshot … bytes=N` of each node's log: (count, last bytes).
    fn snapshots(&self) -> Vec<(usize, u64)> {
        (0..self.n)
            .map(|i| {
                let t = self.c.log_text(i);
                let v: Vec<u64> = t
                    .lines()
                    .filter(|l| l.contains("built snapshot"))
                    .filter_map(|l| l.split("bytes=").nth(1)?.split_whitespace().next()?.parse().ok())
                    .collect();
                (v.len(), v.last().copied().unwrap_or(0))
            })
            .collect()
    }
}

fn find_id(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::String(s)) = m.get("id") {
                return Some(s.clone());
            }
            if let Some(j) = m.get("job") {
                if let Some(id) = find_id(j) {
                    return Some(id);
                }
            }
            m.values().find_map(find_id)
        }
        _ => None,
    }
}

/// The job's event times relative to `t0_ms`: (planning, running, verifying).
fn event_times(job: &pb::Job, t0_ms: u64) -> (Option<f64>, Option<f64>, Option<f64>) {
    let at = |p: &str| {
        job.events
            .iter()
            .find(|e| e.text.starts_with(p))
            .map(|e| (e.at_ms as f64 - t0_ms as f64) / 1000.0)
    };
    (at("planning"), at("running"), at("verifying"))
}

// ---------------------------------------------------------------- results

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Row {
    scenario: String,
    tool: String,
    label: String,
    nodes: usize,
    run: usize,
    objects: u64,
    bytes: u64,
    /// The client's wall time (meshctl cp --wait; the peer command; the engine call).
    wall_s: f64,
    /// Mesh: the job's own ended_at − created_at.
    job_s: Option<f64>,
    objects_per_s: f64,
    mib_per_s: f64,
    /// CPU seconds of the copier (meshd: all nodes; engine: this process; peer: its rusage).
    cpu_s: f64,
    /// Peak RSS (VmHWM) per process, MiB.
    peak_rss_mib: Vec<f64>,
    requests: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    verified: bool,
    detail: String,
    load_before: f64,
    load_after: f64,
}

impl Row {
    fn print(&self) {
        println!(
            "{} {}{} [{} node(s)] run {}: {} objects, {} in {:.2}s{} — {:.0} objects/s, {:.1} MiB/s",
            self.scenario,
            self.tool,
            if self.label.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.label)
            },
            self.nodes,
            self.run,
            self.objects,
            human(self.bytes),
            self.wall_s,
            self.job_s.map(|j| format!(" (job {j:.2}s)")).unwrap_or_default(),
            self.objects_per_s,
            self.mib_per_s
        );
        let rss: Vec<String> = self.peak_rss_mib.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "  CPU {:.2}s; peak RSS [{}] MiB; load {:.2} → {:.2}",
            self.cpu_s,
            rss.join(", "),
            self.load_before,
            self.load_after
        );
        let n = self.objects.max(1) as f64;
        let per: Vec<String> = self
            .requests
            .iter()
            .map(|(k, v)| format!("{k} {v} ({:.3}/obj)", *v as f64 / n))
            .collect();
        println!("  server requests: {}", per.join(", "));
        if !self.errors.is_empty() {
            println!("  non-2xx answers: {:?}", self.errors);
        }
        println!(
            "  {}: {}",
            if self.verified { "verified" } else { "NOT VERIFIED" },
            self.detail
        );
        println!("RESULT {}", serde_json::to_string(self).expect("json"));
    }
}

// ---------------------------------------------------------------- runs

/// The engine in-process, as `engine-bench`: `run_range(Copy)` from `src/src_prefix` to
/// `dst/dst_prefix`.
#[allow(clippy::too_many_arguments)]
fn engine_run(
    rt: &tokio::runtime::Runtime,
    s: &Server,
    sc: &str,
    src_prefix: &str,
    dst_prefix: &str,
    objects: u64,
    size: u64,
    concurrency: usize,
    copy_object_max: Option<u64>,
    run: usize,
    timeout: Duration,
) -> Row {
    let mut copy = CopyOptions {
        verify: Verify::Size,
        ..CopyOptions::default()
    };
    if let Some(m) = copy_object_max {
        copy.copy_object_max = m;
    }
    let ropts = RangeOptions {
        copy,
        concurrency,
        large_concurrency: 4,
        ..RangeOptions::default()
    };
    let range = KeyRange {
        prefix: src_prefix.into(),
        ..Default::default()
    };
    let map = KeyMap::new(src_prefix, dst_prefix);
    let filter = Filter::new();
    std::thread::sleep(Duration::from_millis(300));
    let (c0, e0) = s3_counters(&s.sw);
    let load_before = loadavg();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let cpu0 = self_cpu_s();
    let t0 = Instant::now();
    let mut failures = Vec::new();
    let sum = rt.block_on(async {
        let fut = ops::run_range(
            RangeTask {
                op: RangeOp::Copy,
                src: s.src.as_ref(),
                dst: s.dst.as_ref(),
                range: &range,
                map: &map,
                filter: &filter,
            },
            &ropts,
            |out| {
                if let Action::Failed(e) = &out.action {
                    if failures.len() < 5 {
                        failures.push(format!("{}: {e}", out.key));
                    }
                }
            },
        );
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(sum)) => Some(sum),
            Ok(Err(e)) => {
                println!("  run_range failed: {e}");
                None
            }
            Err(_) => {
                println!("  TIMEOUT after {timeout:?}");
                None
            }
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let cpu = self_cpu_s() - cpu0;
    let hwm = proc_status_kib("self", "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    let load_after = loadavg();
    std::thread::sleep(Duration::from_millis(300));
    let (c1, e1) = s3_counters(&s.sw);
    for f in &failures {
        println!("  failure: {f}");
    }
    let (n, b, right) = rt.block_on(listing(&s.dst, dst_prefix, size)).unwrap_or((0, 0, 0));
    let copied = sum.as_ref().map(|s| s.copied).unwrap_or(0);
    Row {
        scenario: sc.into(),
        tool: "engine".into(),
        label: match copy_object_max {
            Some(m) => format!("in-process run_range, copy_object_max {}", human(m)),
            None => format!("in-process run_range, concurrency {concurrency}"),
        },
        nodes: 0,
        run,
        objects,
        bytes: objects * size,
        wall_s: wall,
        job_s: None,
        objects_per_s: copied as f64 / wall,
        mib_per_s: (objects * size) as f64 / MIB as f64 / wall,
        cpu_s: cpu,
        peak_rss_mib: vec![hwm],
        requests: diff(&c0, &c1),
        errors: diff(&e0, &e1),
        verified: n == objects && right == objects && copied == objects,
        detail: format!(
            "{n}/{objects} objects under dst/{dst_prefix} ({right} with size {size}, {b} bytes); copied {copied}"
        ),
        load_before,
        load_after,
    }
}

/// A peer tool: `sh -c CMD` with SRC_ENDPOINT / dummy AWS keys in its environment.
#[allow(clippy::too_many_arguments)]
fn peer_run(
    rt: &tokio::runtime::Runtime,
    s: &Server,
    sc: &str,
    tool: &str,
    cmd: &str,
    dst_prefix: &str,
    objects: u64,
    size: u64,
    run: usize,
    timeout: Duration,
) -> Row {
    std::thread::sleep(Duration::from_millis(300));
    let (c0, e0) = s3_counters(&s.sw);
    let load_before = loadavg();
    let log = std::env::temp_dir().join(format!("job-bench-peer-{}.log", std::process::id()));
    let logf = std::fs::File::create(&log).unwrap_or_else(|e| die(&format!("log: {e}")));
    let t0 = Instant::now();
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .env("SRC_ENDPOINT", s.sw.endpoint())
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(logf.try_clone().expect("log"))
        .stderr(logf);
    {
        use std::os::unix::process::CommandExt;
        c.process_group(0);
    }
    let child = c.spawn().unwrap_or_else(|e| die(&format!("spawn sh: {e}")));
    let pid = child.id() as i32;
    let mut killed = false;
    let (status, ru) = loop {
        let mut st = 0;
        // SAFETY: wait4 on our own child.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut st, libc::WNOHANG, &mut ru) };
        if r == pid {
            break (st, ru);
        }
        if r < 0 {
            die(&format!("wait4: {}", std::io::Error::last_os_error()));
        }
        if !killed && t0.elapsed() > timeout {
            killed = true;
            // SAFETY: the process group we created.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            println!("  TIMEOUT after {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = t0.elapsed().as_secs_f64();
    std::mem::forget(child);
    let load_after = loadavg();
    std::thread::sleep(Duration::from_millis(300));
    let (c1, e1) = s3_counters(&s.sw);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        println!("  command failed (status {status}); log tail:");
        for l in text.lines().rev().take(10).collect::<Vec<_>>().iter().rev() {
            println!("    {l}");
        }
    }
    let _ = std::fs::remove_file(&log);
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    let (n, b, right) = rt.block_on(listing(&s.dst, dst_prefix, size)).unwrap_or((0, 0, 0));
    Row {
        scenario: sc.into(),
        tool: tool.into(),
        label: String::new(),
        nodes: 0,
        run,
        objects,
        bytes: objects * size,
        wall_s: wall,
        job_s: None,
        objects_per_s: objects as f64 / wall,
        mib_per_s: (objects * size) as f64 / MIB as f64 / wall,
        cpu_s: t(ru.ru_utime) + t(ru.ru_stime),
        peak_rss_mib: vec![ru.ru_maxrss as f64 / 1024.0],
        requests: diff(&c0, &c1),
        errors: diff(&e0, &e1),
        verified: ok && n == objects && right == objects,
        detail: format!("{n}/{objects} objects under dst/{dst_prefix} ({right} with size {size}, {b} bytes); `{cmd}`"),
        load_before,
        load_after,
    }
}

/// `meshctl cp src:SRC dst:DST --wait` on a mesh.
#[allow(clippy::too_many_arguments)]
fn mesh_run(
    rt: &tokio::runtime::Runtime,
    s: &Server,
    m: &Mesh,
    sc: &str,
    label: &str,
    src_path: &str,
    dst_prefix: &str,
    objects: u64,
    size: u64,
    run: usize,
    timeout: Duration,
) -> Row {
    std::thread::sleep(Duration::from_millis(300));
    let (c0, e0) = s3_counters(&s.sw);
    let load_before = loadavg();
    let cpu0 = m.cpu_s();
    // JOB_BENCH_TRACE=1: print the newest job's progress every 500 ms while meshctl waits.
    let trace = std::env::var("JOB_BENCH_TRACE").is_ok_and(|v| v == "1").then(|| {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let h = rt.spawn(trace_job(m.client.clone(), stop.clone()));
        (stop, h)
    });
    let (wall, out, id) = m.cp_wait(&format!("src:{src_path}"), &format!("dst:{dst_prefix}"), timeout);
    if let Some((stop, h)) = trace {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = rt.block_on(h);
    }
    let cpu = m.cpu_s() - cpu0;
    let load_after = loadavg();
    std::thread::sleep(Duration::from_millis(300));
    let (c1, e1) = s3_counters(&s.sw);
    if !out.success() {
        println!("  meshctl cp failed: {}", out.describe());
    }
    let view = id.as_deref().and_then(|id| m.get(id));
    let job = view.as_ref().and_then(|v| v.job.clone()).unwrap_or_default();
    let c = job.counters.unwrap_or_default();
    let job_s = (job.ended_at_ms > 0).then(|| (job.ended_at_ms - job.created_at_ms) as f64 / 1000.0);
    let (planning, running, verifying) = event_times(&job, job.created_at_ms);
    let runs = id.as_deref().map(|id| m.task_runs(id)).unwrap_or_default();
    let (n, b, right) = rt.block_on(listing(&s.dst, dst_prefix, size)).unwrap_or((0, 0, 0));
    let f = |x: Option<f64>| x.map(|v| format!("{v:.2}s")).unwrap_or("-".into());
    println!(
        "  job {} {}: tasks {}, nodes used {:?}; since submit: planning {}, running {}, verifying {}, ended {}; task runs per node {:?}",
        job.id,
        mesh_proto::names::job_state(job.state),
        job.tasks_total,
        job.nodes_used,
        f(planning),
        f(running),
        f(verifying),
        f(job_s),
        runs
    );
    Row {
        scenario: sc.into(),
        tool: format!("mesh {}n", m.n),
        label: label.into(),
        nodes: m.n,
        run,
        objects,
        bytes: objects * size,
        wall_s: wall,
        job_s,
        objects_per_s: c.objects_done as f64 / wall,
        mib_per_s: c.bytes_done as f64 / MIB as f64 / wall,
        cpu_s: cpu,
        peak_rss_mib: m.hwm_mib(),
        requests: diff(&c0, &c1),
        errors: diff(&e0, &e1),
        verified: out.success() && n == objects && right == objects && c.objects_done == objects,
        detail: format!(
            "{n}/{objects} objects under dst/{dst_prefix} ({right} with size {size}, {b} bytes); job {} {}: done {}, failed {}, recopied {}",
            job.id,
            mesh_proto::names::job_state(job.state),
            c.objects_done,
            c.objects_failed,
            job.recopied
        ),
        load_before,
        load_after,
    }
}

/// Prints the newest job's counters and task counts every 500 ms until `stop`.
async fn trace_job(mut cl: meshctl::client::Clients, stop: Arc<std::sync::atomic::AtomicBool>) {
    let t0 = Instant::now();
    let mut last_done = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(r) = cl.job.list(pb::ListJobsRequest::default()).await else {
            continue;
        };
        let Some(v) = r.into_inner().jobs.into_iter().next() else {
            continue;
        };
        let j = v.job.clone().unwrap_or_default();
        let c = j.counters.unwrap_or_default();
        println!(
            "  trace +{:5.1}s {} {}: done {} (+{}), total {}; tasks running {}, pending {}, done {}; nodes {:?}",
            t0.elapsed().as_secs_f64(),
            j.id,
            mesh_proto::names::job_state(j.state),
            c.objects_done,
            c.objects_done.saturating_sub(last_done),
            c.objects_total,
            v.tasks_running,
            v.tasks_pending,
            v.tasks_done,
            v.nodes_running
        );
        last_done = c.objects_done;
    }
}

// ---------------------------------------------------------------- scenarios

fn p1(o: &Opts, rt: &tokio::runtime::Runtime) {
    let size = o.size.unwrap_or(16 * KIB);
    let n = o.objects as u64;
    let s = start_server(rt);
    rt.block_on(seed_small(&s.src, "data/", o.objects, size));
    println!("({})", uptime_line());
    let s5 = |prefix: &str| {
        format!(
            "exec {} --endpoint-url $SRC_ENDPOINT --numworkers 256 cp 's3://src/data/*' s3://dst/{prefix}/",
            o.s5cmd
        )
    };
    // All meshes up front, so every round runs every copier back to back (engine, s5cmd, each
    // mesh × each task size): the machine's load drifts, and interleaving spreads the drift
    // over all of them instead of favouring whoever ran in a quiet minute.
    let meshes: Vec<Mesh> = o
        .nodes
        .iter()
        .map(|&nodes| {
            let m = Mesh::start(nodes, None);
            m.add_s3(&s.sw.endpoint());
            m
        })
        .collect();
    for run in 1..=o.runs {
        println!("--- round {run} ({})", uptime_line());
        engine_run(
            rt,
            &s,
            "P1",
            "data/",
            &format!("eng-{run}/"),
            n,
            size,
            o.engine_concurrency,
            None,
            run,
            o.timeout,
        )
        .print();
        peer_run(
            rt,
            &s,
            "P1",
            "s5cmd",
            &s5(&format!("s5-{run}")),
            &format!("s5-{run}/"),
            n,
            size,
            run,
            o.timeout,
        )
        .print();
        for m in &meshes {
            for &t in &o.task_objects {
                m.set("job.copy_task_objects", &t.to_string());
                let label = format!("copy_task_objects {t}");
                let prefix = format!("m{}-t{t}-{run}/", m.n);
                mesh_run(rt, &s, m, "P1", &label, "data/", &prefix, n, size, run, o.timeout).print();
            }
        }
    }
}

fn vacuum(s: &Server) {
    let t = Instant::now();
    let r = http_get(
        s.sw.master_addr(),
        "/vol/vacuum?garbageThreshold=0.0001",
        Duration::from_secs(300),
    );
    println!(
        "  vacuum: {} in {:.1}s; disk available {:.1} GiB",
        match &r {
            Ok(t) => t.lines().next().unwrap_or("").to_string(),
            Err(e) => e.clone(),
        },
        t.elapsed().as_secs_f64(),
        disk_avail(&std::env::temp_dir()) as f64 / GIB as f64
    );
}

fn delete_and_vacuum(rt: &tokio::runtime::Runtime, s: &Server, prefix: &str) {
    rt.block_on(async {
        let mut range = KeyRange {
            prefix: prefix.into(),
            ..Default::default()
        };
        loop {
            let Ok(p) = s.dst.list(&range, 1000).await else { break };
            for o in &p.objects {
                let src_etag = s.src.head("p5/big").await.ok().and_then(|m| m.info.etag);
                println!(
                    "  dst/{}: {} bytes, ETag {} (source p5/big: ETag {})",
                    o.key,
                    o.size,
                    o.etag.as_deref().unwrap_or("-"),
                    src_etag.as_deref().unwrap_or("-")
                );
            }
            let keys: Vec<String> = p.objects.iter().map(|o| o.key.clone()).collect();
            if !keys.is_empty() {
                let _ = s.dst.delete_many(&keys).await;
            }
            match p.next_start_after {
                Some(k) => range.start_after = Some(k),
                None => break,
            }
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    vacuum(s);
}

fn p5(o: &Opts, rt: &tokio::runtime::Runtime) {
    let tmp = std::env::temp_dir();
    let avail = disk_avail(&tmp);
    let mut size = o.size.unwrap_or(6 * GIB);
    // The source plus one copy at a time (every copy is deleted and vacuumed), plus 4 GiB margin
    // for everybody else on the machine.
    if avail < 2 * size + 4 * GIB {
        let smaller = 3 * GIB;
        println!(
            "NOTE: {:.1} GiB available under {} is short for {} (needs {:.1} GiB): using {} instead",
            avail as f64 / GIB as f64,
            tmp.display(),
            human(size),
            (2 * size + 4 * GIB) as f64 / GIB as f64,
            human(smaller)
        );
        size = smaller;
    } else {
        println!(
            "disk available under {}: {:.1} GiB",
            tmp.display(),
            avail as f64 / GIB as f64
        );
    }
    let s = start_server(rt);
    rt.block_on(seed_big(&s.src, "p5/big", size, o.seed_part_size));
    println!("({})", uptime_line());
    let check_disk = || {
        let a = disk_avail(&tmp);
        if a < size + 3 * GIB {
            println!(
                "SKIP: only {:.1} GiB available; not starting another {} copy",
                a as f64 / GIB as f64,
                human(size)
            );
            false
        } else {
            true
        }
    };
    for tool in &o.tools {
        match tool.as_str() {
            "mesh" => {
                for &nodes in &o.nodes {
                    if !check_disk() {
                        continue;
                    }
                    let mut m = Mesh::start(nodes, None);
                    m.add_s3(&s.sw.endpoint());
                    if let Some(v) = &o.mesh_verify {
                        m.cp_flags = vec!["--verify".into(), v.clone()];
                    }
                    m.set("job.split_object_bytes", &o.split);
                    m.set("job.part_task_bytes", &o.split);
                    let prefix = format!("p5-m{nodes}/");
                    mesh_run(
                        rt,
                        &s,
                        &m,
                        "P5",
                        &format!(
                            "split: {} part tasks{}",
                            o.split,
                            o.mesh_verify
                                .as_deref()
                                .map(|v| format!(", --verify {v}"))
                                .unwrap_or_default()
                        ),
                        "p5/",
                        &prefix,
                        1,
                        size,
                        1,
                        o.timeout,
                    )
                    .print();
                    drop(m);
                    delete_and_vacuum(rt, &s, &prefix);
                }
            }
            "aws" => {
                if !check_disk() {
                    continue;
                }
                let cmd = format!(
                    "exec {} --endpoint-url $SRC_ENDPOINT s3 cp --only-show-errors s3://src/p5/big s3://dst/p5-aws/big",
                    o.aws
                );
                peer_run(rt, &s, "P5", "aws-cli", &cmd, "p5-aws/", 1, size, 1, o.timeout).print();
                delete_and_vacuum(rt, &s, "p5-aws/");
            }
            "engine" => {
                if !check_disk() {
                    continue;
                }
                // copy_object_max below the size, so the engine also uses UploadPartCopy (in the
                // source's 8 MiB layout) like the mesh's split and aws-cli, even for ≤ 5 GiB.
                engine_run(
                    rt,
                    &s,
                    "P5",
                    "p5/",
                    "p5-eng/",
                    1,
                    size,
                    4,
                    Some(128 * MIB),
                    1,
                    o.timeout,
                )
                .print();
                delete_and_vacuum(rt, &s, "p5-eng/");
            }
            other => println!("unknown tool {other} (mesh, aws, engine)"),
        }
    }
}

/// Submit → first object: `jobs` one-object jobs per mesh size.
fn latency(o: &Opts, rt: &tokio::runtime::Runtime) {
    let s = start_server(rt);
    rt.block_on(seed_small(&s.src, "one/", 1, 16 * KIB));
    for &nodes in &o.nodes {
        let m = Mesh::start(nodes, None);
        m.add_s3(&s.sw.endpoint());
        // A first job warms the workers' S3 clients and the location cache (not counted).
        let (_, out, _) = m.cp_wait("src:one/", "dst:lat-warm/", o.timeout);
        if !out.success() {
            println!("warm-up job failed: {}", out.describe());
        }
        println!("({})", uptime_line());
        let mut rows: Vec<[f64; 7]> = Vec::new();
        for k in 1..=o.jobs {
            let prefix = format!("lat-{nodes}n-{k}/");
            let key = format!("{prefix}000000");
            let spec = JobSpec {
                op: JobOp::Copy as i32,
                src_location: "src".into(),
                src_path: "one/".into(),
                dst_location: "dst".into(),
                dst_path: prefix.clone(),
                ..Default::default()
            };
            let mut cl = m.client.clone();
            let dst = s.dst.clone();
            let timeout = o.timeout;
            let load = loadavg();
            let r = rt.block_on(async move {
                let t0_ms = now_ms();
                let t0 = Instant::now();
                let job = cl
                    .job
                    .submit(SubmitJobRequest { spec: Some(spec) })
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner()
                    .job
                    .ok_or("no job")?;
                let submit_rpc = t0.elapsed().as_secs_f64();
                let (mut t_obj, mut t_done_seen, mut t_end) = (None, None, None);
                let mut last = None;
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                let mut k = 0u64;
                while t0.elapsed() < timeout {
                    tick.tick().await;
                    k += 1;
                    if t_obj.is_none() && dst.head(&key).await.is_ok() {
                        t_obj = Some(t0.elapsed().as_secs_f64());
                    }
                    if k.is_multiple_of(2) {
                        if let Ok(r) = cl
                            .job
                            .get(GetJobRequest {
                                id: job.id.clone(),
                                consistency: ReadConsistency::Linearizable as i32,
                            })
                            .await
                        {
                            let j = r.into_inner().job.and_then(|v| v.job).unwrap_or_default();
                            let done = j.counters.as_ref().map(|c| c.objects_done).unwrap_or(0);
                            if t_done_seen.is_none() && done > 0 {
                                t_done_seen = Some(t0.elapsed().as_secs_f64());
                            }
                            let terminal = mesh_proto::names::is_terminal_job_state(j.state);
                            last = Some(j);
                            if terminal {
                                t_end = Some(t0.elapsed().as_secs_f64());
                            }
                        }
                    }
                    if t_end.is_some() && t_obj.is_some() {
                        break;
                    }
                }
                Ok::<_, String>((t0_ms, submit_rpc, t_obj, t_done_seen, t_end, last.unwrap_or(job)))
            });
            match r {
                Ok((t0_ms, rpc, t_obj, t_seen, t_end, job)) => {
                    let (planning, running, _) = event_times(&job, t0_ms);
                    let ended = (job.ended_at_ms > 0).then(|| (job.ended_at_ms as f64 - t0_ms as f64) / 1000.0);
                    let f = |x: Option<f64>| x.map(|v| format!("{:.0} ms", v * 1000.0)).unwrap_or("-".into());
                    println!(
                        "job {k} ({nodes} node(s), {}, load {load:.2}): submit RPC {}, planning {}, running {}, object at dst {}, objects_done>0 seen {}, ended {} (seen {})",
                        job.id,
                        f(Some(rpc)),
                        f(planning),
                        f(running),
                        f(t_obj),
                        f(t_seen),
                        f(ended),
                        f(t_end)
                    );
                    let nan = |x: Option<f64>| x.unwrap_or(f64::NAN);
                    rows.push([
                        rpc,
                        nan(planning),
                        nan(running),
                        nan(t_obj),
                        nan(t_seen),
                        nan(ended),
                        nan(t_end),
                    ]);
                }
                Err(e) => println!("job {k}: {e}"),
            }
        }
        let col = |i: usize| median(rows.iter().map(|r| r[i]).collect());
        let max = |i: usize| rows.iter().map(|r| r[i]).fold(f64::NAN, f64::max);
        let names = [
            "submit RPC",
            "→ planning (LIST assigned)",
            "→ running (first COPY planned)",
            "→ object at destination",
            "→ objects_done>0 seen (Get)",
            "→ job ended (ended_at)",
            "→ terminal state seen (Get)",
        ];
        println!(
            "latency over {} jobs on {nodes} node(s) ({}):",
            rows.len(),
            uptime_line()
        );
        for (i, n) in names.iter().enumerate() {
            println!(
                "  {n:32} median {:6.0} ms   max {:6.0} ms",
                col(i) * 1000.0,
                max(i) * 1000.0
            );
        }
        println!(
            "LATENCY {}",
            serde_json::json!({
                "nodes": nodes, "jobs": rows.len(), "load": loadavg(),
                "median_ms": (0..7).map(|i| (col(i) * 1000.0).round()).collect::<Vec<_>>(),
                "max_ms": (0..7).map(|i| (max(i) * 1000.0).round()).collect::<Vec<_>>(),
                "columns": names,
            })
        );
    }
}

/// Makes `files` tiny files in 100 folders under `dir`.
fn make_files(dir: &Path, files: usize) {
    let t = Instant::now();
    let per = files.div_ceil(100).max(1);
    let mut made = 0;
    for d in 0..100 {
        if made >= files {
            break;
        }
        let sub = dir.join(format!("d{d:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        for _ in 0..per {
            if made >= files {
                break;
            }
            std::fs::write(sub.join(format!("f{made:06}")), format!("object {made}\n")).unwrap();
            made += 1;
        }
    }
    println!(
        "made {made} files under {} in {:.1}s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
}

fn count_files(dir: &Path) -> u64 {
    let mut n = 0;
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if ft.is_dir() {
            if name != ".bucketmesh" && name != "%tmp" {
                n += count_files(&e.path());
            }
        } else if !name.ends_with("%meta") {
            n += 1;
        }
    }
    n
}

/// Any file under `dir` (at most two levels down)? (The fs store renames finished data into
/// place, so a visible file is a copied object; its `%meta` sidecar follows it.)
fn any_file(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else { return false };
    for e in rd.flatten() {
        if e.file_name() == ".bucketmesh" || e.file_name() == "%tmp" {
            continue;
        }
        match e.file_type() {
            Ok(ft) if ft.is_file() => return true,
            Ok(ft) if ft.is_dir() && std::fs::read_dir(e.path()).is_ok_and(|mut r| r.next().is_some()) => return true,
            _ => {}
        }
    }
    false
}

fn plan(o: &Opts, rt: &tokio::runtime::Runtime) {
    let base = tempfile::Builder::new()
        .prefix("job-bench-fs-")
        .tempdir()
        .unwrap_or_else(|e| die(&e.to_string()));
    let (src, dst) = (base.path().join("src"), base.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    make_files(&src, o.files);
    for (ni, &nodes) in o.nodes.iter().enumerate() {
        let m = Mesh::start(nodes, o.snapshot_every);
        let out_dir = format!("out{ni}");
        m.ok(&["location", "add", "fsrc", "--fs", &src.display().to_string()], &[]);
        m.ok(&["location", "add", "fdst", "--fs", &dst.display().to_string()], &[]);
        std::thread::sleep(Duration::from_secs(1));
        let db0 = m.db_sizes();
        let commit0 = m.commit_index();
        let snaps0 = m.snapshots();
        let cpu0 = m.cpu_s();
        println!(
            "({}) sled db before: {:?} bytes; commit index {commit0}",
            uptime_line(),
            db0
        );
        let spec = JobSpec {
            op: JobOp::Copy as i32,
            src_location: "fsrc".into(),
            src_path: String::new(),
            dst_location: "fdst".into(),
            dst_path: format!("{out_dir}/"),
            ..Default::default()
        };
        let target = dst.join(&out_dir);
        let files = o.files as u64;
        let mut cl = m.client.clone();
        let timeout = o.timeout;
        let load_before = loadavg();
        let data_dirs: Vec<PathBuf> = (0..nodes).map(|i| m.c.node(i).data_dir.join("db")).collect();
        let target2 = target.clone();
        let r = rt.block_on(async move {
            let target = target2;
            let t0_ms = now_ms();
            let t0 = Instant::now();
            let job = cl
                .job
                .submit(SubmitJobRequest { spec: Some(spec) })
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .job
                .ok_or("no job")?;
            let (mut t_first, mut t_listed, mut t_end) = (None, None, None);
            let mut peak_db = vec![0u64; data_dirs.len()];
            let mut peak_tasks = 0u32;
            let mut peak_job_bytes = 0usize;
            let mut last = job.clone();
            let mut k = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while t0.elapsed() < timeout {
                tick.tick().await;
                k += 1;
                if t_first.is_none() && any_file(&target) {
                    t_first = Some(t0.elapsed().as_secs_f64());
                }
                if t_first.is_some() && !k.is_multiple_of(5) {
                    continue;
                }
                if k.is_multiple_of(100) {
                    for (i, d) in data_dirs.iter().enumerate() {
                        peak_db[i] = peak_db[i].max(du_sb(d));
                    }
                }
                if let Ok(r) = cl
                    .job
                    .get(GetJobRequest {
                        id: job.id.clone(),
                        consistency: ReadConsistency::Local as i32,
                    })
                    .await
                {
                    let v = r.into_inner().job.unwrap_or_default();
                    let j = v.job.unwrap_or_default();
                    peak_tasks = peak_tasks.max(v.tasks_running + v.tasks_pending + v.tasks_done);
                    peak_job_bytes = peak_job_bytes.max(j.encoded_len());
                    let total = j.counters.as_ref().map(|c| c.objects_total).unwrap_or(0);
                    if t_listed.is_none() && total >= files {
                        t_listed = Some(t0.elapsed().as_secs_f64());
                    }
                    let terminal = mesh_proto::names::is_terminal_job_state(j.state);
                    last = j;
                    if terminal {
                        t_end = Some(t0.elapsed().as_secs_f64());
                        break;
                    }
                }
            }
            Ok::<_, String>((
                t0_ms,
                t_first,
                t_listed,
                t_end,
                peak_db,
                peak_tasks,
                peak_job_bytes,
                last,
            ))
        });
        let load_after = loadavg();
        let (t0_ms, t_first, t_listed, t_end, peak_db, peak_tasks, peak_job_bytes, job) = match r {
            Ok(x) => x,
            Err(e) => die(&format!("plan: {e}")),
        };
        if t_end.is_none() {
            println!("  TIMEOUT after {:?}; cancelling", o.timeout);
            let _ = m.ctl_env(&["job", "cancel", &job.id], &[], Duration::from_secs(20));
        }
        let cpu = m.cpu_s() - cpu0;
        let hwm = m.hwm_mib();
        std::thread::sleep(Duration::from_secs(2));
        let db1 = m.db_sizes();
        let commit1 = m.commit_index();
        let snaps = m.snapshots();
        let copied = count_files(&target);
        let (planning, running, verifying) = event_times(&job, t0_ms);
        let c = job.counters.unwrap_or_default();
        let f = |x: Option<f64>| x.map(|v| format!("{v:.2}s")).unwrap_or("-".into());
        println!(
            "PLAN {} files on {nodes} node(s): job {} {}, {} tasks; since submit: planning {}, running {}, first file at dst {}, listing complete (objects_total = {}) {}, verifying {}, ended {}",
            o.files,
            job.id,
            mesh_proto::names::job_state(job.state),
            job.tasks_total,
            f(planning),
            f(running),
            f(t_first),
            c.objects_total,
            f(t_listed),
            f(verifying),
            f(t_end)
        );
        let wall = t_end.unwrap_or(f64::NAN);
        println!(
            "  {} objects done ({} files at dst), {:.0} objects/s; meshd CPU {:.1}s ({:.2} ms/object); peak RSS per node {:?} MiB; load {load_before:.2} → {load_after:.2}",
            c.objects_done,
            copied,
            c.objects_done as f64 / wall,
            cpu,
            cpu * 1000.0 / c.objects_done.max(1) as f64,
            hwm.iter().map(|x| x.round()).collect::<Vec<_>>()
        );
        println!(
            "  sled db (du -sb <data-dir>/db) per node: before {:?}, peak while running {:?}, after {:?}; Raft entries for the job: {} (commit {commit0} → {commit1})",
            db0,
            peak_db,
            db1,
            commit1.saturating_sub(commit0)
        );
        println!(
            "  snapshots built per node (count, last bytes): before {:?}, after {:?}; job row {} bytes encoded at most while running, {} after compaction; tasks at most {}",
            snaps0,
            snaps,
            peak_job_bytes,
            job.encoded_len(),
            peak_tasks
        );
        let row = Row {
            scenario: "PLAN".into(),
            tool: format!("mesh {nodes}n"),
            label: format!("{} fs files", o.files),
            nodes,
            run: 1,
            objects: files,
            bytes: 0,
            wall_s: wall,
            job_s: (job.ended_at_ms > 0).then(|| (job.ended_at_ms - job.created_at_ms) as f64 / 1000.0),
            objects_per_s: c.objects_done as f64 / wall,
            mib_per_s: 0.0,
            cpu_s: cpu,
            peak_rss_mib: hwm,
            requests: BTreeMap::new(),
            errors: BTreeMap::new(),
            verified: copied == files && c.objects_done == files,
            detail: format!(
                "first file {}, listed {}, db before {db0:?} peak {peak_db:?} after {db1:?}, snapshots {snaps:?}",
                f(t_first),
                f(t_listed)
            ),
            load_before,
            load_after,
        };
        println!("RESULT {}", serde_json::to_string(&row).expect("json"));
    }
}

// ---------------------------------------------------------------- table

fn table(path: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    let mut rows: Vec<Row> = Vec::new();
    for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
        if let Some(j) = line.strip_prefix("RESULT ") {
            if let Ok(r) = serde_json::from_str(j) {
                rows.push(r);
            }
        }
    }
    let mut groups: Vec<((String, String, String), Vec<Row>)> = Vec::new();
    for r in rows {
        let k = (r.scenario.clone(), r.tool.clone(), r.label.clone());
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(r),
            None => groups.push((k, vec![r])),
        }
    }
    // The engine's median wall per scenario (its first group: the runs before the meshes).
    let engine: BTreeMap<String, f64> = groups
        .iter()
        .filter(|((_, t, _), _)| t == "engine")
        .map(|((sc, _, _), v)| (sc.clone(), median(v.iter().map(|r| r.wall_s).collect())))
        .rev()
        .collect();
    println!("| scenario | tool | runs | wall (median) | job time | objects/s | MiB/s | vs engine | CPU s | peak RSS MiB | S3 requests (median run) | verified | load 1m |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for ((sc, tool, label), v) in &groups {
        let m = |f: fn(&Row) -> f64| median(v.iter().map(f).collect());
        let wall = m(|r| r.wall_s);
        let job = m(|r| r.job_s.unwrap_or(f64::NAN));
        let mut by_wall: Vec<&Row> = v.iter().collect();
        by_wall.sort_by(|a, b| a.wall_s.partial_cmp(&b.wall_s).unwrap());
        let mid = by_wall[by_wall.len() / 2];
        let n = mid.objects.max(1) as f64;
        let reqs: Vec<String> = mid
            .requests
            .iter()
            .map(|(k, c)| {
                if n >= 100.0 && *c as f64 / n >= 0.1 {
                    format!("{k} {:.2}/obj", *c as f64 / n)
                } else {
                    format!("{k} {c}")
                }
            })
            .collect();
        let rss = v
            .iter()
            .flat_map(|r| r.peak_rss_mib.iter().copied())
            .fold(0.0, f64::max);
        let vs = engine
            .get(sc)
            .filter(|_| tool != "engine")
            .map(|e| format!("{:+.0} %", (wall / e - 1.0) * 100.0))
            .unwrap_or_default();
        let load = v.iter().map(|r| r.load_before.max(r.load_after)).fold(0.0, f64::max);
        println!(
            "| {sc} {} × {} | {tool}{} | {} | {wall:.2} s | {} | {:.0} | {:.1} | {vs} | {:.2} | {rss:.0} | {} | {} | ≤ {load:.2} |",
            mid.objects,
            human(mid.bytes / mid.objects.max(1)),
            if label.is_empty() {
                String::new()
            } else {
                format!(" ({label})")
            },
            v.len(),
            if job.is_finite() {
                format!("{job:.2} s")
            } else {
                "–".into()
            },
            m(|r| r.objects_per_s),
            m(|r| r.mib_per_s),
            m(|r| r.cpu_s),
            reqs.join(", "),
            if v.iter().all(|r| r.verified) {
                "yes".to_string()
            } else {
                format!("NO ({}/{})", v.iter().filter(|r| r.verified).count(), v.len())
            }
        );
    }
}

// ---------------------------------------------------------------- main

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else { usage() };
    if cmd == "table" {
        table(args.get(1).unwrap_or_else(|| usage()));
        return;
    }
    let o = parse(&cmd, &args[1..]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("job-bench {cmd} ({}; {:?})", uptime_line(), o);
    let t = Instant::now();
    match cmd.as_str() {
        "p1" => p1(&o, &rt),
        "p5" => p5(&o, &rt),
        "latency" => latency(&o, &rt),
        "plan" => plan(&o, &rt),
        _ => usage(),
    }
    println!(
        "job-bench {cmd} done in {:.0}s ({})",
        t.elapsed().as_secs_f64(),
        uptime_line()
    );
}
