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
//!       --multipart-threshold BYTES
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
use std::io::Read;
use std::time::Duration;

use mesh_engine::verify::Verify;
use mesh_tests::bench::report::{self, HumanBytes};
use mesh_tests::bench::run::{engine_copy, peer_copy, EngineOptions};
use mesh_tests::bench::seed::{self, Servers};
use mesh_tests::bench::{die, help, parse_bytes, KIB, MIB};
use serde::{Deserialize, Serialize};

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
    multipart_threshold: Option<u64>,
    copy_object_max: Option<u64>,
    runs: usize,
    timeout: Duration,
    label: Option<String>,
    tool: String,
    command: Option<String>,
}

const USAGE: &str =
    "usage: engine-bench <p1|p2|p5> [opts]\n       engine-bench peer <p1|p2|p5> --tool NAME [opts] -- 'COMMAND'\n       \
     engine-bench serve <p1|p2|p5> [opts]\n       engine-bench table FILE\n\
     opts: --objects N --size BYTES[KiB|MiB|GiB] --concurrency C --verify none|size|etag|checksum\n      \
     --large-concurrency N --parts-in-flight N --part-size BYTES --copy-object-max BYTES\n      --multipart-threshold BYTES\n      \
     --runs N --timeout SECS --label TEXT";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn bytes_arg(s: &str) -> u64 {
    parse_bytes(s).unwrap_or_else(|| usage())
}

fn parse(sc: Scenario, args: &[String]) -> Opts {
    let (objects, size, concurrency, verify) = match sc {
        Scenario::P1 => (5000, 16 * KIB, 64, Verify::Size),
        Scenario::P2 => (8, 128 * MIB, 8, Verify::Checksum),
        Scenario::P5 => (4, 256 * MIB, 4, Verify::Size),
    };
    let mut o = Opts {
        sc,
        objects,
        size,
        concurrency,
        verify,
        large_concurrency: 4,
        parts_in_flight: 4,
        part_size: None,
        multipart_threshold: None,
        // P5: below the object size, so the 256 MiB objects go through UploadPartCopy (the
        // production default, 5 GiB, would use one CopyObject each).
        copy_object_max: (sc == Scenario::P5).then_some(128 * MIB),
        runs: 1,
        timeout: Duration::from_secs(600),
        label: None,
        tool: "bucketmesh".into(),
        command: None,
    };
    if let Some(t) = std::env::var("ENGINE_BENCH_TIMEOUT").ok().and_then(|v| v.parse().ok()) {
        o.timeout = Duration::from_secs(t);
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--objects" => o.objects = val().parse().unwrap_or_else(|_| usage()),
            "--size" => o.size = bytes_arg(&val()),
            "--concurrency" => o.concurrency = val().parse().unwrap_or_else(|_| usage()),
            "--verify" => {
                o.verify = val().parse().unwrap_or_else(|e: String| {
                    eprintln!("{e}");
                    usage()
                })
            }
            "--large-concurrency" => o.large_concurrency = val().parse().unwrap_or_else(|_| usage()),
            "--parts-in-flight" => o.parts_in_flight = val().parse().unwrap_or_else(|_| usage()),
            "--part-size" => o.part_size = Some(bytes_arg(&val())),
            "--multipart-threshold" => o.multipart_threshold = Some(bytes_arg(&val())),
            "--copy-object-max" => o.copy_object_max = Some(bytes_arg(&val())),
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

// ---------------------------------------------------------------- seeding and checking

/// Seeds `src/data/NNNNNN` with parallel PUTs (4 at once for objects of 16 MiB or more, else 64).
async fn seed(s: &Servers, o: &Opts) {
    let par = if o.size >= 16 * MIB { 4 } else { 64 };
    let took = seed::put_objects(&s.src, SRC_PREFIX, o.objects, o.size, par).await;
    println!(
        "seeded {} × {} in {:.1}s",
        o.objects,
        HumanBytes(o.size),
        took.as_secs_f64()
    );
}

/// Lists `dst/<prefix>` and checks every expected key is there with the right size.
async fn verify_listing(s: &Servers, o: &Opts, prefix: &str) -> (bool, String) {
    let found: BTreeMap<String, u64> = match seed::list_all(s.dst.as_ref(), prefix).await {
        Ok(v) => v.into_iter().map(|obj| (obj.key, obj.size)).collect(),
        Err(e) => return (false, format!("dst/{prefix}: {e}")),
    };
    let mut missing = 0;
    let mut wrong = 0;
    for i in 0..o.objects {
        match found.get(&seed::object_key(prefix, i)) {
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
        println!(
            "{:?} {}{}: {} × {} in {:.2}s — {:.0} objects/s, {:.1} MiB/s",
            self.scenario,
            self.tool,
            self.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default(),
            self.objects,
            HumanBytes(self.object_size),
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
        report::print_requests(&self.requests, &self.errors, self.objects as f64);
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
        report::print_result(self);
    }
}

// ---------------------------------------------------------------- the engine run

async fn engine_run(s: &Servers, o: &Opts, run: usize) -> RunResult {
    let prefix = format!("r{run}/");
    let eo = EngineOptions {
        verify: o.verify,
        concurrency: o.concurrency,
        large_concurrency: o.large_concurrency,
        parts_in_flight: o.parts_in_flight,
        part_size: o.part_size,
        multipart_threshold: o.multipart_threshold,
        copy_object_max: o.copy_object_max,
    };
    let e = engine_copy(s, SRC_PREFIX, &prefix, &eo, o.timeout).await;
    let sum = e.summary.unwrap_or_else(|err| die(&err));
    if let Some(err) = &sum.interrupted {
        println!("  INTERRUPTED: {err}");
    }
    for f in &e.failures {
        println!("  failure: {f}");
    }
    let (verified, detail) = verify_listing(s, o, &prefix).await;
    let (w, n) = (&e.window, o.objects as f64);
    RunResult {
        scenario: o.sc,
        tool: "bucketmesh".into(),
        label: o.label.clone(),
        run,
        objects: o.objects,
        object_size: o.size,
        concurrency: Some(o.concurrency),
        wall_s: w.wall_s,
        objects_per_s: sum.copied as f64 / w.wall_s,
        mib_per_s: report::mib_per_s(sum.copied_bytes as f64, w.wall_s),
        cpu_user_s: e.cpu.user_s,
        cpu_sys_s: e.cpu.sys_s,
        cpu_ms_per_object: e.cpu.total() * 1000.0 / n,
        peak_rss_mib: e.peak_rss_mib,
        requests: w.requests.by_type.clone(),
        errors: w.requests.errors.clone(),
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
        load_before: w.load_before,
        load_after: w.load_after,
        command: None,
    }
}

// ---------------------------------------------------------------- a peer run

async fn peer_run(s: &Servers, o: &Opts, run: usize) -> RunResult {
    let cmd = o.command.clone().unwrap_or_else(|| usage());
    let prefix = format!("r{run}");
    let p = peer_copy(s, &o.tool, &cmd, &[("DST_PREFIX", &prefix)], o.timeout).await;
    let ok_exit = p.usage.success();
    let (verified, detail) = verify_listing(s, o, &format!("{prefix}/")).await;
    let (w, n) = (&p.window, o.objects as f64);
    RunResult {
        scenario: o.sc,
        tool: o.tool.clone(),
        label: o.label.clone(),
        run,
        objects: o.objects,
        object_size: o.size,
        concurrency: None,
        wall_s: w.wall_s,
        objects_per_s: n / w.wall_s,
        mib_per_s: report::mib_per_s(n * o.size as f64, w.wall_s),
        cpu_user_s: p.usage.cpu.user_s,
        cpu_sys_s: p.usage.cpu.sys_s,
        cpu_ms_per_object: p.usage.cpu.total() * 1000.0 / n,
        peak_rss_mib: p.peak_rss_mib(),
        requests: w.requests.by_type.clone(),
        errors: w.requests.errors.clone(),
        engine_requests: None,
        failed: if ok_exit { 0 } else { 1 },
        verified: verified && ok_exit,
        verify_detail: detail,
        load_before: w.load_before,
        load_after: w.load_after,
        command: Some(cmd),
    }
}

// ---------------------------------------------------------------- table

fn table(path: &str) {
    let rows: Vec<RunResult> = report::read_results(path);
    // Group runs of the same (scenario, tool, label); medians over runs.
    let groups = report::group_by(rows, |r| (r.scenario, r.tool.clone(), r.label.clone()));
    println!("| scenario | tool | runs | wall (median) | objects/s | MiB/s | CPU user+sys | CPU ms/object | peak RSS | S3 requests per object (server) | verified | load 1m |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for ((sc, tool, label), runs) in &groups {
        let m = |f: fn(&RunResult) -> f64| report::median(runs.iter().map(f).collect());
        let first = &runs[0];
        let n = first.objects as f64;
        // requests of the median-wall run
        let mid = report::median_run(runs, |r| r.wall_s);
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
        let max_load = report::max_load(runs.iter().map(|r| (r.load_before, r.load_after)));
        println!(
            "| {sc:?} {} × {} | {tool}{} | {} | {:.2} s | {:.0} | {:.1} | {:.2} s | {:.3} | {:.0} MiB | {}{errs} | {} | ≤ {max_load:.2} |",
            first.objects,
            HumanBytes(first.object_size),
            label.as_deref().map(|l| format!(" ({l})")).unwrap_or_default(),
            runs.len(),
            m(|r| r.wall_s),
            m(|r| r.objects_per_s),
            m(|r| r.mib_per_s),
            m(|r| r.cpu_user_s + r.cpu_sys_s),
            m(|r| r.cpu_ms_per_object),
            m(|r| r.peak_rss_mib),
            reqs.join(", "),
            report::verified_cell(runs.iter().filter(|r| r.verified).count(), runs.len()),
        );
    }
}

// ---------------------------------------------------------------- main

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    help(&args, USAGE);
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
            if cmd == "peer" && o.command.is_none() {
                usage()
            }
            rt.block_on(async {
                let s = Servers::start(sc.two_servers()).await;
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
                let s = Servers::start(sc.two_servers()).await;
                seed(&s, &o).await;
                for run in 1..=o.runs {
                    engine_run(&s, &o, run).await.print();
                }
            });
        }
    }
}
