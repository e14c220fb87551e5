//! Operations over a key range: copy, move, sync (optionally deleting), each with a dry run.
//!
//! [`run_range`] is the unit the distributed job runs per range task. It pages through the
//! source range (and, when it must compare, first lists the destination's matching range into a
//! map by relative key — no HEAD per object), applies the
//! [`Filter`], copies with bounded concurrency, reports one [`Outcome`] per object to the sink,
//! and returns a [`RangeSummary`] with counters, request counts and a checkpoint
//! (`last_completed_key`: every source key ≤ it is finished, so a retry resumes after it).
//!
//! Semantics (rclone-like):
//! - **Copy** copies every matching object; with `skip_existing` an object whose destination
//!   has the same size and a comparable, equal ETag is skipped (see [`same_object`]).
//! - **Move** copies, verifies (at least by size, even if `Verify::None` was asked), then
//!   deletes the verified sources in batches (DeleteObjects, ≤ 1,000 keys). A source whose copy
//!   failed, or could not be verified, is never deleted. With `skip_existing`, a source whose
//!   destination is already identical (equal size and equal comparable ETag) is deleted
//!   without copying.
//! - **Resumed work** (`skip_existing` + `written_since_ms`, a job task run again after its node
//!   died): a copy reports an identical destination written since then as
//!   [`SkipReason::CopiedEarlier`]; a move reports a destination object of the range written
//!   since then whose source is gone as [`SkipReason::MovedEarlier`] — the earlier run did that
//!   work but died before reporting it.
//! - **Sync** copies what is missing or differs (size, ETag, or with `Verify::Checksum` the
//!   stores' checksums); with `delete`, destination objects that have no source in the range are
//!   deleted — only after the copy phase of the range, only if nothing in the range failed
//!   (otherwise every deletion is suppressed and reported with the reason), never keys excluded
//!   by the filter, and never more than `max_delete` when set.
//! - **dry_run** lists (those LISTs are real) but writes nothing: it reports WouldCopy /
//!   WouldMove / WouldDelete / Skipped with the requests each would cost and the bytes that
//!   would pass through the node between endpoints.
//!
//! The filter sees keys relative to the [`KeyMap`]'s source prefix (for deletions: the
//! destination key relative to its prefix), so one filter means the same on both sides.

use std::collections::VecDeque;

use futures::stream::{FuturesUnordered, StreamExt};

use super::filter::Filter;
use super::store::{ChecksumAlgo, KeyRange, ObjectInfo, ObjectStore, StoreError, StoreResult};
use super::transfer::{
    self, cancelled, choose_mode, copy_object_tallied, plan_copy, with_retry, CopyMode, CopyOptions, RequestCounts,
    Tally,
};
use super::verify::{self, Verify};

/// What to do with a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOp {
    Copy,
    Move,
    Sync { delete: bool },
}

/// Source prefix → destination prefix: `src_prefix + rest` maps to `dst_prefix + rest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyMap {
    pub src_prefix: String,
    pub dst_prefix: String,
}

impl KeyMap {
    pub fn new(src_prefix: impl Into<String>, dst_prefix: impl Into<String>) -> KeyMap {
        KeyMap {
            src_prefix: src_prefix.into(),
            dst_prefix: dst_prefix.into(),
        }
    }
    /// Same keys on both sides.
    pub fn identity() -> KeyMap {
        KeyMap::default()
    }
    /// The key relative to the source prefix.
    pub fn src_relative<'a>(&self, src_key: &'a str) -> Option<&'a str> {
        src_key.strip_prefix(self.src_prefix.as_str())
    }
    /// The key relative to the destination prefix.
    pub fn dst_relative<'a>(&self, dst_key: &'a str) -> Option<&'a str> {
        dst_key.strip_prefix(self.dst_prefix.as_str())
    }
    pub fn to_dst(&self, src_key: &str) -> Option<String> {
        self.src_relative(src_key).map(|r| format!("{}{r}", self.dst_prefix))
    }
    pub fn to_src(&self, dst_key: &str) -> Option<String> {
        self.dst_relative(dst_key).map(|r| format!("{}{r}", self.src_prefix))
    }

    /// The source range restricted to keys under the source prefix, and the matching
    /// destination range. Err when they do not overlap; None when the range is empty.
    pub fn ranges(&self, r: &KeyRange) -> StoreResult<Option<(KeyRange, KeyRange)>> {
        let prefix = if r.prefix.starts_with(&self.src_prefix) {
            r.prefix.clone()
        } else if self.src_prefix.starts_with(&r.prefix) {
            self.src_prefix.clone()
        } else {
            return Err(StoreError::Other {
                detail: format!(
                    "range prefix `{}` is outside the mapped source prefix `{}`",
                    r.prefix, self.src_prefix
                ),
            });
        };
        let rest = |k: &str| k.strip_prefix(self.src_prefix.as_str()).map(str::to_string);
        // Bounds outside the prefix collapse: before it → unbounded, after it → empty.
        let start_after = match &r.start_after {
            None => None,
            Some(s) if s.starts_with(&self.src_prefix) => Some(s.clone()),
            Some(s) if s.as_str() < self.src_prefix.as_str() => None,
            Some(_) => return Ok(None),
        };
        let end = match &r.end {
            None => None,
            Some(e) if e.starts_with(&self.src_prefix) => Some(e.clone()),
            Some(e) if e.as_str() > self.src_prefix.as_str() => None,
            Some(_) => return Ok(None),
        };
        let src = KeyRange {
            prefix: prefix.clone(),
            start_after: start_after.clone(),
            end: end.clone(),
            path_order: r.path_order,
        };
        let dst = KeyRange {
            prefix: format!("{}{}", self.dst_prefix, rest(&prefix).unwrap_or_default()),
            start_after: start_after
                .and_then(|s| rest(&s))
                .map(|s| format!("{}{s}", self.dst_prefix)),
            end: end.and_then(|e| rest(&e)).map(|e| format!("{}{e}", self.dst_prefix)),
            path_order: r.path_order,
        };
        Ok(Some((src, dst)))
    }
}

/// Options of a range operation.
#[derive(Clone, Debug)]
pub struct RangeOptions {
    pub copy: CopyOptions,
    /// Objects copied at once.
    pub concurrency: usize,
    /// Of those, streamed multipart objects at once (each buffers up to
    /// `copy.parts_in_flight × part size`): the memory bound of a range is
    /// `large_concurrency × parts_in_flight × part_size` (4 × 4 × 8 MiB = 128 MiB by default).
    pub large_concurrency: usize,
    /// Limits shared with the other ranges running in this process (a job worker's node-wide
    /// budget): every object in flight also holds an `objects` permit, a streamed one also a
    /// `streams` permit, and a streamed multipart object a `large` permit instead of this range's
    /// own `large_concurrency` — so one range alone may use the whole budget, and several share
    /// it.
    pub shared: Option<SharedLimits>,
    /// Keys per LIST request (S3 caps it at 1,000).
    pub page_size: usize,
    /// Copy/Move: skip objects already identical at the destination (costs a destination LIST
    /// per 1,000 keys, no HEAD).
    pub skip_existing: bool,
    /// Copy with `skip_existing`: an identical destination object written at or after this time
    /// (ms since the epoch, the destination store's clock) was copied by an earlier run of the
    /// same work — a job task resumed after its node died — and is reported as
    /// [`SkipReason::CopiedEarlier`] rather than [`SkipReason::Identical`].
    pub written_since_ms: Option<i64>,
    pub dry_run: bool,
    /// Keys per DeleteObjects request (≤ 1,000).
    pub delete_batch: usize,
    /// Sync: refuse to delete more than this many objects in the range (all deletions are then
    /// suppressed and reported).
    pub max_delete: Option<u64>,
    /// Where the run publishes its checkpoint while it goes (every source key ≤ the value is
    /// finished and its outcome already given to the sink), so a job worker can report progress
    /// mid-range. Never set for sync with delete: that range finishes only with its deletions.
    pub checkpoint: Option<std::sync::Arc<std::sync::Mutex<Option<String>>>>,
}

/// Concurrency budgets several ranges share (see [`RangeOptions::shared`]).
#[derive(Clone, Debug)]
pub struct SharedLimits {
    /// Objects in flight.
    pub objects: std::sync::Arc<tokio::sync::Semaphore>,
    /// Of those, objects streamed through this process (any size): many small server-side
    /// copies in flight cost the node nothing, many streams thrash the stores and the node.
    pub streams: std::sync::Arc<tokio::sync::Semaphore>,
    /// Of those, streamed multipart objects (each buffers up to `parts_in_flight` parts).
    pub large: std::sync::Arc<tokio::sync::Semaphore>,
}

impl SharedLimits {
    pub fn new(objects: usize, streams: usize, large: usize) -> SharedLimits {
        let sem = |n: usize| std::sync::Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        SharedLimits {
            objects: sem(objects),
            streams: sem(streams),
            large: sem(large),
        }
    }
}

impl Default for RangeOptions {
    fn default() -> RangeOptions {
        RangeOptions {
            copy: CopyOptions::default(),
            concurrency: 16,
            large_concurrency: 4,
            shared: None,
            page_size: 1000,
            skip_existing: false,
            written_since_ms: None,
            dry_run: false,
            delete_batch: 1000,
            max_delete: None,
            checkpoint: None,
        }
    }
}

/// Why an object was not copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The destination already holds the same object.
    Identical,
    /// The destination holds the same object, written since [`RangeOptions::written_since_ms`]:
    /// an earlier run of the same work copied it, so it counts as copied, not as skipped.
    CopiedEarlier,
    /// Move with [`RangeOptions::written_since_ms`]: the source is gone and the destination was
    /// written since then — an earlier run of the same work moved it (its outcome is the
    /// destination's; `key` is the source key it maps back to).
    MovedEarlier,
}

/// What happened to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Copied,
    /// Copied (or already identical), verified, and the source deleted.
    Moved,
    Skipped(SkipReason),
    Failed(StoreError),
    /// An extraneous destination object deleted by sync.
    Deleted,
    /// Sync would have deleted this destination object, but did not: the reason.
    DeleteSuppressed(String),
    WouldCopy,
    WouldMove,
    WouldDelete,
}

/// One object's outcome. For deletions `key` is the source-side key the destination key maps
/// back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub key: String,
    pub dst_key: String,
    pub action: Action,
    pub bytes: u64,
    pub mode: Option<CopyMode>,
    /// Destination ETag after a copy.
    pub etag: Option<String>,
    pub checksum: Option<(ChecksumAlgo, String)>,
    /// Requests this object cost (would cost, in a dry run).
    pub requests: RequestCounts,
}

/// Counters of one range run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSummary {
    pub listed_objects: u64,
    pub listed_bytes: u64,
    /// Source objects the filter excluded.
    pub excluded: u64,
    pub copied: u64,
    pub copied_bytes: u64,
    pub server_side: u64,
    pub streamed: u64,
    pub skipped: u64,
    pub skipped_bytes: u64,
    pub failed: u64,
    /// Sources deleted by move, and extraneous objects deleted by sync.
    pub deleted: u64,
    pub would_copy: u64,
    pub would_copy_bytes: u64,
    pub would_delete: u64,
    /// Bytes that passed (dry run: would pass) through this node between endpoints.
    pub bytes_cross_endpoint: u64,
    /// Requests made (dry run: only the listings).
    pub requests: RequestCounts,
    /// Dry run: the requests the writes would cost (without retries).
    pub planned_requests: RequestCounts,
    /// Every source key ≤ this is finished; None when nothing is.
    pub last_completed_key: Option<String>,
    /// Why sync deletions were not done, when they were not.
    pub delete_suppressed: Option<String>,
    /// The run stopped early (listing failed after retries, or cancelled); resume after
    /// `last_completed_key`.
    pub interrupted: Option<StoreError>,
}

impl RangeSummary {
    /// Err when the run was interrupted; Ok otherwise (per-object failures are in `failed`).
    pub fn into_result(self) -> StoreResult<RangeSummary> {
        match self.interrupted.clone() {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

/// Pages through a range lazily.
struct Lister<'a> {
    store: &'a dyn ObjectStore,
    range: KeyRange,
    page_size: usize,
    buf: VecDeque<ObjectInfo>,
    done: bool,
}

impl<'a> Lister<'a> {
    fn new(store: &'a dyn ObjectStore, range: KeyRange, page_size: usize) -> Lister<'a> {
        Lister {
            store,
            range,
            page_size: page_size.clamp(1, 1000),
            buf: VecDeque::new(),
            done: false,
        }
    }
    async fn peek(&mut self, opts: &CopyOptions, tally: &Tally) -> StoreResult<Option<&ObjectInfo>> {
        while self.buf.is_empty() && !self.done {
            let page = with_retry(opts, "list", || {
                tally.add(|c| c.list += 1);
                self.store.list(&self.range, self.page_size)
            })
            .await?;
            self.buf.extend(page.objects);
            match page.next_start_after {
                Some(s) => self.range.start_after = Some(s),
                None => self.done = true,
            }
        }
        Ok(self.buf.front())
    }
    fn pop(&mut self) -> Option<ObjectInfo> {
        self.buf.pop_front()
    }
}

/// Whether a destination object is the same as the source object as listings show them.
/// Sizes must be equal. ETags decide when they are comparable (both single-part MD5s, or both
/// multipart with the same part count); otherwise (e.g. a multipart source copied with
/// CopyObject, or a store without MD5 ETags) the object is considered changed only when the
/// source was modified after the destination was written. `strict` (move) demands equal
/// comparable ETags.
pub fn same_object(s: &ObjectInfo, d: &ObjectInfo, strict: bool) -> bool {
    if s.size != d.size {
        return false;
    }
    match (
        s.etag.as_deref().map(verify::norm_etag),
        d.etag.as_deref().map(verify::norm_etag),
    ) {
        (Some(a), Some(b)) if verify::etags_comparable(&a, &b) => a == b,
        _ if strict => false,
        _ => !matches!((s.last_modified_ms, d.last_modified_ms), (Some(a), Some(b)) if a > b),
    }
}

/// Checkpoint tracking: items are issued in key order and finish in any order.
#[derive(Default)]
struct Checkpoint {
    base: u64,
    items: VecDeque<(String, Slot)>,
    last: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Done,
    Failed,
}

impl Checkpoint {
    fn issue(&mut self, key: String) -> u64 {
        self.items.push_back((key, Slot::Pending));
        self.base + self.items.len() as u64 - 1
    }
    fn set(&mut self, id: u64, slot: Slot) {
        if let Some(i) = id.checked_sub(self.base) {
            if let Some(it) = self.items.get_mut(i as usize) {
                it.1 = slot;
            }
        }
        while self.items.front().is_some_and(|(_, s)| *s == Slot::Done) {
            let (k, _) = self.items.pop_front().unwrap();
            self.base += 1;
            self.last = Some(k);
        }
    }
}

/// One unit of work for the concurrent part of the loop.
enum Work {
    /// Copy (or compare, then copy) a source object; `dst` is its destination listing entry.
    Copy {
        id: u64,
        src: ObjectInfo,
        dst_key: String,
        dst: Option<ObjectInfo>,
    },
}

/// The result of one unit of work.
struct Done {
    id: u64,
    outcome: Outcome,
    /// Move: a verified source to delete.
    delete_source: bool,
    requests: RequestCounts,
    cross_bytes: u64,
}

/// One range operation: what to do, between which stores, over which source keys, mapped how
/// to destination keys, and which of them.
#[derive(Clone, Copy)]
pub struct RangeTask<'a> {
    pub op: RangeOp,
    pub src: &'a dyn ObjectStore,
    pub dst: &'a dyn ObjectStore,
    /// The source range (restricted to keys under `map.src_prefix`).
    pub range: &'a KeyRange,
    pub map: &'a KeyMap,
    pub filter: &'a Filter,
}

/// One source object to copy and its destination side.
#[derive(Clone, Copy)]
struct ObjectPair<'a> {
    src: &'a ObjectInfo,
    dst_key: &'a str,
    /// The destination's listing entry, when it was listed and exists.
    dst: Option<&'a ObjectInfo>,
}

/// Runs `task.op` over `task.range` of `task.src` into `task.dst`. See the module docs. Returns
/// Err only for invalid arguments; an interrupted run returns its summary with `interrupted`
/// set.
pub async fn run_range(
    task: RangeTask<'_>,
    opts: &RangeOptions,
    mut sink: impl FnMut(Outcome),
) -> Result<RangeSummary, StoreError> {
    let RangeTask {
        op,
        src,
        dst,
        range: src_range,
        map,
        filter,
    } = task;
    let task = &task;
    let mut sum = RangeSummary::default();
    let Some((srange, drange)) = map.ranges(src_range)? else {
        return Ok(sum);
    };
    let drange_check = drange.clone();
    let mut copts = opts.copy.clone();
    if op == RangeOp::Move && copts.verify == Verify::None {
        copts.verify = Verify::Size;
    }
    let copts = &copts;
    let tally = Tally::default();
    let large = tokio::sync::Semaphore::new(opts.large_concurrency.max(1));
    let large = &large;
    let need_dst = matches!(op, RangeOp::Sync { .. }) || opts.skip_existing;
    let mut src_l = Lister::new(src, srange, opts.page_size);
    // The destination side of the range, by relative key. Loaded whole rather than merge-joined
    // page by page: stores do not all list in the same order (SeaweedFS lists directory by
    // directory, not in S3 byte order), and a merge-join of differently ordered listings would
    // mistake present objects for missing ones. Memory: one entry (~150 bytes + key) per
    // destination object of the range — range tasks are bounded.
    let mut dst_map: Option<std::collections::HashMap<String, ObjectInfo>> = None;
    let mut interrupted: Option<StoreError> = None;
    if need_dst {
        let mut l = Lister::new(dst, drange, opts.page_size);
        let mut m = std::collections::HashMap::new();
        loop {
            match l.peek(copts, &tally).await {
                Ok(Some(_)) => {
                    let d = l.pop().expect("peeked");
                    if let Some(rel) = map.dst_relative(&d.key) {
                        m.insert(rel.to_string(), d);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    interrupted = Some(e);
                    break;
                }
            }
        }
        dst_map = Some(m);
    }
    let mut cp = Checkpoint::default();
    let mut inflight = FuturesUnordered::new();
    // Move: verified sources awaiting a batched delete (checkpoint id, outcome).
    let mut pending_deletes: Vec<(u64, Outcome)> = Vec::new();
    // Sync --delete: extraneous destination objects, deleted after the copy phase.
    let mut extraneous: Vec<ObjectInfo> = Vec::new();
    let concurrency = opts.concurrency.max(1);
    let publish_checkpoint = |cp: &Checkpoint| {
        if let (Some(cell), Some(last)) = (&opts.checkpoint, &cp.last) {
            if op != (RangeOp::Sync { delete: true }) {
                *cell.lock().unwrap_or_else(|e| e.into_inner()) = Some(last.clone());
            }
        }
    };

    let work_fn = |w: Work| async move {
        match w {
            Work::Copy {
                id,
                src: s,
                dst_key,
                dst: d,
            } => {
                let t = Tally::default();
                let streamed = !opts.dry_run && choose_mode(src, &s.key, dst, copts) == CopyMode::Streaming;
                let big = streamed && s.size > 0 && s.size >= copts.multipart_threshold;
                let _permit = match &opts.shared {
                    Some(sh) => sh.objects.acquire().await.ok(),
                    None => None,
                };
                let _stream = match &opts.shared {
                    Some(sh) if streamed => sh.streams.acquire().await.ok(),
                    _ => None,
                };
                let _slot = match (&opts.shared, big) {
                    (_, false) => None,
                    (Some(sh), true) => sh.large.acquire().await.ok(),
                    (None, true) => large.acquire().await.ok(),
                };
                let pair = ObjectPair {
                    src: &s,
                    dst_key: &dst_key,
                    dst: d.as_ref(),
                };
                let r = copy_one(task, pair, copts, opts, &t).await;
                let requests = t.get();
                let mut o = Outcome {
                    key: s.key.clone(),
                    dst_key,
                    action: Action::Copied,
                    bytes: s.size,
                    mode: None,
                    etag: None,
                    checksum: None,
                    requests,
                };
                let (delete_source, cross_bytes) = match r {
                    Ok(OneResult::Copied(res)) => {
                        o.mode = Some(res.mode);
                        o.etag = res.etag;
                        o.checksum = res.checksum;
                        (op == RangeOp::Move, res.bytes_through_node)
                    }
                    Ok(OneResult::Identical) => {
                        o.action = Action::Skipped(SkipReason::Identical);
                        (op == RangeOp::Move, 0)
                    }
                    Ok(OneResult::Same) => {
                        o.action = Action::Skipped(SkipReason::Identical);
                        (false, 0)
                    }
                    Ok(OneResult::CopiedEarlier) => {
                        o.action = Action::Skipped(SkipReason::CopiedEarlier);
                        (false, 0)
                    }
                    Ok(OneResult::Would(plan)) => {
                        o.action = if op == RangeOp::Move {
                            Action::WouldMove
                        } else {
                            Action::WouldCopy
                        };
                        o.mode = Some(plan.mode);
                        o.requests = plan.requests;
                        if op == RangeOp::Move {
                            o.requests.delete += 1;
                        }
                        (false, plan.bytes_through_node)
                    }
                    Err(e) => {
                        o.action = Action::Failed(e);
                        (false, 0)
                    }
                };
                Done {
                    id,
                    outcome: o,
                    delete_source,
                    requests,
                    cross_bytes,
                }
            }
        }
    };

    while interrupted.is_none() {
        if copts.cancel.is_cancelled() {
            interrupted = Some(cancelled());
            break;
        }
        // Keep at most `concurrency` objects in flight; handle finished ones.
        while inflight.len() >= concurrency {
            let d = inflight.next().await.expect("non-empty");
            finish(d, &mut sum, &mut cp, &mut pending_deletes, &mut sink);
            publish_checkpoint(&cp);
        }
        if op == RangeOp::Move && !opts.dry_run && pending_deletes.len() >= opts.delete_batch.max(1) {
            flush_deletes(src, copts, &tally, &mut pending_deletes, &mut sum, &mut cp, &mut sink).await;
            publish_checkpoint(&cp);
        }
        // Next source object, in the source's listing order.
        let s = match src_l.peek(copts, &tally).await {
            Ok(Some(s)) => s.clone(),
            Ok(None) => break,
            Err(e) => {
                interrupted = Some(e);
                break;
            }
        };
        src_l.pop();
        let Some(rel) = map.src_relative(&s.key).map(str::to_string) else {
            continue;
        };
        let d = dst_map.as_mut().and_then(|m| m.remove(&rel));
        sum.listed_objects += 1;
        sum.listed_bytes += s.size;
        let id = cp.issue(s.key.clone());
        if !filter.matches_as(&rel, &s) {
            sum.excluded += 1;
            cp.set(id, Slot::Done);
            continue;
        }
        let dst_key = format!("{}{rel}", map.dst_prefix);
        inflight.push(work_fn(Work::Copy {
            id,
            src: s,
            dst_key,
            dst: d,
        }));
    }
    // Drain: in-flight copies finish (or, cancelled, abort their uploads) before returning.
    while let Some(d) = inflight.next().await {
        finish(d, &mut sum, &mut cp, &mut pending_deletes, &mut sink);
    }
    if op == RangeOp::Move && !opts.dry_run {
        flush_deletes(src, copts, &tally, &mut pending_deletes, &mut sum, &mut cp, &mut sink).await;
    }

    // A resumed move: destination objects of the range without a source, written since the
    // earlier run started, were moved by it (their sources deleted before it could report them).
    if let (RangeOp::Move, Some(since), None, false) = (op, opts.written_since_ms, &interrupted, opts.dry_run) {
        let mut found: Vec<(String, ObjectInfo)> = dst_map
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|(rel, d)| {
                filter.matches_as(rel, d)
                    && drange_check.contains(&d.key)
                    && d.last_modified_ms.is_some_and(|t| t >= since)
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, d) in found {
            sum.skipped += 1;
            sum.skipped_bytes += d.size;
            sink(Outcome {
                key: map.to_src(&d.key).unwrap_or_default(),
                dst_key: d.key.clone(),
                action: Action::Skipped(SkipReason::MovedEarlier),
                bytes: d.size,
                mode: None,
                etag: d.etag.clone(),
                checksum: None,
                requests: RequestCounts::default(),
            });
        }
    }

    // Sync deletions, after the copy phase, only in a range without any error.
    if op == (RangeOp::Sync { delete: true }) && interrupted.is_none() {
        let mut extra: Vec<(String, ObjectInfo)> = dst_map
            .take()
            .unwrap_or_default()
            .into_iter()
            // Only keys inside this range in its own order: a destination listed in another
            // order can show keys of a neighbouring range, which are not this range's to delete.
            .filter(|(rel, d)| filter.matches_as(rel, d) && drange_check.contains(&d.key))
            .collect();
        extra.sort_by(|a, b| a.0.cmp(&b.0));
        extraneous = extra.into_iter().map(|(_, d)| d).collect();
    }
    let mut deletes_done = true;
    if !extraneous.is_empty() {
        let reason = if let Some(e) = &interrupted {
            Some(format!("the range was interrupted ({e})"))
        } else if sum.failed > 0 {
            Some(format!("{} object(s) in the range failed", sum.failed))
        } else if opts.max_delete.is_some_and(|m| extraneous.len() as u64 > m) {
            Some(format!(
                "{} deletions exceed max_delete {}",
                extraneous.len(),
                opts.max_delete.unwrap_or(0)
            ))
        } else {
            None
        };
        let mk = |d: &ObjectInfo, action: Action| Outcome {
            key: map.to_src(&d.key).unwrap_or_default(),
            dst_key: d.key.clone(),
            action,
            bytes: d.size,
            mode: None,
            etag: d.etag.clone(),
            checksum: None,
            requests: RequestCounts::default(),
        };
        if let Some(reason) = reason {
            deletes_done = false;
            for d in &extraneous {
                sink(mk(d, Action::DeleteSuppressed(reason.clone())));
            }
            sum.delete_suppressed = Some(reason);
        } else if opts.dry_run {
            for chunk in extraneous.chunks(opts.delete_batch.clamp(1, 1000)) {
                sum.planned_requests.delete += 1;
                for d in chunk {
                    sum.would_delete += 1;
                    sink(mk(d, Action::WouldDelete));
                }
            }
        } else {
            for chunk in extraneous.chunks(opts.delete_batch.clamp(1, 1000)) {
                let keys: Vec<String> = chunk.iter().map(|d| d.key.clone()).collect();
                let r = with_retry(copts, "delete objects", || {
                    tally.add(|c| c.delete += 1);
                    dst.delete_many(&keys)
                })
                .await;
                let failed: Vec<(String, StoreError)> = match r {
                    Ok(f) => f,
                    Err(e) => keys.iter().map(|k| (k.clone(), e.clone())).collect(),
                };
                for d in chunk {
                    match failed.iter().find(|(k, _)| *k == d.key) {
                        Some((_, e)) => {
                            sum.failed += 1;
                            deletes_done = false;
                            sink(mk(d, Action::Failed(e.clone())));
                        }
                        None => {
                            sum.deleted += 1;
                            sink(mk(d, Action::Deleted));
                        }
                    }
                }
            }
        }
    }
    sum.requests += tally.get();
    // Sync --delete deletes after the whole copy phase: until its deletions are done, nothing in
    // the range counts as finished (a resumed run must see the extraneous keys again).
    let sync_delete_pending =
        op == (RangeOp::Sync { delete: true }) && !opts.dry_run && (interrupted.is_some() || !deletes_done);
    sum.last_completed_key = if sync_delete_pending { None } else { cp.last.clone() };
    sum.interrupted = interrupted;
    Ok(sum)
}

enum OneResult {
    Copied(transfer::CopyResult),
    /// The destination was already identical (listing or checksum compare).
    Identical,
    /// Sync: the destination is the same (nothing to do).
    Same,
    /// Copy resumed with `written_since_ms`: the destination is the same and newer than that.
    CopiedEarlier,
    Would(transfer::CopyPlan),
}

/// Compares (when the destination is listed), then copies — or, in a dry run, plans — one
/// object.
async fn copy_one(
    task: &RangeTask<'_>,
    pair: ObjectPair<'_>,
    copts: &CopyOptions,
    opts: &RangeOptions,
    tally: &Tally,
) -> StoreResult<OneResult> {
    let RangeTask { op, src, dst, .. } = *task;
    let ObjectPair {
        src: s,
        dst_key,
        dst: d,
    } = pair;
    if let Some(d) = d {
        let same = match op {
            RangeOp::Sync { .. } if copts.verify == Verify::Checksum => {
                same_by_checksum(src, s, dst, d, copts, tally).await?
            }
            RangeOp::Sync { .. } => same_object(s, d, false),
            RangeOp::Copy => opts.skip_existing && same_object(s, d, false),
            RangeOp::Move => opts.skip_existing && same_object(s, d, true),
        };
        if same {
            let earlier = op == RangeOp::Copy
                && matches!((opts.written_since_ms, d.last_modified_ms), (Some(since), Some(t)) if t >= since);
            return Ok(if op == RangeOp::Move {
                OneResult::Identical
            } else if earlier {
                OneResult::CopiedEarlier
            } else {
                OneResult::Same
            });
        }
    }
    if opts.dry_run {
        let mode = choose_mode(src, &s.key, dst, copts);
        return Ok(OneResult::Would(plan_copy(mode, s, dst.copy_keeps_metadata(), copts)));
    }
    copy_object_tallied(src, &s.key, Some(s), dst, dst_key, copts, tally)
        .await
        .map(OneResult::Copied)
}

/// Sync with `Verify::Checksum`: equal sizes, then the checksums both stores report (one HEAD
/// each); ETag/time rules when either reports none.
async fn same_by_checksum(
    src: &dyn ObjectStore,
    s: &ObjectInfo,
    dst: &dyn ObjectStore,
    d: &ObjectInfo,
    copts: &CopyOptions,
    tally: &Tally,
) -> StoreResult<bool> {
    if s.size != d.size {
        return Ok(false);
    }
    let algo = copts.checksum_algo;
    let sm = with_retry(copts, "head", || {
        tally.add(|c| c.head += 1);
        src.head(&s.key)
    })
    .await?;
    let dm = with_retry(copts, "head", || {
        tally.add(|c| c.head += 1);
        dst.head(&d.key)
    })
    .await?;
    match (sm.checksums.get(&algo), dm.checksums.get(&algo)) {
        (Some(a), Some(b)) if a.contains('-') == b.contains('-') => Ok(a == b),
        _ => Ok(same_object(s, d, false)),
    }
}

fn finish(
    d: Done,
    sum: &mut RangeSummary,
    cp: &mut Checkpoint,
    pending_deletes: &mut Vec<(u64, Outcome)>,
    sink: &mut impl FnMut(Outcome),
) {
    sum.requests += d.requests;
    sum.bytes_cross_endpoint += d.cross_bytes;
    let o = d.outcome;
    match &o.action {
        Action::Copied => {
            sum.copied += 1;
            sum.copied_bytes += o.bytes;
            match o.mode {
                Some(CopyMode::ServerSide) => sum.server_side += 1,
                _ => sum.streamed += 1,
            }
        }
        Action::Skipped(_) => {
            sum.skipped += 1;
            sum.skipped_bytes += o.bytes;
        }
        Action::Failed(_) => sum.failed += 1,
        Action::WouldCopy | Action::WouldMove => {
            sum.would_copy += 1;
            sum.would_copy_bytes += o.bytes;
            sum.planned_requests += o.requests;
        }
        _ => {}
    }
    if d.delete_source {
        // Move: reported once the source is deleted (or failed to be).
        pending_deletes.push((d.id, o));
        return;
    }
    cp.set(
        d.id,
        if matches!(o.action, Action::Failed(_)) {
            Slot::Failed
        } else {
            Slot::Done
        },
    );
    sink(o);
}

/// Move: deletes the verified sources in one DeleteObjects request per batch.
async fn flush_deletes(
    src: &dyn ObjectStore,
    copts: &CopyOptions,
    tally: &Tally,
    pending: &mut Vec<(u64, Outcome)>,
    sum: &mut RangeSummary,
    cp: &mut Checkpoint,
    sink: &mut impl FnMut(Outcome),
) {
    if pending.is_empty() {
        return;
    }
    let batch = std::mem::take(pending);
    for chunk in batch.chunks(1000) {
        let keys: Vec<String> = chunk.iter().map(|(_, o)| o.key.clone()).collect();
        // Deleting must not be skipped by a cancellation that arrives after the copies verified.
        let del_opts = CopyOptions {
            cancel: tokio_util::sync::CancellationToken::new(),
            ..copts.clone()
        };
        let r = with_retry(&del_opts, "delete sources", || {
            tally.add(|c| c.delete += 1);
            src.delete_many(&keys)
        })
        .await;
        let failed: Vec<(String, StoreError)> = match r {
            Ok(f) => f,
            Err(e) => keys.iter().map(|k| (k.clone(), e.clone())).collect(),
        };
        for (id, mut o) in chunk.iter().cloned() {
            match failed.iter().find(|(k, _)| *k == o.key) {
                Some((_, e)) => {
                    sum.failed += 1;
                    o.action = Action::Failed(StoreError::Other {
                        detail: format!("copied and verified, but the source was not deleted: {e}"),
                    });
                    cp.set(id, Slot::Failed);
                }
                None => {
                    sum.deleted += 1;
                    o.action = Action::Moved;
                    cp.set(id, Slot::Done);
                }
            }
            sink(o);
        }
    }
}
