//! Copying one object between two stores.
//!
//! [`copy_object`] picks a mode ([`CopyMode`]):
//! - **server-side** when both stores are S3 on the same endpoint and the caller allows it
//!   ([`CopyOptions::allow_server_side`]: the destination credential can read the source):
//!   CopyObject up to [`CopyOptions::copy_object_max`] (5 GiB, S3's hard limit), UploadPartCopy
//!   beyond it, up to [`CopyOptions::parts_in_flight`] parts at once. No bytes pass through the
//!   node.
//! - **streaming** otherwise: one GET piped into one PUT below
//!   [`CopyOptions::multipart_threshold`] ([`STREAM_SINGLE_PUT_MAX`], 200 MiB); from it on, one ranged GET per part feeding a multipart
//!   upload with at most `parts_in_flight` parts buffered at once (the memory bound: see
//!   docs/engine.md).
//!
//! Metadata (content-type, cache-control, content-disposition, content-encoding,
//! content-language, expires, user metadata) and tags are carried over in every mode — also on
//! multipart copies, where S3 would drop them — unless [`CopyOptions::overrides`] replaces them.
//! Storage class and SSE come from the options (job or location defaults).
//!
//! Every multipart upload started here is either completed or aborted before [`copy_object`]
//! returns (on error and on cancellation through [`CopyOptions::cancel`]); each is recorded in
//! [`CopyOptions::uploads`] when it starts and removed when it ends, so a process that dies
//! mid-copy leaves ids that [`sweep_uploads`] can find and abort.
//!
//! Requests are retried with exponential backoff and jitter (backon) when the store classifies
//! the error as retryable — per request, so one failing part is retried alone; a broken GET body
//! re-GETs that part's range.
//!
//! Layout of this module, in data-flow order:
//! - this file: the public entry points ([`copy_object`], [`copy_listed`],
//!   [`copy_object_tallied`]), [`CopyOptions`], [`CopyResult`], retries and cancellation, and
//!   `CopyCtx`, the per-object context every path below shares (with its HEAD / tagging /
//!   read-back / delete-a-bad-copy helpers);
//! - `plan`: pure planning — mode, part sizes, the requests a copy costs ([`plan_copy`]);
//! - `server_side`: CopyObject and UploadPartCopy, and their verification;
//! - `streaming`: GET → PUT and ranged GET → UploadPart through the node, hashing the bytes on
//!   the way, and the verification of streamed copies;
//! - `multipart`: the multipart driver both modes use (bounded parts in flight, complete or
//!   abort, upload registry);
//! - `uploads`: the upload log and the sweep of leftovers;
//! - `tally`: request counts.
//!
//! The bandwidth limit applied to streamed bytes is [`crate::throttle::ByteRateLimiter`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::checksum::Hasher;
use super::store::{ChecksumAlgo, ObjectInfo, ObjectMeta, ObjectStore, Sse, StoreError, StoreResult, WriteOptions};
pub use super::throttle::ByteRateLimiter;
pub use super::verify::{Verified, Verify};

mod multipart;
mod plan;
mod server_side;
mod streaming;
mod tally;
mod uploads;

pub use plan::{
    choose_mode, plan_copy, server_part_size, streaming_part_size, CopyMode, CopyPlan, COPY_OBJECT_MAX, MAX_PARTS,
    MAX_PART_SIZE, MIN_PART_SIZE, STREAM_SINGLE_PUT_MAX,
};
pub use streaming::once_body;
pub use tally::{RequestCounts, Tally};
pub use uploads::{sweep_uploads, SweepReport, UploadLog, UploadRegistry};

/// Replacements for what the source object carries. `None` keeps the source's value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataOverrides {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<String>,
    /// Replaces the whole user-metadata map.
    pub user_metadata: Option<BTreeMap<String, String>>,
    /// Replaces the whole tag set (a non-empty set: S3 cannot "copy with no tags" here).
    pub tags: Option<Vec<(String, String)>>,
}

impl MetadataOverrides {
    /// True when no content header or user metadata is overridden (tags aside).
    pub fn keeps_metadata(&self) -> bool {
        self.content_type.is_none()
            && self.cache_control.is_none()
            && self.content_disposition.is_none()
            && self.content_encoding.is_none()
            && self.content_language.is_none()
            && self.expires.is_none()
            && self.user_metadata.is_none()
    }
}

/// Options of one copy. `CopyOptions::default()` is the production default.
#[derive(Clone)]
pub struct CopyOptions {
    /// Force a mode (tests); None chooses automatically.
    pub mode: Option<CopyMode>,
    /// Whether the destination credential can read the source (server-side possible).
    pub allow_server_side: bool,
    /// Server-side: largest object copied with one CopyObject (≤ 5 GiB).
    pub copy_object_max: u64,
    /// Server-side: UploadPartCopy part size (None: chosen, 16–512 MiB, ≤ 10,000 parts).
    pub server_part_size: Option<u64>,
    /// Streaming: objects of at least this size (and > 0) use a multipart upload.
    pub multipart_threshold: u64,
    /// Streaming: part size (None: 8 MiB, raised to stay ≤ 10,000 parts).
    pub part_size: Option<u64>,
    /// Parts transferred (and, streaming, buffered) at once per object.
    pub parts_in_flight: usize,
    /// Copy a multipart source with its own part size when it can be inferred, so the
    /// destination gets the same ETag (sync then sees them equal).
    pub match_source_layout: bool,
    pub verify: Verify,
    /// Algorithm of `Verify::Checksum`.
    pub checksum_algo: ChecksumAlgo,
    pub overrides: MetadataOverrides,
    /// Carry tags over (costs one GetObjectTagging per streamed or multipart-copied object).
    pub copy_tags: bool,
    pub storage_class: Option<String>,
    pub sse: Option<Sse>,
    /// Retries per request (per part), on retryable errors.
    pub retries: usize,
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
    /// Cancels the copy; started uploads are aborted before returning.
    pub cancel: CancellationToken,
    pub uploads: Option<Arc<dyn UploadRegistry>>,
    /// The byte-rate limit streamed bytes pass through (shared by the copies of a job).
    pub bandwidth: Option<Arc<ByteRateLimiter>>,
    /// Delete a destination object that failed verification (it is known bad).
    pub delete_on_mismatch: bool,
    /// Told of every retry before its backoff sleep, so a job can show a failing store within
    /// seconds instead of only in debug logs.
    pub on_retry: Option<OnRetry>,
    /// Bytes of copies still going: each finished part of a multipart copy, and the bytes a
    /// single streamed PUT has passed on so far (added as they go, taken off again when the
    /// object ends, either way), so progress moves with large objects rather than only when
    /// they end.
    pub in_flight: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// Observer of retries ([`CopyOptions::on_retry`]).
pub type OnRetry = Arc<dyn Fn(&Retry<'_>) + Send + Sync>;

/// One retry of a request, as [`CopyOptions::on_retry`] is told of it.
#[derive(Debug)]
pub struct Retry<'a> {
    /// The request: "copy object", "upload part", "list", ...
    pub what: &'a str,
    /// 1 for the first retry.
    pub attempt: usize,
    /// Retries allowed in all ([`CopyOptions::retries`]).
    pub of: usize,
    pub error: &'a StoreError,
    pub delay: Duration,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions {
            mode: None,
            allow_server_side: true,
            copy_object_max: COPY_OBJECT_MAX,
            server_part_size: None,
            multipart_threshold: STREAM_SINGLE_PUT_MAX,
            part_size: None,
            parts_in_flight: 4,
            match_source_layout: true,
            verify: Verify::Size,
            checksum_algo: ChecksumAlgo::Crc32c,
            overrides: MetadataOverrides::default(),
            copy_tags: true,
            storage_class: None,
            sse: None,
            retries: 5,
            retry_min_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(10),
            cancel: CancellationToken::new(),
            uploads: None,
            bandwidth: None,
            delete_on_mismatch: true,
            on_retry: None,
            in_flight: None,
        }
    }
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions")
            .field("mode", &self.mode)
            .field("allow_server_side", &self.allow_server_side)
            .field("copy_object_max", &self.copy_object_max)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

/// What a copy did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyResult {
    pub mode: CopyMode,
    /// Object size.
    pub size: u64,
    /// Bytes that passed through this node (0 for server-side, unless read back to verify).
    pub bytes_through_node: u64,
    /// Parts of the multipart upload; None for a single request.
    pub parts: Option<u32>,
    pub part_size: Option<u64>,
    /// The destination's ETag.
    pub etag: Option<String>,
    pub checksum: Option<(ChecksumAlgo, String)>,
    pub verified: Verified,
    pub requests: RequestCounts,
}

/// The error a cancelled copy returns.
pub fn cancelled() -> StoreError {
    StoreError::Other {
        detail: "cancelled".into(),
    }
}

pub fn is_cancelled(e: &StoreError) -> bool {
    matches!(e, StoreError::Other { detail } if detail == "cancelled")
}

/// Runs `f` until it succeeds, fails with a non-retryable error, runs out of retries, or the
/// copy is cancelled.
pub async fn with_retry<T, F, Fut>(opts: &CopyOptions, what: &str, mut f: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(opts.retry_min_delay)
        .with_max_delay(opts.retry_max_delay)
        .with_max_times(opts.retries)
        .with_jitter()
        .build();
    let mut attempt = 0;
    loop {
        if opts.cancel.is_cancelled() {
            return Err(cancelled());
        }
        let r = tokio::select! {
            r = f() => r,
            _ = opts.cancel.cancelled() => return Err(cancelled()),
        };
        match r {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() => match backoff.next() {
                Some(d) => {
                    attempt += 1;
                    tracing::debug!(what, error = %e, delay_ms = d.as_millis() as u64, attempt, "retrying");
                    if let Some(tell) = &opts.on_retry {
                        tell(&Retry {
                            what,
                            attempt,
                            of: opts.retries,
                            error: &e,
                            delay: d,
                        });
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = opts.cancel.cancelled() => return Err(cancelled()),
                    }
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

/// Copies `src_key` of `src` to `dst_key` of `dst`. See the module docs.
pub async fn copy_object(
    src: &dyn ObjectStore,
    src_key: &str,
    dst: &dyn ObjectStore,
    dst_key: &str,
    opts: &CopyOptions,
) -> Result<CopyResult, StoreError> {
    let tally = Tally::default();
    copy_object_tallied(src, src_key, None, dst, dst_key, opts, &tally).await
}

/// Like [`copy_object`], for an object whose listing entry is known (saves a HEAD in the
/// server-side CopyObject path: a plain copy is then one request).
pub async fn copy_listed(
    src: &dyn ObjectStore,
    info: &ObjectInfo,
    dst: &dyn ObjectStore,
    dst_key: &str,
    opts: &CopyOptions,
) -> Result<CopyResult, StoreError> {
    let tally = Tally::default();
    copy_object_tallied(src, &info.key, Some(info), dst, dst_key, opts, &tally).await
}

/// The copy, counting every request (retries included) into `tally` even when it fails.
pub async fn copy_object_tallied(
    src: &dyn ObjectStore,
    src_key: &str,
    info: Option<&ObjectInfo>,
    dst: &dyn ObjectStore,
    dst_key: &str,
    opts: &CopyOptions,
    tally: &Tally,
) -> Result<CopyResult, StoreError> {
    if opts.cancel.is_cancelled() {
        return Err(cancelled());
    }
    let ctx = CopyCtx {
        src,
        src_key,
        dst,
        dst_key,
        opts,
        tally,
    };
    let mode = choose_mode(src, src_key, dst, opts);
    let mut res = match mode {
        CopyMode::ServerSide => match server_side::copy(&ctx, info).await {
            // SeaweedFS cannot use a "folder marker" (a key ending in `/`) as a copy source and
            // answers NotFound although the key exists: stream those (they are usually empty).
            Err(StoreError::NotFound { .. }) if opts.mode.is_none() && src_key.ends_with('/') => {
                let mut r = streaming::copy(&ctx).await?;
                r.verified
                    .notes
                    .push("the store refused a server-side copy of this key: streamed".into());
                r
            }
            r => r?,
        },
        CopyMode::Streaming => streaming::copy(&ctx).await?,
    };
    res.requests = tally.get();
    Ok(res)
}

/// What every step of one object's copy works with: the two ends, the options (with the
/// cancellation token and bandwidth limit) and the request tally. Built once per object by
/// [`copy_object_tallied`] and passed by reference down the server-side, streaming and
/// multipart paths.
#[derive(Clone, Copy)]
struct CopyCtx<'a> {
    src: &'a dyn ObjectStore,
    src_key: &'a str,
    dst: &'a dyn ObjectStore,
    dst_key: &'a str,
    opts: &'a CopyOptions,
    tally: &'a Tally,
}

impl CopyCtx<'_> {
    /// HEAD of the source object.
    async fn head_src(&self) -> StoreResult<ObjectMeta> {
        with_retry(self.opts, "head", || {
            self.tally.add(|c| c.head += 1);
            self.src.head(self.src_key)
        })
        .await
    }

    /// The tags the destination gets: the overrides', none, or the source's.
    async fn src_tags(&self) -> StoreResult<Vec<(String, String)>> {
        if let Some(t) = &self.opts.overrides.tags {
            return Ok(t.clone());
        }
        if !self.opts.copy_tags {
            return Ok(Vec::new());
        }
        with_retry(self.opts, "get tags", || {
            self.tally.add(|c| c.get_tags += 1);
            self.src.get_tags(self.src_key)
        })
        .await
    }

    /// The destination object failed verification: deletes it (when the options say so) and
    /// returns the mismatch error.
    async fn reject(&self, detail: String) -> StoreError {
        self.delete_bad().await;
        self.mismatch(detail)
    }

    async fn delete_bad(&self) {
        if !self.opts.delete_on_mismatch {
            return;
        }
        self.tally.add(|c| c.delete += 1);
        if let Err(e) = self.dst.delete_many(&[self.dst_key.to_string()]).await {
            tracing::warn!(key = self.dst_key, error = %e, "could not delete a destination object that failed verification");
        }
    }

    fn mismatch(&self, detail: String) -> StoreError {
        StoreError::Mismatch {
            key: self.dst_key.into(),
            detail,
        }
    }

    /// Reads a whole object (`store` is the source or the destination) and returns its
    /// checksum with `opts.checksum_algo`, and its length.
    async fn read_checksum(&self, store: &dyn ObjectStore, key: &str) -> StoreResult<(String, u64)> {
        let algo = self.opts.checksum_algo;
        with_retry(self.opts, "read back", || async {
            self.tally.add(|c| c.get += 1);
            let mut body = store.get(key, None).await?;
            let mut h = Hasher::new(algo);
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                n += chunk.len() as u64;
                h.update(&chunk);
            }
            Ok((h.base64(), n))
        })
        .await
    }
}

/// What the destination gets: the source's metadata, overridden by the options.
pub fn write_options(meta: &ObjectMeta, tags: Vec<(String, String)>, opts: &CopyOptions) -> WriteOptions {
    let o = &opts.overrides;
    let pick = |ov: &Option<String>, src: &Option<String>| ov.clone().or_else(|| src.clone());
    WriteOptions {
        content_type: pick(&o.content_type, &meta.content_type),
        cache_control: pick(&o.cache_control, &meta.cache_control),
        content_disposition: pick(&o.content_disposition, &meta.content_disposition),
        content_encoding: pick(&o.content_encoding, &meta.content_encoding),
        content_language: pick(&o.content_language, &meta.content_language),
        expires: pick(&o.expires, &meta.expires),
        user_metadata: o.user_metadata.clone().unwrap_or_else(|| meta.user_metadata.clone()),
        tags,
        storage_class: opts.storage_class.clone(),
        sse: opts.sse.clone(),
        checksum: (opts.verify == Verify::Checksum).then_some(opts.checksum_algo),
        if_none_match: false,
    }
}

/// Whether the ETags of objects written with this SSE (or read with it) are MD5s.
fn etag_is_md5(sse: Option<&Sse>) -> bool {
    !matches!(sse, Some(Sse::Kms { .. }))
}
