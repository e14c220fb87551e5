//! The multipart driver both copy modes use.
//!
//! In the data flow: a server-side copy beyond `copy_object_max` and a streamed copy at or above
//! `multipart_threshold` cut the object into [`part_ranges`] and hand them to
//! [`run_multipart`], which creates the upload (recording it in the copy's upload registry),
//! keeps at most `parts_in_flight` parts outstanding, passes finished parts to the caller in
//! part order (the streaming path hashes them there), completes the upload — and aborts it on
//! any error or on cancellation, so no upload outlives the copy that started it.

use std::future::Future;

use bytes::Bytes;
use futures::stream::{FuturesOrdered, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{cancelled, with_retry, CopyCtx, CopyOptions};
use crate::store::{CompletedPart, PutResult, StoreError, StoreResult, WriteOptions};

/// The parts of an object of `size` bytes cut into `part_size` parts: (part number, first
/// byte, last byte), inclusive.
pub(super) fn part_ranges(size: u64, part_size: u64) -> Vec<(u32, u64, u64)> {
    (0..size.div_ceil(part_size))
        .map(|i| (i as u32 + 1, i * part_size, ((i + 1) * part_size).min(size) - 1))
        .collect()
}

/// One finished part: what the store returned, and (streaming) its bytes and digests until the
/// in-order consumer has hashed them.
pub(super) struct PartDone {
    pub(super) part: CompletedPart,
    pub(super) data: Option<Bytes>,
    pub(super) md5: Option<[u8; 16]>,
    pub(super) checksum: Option<String>,
}

/// Creates a multipart upload, runs `part_fn` for every range with at most `parts_in_flight`
/// parts outstanding (finished parts are handed to `on_part` in part order), completes it — and
/// aborts it on any error or on cancellation.
pub(super) async fn run_multipart<F, Fut>(
    ctx: &CopyCtx<'_>,
    wopts: &WriteOptions,
    ranges: &[(u32, u64, u64)],
    part_fn: F,
    mut on_part: impl FnMut(&PartDone) -> StoreResult<()>,
) -> StoreResult<(PutResult, Vec<CompletedPart>)>
where
    F: Fn(String, u32, u64, u64) -> Fut,
    Fut: Future<Output = StoreResult<PartDone>>,
{
    let CopyCtx {
        dst,
        dst_key,
        opts,
        tally,
        ..
    } = *ctx;
    let upload_id = with_retry(opts, "create multipart upload", || {
        tally.add(|c| c.create_multipart += 1);
        dst.create_multipart(dst_key, wopts)
    })
    .await?;
    let store_name = dst.describe();
    if let Some(r) = &opts.uploads {
        r.started(&store_name, dst_key, &upload_id);
    }
    // Bytes this copy added to `opts.in_flight`; taken off when it ends, whatever the outcome.
    let added = std::sync::atomic::AtomicU64::new(0);
    let added = &added;
    let work = async {
        let mut parts = Vec::with_capacity(ranges.len());
        let mut pending = ranges.iter();
        let mut inflight = FuturesOrdered::new();
        for &(pn, s, e) in pending.by_ref().take(opts.parts_in_flight.max(1)) {
            inflight.push_back(part_fn(upload_id.clone(), pn, s, e));
        }
        while let Some(done) = inflight.next().await {
            let done = done?;
            on_part(&done)?;
            if let (Some(f), Some(&(_, s, e))) = (&opts.in_flight, ranges.get(parts.len())) {
                let n = e + 1 - s;
                f.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                added.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            parts.push(done.part);
            if let Some(&(pn, s, e)) = pending.next() {
                inflight.push_back(part_fn(upload_id.clone(), pn, s, e));
            }
        }
        let put = with_retry(opts, "complete multipart upload", || {
            tally.add(|c| c.complete_multipart += 1);
            dst.complete_multipart(dst_key, &upload_id, &parts, wopts)
        })
        .await?;
        Ok((put, parts))
    };
    let r = tokio::select! {
        r = work => r,
        _ = opts.cancel.cancelled() => Err(cancelled()),
    };
    if let Some(f) = &opts.in_flight {
        f.fetch_sub(
            added.load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    match r {
        Ok(v) => {
            if let Some(reg) = &opts.uploads {
                reg.finished(&store_name, dst_key, &upload_id);
            }
            Ok(v)
        }
        Err(e) => {
            // Abort even when cancelled (a fresh, uncancelled retry budget for the abort).
            let abort_opts = CopyOptions {
                cancel: CancellationToken::new(),
                retries: opts.retries.min(3),
                ..opts.clone()
            };
            let aborted = with_retry(&abort_opts, "abort multipart upload", || {
                tally.add(|c| c.abort_multipart += 1);
                dst.abort_multipart(dst_key, &upload_id)
            })
            .await;
            match aborted {
                Ok(()) | Err(StoreError::NotFound { .. }) => {
                    if let Some(reg) = &opts.uploads {
                        reg.finished(&store_name, dst_key, &upload_id);
                    }
                }
                Err(ae) => {
                    tracing::warn!(key = dst_key, upload_id, error = %ae, "could not abort a multipart upload; it stays registered for the sweep")
                }
            }
            Err(e)
        }
    }
}
