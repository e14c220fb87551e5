//! Copying one object between two stores.
//!
//! [`copy_object`] picks a mode ([`CopyMode`]):
//! - **server-side** when both stores are S3 on the same endpoint and the caller allows it
//!   ([`CopyOptions::allow_server_side`]: the destination credential can read the source):
//!   CopyObject up to [`CopyOptions::copy_object_max`] (5 GiB, S3's hard limit), UploadPartCopy
//!   beyond it, up to [`CopyOptions::parts_in_flight`] parts at once. No bytes pass through the
//!   node.
//! - **streaming** otherwise: one GET piped into one PUT below
//!   [`CopyOptions::multipart_threshold`]; above it, one ranged GET per part feeding a multipart
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

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use md5::{Digest, Md5};
use tokio_util::sync::CancellationToken;

use super::checksum::{self, Hasher};
use super::store::{
    Body, ChecksumAlgo, CompletedPart, EndpointId, ObjectInfo, ObjectMeta, ObjectStore, PutResult, Sse, StoreError,
    StoreResult, UploadInfo, WriteOptions,
};
use super::verify;
pub use super::verify::{Verified, Verify};

const MIB: u64 = 1024 * 1024;
/// S3's largest CopyObject source (5 GiB).
pub const COPY_OBJECT_MAX: u64 = 5 * 1024 * MIB;
/// S3's part-count limit.
pub const MAX_PARTS: u64 = 10_000;
/// S3's largest part (5 GiB).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// S3's smallest part except the last (5 MiB).
pub const MIN_PART_SIZE: u64 = 5 * MIB;

/// How one object is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum CopyMode {
    /// CopyObject / UploadPartCopy: the store copies, no bytes through the node.
    ServerSide,
    /// GET from the source, PUT (or multipart upload) to the destination through the node.
    Streaming,
}

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

/// Where started multipart uploads are recorded, so leftovers can be found after a crash.
pub trait UploadRegistry: Send + Sync {
    /// An upload was created on `store` (its `describe()`).
    fn started(&self, store: &str, key: &str, upload_id: &str);
    /// The upload was completed or aborted.
    fn finished(&self, store: &str, key: &str, upload_id: &str);
}

/// An in-memory [`UploadRegistry`]: the uploads currently open.
#[derive(Debug, Default)]
pub struct UploadLog {
    open: Mutex<BTreeMap<(String, String, String), Instant>>,
    started_total: std::sync::atomic::AtomicU64,
}

impl UploadLog {
    pub fn new() -> Arc<UploadLog> {
        Arc::new(UploadLog::default())
    }
    /// (store, key, upload id) of every upload started and not yet finished.
    pub fn open(&self) -> Vec<(String, String, String)> {
        self.open.lock().unwrap().keys().cloned().collect()
    }
    /// How many uploads were ever started.
    pub fn started_total(&self) -> u64 {
        self.started_total.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Whether this log recorded `upload_id` for `key` (a sweep predicate).
    pub fn owns(&self, key: &str, upload_id: &str) -> bool {
        self.open
            .lock()
            .unwrap()
            .keys()
            .any(|(_, k, u)| k == key && u == upload_id)
    }
}

impl UploadRegistry for UploadLog {
    fn started(&self, store: &str, key: &str, upload_id: &str) {
        self.started_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.open
            .lock()
            .unwrap()
            .insert((store.into(), key.into(), upload_id.into()), Instant::now());
    }
    fn finished(&self, store: &str, key: &str, upload_id: &str) {
        self.open
            .lock()
            .unwrap()
            .remove(&(store.into(), key.into(), upload_id.into()));
    }
}

/// What [`sweep_uploads`] did.
#[derive(Debug, Default)]
pub struct SweepReport {
    pub aborted: Vec<UploadInfo>,
    pub failed: Vec<(UploadInfo, StoreError)>,
    /// Uploads seen that were too young or not owned.
    pub kept: usize,
}

/// Aborts the unfinished multipart uploads under `prefix` that `owned` says the engine started
/// and, with `older_than`, that were initiated at least that long ago. The one sweep of the
/// engine (every store).
///
/// Ownership convention: ListMultipartUploads does not return metadata, so uploads cannot be
/// marked in the store; the engine records the (key, upload id) of every upload it starts (an
/// [`UploadRegistry`]: [`UploadLog`] or the job's persisted record) and passes a predicate over
/// that record ([`UploadLog::owns`]). With an age cut-off, uploads with no initiation time count
/// as stale only when the cut-off is zero. Abort failures are reported, not fatal; an upload
/// already gone counts as aborted.
pub async fn sweep_uploads(
    store: &dyn ObjectStore,
    prefix: &str,
    older_than: Option<Duration>,
    owned: impl Fn(&UploadInfo) -> bool,
) -> StoreResult<SweepReport> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut rep = SweepReport::default();
    for u in store.list_multipart_uploads(prefix).await? {
        let stale = match (older_than, u.initiated_ms) {
            (None, _) => true,
            (Some(age), Some(t)) => now.saturating_sub(t) >= age.as_millis() as i64,
            (Some(age), None) => age.is_zero(),
        };
        if !stale || !owned(&u) {
            rep.kept += 1;
            continue;
        }
        match store.abort_multipart(&u.key, &u.upload_id).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => rep.aborted.push(u),
            Err(e) => rep.failed.push((u, e)),
        }
    }
    Ok(rep)
}

/// A shared token bucket limiting bytes per second through the node (streaming copies). The
/// rate can be changed while copies run.
#[derive(Debug)]
pub struct TokenBucket {
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `bytes_per_sec` sustained, up to `burst` bytes at once.
    pub fn new(bytes_per_sec: u64, burst: u64) -> Arc<TokenBucket> {
        let burst = burst.max(1) as f64;
        Arc::new(TokenBucket {
            state: Mutex::new(BucketState {
                rate: bytes_per_sec.max(1) as f64,
                burst,
                tokens: burst,
                last: Instant::now(),
            }),
        })
    }
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.state.lock().unwrap().rate = bytes_per_sec.max(1) as f64;
    }
    /// Waits until `n` bytes may pass. Larger than the burst is allowed (it goes into debt).
    pub async fn take(&self, n: u64) {
        let wait = {
            let mut s = self.state.lock().unwrap();
            let now = Instant::now();
            s.tokens = (s.tokens + now.duration_since(s.last).as_secs_f64() * s.rate).min(s.burst);
            s.last = now;
            s.tokens -= n as f64;
            if s.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-s.tokens / s.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
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
    pub bandwidth: Option<Arc<TokenBucket>>,
    /// Delete a destination object that failed verification (it is known bad).
    pub delete_on_mismatch: bool,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions {
            mode: None,
            allow_server_side: true,
            copy_object_max: COPY_OBJECT_MAX,
            server_part_size: None,
            multipart_threshold: 16 * MIB,
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

/// Requests made (or, in a dry run, that would be made), by S3 operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    pub list: u64,
    pub head: u64,
    pub get_tags: u64,
    pub get: u64,
    pub put: u64,
    pub create_multipart: u64,
    pub upload_part: u64,
    pub complete_multipart: u64,
    pub abort_multipart: u64,
    pub copy: u64,
    pub upload_part_copy: u64,
    pub delete: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        let c = self.classes();
        c.iter().map(|(_, n)| n).sum()
    }
    /// Collapsed into LIST / HEAD / GET (incl. GetObjectTagging) / PUT (PutObject, multipart
    /// create/part/complete/abort) / COPY (CopyObject, UploadPartCopy) / DELETE.
    pub fn classes(&self) -> [(&'static str, u64); 6] {
        [
            ("LIST", self.list),
            ("HEAD", self.head),
            ("GET", self.get + self.get_tags),
            (
                "PUT",
                self.put + self.create_multipart + self.upload_part + self.complete_multipart + self.abort_multipart,
            ),
            ("COPY", self.copy + self.upload_part_copy),
            ("DELETE", self.delete),
        ]
    }
}

impl std::ops::AddAssign for RequestCounts {
    fn add_assign(&mut self, o: RequestCounts) {
        self.list += o.list;
        self.head += o.head;
        self.get_tags += o.get_tags;
        self.get += o.get;
        self.put += o.put;
        self.create_multipart += o.create_multipart;
        self.upload_part += o.upload_part;
        self.complete_multipart += o.complete_multipart;
        self.abort_multipart += o.abort_multipart;
        self.copy += o.copy;
        self.upload_part_copy += o.upload_part_copy;
        self.delete += o.delete;
    }
}

/// A shared request counter (several parts update it concurrently).
#[derive(Debug, Default)]
pub struct Tally(Mutex<RequestCounts>);

impl Tally {
    pub fn add(&self, f: impl FnOnce(&mut RequestCounts)) {
        f(&mut self.0.lock().unwrap())
    }
    pub fn get(&self) -> RequestCounts {
        *self.0.lock().unwrap()
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

/// The plan for one object: mode, layout and the requests it will cost (without retries and
/// without verification read-backs). Dry runs report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyPlan {
    pub mode: CopyMode,
    pub size: u64,
    /// None: one PutObject / CopyObject.
    pub part_size: Option<u64>,
    pub parts: u32,
    pub requests: RequestCounts,
    pub bytes_through_node: u64,
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

/// The mode `copy_object` uses between these stores.
pub fn choose_mode(src: &dyn ObjectStore, src_key: &str, dst: &dyn ObjectStore, opts: &CopyOptions) -> CopyMode {
    if let Some(m) = opts.mode {
        return m;
    }
    let (a, b) = (src.endpoint_id(), dst.endpoint_id());
    if opts.allow_server_side && a == b && matches!(a, EndpointId::S3 { .. }) && src.copy_source(src_key).is_some() {
        CopyMode::ServerSide
    } else {
        CopyMode::Streaming
    }
}

fn ceil_mib(n: u64) -> u64 {
    n.div_ceil(MIB).max(1) * MIB
}

/// Part size of a server-side multipart copy.
pub fn server_part_size(size: u64, src_etag: Option<&str>, opts: &CopyOptions) -> u64 {
    let min_for_count = size.div_ceil(MAX_PARTS);
    if let Some(p) = layout_of_source(
        size,
        src_etag,
        opts.server_part_size,
        MIN_PART_SIZE.min(opts.server_part_size.unwrap_or(MIN_PART_SIZE)),
        opts,
    ) {
        return p;
    }
    let p = opts
        .server_part_size
        .unwrap_or_else(|| ceil_mib(size / 32).clamp(16 * MIB, 512 * MIB));
    p.max(min_for_count).max(1)
}

/// Part size of a streaming multipart copy.
pub fn streaming_part_size(size: u64, src_etag: Option<&str>, opts: &CopyOptions) -> u64 {
    let min_for_count = size.div_ceil(MAX_PARTS);
    let base = opts.part_size.unwrap_or(8 * MIB).max(min_for_count).max(1);
    if let Some(p) = layout_of_source(size, src_etag, opts.part_size, MIN_PART_SIZE.min(base), opts) {
        // Matching the source layout must not blow the memory bound: at most 64 MiB per part
        // (or the configured part size, if larger).
        if p <= base.max(64 * MIB) {
            return p;
        }
    }
    base
}

fn layout_of_source(size: u64, src_etag: Option<&str>, hint: Option<u64>, min: u64, opts: &CopyOptions) -> Option<u64> {
    if !opts.match_source_layout {
        return None;
    }
    let n = verify::multipart_parts(src_etag?)?;
    let p = verify::infer_part_size(size, n, hint)?;
    (p >= min && p <= MAX_PART_SIZE && size.div_ceil(p) <= MAX_PARTS && n > 1).then_some(p)
}

/// The plan `copy_object` follows for an object listed as `info`.
/// `dst_keeps_metadata`: [`ObjectStore::copy_keeps_metadata`] of the destination.
pub fn plan_copy(mode: CopyMode, info: &ObjectInfo, dst_keeps_metadata: bool, opts: &CopyOptions) -> CopyPlan {
    let size = info.size;
    let mut r = RequestCounts::default();
    let tags = opts.copy_tags && opts.overrides.tags.is_none();
    match mode {
        CopyMode::ServerSide if size <= opts.copy_object_max => {
            let keep = opts.overrides.keeps_metadata() && dst_keeps_metadata;
            if !keep || opts.verify == Verify::Checksum {
                r.head += 1;
            }
            if !keep && !dst_keeps_metadata {
                r.get_tags += tags as u64;
            }
            r.copy += 1;
            if matches!(opts.verify, Verify::Size | Verify::Etag)
                && !info.etag.as_deref().is_some_and(verify::is_plain_md5)
            {
                r.head += 1;
            }
            CopyPlan {
                mode,
                size,
                part_size: None,
                parts: 1,
                requests: r,
                bytes_through_node: 0,
            }
        }
        CopyMode::ServerSide => {
            let p = server_part_size(size, info.etag.as_deref(), opts);
            let n = size.div_ceil(p) as u32;
            r.head += 1;
            r.get_tags += tags as u64;
            r.create_multipart += 1;
            r.upload_part_copy += n as u64;
            r.complete_multipart += 1;
            if matches!(opts.verify, Verify::Size | Verify::Etag) {
                r.head += 1;
            }
            CopyPlan {
                mode,
                size,
                part_size: Some(p),
                parts: n,
                requests: r,
                bytes_through_node: 0,
            }
        }
        CopyMode::Streaming => {
            r.head += 1;
            r.get_tags += tags as u64;
            if size > 0 && size >= opts.multipart_threshold {
                let p = streaming_part_size(size, info.etag.as_deref(), opts);
                let n = size.div_ceil(p) as u32;
                r.create_multipart += 1;
                r.get += n as u64;
                r.upload_part += n as u64;
                r.complete_multipart += 1;
                CopyPlan {
                    mode,
                    size,
                    part_size: Some(p),
                    parts: n,
                    requests: r,
                    bytes_through_node: size,
                }
            } else {
                r.get += 1;
                r.put += 1;
                CopyPlan {
                    mode,
                    size,
                    part_size: None,
                    parts: 1,
                    requests: r,
                    bytes_through_node: size,
                }
            }
        }
    }
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
                    tracing::debug!(what, error = %e, delay_ms = d.as_millis() as u64, "retrying");
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
    let mode = choose_mode(src, src_key, dst, opts);
    let mut res = match mode {
        CopyMode::ServerSide => match server_side(src, src_key, info, dst, dst_key, opts, tally).await {
            // SeaweedFS cannot use a "folder marker" (a key ending in `/`) as a copy source and
            // answers NotFound although the key exists: stream those (they are usually empty).
            Err(StoreError::NotFound { .. }) if opts.mode.is_none() && src_key.ends_with('/') => {
                let mut r = streaming(src, src_key, dst, dst_key, opts, tally).await?;
                r.verified
                    .notes
                    .push("the store refused a server-side copy of this key: streamed".into());
                r
            }
            r => r?,
        },
        CopyMode::Streaming => streaming(src, src_key, dst, dst_key, opts, tally).await?,
    };
    res.requests = tally.get();
    Ok(res)
}

async fn head(store: &dyn ObjectStore, key: &str, opts: &CopyOptions, tally: &Tally) -> StoreResult<ObjectMeta> {
    with_retry(opts, "head", || {
        tally.add(|c| c.head += 1);
        store.head(key)
    })
    .await
}

async fn tags_of(
    store: &dyn ObjectStore,
    key: &str,
    opts: &CopyOptions,
    tally: &Tally,
) -> StoreResult<Vec<(String, String)>> {
    if let Some(t) = &opts.overrides.tags {
        return Ok(t.clone());
    }
    if !opts.copy_tags {
        return Ok(Vec::new());
    }
    with_retry(opts, "get tags", || {
        tally.add(|c| c.get_tags += 1);
        store.get_tags(key)
    })
    .await
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

/// The result of a streamed copy before verification; `layout` is (parts, part size) for a
/// multipart upload.
fn streamed_result(size: u64, streamed: u64, layout: Option<(u32, u64)>, put: &PutResult) -> CopyResult {
    CopyResult {
        mode: CopyMode::Streaming,
        size,
        bytes_through_node: streamed,
        parts: layout.map(|l| l.0),
        part_size: layout.map(|l| l.1),
        etag: put.etag.clone(),
        checksum: put.checksum.clone(),
        verified: Verified::default(),
        requests: RequestCounts::default(),
    }
}

/// Size check of a streamed copy: the bytes that went through the node must be the source's
/// size; otherwise the destination object is a bad copy and is deleted.
async fn check_streamed_size(
    dst: &dyn ObjectStore,
    dst_key: &str,
    opts: &CopyOptions,
    tally: &Tally,
    size: u64,
    streamed: u64,
) -> Result<(), StoreError> {
    if streamed == size {
        return Ok(());
    }
    delete_bad(dst, dst_key, opts, tally).await;
    Err(mismatch(
        dst_key,
        format!("streamed {streamed} bytes, the source has {size}"),
    ))
}

async fn delete_bad(dst: &dyn ObjectStore, key: &str, opts: &CopyOptions, tally: &Tally) {
    if !opts.delete_on_mismatch {
        return;
    }
    tally.add(|c| c.delete += 1);
    if let Err(e) = dst.delete_many(&[key.to_string()]).await {
        tracing::warn!(key, error = %e, "could not delete a destination object that failed verification");
    }
}

fn mismatch(key: &str, detail: String) -> StoreError {
    StoreError::Mismatch {
        key: key.into(),
        detail,
    }
}

/// Reads a whole object and returns (checksum, length).
async fn read_checksum(
    store: &dyn ObjectStore,
    key: &str,
    algo: ChecksumAlgo,
    opts: &CopyOptions,
    tally: &Tally,
) -> StoreResult<(String, u64)> {
    with_retry(opts, "read back", || async {
        tally.add(|c| c.get += 1);
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

// ---------------------------------------------------------------------------------------------
// Server-side
// ---------------------------------------------------------------------------------------------

async fn server_side(
    src: &dyn ObjectStore,
    src_key: &str,
    info: Option<&ObjectInfo>,
    dst: &dyn ObjectStore,
    dst_key: &str,
    opts: &CopyOptions,
    tally: &Tally,
) -> StoreResult<CopyResult> {
    let source = src.copy_source(src_key).ok_or_else(|| StoreError::Other {
        detail: format!("{} cannot be the source of a server-side copy (not S3)", src.describe()),
    })?;
    // Size (and ETag) from the listing when known; HEAD only when needed. A destination whose
    // CopyObject keeps metadata and tags (directive COPY) needs neither HEAD nor tagging.
    let keep = opts.overrides.keeps_metadata() && dst.copy_keeps_metadata();
    let small = info.is_some_and(|i| i.size <= opts.copy_object_max);
    let need_head = info.is_none() || !keep || !small || opts.verify == Verify::Checksum;
    let mut meta: Option<ObjectMeta> = if need_head {
        Some(head(src, src_key, opts, tally).await?)
    } else {
        None
    };
    let src_info = match (&meta, info) {
        (Some(m), _) => m.info.clone(),
        (None, Some(i)) => i.clone(),
        (None, None) => unreachable!("head when the listing entry is unknown"),
    };
    let size = src_info.size;

    if size <= opts.copy_object_max {
        // One CopyObject. With nothing overridden and a store that copies metadata and tags
        // itself, the WriteOptions carry no content headers, user metadata or tags. Otherwise
        // the full merged set is sent (directive REPLACE), with the source's tags.
        let wopts = if keep {
            WriteOptions {
                tags: opts.overrides.tags.clone().unwrap_or_default(),
                storage_class: opts.storage_class.clone(),
                sse: opts.sse.clone(),
                checksum: (opts.verify == Verify::Checksum).then_some(opts.checksum_algo),
                ..Default::default()
            }
        } else {
            let m = meta.as_ref().expect("head when not keeping metadata");
            // Tags: the store's TaggingDirective COPY when it can, else sent explicitly.
            let tags = if dst.copy_keeps_metadata() && opts.overrides.tags.is_none() {
                Vec::new()
            } else {
                tags_of(src, src_key, opts, tally).await?
            };
            write_options(m, tags, opts)
        };
        let put = with_retry(opts, "copy object", || {
            tally.add(|c| c.copy += 1);
            dst.copy_object(&source, dst_key, &wopts)
        })
        .await?;
        let mut res = CopyResult {
            mode: CopyMode::ServerSide,
            size,
            bytes_through_node: 0,
            parts: None,
            part_size: None,
            etag: put.etag.clone(),
            checksum: put.checksum.clone(),
            verified: Verified::default(),
            requests: RequestCounts::default(),
        };
        verify_server_side(
            src,
            src_key,
            &src_info,
            meta.as_mut(),
            dst,
            dst_key,
            &put,
            None,
            opts,
            tally,
            &mut res,
        )
        .await?;
        return Ok(res);
    }

    // UploadPartCopy: metadata and tags must be set on CreateMultipartUpload ourselves.
    let m = match meta {
        Some(m) => m,
        None => head(src, src_key, opts, tally).await?,
    };
    let tags = tags_of(src, src_key, opts, tally).await?;
    let wopts = write_options(&m, tags, opts);
    let size = m.info.size;
    let part_size = server_part_size(size, m.info.etag.as_deref(), opts);
    let n = size.div_ceil(part_size);
    let ranges: Vec<(u32, u64, u64)> = (0..n)
        .map(|i| (i as u32 + 1, i * part_size, ((i + 1) * part_size).min(size) - 1))
        .collect();

    let source = &source;
    let (put, parts) = run_multipart(
        dst,
        dst_key,
        &wopts,
        opts,
        tally,
        &ranges,
        |upload_id, part_number, start, end| async move {
            let part = with_retry(opts, "upload part copy", || {
                tally.add(|c| c.upload_part_copy += 1);
                dst.upload_part_copy(source, dst_key, &upload_id, part_number, (start, end))
            })
            .await?;
            Ok(PartDone {
                part,
                data: None,
                md5: None,
                checksum: None,
            })
        },
        |_| Ok(()),
    )
    .await?;

    let mut res = CopyResult {
        mode: CopyMode::ServerSide,
        size,
        bytes_through_node: 0,
        parts: Some(n as u32),
        part_size: Some(part_size),
        etag: put.etag.clone(),
        checksum: put.checksum.clone(),
        verified: Verified::default(),
        requests: RequestCounts::default(),
    };
    let mut m = m;
    verify_server_side(
        src,
        src_key,
        &m.info.clone(),
        Some(&mut m),
        dst,
        dst_key,
        &put,
        Some(&parts),
        opts,
        tally,
        &mut res,
    )
    .await?;
    Ok(res)
}

#[allow(clippy::too_many_arguments)]
async fn verify_server_side(
    src: &dyn ObjectStore,
    src_key: &str,
    src_info: &ObjectInfo,
    src_meta: Option<&mut ObjectMeta>,
    dst: &dyn ObjectStore,
    dst_key: &str,
    put: &PutResult,
    parts: Option<&[CompletedPart]>,
    opts: &CopyOptions,
    tally: &Tally,
    res: &mut CopyResult,
) -> StoreResult<()> {
    let v = &mut res.verified;
    let src_etag = src_info.etag.as_deref().map(verify::norm_etag);
    let dst_etag = put.etag.as_deref().map(verify::norm_etag);
    let kms = !etag_is_md5(opts.sse.as_ref()) || src_meta.as_ref().is_some_and(|m| !etag_is_md5(m.sse.as_ref()));
    match opts.verify {
        Verify::None => {}
        Verify::Size | Verify::Etag => {
            // Equal MD5 ETags mean equal bytes (hence equal size) with no extra request.
            let md5s = !kms
                && src_etag.as_deref().is_some_and(verify::is_plain_md5)
                && dst_etag.as_deref().is_some_and(verify::is_plain_md5);
            if md5s && parts.is_none() {
                if src_etag != dst_etag {
                    delete_bad(dst, dst_key, opts, tally).await;
                    return Err(mismatch(
                        dst_key,
                        format!(
                            "ETag {} after CopyObject, source has {}",
                            dst_etag.unwrap_or_default(),
                            src_etag.unwrap_or_default()
                        ),
                    ));
                }
                v.size = true;
                v.etag = true;
                v.source_etag = true;
                return Ok(());
            }
            if let (Some(parts), Some(d)) = (parts, dst_etag.as_deref()) {
                // The multipart ETag must be the MD5 of the part ETags the copy returned.
                let part_etags: Vec<&str> = parts.iter().map(|p| p.etag.as_str()).collect();
                match checksum::multipart_etag_hex(&part_etags) {
                    Some(expected) if !kms && verify::multipart_parts(d).is_some() => {
                        if expected != d {
                            delete_bad(dst, dst_key, opts, tally).await;
                            return Err(mismatch(dst_key, format!("multipart ETag {d} does not match its parts ({expected})")));
                        }
                        v.etag = true;
                        v.source_etag = src_etag.as_deref() == Some(d);
                    }
                    _ => v.notes.push(format!(
                        "the store's ETags are not MD5-based here (final `{d}`, part 1 `{}`; SSE-KMS or a non-AWS store): ETag not verified",
                        parts.first().map(|p| p.etag.as_str()).unwrap_or("")
                    )),
                }
            } else if opts.verify == Verify::Etag {
                v.notes.push(if kms {
                    "SSE-KMS ETags are not MD5s: verified by size".into()
                } else {
                    "the source ETag is multipart and CopyObject writes a single-part one: verified by size".to_string()
                });
            }
            tally.add(|c| c.head += 1);
            let d = with_retry(opts, "head destination", || dst.head(dst_key)).await?;
            if d.info.size != src_info.size {
                delete_bad(dst, dst_key, opts, tally).await;
                return Err(mismatch(
                    dst_key,
                    format!("destination has {} bytes, source {}", d.info.size, src_info.size),
                ));
            }
            v.size = true;
        }
        Verify::Checksum => {
            let algo = opts.checksum_algo;
            let src_ck = src_meta
                .as_ref()
                .and_then(|m| m.checksums.get(&algo))
                .filter(|c| !c.contains('-'))
                .cloned();
            let dst_ck = put
                .checksum
                .as_ref()
                .filter(|(a, c)| *a == algo && !c.contains('-'))
                .map(|(_, c)| c.clone());
            let (s, d) = match (src_ck, dst_ck) {
                (Some(s), Some(d)) => (s, d),
                (s, d) => {
                    // Not reported on both sides: compute both by reading (bytes pass through the node).
                    v.notes.push(format!(
                        "{algo:?} not reported by both stores: computed by reading source and destination"
                    ));
                    let s = match s {
                        Some(s) => s,
                        None => read_checksum(src, src_key, algo, opts, tally).await?.0,
                    };
                    let d = match d {
                        Some(d) => d,
                        None => {
                            let (d, n) = read_checksum(dst, dst_key, algo, opts, tally).await?;
                            res.bytes_through_node += n;
                            d
                        }
                    };
                    (s, d)
                }
            };
            if s != d {
                delete_bad(dst, dst_key, opts, tally).await;
                return Err(mismatch(
                    dst_key,
                    format!("{algo:?} {d} at the destination, source has {s}"),
                ));
            }
            v.size = true;
            v.checksum = Some((algo, d.clone()));
            res.checksum = Some((algo, d));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Multipart driver (both modes)
// ---------------------------------------------------------------------------------------------

/// One finished part: what the store returned, and (streaming) its bytes and digests until the
/// in-order consumer has hashed them.
struct PartDone {
    part: CompletedPart,
    data: Option<Bytes>,
    md5: Option<[u8; 16]>,
    checksum: Option<String>,
}

/// Creates a multipart upload, runs `part_fn` for every range with at most `parts_in_flight`
/// parts outstanding (finished parts are handed to `on_part` in part order), completes it — and
/// aborts it on any error or on cancellation.
#[allow(clippy::too_many_arguments)]
async fn run_multipart<F, Fut>(
    dst: &dyn ObjectStore,
    dst_key: &str,
    wopts: &WriteOptions,
    opts: &CopyOptions,
    tally: &Tally,
    ranges: &[(u32, u64, u64)],
    part_fn: F,
    mut on_part: impl FnMut(&PartDone) -> StoreResult<()>,
) -> StoreResult<(PutResult, Vec<CompletedPart>)>
where
    F: Fn(String, u32, u64, u64) -> Fut,
    Fut: Future<Output = StoreResult<PartDone>>,
{
    let upload_id = with_retry(opts, "create multipart upload", || {
        tally.add(|c| c.create_multipart += 1);
        dst.create_multipart(dst_key, wopts)
    })
    .await?;
    let store_name = dst.describe();
    if let Some(r) = &opts.uploads {
        r.started(&store_name, dst_key, &upload_id);
    }
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

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

/// Digests of a byte stream, computed in stream order.
struct Hashes {
    n: u64,
    md5: Option<Md5>,
    checksum: Option<Hasher>,
    /// (part size, current part's MD5, bytes in it, finished part MD5s): the multipart ETag of
    /// the stream for a given layout (to check a multipart source's ETag on a single PUT).
    layout: Option<(u64, Md5, u64, Vec<[u8; 16]>)>,
    /// The error the source stream failed with, if it did.
    src_err: Option<StoreError>,
}

impl Hashes {
    fn new(md5: bool, checksum: Option<ChecksumAlgo>, layout: Option<u64>) -> Hashes {
        Hashes {
            n: 0,
            md5: md5.then(Md5::new),
            checksum: checksum.map(Hasher::new),
            layout: layout.map(|p| (p, Md5::new(), 0, Vec::new())),
            src_err: None,
        }
    }
    fn update(&mut self, mut data: &[u8]) {
        self.n += data.len() as u64;
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.checksum {
            h.update(data);
        }
        if let Some((p, cur, filled, done)) = &mut self.layout {
            while !data.is_empty() {
                let take = ((*p - *filled) as usize).min(data.len());
                cur.update(&data[..take]);
                *filled += take as u64;
                data = &data[take..];
                if *filled == *p {
                    done.push(std::mem::take(cur).finalize().into());
                    *filled = 0;
                }
            }
        }
    }
    fn layout_etag(&self) -> Option<String> {
        let (_, cur, filled, done) = self.layout.as_ref()?;
        let mut done = done.clone();
        if *filled > 0 {
            done.push(cur.clone().finalize().into());
        }
        Some(checksum::multipart_etag(&done))
    }
}

/// Wraps a body: hashes it in order, applies the bandwidth limit and cancellation, and remembers
/// a source failure (so a failed PUT reports the GET's retryable error, and is retried).
fn instrument(body: Body, hashes: Arc<Mutex<Hashes>>, opts: &CopyOptions) -> Body {
    let bw = opts.bandwidth.clone();
    let cancel = opts.cancel.clone();
    Box::pin(body.then(move |item| {
        let (hashes, bw, cancel) = (hashes.clone(), bw.clone(), cancel.clone());
        async move {
            if cancel.is_cancelled() {
                return Err(cancelled());
            }
            match item {
                Ok(chunk) => {
                    if let Some(b) = &bw {
                        b.take(chunk.len() as u64).await;
                    }
                    hashes.lock().unwrap().update(&chunk);
                    Ok(chunk)
                }
                Err(e) => {
                    hashes.lock().unwrap().src_err = Some(e.clone());
                    Err(e)
                }
            }
        }
    }))
}

/// A body of one chunk already in memory.
pub fn once_body(data: Bytes) -> Body {
    Box::pin(futures::stream::once(futures::future::ready(Ok(data))))
}

async fn streaming(
    src: &dyn ObjectStore,
    src_key: &str,
    dst: &dyn ObjectStore,
    dst_key: &str,
    opts: &CopyOptions,
    tally: &Tally,
) -> StoreResult<CopyResult> {
    let meta = head(src, src_key, opts, tally).await?;
    let tags = tags_of(src, src_key, opts, tally).await?;
    let wopts = write_options(&meta, tags, opts);
    let size = meta.info.size;
    if size > 0 && size >= opts.multipart_threshold {
        streaming_multipart(src, src_key, &meta, dst, dst_key, &wopts, opts, tally).await
    } else {
        streaming_single(src, src_key, &meta, dst, dst_key, &wopts, opts, tally).await
    }
}

/// What the source's ETag says about the bytes, for `Verify::Etag`.
enum SourceEtag {
    /// A plain MD5 of the content.
    Md5(String),
    /// A multipart ETag and the part size inferred for it.
    Multipart(String, u64),
    /// Not reproducible, and why.
    Unknown(String),
}

fn source_etag(meta: &ObjectMeta, opts: &CopyOptions) -> SourceEtag {
    let Some(e) = meta.info.etag.as_deref().map(verify::norm_etag) else {
        return SourceEtag::Unknown("the source reports no ETag".into());
    };
    if !etag_is_md5(meta.sse.as_ref()) {
        return SourceEtag::Unknown("the source is SSE-KMS encrypted: its ETag is not an MD5".into());
    }
    if verify::is_plain_md5(&e) {
        return SourceEtag::Md5(e);
    }
    if let Some(n) = verify::multipart_parts(&e) {
        if let Some(p) = verify::infer_part_size(meta.info.size, n, opts.part_size) {
            return SourceEtag::Multipart(e, p);
        }
    }
    SourceEtag::Unknown(format!("the source ETag `{e}` is not MD5-based"))
}

#[allow(clippy::too_many_arguments)]
async fn streaming_single(
    src: &dyn ObjectStore,
    src_key: &str,
    meta: &ObjectMeta,
    dst: &dyn ObjectStore,
    dst_key: &str,
    wopts: &WriteOptions,
    opts: &CopyOptions,
    tally: &Tally,
) -> StoreResult<CopyResult> {
    let size = meta.info.size;
    let want_etag = opts.verify == Verify::Etag;
    let want_ck = opts.verify == Verify::Checksum;
    let src_etag = source_etag(meta, opts);
    let layout = match (&src_etag, want_etag) {
        (SourceEtag::Multipart(_, p), true) => Some(*p),
        _ => None,
    };
    let hashes = Arc::new(Mutex::new(Hashes::new(
        want_etag,
        want_ck.then_some(opts.checksum_algo),
        layout,
    )));
    let put = with_retry(opts, "stream object", || {
        let hashes = hashes.clone();
        async move {
            *hashes.lock().unwrap() = Hashes::new(want_etag, want_ck.then_some(opts.checksum_algo), layout);
            tally.add(|c| c.get += 1);
            let body = src.get(src_key, None).await?;
            let body = instrument(body, hashes.clone(), opts);
            tally.add(|c| c.put += 1);
            match dst.put(dst_key, body, size, wopts).await {
                Ok(p) => Ok(p),
                Err(e) => Err(hashes.lock().unwrap().src_err.take().unwrap_or(e)),
            }
        }
    })
    .await?;
    let h = std::mem::replace(&mut *hashes.lock().unwrap(), Hashes::new(false, None, None));
    let mut res = streamed_result(size, h.n, None, &put);
    if opts.verify == Verify::None {
        return Ok(res);
    }
    check_streamed_size(dst, dst_key, opts, tally, size, h.n).await?;
    res.verified.size = true;
    if want_etag {
        let md5 = hex::encode(h.md5.clone().expect("md5 requested").finalize());
        check_source_etag(
            &src_etag,
            &md5,
            h.layout_etag().as_deref(),
            dst,
            dst_key,
            opts,
            tally,
            &mut res.verified,
        )
        .await?;
        check_dest_etag(put.etag.as_deref(), &md5, dst, dst_key, opts, tally, &mut res.verified).await?;
    }
    if want_ck {
        let whole = h.checksum.as_ref().expect("checksum requested").base64();
        check_checksums(
            src_key, meta, &whole, None, &put, false, dst, dst_key, opts, tally, &mut res,
        )
        .await?;
    }
    Ok(res)
}

#[allow(clippy::too_many_arguments)]
async fn check_source_etag(
    src_etag: &SourceEtag,
    md5: &str,
    layout_etag: Option<&str>,
    dst: &dyn ObjectStore,
    dst_key: &str,
    opts: &CopyOptions,
    tally: &Tally,
    v: &mut Verified,
) -> StoreResult<()> {
    match src_etag {
        SourceEtag::Md5(e) => {
            if e != md5 {
                delete_bad(dst, dst_key, opts, tally).await;
                return Err(mismatch(
                    dst_key,
                    format!(
                        "the bytes read have MD5 {md5}, the source ETag is {e} (changed or corrupted during the copy)"
                    ),
                ));
            }
            v.source_etag = true;
        }
        SourceEtag::Multipart(e, p) => {
            if layout_etag == Some(e.as_str()) {
                v.source_etag = true;
            } else {
                v.notes.push(format!(
                    "source ETag {e} not reproduced with {p}-byte parts (its part size is unknown): not compared"
                ));
            }
        }
        SourceEtag::Unknown(why) => v.notes.push(format!("{why}: source ETag not compared")),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn check_dest_etag(
    dst_etag: Option<&str>,
    expected: &str,
    dst: &dyn ObjectStore,
    dst_key: &str,
    opts: &CopyOptions,
    tally: &Tally,
    v: &mut Verified,
) -> StoreResult<()> {
    let d = dst_etag.map(verify::norm_etag);
    let comparable = etag_is_md5(opts.sse.as_ref())
        && d.as_deref()
            .is_some_and(|d| verify::is_plain_md5(d) || verify::multipart_parts(d).is_some());
    match d {
        Some(d) if comparable => {
            if d != expected {
                delete_bad(dst, dst_key, opts, tally).await;
                return Err(mismatch(
                    dst_key,
                    format!("destination ETag {d}, expected {expected} from the bytes sent"),
                ));
            }
            v.etag = true;
        }
        _ => v.notes.push(if etag_is_md5(opts.sse.as_ref()) {
            "the destination ETag is not MD5-based: verified by size".into()
        } else {
            "SSE-KMS ETags are not MD5s: destination verified by size".into()
        }),
    }
    Ok(())
}

/// `Verify::Checksum` for streaming copies: our whole-object value (and composite, multipart)
/// against what the destination and the source report; the destination is read back when it
/// reports nothing (and its parts reported nothing either).
#[allow(clippy::too_many_arguments)]
async fn check_checksums(
    src_key: &str,
    meta: &ObjectMeta,
    whole: &str,
    composite: Option<&str>,
    put: &PutResult,
    parts_checked: bool,
    dst: &dyn ObjectStore,
    dst_key: &str,
    opts: &CopyOptions,
    tally: &Tally,
    res: &mut CopyResult,
) -> StoreResult<()> {
    let algo = opts.checksum_algo;
    // Source: a whole-object value, or a composite one when our layout is the source's.
    if let Some(s) = meta.checksums.get(&algo) {
        if s.contains('-') && composite.is_none_or(|c| c.rsplit('-').next() != s.rsplit('-').next()) {
            res.verified.notes.push(format!(
                "the source's composite {algo:?} is for another part layout: not compared"
            ));
        } else if !verify::checksum_matches(s, whole, composite) {
            delete_bad(dst, dst_key, opts, tally).await;
            return Err(mismatch(
                dst_key,
                format!("the bytes read of `{src_key}` have {algo:?} {whole}, the source reports {s}"),
            ));
        }
    }
    match put.checksum.as_ref().filter(|(a, _)| *a == algo) {
        Some((_, d)) => {
            if !verify::checksum_matches(d, whole, composite) {
                delete_bad(dst, dst_key, opts, tally).await;
                return Err(mismatch(dst_key, format!("destination {algo:?} {d}, expected {whole}")));
            }
        }
        None if parts_checked => {}
        None => {
            res.verified
                .notes
                .push(format!("the destination reports no {algo:?}: read back and computed"));
            let (d, n) = read_checksum(dst, dst_key, algo, opts, tally).await?;
            res.bytes_through_node += n;
            if d != whole {
                delete_bad(dst, dst_key, opts, tally).await;
                return Err(mismatch(
                    dst_key,
                    format!("destination {algo:?} {d} (read back), expected {whole}"),
                ));
            }
        }
    }
    res.verified.checksum = Some((algo, whole.to_string()));
    res.checksum = Some((algo, whole.to_string()));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn streaming_multipart(
    src: &dyn ObjectStore,
    src_key: &str,
    meta: &ObjectMeta,
    dst: &dyn ObjectStore,
    dst_key: &str,
    wopts: &WriteOptions,
    opts: &CopyOptions,
    tally: &Tally,
) -> StoreResult<CopyResult> {
    let size = meta.info.size;
    let want_etag = opts.verify == Verify::Etag;
    let want_ck = opts.verify == Verify::Checksum;
    let algo = opts.checksum_algo;
    let src_etag = source_etag(meta, opts);
    let part_size = streaming_part_size(size, meta.info.etag.as_deref(), opts);
    let n = size.div_ceil(part_size);
    let ranges: Vec<(u32, u64, u64)> = (0..n)
        .map(|i| (i as u32 + 1, i * part_size, ((i + 1) * part_size).min(size) - 1))
        .collect();
    // Whole-object digests, computed in part order by the consumer.
    let mut whole = Hashes::new(
        want_etag && matches!(src_etag, SourceEtag::Md5(_)),
        want_ck.then_some(algo),
        None,
    );
    let mut md5s: Vec<[u8; 16]> = Vec::new();
    let mut part_cks: Vec<String> = Vec::new();
    let mut parts_checked = want_ck;
    let dst_md5 = etag_is_md5(opts.sse.as_ref());

    let (put, _parts) = run_multipart(
        dst,
        dst_key,
        wopts,
        opts,
        tally,
        &ranges,
        |upload_id, part_number, start, end| async move {
            let len = end - start + 1;
            let data = with_retry(opts, "get part", || async move {
                tally.add(|c| c.get += 1);
                let mut body = src.get(src_key, Some((start, end))).await?;
                let mut buf = BytesMut::with_capacity(len as usize);
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    if let Some(b) = &opts.bandwidth {
                        b.take(chunk.len() as u64).await;
                    }
                    if opts.cancel.is_cancelled() {
                        return Err(cancelled());
                    }
                    buf.extend_from_slice(&chunk);
                    if buf.len() as u64 > len {
                        return Err(StoreError::Other {
                            detail: format!("`{src_key}`: the store returned more than the {len} bytes asked for"),
                        });
                    }
                }
                if (buf.len() as u64) < len {
                    return Err(StoreError::Transient {
                        detail: format!("`{src_key}`: the body ended after {} of {len} bytes", buf.len()),
                    });
                }
                Ok(buf.freeze())
            })
            .await?;
            let md5: Option<[u8; 16]> = want_etag.then(|| Md5::digest(&data).into());
            let checksum = want_ck.then(|| checksum::checksum_b64(algo, &data));
            let part = with_retry(opts, "upload part", || {
                tally.add(|c| c.upload_part += 1);
                dst.upload_part(
                    dst_key,
                    &upload_id,
                    part_number,
                    once_body(data.clone()),
                    len,
                    want_ck.then_some(algo),
                )
            })
            .await?;
            if let (Some(mine), Some((a, theirs))) = (&checksum, &part.checksum) {
                if *a == algo && mine != theirs {
                    return Err(mismatch(
                        dst_key,
                        format!("part {part_number}: destination {algo:?} {theirs}, expected {mine}"),
                    ));
                }
            }
            if let Some(m) = &md5 {
                let e = verify::norm_etag(&part.etag);
                if dst_md5 && verify::is_plain_md5(&e) && e != hex::encode(m) {
                    return Err(mismatch(
                        dst_key,
                        format!("part {part_number}: destination ETag {e}, expected {}", hex::encode(m)),
                    ));
                }
            }
            Ok(PartDone {
                part,
                data: Some(data),
                md5,
                checksum,
            })
        },
        |done| {
            if let Some(d) = &done.data {
                whole.update(d);
            }
            if let Some(m) = done.md5 {
                md5s.push(m);
            }
            match &done.checksum {
                Some(c) => {
                    if done.part.checksum.is_none() {
                        parts_checked = false;
                    }
                    part_cks.push(c.clone());
                }
                None => parts_checked = false,
            }
            Ok(())
        },
    )
    .await?; // a part-level mismatch aborted the upload: nothing to delete
    let mut res = streamed_result(size, whole.n, Some((n as u32, part_size)), &put);
    if opts.verify == Verify::None {
        return Ok(res);
    }
    check_streamed_size(dst, dst_key, opts, tally, size, whole.n).await?;
    res.verified.size = true;
    if want_etag {
        let expected = checksum::multipart_etag(&md5s);
        let whole_md5 = whole.md5.clone().map(|h| hex::encode(h.finalize())).unwrap_or_default();
        match &src_etag {
            SourceEtag::Md5(_) => {
                check_source_etag(
                    &src_etag,
                    &whole_md5,
                    None,
                    dst,
                    dst_key,
                    opts,
                    tally,
                    &mut res.verified,
                )
                .await?
            }
            _ => {
                check_source_etag(
                    &src_etag,
                    "",
                    Some(&expected),
                    dst,
                    dst_key,
                    opts,
                    tally,
                    &mut res.verified,
                )
                .await?
            }
        }
        check_dest_etag(
            put.etag.as_deref(),
            &expected,
            dst,
            dst_key,
            opts,
            tally,
            &mut res.verified,
        )
        .await?;
    }
    if want_ck {
        let w = whole.checksum.as_ref().expect("checksum requested").base64();
        let composite = checksum::composite_checksum(algo, &part_cks);
        check_checksums(
            src_key,
            meta,
            &w,
            composite.as_deref(),
            &put,
            parts_checked,
            dst,
            dst_key,
            opts,
            tally,
            &mut res,
        )
        .await?;
    }
    Ok(res)
}
