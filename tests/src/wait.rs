//! Polling with deadlines. Tests never sleep a fixed time to "let things settle": they poll a
//! condition and panic with a message naming what was awaited (and the last observation).

use std::time::{Duration, Instant};

/// How often conditions are re-checked.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `f` until it returns `Ok(T)`; panics after `timeout` with `desc` and the last `Err`.
pub fn wait_for<T>(desc: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {desc}; last observation: {last}");
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `f` until it returns true; panics after `timeout` naming `desc`.
pub fn wait_until(desc: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    wait_for(
        desc,
        timeout,
        || if f() { Ok(()) } else { Err("condition false".into()) },
    )
}

/// Polls `f` for `dur` and returns the first `Err` it gives (a condition that must *stay* true).
pub fn holds_for(dur: Duration, mut f: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let deadline = Instant::now() + dur;
    while Instant::now() < deadline {
        f()?;
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// How often [`until`] re-checks.
pub const ASYNC_POLL: Duration = Duration::from_millis(10);

/// [`wait_until`] for async tests: polls `f` every [`ASYNC_POLL`] without blocking the runtime
/// (the work being watched goes on meanwhile); panics after `timeout` naming `desc`.
pub async fn until(desc: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {desc}");
        }
        tokio::time::sleep(ASYNC_POLL).await;
    }
}
