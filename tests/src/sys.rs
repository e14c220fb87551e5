//! The one place of the workspace that calls the operating system through `unsafe` libc calls:
//! signals, process groups and death signals for the harness's children, a file lock, resource
//! usage for the benchmarks. Everything else uses these safe wrappers (the workspace lint warns
//! on `unsafe` anywhere else, and CI denies warnings).
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Sends `sig` to process `pid` (a negative pid: its process group).
pub fn kill(pid: i32, sig: i32) -> std::io::Result<()> {
    // SAFETY: kill has no memory effects; a bad pid is an error return.
    match unsafe { libc::kill(pid, sig) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Reaps child `pid` (blocking), ignoring its status.
pub fn reap(pid: i32) {
    // SAFETY: waitpid with a null status pointer is allowed.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
}

/// Makes the child started by `cmd` die with SIGKILL when this process dies, even if no Drop
/// runs (a test that panics in another thread, a harness killed by a timeout).
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Blocks until this process holds an exclusive lock on `file` (released when it is closed).
pub fn lock_exclusive(file: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: flock on a file descriptor we own for the duration of the call.
    match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Runs `f` when the process exits normally (after `main` returns).
pub fn at_exit(f: extern "C" fn()) {
    // SAFETY: registering a plain extern "C" fn with no captured state.
    unsafe { libc::atexit(f) };
}

/// This process's resource usage.
pub fn rusage_self() -> libc::rusage {
    // SAFETY: getrusage fills the zeroed struct.
    unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut r);
        r
    }
}

/// Whether this process runs as root (network namespaces and tc need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Clock ticks per second (for /proc CPU times).
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// Bytes available to unprivileged users on the filesystem of `path` (0 when unknown).
pub fn disk_avail(path: &std::path::Path) -> u64 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs fills the zeroed struct from a NUL-terminated path.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return 0;
        }
        s.f_bavail as u64 * s.f_frsize as u64
    }
}

/// `wait4(pid, WNOHANG)`: Ok(None) while child `pid` runs, Ok(Some((status, rusage))) once it
/// ended (and is reaped).
pub fn try_wait4(pid: i32) -> std::io::Result<Option<(i32, libc::rusage)>> {
    let mut st = 0;
    // SAFETY: wait4 on our own child, writing into a local int and a zeroed rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut st, libc::WNOHANG, &mut ru) };
    match r {
        r if r == pid => Ok(Some((st, ru))),
        r if r < 0 => Err(std::io::Error::last_os_error()),
        _ => Ok(None),
    }
}
