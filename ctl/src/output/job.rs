//! Job rendering: `cp|mv|sync` submissions, `job list|show|pause|resume|cancel|logs`, and the
//! progress message, progress line and final summary of `--wait` / `job watch`.

use mesh_proto::names::job_state as job_state_name;
use mesh_proto::v1::{Job, JobAction, JobCounters, JobEvent, JobOp, JobSpec, JobState, JobView, ListJobsResponse};
use serde::Serialize;

use super::format::{duration_ms, fields, json, rate, size, stale_note, table, timestamp, Format};

/// `copy`, `move` or `sync`.
pub fn op_name(op: i32) -> &'static str {
    match JobOp::try_from(op).unwrap_or(JobOp::Unspecified) {
        JobOp::Copy => "copy",
        JobOp::Move => "move",
        JobOp::Sync => "sync",
        JobOp::Unspecified => "unknown",
    }
}

/// `LOCATION:PATH` (`LOCATION:` for the root).
pub fn place(location: &str, path: &str) -> String {
    format!("{location}:{path}")
}

fn src_dst(spec: &JobSpec) -> String {
    format!(
        "{} → {}",
        place(&spec.src_location, &spec.src_path),
        place(&spec.dst_location, &spec.dst_path)
    )
}

/// Objects and bytes the job has finished with (copied, skipped or failed), for progress
/// displays: at most the totals known (while it runs, an object re-copied after a node failure
/// is counted twice until the job's final figures replace the running ones).
pub fn processed(c: &JobCounters) -> (u64, u64) {
    let objects = c.objects_done + c.objects_skipped + c.objects_failed;
    let bytes = c.bytes_done + c.bytes_skipped + c.bytes_failed;
    let cap = |n: u64, total: u64| if total > 0 { n.min(total) } else { n };
    (cap(objects, c.objects_total), cap(bytes, c.bytes_total))
}

/// Bytes a progress display shows: the finished objects' bytes plus the finished parts of the
/// objects still being copied (`bytes_in_flight`), at most the total known.
pub fn progress_bytes(v: &JobView) -> u64 {
    let c = v.job.as_ref().and_then(|j| j.counters).unwrap_or_default();
    let (_, bytes) = processed(&c);
    let b = bytes + v.bytes_in_flight;
    if c.bytes_total > 0 {
        b.min(c.bytes_total)
    } else {
        b
    }
}

fn eta(v: &JobView) -> String {
    if v.eta_ms == 0 {
        "-".into()
    } else {
        duration_ms(v.eta_ms as i64)
    }
}

fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

#[derive(Serialize)]
struct RuleJson<'a> {
    include: bool,
    glob: &'a str,
}

#[derive(Serialize)]
struct SpecJson<'a> {
    op: &'static str,
    src_location: &'a str,
    src_path: &'a str,
    dst_location: &'a str,
    dst_path: &'a str,
    delete: bool,
    tier: &'a str,
    rules: Vec<RuleJson<'a>>,
    verify: &'a str,
    storage_class: &'a str,
    sse: &'a str,
    kms_key_id: &'a str,
    bwlimit_bytes_per_sec: u64,
    dry_run: bool,
}

impl<'a> From<&'a JobSpec> for SpecJson<'a> {
    fn from(s: &'a JobSpec) -> Self {
        SpecJson {
            op: op_name(s.op),
            src_location: &s.src_location,
            src_path: &s.src_path,
            dst_location: &s.dst_location,
            dst_path: &s.dst_path,
            delete: s.delete,
            tier: &s.tier,
            rules: s
                .rules
                .iter()
                .map(|r| RuleJson {
                    include: r.include,
                    glob: &r.glob,
                })
                .collect(),
            verify: &s.verify,
            storage_class: &s.storage_class,
            sse: &s.sse,
            kms_key_id: &s.kms_key_id,
            bwlimit_bytes_per_sec: s.bwlimit_bytes_per_sec,
            dry_run: s.dry_run,
        }
    }
}

#[derive(Serialize)]
struct CountersJson {
    objects_total: u64,
    bytes_total: u64,
    objects_done: u64,
    bytes_done: u64,
    objects_skipped: u64,
    bytes_skipped: u64,
    objects_failed: u64,
    bytes_failed: u64,
    objects_deleted: u64,
}

impl From<&JobCounters> for CountersJson {
    fn from(c: &JobCounters) -> Self {
        CountersJson {
            objects_total: c.objects_total,
            bytes_total: c.bytes_total,
            objects_done: c.objects_done,
            bytes_done: c.bytes_done,
            objects_skipped: c.objects_skipped,
            bytes_skipped: c.bytes_skipped,
            objects_failed: c.objects_failed,
            bytes_failed: c.bytes_failed,
            objects_deleted: c.objects_deleted,
        }
    }
}

/// What a view adds to a job.
#[derive(Serialize)]
struct ViewJson<'a> {
    /// Bytes of the finished parts of objects still being copied (not yet in `counters`).
    bytes_in_flight: u64,
    bytes_per_sec: f64,
    objects_per_sec: f64,
    eta_ms: u64,
    tasks_running: u32,
    tasks_pending: u32,
    tasks_done: u32,
    nodes_running: &'a [u64],
    now_ms: u64,
}

#[derive(Serialize)]
struct FailureJson<'a> {
    key: &'a str,
    error: &'a str,
}

/// A job as JSON: its fields by their proto names, enums by name, the spec and counters as
/// objects, plus the derived view fields when there is a view.
#[derive(Serialize)]
struct JobJson<'a> {
    id: &'a str,
    op: &'static str,
    state: &'static str,
    source: String,
    destination: String,
    owner: &'a str,
    spec: SpecJson<'a>,
    counters: CountersJson,
    #[serde(flatten)]
    view: Option<ViewJson<'a>>,
    tasks_total: u32,
    open_tasks: u32,
    nodes_used: &'a [u64],
    created_at_ms: u64,
    started_at_ms: u64,
    ended_at_ms: u64,
    updated_at_ms: u64,
    paused_ms: u64,
    error: &'a str,
    warnings: u32,
    recopied: u64,
    report_key: &'a str,
    failures: Vec<FailureJson<'a>>,
    submitted_via: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    linearizable: Option<bool>,
}

fn job_json<'a>(j: &'a Job, spec: &'a JobSpec, counters: &JobCounters, v: Option<&'a JobView>) -> JobJson<'a> {
    JobJson {
        id: &j.id,
        op: op_name(spec.op),
        state: job_state_name(j.state),
        source: place(&spec.src_location, &spec.src_path),
        destination: place(&spec.dst_location, &spec.dst_path),
        owner: &j.owner,
        spec: spec.into(),
        counters: counters.into(),
        view: v.map(|v| ViewJson {
            bytes_in_flight: v.bytes_in_flight,
            bytes_per_sec: round3(v.bytes_per_sec),
            objects_per_sec: round3(v.objects_per_sec),
            eta_ms: v.eta_ms,
            tasks_running: v.tasks_running,
            tasks_pending: v.tasks_pending,
            tasks_done: v.tasks_done,
            nodes_running: &v.nodes_running,
            now_ms: v.now_ms,
        }),
        tasks_total: j.tasks_total,
        open_tasks: j.open_tasks,
        nodes_used: &j.nodes_used,
        created_at_ms: j.created_at_ms,
        started_at_ms: j.started_at_ms,
        ended_at_ms: j.ended_at_ms,
        updated_at_ms: j.updated_at_ms,
        paused_ms: j.paused_ms,
        error: &j.error,
        warnings: j.warnings,
        recopied: j.recopied,
        report_key: &j.report_key,
        failures: j
            .failures
            .iter()
            .map(|f| FailureJson {
                key: &f.key,
                error: &f.error,
            })
            .collect(),
        submitted_via: j.submitted_via,
        linearizable: None,
    }
}

fn render_view(v: &JobView, linearizable: Option<bool>) -> String {
    let default = Job::default();
    let j = v.job.as_ref().unwrap_or(&default);
    let spec = j.spec.clone().unwrap_or_default();
    let counters = j.counters.unwrap_or_default();
    let mut out = job_json(j, &spec, &counters, Some(v));
    out.linearizable = linearizable;
    json(&out)
}

/// `cp|mv|sync` without `--wait`: the job id (table), or the job (JSON).
pub fn job_submitted(j: &Job, format: Format) -> String {
    if format == Format::Json {
        let spec = j.spec.clone().unwrap_or_default();
        let counters = j.counters.unwrap_or_default();
        return json(&job_json(j, &spec, &counters, None));
    }
    format!("{}\n", j.id)
}

/// One line saying what was submitted (printed to stderr, so stdout is just the id).
pub fn job_submitted_note(j: &Job) -> String {
    let spec = j.spec.clone().unwrap_or_default();
    let mut opts: Vec<String> = Vec::new();
    if !spec.tier.is_empty() {
        opts.push(format!("tier {}", spec.tier));
    }
    if spec.delete {
        opts.push("deleting extraneous destination objects".into());
    }
    if !spec.rules.is_empty() {
        opts.push(format!("{} filter rule{}", spec.rules.len(), plural(spec.rules.len())));
    }
    if !spec.verify.is_empty() {
        opts.push(format!("verify {}", spec.verify));
    }
    if spec.bwlimit_bytes_per_sec > 0 {
        opts.push(format!("limit {}", rate(spec.bwlimit_bytes_per_sec as f64)));
    }
    if spec.dry_run {
        opts.push("dry run".into());
    }
    let opts = if opts.is_empty() {
        String::new()
    } else {
        format!(" ({})", opts.join(", "))
    };
    format!(
        "submitted job {}: {} {}{opts}\n",
        j.id,
        op_name(spec.op),
        src_dst(&spec)
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `job list`.
pub fn job_list(r: &ListJobsResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            jobs: Vec<JobJson<'a>>,
            linearizable: bool,
        }
        let parts: Vec<(&Job, JobSpec, JobCounters, &JobView)> = r
            .jobs
            .iter()
            .filter_map(|v| {
                let j = v.job.as_ref()?;
                Some((j, j.spec.clone().unwrap_or_default(), j.counters.unwrap_or_default(), v))
            })
            .collect();
        return json(&J {
            jobs: parts
                .iter()
                .map(|(j, spec, c, v)| job_json(j, spec, c, Some(v)))
                .collect(),
            linearizable: r.linearizable,
        });
    }
    let rows = r
        .jobs
        .iter()
        .filter_map(|v| v.job.as_ref())
        .map(|j| {
            let spec = j.spec.clone().unwrap_or_default();
            let c = j.counters.unwrap_or_default();
            let (objects, bytes) = processed(&c);
            vec![
                j.id.clone(),
                op_name(spec.op).to_string(),
                job_state_name(j.state).to_string(),
                src_dst(&spec),
                format!("{objects}/{}", c.objects_total),
                format!("{}/{}", size(bytes), size(c.bytes_total)),
                timestamp(j.created_at_ms),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "OP",
            "STATE",
            "SOURCE → DESTINATION",
            "OBJECTS",
            "BYTES",
            "CREATED",
        ],
        rows,
    );
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `job show`: always JSON.
pub fn job_show(v: &JobView, linearizable: bool) -> String {
    render_view(v, Some(linearizable))
}

/// The progress bar's message: state, objects, bytes, rate, ETA.
pub fn job_progress_message(v: &JobView) -> String {
    let default = Job::default();
    let j = v.job.as_ref().unwrap_or(&default);
    let c = j.counters.unwrap_or_default();
    let (objects, _) = processed(&c);
    format!(
        "{}: {objects}/{} objects, {}/{}, {}, ETA {}",
        job_state_name(j.state),
        c.objects_total,
        size(progress_bytes(v)),
        size(c.bytes_total),
        rate(v.bytes_per_sec),
        eta(v)
    )
}

/// One progress line of `--wait` / `job watch` when the output is not a terminal: the job id
/// and [`job_progress_message`].
pub fn job_progress_line(v: &JobView) -> String {
    let id = v.job.as_ref().map(|j| j.id.as_str()).unwrap_or("-");
    format!("{id} {}\n", job_progress_message(v))
}

/// The summary `--wait` and `job watch` end with: the final state and counters, rate, nodes,
/// report and error (table); the `job show` JSON (json).
pub fn job_summary(v: &JobView, format: Format) -> String {
    if format == Format::Json {
        return render_view(v, None);
    }
    let default = Job::default();
    let j = v.job.as_ref().unwrap_or(&default);
    let spec = j.spec.clone().unwrap_or_default();
    let c = j.counters.unwrap_or_default();
    let verb = match JobOp::try_from(spec.op) {
        Ok(JobOp::Move) => "moved",
        _ => "copied",
    };
    let dry = if spec.dry_run { " (dry run)" } else { "" };
    let mut pairs = vec![
        ("job", format!("{} {}", j.id, job_state_name(j.state))),
        ("operation", format!("{} {}{dry}", op_name(spec.op), src_dst(&spec))),
        (
            "objects",
            format!(
                "{} {verb}, {} skipped, {} failed of {}",
                c.objects_done, c.objects_skipped, c.objects_failed, c.objects_total
            ),
        ),
        (
            "bytes",
            format!(
                "{} {verb}, {} skipped, {} failed of {}",
                size(c.bytes_done),
                size(c.bytes_skipped),
                size(c.bytes_failed),
                size(c.bytes_total)
            ),
        ),
    ];
    if spec.delete || c.objects_deleted > 0 {
        pairs.push(("deleted", format!("{} objects", c.objects_deleted)));
    }
    let end = if j.ended_at_ms > 0 { j.ended_at_ms } else { v.now_ms };
    let took = if j.started_at_ms > 0 {
        let mut t = duration_ms(end.saturating_sub(j.started_at_ms) as i64);
        if j.paused_ms > 0 {
            t.push_str(&format!(" (paused {})", duration_ms(j.paused_ms as i64)));
        }
        t
    } else {
        "-".into()
    };
    pairs.push(("time", took));
    pairs.push((
        "rate",
        if v.bytes_per_sec > 0.0 {
            format!("{} average, {:.1} objects/s", rate(v.bytes_per_sec), v.objects_per_sec)
        } else {
            "-".into()
        },
    ));
    pairs.push(("nodes", ids(&j.nodes_used)));
    if j.recopied > 0 {
        pairs.push(("recopied", format!("{} objects written more than once", j.recopied)));
    }
    pairs.push((
        "report",
        if j.report_key.is_empty() {
            "-".into()
        } else {
            format!("{} (meshctl job report {})", j.report_key, j.id)
        },
    ));
    if !j.error.is_empty() {
        pairs.push(("error", j.error.clone()));
    }
    let mut out = fields(&pairs);
    if !j.failures.is_empty() {
        let shown = j.failures.len() as u64;
        let total = c.objects_failed.max(shown);
        if total > shown {
            out.push_str(&format!(
                "failures (first {shown} of {total}; all are in the report):\n"
            ));
        } else {
            out.push_str("failures:\n");
        }
        for f in &j.failures {
            out.push_str(&format!("  {}: {}\n", f.key, f.error));
        }
    }
    out
}

fn ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        "-".into()
    } else {
        ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// `job pause|resume|cancel`.
pub fn job_controlled(action: JobAction, v: &JobView, format: Format) -> String {
    if format == Format::Json {
        return render_view(v, None);
    }
    let default = Job::default();
    let j = v.job.as_ref().unwrap_or(&default);
    let state = job_state_name(j.state);
    match action {
        JobAction::Pause => format!(
            "paused job {} (its tasks keep their checkpoints; `meshctl job resume {}` continues it)\n",
            j.id, j.id
        ),
        JobAction::Resume => format!("resumed job {}: now {state}\n", j.id),
        JobAction::Cancel if j.state == JobState::Cancelling as i32 => format!(
            "cancelling job {}: open uploads are being aborted (`meshctl job watch {}` follows it)\n",
            j.id, j.id
        ),
        _ => format!("job {} is {state}\n", j.id),
    }
}

/// `job logs`: one line per event (UTC time, node or `cluster`, text).
pub fn job_logs(id: &str, events: &[JobEvent], format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct E<'a> {
            at_ms: u64,
            node_id: u64,
            text: &'a str,
        }
        #[derive(Serialize)]
        struct J<'a> {
            id: &'a str,
            events: Vec<E<'a>>,
        }
        return json(&J {
            id,
            events: events
                .iter()
                .map(|e| E {
                    at_ms: e.at_ms,
                    node_id: e.node_id,
                    text: &e.text,
                })
                .collect(),
        });
    }
    let who = |e: &JobEvent| {
        if e.node_id == 0 {
            "cluster".to_string()
        } else {
            format!("node {}", e.node_id)
        }
    };
    let width = events.iter().map(|e| who(e).len()).max().unwrap_or(0);
    events
        .iter()
        .map(|e| format!("{}  {:<width$}  {}\n", timestamp(e.at_ms), who(e), e.text))
        .collect()
}
