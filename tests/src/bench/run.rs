//! The copiers both benchmarks time the same way against [`Servers`]: the copy engine
//! in-process ([`engine_copy`]: `ops::run_range(RangeOp::Copy)`) and a peer tool's shell command
//! ([`peer_copy`]: `sh -c`, reaped by [`wait_child`]). Each is measured around the copy only:
//! wall time, CPU, peak RSS, the load average before/after, and the S3 requests the servers
//! counted ([`Window`]).

use std::time::{Duration, Instant};

use mesh_engine::filter::Filter;
use mesh_engine::ops::{self, Action, KeyMap, RangeOp, RangeOptions, RangeSummary, RangeTask};
use mesh_engine::store::KeyRange;
use mesh_engine::transfer::CopyOptions;
use mesh_engine::verify::Verify;

use super::measure::{self, wait_child, ChildUsage, Cpu, Requests, S3Counters};
use super::seed::Servers;
use super::{die, program};

/// Before and after a measured copy: this long for the servers' counters to settle.
pub const SETTLE: Duration = Duration::from_millis(300);

/// What every measured copy reports besides its own numbers.
#[derive(Clone, Debug, Default)]
pub struct Window {
    pub wall_s: f64,
    pub load_before: f64,
    pub load_after: f64,
    /// Requests the servers counted during the copy.
    pub requests: Requests,
}

/// The start of a [`Window`] ([`Window::begin`]); [`WindowStart::end`] completes it.
pub struct WindowStart {
    counters: S3Counters,
    load: f64,
    /// When the copy started.
    pub t0: Instant,
}

impl Window {
    /// Settles, reads the servers' counters and the load; the clock starts now.
    pub async fn begin(s: &Servers) -> WindowStart {
        tokio::time::sleep(SETTLE).await;
        let counters = S3Counters::read_or_empty(&s.servers);
        WindowStart {
            counters,
            load: measure::loadavg(),
            t0: Instant::now(),
        }
    }
}

impl WindowStart {
    /// The copy took `wall_s`: reads the load, settles, reads the counters again.
    pub async fn end(self, s: &Servers, wall_s: f64) -> Window {
        let load_after = measure::loadavg();
        tokio::time::sleep(SETTLE).await;
        Window {
            wall_s,
            load_before: self.load,
            load_after,
            requests: S3Counters::read_or_empty(&s.servers).since(&self.counters),
        }
    }
}

/// The engine's knobs a benchmark sets ([`EngineOptions::range_options`]).
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    pub verify: Verify,
    pub concurrency: usize,
    pub large_concurrency: usize,
    pub parts_in_flight: usize,
    /// Streamed and server-side part size (default: the engine's).
    pub part_size: Option<u64>,
    /// Default: the engine's (5 GiB).
    pub copy_object_max: Option<u64>,
    /// Streaming: objects at least this large use multipart (default: the engine's).
    pub multipart_threshold: Option<u64>,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        let (r, c) = (RangeOptions::default(), CopyOptions::default());
        EngineOptions {
            verify: Verify::Size,
            concurrency: r.concurrency,
            large_concurrency: r.large_concurrency,
            parts_in_flight: c.parts_in_flight,
            part_size: None,
            copy_object_max: None,
            multipart_threshold: None,
        }
    }
}

impl EngineOptions {
    pub fn range_options(&self) -> RangeOptions {
        let mut copy = CopyOptions {
            verify: self.verify,
            parts_in_flight: self.parts_in_flight,
            ..CopyOptions::default()
        };
        if let Some(m) = self.copy_object_max {
            copy.copy_object_max = m;
        }
        if let Some(t) = self.multipart_threshold {
            copy.multipart_threshold = t;
        }
        if let Some(p) = self.part_size {
            copy.part_size = Some(p);
            copy.server_part_size = Some(p);
        }
        RangeOptions {
            copy,
            concurrency: self.concurrency,
            large_concurrency: self.large_concurrency,
            ..RangeOptions::default()
        }
    }
}

/// A measured engine copy.
#[derive(Debug)]
pub struct EngineCopy {
    /// Err: `run_range` failed or did not finish within the timeout.
    pub summary: Result<RangeSummary, String>,
    /// The first 5 objects that failed, `key: error`.
    pub failures: Vec<String>,
    /// CPU of this process during the copy (getrusage delta).
    pub cpu: Cpu,
    /// This process's VmHWM after resetting it before the copy (its ru_maxrss when it cannot be
    /// reset).
    pub peak_rss_mib: f64,
    pub window: Window,
}

/// Copies `src/src_prefix` → `dst/dst_prefix` with `run_range(RangeOp::Copy)`, measured.
pub async fn engine_copy(
    s: &Servers,
    src_prefix: &str,
    dst_prefix: &str,
    opts: &EngineOptions,
    timeout: Duration,
) -> EngineCopy {
    let ropts = opts.range_options();
    let range = KeyRange {
        prefix: src_prefix.into(),
        ..Default::default()
    };
    let map = KeyMap::new(src_prefix, dst_prefix);
    let filter = Filter::new();
    let start = Window::begin(s).await;
    let hwm_reset = measure::reset_peak_rss();
    let cpu0 = Cpu::this_process();
    let mut failures: Vec<String> = Vec::new();
    let task = RangeTask {
        op: RangeOp::Copy,
        src: s.src.as_ref(),
        dst: s.dst.as_ref(),
        range: &range,
        map: &map,
        filter: &filter,
    };
    let fut = ops::run_range(task, &ropts, |out| {
        if let Action::Failed(e) = &out.action {
            if failures.len() < 5 {
                failures.push(format!("{}: {e}", out.key));
            }
        }
    });
    let summary = match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(sum)) => Ok(sum),
        Ok(Err(e)) => Err(format!("run_range: {e}")),
        Err(_) => Err(format!("run_range did not finish within {timeout:?}")),
    };
    let wall = start.t0.elapsed().as_secs_f64();
    let r1 = measure::rusage_self();
    let peak_rss_mib = if hwm_reset {
        measure::peak_rss_mib("self")
    } else {
        r1.ru_maxrss as f64 / 1024.0
    };
    EngineCopy {
        summary,
        failures,
        cpu: Cpu::of(&r1).since(&cpu0),
        peak_rss_mib,
        window: start.end(s, wall).await,
    }
}

/// A measured peer command.
#[derive(Clone, Debug)]
pub struct PeerCopy {
    /// The child's exit, CPU and max RSS.
    pub usage: ChildUsage,
    pub window: Window,
}

impl PeerCopy {
    pub fn peak_rss_mib(&self) -> f64 {
        self.usage.max_rss_kib as f64 / 1024.0
    }
}

/// Runs `sh -c cmd` with `SRC_ENDPOINT`, `DST_ENDPOINT`, `env` and dummy `AWS_*` keys in its
/// environment and its output in a log file (kept, and its tail printed, when it fails),
/// measured; killed after `timeout`.
pub async fn peer_copy(s: &Servers, tool: &str, cmd: &str, env: &[(&str, &str)], timeout: Duration) -> PeerCopy {
    let safe: String = tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let log = std::env::temp_dir().join(format!("{}-{safe}-{}.log", program(), std::process::id()));
    let logf = std::fs::File::create(&log).unwrap_or_else(|e| die(&format!("log {}: {e}", log.display())));
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .env("SRC_ENDPOINT", s.src_endpoint())
        .env("DST_ENDPOINT", s.dst_endpoint())
        .envs(env.iter().copied())
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(logf.try_clone().unwrap_or_else(|e| die(&format!("log: {e}"))))
        .stderr(logf);
    let start = Window::begin(s).await;
    let usage = wait_child(c, timeout).await.unwrap_or_else(|e| die(&e));
    let window = start.end(s, usage.wall_s).await;
    if usage.success() {
        let _ = std::fs::remove_file(&log);
    } else {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        println!(
            "  command failed (status {}); log {} tail:",
            usage.status,
            log.display()
        );
        for l in tail.iter().rev() {
            println!("    {l}");
        }
    }
    PeerCopy { usage, window }
}
