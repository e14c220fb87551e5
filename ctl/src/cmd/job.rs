//! `meshctl cp|mv|sync` and `meshctl job ...`.
//!
//! Client-side checks are limited to what is malformed on its face (an empty location name; a
//! bad `--bwlimit`, `--tier`, `--verify` or `--sse` is refused by clap): everything else is
//! validated by the node that takes the submit, so gRPC clients get the same rules. A submit the
//! server refuses as INVALID_ARGUMENT exits 2 like any usage error, with the server's message.
//!
//! `--wait` and `job watch` follow the job with `watch::follow`.

pub mod watch;

use std::io::Write;

use mesh_proto::v1::{
    ControlJobRequest, FilterRule, GetJobRequest, JobAction, JobLogsRequest, JobOp, JobReportRequest, JobSpec,
    JobState, ListJobsRequest, SubmitJobRequest,
};
use tonic::{Code, Status};

use super::session::{consistency, write_out, Session};
use crate::cli::{GlobalArgs, StateFilter, TransferArgs};
use crate::errors::{CliError, EXIT_USAGE};
use crate::output::{self, Format};

/// Splits `LOCATION:PATH`; `LOCATION:` and `LOCATION` name the location's root. Only an empty
/// location name is refused here (usage error); the rest is the server's to judge.
pub fn parse_place(what: &str, arg: &str) -> Result<(String, String), CliError> {
    let (location, path) = arg.split_once(':').unwrap_or((arg, ""));
    if location.trim().is_empty() {
        return Err(CliError::usage(format!(
            "{what} {arg:?} has no location name; write LOCATION:PATH (LOCATION: for its root)"
        ))
        .with_hint("see `meshctl location list`"));
    }
    Ok((location.to_string(), path.to_string()))
}

/// The JobSpec of `cp|mv|sync SRC DST [options]`.
pub fn job_spec(op: JobOp, a: &TransferArgs, delete: bool) -> Result<JobSpec, CliError> {
    let (src_location, src_path) = parse_place("SRC", &a.src)?;
    let (dst_location, dst_path) = parse_place("DST", &a.dst)?;
    let o = &a.opts;
    Ok(JobSpec {
        op: op as i32,
        src_location,
        src_path,
        dst_location,
        dst_path,
        delete,
        tier: o.tier.map(|t| t.as_str().to_string()).unwrap_or_default(),
        rules: o
            .filters
            .rules
            .iter()
            .map(|(include, glob)| FilterRule {
                include: *include,
                glob: glob.clone(),
            })
            .collect(),
        verify: o.verify.map(|v| v.as_str().to_string()).unwrap_or_default(),
        storage_class: o.storage_class.clone().unwrap_or_default(),
        sse: match o.sse.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("aes256") => "AES256".into(),
            Some(other) => other.to_string(),
            None => String::new(),
        },
        kms_key_id: o.kms_key.clone().unwrap_or_default(),
        bwlimit_bytes_per_sec: o.bwlimit.unwrap_or(0),
        dry_run: o.dry_run,
    })
}

/// A server refusal of a submit: INVALID_ARGUMENT is the user's input (exit 2).
fn submit_error(s: &Session, status: Status) -> CliError {
    let code = status.code();
    let mut e = s.fail(status);
    if code == Code::InvalidArgument {
        e.exit_code = EXIT_USAGE;
    }
    e
}

/// `cp|mv|sync SRC DST [options] [--wait]`.
pub async fn transfer(
    g: &GlobalArgs,
    op: JobOp,
    a: TransferArgs,
    delete: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let spec = job_spec(op, &a, delete)?;
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .job
        .submit(SubmitJobRequest { spec: Some(spec) })
        .await
        .map_err(|e| submit_error(&s, e))?;
    let job = resp
        .into_inner()
        .job
        .ok_or_else(|| CliError::failed("the node accepted the job but did not return it"))?;
    let note = output::job_submitted_note(&job);
    if !a.opts.wait {
        eprint!("{note}");
        return write_out(out, &output::job_submitted(&job, g.output));
    }
    // Waiting: the id first (so it is known if the wait is interrupted), then the progress.
    if g.output == Format::Table {
        write_out(out, &output::job_submitted(&job, Format::Table))?;
    }
    eprint!("{note}");
    watch::follow(g, s, &job.id, out).await
}

/// `job list [--state S] [--local]`.
pub async fn job_list(g: &GlobalArgs, state: Option<StateFilter>, local: bool) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let req = ListJobsRequest {
        state: state
            .map(|st| st.state() as i32)
            .unwrap_or(JobState::Unspecified as i32),
        consistency: consistency(local),
    };
    let resp = s.clients.job.list(req).await.map_err(|e| s.fail(e))?;
    Ok(output::job_list(resp.get_ref(), g.output))
}

fn id_arg(id: &str) -> Result<(), CliError> {
    if id.trim().is_empty() {
        return Err(CliError::usage("the job id is empty").with_hint("see `meshctl job list`"));
    }
    Ok(())
}

/// `job show ID [--local]`: always JSON.
pub async fn job_show(g: &GlobalArgs, id: String, local: bool) -> Result<String, CliError> {
    id_arg(&id)?;
    let mut s = Session::open(g).await?;
    let req = GetJobRequest {
        id,
        consistency: consistency(local),
    };
    let resp = s.clients.job.get(req).await.map_err(|e| s.fail(e))?.into_inner();
    Ok(output::job_show(&resp.job.unwrap_or_default(), resp.linearizable))
}

/// `job watch ID`.
pub async fn job_watch(g: &GlobalArgs, id: String, out: &mut dyn Write) -> Result<(), CliError> {
    id_arg(&id)?;
    let s = Session::open(g).await?;
    watch::follow(g, s, &id, out).await
}

/// `job pause|resume|cancel ID`.
pub async fn job_control(g: &GlobalArgs, id: String, action: JobAction) -> Result<String, CliError> {
    id_arg(&id)?;
    let mut s = Session::open(g).await?;
    let req = ControlJobRequest {
        id,
        action: action as i32,
    };
    let resp = s.clients.job.control(req).await.map_err(|e| s.fail(e))?.into_inner();
    Ok(output::job_controlled(action, &resp.job.unwrap_or_default(), g.output))
}

/// `job logs ID`.
pub async fn job_logs(g: &GlobalArgs, id: String) -> Result<String, CliError> {
    id_arg(&id)?;
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .job
        .logs(JobLogsRequest { id: id.clone() })
        .await
        .map_err(|e| s.fail(e))?;
    Ok(output::job_logs(&id, &resp.get_ref().events, g.output))
}

/// Bytes asked for per page of `job report`.
pub const REPORT_PAGE: u64 = 4 << 20;

/// `job report ID [--max-bytes SIZE]`: the report's JSON lines, as stored, page by page (all of
/// it, or whole lines up to SIZE).
pub async fn job_report(
    g: &GlobalArgs,
    id: String,
    max_bytes: Option<u64>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    id_arg(&id)?;
    let mut s = Session::open(g).await?;
    let mut offset = 0u64;
    let mut written = 0u64;
    loop {
        let page = match max_bytes {
            Some(m) => REPORT_PAGE.min(m - written).max(1),
            None => REPORT_PAGE,
        };
        let req = JobReportRequest {
            id: id.clone(),
            max_bytes: page,
            offset,
        };
        let mut r = s.clients.job.report(req).await.map_err(|e| s.fail(e))?.into_inner();
        let partial_line = r.truncated && !r.content.ends_with(b"\n");
        if max_bytes.is_some() && partial_line && written > 0 {
            // The budget left is shorter than the next line: print whole lines only.
            r.content.clear();
        }
        match out.write_all(&r.content).and_then(|_| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(CliError::failed(format!("cannot write the output: {e}"))),
            Ok(()) => {}
        }
        written += r.content.len() as u64;
        let limit_reached = max_bytes.is_some_and(|m| written >= m) || (max_bytes.is_some() && r.content.is_empty());
        // A node without paging answers truncated without a next offset: stop there too.
        if r.truncated && (r.next_offset == 0 || limit_reached || r.content.is_empty()) {
            let whole = if r.total_bytes > 0 {
                format!("{} bytes", r.total_bytes)
            } else {
                "larger".to_string()
            };
            eprintln!(
                "note: printed {written} bytes of the report; the whole report ({whole}) is {} (omit --max-bytes for all of it)",
                r.location
            );
            return Ok(());
        }
        if !r.truncated {
            return Ok(());
        }
        offset = r.next_offset;
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places() {
        assert_eq!(
            parse_place("SRC", "photos:raw/2024").unwrap(),
            ("photos".into(), "raw/2024".into())
        );
        assert_eq!(parse_place("SRC", "photos:").unwrap(), ("photos".into(), "".into()));
        assert_eq!(parse_place("SRC", "photos").unwrap(), ("photos".into(), "".into()));
        let e = parse_place("DST", ":x").unwrap_err();
        assert_eq!(e.exit_code, EXIT_USAGE);
        assert!(e.message.contains("DST \":x\" has no location name"), "{}", e.message);
        assert!(parse_place("SRC", "").is_err());
    }

    fn parse(args: &[&str]) -> Result<crate::cli::Cli, clap::Error> {
        use clap::Parser;
        crate::cli::Cli::try_parse_from(std::iter::once("meshctl").chain(args.iter().copied()))
    }

    #[test]
    fn filter_rules_keep_their_command_line_order() {
        let cli = parse(&[
            "cp",
            "a:x",
            "b:",
            "--include",
            "1",
            "--exclude",
            "2",
            "--dry-run",
            "--include",
            "3",
            "--exclude=4",
        ])
        .unwrap();
        let crate::cli::Command::Cp(a) = cli.command else {
            panic!("not cp")
        };
        let spec = job_spec(JobOp::Copy, &a, false).unwrap();
        let rules: Vec<(bool, &str)> = spec.rules.iter().map(|r| (r.include, r.glob.as_str())).collect();
        assert_eq!(rules, [(true, "1"), (false, "2"), (true, "3"), (false, "4")]);
        assert!(spec.dry_run);
        assert_eq!((spec.src_path.as_str(), spec.dst_path.as_str()), ("x", ""));
    }

    #[test]
    fn rates_tiers_and_sse() {
        let spec_of = |args: &[&str]| {
            let cli = parse(args).unwrap();
            let crate::cli::Command::Sync(a) = cli.command else {
                panic!("not sync")
            };
            job_spec(JobOp::Sync, &a.transfer, a.delete).unwrap()
        };
        let s = spec_of(&[
            "sync",
            "a:",
            "b:",
            "--bwlimit",
            "50MiB/s",
            "--tier",
            "express",
            "--sse",
            "aes256",
            "--delete",
        ]);
        assert_eq!(s.bwlimit_bytes_per_sec, 50 << 20);
        assert_eq!((s.tier.as_str(), s.sse.as_str()), ("express", "AES256"));
        assert!(s.delete);
        assert_eq!(
            spec_of(&["sync", "a:", "b:", "--bwlimit", "100M"]).bwlimit_bytes_per_sec,
            100 << 20
        );
        assert_eq!(
            spec_of(&["sync", "a:", "b:", "--bwlimit", "1GB/s"]).bwlimit_bytes_per_sec,
            1_000_000_000
        );
        assert_eq!(
            spec_of(&["sync", "a:", "b:", "--sse", "aws:kms", "--kms-key", "k"]).sse,
            "aws:kms"
        );
        for bad in [
            &["sync", "a:", "b:", "--bwlimit", "50 MiB/s"][..],
            &["sync", "a:", "b:", "--bwlimit", "/s"],
            &["sync", "a:", "b:", "--tier", "gold"],
            &["sync", "a:", "b:", "--verify", "crc"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
        let e = parse(&["cp", "a:", "b:", "--bwlimit", "10Mbit"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--bwlimit") && e.contains("50MiB/s"), "{e}");
    }
}
