//! Running one task on this node: the engine calls behind each task kind.
//!
//! - LIST pages through the source range and plans COPY tasks of at most
//!   `job.copy_task_objects` objects / `job.copy_task_bytes` bytes (less when that spreads a
//!   page over more of the mesh's nodes, see [`spread_cut`]), an own COPY task per object
//!   at or above the multipart threshold, and a split (PART_INIT + part ranges + complete) per
//!   object at or above `job.split_object_bytes`. The ranges tile the whole key space: the first
//!   starts at the beginning, the last is open-ended.
//! - COPY runs the engine's [`run_range`] over its range from its checkpoint.
//! - PART_* copy a split object part range by part range (see [`super::parts`]).
//! - FINALIZE merges the report, aborts leftover uploads and reports exact totals
//!   (see [`super::report`]).
//!
//! Every runner returns an [`End`]; a runner that was cancelled (assignment withdrawn, node
//! shutting down) returns `End::default()` (no outcome): its progress is reported and the leader
//! hands the task on from its checkpoint.

use std::sync::{Arc, Mutex};

use mesh_proto::v1::{self as pb, JobOp, TaskKind};
use mesh_raft::settings;
use tokio_util::sync::CancellationToken;

use super::report::{self, LineBuf};
use super::task::{copy_options, job_filter, ran_before, Ctx, End, Shared};
use mesh_engine::ops::{run_range, Action, KeyMap, Outcome, RangeOp, RangeOptions, RangeTask, SkipReason};
use mesh_engine::store::KeyRange;
use mesh_engine::transfer;

fn op_of(spec: &pb::JobSpec) -> RangeOp {
    match JobOp::try_from(spec.op) {
        Ok(JobOp::Move) => RangeOp::Move,
        Ok(JobOp::Sync) => RangeOp::Sync { delete: spec.delete },
        _ => RangeOp::Copy,
    }
}

/// Runs one task to its end.
pub async fn run_task(
    ctx: &Arc<Ctx>,
    job: &pb::Job,
    task: &pb::Task,
    progress: &Shared,
    lines: &LineBuf,
    cancel: &CancellationToken,
) -> End {
    let r = match TaskKind::try_from(task.kind) {
        Ok(TaskKind::List) => list(ctx, job, task, progress, cancel).await,
        Ok(TaskKind::Copy) => copy(ctx, job, task, progress, lines, cancel).await,
        Ok(TaskKind::PartInit | TaskKind::PartCopy | TaskKind::PartComplete) => {
            super::parts::run(ctx, job, task, progress, lines, cancel).await
        }
        Ok(TaskKind::Finalize) => report::finalize(ctx, job, progress, cancel).await,
        _ => Err(format!(
            "task kind {} is unknown to this node (older version?)",
            task.kind
        )),
    };
    if cancel.is_cancelled() {
        return End::default();
    }
    match r {
        Ok(end) => end,
        Err(e) => End::retry(e),
    }
}

/// The fewest objects and bytes [`spread_cut`] cuts a COPY task at (below that, a task's own
/// range listing and its Raft entries cost more than spreading it gains).
const MIN_TASK_OBJECTS: u64 = 100;
const MIN_TASK_BYTES: u64 = 16 << 20;

/// Where a listing page is cut into COPY tasks: at `job.copy_task_objects` /
/// `job.copy_task_bytes`, or smaller, so that a page spreads over the mesh's `nodes` — at least
/// one task per node by object count, two per node by bytes (so a node that finishes early takes
/// another) — but never below [`MIN_TASK_OBJECTS`] / [`MIN_TASK_BYTES`].
fn spread_cut(max_objects: u64, max_bytes: u64, page_objects: u64, page_bytes: u64, nodes: u64) -> (u64, u64) {
    let nodes = nodes.max(1);
    let objects = page_objects.div_ceil(nodes).max(MIN_TASK_OBJECTS).min(max_objects);
    let bytes = page_bytes.div_ceil(2 * nodes).max(MIN_TASK_BYTES).min(max_bytes);
    (objects.max(1), bytes.max(1))
}

/// A chunk of the listing being cut into a COPY task.
#[derive(Default)]
struct Chunk {
    objects: u64,
    bytes: u64,
    last: Option<String>,
}

async fn list(
    ctx: &Arc<Ctx>,
    job: &pb::Job,
    task: &pb::Task,
    progress: &Shared,
    cancel: &CancellationToken,
) -> Result<End, String> {
    let spec = job.spec.clone().unwrap_or_default();
    let src = ctx.store(&spec.src_location).await?;
    let dst = ctx.store(&spec.dst_location).await?;
    let filter = job_filter(&spec)?;
    let st = &ctx.node.state;
    let max_objects = settings::u32_setting(st, settings::JOB_COPY_TASK_OBJECTS).max(1) as u64;
    let max_bytes = settings::size_setting(st, settings::JOB_COPY_TASK_BYTES).max(1);
    let split_bytes = settings::size_setting(st, settings::JOB_SPLIT_OBJECT_BYTES);
    let part_task_bytes = settings::size_setting(st, settings::JOB_PART_TASK_BYTES);
    let copts = copy_options(ctx, job, task.id, progress, cancel);
    // Split only plain copies and moves that write (sync compares first; a dry run writes nothing).
    let may_split = !spec.dry_run
        && op_of(&spec) != (RangeOp::Sync { delete: true })
        && !matches!(op_of(&spec), RangeOp::Sync { .. });

    // Where planning resumes: after the last planned task's end.
    let mut boundary: Option<String> = if task.has_checkpoint {
        Some(task.checkpoint.clone())
    } else if task.has_start_after {
        Some(task.start_after.clone())
    } else {
        None
    };
    let mut range = KeyRange {
        prefix: spec.src_path.clone(),
        start_after: boundary.clone(),
        end: None,
        path_order: false,
    };
    let mut chunk = Chunk::default();
    let mut path_order = false;
    let mut prev: Option<String> = boundary.clone();
    let mut planned: Vec<pb::NewTask> = Vec::new();
    let copy_task = |after: &Option<String>, end: Option<String>, c: &Chunk, path_order: bool| pb::NewTask {
        kind: TaskKind::Copy as i32,
        has_start_after: after.is_some(),
        start_after: after.clone().unwrap_or_default(),
        has_end: end.is_some(),
        end: end.unwrap_or_default(),
        objects: c.objects,
        bytes: c.bytes,
        path_order,
        ..Default::default()
    };
    loop {
        if cancel.is_cancelled() {
            return Ok(End::default());
        }
        let page = transfer::with_retry(&copts, "list", || src.list(&range, 1000))
            .await
            .map_err(|e| format!("listing {} failed: {e}", src.describe()))?;
        let nodes = st
            .nodes()
            .iter()
            .filter(|n| matches!(n.state(), pb::NodeState::Active | pb::NodeState::Joining))
            .count() as u64;
        let (page_objects, page_bytes) = page
            .objects
            .iter()
            .filter(|o| o.size < copts.multipart_threshold)
            .fold((0, 0), |(n, b), o| (n + 1, b + o.size));
        let (cut_objects, cut_bytes) = spread_cut(max_objects, max_bytes, page_objects, page_bytes, nodes);
        for o in &page.objects {
            if prev.as_deref().is_some_and(|p| p >= o.key.as_str()) {
                // The store lists folder by folder: cut the rest in that order.
                path_order = true;
            }
            prev = Some(o.key.clone());
            let rel = o.key.strip_prefix(spec.src_path.as_str()).unwrap_or(&o.key);
            let counted = filter.matches_as(rel, o);
            // A split (part tasks on several nodes) from `job.split_object_bytes`; a COPY task of
            // its own from the engine's multipart threshold.
            let split = counted && may_split && split_bytes > 0 && o.size >= split_bytes && part_task_bytes > 0;
            let big = split || counted && o.size > 0 && o.size >= copts.multipart_threshold;
            if big {
                // Close what came before, then the object gets a task (or a split) of its own.
                if chunk.last.is_some() {
                    let end = chunk.last.clone();
                    planned.push(copy_task(&boundary, end.clone(), &chunk, path_order));
                    boundary = end;
                    chunk = Chunk::default();
                }
                if split {
                    let mode = transfer::choose_mode(src.as_ref(), &o.key, dst.as_ref(), &copts);
                    let part_size = match mode {
                        transfer::CopyMode::ServerSide => transfer::server_part_size(o.size, o.etag.as_deref(), &copts),
                        transfer::CopyMode::Streaming => {
                            transfer::streaming_part_size(o.size, o.etag.as_deref(), &copts)
                        }
                    }
                    .max(5 << 20);
                    let per_task = (part_task_bytes / part_size).clamp(1, 10_000) as u32;
                    planned.push(pb::NewTask {
                        kind: TaskKind::PartInit as i32,
                        has_start_after: boundary.is_some(),
                        start_after: boundary.clone().unwrap_or_default(),
                        has_end: true,
                        end: o.key.clone(),
                        objects: 1,
                        bytes: o.size,
                        key: o.key.clone(),
                        etag: o.etag.clone().unwrap_or_default(),
                        part_size,
                        parts_per_task: per_task,
                        path_order,
                    });
                } else {
                    let one = Chunk {
                        objects: 1,
                        bytes: o.size,
                        last: Some(o.key.clone()),
                    };
                    planned.push(copy_task(&boundary, Some(o.key.clone()), &one, path_order));
                }
                boundary = Some(o.key.clone());
                continue;
            }
            if counted {
                chunk.objects += 1;
                chunk.bytes += o.size;
            }
            chunk.last = Some(o.key.clone());
            if chunk.objects >= cut_objects || chunk.bytes >= cut_bytes {
                let end = chunk.last.clone();
                planned.push(copy_task(&boundary, end.clone(), &chunk, path_order));
                boundary = end;
                chunk = Chunk::default();
            }
        }
        let more = page.next_start_after.is_some();
        range.start_after = page.next_start_after.clone();
        if !more {
            // The last task is open-ended: it covers whatever sorts after (and sync deletes there).
            planned.push(copy_task(&boundary, None, &chunk, path_order));
        }
        if !planned.is_empty() {
            let mut p = progress.lock().unwrap();
            let last_end = planned.last().map(|t| t.has_end.then(|| t.end.clone())).unwrap_or(None);
            p.new_tasks.append(&mut planned);
            p.planned_to = Some(last_end);
            drop(p);
            ctx.wake.notify_one();
        }
        if !more {
            break;
        }
    }
    Ok(End::done())
}

/// Folds one object's outcome into the task's counters, failures and report lines.
pub fn record(progress: &Shared, lines: &LineBuf, o: &Outcome) {
    // An object interrupted by the task's cancellation did not fail: whoever runs the range
    // next (or nobody, for a cancelled job) decides its outcome.
    if matches!(&o.action, Action::Failed(e) if transfer::is_cancelled(e)) {
        return;
    }
    let mut p = progress.lock().unwrap();
    let c = &mut p.counters;
    match &o.action {
        Action::Copied
        | Action::Moved
        | Action::Skipped(SkipReason::CopiedEarlier | SkipReason::MovedEarlier)
        | Action::WouldCopy
        | Action::WouldMove => {
            c.objects_done += 1;
            c.bytes_done += o.bytes;
        }
        Action::Skipped(_) => {
            c.objects_skipped += 1;
            c.bytes_skipped += o.bytes;
        }
        Action::Failed(e) => {
            c.objects_failed += 1;
            c.bytes_failed += o.bytes;
            p.failures.push(pb::ObjectFailure {
                key: o.key.clone(),
                error: e.to_string(),
            });
        }
        Action::Deleted | Action::WouldDelete => c.objects_deleted += 1,
        Action::DeleteSuppressed(_) => {}
    }
    drop(p);
    lines.push(report::line_of(o));
}

async fn copy(
    ctx: &Arc<Ctx>,
    job: &pb::Job,
    task: &pb::Task,
    progress: &Shared,
    lines: &LineBuf,
    cancel: &CancellationToken,
) -> Result<End, String> {
    let spec = job.spec.clone().unwrap_or_default();
    let src = ctx.store(&spec.src_location).await?;
    let dst = ctx.store(&spec.dst_location).await?;
    let filter = job_filter(&spec)?;
    let start_after = if task.has_checkpoint {
        Some(task.checkpoint.clone())
    } else {
        task.has_start_after.then(|| task.start_after.clone())
    };
    let range = KeyRange {
        prefix: spec.src_path.clone(),
        start_after,
        end: task.has_end.then(|| task.end.clone()),
        path_order: task.path_order,
    };
    let cell = Arc::new(Mutex::new(None::<String>));
    // A task that ran before (its node died or restarted, or it was released, paused or retried)
    // may find part of its range copied already, beyond its last checkpoint: it lists the destination range once and
    // skips what is identical there. What was written since the job started counts as copied by
    // this job (5 s of slack for the store's clock), so a node's death costs one LIST, not a
    // re-copy.
    let op = op_of(&spec);
    let resumed = ran_before(ctx, task) && matches!(op, RangeOp::Copy | RangeOp::Move) && !spec.dry_run;
    let (concurrency, shared) = ctx.limits();
    let opts = RangeOptions {
        copy: copy_options(ctx, job, task.id, progress, cancel),
        concurrency,
        shared: Some(shared),
        dry_run: spec.dry_run,
        checkpoint: Some(cell.clone()),
        skip_existing: resumed,
        written_since_ms: resumed.then(|| job.started_at_ms as i64 - 5_000),
        ..Default::default()
    };
    let map = KeyMap::new(spec.src_path.clone(), spec.dst_path.clone());
    // The sink runs on this task; the checkpoint cell is copied into the shared progress by a
    // small watcher so the reporter sees both moving together.
    let p2 = progress.clone();
    let cell2 = cell.clone();
    let range_task = RangeTask {
        op,
        src: src.as_ref(),
        dst: dst.as_ref(),
        range: &range,
        map: &map,
        filter: &filter,
    };
    let sum = run_range(range_task, &opts, |o| {
        record(&p2, lines, &o);
        if let Some(c) = cell2.lock().unwrap().clone() {
            p2.lock().unwrap().checkpoint = Some(c);
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    if let Some(c) = cell.lock().unwrap().clone() {
        progress.lock().unwrap().checkpoint = Some(c);
    }
    if let Some(reason) = &sum.delete_suppressed {
        let mut p = progress.lock().unwrap();
        p.events
            .push(format!("sync deletions suppressed in task {}: {reason}", task.id));
        p.warnings += 1;
    }
    match sum.interrupted {
        Some(e) if transfer::is_cancelled(&e) => Ok(End::default()),
        Some(e) => Ok(End::retry(format!("range interrupted: {e}"))),
        None => {
            if let Some(k) = sum.last_completed_key {
                progress.lock().unwrap().checkpoint = Some(k);
            }
            Ok(End::done())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_page_is_cut_so_it_spreads_over_the_nodes() {
        // 1,000 small objects: one task on one node, a third each on three.
        assert_eq!(spread_cut(1000, 256 * MIB, 1000, 16 * MIB, 1).0, 1000);
        assert_eq!(spread_cut(1000, 256 * MIB, 1000, 16 * MIB, 3).0, 334);
        // Never below 100 objects, never above the setting.
        assert_eq!(spread_cut(1000, 256 * MIB, 150, MIB, 5).0, 100);
        assert_eq!(spread_cut(40, 256 * MIB, 1000, MIB, 1).0, 40);
        // 20 × 32 MiB: two tasks' worth of bytes per node, at least 16 MiB, at most the setting.
        assert_eq!(spread_cut(1000, 256 * MIB, 20, 640 * MIB, 5).1, 64 * MIB);
        assert_eq!(spread_cut(1000, 256 * MIB, 20, 640 * MIB, 1).1, 256 * MIB);
        assert_eq!(spread_cut(1000, 256 * MIB, 20, 40 * MIB, 5).1, 16 * MIB);
        assert_eq!(spread_cut(1000, 8 * MIB, 20, 640 * MIB, 5).1, 8 * MIB);
        // No node known (a LIST on a node not yet registered): as one node.
        assert_eq!(spread_cut(1000, 256 * MIB, 1000, 640 * MIB, 0), (1000, 256 * MIB));
    }
}
