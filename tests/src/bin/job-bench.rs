//! job-bench: distributed copy jobs (issue 4) through a real mesh, measured from the outside
//! (not run in CI). Prints, never asserts.
//!
//! ```text
//! job-bench p1 [--nodes 1,3] [--task-objects 1000,500] [--runs 3] [--objects 5000] [--size 16KiB]
//!              [--engine-concurrency 64] [--tools rclone,aws] [--rtt-ms 30] [--s5cmd PATH] [--timeout SECS]
//! job-bench p2 [--nodes 1,3] [--runs 3] [--objects 8] [--size 128MiB] [--tools mesh,rclone,engine]
//!              [--mesh-verify checksum] [--rclone PATH] [--timeout SECS]
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
//!   hits all alike): the engine in-process (`ops::run_range`, as `engine-bench p1`), s5cmd,
//!   rclone and aws-cli when `--tools` names them, and
//!   for each mesh and each `job.copy_task_objects` value `meshctl cp src:data/ dst:PREFIX/
//!   --wait`. Wall time = the meshctl process (submit + `--wait`, which polls every 500 ms); job
//!   time = the job's own `ended_at_ms − created_at_ms`.
//!   With `--rtt-ms N` (P4) every client reaches the server through a userspace delay proxy
//!   (`FaultProxy::set_delay`, N/2 ms each way).
//! - **p2**: two SeaweedFS servers; `--objects` × `--size` (8 × 128 MiB) under `src/data/` on the
//!   first, streamed to the second by the engine in-process (verify checksum, concurrency 8),
//!   rclone (`copy --transfers 8 --checkers 16`) and `meshctl cp --verify checksum --wait` on each
//!   mesh; every round runs them back to back.
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
//! - **plan** (P6 with `--files 1000000`): `--files` tiny files (100 folders, made once under
//!   `~/.cache/bucketmesh/bench-files-N` and reused) as an fs location, copied by `cp` to another
//!   fs location on a mesh; the source's own LIST rate (the engine's fs store, 1,000 keys per
//!   page), time to the first file at the destination, to the end of the listing
//!   (`objects_total` reaches the count), to the end; peak RSS (VmHWM) per meshd, the sled dir
//!   (`du -sb <data-dir>/db`) before, at its peak while running and after, the snapshots the
//!   nodes built (`built snapshot … bytes=N` in their logs), the Raft entries the job cost, and
//!   the whole report fetched with `meshctl job report` (lines, bytes, time).
//!
//! Every run prints a report and a `RESULT {json}` line; `job-bench table FILE` summarizes them.
//! `JOB_BENCH_TRACE=1` prints the job's counters every 500 ms while a mesh run waits.
//! The load average is printed with every number. See tests/bench/README.md and
//! docs/benchmarks.md ("Distributed jobs (issue 4)").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mesh_proto::v1::{self as pb, GetJobRequest, JobOp, JobSpec, ReadConsistency, SubmitJobRequest};
use mesh_tests::bench::measure::{self, disk_avail, loadavg, uptime_line};
use mesh_tests::bench::report::{self, median, HumanBytes};
use mesh_tests::bench::run::{engine_copy, peer_copy, EngineOptions, Window};
use mesh_tests::bench::seed::{self, Servers};
use mesh_tests::bench::{die, help, parse_bytes, parse_list, GIB, KIB, MIB};
use mesh_tests::{ProcOutput, TestCluster};
use prost::Message;
use serde::{Deserialize, Serialize};

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
    rclone: String,
    /// p1: a delay proxy in front of the server adding this round trip (P4).
    rtt_ms: Option<u64>,
}

const USAGE: &str =
    "usage: job-bench p1 [--nodes 1,3] [--task-objects 1000,500] [--runs 3] [--objects N] [--size 16KiB]\n\
     \x20                   [--engine-concurrency 64] [--tools rclone,aws] [--rtt-ms 30] [--s5cmd PATH] [--timeout SECS]\n\
     \x20      job-bench p2 [--nodes 1,3] [--runs 3] [--objects 8] [--size 128MiB] [--tools mesh,rclone,engine]\n\
     \x20                   [--mesh-verify checksum] [--rclone PATH] [--timeout SECS]\n\
     \x20      job-bench p5 [--nodes 3,1] [--size 6GiB] [--split 1GiB] [--seed-part-size 8MiB] [--tools mesh,aws,engine]\n\
     \x20                   [--mesh-verify none|size|etag|checksum] [--aws PATH] [--timeout SECS]\n\
     \x20      job-bench latency [--nodes 1,3] [--jobs 10] [--timeout SECS]\n\
     \x20      job-bench plan [--nodes 3] [--files 100000] [--snapshot-every N] [--timeout SECS]\n\
     \x20      job-bench table FILE";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn bytes_arg(s: &str) -> u64 {
    parse_bytes(s).unwrap_or_else(|| usage())
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    parse_list(s).unwrap_or_else(|| usage())
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
        rclone: std::env::var("RCLONE").unwrap_or_else(|_| "rclone".into()),
        rtt_ms: None,
    };
    if cmd == "p1" {
        o.tools = vec!["mesh".into(), "engine".into()];
    }
    if cmd == "p2" {
        o.objects = 8;
        o.tools = vec!["mesh".into(), "rclone".into(), "engine".into()];
        o.mesh_verify = Some("checksum".into());
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--nodes" => o.nodes = list(&val()),
            "--task-objects" => o.task_objects = list(&val()),
            "--runs" => o.runs = val().parse().unwrap_or_else(|_| usage()),
            "--objects" => o.objects = val().parse().unwrap_or_else(|_| usage()),
            "--size" => o.size = Some(bytes_arg(&val())),
            "--engine-concurrency" => o.engine_concurrency = val().parse().unwrap_or_else(|_| usage()),
            "--seed-part-size" => o.seed_part_size = bytes_arg(&val()),
            "--tools" => o.tools = val().split(',').map(|s| s.trim().to_string()).collect(),
            "--jobs" => o.jobs = val().parse().unwrap_or_else(|_| usage()),
            "--files" => o.files = val().parse().unwrap_or_else(|_| usage()),
            "--snapshot-every" => o.snapshot_every = Some(val().parse().unwrap_or_else(|_| usage())),
            "--timeout" => o.timeout = Duration::from_secs(val().parse().unwrap_or_else(|_| usage())),
            "--split" => o.split = val(),
            "--mesh-verify" => o.mesh_verify = Some(val()),
            "--s5cmd" => o.s5cmd = val(),
            "--aws" => o.aws = val(),
            "--rclone" => o.rclone = val(),
            "--rtt-ms" => o.rtt_ms = Some(val().parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    o
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

// ---------------------------------------------------------------- SeaweedFS

fn start_server(rt: &tokio::runtime::Runtime) -> Servers {
    let s = rt.block_on(Servers::start(false));
    println!(
        "SeaweedFS at {} (metrics {})",
        s.src_endpoint(),
        s.first().metrics_addr()
    );
    s
}

/// Seeds `prefix` + NNNNNN, `n` objects of `size`, 64 PUTs at once.
fn seed_small(rt: &tokio::runtime::Runtime, s: &Servers, prefix: &str, n: usize, size: u64) {
    let took = rt.block_on(seed::put_objects(&s.src, prefix, n, size, 64));
    println!(
        "seeded {n} × {} under src/{prefix} in {:.1}s",
        HumanBytes(size),
        took.as_secs_f64()
    );
}

/// Seeds one object by multipart upload in `part` parts, 8 at once.
fn seed_big(rt: &tokio::runtime::Runtime, s: &Servers, key: &str, size: u64, part: u64) {
    let (took, n) = rt.block_on(seed::put_multipart(&s.src, key, size, part));
    let secs = took.as_secs_f64();
    println!(
        "seeded src/{key}: {} in {n} parts of {} in {secs:.1}s ({}/s)",
        HumanBytes(size),
        HumanBytes(part),
        HumanBytes((size as f64 / secs) as u64)
    );
}

/// Lists `prefix` of `store`: (objects, bytes, how many have `size`), ignoring `.bucketmesh/`.
fn listing(rt: &tokio::runtime::Runtime, s: &Servers, prefix: &str, size: u64) -> (u64, u64, u64) {
    let Ok(objects) = rt.block_on(seed::list_all(s.dst.as_ref(), prefix)) else {
        return (0, 0, 0);
    };
    let (mut n, mut bytes, mut right) = (0, 0, 0);
    for o in objects.iter().filter(|o| !o.key.contains(".bucketmesh/")) {
        n += 1;
        bytes += o.size;
        right += (o.size == size) as u64;
    }
    (n, bytes, right)
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
        c.wait_active(n, Duration::from_secs(60));
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
        let mut cmd = self.c.ctl_command(self.via, &self.c.token());
        cmd.args(["-o", "json"]).args(args);
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
        self.add_s3_pair(endpoint, endpoint);
    }

    /// Credential `bench`, location `src` (bucket `src`) at `src_endpoint` and `dst` (bucket
    /// `dst`) at `dst_endpoint`.
    fn add_s3_pair(&self, src_endpoint: &str, dst_endpoint: &str) {
        self.ok(
            &["credential", "add", "bench", "--access-key-id", "bench"],
            &[("MESH_SECRET_ACCESS_KEY", "bench-secret")],
        );
        for (name, bucket, endpoint) in [("src", "src", src_endpoint), ("dst", "dst", dst_endpoint)] {
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
        self.pids().into_iter().map(measure::proc_cpu_s).sum()
    }

    fn hwm_mib(&self) -> Vec<f64> {
        self.pids()
            .into_iter()
            .map(|p| measure::peak_rss_mib(&p.to_string()))
            .collect()
    }

    fn db_sizes(&self) -> Vec<u64> {
        (0..self.n)
            .map(|i| measure::du_sb(&self.c.node(i).data_dir.join("db")))
            .collect()
    }

    fn commit_index(&self) -> u64 {
        self.c.status(self.via).map(|s| s.commit_index).unwrap_or(0)
    }

    fn get(&self, id: &str) -> Option<pb::JobView> {
        let mut cl = self.client.clone();
        self.c
            .rt()
            .block_on(get_job(&mut cl, id, ReadConsistency::Linearizable))
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

/// `JobService.Submit`: the new job.
async fn submit(cl: &mut meshctl::client::Clients, spec: JobSpec) -> Result<pb::Job, String> {
    cl.job
        .submit(SubmitJobRequest { spec: Some(spec) })
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .job
        .ok_or_else(|| "no job".to_string())
}

/// `JobService.Get` of job `id` (None when it fails).
async fn get_job(cl: &mut meshctl::client::Clients, id: &str, consistency: ReadConsistency) -> Option<pb::JobView> {
    let req = GetJobRequest {
        id: id.to_string(),
        consistency: consistency as i32,
    };
    cl.job.get(req).await.ok().and_then(|r| r.into_inner().job)
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
            HumanBytes(self.bytes),
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
        report::print_requests(&self.requests, &self.errors, self.objects.max(1) as f64);
        println!(
            "  {}: {}",
            if self.verified { "verified" } else { "NOT VERIFIED" },
            self.detail
        );
        report::print_result(self);
    }
}

// ---------------------------------------------------------------- runs

/// What the measured copies of a scenario share.
struct Ctx<'a> {
    rt: &'a tokio::runtime::Runtime,
    s: &'a Servers,
    /// `P1`, `P5`.
    scenario: &'static str,
    /// Per copy.
    timeout: Duration,
}

/// One copy: from `src/src_path` to `dst/dst_prefix`, `objects` of `size`, in round `run`.
struct Target<'a> {
    src_path: &'a str,
    dst_prefix: &'a str,
    objects: u64,
    size: u64,
    run: usize,
}

impl<'a> Target<'a> {
    fn new(src_path: &'a str, dst_prefix: &'a str, objects: u64, size: u64, run: usize) -> Target<'a> {
        Target {
            src_path,
            dst_prefix,
            objects,
            size,
            run,
        }
    }
}

impl Ctx<'_> {
    /// The fields every copier's row has.
    fn row(&self, t: &Target, tool: String, label: String, w: &Window) -> Row {
        Row {
            scenario: self.scenario.into(),
            tool,
            label,
            nodes: 0,
            run: t.run,
            objects: t.objects,
            bytes: t.objects * t.size,
            wall_s: w.wall_s,
            job_s: None,
            objects_per_s: t.objects as f64 / w.wall_s,
            mib_per_s: report::mib_per_s((t.objects * t.size) as f64, w.wall_s),
            cpu_s: 0.0,
            peak_rss_mib: Vec::new(),
            requests: w.requests.by_type.clone(),
            errors: w.requests.errors.clone(),
            verified: false,
            detail: String::new(),
            load_before: w.load_before,
            load_after: w.load_after,
        }
    }

    /// `dst/<prefix>` after a copy: (objects, bytes, how many have the right size), and the
    /// detail line's start.
    fn check(&self, t: &Target) -> (u64, u64, String) {
        let (n, b, right) = listing(self.rt, self.s, t.dst_prefix, t.size);
        let detail = format!(
            "{n}/{} objects under dst/{} ({right} with size {}, {b} bytes)",
            t.objects, t.dst_prefix, t.size
        );
        (n, right, detail)
    }
}

/// The engine in-process, as `engine-bench`: `run_range(Copy)` (verify size, large
/// concurrency 4).
fn engine_run(cx: &Ctx, t: &Target, concurrency: usize, copy_object_max: Option<u64>) -> Row {
    let eo = EngineOptions {
        concurrency,
        copy_object_max,
        ..EngineOptions::default()
    };
    engine_run_with(cx, t, eo)
}

fn engine_run_with(cx: &Ctx, t: &Target, eo: EngineOptions) -> Row {
    let (concurrency, copy_object_max) = (eo.concurrency, eo.copy_object_max);
    let e = cx
        .rt
        .block_on(engine_copy(cx.s, t.src_path, t.dst_prefix, &eo, cx.timeout));
    if let Err(err) = &e.summary {
        println!("  {err}");
    }
    for f in &e.failures {
        println!("  failure: {f}");
    }
    let (n, right, detail) = cx.check(t);
    let copied = e.summary.as_ref().map(|s| s.copied).unwrap_or(0);
    let label = match copy_object_max {
        Some(m) => format!("in-process run_range, copy_object_max {}", HumanBytes(m)),
        None => format!("in-process run_range, concurrency {concurrency}"),
    };
    Row {
        objects_per_s: copied as f64 / e.window.wall_s,
        cpu_s: e.cpu.total(),
        peak_rss_mib: vec![e.peak_rss_mib],
        verified: n == t.objects && right == t.objects && copied == t.objects,
        detail: format!("{detail}; copied {copied}"),
        ..cx.row(t, "engine".into(), label, &e.window)
    }
}

/// A peer tool: `sh -c CMD` with SRC_ENDPOINT / dummy AWS keys in its environment.
fn peer_run(cx: &Ctx, t: &Target, tool: &str, cmd: &str) -> Row {
    let p = cx.rt.block_on(peer_copy(cx.s, tool, cmd, &[], cx.timeout));
    let ok = p.usage.success();
    let (n, right, detail) = cx.check(t);
    Row {
        cpu_s: p.usage.cpu.total(),
        peak_rss_mib: vec![p.peak_rss_mib()],
        verified: ok && n == t.objects && right == t.objects,
        detail: format!("{detail}; `{cmd}`"),
        ..cx.row(t, tool.into(), String::new(), &p.window)
    }
}

/// `meshctl cp src:SRC dst:DST --wait` on a mesh.
fn mesh_run(cx: &Ctx, t: &Target, m: &Mesh, label: &str) -> Row {
    let rt = cx.rt;
    let start = rt.block_on(Window::begin(cx.s));
    let cpu0 = m.cpu_s();
    // JOB_BENCH_TRACE=1: print the newest job's progress every 500 ms while meshctl waits.
    let trace = std::env::var("JOB_BENCH_TRACE").is_ok_and(|v| v == "1").then(|| {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let h = rt.spawn(trace_job(m.client.clone(), stop.clone()));
        (stop, h)
    });
    let (wall, out, id) = m.cp_wait(
        &format!("src:{}", t.src_path),
        &format!("dst:{}", t.dst_prefix),
        cx.timeout,
    );
    if let Some((stop, h)) = trace {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = rt.block_on(h);
    }
    let cpu = m.cpu_s() - cpu0;
    let w = rt.block_on(start.end(cx.s, wall));
    if !out.success() {
        println!("  meshctl cp failed: {}", out.describe());
    }
    let view = id.as_deref().and_then(|id| m.get(id));
    let job = view.as_ref().and_then(|v| v.job.clone()).unwrap_or_default();
    let c = job.counters.unwrap_or_default();
    let job_s = (job.ended_at_ms > 0).then(|| (job.ended_at_ms - job.created_at_ms) as f64 / 1000.0);
    let (planning, running, verifying) = event_times(&job, job.created_at_ms);
    let runs = id.as_deref().map(|id| m.task_runs(id)).unwrap_or_default();
    let (n, right, detail) = cx.check(t);
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
        nodes: m.n,
        job_s,
        objects_per_s: c.objects_done as f64 / wall,
        mib_per_s: report::mib_per_s(c.bytes_done as f64, wall),
        cpu_s: cpu,
        peak_rss_mib: m.hwm_mib(),
        verified: out.success() && n == t.objects && right == t.objects && c.objects_done == t.objects,
        detail: format!(
            "{detail}; job {} {}: done {}, failed {}, recopied {}",
            job.id,
            mesh_proto::names::job_state(job.state),
            c.objects_done,
            c.objects_failed,
            job.recopied
        ),
        ..cx.row(t, format!("mesh {}n", m.n), label.into(), &w)
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

/// One copier of a scenario's round: the engine in-process, a peer tool, or mesh `i` (with its
/// `job.copy_task_objects`, in p1).
#[derive(Clone, Copy)]
enum Copier {
    Engine,
    S5cmd,
    Rclone,
    Aws,
    Mesh(usize, Option<u32>),
}

/// The copiers of round `run` (from 1): each round runs every copier once, starting one further
/// along the list, so the server's state (it grows with every copy) and the load drift favour
/// nobody.
fn rotated(copiers: &[Copier], run: usize) -> Vec<Copier> {
    let mut order = copiers.to_vec();
    let len = order.len().max(1);
    order.rotate_left((run - 1) % len);
    order
}

/// A copy of `n` objects of `size` from `src/data/` to `dst/<prefix>` in round `run`.
fn target(prefix: &str, n: u64, size: u64, run: usize) -> Target<'_> {
    Target::new("data/", prefix, n, size, run)
}

fn p1(o: &Opts, rt: &tokio::runtime::Runtime) {
    let size = o.size.unwrap_or(16 * KIB);
    let n = o.objects as u64;
    let s = match o.rtt_ms {
        Some(ms) => {
            let s = rt.block_on(Servers::start_delayed(Duration::from_millis(ms)));
            println!(
                "SeaweedFS at {} behind a {ms} ms round-trip delay proxy at {}",
                s.first().endpoint(),
                s.src_endpoint()
            );
            s
        }
        None => start_server(rt),
    };
    seed_small(rt, &s, "data/", o.objects, size);
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
            m.add_s3(&s.src_endpoint());
            m
        })
        .collect();
    let cx = Ctx {
        rt,
        s: &s,
        scenario: "P1",
        timeout: o.timeout,
    };
    let mut copiers = vec![Copier::Engine, Copier::S5cmd];
    if o.tools.iter().any(|t| t == "rclone") {
        copiers.push(Copier::Rclone);
    }
    if o.tools.iter().any(|t| t == "aws") {
        copiers.push(Copier::Aws);
    }
    for (i, _) in meshes.iter().enumerate() {
        for &t in &o.task_objects {
            copiers.push(Copier::Mesh(i, Some(t)));
        }
    }
    for run in 1..=o.runs {
        println!("--- round {run} ({})", uptime_line());
        for c in rotated(&copiers, run) {
            match c {
                Copier::Engine => {
                    let prefix = format!("eng-{run}/");
                    engine_run(&cx, &target(&prefix, n, size, run), o.engine_concurrency, None).print();
                }
                Copier::S5cmd => {
                    let prefix = format!("s5-{run}/");
                    peer_run(&cx, &target(&prefix, n, size, run), "s5cmd", &s5(&format!("s5-{run}"))).print();
                }
                Copier::Rclone => {
                    let cmd = format!(
                        "{RCLONE_ENV} exec {} copy --transfers 64 --checkers 64 --s3-no-check-bucket SRC:src/data SRC:dst/rc-{run}",
                        o.rclone
                    );
                    peer_run(&cx, &target(&format!("rc-{run}/"), n, size, run), "rclone", &cmd).print();
                }
                Copier::Aws => {
                    let cmd = format!(
                        "exec {} --endpoint-url $SRC_ENDPOINT s3 cp --recursive --only-show-errors s3://src/data/ s3://dst/aws-{run}/",
                        o.aws
                    );
                    peer_run(&cx, &target(&format!("aws-{run}/"), n, size, run), "aws-cli", &cmd).print();
                }
                Copier::Mesh(i, t) => {
                    let m = &meshes[i];
                    let t = t.expect("p1 meshes run with a task size");
                    m.set("job.copy_task_objects", &t.to_string());
                    let label = format!("copy_task_objects {t}");
                    let prefix = format!("m{}-t{t}-{run}/", m.n);
                    mesh_run(&cx, &target(&prefix, n, size, run), m, &label).print();
                }
            }
        }
    }
}

/// rclone remotes `SRC` and `DST` on `$SRC_ENDPOINT` / `$DST_ENDPOINT` (set by the peer runner), no
/// config file.
const RCLONE_ENV: &str = "export RCLONE_CONFIG_SRC_TYPE=s3 RCLONE_CONFIG_SRC_PROVIDER=Other RCLONE_CONFIG_SRC_ENDPOINT=$SRC_ENDPOINT \
    RCLONE_CONFIG_SRC_FORCE_PATH_STYLE=true RCLONE_CONFIG_SRC_ACCESS_KEY_ID=bench RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY=bench-secret \
    RCLONE_CONFIG_SRC_REGION=us-east-1 RCLONE_CONFIG_DST_TYPE=s3 RCLONE_CONFIG_DST_PROVIDER=Other \
    RCLONE_CONFIG_DST_ENDPOINT=$DST_ENDPOINT RCLONE_CONFIG_DST_FORCE_PATH_STYLE=true RCLONE_CONFIG_DST_ACCESS_KEY_ID=bench \
    RCLONE_CONFIG_DST_SECRET_ACCESS_KEY=bench-secret RCLONE_CONFIG_DST_REGION=us-east-1 RCLONE_CONFIG=/dev/null;";

/// P2: streaming between two servers (`--objects` × `--size`, default 8 × 128 MiB), checksum
/// verification: the engine in-process, rclone, and `meshctl cp --verify checksum` per mesh.
fn p2(o: &Opts, rt: &tokio::runtime::Runtime) {
    let size = o.size.unwrap_or(128 * MIB);
    let n = o.objects as u64;
    let s = rt.block_on(Servers::start(true));
    println!(
        "SeaweedFS: source {}, destination {}",
        s.src_endpoint(),
        s.dst_endpoint()
    );
    seed_small(rt, &s, "data/", o.objects, size);
    println!("({})", uptime_line());
    let verify = o.mesh_verify.clone().unwrap_or_else(|| "checksum".into());
    let meshes: Vec<Mesh> = if o.tools.iter().any(|t| t == "mesh") {
        o.nodes
            .iter()
            .map(|&nodes| {
                let mut m = Mesh::start(nodes, None);
                m.add_s3_pair(&s.src_endpoint(), &s.dst_endpoint());
                m.cp_flags = vec!["--verify".into(), verify.clone()];
                m
            })
            .collect()
    } else {
        Vec::new()
    };
    let cx = Ctx {
        rt,
        s: &s,
        // Large and small objects are two lines of the table.
        scenario: if size >= 64 * MIB { "P2" } else { "P2 small" },
        timeout: o.timeout,
    };
    let mut copiers = Vec::new();
    if o.tools.iter().any(|t| t == "engine") {
        copiers.push(Copier::Engine);
    }
    if o.tools.iter().any(|t| t == "rclone") {
        copiers.push(Copier::Rclone);
    }
    copiers.extend((0..meshes.len()).map(|i| Copier::Mesh(i, None)));
    for run in 1..=o.runs {
        println!("--- round {run} ({})", uptime_line());
        for c in rotated(&copiers, run) {
            match c {
                Copier::Engine => {
                    let eo = EngineOptions {
                        concurrency: 8,
                        verify: mesh_engine::verify::Verify::Checksum,
                        ..EngineOptions::default()
                    };
                    engine_run_with(&cx, &target(&format!("eng-{run}/"), n, size, run), eo).print();
                }
                Copier::Rclone => {
                    let cmd = format!(
                        "{RCLONE_ENV} exec {} copy --transfers 8 --checkers 16 --s3-no-check-bucket SRC:src/data DST:dst/rc-{run}",
                        o.rclone
                    );
                    peer_run(&cx, &target(&format!("rc-{run}/"), n, size, run), "rclone", &cmd).print();
                }
                Copier::S5cmd | Copier::Aws => unreachable!("not a P2 copier"),
                Copier::Mesh(i, _) => {
                    let m = &meshes[i];
                    let prefix = format!("m{}-{run}/", m.n);
                    mesh_run(&cx, &target(&prefix, n, size, run), m, &format!("--verify {verify}")).print();
                }
            }
        }
    }
}

fn vacuum(s: &Servers) {
    let t = Instant::now();
    let r = measure::http_get(
        s.first().master_addr(),
        "/vol/vacuum?garbageThreshold=0.0001",
        Duration::from_secs(300),
    );
    println!(
        "  vacuum: {} in {:.1}s; disk available {}",
        match &r {
            Ok(t) => t.lines().next().unwrap_or("").to_string(),
            Err(e) => e.clone(),
        },
        t.elapsed().as_secs_f64(),
        HumanBytes(disk_avail(&std::env::temp_dir()))
    );
}

/// Prints every copy under `dst/prefix` with its ETag next to the source's, deletes them and
/// vacuums the server.
fn delete_and_vacuum(rt: &tokio::runtime::Runtime, s: &Servers, prefix: &str) {
    rt.block_on(async {
        let objects = seed::list_all(s.dst.as_ref(), prefix).await.unwrap_or_default();
        let src_etag = s.src.head("p5/big").await.ok().and_then(|m| m.info.etag);
        for o in &objects {
            println!(
                "  dst/{}: {} bytes, ETag {} (source p5/big: ETag {})",
                o.key,
                o.size,
                o.etag.as_deref().unwrap_or("-"),
                src_etag.as_deref().unwrap_or("-")
            );
        }
        let keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
        for chunk in keys.chunks(1000) {
            let _ = s.dst.delete_many(chunk).await;
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
            "NOTE: {} available under {} is short for {} (needs {}): using {} instead",
            HumanBytes(avail),
            tmp.display(),
            HumanBytes(size),
            HumanBytes(2 * size + 4 * GIB),
            HumanBytes(smaller)
        );
        size = smaller;
    } else {
        println!("disk available under {}: {}", tmp.display(), HumanBytes(avail));
    }
    let s = start_server(rt);
    seed_big(rt, &s, "p5/big", size, o.seed_part_size);
    println!("({})", uptime_line());
    let cx = Ctx {
        rt,
        s: &s,
        scenario: "P5",
        timeout: o.timeout,
    };
    let target = |dst_prefix| Target::new("p5/", dst_prefix, 1, size, 1);
    let check_disk = || {
        let a = disk_avail(&tmp);
        if a < size + 3 * GIB {
            println!(
                "SKIP: only {} available; not starting another {} copy",
                HumanBytes(a),
                HumanBytes(size)
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
                    m.add_s3(&s.src_endpoint());
                    if let Some(v) = &o.mesh_verify {
                        m.cp_flags = vec!["--verify".into(), v.clone()];
                    }
                    m.set("job.split_object_bytes", &o.split);
                    m.set("job.part_task_bytes", &o.split);
                    let prefix = format!("p5-m{nodes}/");
                    let label = format!(
                        "split: {} part tasks{}",
                        o.split,
                        o.mesh_verify
                            .as_deref()
                            .map(|v| format!(", --verify {v}"))
                            .unwrap_or_default()
                    );
                    mesh_run(&cx, &Target::new("p5/", &prefix, 1, size, 1), &m, &label).print();
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
                peer_run(&cx, &target("p5-aws/"), "aws-cli", &cmd).print();
                delete_and_vacuum(rt, &s, "p5-aws/");
            }
            "engine" => {
                if !check_disk() {
                    continue;
                }
                // copy_object_max below the size, so the engine also uses UploadPartCopy (in the
                // source's 8 MiB layout) like the mesh's split and aws-cli, even for ≤ 5 GiB.
                engine_run(&cx, &target("p5-eng/"), 4, Some(128 * MIB)).print();
                delete_and_vacuum(rt, &s, "p5-eng/");
            }
            other => println!("unknown tool {other} (mesh, aws, engine)"),
        }
    }
}

/// Submit → first object: `jobs` one-object jobs per mesh size.
fn latency(o: &Opts, rt: &tokio::runtime::Runtime) {
    let s = start_server(rt);
    seed_small(rt, &s, "one/", 1, 16 * KIB);
    for &nodes in &o.nodes {
        let m = Mesh::start(nodes, None);
        m.add_s3(&s.src_endpoint());
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
                let job = submit(&mut cl, spec).await?;
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
                        if let Some(v) = get_job(&mut cl, &job.id, ReadConsistency::Linearizable).await {
                            let j = v.job.unwrap_or_default();
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

/// The source tree of `plan`: made once per file count under the cache dir and reused (a
/// million files take minutes to make); `.complete` marks a finished one.
fn cached_files(files: usize) -> PathBuf {
    let dir = mesh_tests::seaweed::cache_dir().join(format!("bench-files-{files}"));
    if dir.join(".complete").exists() {
        println!("reusing {files} files under {}", dir.display());
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| die(&format!("{}: {e}", dir.display())));
    make_files(&dir, files);
    std::fs::write(dir.join(".complete"), b"").unwrap_or_else(|e| die(&e.to_string()));
    dir
}

/// How fast the source lists: every key, 1,000 per page, through the engine's fs store
/// (what a LIST task reads). Returns (keys, seconds).
fn source_list_rate(rt: &tokio::runtime::Runtime, dir: &Path) -> (u64, f64) {
    use mesh_engine::store::{FsLocationSpec, KeyRange, LocationSpec};
    rt.block_on(async {
        let spec = LocationSpec::Fs(FsLocationSpec {
            root: dir.to_path_buf(),
        });
        let store = mesh_engine::open_store(&spec, &mesh_engine::S3Clients::new())
            .await
            .unwrap_or_else(|e| die(&e.to_string()));
        let t = Instant::now();
        let mut range = KeyRange::default();
        let mut n = 0u64;
        loop {
            let page = store.list(&range, 1000).await.unwrap_or_else(|e| die(&e.to_string()));
            n += page.objects.len() as u64;
            match page.next_start_after {
                Some(k) => range.start_after = Some(k),
                None => break,
            }
        }
        (n, t.elapsed().as_secs_f64())
    })
}

/// `meshctl job report ID` into a file (paged by meshctl): (lines, bytes, seconds).
fn fetch_report(m: &Mesh, id: &str, to: &Path) -> Result<(u64, u64, f64), String> {
    let out = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut cmd = m.c.ctl_command(m.via, &m.c.token());
    cmd.args(["job", "report", id]).stdout(out);
    let t = Instant::now();
    let status = cmd.status().map_err(|e| format!("meshctl: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("meshctl job report {id}: {status}"));
    }
    let text = std::fs::read(to).map_err(|e| e.to_string())?;
    let lines = text.iter().filter(|&&b| b == b'\n').count() as u64;
    Ok((lines, text.len() as u64, secs))
}

fn plan(o: &Opts, rt: &tokio::runtime::Runtime) {
    let base = tempfile::Builder::new()
        .prefix("job-bench-fs-")
        .tempdir()
        .unwrap_or_else(|e| die(&e.to_string()));
    let src = cached_files(o.files);
    let dst = base.path().join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    let (listed, list_s) = source_list_rate(rt, &src);
    println!(
        "the source lists {listed} keys in {list_s:.1}s ({:.0} keys/s, engine fs store, 1,000 per page)",
        listed as f64 / list_s
    );
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
            let job = submit(&mut cl, spec).await?;
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
                        peak_db[i] = peak_db[i].max(measure::du_sb(d));
                    }
                }
                if let Some(v) = get_job(&mut cl, &job.id, ReadConsistency::Local).await {
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
        if let Some(t) = t_listed {
            println!(
                "  listing and planning: {:.0} keys/s (objects_total reached {files} after {t:.1}s) vs the source's {:.0} keys/s",
                files as f64 / t,
                listed as f64 / list_s
            );
        }
        match fetch_report(&m, &job.id, &base.path().join("report.jsonl")) {
            Ok((lines, bytes, secs)) => println!(
                "  report: `meshctl job report` printed {lines} lines ({}) in {secs:.1}s",
                HumanBytes(bytes)
            ),
            Err(e) => println!("  report: {e}"),
        }
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
    let rows: Vec<Row> = report::read_results(path);
    let groups = report::group_by(rows, |r| (r.scenario.clone(), r.tool.clone(), r.label.clone()));
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
        let mid = report::median_run(v, |r| r.wall_s);
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
        let load = report::max_load(v.iter().map(|r| (r.load_before, r.load_after)));
        println!(
            "| {sc} {} × {} | {tool}{} | {} | {wall:.2} s | {} | {:.0} | {:.1} | {vs} | {:.2} | {rss:.0} | {} | {} | ≤ {load:.2} |",
            mid.objects,
            HumanBytes(mid.bytes / mid.objects.max(1)),
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
            report::verified_cell(v.iter().filter(|r| r.verified).count(), v.len())
        );
    }
}

// ---------------------------------------------------------------- main

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    help(&args, USAGE);
    let Some(cmd) = args.first().cloned() else { usage() };
    if cmd == "table" {
        table(args.get(1).unwrap_or_else(|| usage()));
        return;
    }
    if !matches!(cmd.as_str(), "p1" | "p2" | "p5" | "latency" | "plan") {
        usage()
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
        "p2" => p2(&o, &rt),
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
