//! scale-bench: P3 of issue 9 — do N nodes copy N times faster? Not run in CI; needs root.
//!
//! ```text
//! scale-bench [--nodes 1,2,3,5] [--cap-mbit 64] [--objects 20] [--size 32MiB] [--runs 1]
//!             [--big 2GiB] [--big-nodes 1,3] [--split 256MiB] [--verify etag] [--rclone PATH]
//!             [--timeout SECS]
//! ```
//! Every meshd runs in its own network namespace whose link is capped at `--cap-mbit` each way by
//! `tc tbf` ([`mesh_tests::netns::NetLab`]); two SeaweedFS servers (buckets `src`, `dst`) listen
//! on the root end of that network, uncapped. `--objects` × `--size` under `src/data/` are
//! streamed to the second server (`meshctl cp --verify etag --wait`: the MD5 comparison rclone
//! makes by default; `checksum` reads every object back on SeaweedFS, which keeps no S3
//! checksums) by a mesh of each `--nodes` size, and by rclone (`copy --transfers 8`) in a
//! namespace of its own with the same cap. Then one `--big` object (0: skip) is copied by a mesh of each `--big-nodes` size, split
//! into parts of `--split` spread over the nodes.
//!
//! Each run prints the aggregate MiB/s, its ratio to N × cap, the machine's CPU use over the run
//! (of all cores, from /proc/stat) and the two servers' CPU seconds — the evidence that neither
//! the 2 cores nor the servers were the limit — and a `RESULT {json}` line. Without root (or
//! without `ip`/`tc`) it prints `SKIP: <why>` and exits 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_tests::bench::measure::{proc_cpu_s, uptime_line};
use mesh_tests::bench::report::{self, median, HumanBytes};
use mesh_tests::bench::run::peer_copy;
use mesh_tests::bench::seed::{self, Servers};
use mesh_tests::bench::{die, help, parse_bytes, parse_list, MIB};
use mesh_tests::netns::NetLab;
use mesh_tests::TestCluster;
use serde::Serialize;

const USAGE: &str = "usage: scale-bench [--nodes 1,2,3,5] [--cap-mbit 64] [--objects 20] [--size 32MiB] [--runs 1]\n\
     \x20                  [--big 2GiB] [--big-nodes 1,3] [--split 256MiB] [--verify etag] [--rclone PATH] [--timeout SECS]";

struct Opts {
    nodes: Vec<usize>,
    cap_mbit: u32,
    objects: usize,
    size: u64,
    runs: usize,
    big: u64,
    big_nodes: Vec<usize>,
    split: String,
    verify: String,
    rclone: String,
    timeout: Duration,
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn parse(args: &[String]) -> Opts {
    let mut o = Opts {
        nodes: vec![1, 2, 3, 5],
        cap_mbit: 64,
        objects: 20,
        size: 32 * MIB,
        runs: 1,
        big: 2 << 30,
        big_nodes: vec![1, 3],
        split: "256MiB".into(),
        verify: "etag".into(),
        rclone: std::env::var("RCLONE").unwrap_or_else(|_| "rclone".into()),
        timeout: Duration::from_secs(900),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--nodes" => o.nodes = parse_list(&val()).unwrap_or_else(|| usage()),
            "--cap-mbit" => o.cap_mbit = val().parse().unwrap_or_else(|_| usage()),
            "--objects" => o.objects = val().parse().unwrap_or_else(|_| usage()),
            "--size" => o.size = parse_bytes(&val()).unwrap_or_else(|| usage()),
            "--runs" => o.runs = val().parse().unwrap_or_else(|_| usage()),
            "--big" => o.big = parse_bytes(&val()).unwrap_or_else(|| usage()),
            "--big-nodes" => o.big_nodes = parse_list(&val()).unwrap_or_else(|| usage()),
            "--split" => o.split = val(),
            "--verify" => o.verify = val(),
            "--rclone" => o.rclone = val(),
            "--timeout" => o.timeout = Duration::from_secs(val().parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    if o.nodes.iter().chain(&o.big_nodes).any(|&n| n == 0 || n > 50) {
        die("--nodes and --big-nodes take 1 to 50");
    }
    o
}

/// Busy and total jiffies of all CPUs (/proc/stat's first line).
fn cpu_jiffies() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = f.iter().sum();
    // idle + iowait
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// What a run used: wall time, the machine's CPU (fraction of all cores), the servers' CPU.
struct Usage {
    started: Instant,
    cpu0: (u64, u64),
    servers0: f64,
}

fn servers_cpu(s: &Servers) -> f64 {
    s.servers.iter().filter_map(|x| x.pid()).map(proc_cpu_s).sum()
}

impl Usage {
    fn begin(s: &Servers) -> Usage {
        Usage {
            started: Instant::now(),
            cpu0: cpu_jiffies(),
            servers0: servers_cpu(s),
        }
    }

    /// (wall s, machine CPU busy %, servers' CPU s)
    fn end(&self, s: &Servers) -> (f64, f64, f64) {
        let (busy, total) = cpu_jiffies();
        let busy_pct = 100.0 * (busy - self.cpu0.0) as f64 / (total - self.cpu0.1).max(1) as f64;
        (
            self.started.elapsed().as_secs_f64(),
            busy_pct,
            servers_cpu(s) - self.servers0,
        )
    }
}

#[derive(Serialize)]
struct Row {
    scenario: String,
    tool: String,
    nodes: usize,
    cap_mbit: u32,
    bytes: u64,
    wall_s: f64,
    mib_per_s: f64,
    /// mib_per_s / (nodes × cap)
    of_n_caps: f64,
    cpu_busy_pct: f64,
    servers_cpu_s: f64,
    verified: bool,
    load: String,
}

impl Row {
    fn print(&self) {
        println!(
            "  {:<10} {:<10} {} node(s): {} in {:.1}s = {:.2} MiB/s = {:.2} × N × cap; CPU {:.0} % of all cores, servers {:.1} s CPU; {}; load {}",
            self.scenario,
            self.tool,
            self.nodes,
            HumanBytes(self.bytes),
            self.wall_s,
            self.mib_per_s,
            self.of_n_caps,
            self.cpu_busy_pct,
            self.servers_cpu_s,
            if self.verified { "verified" } else { "NOT VERIFIED" },
            self.load.trim_start_matches("load average ")
        );
        report::print_result(self);
    }
}

struct Lab {
    lab: Arc<NetLab>,
    s: Servers,
    rt: tokio::runtime::Runtime,
    o: Opts,
}

impl Lab {
    fn cap_mib(&self) -> f64 {
        self.o.cap_mbit as f64 * 1e6 / 8.0 / MIB as f64
    }

    fn row(&self, scenario: &str, tool: &str, nodes: usize, bytes: u64, used: (f64, f64, f64), verified: bool) -> Row {
        let (wall_s, cpu_busy_pct, servers_cpu_s) = used;
        let mib_per_s = bytes as f64 / MIB as f64 / wall_s;
        Row {
            scenario: scenario.into(),
            tool: tool.into(),
            nodes,
            cap_mbit: self.o.cap_mbit,
            bytes,
            wall_s,
            mib_per_s,
            of_n_caps: mib_per_s / (nodes as f64 * self.cap_mib()),
            cpu_busy_pct,
            servers_cpu_s,
            verified,
            load: uptime_line(),
        }
    }

    /// (objects, bytes) under `prefix` of the destination, ignoring the job reports.
    fn dst_listing(&self, prefix: &str) -> (u64, u64) {
        let objects = self
            .rt
            .block_on(seed::list_all(self.s.dst.as_ref(), prefix))
            .unwrap_or_default();
        objects
            .iter()
            .filter(|o| !o.key.contains(".bucketmesh/"))
            .fold((0, 0), |(n, b), o| (n + 1, b + o.size))
    }

    fn rclone(&self, host: usize, run: usize) -> Row {
        let prefix = format!("rc-{run}/");
        let cmd = format!(
            "{RCLONE_ENV} exec ip netns exec {} {} copy --transfers 8 --checkers 16 --s3-no-check-bucket SRC:src/data DST:dst/rc-{run}",
            self.lab.host_ns(host),
            self.o.rclone
        );
        let u = Usage::begin(&self.s);
        let p = self
            .rt
            .block_on(peer_copy(&self.s, "rclone", &cmd, &[], self.o.timeout));
        let used = u.end(&self.s);
        let want = (self.o.objects as u64, self.o.objects as u64 * self.o.size);
        let ok = p.usage.success() && self.dst_listing(&prefix) == want;
        self.row("P3", "rclone", 1, want.1, used, ok)
    }

    fn mesh(&self, n: usize) -> TestCluster {
        let t = Instant::now();
        let c = TestCluster::builder(n)
            .timing(None, None)
            .in_namespaces(self.lab.clone())
            .ready_timeout(Duration::from_secs(90))
            .start();
        c.wait_active(n, Duration::from_secs(60));
        let via = c.leader_index();
        let ctl = |args: &[&str], env: &[(&str, &str)]| {
            let mut cmd = c.ctl_command(via, &c.token());
            cmd.args(args);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let out = mesh_tests::proc::run(cmd, Duration::from_secs(30));
            if !out.success() {
                die(&format!("meshctl failed: {}", out.describe()));
            }
        };
        ctl(
            &["credential", "add", "bench", "--access-key-id", "bench"],
            &[("MESH_SECRET_ACCESS_KEY", "bench-secret")],
        );
        for (name, endpoint) in [("src", self.s.src_endpoint()), ("dst", self.s.dst_endpoint())] {
            ctl(
                &[
                    "location",
                    "add",
                    name,
                    "--s3",
                    name,
                    "--endpoint",
                    &endpoint,
                    "--path-style",
                    "--region",
                    "us-east-1",
                    "--credential",
                    "bench",
                ],
                &[],
            );
        }
        for name in ["job.split_object_bytes", "job.part_task_bytes"] {
            ctl(&["setting", "set", name, &self.o.split], &[]);
        }
        println!(
            "mesh of {n} node(s) in namespaces ready in {:.1}s at {}",
            t.elapsed().as_secs_f64(),
            c.root().display()
        );
        c
    }

    /// `meshctl cp src:FROM dst:TO --verify V --wait` on the leader of `c`.
    fn mesh_copy(&self, c: &TestCluster, scenario: &str, from: &str, to: &str, want: (u64, u64)) -> Row {
        let via = c.leader_index();
        let mut cmd = c.ctl_command(via, &c.token());
        cmd.args([
            "cp",
            &format!("src:{from}"),
            &format!("dst:{to}"),
            "--verify",
            &self.o.verify,
            "--wait",
        ]);
        let u = Usage::begin(&self.s);
        let out = mesh_tests::proc::run(cmd, self.o.timeout);
        let used = u.end(&self.s);
        if !out.success() {
            println!("  meshctl cp failed: {}", out.describe());
        }
        let ok = out.success() && self.dst_listing(to) == want;
        self.row(scenario, "mesh", c.len(), want.1, used, ok)
    }
}

const RCLONE_ENV: &str = "export RCLONE_CONFIG_SRC_TYPE=s3 RCLONE_CONFIG_SRC_PROVIDER=Other RCLONE_CONFIG_SRC_ENDPOINT=$SRC_ENDPOINT \
    RCLONE_CONFIG_SRC_FORCE_PATH_STYLE=true RCLONE_CONFIG_SRC_ACCESS_KEY_ID=bench RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY=bench-secret \
    RCLONE_CONFIG_SRC_REGION=us-east-1 RCLONE_CONFIG_DST_TYPE=s3 RCLONE_CONFIG_DST_PROVIDER=Other \
    RCLONE_CONFIG_DST_ENDPOINT=$DST_ENDPOINT RCLONE_CONFIG_DST_FORCE_PATH_STYLE=true RCLONE_CONFIG_DST_ACCESS_KEY_ID=bench \
    RCLONE_CONFIG_DST_SECRET_ACCESS_KEY=bench-secret RCLONE_CONFIG_DST_REGION=us-east-1 RCLONE_CONFIG=/dev/null;";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    help(&args, USAGE);
    let o = parse(&args);
    println!("scale-bench ({})", uptime_line());
    let mut lab = match NetLab::create(o.cap_mbit) {
        Ok(l) => l,
        Err(e) => {
            println!("SKIP: scale-bench needs network namespaces: {e}");
            return;
        }
    };
    let most = o.nodes.iter().chain(&o.big_nodes).copied().max().unwrap_or(1);
    // Hosts 0..most for the nodes, one more for rclone.
    for _ in 0..=most {
        lab.add_host()
            .unwrap_or_else(|e| die(&format!("network namespace: {e}")));
    }
    let rclone_host = most;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let s = rt.block_on(Servers::start_at(true, Some(lab.root_ip())));
    println!(
        "{} hosts capped at {} Mbit/s each way ({:.2} MiB/s); SeaweedFS: source {}, destination {}",
        most + 1,
        o.cap_mbit,
        o.cap_mbit as f64 * 1e6 / 8.0 / MIB as f64,
        s.src_endpoint(),
        s.dst_endpoint()
    );
    let took = rt.block_on(seed::put_objects(&s.src, "data/", o.objects, o.size, 16));
    println!(
        "seeded {} × {} under src/data/ in {:.1}s",
        o.objects,
        HumanBytes(o.size),
        took.as_secs_f64()
    );
    let x = Lab {
        lab: Arc::new(lab),
        s,
        rt,
        o,
    };
    let want = (x.o.objects as u64, x.o.objects as u64 * x.o.size);
    let mut rows: Vec<Row> = Vec::new();
    for run in 1..=x.o.runs {
        println!("--- round {run} ({})", uptime_line());
        let r = x.rclone(rclone_host, run);
        r.print();
        rows.push(r);
        for &n in &x.o.nodes {
            let c = x.mesh(n);
            let r = x.mesh_copy(&c, "P3", "data/", &format!("m{n}-{run}/"), want);
            r.print();
            rows.push(r);
        }
    }
    if x.o.big > 0 {
        let part = 64 * MIB;
        let (took, parts) = x.rt.block_on(seed::put_multipart(&x.s.src, "big/one", x.o.big, part));
        println!(
            "seeded src/big/one: {} in {parts} parts in {:.1}s",
            HumanBytes(x.o.big),
            took.as_secs_f64()
        );
        for &n in &x.o.big_nodes {
            let c = x.mesh(n);
            let r = x.mesh_copy(&c, "P3 big", "big/", &format!("big{n}/"), (1, x.o.big));
            r.print();
            rows.push(r);
        }
    }
    println!("\nsummary (medians over rounds):");
    println!("| scenario | tool | nodes | MiB/s | × N × cap | CPU busy | verified |");
    println!("|---|---|---|---|---|---|---|");
    let mut keys: Vec<(String, String, usize)> = Vec::new();
    for r in &rows {
        let k = (r.scenario.clone(), r.tool.clone(), r.nodes);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for k in keys {
        let of: Vec<&Row> = rows
            .iter()
            .filter(|r| (r.scenario.clone(), r.tool.clone(), r.nodes) == k)
            .collect();
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.0} % | {}/{} |",
            k.0,
            k.1,
            k.2,
            median(of.iter().map(|r| r.mib_per_s).collect()),
            median(of.iter().map(|r| r.of_n_caps).collect()),
            median(of.iter().map(|r| r.cpu_busy_pct).collect()),
            of.iter().filter(|r| r.verified).count(),
            of.len()
        );
    }
    println!("scale-bench done ({})", uptime_line());
}
