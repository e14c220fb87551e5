//! Measuring: CPU from getrusage / `/proc/PID/stat`, peak RSS (VmHWM, reset through
//! `/proc/self/clear_refs`), a child's own rusage from `wait4` ([`wait_child`], the one copy of
//! it), SeaweedFS's `SeaweedFS_s3_request_total` counters ([`S3Counters`]), the load average, and
//! the disk (`du -sb`, statvfs).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::seaweed::SeaweedFs;

/// User and system CPU seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cpu {
    pub user_s: f64,
    pub sys_s: f64,
}

impl Cpu {
    pub fn of(r: &libc::rusage) -> Cpu {
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        Cpu {
            user_s: t(r.ru_utime),
            sys_s: t(r.ru_stime),
        }
    }

    /// This process so far (getrusage(RUSAGE_SELF)).
    pub fn this_process() -> Cpu {
        Cpu::of(&rusage_self())
    }

    pub fn total(&self) -> f64 {
        self.user_s + self.sys_s
    }

    /// What was spent between `before` and `self`.
    pub fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            user_s: self.user_s - before.user_s,
            sys_s: self.sys_s - before.sys_s,
        }
    }
}

pub fn rusage_self() -> libc::rusage {
    crate::sys::rusage_self()
}

/// user+sys CPU seconds of a process (from /proc/PID/stat; 0 when it is gone).
pub fn proc_cpu_s(pid: u32) -> f64 {
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
    let hz = crate::sys::clock_ticks();
    (ut + st) / hz.max(1.0)
}

/// A `VmXXX:` line (`field` with its colon) of /proc/PID/status, in KiB; `pid` may be `self`.
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Peak RSS of a process (VmHWM), MiB (0 when it is gone).
pub fn peak_rss_mib(pid: &str) -> f64 {
    proc_status_kib(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0
}

/// Resets this process's VmHWM to its current RSS (Linux ≥ 4.0); false when not possible.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The 1-minute load average (−1 when unknown).
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(-1.0)
}

/// `load average 1.00 2.00 3.00`, as uptime prints it.
pub fn uptime_line() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            format!(
                "load average {}",
                s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            )
        })
        .unwrap_or_default()
}

/// `du -sb PATH` in bytes (0 when it fails).
pub fn du_sb(p: &Path) -> u64 {
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

/// Bytes available to unprivileged users on the filesystem of `p` (0 when unknown).
pub fn disk_avail(p: &Path) -> u64 {
    crate::sys::disk_avail(p)
}

/// A plain HTTP/1.1 GET: the whole answer, headers included.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `SeaweedFS_s3_request_total` summed by type (over buckets and servers), and the non-2xx
/// answers by "TYPE CODE".
#[derive(Clone, Debug, Default)]
pub struct S3Counters {
    pub by_type: BTreeMap<String, f64>,
    pub errors: BTreeMap<String, f64>,
}

/// Requests made between two [`S3Counters`] readings.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    pub by_type: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
}

impl S3Counters {
    pub fn read(servers: &[SeaweedFs]) -> Result<S3Counters, String> {
        let mut c = S3Counters::default();
        for sw in servers {
            let text = http_get(sw.metrics_addr(), "/metrics", Duration::from_secs(10))?;
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
        Ok(c)
    }

    /// [`S3Counters::read`], or empty counters (and a note) when the metrics cannot be read.
    pub fn read_or_empty(servers: &[SeaweedFs]) -> S3Counters {
        S3Counters::read(servers).unwrap_or_else(|e| {
            println!("  metrics: {e}");
            S3Counters::default()
        })
    }

    /// The requests counted since `before`, by type (types with none left out).
    pub fn since(&self, before: &S3Counters) -> Requests {
        let diff = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            b.iter()
                .map(|(k, v)| (k.clone(), (v - a.get(k).copied().unwrap_or(0.0)).round() as u64))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        Requests {
            by_type: diff(&before.by_type, &self.by_type),
            errors: diff(&before.errors, &self.errors),
        }
    }
}

fn label<'a>(labels: &'a str, name: &str) -> &'a str {
    labels
        .split(',')
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix("=\"")?.strip_suffix('"'))
        .unwrap_or("?")
}

/// How a child ended and what it used, from `wait4`.
#[derive(Clone, Copy, Debug)]
pub struct ChildUsage {
    /// The wait status.
    pub status: i32,
    /// From spawning to being reaped.
    pub wall_s: f64,
    /// The child's own CPU, including its waited-for children.
    pub cpu: Cpu,
    /// The child's `ru_maxrss`.
    pub max_rss_kib: u64,
    /// Killed after the timeout.
    pub timed_out: bool,
}

impl ChildUsage {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }
}

/// Spawns `cmd` in a process group of its own and reaps it with `wait4` (polling every 5 ms),
/// which gives the child's own rusage (CPU, max RSS); after `timeout` the whole group is killed
/// with SIGKILL (and `  TIMEOUT after …: killed` printed).
pub async fn wait_child(mut cmd: std::process::Command, timeout: Duration) -> Result<ChildUsage, String> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let t0 = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("spawn {:?}: {e}", cmd.get_program()))?;
    let pid = child.id() as i32;
    // Reaped by wait4 below, not by Child.
    drop(child);
    let mut timed_out = false;
    loop {
        match crate::sys::try_wait4(pid) {
            Ok(Some((st, ru))) => {
                return Ok(ChildUsage {
                    status: st,
                    wall_s: t0.elapsed().as_secs_f64(),
                    cpu: Cpu::of(&ru),
                    max_rss_kib: ru.ru_maxrss as u64,
                    timed_out,
                })
            }
            Ok(None) => {}
            Err(e) => return Err(format!("wait4: {e}")),
        }
        if !timed_out && t0.elapsed() > timeout {
            timed_out = true;
            // The process group we created.
            let _ = crate::sys::kill(-pid, libc::SIGKILL);
            println!("  TIMEOUT after {timeout:?}: killed");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
