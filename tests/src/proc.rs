//! Running a short-lived child process (meshctl, or meshd expected to exit) with a deadline.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished (or killed) child printed and how it ended.
#[derive(Debug, Clone)]
pub struct ProcOutput {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit code; `None` when killed by a signal or by the deadline.
    pub code: Option<i32>,
    /// Whether the deadline passed and the child was killed.
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl ProcOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(self.stdout.trim())
            .map_err(|e| format!("stdout of `{}` is not JSON ({e}): {:?}", self.cmdline, self.stdout))
    }

    /// stdout and stderr together (for "the message names X" checks).
    pub fn all_text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// A one-paragraph description for panic messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` -> code {:?}{}\n  stdout: {}\n  stderr: {}",
            self.cmdline,
            self.code,
            if self.timed_out {
                " (killed: deadline passed)"
            } else {
                ""
            },
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// Runs `cmd` to completion or until `timeout` (then kills it), capturing stdout and stderr.
pub fn run(mut cmd: Command, timeout: Duration) -> ProcOutput {
    let cmdline = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot spawn {cmdline}: {e}"),
    };
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    ProcOutput {
        cmdline,
        code: status.and_then(|s| s.code()),
        timed_out,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}
