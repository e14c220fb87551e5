//! The worker: every node's copy executor for distributed jobs.
//!
//! It watches its own applied state for tasks assigned to this node, runs each (up to
//! `worker.slots` at once) in its own tokio task with a cancellation token (a child of the node's
//! shutdown signal), and once per [`REPORT_EVERY`] (at once when a task planned new tasks or
//! ended) sends one `ReportTasks` command — the node's task heartbeat — through the leader with every running task's cumulative counters, checkpoint,
//! planned tasks (LIST), part ETags, failures and events, and the final outcome of the tasks that
//! ended. Before a checkpoint is reported, the outcome lines of every object up to it are written
//! to the job's report chunks (see [`report`]), so a task resumed elsewhere from that checkpoint
//! never leaves a hole in the report.
//!
//! A task stops when its assignment goes away from the applied state (pause, cancel, release, a
//! newer epoch elsewhere) or when the leader names its report stale; a final report is kept and
//! re-sent until a write is acknowledged. On shutdown the running tasks are cancelled (their
//! uploads aborted by the engine), their last checkpoints reported, and the leader reassigns them.

mod merge;
mod parts;
pub mod report;
mod run;
mod task;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_proto::v1::{self as pb, TaskOutcome, TaskState};
use mesh_raft::settings;
use tokio_util::sync::CancellationToken;

use task::{Progress, Shared};

use crate::node::Node;
use mesh_engine::S3Clients;

/// Period of the task heartbeat (progress and checkpoints to the leader).
pub const REPORT_EVERY: Duration = Duration::from_millis(1000);
/// How often the worker looks at its applied state for new or withdrawn assignments when no
/// applied entry woke it (a safety net: applied entries wake it at once).
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// Least time between two reports sent early for news (planned tasks, ended tasks), so a fast
/// listing batches its pages rather than proposing one entry per page.
const NEWS_GAP: Duration = Duration::from_millis(50);

/// (job id, task id, epoch): one assignment.
type Assignment = (String, u64, u64);

struct Running {
    cancel: CancellationToken,
    progress: Shared,
    /// Report lines not yet written to the job's report chunks.
    lines: report::LineBuf,
    /// Names this run's report chunks: `<start ms>-<seq>`. The start time keeps a task resumed
    /// under the same epoch (its node restarted) from overwriting the chunks of the earlier run.
    chunk_run: u64,
    chunk_seq: u64,
    /// The checkpoint whose objects all have their lines in stored chunks: the one reported.
    stored_checkpoint: Option<String>,
    /// The leader has its final report (or called it stale): kept only so the task is not
    /// started again while this node's applied state still shows the assignment.
    settled: bool,
}

/// Runs until shutdown.
pub async fn run(node: Arc<Node>, stop: CancellationToken) {
    let clients = S3Clients::new();
    let ctx = Arc::new(task::Ctx::new(node.clone(), clients));
    let mut running: HashMap<Assignment, Running> = HashMap::new();
    let mut watch = tokio::time::interval(WATCH_EVERY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_report = tokio::time::Instant::now();
    // A restarted node must not run tasks from a stale view (they may be done or reassigned
    // already): catch up with the leader once before starting anything.
    while !stop.is_cancelled() {
        match node.read_barrier(pb::ReadConsistency::Linearizable).await {
            Ok(_) => break,
            Err(e) => {
                tracing::debug!(error = %e, "worker waiting for a leader before starting tasks");
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    // Event-driven: an applied entry (an assignment, a withdrawal) starts or stops tasks at once,
    // a task with news (planned tasks, its end) is reported at once; the periodic watch is the
    // safety net.
    let mut applied = node.applied_watch();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = watch.tick() => {}
            _ = ctx.wake.notified() => {}
            alive = applied.changed() => {
                if !alive {
                    break;
                }
            }
        }
        start_and_stop(&node, &ctx, &mut running, &stop);
        let active = running
            .values()
            .filter(|r| !r.settled && r.progress.lock().unwrap().end.is_none())
            .count();
        node.metrics.tasks_running.set(active as i64);
        let news = running.values().any(|r| {
            let p = r.progress.lock().unwrap();
            !r.settled && (p.end.is_some() || !p.new_tasks.is_empty())
        });
        if last_report.elapsed() >= REPORT_EVERY || (news && last_report.elapsed() >= NEWS_GAP) {
            last_report = tokio::time::Instant::now();
            let sent = tokio::select! {
                _ = stop.cancelled() => break,
                r = send_reports(&node, &ctx, &mut running) => r,
            };
            if let Err(e) = sent {
                tracing::debug!(error = %e, "task report not sent; retrying next beat");
            }
        }
    }
    // Drain: stop every task, then tell the leader how far they got (best effort, bounded).
    for r in running.values() {
        r.cancel.cancel();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline
        && running
            .values()
            .any(|r| !r.settled && r.progress.lock().unwrap().end.is_none())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), send_reports(&node, &ctx, &mut running)).await;
    // Hand the tasks back so the leader reassigns them now rather than after the node TTL.
    if running.values().any(|r| !r.settled) {
        let cmd = pb::Command {
            at_ms: 0,
            kind: Some(pb::command::Kind::ReleaseTasks(pb::ReleaseTasks {
                node_id: node.id,
                reason: "the node is shutting down".into(),
            })),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), node.write(cmd)).await;
    }
}

/// Starts the tasks newly assigned to this node; cancels those no longer assigned to it.
fn start_and_stop(
    node: &Arc<Node>,
    ctx: &Arc<task::Ctx>,
    running: &mut HashMap<Assignment, Running>,
    stop: &CancellationToken,
) {
    let me = node.id;
    let assigned = node
        .state
        .tasks_where(|t| t.node_id == me && t.state == TaskState::Assigned as i32);
    let current: std::collections::HashSet<Assignment> =
        assigned.iter().map(|t| (t.job_id.clone(), t.id, t.epoch)).collect();
    running.retain(|a, r| !r.settled || current.contains(a));
    for (a, r) in running.iter() {
        if !current.contains(a) && !r.cancel.is_cancelled() {
            tracing::info!(job = %a.0, task = a.1, epoch = a.2, "assignment withdrawn; stopping the task");
            r.cancel.cancel();
        }
    }
    let slots = settings::u32_setting(&node.state, settings::WORKER_SLOTS) as usize;
    for t in assigned {
        let a = (t.job_id.clone(), t.id, t.epoch);
        if running.contains_key(&a) {
            continue;
        }
        let active = running
            .values()
            .filter(|r| !r.settled && r.progress.lock().unwrap().end.is_none())
            .count();
        if active >= slots.max(1) {
            break;
        }
        let Some(job) = node.state.job(&t.job_id) else { continue };
        let cancel = stop.child_token();
        let progress: Shared = Arc::new(Mutex::new(Progress {
            counters: t.counters.unwrap_or_default(),
            checkpoint: t.has_checkpoint.then(|| t.checkpoint.clone()),
            parts: t.parts.clone(),
            ..Default::default()
        }));
        let lines = report::LineBuf::default();
        let stored_checkpoint = t.has_checkpoint.then(|| t.checkpoint.clone());
        tracing::info!(job = %t.job_id, task = t.id, epoch = t.epoch, kind = mesh_proto::names::task_kind(t.kind), "running task");
        let ctx2 = ctx.clone();
        let (p2, l2, c2) = (progress.clone(), lines.clone(), cancel.clone());
        tokio::spawn(async move {
            let end = run::run_task(&ctx2, &job, &t, &p2, &l2, &c2).await;
            {
                let mut p = p2.lock().unwrap();
                if p.end.is_none() {
                    p.end = Some(end);
                }
            }
            ctx2.wake.notify_one();
        });
        running.insert(
            a,
            Running {
                cancel,
                progress,
                lines,
                chunk_run: crate::node::now_ms(),
                chunk_seq: 0,
                stored_checkpoint,
                settled: false,
            },
        );
    }
}

/// One task heartbeat: writes pending report lines, then proposes the node's ReportTasks.
async fn send_reports(
    node: &Arc<Node>,
    ctx: &Arc<task::Ctx>,
    running: &mut HashMap<Assignment, Running>,
) -> Result<(), String> {
    if running.values().all(|r| r.settled) {
        return Ok(());
    }
    let mut reports = Vec::new();
    // How much of each task's buffers this report carries (drained once it is acknowledged).
    let mut taken: Vec<(Assignment, usize, usize, usize, u32, bool)> = Vec::new();
    for (a, r) in running.iter_mut().filter(|(_, r)| !r.settled) {
        // Read the checkpoint and the end before flushing lines: every line up to them is in the
        // buffer already, so it is in a chunk before the leader learns the checkpoint.
        let (checkpoint, ended) = {
            let p = r.progress.lock().unwrap();
            (p.checkpoint.clone(), p.end.clone())
        };
        if r.lines.is_empty() {
            r.stored_checkpoint = checkpoint;
        } else if ended.is_some() || r.lines.due() {
            let job = node.state.job(&a.0);
            if let Some(job) = job {
                match report::write_chunk(ctx, &job, a.1, a.2, (r.chunk_run, r.chunk_seq), &r.lines).await {
                    Ok(()) => {
                        r.chunk_seq += 1;
                        r.stored_checkpoint = checkpoint;
                    }
                    Err(e) => {
                        tracing::warn!(job = %a.0, task = a.1, error = %e, "report chunk not written");
                        // An end is reported only with all its lines stored: next beat.
                        if ended.is_some() {
                            continue;
                        }
                    }
                }
            }
        }
        let p = r.progress.lock().unwrap();
        // Without their lines stored, later objects are not finished yet as far as the leader
        // knows: it hears the checkpoint of the last stored chunk.
        let (checkpoint, has_checkpoint) = match (&p.planned_to, r.stored_checkpoint.clone()) {
            // LIST: the checkpoint is the end of the last planned task.
            (Some(to), _) => (to.clone().unwrap_or_default(), to.is_some()),
            (None, Some(c)) => (c, true),
            (None, None) => (String::new(), false),
        };
        // An interrupted task (outcome 0) reports its progress only; the leader reassigns it.
        let end = ended.unwrap_or_default();
        reports.push(pb::TaskReport {
            job_id: a.0.clone(),
            task_id: a.1,
            epoch: a.2,
            outcome: if end.outcome == 0 {
                TaskOutcome::Progress as i32
            } else {
                end.outcome
            },
            checkpoint,
            has_checkpoint,
            counters: Some(pb::TaskCounters {
                bytes_in_flight: p.in_flight.load(std::sync::atomic::Ordering::Relaxed),
                ..p.counters
            }),
            new_tasks: p.new_tasks.clone(),
            error: end.error.clone(),
            failures: p.failures.clone(),
            upload_id: end.upload_id.clone(),
            parts: p.parts.clone(),
            events: p.events.clone(),
            final_counters: end.final_counters,
            report_key: end.report_key.clone(),
            recopied: end.recopied,
            warnings: p.warnings,
        });
        taken.push((
            a.clone(),
            p.new_tasks.len(),
            p.failures.len(),
            p.events.len(),
            p.warnings,
            end.outcome != 0,
        ));
    }
    if reports.is_empty() {
        return Ok(());
    }
    let cmd = pb::Command {
        at_ms: 0,
        kind: Some(pb::command::Kind::ReportTasks(pb::ReportTasks {
            node_id: node.id,
            reports,
        })),
    };
    let resp = node.write(cmd).await.map_err(|e| e.to_string())?;
    let stale: std::collections::HashSet<(String, u64)> =
        resp.stale.iter().map(|s| (s.job_id.clone(), s.task_id)).collect();
    for (a, nt, nf, ne, nw, ended) in taken {
        let Some(r) = running.get_mut(&a) else { continue };
        if stale.contains(&(a.0.clone(), a.1)) {
            tracing::info!(job = %a.0, task = a.1, epoch = a.2, "report stale (task reassigned, paused or cancelled); stopping it");
            node.metrics.task_reports_stale.inc();
            r.cancel.cancel();
            r.settled = true;
            continue;
        }
        if ended {
            r.settled = true;
            node.metrics.tasks_finished.inc();
            continue;
        }
        let mut p = r.progress.lock().unwrap();
        let (nt, nf, ne) = (
            nt.min(p.new_tasks.len()),
            nf.min(p.failures.len()),
            ne.min(p.events.len()),
        );
        p.new_tasks.drain(..nt);
        p.failures.drain(..nf);
        p.events.drain(..ne);
        p.warnings -= nw.min(p.warnings);
    }
    Ok(())
}
