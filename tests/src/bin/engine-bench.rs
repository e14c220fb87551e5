//! engine-bench: the copy engine (issue 3) against SeaweedFS, and the same setup for peer tools
//! (not run in CI).
//!
//! ```text
//! engine-bench p1 [opts]              server-side copy, one SeaweedFS, 5,000 × 16 KiB
//! engine-bench p2 [opts]              streaming copy between two SeaweedFS, 8 × 128 MiB, verify checksum
//! engine-bench p5 [opts]              server-side copy, one SeaweedFS, 4 × 256 MiB (UploadPartCopy)
//! engine-bench peer p1|p2|p5 --tool NAME [opts] -- 'SHELL COMMAND'
//!                                     same server(s) and data, runs the command (sh -c) instead
//! engine-bench serve p1|p2|p5 [opts]  starts, seeds, prints the endpoints, waits for stdin EOF
//! engine-bench table FILE             markdown table of the RESULT lines in FILE
//!
//! opts: --objects N  --size BYTES[KiB|MiB|GiB]  --concurrency C  --verify none|size|etag|checksum
//!       --large-concurrency N  --parts-in-flight N  --part-size BYTES  --copy-object-max BYTES
//!       --runs N (each into a fresh destination prefix)  --timeout SECS (default 600, or
//!       $ENGINE_BENCH_TIMEOUT; per copy run)  --label TEXT
//! ```
//!
//! Every scenario starts its own SeaweedFS (`tests/src/seaweed.rs`: `weed mini` on a random
//! loopback IP, `-metricsPort`), seeds `src/data/NNNNNN` with parallel PUTs through the engine's
//! `S3Store`, then copies `src/data/` → `dst/rK/` (K = run) with `ops::run_range(RangeOp::Copy)`
//! (or, for `peer`, the given command with `SRC_ENDPOINT`, `DST_ENDPOINT`, `DST_PREFIX` (`rK`),
//! dummy `AWS_*` keys in its environment). Measured around the copy only:
//! - wall time; objects/s and MiB/s;
//! - CPU: engine = getrusage(RUSAGE_SELF) user+sys delta; peer = the child's rusage from wait4
//!   (it includes the peer's own start-up, e.g. Python for aws-cli);
//! - peak RSS: engine = VmHWM after resetting it (`/proc/self/clear_refs` ← 5) before the copy;
//!   peer = the child's ru_maxrss;
//! - S3 requests by type from SeaweedFS's `SeaweedFS_s3_request_total{bucket,code,type}`,
//!   before/after, summed over both servers for P2 (SeaweedFS counts HEAD as type GET);
//! - then a listing of `dst/rK/` checks every object exists with the right size.
//!
//! Each run prints a human-readable report and one `RESULT {json}` line (`table` formats them).

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use mesh_tests::seaweed::SeaweedFs;
use serde::{Deserialize, Serialize};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const SRC_PREFIX: &str = "data/";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Scenario {
    P1,
    P2,
    P5,
}

impl Scenario {
    fn parse(s: &str) -> Option<Scenario> {
        match s {
            "p1" => Some(Scenario::P1),
            "p2" => Some(Scenario::P2),
            "p5" => Some(Scenario::P5),
            _ => None,
        }
    }
    fn two_servers(self) -> bool {
        self == Scenario::P2
    }
}

#[derive(Clone, Debug)]
struct Opts {
    sc: Scenario,
    objects: usize,
    size: u64,
    concurrency: usize,
    verify: Verify,
    large_concurrency: usize,
    parts_in_flight: usize,
    part_size: Option<u64>,
    copy_object_max: Option<u64>,
    runs: usize,
    timeout: Duration,
    label: Option<String>,
    tool: String,
    command: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: engine-bench <p1|p2|p5> [opts]\n       engine-bench peer <p1|p2|p5> --tool NAME [opts] -- 'COMMAND'\n       \
         engine-bench serve <p1|p2|p5> [opts]\n       engine-bench table FILE\n\
         opts: --objects N --size BYTES[KiB|MiB|GiB] --concurrency C --verify none|size|etag|checksum\n      \
         --large-concurrency N --parts-in-flight N --part-size BYTES --copy-object-max BYTES\n      \
         --runs N --timeout SECS --label TEXT"
    );
    std::process::exit(2)
}

fn parse_bytes(s: &str) -> u64 {
    let (num, mul) = if let Some(n) = s.strip_suffix("GiB") {
        (n, 1024 * MIB)
    } else if let Some(n) = s.strip_suffix("MiB") {
        (n, MIB)
    } else if let Some(n) = s.strip_suffix("KiB") {
        (n, KIB)
    } else {
        (s, 1)
    };
    num.trim().parse::<u64>().unwrap_or_else(|_| usage()) * mul
}

fn parse(sc: Scenario, args: &[String]) -> Opts {
    let mut o = match sc {
        Scenario::P1 => Opts {
            sc,
            objects: 5000,
            size: 16 * KIB,
            concurrency: 64,
            verify: Verify::Size,
            large_concurrency: 4,
            parts_in_flight: 4,
            part_size: None,
            copy_object_max: None,
            runs: 1,
            timeout: Duration::from_secs(600),
            label: None,
            tool: "bucketmesh".into(),
            command: None,
        },
        Scenario::P2 => Opts {
            sc,
            objects: 8,
            size: 128 * MIB,
            concurrency: 8,
            verify: Verify::Checksum,
            large_concurrency: 4,
            parts_in_flight: 4,
            part_size: None,
            copy_object_max: None,
            runs: 1,
            timeout: Duration::from_secs(600),
            label: None,
            tool: "bucketmesh".into(),
            command: None,
        },
        Scenario::P5 => Opts {
            sc,
            objects: 4,
            size: 256 * MIB,
            concurrency: 4,
            verify: Verify::Size,
            large_concurrency: 4,
            parts_in_flight: 4,
            part_size: None,
            // Below the object size, so the 256 MiB objects go through UploadPartCopy (the
            // production default, 5 GiB, would use one CopyObject each).
            copy_object_max: Some(128 * MIB),
            runs: 1,
            timeout: Duration::from_secs(600),
            label: None,
            tool: "bucketmesh".into(),
            command: None,
        },
    };
    if let Some(t) = std::env::var("ENGINE_BENCH_TIMEOUT").ok().and_then(|v| v.parse().ok()) {
        o.timeout = Duration::from_secs(t);
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--objects" => o.objects = val().parse().unwrap_or_else(|_| usage()),
            "--size" => o.size = parse_bytes(&val()),
            "--concurrency" => o.concurrency = val().parse().unwrap_or_else(|_| usage()),
            "--verify" => {
                o.verify = val().parse().unwrap_or_else(|e: String| {
                    eprintln!("{e}");
                    usage()
                })
            }
            "--large-concurrency" => o.large_concurrency = val().parse().unwrap_or_else(|_| usage()),
            "--parts-in-flight" => o.parts_in_flight = val().parse().unwrap_or_else(|_| usage()),
            "--part-size" => o.part_size = Some(parse_bytes(&val())),
            "--copy-object-max" => o.copy_object_max = Some(parse_bytes(&val())),
            "--runs" => o.runs = val().parse().unwrap_or_else(|_| usage()),
            "--timeout" => o.timeout = Duration::from_secs(val().parse().unwrap_or_else(|_| usage())),
            "--label" => o.label = Some(val()),
            "--tool" => o.tool = val(),
            "--" => {
                let rest: Vec<String> = it.by_ref().cloned().collect();
                if rest.is_empty() {
                    usage()
                }
                o.command = Some(rest.join(" "));
            }
            _ => usage(),
        }
    }
    o
}

// ---------------------------------------------------------------- servers and stores

struct Setup {
    servers: Vec<SeaweedFs>,
    clients: S3Clients,
    src: Arc<dyn ObjectStore>,
    dst: Arc<dyn ObjectStore>,
}

impl Setup {
    fn src_endpoint(&self) -> String {
        self.servers[0].endpoint()
    }
    fn dst_endpoint(&self) -> String {
        self.servers.last().expect("a server").endpoint()
    }
}

fn spec(endpoint: &str, bucket: &str, prefix: &str) -> LocationSpec {
    LocationSpec::S3(S3LocationSpec {
        bucket: bucket.into(),
        prefix: prefix.into(),
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

async fn setup(sc: Scenario) -> Setup {
    let servers: Vec<SeaweedFs> = if sc.two_servers() {
        let a = SeaweedFs::builder().bucket("src").start().unwrap_or_else(|e| die(&e));
        let b = SeaweedFs::builder().bucket("dst").start().unwrap_or_else(|e| die(&e));
        vec![a, b]
    } else {
        vec![SeaweedFs::builder()
            .bucket("src")
            .bucket("dst")
            .start()
            .unwrap_or_else(|e| die(&e))]
    };
    let clients = S3Clients::new();
    let src = open_store(&spec(&servers[0].endpoint(), "src", ""), &clients)
        .await
        .unwrap_or_else(|e| die(&e.to_string()));
    let dst = open_store(&spec(&servers.last().unwrap().endpoint(), "dst", ""), &clients)
        .await
        .unwrap_or_else(|e| die(&e.to_string()));
    Setup {
        servers,
        clients,
        src,
        dst,
    }
}

fn die(msg: &str) -> ! {
    eprintln!("engine-bench: {msg}");
    std::process::exit(1)
}

fn key(i: usize) -> String {
    format!("{SRC_PREFIX}{i:06}")
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

/// Seeds `src/data/NNNNNN`: parallel PUTs through the engine's S3Store. Large bodies are
/// streamed in 1 MiB chunks sliced from one shared buffer at per-object offsets (different
/// content per object, little memory).
async fn seed(s: &Setup, o: &Opts) {
    let t = Instant::now();
    let pool = noise(2 * MIB as usize, 0x5eed);
    let par = if o.size >= 16 * MIB { 4 } else { 64 };
    let results: Vec<Result<(), String>> = stream::iter(0..o.objects)
        .map(|i| {
            let pool = pool.clone();
            let src = s.src.clone();
            let size = o.size;
            async move {
                let mut last = String::new();
                for _ in 0..5 {
                    match src
                        .put(&key(i), body(&pool, size, i), size, &WriteOptions::default())
                        .await
                    {
                        Ok(_) => return Ok(()),
                        Err(e) => last = e.to_string(),
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(format!("seed {}: {last}", key(i)))
            }
        })
        .buffer_unordered(par)
        .collect()
        .await;
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        die(&e);
    }
    println!(
        "seeded {} × {} in {:.1}s",
        o.objects,
        human_bytes(o.size),
        t.elapsed().as_secs_f64()
    );
}

/// The body of object `i`: `size` bytes in 1 MiB chunks sliced from `pool` (2 MiB) at offsets
/// that differ per object and chunk. A fresh one per attempt (a PUT consumes its body).
fn body(pool: &Bytes, size: u64, i: usize) -> Body {
    let mut chunks = Vec::new();
    let mut left = size;
    let mut n = 0u64;
    while left > 0 {
        let len = left.min(MIB);
        let off = ((i as u64 * 7919 + n * 104_729) % MIB) as usize;
        chunks.push(pool.slice(off..off + len as usize));
        left -= len;
        n += 1;
    }
    Box::pin(stream::iter(chunks.into_iter().map(Ok)))
}

// ---------------------------------------------------------------- measurements

fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `SeaweedFS_s3_request_total` summed by type (over buckets), and non-2xx answers by type+code.
#[derive(Clone, Debug, Default)]
struct Counters {
    by_type: BTreeMap<String, f64>,
    errors: BTreeMap<String, f64>,
}

fn label<'a>(labels: &'a str, name: &str) -> &'a str {
    labels
        .split(',')
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix("=\"")?.strip_suffix('"'))
        .unwrap_or("?")
}

fn counters(servers: &[SeaweedFs]) -> Counters {
    let mut c = Counters::default();
    for sw in servers {
        let text = http_get(sw.metrics_addr(), "/metrics").unwrap_or_else(|e| die(&format!("metrics: {e}")));
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("SeaweedFS_s3_request_total{") else {
                continue;
            };
            let Some((labels, val)) = rest.split_once('}') else {
                continue;
            };
            let v: f64 = val.trim().parse().unwrap_or(0.0);
            let ty = label(labels, "type").to_string();
            let code = label(labels, "code");
            *c.by_type.entry(ty.clone()).or_default() += v;
            if !code.starts_with('2') {
                *c.errors.entry(format!("{ty} {code}")).or_default() += v;
            }
        }
    }
    c
}

fn diff(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> BTreeMap<String, u64> {
    b.iter()
        .map(|(k, v)| (k.clone(), (v - a.get(k).copied().unwrap_or(0.0)).round() as u64))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn rusage(who: i32) -> libc::rusage {
    // SAFETY: getrusage fills the struct.
    unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut r);
        r
    }
}

fn cpu_secs(r: &libc::rusage) -> (f64, f64) {
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(r.ru_utime), t(r.ru_stime))
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); false when not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(-1.0)
}

fn human_bytes(n: u64) -> String {
    if n >= MIB && n % MIB == 0 {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n % KIB == 0 {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} B")
    }
}

/// Lists `dst/<prefix>` and checks every expected key is there with the right size.
async fn verify_listing(s: &Setup, o: &Opts, prefix: &str) -> (bool, String) {
    let mut found: BTreeMap<String, u64> = BTreeMap::new();
    let mut range = KeyRange {
        prefix: prefix.to_string(),
        start_after: None,
        end: None,
        path_order: false,
    };
    loop {
        match s.dst.list(&range, 1000).await {
            Ok(p) => {
                for obj in p.objects {
                    found.insert(obj.key, obj.size);
                }
                match p.next_start_after {
                    Some(k) => range.start_after = Some(k),
                    None => break,
                }
            }
            Err(e) => return (false, format!("listing dst/{prefix} failed: {e}")),
        }
    }
    let mut missing = 0;
    let mut wrong = 0;
    for i in 0..o.objects {
        let rel = key(i);
        let k = format!("{prefix}{}", rel.strip_prefix(SRC_PREFIX).unwrap());
        match found.get(&k) {
            None => missing += 1,
            Some(&sz) if sz != o.size => wrong += 1,
            _ => {}
        }
    }
    let extra = found.len() as i64 - (o.objects - missing) as i64;
    let ok = missing == 0 && wrong == 0 && extra == 0;
    (
        ok,
        format!(
            "{}/{} objects under dst/{prefix} with size {} ({missing} missing, {wrong} wrong size, {extra} unexpected)",
            o.objects - missing - wrong,
            o.objects,
            o.size
        ),
    )
}

// ---------------------------------------------------------------- results

#[derive(Clone, Debug, Serialize, Deserialize)]
struct RunResult {
    scenario: Scenario,
    tool: String,
    label: Option<String>,
    run: usize,
    objects: usize,
    object_size: u64,
    concurrency: Option<usize>,
    wall_s: f64,
    objects_per_s: f64,
    mib_per_s: f64,
    cpu_user_s: f64,
    cpu_sys_s: f64,
    cpu_ms_per_object: f64,
    peak_rss_mib: f64,
    /// S3 requests (server metrics) by type during the copy.
    requests: BTreeMap<String, u64>,
    /// Non-2xx answers by "TYPE CODE".
    errors: BTreeMap<String, u64>,
    /// Engine only: the requests the engine counted itself, by class.
    engine_requests: Option<BTreeMap<String, u64>>,
    failed: u64,
    verified: bool,
    verify_detail: String,
    load_before: f64,
    load_after: f64,
    command: Option<String>,
}

impl RunResult {
    fn print(&self) {
        let n = self.objects as f64;
        println!(
            "{:?} {}{}: {} × {} in {:.2}s — {:.0} objects/s, {:.1} MiB/s",
            self.scenario,
            self.tool,
            self.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default(),
            self.objects,
            human_bytes(self.object_size),
            self.wall_s,
            self.objects_per_s,
            self.mib_per_s
        );
        println!(
            "  CPU {:.2}s user + {:.2}s sys = {:.3} ms/object; peak RSS {:.0} MiB; load {:.2} → {:.2}",
            self.cpu_user_s,
            self.cpu_sys_s,
            self.cpu_ms_per_object,
            self.peak_rss_mib,
            self.load_before,
            self.load_after
        );
        let per: Vec<String> = self
            .requests
            .iter()
            .map(|(k, v)| format!("{k} {v} ({:.3}/obj)", *v as f64 / n))
            .collect();
        println!("  server requests: {}", per.join(", "));
        if !self.errors.is_empty() {
            println!("  non-2xx answers: {:?}", self.errors);
        }
        if let Some(e) = &self.engine_requests {
            println!("  engine-counted requests: {e:?}");
        }
        if self.failed > 0 {
            println!("  FAILED objects: {}", self.failed);
        }
        println!(
            "  verify: {} {}",
            if self.verified { "OK" } else { "FAILED" },
            self.verify_detail
        );
        println!("RESULT {}", serde_json::to_string(self).expect("json"));
    }
}

// ---------------------------------------------------------------- the engine run

fn range_options(o: &Opts) -> RangeOptions {
    let mut copy = CopyOptions {
        verify: o.verify,
        parts_in_flight: o.parts_in_flight,
        ..CopyOptions::default()
    };
    if let Some(m) = o.copy_object_max {
        copy.copy_object_max = m;
    }
    if let Some(p) = o.part_size {
        copy.part_size = Some(p);
        copy.server_part_size = Some(p);
    }
    RangeOptions {
        copy,
        concurrency: o.concurrency,
        large_concurrency: o.large_concurrency,
        ..RangeOptions::default()
    }
}

async fn engine_run(s: &Setup, o: &Opts, run: usize) -> RunResult {
    let prefix = format!("r{run}/");
    let ropts = range_options(o);
    let range = KeyRange {
        prefix: SRC_PREFIX.into(),
        start_after: None,
        end: None,
        path_order: false,
    };
    let map = KeyMap::new(SRC_PREFIX, prefix.clone());
    let filter = Filter::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c0 = counters(&s.servers);
    let load_before = loadavg();
    let hwm_reset = reset_peak_rss();
    let r0 = rusage(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    let mut first_failures: Vec<String> = Vec::new();
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
                if first_failures.len() < 5 {
                    first_failures.push(format!("{}: {e}", out.key));
                }
            }
        },
    );
    let sum = match tokio::time::timeout(o.timeout, fut).await {
        Ok(Ok(sum)) => sum,
        Ok(Err(e)) => die(&format!("run_range: {e}")),
        Err(_) => die(&format!("run_range did not finish within {:?}", o.timeout)),
    };
    let wall = t0.elapsed().as_secs_f64();
    let r1 = rusage(libc::RUSAGE_SELF);
    let peak_kib = if hwm_reset {
        vm_hwm_kib().unwrap_or(0)
    } else {
        r1.ru_maxrss as u64
    };
    let load_after = loadavg();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c1 = counters(&s.servers);
    if let Some(e) = &sum.interrupted {
        println!("  INTERRUPTED: {e}");
    }
    for f in &first_failures {
        println!("  failure: {f}");
    }
    let (u0, s0) = cpu_secs(&r0);
    let (u1, s1) = cpu_secs(&r1);
    let (verified, detail) = verify_listing(s, o, &prefix).await;
    let n = o.objects as f64;
    RunResult {
        scenario: o.sc,
        tool: "bucketmesh".into(),
        label: o.label.clone(),
        run,
        objects: o.objects,
        object_size: o.size,
        concurrency: Some(o.concurrency),
        wall_s: wall,
        objects_per_s: sum.copied as f64 / wall,
        mib_per_s: sum.copied_bytes as f64 / MIB as f64 / wall,
        cpu_user_s: u1 - u0,
        cpu_sys_s: s1 - s0,
        cpu_ms_per_object: ((u1 - u0) + (s1 - s0)) * 1000.0 / n,
        peak_rss_mib: peak_kib as f64 / 1024.0,
        requests: diff(&c0.by_type, &c1.by_type),
        errors: diff(&c0.errors, &c1.errors),
        engine_requests: Some(
            sum.requests
                .classes()
                .iter()
                .filter(|(_, v)| *v > 0)
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        ),
        failed: sum.failed,
        verified: verified && sum.failed == 0 && sum.copied as usize == o.objects,
        verify_detail: format!(
            "{detail}; engine: copied {} (server-side {}, streamed {}), failed {}",
            sum.copied, sum.server_side, sum.streamed, sum.failed
        ),
        load_before,
        load_after,
        command: None,
    }
}

// ---------------------------------------------------------------- a peer run

async fn peer_run(s: &Setup, o: &Opts, run: usize) -> RunResult {
    let cmd = o.command.clone().unwrap_or_else(|| usage());
    let prefix = format!("r{run}");
    let safe: String = o
        .tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let log = std::env::temp_dir().join(format!("engine-bench-{safe}-{}.log", std::process::id()));
    let logf = std::fs::File::create(&log).unwrap_or_else(|e| die(&format!("log: {e}")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c0 = counters(&s.servers);
    let load_before = loadavg();
    let t0 = Instant::now();
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(&cmd)
        .env("SRC_ENDPOINT", s.src_endpoint())
        .env("DST_ENDPOINT", s.dst_endpoint())
        .env("DST_PREFIX", &prefix)
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
    // wait4 gives the child's own rusage (CPU, max RSS), including its waited-for children.
    let mut killed = false;
    let (status, ru) = loop {
        let mut st = 0;
        // SAFETY: wait4 on our own child with a zeroed rusage.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut st, libc::WNOHANG, &mut ru) };
        if r == pid {
            break (st, ru);
        }
        if r < 0 {
            die(&format!("wait4: {}", std::io::Error::last_os_error()));
        }
        if !killed && t0.elapsed() > o.timeout {
            killed = true;
            // SAFETY: killing the process group we created.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            println!("  TIMEOUT after {:?}: killed", o.timeout);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let wall = t0.elapsed().as_secs_f64();
    std::mem::forget(child);
    let load_after = loadavg();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c1 = counters(&s.servers);
    let ok_exit = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok_exit {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        println!("  command failed (status {status}); log {} tail:", log.display());
        for l in tail.iter().rev() {
            println!("    {l}");
        }
    } else {
        let _ = std::fs::remove_file(&log);
    }
    let (u, sy) = cpu_secs(&ru);
    let (verified, detail) = verify_listing(s, o, &format!("{prefix}/")).await;
    let n = o.objects as f64;
    RunResult {
        scenario: o.sc,
        tool: o.tool.clone(),
        label: o.label.clone(),
        run,
        objects: o.objects,
        object_size: o.size,
        concurrency: None,
        wall_s: wall,
        objects_per_s: n / wall,
        mib_per_s: n * o.size as f64 / MIB as f64 / wall,
        cpu_user_s: u,
        cpu_sys_s: sy,
        cpu_ms_per_object: (u + sy) * 1000.0 / n,
        peak_rss_mib: ru.ru_maxrss as f64 / 1024.0,
        requests: diff(&c0.by_type, &c1.by_type),
        errors: diff(&c0.errors, &c1.errors),
        engine_requests: None,
        failed: if ok_exit { 0 } else { 1 },
        verified: verified && ok_exit,
        verify_detail: detail,
        load_before,
        load_after,
        command: Some(cmd),
    }
}

// ---------------------------------------------------------------- table

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn table(path: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    let mut rows: Vec<RunResult> = Vec::new();
    for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
        if let Some(j) = line.strip_prefix("RESULT ") {
            match serde_json::from_str(j) {
                Ok(r) => rows.push(r),
                Err(e) => eprintln!("skipping a RESULT line: {e}"),
            }
        }
    }
    // Group runs of the same (scenario, tool, label); medians over runs.
    let mut groups: Vec<((Scenario, String, Option<String>), Vec<RunResult>)> = Vec::new();
    for r in rows {
        let k = (r.scenario, r.tool.clone(), r.label.clone());
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(r),
            None => groups.push((k, vec![r])),
        }
    }
    println!("| scenario | tool | runs | wall (median) | objects/s | MiB/s | CPU user+sys | CPU ms/object | peak RSS | S3 requests per object (server) | verified | load 1m |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for ((sc, tool, label), runs) in &groups {
        let m = |f: fn(&RunResult) -> f64| median(runs.iter().map(f).collect());
        let first = &runs[0];
        let n = first.objects as f64;
        // requests of the median-wall run
        let mut by_wall: Vec<&RunResult> = runs.iter().collect();
        by_wall.sort_by(|a, b| a.wall_s.partial_cmp(&b.wall_s).unwrap());
        let mid = by_wall[by_wall.len() / 2];
        let reqs: Vec<String> = mid
            .requests
            .iter()
            .map(|(k, v)| {
                let per = *v as f64 / n;
                if per >= 0.1 {
                    format!("{k} {per:.2}")
                } else {
                    format!("{k} {v} total")
                }
            })
            .collect();
        let errs = if mid.errors.is_empty() {
            String::new()
        } else {
            format!(" (non-2xx: {:?})", mid.errors)
        };
        let loads: Vec<f64> = runs.iter().map(|r| r.load_before.max(r.load_after)).collect();
        let max_load = loads.iter().cloned().fold(0.0, f64::max);
        println!(
            "| {sc:?} {} × {} | {tool}{} | {} | {:.2} s | {:.0} | {:.1} | {:.2} s | {:.3} | {:.0} MiB | {}{errs} | {} | ≤ {max_load:.2} |",
            first.objects,
            human_bytes(first.object_size),
            label.as_deref().map(|l| format!(" ({l})")).unwrap_or_default(),
            runs.len(),
            m(|r| r.wall_s),
            m(|r| r.objects_per_s),
            m(|r| r.mib_per_s),
            m(|r| r.cpu_user_s + r.cpu_sys_s),
            m(|r| r.cpu_ms_per_object),
            m(|r| r.peak_rss_mib),
            reqs.join(", "),
            if runs.iter().all(|r| r.verified) {
                "yes".to_string()
            } else {
                format!("NO ({}/{} runs)", runs.iter().filter(|r| r.verified).count(), runs.len())
            },
        );
    }
}

// ---------------------------------------------------------------- main

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { usage() };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match cmd.as_str() {
        "table" => table(args.get(1).unwrap_or_else(|| usage())),
        "peer" | "serve" => {
            let sc = args.get(1).and_then(|s| Scenario::parse(s)).unwrap_or_else(|| usage());
            let o = parse(sc, &args[2..]);
            rt.block_on(async {
                let s = setup(sc).await;
                seed(&s, &o).await;
                if cmd == "serve" {
                    println!("SRC_ENDPOINT={} (bucket src, keys {SRC_PREFIX}*)", s.src_endpoint());
                    println!("DST_ENDPOINT={} (bucket dst)", s.dst_endpoint());
                    for sw in &s.servers {
                        println!("metrics: http://{}/metrics", sw.metrics_addr());
                    }
                    println!("(close stdin to stop)");
                    let mut sink = String::new();
                    let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_to_string(&mut sink)).await;
                    return;
                }
                if o.command.is_none() {
                    usage()
                }
                for run in 1..=o.runs {
                    peer_run(&s, &o, run).await.print();
                }
                drop(s.clients);
            });
        }
        other => {
            let sc = Scenario::parse(other).unwrap_or_else(|| usage());
            let o = parse(sc, &args[1..]);
            rt.block_on(async {
                let s = setup(sc).await;
                seed(&s, &o).await;
                for run in 1..=o.runs {
                    engine_run(&s, &o, run).await.print();
                }
            });
        }
    }
}
