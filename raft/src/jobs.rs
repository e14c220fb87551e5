//! The replicated job tables (`jobs`, `tasks`) and the pure apply of the job commands:
//! SubmitJob, AssignTasks, ReportTasks, ControlJob and ReleaseTasks.
//!
//! A job's life in the state (see docs/jobs.md for the whole flow):
//! - **SubmitJob** creates the job (QUEUED) and one pending LIST task over the whole source range.
//! - **AssignTasks** (the leader's `job-scheduler` worker) gives a pending task to a node and bumps its `epoch`,
//!   the fencing token: from then on only reports carrying (that node, that epoch) count.
//!   The first assignment moves the job to PLANNING.
//! - **ReportTasks** (a node's task heartbeat) carries cumulative counters, checkpoints, part
//!   ETags, failures and, from LIST tasks, the COPY / split-object tasks planned so far (the job
//!   becomes RUNNING with the first). A stale report is ignored and named in the response, so the
//!   worker stops that task. A task reported DONE closes; RETRY puts it back to pending (from its
//!   checkpoint) after a backoff, up to `job.task_attempts` attempts; FAILED closes it with an
//!   error that fails the job at the end. Split objects: PART_INIT done → its PART_COPY tasks
//!   become pending (with the upload id); all PART_COPY done → PART_COMPLETE becomes pending
//!   with every part's ETag.
//! - When no task is open, a FINALIZE task is created (job VERIFYING, or CANCELLING): it merges
//!   the report, aborts leftover uploads and reports the exact totals; its DONE ends the job
//!   (COMPLETED, COMPLETED_WITH_WARNINGS, FAILED, CANCELLED) and **compacts** it: every task of
//!   the job is deleted, the job row keeps the summary.
//! - **ControlJob**: pause releases the job's assigned tasks (they keep their checkpoints) and
//!   stops assignment; resume allows it again; cancel closes every open task and finalizes.
//! - **ReleaseTasks** (the `job-scheduler` worker, for a node judged down): the node's assigned tasks become
//!   pending again, keeping their checkpoints.
//!
//! Job counters are the sum of their tasks' cumulative counters (kept incrementally), plus the
//! totals the listing discovered; FINALIZE replaces them with the exact figures of the merged
//! report (a re-run after a failure may count an object twice while running, never at the end).

use mesh_proto::v1::{self as pb, JobAction, JobState, NodeState, TaskKind, TaskOutcome, TaskState};

use mesh_proto::names::{self, job_state as job_state_name, task_kind as task_kind_name};
use mesh_proto::rules::validate_path;
use mesh_proto::Reason;

use crate::apply::{invalid, Refusal};
use crate::tables::Tables;

/// Events a job keeps (the newest).
pub const MAX_EVENTS: usize = 200;
/// Object failures a job keeps (the first); the report has all of them.
pub const MAX_FAILURES: usize = 100;
/// Longest retry backoff of a task.
pub const MAX_BACKOFF_MS: u64 = 60_000;

/// Key of a task in the `tasks` table.
pub type TaskKey = (String, u64);

/// Whether a job state is final.
pub fn is_terminal(state: i32) -> bool {
    names::is_terminal_job_state(state)
}

/// Whether a task still needs work (not done, not failed).
pub fn is_open(t: &pb::Task) -> bool {
    !matches!(TaskState::try_from(t.state), Ok(TaskState::Done | TaskState::Failed))
}

/// Whether tasks of a job in this state may be assigned.
pub fn assignable_job_state(state: i32) -> bool {
    matches!(
        JobState::try_from(state),
        Ok(JobState::Queued | JobState::Planning | JobState::Running | JobState::Verifying | JobState::Cancelling)
    )
}

fn event(job: &mut pb::Job, at: u64, node_id: u64, text: impl Into<String>) {
    job.events.push(pb::JobEvent {
        at_ms: at,
        node_id,
        text: text.into(),
    });
    if job.events.len() > MAX_EVENTS {
        let extra = job.events.len() - MAX_EVENTS;
        job.events.drain(..extra);
    }
}

fn counters_add(c: &mut pb::JobCounters, new: &pb::TaskCounters, old: &pb::TaskCounters) {
    let d = |n: u64, o: u64, acc: &mut u64| {
        *acc = acc.saturating_add(n).saturating_sub(o);
    };
    d(new.objects_done, old.objects_done, &mut c.objects_done);
    d(new.bytes_done, old.bytes_done, &mut c.bytes_done);
    d(new.objects_skipped, old.objects_skipped, &mut c.objects_skipped);
    d(new.bytes_skipped, old.bytes_skipped, &mut c.bytes_skipped);
    d(new.objects_failed, old.objects_failed, &mut c.objects_failed);
    d(new.bytes_failed, old.bytes_failed, &mut c.bytes_failed);
    d(new.objects_deleted, old.objects_deleted, &mut c.objects_deleted);
}

/// Retry backoff after `attempts` failed attempts: 1 s, 2 s, 4 s … capped at a minute.
pub fn backoff_ms(attempts: u32) -> u64 {
    1000u64
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(16))
        .min(MAX_BACKOFF_MS)
}

/// The tasks of a job, in id order.
pub fn job_tasks<'a>(t: &'a Tables, job_id: &str) -> impl Iterator<Item = (&'a TaskKey, &'a pb::Task)> {
    t.tasks.range((job_id.to_string(), 0)..=(job_id.to_string(), u64::MAX))
}

/// SubmitJob: the job must be new and name existing locations; the node that took the submit
/// validated the rest (with the same rules as [`validate_spec`]).
pub fn submit(t: &mut Tables, s: &pb::SubmitJob, at: u64) -> Result<(), Refusal> {
    let Some(job) = &s.job else {
        return Err(invalid("SubmitJob without a job"));
    };
    if job.id.is_empty()
        || job.id.len() > 64
        || !job
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(format!(
            "job id {:?} is not valid: 1 to 64 letters, digits, '-' or '_'",
            job.id
        )));
    }
    if t.jobs.contains_key(&job.id) {
        return Err((Reason::AlreadyExists, format!("job {} already exists", job.id)));
    }
    let Some(spec) = &job.spec else {
        return Err(invalid(format!("job {} has no spec", job.id)));
    };
    validate_spec(t, spec).map_err(invalid)?;
    let mut j = pb::Job {
        id: job.id.clone(),
        spec: Some(spec.clone()),
        state: JobState::Queued as i32,
        owner: job.owner.clone(),
        created_at_ms: at,
        updated_at_ms: at,
        counters: Some(pb::JobCounters::default()),
        next_task_id: 2,
        open_tasks: 1,
        tasks_total: 1,
        submitted_via: job.submitted_via,
        ..Default::default()
    };
    event(&mut j, at, job.submitted_via, "submitted");
    t.tasks.insert(
        (j.id.clone(), 1),
        pb::Task {
            job_id: j.id.clone(),
            id: 1,
            kind: TaskKind::List as i32,
            state: TaskState::Pending as i32,
            ..Default::default()
        },
    );
    t.jobs.insert(j.id.clone(), j);
    Ok(())
}

/// The checks of a job spec that depend only on the replicated state: known op, existing
/// locations, well-formed paths, known tier and verify mode, no overlap for move/sync.
pub fn validate_spec(t: &Tables, spec: &pb::JobSpec) -> Result<(), String> {
    let op = pb::JobOp::try_from(spec.op).unwrap_or(pb::JobOp::Unspecified);
    if op == pb::JobOp::Unspecified {
        return Err("unknown job operation; expected copy, move or sync".into());
    }
    for (what, loc, path) in [
        ("source", &spec.src_location, &spec.src_path),
        ("destination", &spec.dst_location, &spec.dst_path),
    ] {
        if !t.locations.contains_key(loc) {
            return Err(format!(
                "{what} location {loc:?} does not exist; see `meshctl location list`"
            ));
        }
        validate_path(path).map_err(|e| format!("{what} path {path:?}: {e}"))?;
    }
    if spec.delete && op != pb::JobOp::Sync {
        return Err("--delete is only for sync".into());
    }
    if !spec.tier.is_empty() && crate::settings::tier_setting(&spec.tier).is_none() {
        return Err(format!("unknown tier {:?}; expected express, plus or ultra", spec.tier));
    }
    if !matches!(spec.verify.as_str(), "" | "none" | "size" | "etag" | "checksum") {
        return Err(format!(
            "unknown verify mode {:?}; expected none, size, etag or checksum",
            spec.verify
        ));
    }
    if !matches!(spec.sse.as_str(), "" | "AES256" | "aws:kms") {
        return Err(format!("unknown SSE {:?}; expected AES256 or aws:kms", spec.sse));
    }
    if !spec.kms_key_id.is_empty() && spec.sse != "aws:kms" {
        return Err("a KMS key needs --sse aws:kms".into());
    }
    for r in &spec.rules {
        if r.glob.is_empty() {
            return Err("an include/exclude pattern is empty".into());
        }
    }
    if op != pb::JobOp::Copy {
        if let Some(why) = overlap(t, spec) {
            return Err(why);
        }
    }
    Ok(())
}

/// For move and sync: why source and destination overlap (same place, or one inside the
/// other), if they do. Two locations are the same place when they are the same bucket on the
/// same endpoint (or the same directory); fs locations compare by their full directory path, so
/// a location on a subdirectory of another is inside it.
fn overlap(t: &Tables, spec: &pb::JobSpec) -> Option<String> {
    let (s, d) = (
        t.locations.get(&spec.src_location)?,
        t.locations.get(&spec.dst_location)?,
    );
    let root = |l: &pb::Location, path: &str| -> (String, String) {
        match pb::LocationKind::try_from(l.kind) {
            Ok(pb::LocationKind::Fs) => (
                "fs".to_string(),
                format!("{}/{}", l.fs_path.trim_end_matches('/'), path),
            ),
            _ => (
                format!("s3:{}|{}", l.endpoint, l.bucket),
                format!("{}{}", l.prefix, path),
            ),
        }
    };
    let (sr, sp) = root(s, &spec.src_path);
    let (dr, dp) = root(d, &spec.dst_path);
    if sr != dr {
        return None;
    }
    let src = format!("{}:{}", spec.src_location, spec.src_path);
    let dst = format!("{}:{}", spec.dst_location, spec.dst_path);
    if sp == dp {
        Some(format!(
            "source {src} and destination {dst} are the same place; pick another destination"
        ))
    } else if dp.starts_with(&sp) {
        Some(format!(
            "destination {dst} is inside source {src}; the job would read its own output"
        ))
    } else if sp.starts_with(&dp) {
        Some(format!(
            "source {src} is inside destination {dst}; sync/move would treat the source as destination data"
        ))
    } else {
        None
    }
}

/// AssignTasks: each pending task of an assignable job goes to a live node with a new epoch.
/// Assignments that no longer fit (task not pending, job paused, node gone) are skipped.
pub fn assign(t: &mut Tables, a: &pb::AssignTasks, at: u64) -> Result<(), Refusal> {
    for asg in &a.assignments {
        let node_ok = t.nodes.get(&asg.node_id).is_some_and(|n| {
            !matches!(
                NodeState::try_from(n.state),
                Ok(NodeState::Down | NodeState::Left | NodeState::Draining)
            )
        });
        if !node_ok {
            continue;
        }
        let Some(job) = t.jobs.get_mut(&asg.job_id) else {
            continue;
        };
        if !assignable_job_state(job.state) {
            continue;
        }
        let Some(task) = t.tasks.get_mut(&(asg.job_id.clone(), asg.task_id)) else {
            continue;
        };
        if task.state != TaskState::Pending as i32 || task.not_before_ms > at {
            continue;
        }
        task.state = TaskState::Assigned as i32;
        task.node_id = asg.node_id;
        task.epoch += 1;
        task.assigned_at_ms = at;
        if job.state == JobState::Queued as i32 {
            job.state = JobState::Planning as i32;
            job.started_at_ms = at;
            event(job, at, 0, "planning: listing the source");
        }
        if let Err(i) = job.nodes_used.binary_search(&asg.node_id) {
            job.nodes_used.insert(i, asg.node_id);
        }
        let kind = task.kind;
        if kind != TaskKind::Copy as i32 && kind != TaskKind::PartCopy as i32 || task.attempts > 0 || task.epoch > 1 {
            let text = format!(
                "task {} ({}) assigned to node {} (epoch {})",
                asg.task_id,
                task_kind_name(kind),
                asg.node_id,
                task.epoch
            );
            event(job, at, asg.node_id, text);
        }
        job.updated_at_ms = at;
    }
    Ok(())
}

/// ReportTasks: applies each report that matches its task's current assignment; returns the
/// stale ones.
pub fn report(t: &mut Tables, r: &pb::ReportTasks, at: u64, task_attempts: u32) -> Vec<pb::TaskRef> {
    let mut stale = Vec::new();
    for rep in &r.reports {
        let key = (rep.job_id.clone(), rep.task_id);
        let current = t.tasks.get(&key).is_some_and(|task| {
            task.state == TaskState::Assigned as i32 && task.node_id == r.node_id && task.epoch == rep.epoch
        });
        if !current || !t.jobs.contains_key(&rep.job_id) {
            stale.push(pb::TaskRef {
                job_id: rep.job_id.clone(),
                task_id: rep.task_id,
            });
            continue;
        }
        apply_report(t, r.node_id, rep, at, task_attempts);
    }
    stale
}

fn apply_report(t: &mut Tables, node_id: u64, rep: &pb::TaskReport, at: u64, task_attempts: u32) {
    let key = (rep.job_id.clone(), rep.task_id);
    let job = t.jobs.get_mut(&rep.job_id).expect("checked");
    let task = t.tasks.get_mut(&key).expect("checked");
    let new_c = rep.counters.unwrap_or_default();
    let old_c = task.counters.unwrap_or_default();
    counters_add(job.counters.get_or_insert_with(Default::default), &new_c, &old_c);
    task.counters = Some(new_c);
    if !rep.parts.is_empty() {
        task.parts = rep.parts.clone();
    }
    for f in &rep.failures {
        if job.failures.len() < MAX_FAILURES {
            job.failures.push(f.clone());
        }
    }
    for e in &rep.events {
        event(job, at, node_id, e.clone());
    }
    job.warnings = job.warnings.saturating_add(rep.warnings);
    job.updated_at_ms = at;
    let kind = task.kind;
    let group = task.group;

    // Tasks planned by a LIST task.
    let mut planned = Vec::new();
    let mut listed_all = false;
    // A LIST report's new tasks chain on from the task's checkpoint. A report sent again (its
    // first answer lost) repeats tasks already planned: they are skipped up to the one that
    // starts at the checkpoint, so nothing is planned twice and nothing is lost.
    if kind == TaskKind::List as i32 {
        let from = rep.new_tasks.iter().position(|nt| {
            nt.has_start_after == task.has_checkpoint && (!nt.has_start_after || nt.start_after == task.checkpoint)
        });
        if let Some(from) = from {
            for nt in &rep.new_tasks[from..] {
                // The open-ended task (no end) is the last a listing plans: it has planned the
                // whole range. The LIST is done then, so that neither a resent report nor a
                // re-run from the checkpoint plans that range twice.
                listed_all |= nt.kind == TaskKind::Copy as i32 && !nt.has_end;
                planned.extend(plan_new(job, nt));
            }
            if rep.has_checkpoint {
                task.checkpoint = rep.checkpoint.clone();
                task.has_checkpoint = true;
            }
        }
    } else if rep.has_checkpoint {
        task.checkpoint = rep.checkpoint.clone();
        task.has_checkpoint = true;
    }
    if !planned.is_empty() && job.state == JobState::Planning as i32 {
        job.state = JobState::Running as i32;
        event(job, at, 0, "running: copying while listing goes on");
    }

    let outcome = if listed_all {
        TaskOutcome::Done
    } else {
        TaskOutcome::try_from(rep.outcome).unwrap_or(TaskOutcome::Unspecified)
    };
    let mut closed = false;
    match outcome {
        TaskOutcome::Done => {
            task.state = TaskState::Done as i32;
            if kind == TaskKind::PartInit as i32 {
                task.upload_id = rep.upload_id.clone();
            }
            closed = true;
        }
        TaskOutcome::Retry => {
            task.attempts += 1;
            task.last_error = rep.error.clone();
            if task.attempts >= task_attempts {
                task.state = TaskState::Failed as i32;
                closed = true;
                let msg = format!(
                    "task {} ({}) failed {} times, giving up: {}",
                    task.id,
                    task_kind_name(kind),
                    task.attempts,
                    rep.error
                );
                if job.error.is_empty() {
                    job.error = msg.clone();
                }
                event(job, at, node_id, msg);
            } else {
                task.state = TaskState::Pending as i32;
                task.node_id = 0;
                task.not_before_ms = at + backoff_ms(task.attempts);
                event(
                    job,
                    at,
                    node_id,
                    format!(
                        "task {} ({}) attempt {} failed, retrying from its checkpoint: {}",
                        task.id,
                        task_kind_name(kind),
                        task.attempts,
                        rep.error
                    ),
                );
            }
        }
        TaskOutcome::Failed => {
            task.state = TaskState::Failed as i32;
            task.last_error = rep.error.clone();
            closed = true;
            let msg = format!("task {} ({}) failed: {}", task.id, task_kind_name(kind), rep.error);
            if job.error.is_empty() {
                job.error = msg.clone();
            }
            event(job, at, node_id, msg);
        }
        TaskOutcome::Progress | TaskOutcome::Unspecified => {}
    }
    if kind == TaskKind::Finalize as i32 && closed {
        finish_job(t, &rep.job_id, rep, at);
        return;
    }
    // New tasks go in after the borrow of the reporting task ends.
    let job_id = rep.job_id.clone();
    for nt in planned {
        t.tasks.insert((job_id.clone(), nt.id), nt);
    }
    if closed {
        let job = t.jobs.get_mut(&job_id).expect("checked");
        job.open_tasks = job.open_tasks.saturating_sub(1);
        if outcome == TaskOutcome::Done {
            unblock(t, &job_id, kind, rep.task_id, group, &rep.upload_id);
        } else {
            fail_blocked(t, &job_id, kind, rep.task_id, group);
        }
        maybe_finalize(t, &job_id, at);
    }
}

/// Turns one planned task of a LIST report into task rows (ids from the job's counter).
fn plan_new(job: &mut pb::Job, nt: &pb::NewTask) -> Vec<pb::Task> {
    let mut next = || {
        let id = job.next_task_id;
        job.next_task_id += 1;
        id
    };
    let base = |id: u64, kind: TaskKind, state: TaskState| pb::Task {
        job_id: job.id.clone(),
        id,
        kind: kind as i32,
        state: state as i32,
        ..Default::default()
    };
    let mut out = Vec::new();
    let counters = job.counters.get_or_insert_with(Default::default);
    if nt.kind == TaskKind::Copy as i32 {
        counters.objects_total += nt.objects;
        counters.bytes_total += nt.bytes;
        let mut task = base(next(), TaskKind::Copy, TaskState::Pending);
        task.start_after = nt.start_after.clone();
        task.has_start_after = nt.has_start_after;
        task.end = nt.end.clone();
        task.has_end = nt.has_end;
        task.objects = nt.objects;
        task.bytes = nt.bytes;
        task.path_order = nt.path_order;
        out.push(task);
    } else if nt.kind == TaskKind::PartInit as i32 && nt.part_size > 0 && nt.parts_per_task > 0 {
        counters.objects_total += 1;
        counters.bytes_total += nt.bytes;
        let parts = nt.bytes.div_ceil(nt.part_size).max(1);
        let parts = u32::try_from(parts).unwrap_or(u32::MAX);
        let init_id = next();
        let mut init = base(init_id, TaskKind::PartInit, TaskState::Pending);
        init.key = nt.key.clone();
        init.etag = nt.etag.clone();
        init.bytes = nt.bytes;
        init.objects = 1;
        init.part_size = nt.part_size;
        init.parts_per_task = nt.parts_per_task;
        init.first_part = 1;
        init.last_part = parts;
        out.push(init.clone());
        let mut first = 1u32;
        while first <= parts {
            let last = first.saturating_add(nt.parts_per_task - 1).min(parts);
            let mut p = base(next(), TaskKind::PartCopy, TaskState::Blocked);
            p.key = init.key.clone();
            p.etag = init.etag.clone();
            p.group = init_id;
            p.part_size = nt.part_size;
            p.first_part = first;
            p.last_part = last;
            let start = (first as u64 - 1) * nt.part_size;
            let end = (last as u64 * nt.part_size).min(nt.bytes);
            p.bytes = end.saturating_sub(start);
            out.push(p);
            first = last.saturating_add(1);
            if last == u32::MAX {
                break;
            }
        }
        let mut c = base(next(), TaskKind::PartComplete, TaskState::Blocked);
        c.key = init.key.clone();
        c.etag = init.etag.clone();
        c.group = init_id;
        c.bytes = nt.bytes;
        c.part_size = nt.part_size;
        c.first_part = 1;
        c.last_part = parts;
        out.push(c);
    }
    job.tasks_total += out.len() as u32;
    job.open_tasks += out.len() as u32;
    out
}

/// After a task of a split object is done: PART_INIT unblocks its parts (handing them the
/// upload id); the last PART_COPY unblocks PART_COMPLETE with every part's ETag.
fn unblock(t: &mut Tables, job_id: &str, kind: i32, task_id: u64, group: u64, upload_id: &str) {
    let keys: Vec<TaskKey> = job_tasks(t, job_id).map(|(k, _)| k.clone()).collect();
    if kind == TaskKind::PartInit as i32 {
        for k in &keys {
            let task = t.tasks.get_mut(k).expect("listed");
            if task.group == task_id
                && task.kind == TaskKind::PartCopy as i32
                && task.state == TaskState::Blocked as i32
            {
                task.state = TaskState::Pending as i32;
                task.upload_id = upload_id.to_string();
            }
            if task.group == task_id && task.kind == TaskKind::PartComplete as i32 {
                task.upload_id = upload_id.to_string();
            }
        }
    } else if kind == TaskKind::PartCopy as i32 {
        let group_tasks: Vec<&pb::Task> = keys
            .iter()
            .filter_map(|k| t.tasks.get(k))
            .filter(|x| x.group == group && x.kind == TaskKind::PartCopy as i32)
            .collect();
        if group_tasks.iter().any(|x| x.state != TaskState::Done as i32) {
            return;
        }
        let mut parts: Vec<pb::PartEtag> = group_tasks.iter().flat_map(|x| x.parts.clone()).collect();
        parts.sort_by_key(|p| p.part_number);
        parts.dedup_by_key(|p| p.part_number);
        for k in &keys {
            let task = t.tasks.get_mut(k).expect("listed");
            if task.group == group
                && task.kind == TaskKind::PartComplete as i32
                && task.state == TaskState::Blocked as i32
            {
                task.state = TaskState::Pending as i32;
                task.parts = parts.clone();
            }
        }
    }
}

/// After a task of a split object failed for good: the tasks still blocked on it (the parts of a
/// failed PART_INIT, the PART_COMPLETE of a failed PART_COPY) can never run, so they fail too and
/// the job can reach FINALIZE (which aborts the upload) instead of waiting forever.
fn fail_blocked(t: &mut Tables, job_id: &str, kind: i32, task_id: u64, group: u64) {
    let group = if kind == TaskKind::PartInit as i32 {
        task_id
    } else if kind == TaskKind::PartCopy as i32 {
        group
    } else {
        return;
    };
    let failed = t
        .tasks
        .update_range((job_id.to_string(), 0)..=(job_id.to_string(), u64::MAX), |task| {
            let blocked = task.group == group && task.state == TaskState::Blocked as i32;
            if blocked {
                task.state = TaskState::Failed as i32;
                task.last_error = format!("task {task_id} ({}) of this object failed", task_kind_name(kind));
            }
            blocked
        }) as u32;
    if let Some(job) = t.jobs.get_mut(job_id) {
        job.open_tasks = job.open_tasks.saturating_sub(failed);
    }
}

/// Creates the FINALIZE task once no task of a running (or cancelling) job is open.
fn maybe_finalize(t: &mut Tables, job_id: &str, at: u64) {
    let Some(job) = t.jobs.get_mut(job_id) else { return };
    if job.open_tasks > 0 {
        return;
    }
    let cancelling = job.state == JobState::Cancelling as i32;
    if !cancelling
        && !matches!(
            JobState::try_from(job.state),
            Ok(JobState::Queued | JobState::Planning | JobState::Running)
        )
    {
        return;
    }
    if !cancelling {
        job.state = JobState::Verifying as i32;
        event(job, at, 0, "verifying: every task done; merging the report");
    }
    let id = job.next_task_id;
    job.next_task_id += 1;
    job.open_tasks += 1;
    job.tasks_total += 1;
    t.tasks.insert(
        (job_id.to_string(), id),
        pb::Task {
            job_id: job_id.to_string(),
            id,
            kind: TaskKind::Finalize as i32,
            state: TaskState::Pending as i32,
            ..Default::default()
        },
    );
}

/// FINALIZE done: the exact totals, the end state, then compaction (every task deleted).
fn finish_job(t: &mut Tables, job_id: &str, rep: &pb::TaskReport, at: u64) {
    let job = t.jobs.get_mut(job_id).expect("checked");
    if let Some(c) = &rep.final_counters {
        let mut c = *c;
        // Totals known from the listing stay when the report saw fewer (e.g. a cancelled job).
        let known = job.counters.unwrap_or_default();
        c.objects_total = c.objects_total.max(known.objects_total);
        c.bytes_total = c.bytes_total.max(known.bytes_total);
        job.counters = Some(c);
    }
    job.report_key = rep.report_key.clone();
    job.recopied = rep.recopied;
    let counters = job.counters.unwrap_or_default();
    let accounted = counters.objects_done + counters.objects_skipped + counters.objects_failed;
    if job.state != JobState::Cancelling as i32 && accounted < counters.objects_total {
        job.warnings = job.warnings.saturating_add(1);
        let text = format!(
            "the report accounts for {accounted} of the {} objects listed; see the destination for the rest",
            counters.objects_total
        );
        event(job, at, 0, text);
    }
    let state = if job.state == JobState::Cancelling as i32 {
        JobState::Cancelled
    } else if counters.objects_failed > 0 || !job.error.is_empty() {
        if job.error.is_empty() {
            let names: Vec<String> = job
                .failures
                .iter()
                .take(3)
                .map(|f| format!("{}: {}", f.key, f.error))
                .collect();
            job.error = format!(
                "{} object(s) failed after retries; first: {}",
                counters.objects_failed,
                names.join("; ")
            );
        }
        JobState::Failed
    } else if job.warnings > 0 {
        JobState::CompletedWithWarnings
    } else {
        JobState::Completed
    };
    job.state = state as i32;
    job.ended_at_ms = at;
    job.open_tasks = 0;
    let text = format!(
        "{}: {} copied, {} skipped, {} failed, {} deleted; report {}",
        job_state_name(state as i32),
        counters.objects_done,
        counters.objects_skipped,
        counters.objects_failed,
        counters.objects_deleted,
        if rep.report_key.is_empty() {
            "not written"
        } else {
            &rep.report_key
        }
    );
    event(job, at, 0, text);
    let keys: Vec<TaskKey> = job_tasks(t, job_id).map(|(k, _)| k.clone()).collect();
    for k in keys {
        t.tasks.remove(&k);
    }
}

/// ControlJob: pause, resume, cancel.
pub fn control(t: &mut Tables, c: &pb::ControlJob, at: u64) -> Result<(), Refusal> {
    let Some(job) = t.jobs.get_mut(&c.job_id) else {
        return Err((Reason::NotFound, format!("job {} not found", c.job_id)));
    };
    let state = JobState::try_from(job.state).unwrap_or(JobState::Unspecified);
    let name = job_state_name(job.state);
    let by = if c.by.is_empty() {
        "an operator".to_string()
    } else {
        c.by.clone()
    };
    match JobAction::try_from(c.action).unwrap_or(JobAction::Unspecified) {
        JobAction::Pause => {
            if !matches!(state, JobState::Queued | JobState::Planning | JobState::Running) {
                return Err((
                    Reason::FailedPrecondition,
                    format!(
                        "job {} is {name}; only a queued, planning or running job can be paused",
                        c.job_id
                    ),
                ));
            }
            job.state = JobState::Paused as i32;
            job.paused_at_ms = at;
            event(job, at, 0, format!("paused by {by}"));
            t.tasks
                .update_range((c.job_id.clone(), 0)..=(c.job_id.clone(), u64::MAX), |task| {
                    let assigned = task.state == TaskState::Assigned as i32;
                    if assigned {
                        task.state = TaskState::Pending as i32;
                        task.node_id = 0;
                    }
                    assigned
                });
        }
        JobAction::Resume => {
            if state != JobState::Paused {
                return Err((
                    Reason::FailedPrecondition,
                    format!("job {} is {name}; only a paused job can be resumed", c.job_id),
                ));
            }
            job.paused_ms += at.saturating_sub(job.paused_at_ms);
            job.paused_at_ms = 0;
            let copying = job_tasks_any(&t.tasks, &c.job_id, |x| x.kind != TaskKind::List as i32);
            let job = t.jobs.get_mut(&c.job_id).expect("exists");
            job.state = if copying {
                JobState::Running
            } else if job.started_at_ms > 0 {
                JobState::Planning
            } else {
                JobState::Queued
            } as i32;
            event(job, at, 0, format!("resumed by {by}"));
            maybe_finalize(t, &c.job_id, at);
        }
        JobAction::Cancel => {
            if is_terminal(job.state) || state == JobState::Cancelling {
                return Err((
                    Reason::FailedPrecondition,
                    format!("job {} is already {name}", c.job_id),
                ));
            }
            job.state = JobState::Cancelling as i32;
            job.open_tasks = 0;
            if job.paused_at_ms > 0 {
                job.paused_ms += at.saturating_sub(job.paused_at_ms);
                job.paused_at_ms = 0;
            }
            event(job, at, 0, format!("cancelled by {by}; aborting open uploads"));
            t.tasks
                .update_range((c.job_id.clone(), 0)..=(c.job_id.clone(), u64::MAX), |task| {
                    let open = is_open(task);
                    if open {
                        task.state = TaskState::Failed as i32;
                        task.last_error = "cancelled".into();
                        task.node_id = 0;
                    }
                    open
                });
            maybe_finalize(t, &c.job_id, at);
        }
        JobAction::Unspecified => return Err(invalid("ControlJob without an action")),
    }
    Ok(())
}

fn job_tasks_any(tasks: &crate::Table<TaskKey, pb::Task>, job_id: &str, f: impl Fn(&pb::Task) -> bool) -> bool {
    tasks
        .range((job_id.to_string(), 0)..=(job_id.to_string(), u64::MAX))
        .any(|(_, x)| f(x))
}

/// ReleaseTasks: the node's assigned tasks become pending again, keeping their checkpoints.
pub fn release(t: &mut Tables, r: &pb::ReleaseTasks, at: u64) -> Result<(), Refusal> {
    let mut released: Vec<(String, u64, i32)> = Vec::new();
    t.tasks.update_all(|task| {
        let theirs = task.state == TaskState::Assigned as i32 && task.node_id == r.node_id;
        if theirs {
            task.state = TaskState::Pending as i32;
            task.node_id = 0;
            released.push((task.job_id.clone(), task.id, task.kind));
        }
        theirs
    });
    for (job_id, id, kind) in released {
        if let Some(job) = t.jobs.get_mut(&job_id) {
            let text = format!(
                "task {id} ({}) taken back from node {}: {}; it resumes from its checkpoint",
                task_kind_name(kind),
                r.node_id,
                r.reason
            );
            event(job, at, 0, text);
        }
    }
    Ok(())
}

/// The unfinished job (if any) that reads or writes location `name`.
pub fn job_using_location(t: &Tables, name: &str) -> Option<String> {
    t.jobs
        .values()
        .filter(|j| !is_terminal(j.state))
        .find(|j| {
            j.spec
                .as_ref()
                .is_some_and(|s| s.src_location == name || s.dst_location == name)
        })
        .map(|j| j.id.clone())
}
