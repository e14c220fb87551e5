//! Split objects: one very large object copied by several nodes at once.
//!
//! - PART_INIT reads the source's metadata and tags and creates the destination's multipart
//!   upload; its upload id goes into the replicated state (and from there to the part tasks).
//! - PART_COPY copies parts `first..=last` (UploadPartCopy when the stores allow a server-side
//!   copy, else ranged GET → UploadPart), a few at once, skipping parts its checkpoint already
//!   has; each part's ETag is reported as it finishes.
//! - PART_COMPLETE completes the upload with every part's ETag, verifies the result's size (and
//!   ETag when comparable), and for a move deletes the source.
//!
//! An upload left open by a failure is aborted by the job's FINALIZE.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use mesh_proto::v1::{self as pb, JobOp, TaskKind};
use tokio_util::sync::CancellationToken;

use super::report::LineBuf;
use super::task::{copy_options, Ctx, End, Shared};
use mesh_engine::ops::{Action, KeyMap, Outcome};
use mesh_engine::store::{CompletedPart, ObjectStore, StoreError};
use mesh_engine::transfer::{self, CopyMode, CopyOptions, RequestCounts};
use mesh_engine::verify;

/// Parts copied at once by one PART_COPY task.
const PARTS_IN_FLIGHT: usize = 4;

pub async fn run(
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
    let copts = copy_options(ctx, job, task.id, progress, cancel);
    let Some(dkey) = KeyMap::new(spec.src_path.clone(), spec.dst_path.clone()).to_dst(&task.key) else {
        return Ok(End::failed(format!("{} is outside the job's source path", task.key)));
    };
    let part = PartTask {
        src: src.as_ref(),
        dst: dst.as_ref(),
        task,
        dkey: &dkey,
        copts: &copts,
    };
    match TaskKind::try_from(task.kind) {
        Ok(TaskKind::PartInit) => init(&part).await,
        Ok(TaskKind::PartCopy) => copy_parts(&part, progress).await,
        _ => complete(&part, &spec, progress, lines).await,
    }
}

/// What every PART_* task of a split object works on: the two stores, the task (source key,
/// part range, upload id), the destination key and the job's copy options.
#[derive(Clone, Copy)]
struct PartTask<'a> {
    src: &'a dyn ObjectStore,
    dst: &'a dyn ObjectStore,
    task: &'a pb::Task,
    dkey: &'a str,
    copts: &'a CopyOptions,
}

async fn init(part: &PartTask<'_>) -> Result<End, String> {
    let PartTask {
        src,
        dst,
        task,
        dkey,
        copts,
    } = *part;
    let meta = transfer::with_retry(copts, "head", || src.head(&task.key))
        .await
        .map_err(|e| e.to_string())?;
    if meta.info.size != task.bytes {
        return Ok(End::failed(format!(
            "{} changed since it was listed ({} bytes, now {}); run the job again",
            task.key, task.bytes, meta.info.size
        )));
    }
    let tags = if copts.copy_tags {
        transfer::with_retry(copts, "get tags", || src.get_tags(&task.key))
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let wopts = transfer::write_options(&meta, tags, copts);
    let upload_id = transfer::with_retry(copts, "create multipart upload", || dst.create_multipart(dkey, &wopts))
        .await
        .map_err(|e| e.to_string())?;
    Ok(End {
        upload_id,
        ..End::done()
    })
}

/// Inclusive byte range of part `n` (1-based) of a PART_COPY task, whose `bytes` are those of
/// its parts `first_part..=last_part`.
fn part_range(task: &pb::Task, n: u32) -> (u64, u64) {
    let task_end = (task.first_part as u64 - 1) * task.part_size + task.bytes;
    let start = (n as u64 - 1) * task.part_size;
    let end = (n as u64 * task.part_size).min(task_end) - 1;
    (start, end)
}

async fn copy_parts(part: &PartTask<'_>, progress: &Shared) -> Result<End, String> {
    let PartTask {
        src,
        dst,
        task,
        dkey,
        copts,
    } = *part;
    if task.upload_id.is_empty() {
        return Ok(End::failed("part task without an upload id"));
    }
    let done: std::collections::BTreeSet<u32> = progress.lock().unwrap().parts.iter().map(|p| p.part_number).collect();
    let todo: Vec<u32> = (task.first_part..=task.last_part)
        .filter(|n| !done.contains(n))
        .collect();
    let mode = transfer::choose_mode(src, &task.key, dst, copts);
    let source = src.copy_source(&task.key);
    let results = futures::stream::iter(todo.into_iter().map(|n| {
        let range = part_range(task, n);
        let source = source.clone();
        async move {
            let part = match (mode, source) {
                (CopyMode::ServerSide, Some(cs)) => {
                    transfer::with_retry(copts, "upload part copy", || {
                        dst.upload_part_copy(&cs, dkey, &task.upload_id, n, range)
                    })
                    .await?
                }
                _ => {
                    let data = transfer::with_retry(copts, "get part", || async {
                        let body = src.get(&task.key, Some(range)).await?;
                        let buf: BytesMut = body
                            .try_fold(BytesMut::new(), |mut acc, b| async move {
                                acc.extend_from_slice(&b);
                                Ok(acc)
                            })
                            .await?;
                        Ok::<Bytes, StoreError>(buf.freeze())
                    })
                    .await?;
                    let len = data.len() as u64;
                    if let Some(b) = &copts.bandwidth {
                        b.take(len).await;
                    }
                    transfer::with_retry(copts, "upload part", || {
                        dst.upload_part(dkey, &task.upload_id, n, transfer::once_body(data.clone()), len, None)
                    })
                    .await?
                }
            };
            Ok::<(CompletedPart, u64), StoreError>((part, range.1 - range.0 + 1))
        }
    }))
    .buffer_unordered(PARTS_IN_FLIGHT);
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        let (part, len) = r.map_err(|e| e.to_string())?;
        let mut p = progress.lock().unwrap();
        p.parts.push(pb::PartEtag {
            part_number: part.part_number,
            etag: part.etag,
        });
        p.parts.sort_by_key(|x| x.part_number);
        p.counters.bytes_done += len;
    }
    Ok(End::done())
}

async fn complete(part: &PartTask<'_>, spec: &pb::JobSpec, progress: &Shared, lines: &LineBuf) -> Result<End, String> {
    let PartTask {
        src,
        dst,
        task,
        dkey,
        copts,
    } = *part;
    let parts: Vec<CompletedPart> = task
        .parts
        .iter()
        .map(|p| CompletedPart {
            part_number: p.part_number,
            etag: p.etag.clone(),
            checksum: None,
        })
        .collect();
    let expected = (task.last_part - task.first_part + 1) as usize;
    if parts.len() != expected {
        return Ok(End::failed(format!(
            "{}: {} of {expected} parts have an ETag; cannot complete",
            task.key,
            parts.len()
        )));
    }
    let meta = transfer::with_retry(copts, "head", || src.head(&task.key))
        .await
        .map_err(|e| e.to_string())?;
    let wopts = transfer::write_options(&meta, Vec::new(), copts);
    let done = transfer::with_retry(copts, "complete multipart upload", || {
        dst.complete_multipart(dkey, &task.upload_id, &parts, &wopts)
    })
    .await;
    let etag = match done {
        Ok(r) => r.etag,
        // A previous attempt may have completed it and died before reporting.
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.to_string()),
    };
    let got = transfer::with_retry(copts, "head", || dst.head(dkey))
        .await
        .map_err(|e| format!("{dkey} after completing: {e}"))?;
    let mut problem = None;
    if got.info.size != task.bytes {
        problem = Some(format!(
            "size {} after completing, expected {}",
            got.info.size, task.bytes
        ));
    } else if let Some(d) = got.info.etag.as_deref().map(verify::norm_etag) {
        // As the engine does for its own multipart copies: the final ETag must be the MD5 of the
        // part ETags the parts returned (a store's part ETags of UploadPartCopy need not be the
        // source's, so the source ETag is not compared).
        let part_etags: Vec<String> = parts.iter().map(|p| verify::norm_etag(&p.etag)).collect();
        let part_refs: Vec<&str> = part_etags.iter().map(String::as_str).collect();
        // SSE-KMS ETags are not MD5s: such objects are verified by size only.
        let kms = matches!(copts.sse, Some(mesh_engine::store::Sse::Kms { .. }))
            || matches!(meta.sse, Some(mesh_engine::store::Sse::Kms { .. }));
        if copts.verify != verify::Verify::None && !kms && verify::multipart_parts(&d).is_some() {
            if let Some(expected) = mesh_engine::checksum::multipart_etag_hex(&part_refs) {
                if expected != d {
                    problem = Some(format!(
                        "multipart ETag {d} after completing does not match its parts ({expected})"
                    ));
                }
            }
        }
    }
    let mut outcome = Outcome {
        key: task.key.clone(),
        dst_key: dkey.to_string(),
        action: Action::Copied,
        bytes: task.bytes,
        mode: None,
        etag: etag.or(got.info.etag.clone()),
        checksum: None,
        requests: RequestCounts::default(),
    };
    if let Some(p) = problem {
        let _ = dst.delete_many(&[dkey.to_string()]).await;
        outcome.action = Action::Failed(StoreError::Other { detail: p.clone() });
        lines.push(super::report::line_of(&outcome));
        let mut pr = progress.lock().unwrap();
        pr.counters.objects_failed += 1;
        pr.counters.bytes_failed += task.bytes;
        pr.failures.push(pb::ObjectFailure {
            key: task.key.clone(),
            error: p,
        });
        return Ok(End::done());
    }
    if JobOp::try_from(spec.op) == Ok(JobOp::Move) {
        let failed = transfer::with_retry(copts, "delete source", || {
            src.delete_many(std::slice::from_ref(&task.key))
        })
        .await
        .map_err(|e| e.to_string())?;
        if let Some((_, e)) = failed.first() {
            return Err(format!(
                "copied and verified {}, but the source was not deleted: {e}",
                task.key
            ));
        }
        outcome.action = Action::Moved;
    }
    lines.push(super::report::line_of(&outcome));
    progress.lock().unwrap().counters.objects_done += 1;
    Ok(End::done())
}
