//! Shared pieces of the benchmark binaries `engine-bench` and `job-bench` (never used by the
//! tests): command-line helpers here, and
//! - [`seed`]: SeaweedFS servers with `src`/`dst` stores, and the objects seeded into them;
//! - [`measure`]: what a run is measured with (getrusage, wait4 of a child, VmHWM, /proc,
//!   SeaweedFS request counters, load average);
//! - [`run`]: the two copiers both binaries time the same way, the engine in-process and a peer
//!   tool's shell command;
//! - [`report`]: medians, byte formatting, `RESULT {json}` lines and the tables made of them.

pub mod measure;
pub mod report;
pub mod run;
pub mod seed;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

/// The running binary's name (`engine-bench`, `job-bench`), for messages and file names.
pub fn program() -> String {
    std::env::args()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bench".into())
}

/// Prints `PROGRAM: msg` and exits with status 1.
pub fn die(msg: &str) -> ! {
    eprintln!("{}: {msg}", program());
    std::process::exit(1)
}

/// `-h` or `--help` among `args` (before a `--`): prints `usage` to stdout and exits with 0.
pub fn help(args: &[String], usage: &str) {
    if args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "-h" || a == "--help")
    {
        println!("{usage}");
        std::process::exit(0)
    }
}

/// `N`, `NKiB`, `NMiB` or `NGiB` in bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let (num, mul) = if let Some(n) = s.strip_suffix("GiB") {
        (n, GIB)
    } else if let Some(n) = s.strip_suffix("MiB") {
        (n, MIB)
    } else if let Some(n) = s.strip_suffix("KiB") {
        (n, KIB)
    } else {
        (s, 1)
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mul)
}

/// A comma-separated list (`1,3`).
pub fn parse_list<T: std::str::FromStr>(s: &str) -> Option<Vec<T>> {
    s.split(',').map(|x| x.trim().parse().ok()).collect()
}
