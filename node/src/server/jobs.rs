//! JobService: copy, move and sync jobs (`meshctl cp|mv|sync`, `meshctl job ...`).
//!
//! - **Submit** validates the spec on this node before anything is proposed, with messages that
//!   say what to fix: the state-dependent rules of `mesh_raft::jobs::validate_spec` (locations
//!   exist, paths stay inside them, no overlap for move/sync, tier, verify, SSE) checked against a
//!   linearizable view of the state, plus what only a node can check (globs compiled by the
//!   engine's own `Filter`, so the worker can never refuse what was accepted; S3-only options on
//!   a directory destination). A refused submit creates nothing. Paths are normalised
//!   (`photos` means the folder `photos/`). The job id is `j-` + 12 random hex digits.
//! - **List / Get** return `JobView`s: the job plus what is derived at read time on this node's
//!   clock — average rate (paused time excluded), ETA, the tasks running / pending / done and
//!   the nodes running them ([`job_view`]). Reads are linearizable unless asked otherwise.
//! - **Control** proposes pause / resume / cancel; the state machine refuses a transition that
//!   does not apply (FAILED_PRECONDITION).
//! - **Watch** streams the job's view as this node applies changes to it (see `follow`), so
//!   clients stop polling `Get`.
//! - **Logs** returns the job's events; **Report** reads the report object the job wrote when it
//!   ended (through the location's store, like the worker) a page at a time: at most `max_bytes`
//!   from `offset`, cut at a line boundary, with the offset of the next page.

use std::sync::Arc;

use futures::StreamExt;
use mesh_proto::v1::{self as pb, JobAction, JobOp, JobState, LocationKind, ReadConsistency, TaskState};
use mesh_proto::{names, rules};
use tonic::{Request, Response, Status};

use super::consistency;
use crate::error::ApiError;
use crate::node::{now_ms, Node};
use crate::secrets;
use crate::server::auth::Principal;
use mesh_engine::filter::Filter;

/// Report bytes per page when the request does not say (`max_bytes` 0).
pub const DEFAULT_REPORT_BYTES: u64 = 16 << 20;
/// Most report bytes one call returns, whatever it asks for (gRPC messages stay reasonable).
pub const MAX_REPORT_BYTES: u64 = 64 << 20;
/// Submits retried with a fresh id when the random one is taken.
const ID_ATTEMPTS: usize = 3;

/// The service; clones share the node and the S3 client cache.
#[derive(Clone)]
pub struct JobRpc {
    pub node: Arc<Node>,
    clients: Arc<mesh_engine::S3Clients>,
}

impl JobRpc {
    pub fn new(node: Arc<Node>) -> JobRpc {
        JobRpc {
            node,
            clients: Arc::new(mesh_engine::S3Clients::new()),
        }
    }

    /// The job `id` from this node's applied state, NOT_FOUND if there is none.
    fn job(&self, id: &str) -> Result<pb::Job, ApiError> {
        self.node.state.job(id).ok_or_else(|| not_found(id))
    }

    /// The view of job `id` as this node sees it now.
    fn view(&self, job: pb::Job) -> pb::JobView {
        let tasks = self.node.state.job_tasks(&job.id);
        job_view(job, &tasks, now_ms())
    }
}

/// A watched job's view is sent again after this long even when nothing changed.
pub const WATCH_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a watcher is sent anew when it changes: the view without the read-time clock and rates.
fn watched(v: &pb::JobView) -> pb::JobView {
    pb::JobView {
        now_ms: 0,
        bytes_per_sec: 0.0,
        objects_per_sec: 0.0,
        eta_ms: 0,
        ..v.clone()
    }
}

/// Feeds one `Watch` stream from this node's applied state until the job ends, the client goes
/// away or the node shuts down.
async fn follow(node: Arc<Node>, id: String, tx: tokio::sync::mpsc::Sender<Result<pb::JobView, Status>>) {
    let mut applied = node.applied_watch();
    let mut last: Option<(pb::JobView, tokio::time::Instant)> = None;
    loop {
        let Some(job) = node.state.job(&id) else {
            let _ = tx.send(Err(Status::from(not_found(&id)))).await;
            return;
        };
        let terminal = names::is_terminal_job_state(job.state);
        let tasks = node.state.job_tasks(&id);
        let v = job_view(job, &tasks, now_ms());
        let due = match &last {
            None => true,
            Some((prev, at)) => watched(prev) != watched(&v) || at.elapsed() >= WATCH_KEEPALIVE,
        };
        if due {
            if tx.send(Ok(v.clone())).await.is_err() {
                return;
            }
            last = Some((v, tokio::time::Instant::now()));
        }
        if terminal {
            return;
        }
        tokio::select! {
            _ = node.shutdown.cancelled() => {
                let _ = tx
                    .send(Err(Status::unavailable("this node is shutting down; watch the job through another node")))
                    .await;
                return;
            }
            _ = tx.closed() => return,
            alive = applied.changed() => {
                if !alive {
                    return;
                }
            }
            _ = tokio::time::sleep(WATCH_KEEPALIVE) => {}
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("job {id} not found; see `meshctl job list`"))
}

fn id_arg(id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() {
        return Err(ApiError::InvalidArgument(
            "a job id is needed (like j-0123456789ab; see `meshctl job list`)".into(),
        ));
    }
    Ok(())
}

/// A fresh job id: `j-` and 12 lowercase hex digits.
pub fn new_job_id() -> String {
    format!("j-{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// The include/exclude rules compiled as the worker will compile them.
pub fn compile_rules(rules: &[pb::FilterRule]) -> Result<Filter, ApiError> {
    let mut f = Filter::new();
    for r in rules {
        let flag = if r.include { "--include" } else { "--exclude" };
        if r.glob.is_empty() {
            return Err(ApiError::InvalidArgument(format!("{flag}: the pattern is empty")));
        }
        let added = if r.include {
            f.include(&r.glob)
        } else {
            f.exclude(&r.glob)
        };
        f = added.map_err(|e| {
            ApiError::InvalidArgument(format!(
                "{flag} {:?}: {}; patterns are globs relative to the source path (`*` within a folder, `**` across folders, `?`, `[abc]`, `{{a,b}}`)",
                r.glob, e.detail
            ))
        })?;
    }
    Ok(f)
}

/// Every check of a (normalised) spec that can be made before proposing it, against the state
/// in `tables`. The state machine repeats the state-dependent ones when it applies the submit.
pub fn validate(tables: &mesh_raft::Tables, spec: &pb::JobSpec) -> Result<(), ApiError> {
    let invalid = ApiError::InvalidArgument;
    rules::check_spec_bounds(spec).map_err(invalid)?;
    for (what, name) in [("source", &spec.src_location), ("destination", &spec.dst_location)] {
        if name.is_empty() {
            return Err(invalid(format!(
                "the {what} needs a location: LOCATION:PATH (see `meshctl location list`)"
            )));
        }
    }
    mesh_raft::jobs::validate_spec(tables, spec).map_err(invalid)?;
    if !spec.storage_class.is_empty() {
        rules::validate_storage_class(&spec.storage_class).map_err(|e| invalid(format!("--storage-class: {e}")))?;
    }
    if let Some(dst) = tables.locations.get(&spec.dst_location) {
        if dst.kind() == LocationKind::S3 && !spec.storage_class.is_empty() {
            rules::check_storage_class_for(&dst.endpoint, &spec.storage_class)
                .map_err(|e| invalid(format!("--storage-class: {e}")))?;
        }
        if dst.kind() == LocationKind::Fs {
            let s3_only = [
                ("--storage-class", !spec.storage_class.is_empty()),
                ("--sse", !spec.sse.is_empty()),
                ("--kms-key", !spec.kms_key_id.is_empty()),
            ];
            if let Some((flag, _)) = s3_only.iter().find(|(_, set)| *set) {
                return Err(invalid(format!(
                    "{flag} applies to S3 destinations only; location {} is a directory",
                    spec.dst_location
                )));
            }
        }
    }
    compile_rules(&spec.rules)?;
    Ok(())
}

/// Which tasks of a job run, wait and are finished, and on which nodes.
fn task_counts(tasks: &[pb::Task]) -> (u32, u32, u32, Vec<u64>) {
    let (mut running, mut pending, mut done) = (0u32, 0u32, 0u32);
    let mut nodes: Vec<u64> = Vec::new();
    for t in tasks {
        match TaskState::try_from(t.state).unwrap_or(TaskState::Unspecified) {
            TaskState::Assigned => {
                running += 1;
                if t.node_id != 0 {
                    nodes.push(t.node_id);
                }
            }
            TaskState::Pending | TaskState::Blocked => pending += 1,
            TaskState::Done => done += 1,
            TaskState::Failed | TaskState::Unspecified => {}
        }
    }
    nodes.sort_unstable();
    nodes.dedup();
    (running, pending, done, nodes)
}

/// Milliseconds job `j` has been copying up to `now`: since it started, paused time excluded
/// (a finished job counts up to its end).
pub fn active_ms(j: &pb::Job, now: u64) -> u64 {
    if j.started_at_ms == 0 {
        return 0;
    }
    let end = if names::is_terminal_job_state(j.state) && j.ended_at_ms > 0 {
        j.ended_at_ms
    } else {
        now
    };
    let paused_now = if j.paused_at_ms > 0 {
        end.saturating_sub(j.paused_at_ms)
    } else {
        0
    };
    end.saturating_sub(j.started_at_ms)
        .saturating_sub(j.paused_ms)
        .saturating_sub(paused_now)
}

/// The view of a job: rates averaged over its active time (on the clock `now`), the ETA of a
/// running job (bytes still to copy at that rate; 0 when unknown), its tasks and nodes.
pub fn job_view(job: pb::Job, tasks: &[pb::Task], now: u64) -> pb::JobView {
    let c = job.counters.unwrap_or_default();
    let bytes_in_flight: u64 = tasks
        .iter()
        .filter(|t| t.state == TaskState::Assigned as i32)
        .map(|t| t.counters.map(|c| c.bytes_in_flight).unwrap_or(0))
        .sum();
    let active = active_ms(&job, now);
    let (bytes_per_sec, objects_per_sec) = if active > 0 {
        let secs = active as f64 / 1000.0;
        (
            (c.bytes_done + bytes_in_flight) as f64 / secs,
            c.objects_done as f64 / secs,
        )
    } else {
        (0.0, 0.0)
    };
    let eta_ms = if job.state == JobState::Running as i32 && bytes_per_sec > 0.0 {
        let left = c
            .bytes_total
            .saturating_sub(c.bytes_done)
            .saturating_sub(bytes_in_flight)
            .saturating_sub(c.bytes_skipped)
            .saturating_sub(c.bytes_failed);
        (left as f64 / bytes_per_sec * 1000.0).round() as u64
    } else {
        0
    };
    let (tasks_running, tasks_pending, mut tasks_done, nodes_running) = task_counts(tasks);
    if tasks.is_empty() && names::is_terminal_job_state(job.state) {
        // Compacted: the tasks are gone, the job row keeps how many there were.
        tasks_done = job.tasks_total;
    }
    pb::JobView {
        job: Some(job),
        bytes_per_sec,
        objects_per_sec,
        eta_ms,
        tasks_running,
        tasks_pending,
        tasks_done,
        nodes_running,
        now_ms: now,
        bytes_in_flight,
    }
}

/// Sorts jobs newest first (by creation time, then id).
pub fn newest_first(jobs: &mut [pb::Job]) {
    jobs.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| b.id.cmp(&a.id)));
}

/// Splits a report key `LOCATION:PATH`.
pub fn split_report_key(key: &str) -> Option<(&str, &str)> {
    let (loc, path) = key.split_once(':')?;
    if loc.is_empty() || path.is_empty() {
        return None;
    }
    Some((loc, path))
}

fn owner(p: Option<&Principal>) -> String {
    match p {
        // One root token today; users and access keys will name themselves here.
        Some(Principal::Root) | None => "root".into(),
        Some(Principal::Peer) => "node".into(),
    }
}

#[tonic::async_trait]
impl pb::job_service_server::JobService for JobRpc {
    async fn submit(&self, req: Request<pb::SubmitJobRequest>) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("SubmitJob");
        let owner = owner(req.extensions().get::<Principal>());
        let spec = req
            .into_inner()
            .spec
            .ok_or_else(|| ApiError::InvalidArgument("SubmitJob needs a job spec".into()))?;
        let spec = rules::normalize_spec(&spec);
        if JobOp::try_from(spec.op).unwrap_or(JobOp::Unspecified) == JobOp::Unspecified {
            return Err(ApiError::InvalidArgument("the job needs an operation: copy, move or sync".into()).into());
        }
        // Validate against the latest state (a location added a moment ago on another node counts).
        self.node.read_barrier(ReadConsistency::Linearizable).await?;
        validate(&self.node.state.snapshot().tables, &spec)?;
        let mut last = None;
        for _ in 0..ID_ATTEMPTS {
            let id = new_job_id();
            let job = pb::Job {
                id: id.clone(),
                spec: Some(spec.clone()),
                owner: owner.clone(),
                submitted_via: self.node.id,
                ..Default::default()
            };
            let cmd = pb::Command {
                at_ms: 0, // stamped by write()
                kind: Some(pb::command::Kind::SubmitJob(pb::SubmitJob { job: Some(job) })),
            };
            let outcome = self.node.write(cmd).await;
            let applied = match outcome {
                Ok(_) => true,
                Err(e @ ApiError::AlreadyExists(_)) => {
                    // Either the id is taken, or write() retried a proposal that had already
                    // been applied (an answer lost in a leader change): then the job is ours.
                    self.node.read_barrier(ReadConsistency::Linearizable).await?;
                    let ours = self.node.state.job(&id).is_some_and(|j| {
                        j.spec.as_ref() == Some(&spec) && j.submitted_via == self.node.id && j.owner == owner
                    });
                    last = Some(e);
                    ours
                }
                Err(e) => return Err(e.into()),
            };
            if applied {
                // Applied on the leader; wait until this node has it too.
                self.node.read_barrier(ReadConsistency::Linearizable).await?;
                let job = self.node.state.job(&id).ok_or_else(|| {
                    ApiError::Internal(format!("job {id} was applied but is not in this node's state"))
                })?;
                tracing::info!(job = %id, op = names::job_op(spec.op), src = %spec.src_location, dst = %spec.dst_location, "job submitted");
                return Ok(Response::new(pb::SubmitJobResponse { job: Some(job) }));
            }
        }
        Err(last
            .unwrap_or_else(|| ApiError::Internal("no job id could be chosen".into()))
            .into())
    }

    async fn list(&self, req: Request<pb::ListJobsRequest>) -> Result<Response<pb::ListJobsResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("ListJobs");
        let r = req.into_inner();
        let linearizable = self.node.read_barrier(consistency(r.consistency)).await?;
        let mut jobs: Vec<pb::Job> = self
            .node
            .state
            .jobs()
            .into_iter()
            .filter(|j| r.state == JobState::Unspecified as i32 || j.state == r.state)
            .collect();
        newest_first(&mut jobs);
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.into_iter().map(|j| self.view(j)).collect(),
            linearizable,
        }))
    }

    async fn get(&self, req: Request<pb::GetJobRequest>) -> Result<Response<pb::GetJobResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("GetJob");
        let r = req.into_inner();
        id_arg(&r.id)?;
        let linearizable = self.node.read_barrier(consistency(r.consistency)).await?;
        let job = self.job(&r.id)?;
        Ok(Response::new(pb::GetJobResponse {
            job: Some(self.view(job)),
            linearizable,
        }))
    }

    type WatchStream = tonic::codegen::BoxStream<pb::JobView>;

    async fn watch(&self, req: Request<pb::WatchJobRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let _t = self.node.metrics.rpc_timer("WatchJob");
        let r = req.into_inner();
        id_arg(&r.id)?;
        self.node.read_barrier(consistency(r.consistency)).await?;
        self.job(&r.id)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(follow(self.node.clone(), r.id, tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn control(&self, req: Request<pb::ControlJobRequest>) -> Result<Response<pb::ControlJobResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("ControlJob");
        let by = owner(req.extensions().get::<Principal>());
        let r = req.into_inner();
        id_arg(&r.id)?;
        let action = JobAction::try_from(r.action).unwrap_or(JobAction::Unspecified);
        if action == JobAction::Unspecified {
            return Err(ApiError::InvalidArgument("the action must be pause, resume or cancel".into()).into());
        }
        self.node.read_barrier(ReadConsistency::Linearizable).await?;
        self.job(&r.id)?;
        self.node
            .write(pb::Command {
                at_ms: 0,
                kind: Some(pb::command::Kind::ControlJob(pb::ControlJob {
                    job_id: r.id.clone(),
                    action: action as i32,
                    by: by.clone(),
                })),
            })
            .await?;
        self.node.read_barrier(ReadConsistency::Linearizable).await?;
        tracing::info!(job = %r.id, action = ?action, by = %by, "job control");
        let job = self.job(&r.id)?;
        Ok(Response::new(pb::ControlJobResponse {
            job: Some(self.view(job)),
        }))
    }

    async fn logs(&self, req: Request<pb::JobLogsRequest>) -> Result<Response<pb::JobLogsResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("JobLogs");
        let r = req.into_inner();
        id_arg(&r.id)?;
        self.node.read_barrier(ReadConsistency::Linearizable).await?;
        let job = self.job(&r.id)?;
        Ok(Response::new(pb::JobLogsResponse { events: job.events }))
    }

    async fn report(&self, req: Request<pb::JobReportRequest>) -> Result<Response<pb::JobReportResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("JobReport");
        let r = req.into_inner();
        id_arg(&r.id)?;
        self.node.read_barrier(ReadConsistency::Linearizable).await?;
        let job = self.job(&r.id)?;
        if job.report_key.is_empty() {
            let why = if names::is_terminal_job_state(job.state) {
                format!(
                    "job {} ended without a report (it is written to the location of setting `{}`)",
                    job.id,
                    mesh_raft::settings::JOB_REPORT_LOCATION
                )
            } else {
                format!(
                    "job {} has no report yet; it is written when the job ends (now {})",
                    job.id,
                    names::job_state(job.state)
                )
            };
            return Err(ApiError::FailedPrecondition(why).into());
        }
        let (loc_name, key) = split_report_key(&job.report_key).ok_or_else(|| {
            ApiError::Internal(format!(
                "job {} has a malformed report key {:?}",
                job.id, job.report_key
            ))
        })?;
        let loc = self.node.state.location(loc_name).ok_or_else(|| {
            ApiError::NotFound(format!(
                "the report of job {} is in location `{loc_name}`, which no longer exists",
                job.id
            ))
        })?;
        let key_arc = if loc.kind() == LocationKind::S3 {
            secrets::require_key(&self.node)?
        } else {
            // fs locations have no secrets; any key will do for the resolver.
            secrets::require_key(&self.node).unwrap_or_else(|_| Arc::new(secrets::DataKey::generate()))
        };
        let spec = secrets::location_spec(&self.node.state, &loc, &key_arc)?;
        let store_err = |e: mesh_engine::store::StoreError| {
            ApiError::Unavailable(format!("cannot read the report {}: {e}", job.report_key))
        };
        let store = mesh_engine::open_store(&spec, &self.clients).await.map_err(store_err)?;
        let max = match r.max_bytes {
            0 => DEFAULT_REPORT_BYTES,
            n => n.min(MAX_REPORT_BYTES),
        };
        let missing = |e: mesh_engine::store::StoreError| match e {
            mesh_engine::store::StoreError::NotFound { .. } => ApiError::NotFound(format!(
                "the report of job {} ({}) is missing from its location",
                job.id, job.report_key
            )),
            e => store_err(e),
        };
        let total = store.head(key).await.map_err(missing)?.info.size;
        if r.offset > total {
            return Err(ApiError::InvalidArgument(format!(
                "offset {} is beyond the end of the report of job {} ({total} bytes); page with the `next_offset` of the previous answer",
                r.offset, job.id
            ))
            .into());
        }
        let end = total.min(r.offset.saturating_add(max));
        let mut content: Vec<u8> = Vec::with_capacity((end - r.offset) as usize);
        if end > r.offset {
            let mut body = store.get(key, Some((r.offset, end - 1))).await.map_err(missing)?;
            while let Some(chunk) = body.next().await {
                content.extend_from_slice(&chunk.map_err(store_err)?);
            }
        }
        let mut next_offset = r.offset + content.len() as u64;
        if next_offset < total {
            // End the page on a line boundary (a single line longer than a page is cut).
            if let Some(nl) = content.iter().rposition(|&b| b == b'\n') {
                content.truncate(nl + 1);
                next_offset = r.offset + content.len() as u64;
            }
        } else {
            next_offset = 0;
        }
        Ok(Response::new(pb::JobReportResponse {
            location: job.report_key.clone(),
            content,
            truncated: next_offset != 0,
            next_offset,
            total_bytes: total,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> mesh_raft::Tables {
        let mut t = mesh_raft::Tables::default();
        for (name, kind, bucket, fs) in [
            ("photos", LocationKind::S3, "photos", ""),
            ("backup", LocationKind::S3, "backup", ""),
            ("disk", LocationKind::Fs, "", "/data/disk"),
        ] {
            t.locations.insert(
                name.into(),
                pb::Location {
                    name: name.into(),
                    kind: kind as i32,
                    bucket: bucket.into(),
                    fs_path: fs.into(),
                    credential: if fs.is_empty() { "default".into() } else { String::new() },
                    ..Default::default()
                },
            );
        }
        t
    }

    fn spec(op: JobOp, src: &str, dst: &str) -> pb::JobSpec {
        let (sl, sp) = src.split_once(':').unwrap();
        let (dl, dp) = dst.split_once(':').unwrap();
        rules::normalize_spec(&pb::JobSpec {
            op: op as i32,
            src_location: sl.into(),
            src_path: sp.into(),
            dst_location: dl.into(),
            dst_path: dp.into(),
            ..Default::default()
        })
    }

    fn refusal(s: &pb::JobSpec) -> String {
        match validate(&tables(), s) {
            Err(ApiError::InvalidArgument(m)) => m,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn paths_are_folders() {
        assert_eq!(rules::normalize_path(""), "");
        assert_eq!(rules::normalize_path("photos"), "photos/");
        assert_eq!(rules::normalize_path("photos/"), "photos/");
        assert_eq!(rules::normalize_path(" a/b "), "a/b/");
        let s = rules::normalize_spec(&pb::JobSpec {
            sse: "aes256".into(),
            tier: "Plus".into(),
            verify: "ETAG".into(),
            ..Default::default()
        });
        assert_eq!(
            (s.sse.as_str(), s.tier.as_str(), s.verify.as_str()),
            ("AES256", "plus", "etag")
        );
    }

    #[test]
    fn ids_are_j_and_12_hex_digits() {
        let id = new_job_id();
        assert_eq!(id.len(), 14);
        assert!(id.starts_with("j-"));
        assert!(id[2..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(new_job_id(), id);
    }

    #[test]
    fn submits_are_checked_before_they_are_proposed() {
        assert!(validate(&tables(), &spec(JobOp::Copy, "photos:2024", "backup:")).is_ok());
        assert!(validate(&tables(), &spec(JobOp::Sync, "photos:a/", "photos:b/")).is_ok());
        assert!(refusal(&spec(JobOp::Copy, "nope:", "backup:")).contains("meshctl location list"));
        assert!(refusal(&spec(JobOp::Copy, ":", "backup:")).contains("needs a location"));
        assert!(refusal(&spec(JobOp::Copy, "photos:../x", "backup:")).contains("inside its location"));
        assert!(refusal(&spec(JobOp::Copy, "photos:/abs", "backup:")).contains("leading '/'"));
        assert!(refusal(&spec(JobOp::Move, "photos:a/", "photos:a/b")).contains("inside source"));
        assert!(refusal(&spec(JobOp::Sync, "photos:a/b", "photos:a/")).contains("inside destination"));
        assert!(refusal(&spec(JobOp::Sync, "photos:", "photos:")).contains("same place"));

        let mut s = spec(JobOp::Copy, "photos:", "backup:");
        s.tier = "gold".into();
        assert!(refusal(&s).contains("express, plus or ultra"));
        let mut s = spec(JobOp::Copy, "photos:", "backup:");
        s.verify = "md5".into();
        assert!(refusal(&s).contains("none, size, etag or checksum"));
        let mut s = spec(JobOp::Copy, "photos:", "backup:");
        s.kms_key_id = "alias/k".into();
        assert!(refusal(&s).contains("aws:kms"));
        let mut s = spec(JobOp::Copy, "photos:", "backup:");
        s.sse = "des".into();
        assert!(refusal(&s).contains("AES256"));
        let mut s = spec(JobOp::Copy, "photos:", "backup:");
        s.delete = true;
        assert!(refusal(&s).contains("only for sync"));
        let mut s = spec(JobOp::Copy, "photos:", "backup:");
        s.storage_class = "cheap".into();
        assert!(refusal(&s).contains("STANDARD_IA"));
        let mut s = spec(JobOp::Copy, "photos:", "disk:x");
        s.storage_class = "STANDARD_IA".into();
        assert!(refusal(&s).contains("--storage-class applies to S3 destinations"));
        let mut s = spec(JobOp::Copy, "photos:", "backup:");
        s.rules = vec![
            pb::FilterRule {
                include: true,
                glob: "*.jpg".into(),
            },
            pb::FilterRule {
                include: false,
                glob: "tmp/[a".into(),
            },
        ];
        let m = refusal(&s);
        assert!(m.starts_with("--exclude \"tmp/[a\""), "{m}");
    }

    fn running_job() -> pb::Job {
        pb::Job {
            id: "j-000000000001".into(),
            state: JobState::Running as i32,
            created_at_ms: 1_000,
            started_at_ms: 10_000,
            paused_ms: 5_000,
            counters: Some(pb::JobCounters {
                objects_total: 100,
                bytes_total: 10_000_000,
                objects_done: 20,
                bytes_done: 2_000_000,
                objects_skipped: 10,
                bytes_skipped: 1_000_000,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn task(id: u64, state: TaskState, node: u64) -> pb::Task {
        pb::Task {
            job_id: "j-000000000001".into(),
            id,
            state: state as i32,
            node_id: node,
            ..Default::default()
        }
    }

    #[test]
    fn view_of_a_running_job() {
        let tasks = [
            task(1, TaskState::Done, 0),
            task(2, TaskState::Assigned, 7),
            task(3, TaskState::Assigned, 3),
            task(4, TaskState::Assigned, 7),
            task(5, TaskState::Pending, 0),
            task(6, TaskState::Blocked, 0),
        ];
        // Active 20 s - 5 s paused = 10 s... started at 10 s, now 25 s: 15 s - 5 s = 10 s.
        let v = job_view(running_job(), &tasks, 25_000);
        assert_eq!(v.bytes_per_sec, 200_000.0);
        assert_eq!(v.objects_per_sec, 2.0);
        // 10 MB - 2 MB done - 1 MB skipped = 7 MB at 200 kB/s = 35 s.
        assert_eq!(v.eta_ms, 35_000);
        assert_eq!((v.tasks_running, v.tasks_pending, v.tasks_done), (3, 2, 1));
        assert_eq!(v.nodes_running, vec![3, 7]);
        assert_eq!(v.now_ms, 25_000);
    }

    #[test]
    fn paused_and_finished_jobs_stop_the_clock() {
        let mut j = running_job();
        j.state = JobState::Paused as i32;
        j.paused_at_ms = 20_000;
        // Paused since 20 s: active = 20 - 10 - 5 = 5 s whatever "now" is; no ETA while paused.
        let v = job_view(j.clone(), &[], 60_000);
        assert_eq!(v.bytes_per_sec, 400_000.0);
        assert_eq!(v.eta_ms, 0);

        let mut done = running_job();
        done.state = JobState::Completed as i32;
        done.ended_at_ms = 30_000;
        done.tasks_total = 9;
        let v = job_view(done, &[], 999_999);
        assert_eq!(v.bytes_per_sec, 2_000_000.0 / 15.0);
        assert_eq!(v.eta_ms, 0);
        assert_eq!(v.tasks_done, 9);

        let mut queued = running_job();
        queued.state = JobState::Queued as i32;
        queued.started_at_ms = 0;
        let v = job_view(queued, &[], 50_000);
        assert_eq!((v.bytes_per_sec, v.eta_ms), (0.0, 0));
    }

    #[test]
    fn lists_are_newest_first_and_report_keys_split() {
        let mk = |id: &str, at| pb::Job {
            id: id.into(),
            created_at_ms: at,
            ..Default::default()
        };
        let mut jobs = vec![mk("j-a", 1), mk("j-c", 3), mk("j-b", 3)];
        newest_first(&mut jobs);
        let ids: Vec<_> = jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["j-c", "j-b", "j-a"]);
        assert_eq!(split_report_key("rep:jobs/j-1.jsonl"), Some(("rep", "jobs/j-1.jsonl")));
        assert_eq!(split_report_key("rep:"), None);
        assert_eq!(split_report_key("nocolon"), None);
    }
}
