//! A job's report: one JSON line per object (`key`, `outcome`, `bytes`, `checksum`, `error`, …).
//!
//! Task runners buffer their lines; the worker writes the buffer as a chunk object
//! `<report root><job>/parts/<task>-<epoch>-<run start ms>-<seq>.jsonl` once it holds
//! [`CHUNK_LINES`] lines, its oldest line is [`CHUNK_EVERY`] old, or the task ends — a few
//! requests per thousand objects — and reports a checkpoint only once every object up to it has
//! its line stored. FINALIZE merges
//! the chunks with bounded memory (an external merge, `worker/merge.rs`; an object that appears
//! more than once was re-run after a failure: the last success wins and it counts as
//! re-copied), streams `<report root><job>/report.jsonl` to the store, deletes the chunks and
//! reports the exact totals. Per-object records therefore never enter the Raft
//! log.
//!
//! The report root is the `job.report_location` setting (`LOCATION[:PATH/]`), or by default
//! `.bucketmesh/reports/` at the root of the job's destination location — a prefix every job
//! excludes from copying and deleting.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use mesh_proto::v1::{self as pb, TaskKind, TaskState};
use mesh_raft::settings;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::merge::Merger;
use super::task::{Ctx, End, Shared, RESERVED_PREFIX};
use mesh_engine::ops::KeyMap;
use mesh_engine::ops::{Action, Outcome, SkipReason};
use mesh_engine::store::{KeyRange, ObjectStore, WriteOptions};
use mesh_engine::transfer::once_body;

/// A task's buffered lines are written as a chunk once there are this many...
pub const CHUNK_LINES: usize = 1000;
/// ...or once the oldest has waited this long, or when the task ends. Until then the task reports
/// its counters with the checkpoint of its last stored chunk: a node that dies loses at most this
/// much of the report, and the task's next run finds those objects copied at the destination
/// (`resumed` lines) instead of copying them again.
pub const CHUNK_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Report lines of one running task, shared between the task and the reporter.
#[derive(Clone, Default)]
pub struct LineBuf(Arc<Mutex<Pending>>);

#[derive(Default)]
struct Pending {
    lines: Vec<String>,
    /// When the oldest buffered line was pushed.
    since: Option<std::time::Instant>,
}

impl LineBuf {
    pub fn push(&self, line: String) {
        let mut g = self.0.lock().unwrap();
        g.since.get_or_insert_with(std::time::Instant::now);
        g.lines.push(line);
    }
    pub fn is_empty(&self) -> bool {
        self.0.lock().unwrap().lines.is_empty()
    }
    /// Whether the buffer is due to be written as a chunk (full, or its oldest line old enough).
    pub fn due(&self) -> bool {
        let g = self.0.lock().unwrap();
        g.lines.len() >= CHUNK_LINES || g.since.is_some_and(|t| t.elapsed() >= CHUNK_EVERY)
    }
    fn take(&self) -> Vec<String> {
        let mut g = self.0.lock().unwrap();
        g.since = None;
        std::mem::take(&mut g.lines)
    }
    fn put_back(&self, mut lines: Vec<String>) {
        let mut g = self.0.lock().unwrap();
        lines.append(&mut g.lines);
        g.lines = lines;
        g.since = Some(std::time::Instant::now());
    }
}

/// One line of a report.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Line {
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dst_key: String,
    /// copied, moved, skipped, failed, deleted, delete_suppressed, would_copy, would_move,
    /// would_delete
    pub outcome: String,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// How many times the object was written (merged report only; > 1 = re-copied).
    #[serde(default, skip_serializing_if = "is_one_or_zero")]
    pub writes: u32,
    /// `copied` (or `moved`) by an earlier run of the same task whose node died before reporting
    /// it: the task resumed elsewhere found it at the destination (identical; for a move, with
    /// its source gone) and did not write it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
}

fn is_one_or_zero(n: &u32) -> bool {
    *n <= 1
}

/// The report line of an engine outcome.
pub fn line_of(o: &Outcome) -> String {
    let (outcome, error) = match &o.action {
        Action::Copied | Action::Skipped(SkipReason::CopiedEarlier) => ("copied", String::new()),
        Action::Moved | Action::Skipped(SkipReason::MovedEarlier) => ("moved", String::new()),
        Action::Skipped(_) => ("skipped", String::new()),
        Action::Failed(e) => ("failed", e.to_string()),
        Action::Deleted => ("deleted", String::new()),
        Action::DeleteSuppressed(r) => ("delete_suppressed", r.clone()),
        Action::WouldCopy => ("would_copy", String::new()),
        Action::WouldMove => ("would_move", String::new()),
        Action::WouldDelete => ("would_delete", String::new()),
    };
    let line = Line {
        key: o.key.clone(),
        dst_key: o.dst_key.clone(),
        outcome: outcome.into(),
        bytes: o.bytes,
        etag: o.etag.clone().unwrap_or_default(),
        checksum: o
            .checksum
            .as_ref()
            .map(|(a, v)| format!("{a:?}:{v}").to_lowercase())
            .unwrap_or_default(),
        error,
        writes: 0,
        resumed: matches!(
            o.action,
            Action::Skipped(SkipReason::CopiedEarlier | SkipReason::MovedEarlier)
        ),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// (location, path prefix) where the reports of `job` go.
pub fn report_root(node: &crate::node::Node, job: &pb::Job) -> (String, String) {
    let setting = node.state.setting_or_default(settings::JOB_REPORT_LOCATION);
    if !setting.is_empty() {
        let (loc, path) = setting.split_once(':').unwrap_or((setting.as_str(), ""));
        let mut path = path.trim_start_matches('/').to_string();
        if !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        return (loc.to_string(), path);
    }
    let dst = job.spec.as_ref().map(|s| s.dst_location.clone()).unwrap_or_default();
    (dst, format!("{RESERVED_PREFIX}reports/"))
}

/// Reads a whole (small) object.
pub async fn read_all(store: &dyn ObjectStore, key: &str) -> Result<Vec<u8>, String> {
    let mut body = store.get(key, None).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Writes the buffered lines of a task as one chunk object; on failure they stay buffered.
pub async fn write_chunk(
    ctx: &Ctx,
    job: &pb::Job,
    task: u64,
    epoch: u64,
    (run, seq): (u64, u64),
    lines: &LineBuf,
) -> Result<(), String> {
    let taken = lines.take();
    if taken.is_empty() {
        return Ok(());
    }
    let r = async {
        let (loc, path) = report_root(&ctx.node, job);
        let store = ctx.store(&loc).await?;
        let key = format!("{path}{}/parts/{task:010}-{epoch:05}-{run:013}-{seq:08}.jsonl", job.id);
        let mut data = taken.join("\n");
        data.push('\n');
        let len = data.len() as u64;
        store
            .put(&key, once_body(Bytes::from(data)), len, &WriteOptions::default())
            .await
            .map_err(|e| format!("writing report chunk {key}: {e}"))?;
        Ok::<(), String>(())
    }
    .await;
    if r.is_err() {
        lines.put_back(taken);
    }
    r
}

/// Adds one line of a merged report to the job's exact totals.
pub fn count(c: &mut pb::JobCounters, l: &Line) {
    match l.outcome.as_str() {
        "copied" | "moved" | "would_copy" | "would_move" => {
            c.objects_done += 1;
            c.bytes_done += l.bytes;
        }
        "skipped" => {
            c.objects_skipped += 1;
            c.bytes_skipped += l.bytes;
        }
        "failed" => {
            c.objects_failed += 1;
            c.bytes_failed += l.bytes;
        }
        "deleted" | "would_delete" => c.objects_deleted += 1,
        _ => {}
    }
    if !matches!(l.outcome.as_str(), "deleted" | "would_delete" | "delete_suppressed") {
        c.objects_total += 1;
        c.bytes_total += l.bytes;
    }
}

/// FINALIZE: abort the job's leftover uploads, merge the report, report the totals.
pub async fn finalize(
    ctx: &Arc<Ctx>,
    job: &pb::Job,
    progress: &Shared,
    cancel: &CancellationToken,
) -> Result<End, String> {
    let spec = job.spec.clone().unwrap_or_default();
    let tasks = ctx.node.state.job_tasks(&job.id);
    let dst = ctx.store(&spec.dst_location).await?;
    let mut events = Vec::new();

    // 1. Split objects whose upload was created but not completed.
    for init in tasks
        .iter()
        .filter(|t| t.kind == TaskKind::PartInit as i32 && !t.upload_id.is_empty())
    {
        let completed = tasks.iter().any(|t| {
            t.kind == TaskKind::PartComplete as i32 && t.group == init.id && t.state == TaskState::Done as i32
        });
        if completed {
            continue;
        }
        let Some(dst_key) = KeyMap::new(spec.src_path.clone(), spec.dst_path.clone()).to_dst(&init.key) else {
            continue;
        };
        match dst.abort_multipart(&dst_key, &init.upload_id).await {
            Ok(()) | Err(mesh_engine::store::StoreError::NotFound { .. }) => {
                events.push(format!("aborted the multipart upload of {}", init.key))
            }
            Err(e) => events.push(format!("could not abort the upload of {}: {e}", init.key)),
        }
    }
    // 2. Uploads a killed node left behind under the destination path, started during this job,
    //    when no other unfinished job writes to the same location (its uploads are not ours).
    let others = ctx.node.state.jobs().into_iter().any(|j| {
        j.id != job.id
            && !mesh_proto::names::is_terminal_job_state(j.state)
            && j.spec.as_ref().is_some_and(|s| s.dst_location == spec.dst_location)
    });
    if !others && !spec.dry_run {
        let since = job.started_at_ms.saturating_sub(5_000) as i64;
        let swept = mesh_engine::transfer::sweep_uploads(dst.as_ref(), &spec.dst_path, None, |u| {
            u.initiated_ms.is_some_and(|t| t >= since)
        })
        .await;
        match swept {
            Ok(r) if !r.aborted.is_empty() => events.push(format!(
                "aborted {} leftover multipart upload(s) under {}",
                r.aborted.len(),
                spec.dst_path
            )),
            Ok(_) => {}
            Err(e) => events.push(format!("could not list leftover uploads: {e}")),
        }
    }
    if cancel.is_cancelled() {
        return Ok(End::default());
    }

    // 3. The report.
    let (loc, path) = report_root(&ctx.node, job);
    let store = ctx.store(&loc).await?;
    let parts_prefix = format!("{path}{}/parts/", job.id);
    let mut keys = Vec::new();
    let mut range = KeyRange {
        prefix: parts_prefix.clone(),
        ..Default::default()
    };
    loop {
        let page = store
            .list(&range, 1000)
            .await
            .map_err(|e| format!("listing report chunks: {e}"))?;
        keys.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_start_after {
            Some(s) => range.start_after = Some(s),
            None => break,
        }
    }
    keys.sort();
    // An external merge (bounded memory, spilled under <data-dir>/tmp), written to a local file
    // that is then streamed to the store.
    let tmp = ctx.node.cfg.data_dir.join("tmp");
    let local = |e: std::io::Error| format!("merging the report under {}: {e}", tmp.display());
    let mut merger = Merger::new(&tmp).map_err(local)?;
    for k in &keys {
        let chunk = read_all(store.as_ref(), k)
            .await
            .map_err(|e| format!("reading {k}: {e}"))?;
        merger.push_chunk(&chunk).map_err(local)?;
    }
    let out = tempfile::NamedTempFile::new_in(&tmp).map_err(local)?;
    let merged = {
        let file = out.reopen().map_err(local)?;
        tokio::task::spawn_blocking(move || -> std::io::Result<(pb::JobCounters, u64, u64)> {
            let mut w = std::io::BufWriter::new(file);
            let mut totals = pb::JobCounters::default();
            let recopied = merger.finish(|l| {
                count(&mut totals, l);
                serde_json::to_writer(&mut w, l)?;
                w.write_all(b"\n")
            })?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            let len = file.metadata()?.len();
            Ok((totals, recopied, len))
        })
        .await
        .map_err(|e| format!("the report merge stopped: {e}"))?
        .map_err(local)?
    };
    let (totals, recopied, len) = merged;
    let report_key = format!("{path}{}/report.jsonl", job.id);
    let file = tokio::fs::File::open(out.path()).await.map_err(local)?;
    let body: mesh_engine::store::Body = Box::pin(tokio_util::io::ReaderStream::new(file).map(|r| {
        r.map_err(|e| mesh_engine::store::StoreError::Other {
            detail: format!("reading the merged report: {e}"),
        })
    }));
    store
        .put(&report_key, body, len, &WriteOptions::default())
        .await
        .map_err(|e| format!("writing the report {report_key}: {e}"))?;
    let _ = store.delete_many(&keys).await;
    progress.lock().unwrap().events.extend(events);
    Ok(End {
        final_counters: Some(totals),
        report_key: format!("{loc}:{report_key}"),
        recopied,
        ..End::done()
    })
}
