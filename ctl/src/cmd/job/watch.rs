//! The progress loop of `--wait` and `job watch`.
//!
//! `--wait` and `job watch` follow the job through the `JobService.Watch` stream (polling
//! `JobService.Get` every 500 ms against a node too old to stream) and show a progress bar on a
//! terminal (a plain line every 2 s otherwise). They outlive the node they talk to: on a
//! transient failure they move on to the next address of a comma-separated `--addr` list, or
//! keep retrying the one address, for up to 30 s without an answer before giving up.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mesh_proto::names::{is_terminal_job_state as is_terminal, job_state as job_state_name};
use mesh_proto::v1::{GetJobRequest, JobState, JobView, ReadConsistency, WatchJobRequest};
use tonic::{Code, Status};

use crate::cli::GlobalArgs;
use crate::client::{addresses, connect_to, parse_addr};
use crate::cmd::session::{write_out, Session};
use crate::errors::CliError;
use crate::output;

/// How often `--wait` / `job watch` ask for the job when polling (and wait after a failure).
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// How often a plain progress line is printed when the output is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(2);
/// How long `--wait` / `job watch` keep trying without any answer before giving up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// How progress is shown: a bar on a terminal, plain lines otherwise.
enum Display {
    Bar(ProgressBar),
    Lines { last: Option<(Instant, i32)> },
}

impl Display {
    fn new() -> Display {
        if !std::io::stderr().is_terminal() {
            return Display::Lines { last: None };
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(120));
        Display::Bar(bar)
    }

    fn update(&mut self, v: &JobView) {
        let job = v.job.clone().unwrap_or_default();
        match self {
            Display::Bar(bar) => {
                let c = job.counters.unwrap_or_default();
                let bytes = output::progress_bytes(v);
                bar.set_length(c.bytes_total.max(bytes));
                bar.set_position(bytes);
                bar.set_message(output::job_progress_message(v));
            }
            Display::Lines { last } => {
                let due = match last {
                    None => true,
                    Some((at, state)) => at.elapsed() >= LINE_EVERY || *state != job.state,
                };
                if due {
                    eprint!("{}", output::job_progress_line(v));
                    *last = Some((Instant::now(), job.state));
                }
            }
        }
    }

    fn note(&self, msg: &str) {
        match self {
            Display::Bar(bar) => bar.println(msg),
            Display::Lines { .. } => eprintln!("{msg}"),
        }
    }

    fn finish(&self) {
        if let Display::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Whether a failed Get is worth retrying (the node or the cluster may come back) rather than a
/// final answer about the job or the caller.
pub fn transient(status: &Status) -> bool {
    !matches!(
        status.code(),
        Code::NotFound
            | Code::InvalidArgument
            | Code::Unauthenticated
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::Unimplemented
            | Code::OutOfRange
    )
}

/// Whether a job that ended in `state` counts as a success (exit 0).
pub fn succeeded(state: i32) -> bool {
    state == JobState::Completed as i32 || state == JobState::CompletedWithWarnings as i32
}

/// The error a job that did not succeed exits with (after its summary was printed).
pub fn ended_badly(v: &JobView) -> CliError {
    let job = v.job.clone().unwrap_or_default();
    let state = job_state_name(job.state);
    let mut e = if job.error.is_empty() {
        CliError::failed(format!("job {} ended {state}", job.id))
    } else {
        CliError::failed(format!("job {} ended {state}: {}", job.id, job.error))
    };
    if !job.report_key.is_empty() {
        e = e.with_hint(format!("see `meshctl job report {}` for every object", job.id));
    } else {
        e = e.with_hint(format!("see `meshctl job logs {}`", job.id));
    }
    e
}

/// What one view means for the follower: the job ended (with the command's result), or not yet.
fn on_view(g: &GlobalArgs, display: &mut Display, v: &JobView, out: &mut dyn Write) -> Option<Result<(), CliError>> {
    display.update(v);
    let state = v.job.as_ref().map(|j| j.state).unwrap_or_default();
    if !is_terminal(state) {
        return None;
    }
    display.finish();
    if let Err(e) = write_out(out, &output::job_summary(v, g.output)) {
        return Some(Err(e));
    }
    Some(if succeeded(state) { Ok(()) } else { Err(ended_badly(v)) })
}

/// Follows job `id` until it ends; prints its summary to `out`; exit 0 only if it completed.
/// Streams `JobService.Watch`; polls `Get` every [`POLL_EVERY`] against a node that does not
/// know Watch (older version).
pub(crate) async fn follow(g: &GlobalArgs, mut s: Session, id: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let addrs = addresses(&s.opts.addr);
    let mut at = addrs
        .iter()
        .position(|a| parse_addr(a).map(|t| t.authority()).ok().as_deref() == Some(s.clients.addr.as_str()))
        .unwrap_or(0);
    let mut display = Display::new();
    let mut failing_since: Option<Instant> = None;
    let mut streaming = true;
    loop {
        // One attempt: a whole watch stream, or one Get. Ok(()) = polled once without an end.
        let attempt: Result<(), Status> = if streaming {
            let req = WatchJobRequest {
                id: id.to_string(),
                consistency: ReadConsistency::Linearizable as i32,
            };
            match s.clients.job.watch(req).await {
                Ok(resp) => {
                    let mut stream = resp.into_inner();
                    loop {
                        match stream.message().await {
                            Ok(Some(v)) => {
                                if failing_since.take().is_some() {
                                    display.note(&format!("back in contact through {}", s.clients.addr));
                                }
                                if let Some(end) = on_view(g, &mut display, &v, out) {
                                    return end;
                                }
                            }
                            Ok(None) => break Err(Status::unavailable("the watch ended before the job did")),
                            Err(st) => break Err(st),
                        }
                    }
                }
                Err(st) if st.code() == Code::Unimplemented => {
                    streaming = false;
                    continue;
                }
                Err(st) => Err(st),
            }
        } else {
            let req = GetJobRequest {
                id: id.to_string(),
                consistency: ReadConsistency::Linearizable as i32,
            };
            match s.clients.job.get(req).await {
                Ok(resp) => {
                    if failing_since.take().is_some() {
                        display.note(&format!("back in contact through {}", s.clients.addr));
                    }
                    let v = resp.into_inner().job.unwrap_or_default();
                    if let Some(end) = on_view(g, &mut display, &v, out) {
                        return end;
                    }
                    Ok(())
                }
                Err(st) => Err(st),
            }
        };
        if let Err(status) = attempt {
            let transient = transient(&status);
            let err = s.fail(status);
            if !transient {
                display.finish();
                return Err(err);
            }
            let first = failing_since.is_none();
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= GIVE_UP_AFTER {
                display.finish();
                return Err(CliError::failed(format!(
                    "no node answered for {}s while watching job {id}: {}",
                    GIVE_UP_AFTER.as_secs(),
                    err.message
                ))
                .with_hint(format!(
                    "the job goes on without meshctl; `meshctl job watch {id}` follows it again (give several nodes with --addr a,b,c to move on when one goes away)"
                )));
            }
            if first {
                display.note(&format!("{}; retrying", err.message));
            }
            if addrs.len() > 1 {
                for step in 1..=addrs.len() {
                    let i = (at + step) % addrs.len();
                    if let Ok(c) = connect_to(&s.opts, &addrs[i]).await {
                        if i != at {
                            display.note(&format!("watching through {}", c.addr));
                        }
                        s.clients = c;
                        at = i;
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert!(succeeded(JobState::Completed as i32));
        assert!(succeeded(JobState::CompletedWithWarnings as i32));
        assert!(!succeeded(JobState::Failed as i32));
        assert!(!succeeded(JobState::Cancelled as i32));
        assert!(transient(&Status::unavailable("gone")));
        assert!(transient(&Status::deadline_exceeded("slow")));
        assert!(transient(&Status::unknown("h2 protocol error")));
        assert!(!transient(&Status::not_found("no job")));
        assert!(!transient(&Status::unauthenticated("token")));
    }
}
