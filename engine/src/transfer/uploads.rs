//! The upload log and the sweep: how no multipart upload the engine starts is left behind.
//!
//! In the data flow: the multipart driver records every upload it creates in the copy's
//! [`UploadRegistry`] (an in-memory [`UploadLog`], or a job's persisted record) and removes it
//! when the upload is completed or aborted. Whatever is still recorded after a crash is found by
//! [`sweep_uploads`], which lists the destination's unfinished uploads and aborts the ones the
//! record owns.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::{ObjectStore, StoreError, StoreResult, UploadInfo};

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
    started_total: AtomicU64,
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
        self.started_total.load(Ordering::Relaxed)
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
        self.started_total.fetch_add(1, Ordering::Relaxed);
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
