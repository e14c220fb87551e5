//! Test-only fault injection over a real store.
//!
//! [`FaultyStore`] wraps any `Arc<dyn ObjectStore>` — a `FsStore` in a tempdir, an `S3Store` on
//! SeaweedFS — and forwards every call to it, including `describe`, `endpoint_id`,
//! `copy_source` and `copy_keeps_metadata` (so server-side copies stay server-side). On the way
//! it
//! - counts the requests it forwards by S3 operation ([`FaultyStore::counts`]; a listing of
//!   multipart uploads counts as a LIST), so request-cost tests check what the store really saw;
//! - applies the [`Rule`]s injected with [`FaultyStore::inject`]: a [`Fault`] on chosen
//!   operations ([`Op`]), for one key or any, every time or the first N times.
//!
//! Faults: fail the request ([`Fault::Fail`]: permanent, or transient with `.times(n)`; on
//! `Op::Delete` with a key only that key fails inside `delete_many`), break a GET body after K
//! bytes, tamper a GET or PUT/UploadPart body (flip its first byte: the bytes differ and nothing
//! else does, to force mismatches), hide the additional checksums the store reports, delay.
//!
//! Compiled for unit tests, and for other crates with the `fault-injection` feature; never part
//! of a production build.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::store::*;
use super::transfer::RequestCounts;

/// The store operations rules can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    List,
    Head,
    GetTags,
    Get,
    Put,
    CreateMultipart,
    UploadPart,
    CompleteMultipart,
    AbortMultipart,
    ListUploads,
    Copy,
    UploadPartCopy,
    Delete,
}

impl Op {
    /// The requests that start or carry a write of object data.
    pub const WRITES: &'static [Op] = &[
        Op::Put,
        Op::CreateMultipart,
        Op::UploadPart,
        Op::Copy,
        Op::UploadPartCopy,
    ];
    /// The requests that send object bytes (what [`Fault::Tamper`] can alter on the way in).
    pub const UPLOADS: &'static [Op] = &[Op::Put, Op::UploadPart];
}

/// What a matching rule does to a request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The request fails with this error without reaching the store.
    Fail(StoreError),
    /// GET: the body delivers this many bytes, then a `Transient` error (connection reset).
    BreakBodyAfter(u64),
    /// GET, PUT, UploadPart: the first byte of the body is flipped on the way.
    Tamper,
    /// HEAD and write responses report no additional checksums (a store without them).
    HideChecksums,
    /// The request waits this long before it is forwarded.
    Delay(Duration),
}

impl Fault {
    /// `Fail` with AccessDenied (a permanent refusal).
    pub fn denied() -> Fault {
        Fault::Fail(StoreError::AccessDenied {
            detail: "refused (injected fault)".into(),
        })
    }
    /// `Fail` with a retryable error.
    pub fn transient() -> Fault {
        Fault::Fail(StoreError::Transient {
            detail: "injected transient failure".into(),
        })
    }
}

/// A fault on some operations, for one key (relative to the store root) or any, every time or
/// the first N times.
#[derive(Clone, Debug)]
pub struct Rule {
    ops: Vec<Op>,
    key: Option<String>,
    fault: Fault,
    times: Option<u32>,
}

impl Rule {
    /// `fault` on every request of `ops`, any key, every time.
    pub fn new(ops: &[Op], fault: Fault) -> Rule {
        Rule {
            ops: ops.to_vec(),
            key: None,
            fault,
            times: None,
        }
    }
    /// Only requests for this key (for LIST and ListUploads: this prefix).
    pub fn key(mut self, key: impl Into<String>) -> Rule {
        self.key = Some(key.into());
        self
    }
    /// Only the next `n` matching requests (a transient fault).
    pub fn times(mut self, n: u32) -> Rule {
        self.times = Some(n);
        self
    }
}

/// A real store with request counting and injected faults. See the module docs.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    counts: Mutex<RequestCounts>,
    rules: Mutex<Vec<Rule>>,
    keeps_metadata: Option<bool>,
    /// Requests inside a `Delay` fault now, and the most there ever were at once.
    delaying: Mutex<(usize, usize)>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> FaultyStore {
        FaultyStore {
            inner,
            counts: Mutex::default(),
            rules: Mutex::default(),
            keeps_metadata: None,
            delaying: Mutex::default(),
        }
    }
    /// Overrides `copy_keeps_metadata()`: `false` makes the engine treat the store as one whose
    /// CopyObject always replaces metadata and tags (it then sends them itself).
    pub fn with_copy_keeps_metadata(mut self, keeps: bool) -> FaultyStore {
        self.keeps_metadata = Some(keeps);
        self
    }
    pub fn inject(&self, rule: Rule) -> &FaultyStore {
        self.rules.lock().unwrap().push(rule);
        self
    }
    /// Removes every rule.
    pub fn heal(&self) {
        self.rules.lock().unwrap().clear();
    }
    /// Requests forwarded (or failed by a rule) so far.
    pub fn counts(&self) -> RequestCounts {
        *self.counts.lock().unwrap()
    }
    /// [`counts`](Self::counts), then reset.
    pub fn take_counts(&self) -> RequestCounts {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }
    /// The most requests that were inside a `Delay` fault at the same time: with a delay on an
    /// operation, how many of it the caller had in flight at once.
    pub fn max_concurrent_delayed(&self) -> usize {
        self.delaying.lock().unwrap().1
    }

    /// The faults of the rules matching (op, key), using up counted rules.
    fn matching(&self, op: Op, key: Option<&str>) -> Vec<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let mut out = Vec::new();
        for r in rules.iter_mut() {
            let key_ok = match (&r.key, key) {
                (None, _) => true,
                (Some(k), Some(key)) => k == key,
                (Some(_), None) => false,
            };
            if key_ok && r.ops.contains(&op) && r.times != Some(0) {
                if let Some(n) = &mut r.times {
                    *n -= 1;
                }
                out.push(r.fault.clone());
            }
        }
        out
    }

    /// Counts the request, applies delays and failures; returns the faults left for the caller
    /// (body and response alterations).
    async fn before(&self, op: Op, key: Option<&str>) -> StoreResult<Vec<Fault>> {
        {
            let mut c = self.counts.lock().unwrap();
            match op {
                Op::List | Op::ListUploads => c.list += 1,
                Op::Head => c.head += 1,
                Op::GetTags => c.get_tags += 1,
                Op::Get => c.get += 1,
                Op::Put => c.put += 1,
                Op::CreateMultipart => c.create_multipart += 1,
                Op::UploadPart => c.upload_part += 1,
                Op::CompleteMultipart => c.complete_multipart += 1,
                Op::AbortMultipart => c.abort_multipart += 1,
                Op::Copy => c.copy += 1,
                Op::UploadPartCopy => c.upload_part_copy += 1,
                Op::Delete => c.delete += 1,
            }
        }
        let faults = self.matching(op, key);
        for f in &faults {
            if let Fault::Delay(d) = f {
                {
                    let mut g = self.delaying.lock().unwrap();
                    g.0 += 1;
                    g.1 = g.1.max(g.0);
                }
                tokio::time::sleep(*d).await;
                self.delaying.lock().unwrap().0 -= 1;
            }
        }
        if let Some(Fault::Fail(e)) = faults.iter().find(|f| matches!(f, Fault::Fail(_))) {
            return Err(e.clone());
        }
        Ok(faults)
    }
}

fn has(faults: &[Fault], want: fn(&Fault) -> bool) -> bool {
    faults.iter().any(want)
}

fn hides(faults: &[Fault]) -> bool {
    has(faults, |f| matches!(f, Fault::HideChecksums))
}

/// Applies the body faults (tamper, break) of `faults` to `body`.
fn alter(body: Body, faults: &[Fault]) -> Body {
    let mut body = body;
    if has(faults, |f| matches!(f, Fault::Tamper)) {
        let mut first = true;
        body = Box::pin(body.map(move |c| {
            c.map(|c| {
                if first && !c.is_empty() {
                    first = false;
                    let mut v = c.to_vec();
                    v[0] ^= 0xff;
                    Bytes::from(v)
                } else {
                    c
                }
            })
        }));
    }
    if let Some(n) = faults.iter().find_map(|f| match f {
        Fault::BreakBodyAfter(n) => Some(*n),
        _ => None,
    }) {
        body = break_after(body, n);
    }
    body
}

/// `body` up to `n` bytes, then a Transient error (the body ends normally if it is shorter).
fn break_after(body: Body, n: u64) -> Body {
    enum St {
        Run(Body, u64),
        Fail,
        Done,
    }
    Box::pin(futures::stream::unfold(St::Run(body, n), |st| async move {
        match st {
            St::Done => None,
            St::Fail => Some((
                Err(StoreError::Transient {
                    detail: "connection reset mid-body (injected fault)".into(),
                }),
                St::Done,
            )),
            St::Run(_, 0) => Some((
                Err(StoreError::Transient {
                    detail: "connection reset mid-body (injected fault)".into(),
                }),
                St::Done,
            )),
            St::Run(mut body, left) => match body.next().await {
                None => None,
                Some(Err(e)) => Some((Err(e), St::Done)),
                Some(Ok(c)) if (c.len() as u64) < left => {
                    let rest = left - c.len() as u64;
                    Some((Ok(c), St::Run(body, rest)))
                }
                Some(Ok(c)) => Some((Ok(c.slice(..left as usize)), St::Fail)),
            },
        }
    }))
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn endpoint_id(&self) -> EndpointId {
        self.inner.endpoint_id()
    }
    fn copy_source(&self, key: &str) -> Option<CopySource> {
        self.inner.copy_source(key)
    }
    fn copy_keeps_metadata(&self) -> bool {
        self.keeps_metadata.unwrap_or_else(|| self.inner.copy_keeps_metadata())
    }

    async fn list(&self, range: &KeyRange, max_keys: usize) -> StoreResult<ListPage> {
        self.before(Op::List, Some(&range.prefix)).await?;
        self.inner.list(range, max_keys).await
    }
    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let f = self.before(Op::Head, Some(key)).await?;
        let mut m = self.inner.head(key).await?;
        if hides(&f) {
            m.checksums.clear();
        }
        Ok(m)
    }
    async fn get_tags(&self, key: &str) -> StoreResult<Vec<(String, String)>> {
        self.before(Op::GetTags, Some(key)).await?;
        self.inner.get_tags(key).await
    }
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> StoreResult<Body> {
        let f = self.before(Op::Get, Some(key)).await?;
        Ok(alter(self.inner.get(key, range).await?, &f))
    }
    async fn put(&self, key: &str, body: Body, len: u64, opts: &WriteOptions) -> StoreResult<PutResult> {
        let f = self.before(Op::Put, Some(key)).await?;
        let mut r = self.inner.put(key, alter(body, &f), len, opts).await?;
        if hides(&f) {
            r.checksum = None;
        }
        Ok(r)
    }
    async fn create_multipart(&self, key: &str, opts: &WriteOptions) -> StoreResult<String> {
        self.before(Op::CreateMultipart, Some(key)).await?;
        self.inner.create_multipart(key, opts).await
    }
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
        len: u64,
        checksum: Option<ChecksumAlgo>,
    ) -> StoreResult<CompletedPart> {
        let f = self.before(Op::UploadPart, Some(key)).await?;
        let mut p = self
            .inner
            .upload_part(key, upload_id, part_number, alter(body, &f), len, checksum)
            .await?;
        if hides(&f) {
            p.checksum = None;
        }
        Ok(p)
    }
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        opts: &WriteOptions,
    ) -> StoreResult<PutResult> {
        let f = self.before(Op::CompleteMultipart, Some(key)).await?;
        let mut r = self.inner.complete_multipart(key, upload_id, parts, opts).await?;
        if hides(&f) {
            r.checksum = None;
        }
        Ok(r)
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        self.before(Op::AbortMultipart, Some(key)).await?;
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<UploadInfo>> {
        self.before(Op::ListUploads, Some(prefix)).await?;
        self.inner.list_multipart_uploads(prefix).await
    }
    async fn copy_object(&self, src: &CopySource, key: &str, opts: &WriteOptions) -> StoreResult<PutResult> {
        let f = self.before(Op::Copy, Some(key)).await?;
        let mut r = self.inner.copy_object(src, key, opts).await?;
        if hides(&f) {
            r.checksum = None;
        }
        Ok(r)
    }
    async fn upload_part_copy(
        &self,
        src: &CopySource,
        key: &str,
        upload_id: &str,
        part_number: u32,
        range: (u64, u64),
    ) -> StoreResult<CompletedPart> {
        let f = self.before(Op::UploadPartCopy, Some(key)).await?;
        let mut p = self
            .inner
            .upload_part_copy(src, key, upload_id, part_number, range)
            .await?;
        if hides(&f) {
            p.checksum = None;
        }
        Ok(p)
    }
    async fn delete_many(&self, keys: &[String]) -> StoreResult<Vec<(String, StoreError)>> {
        // Rules without a key fail the whole request; keyed rules fail only their key.
        self.before(Op::Delete, None).await?;
        let mut failed = Vec::new();
        let mut forward = Vec::new();
        for k in keys {
            let refused = self.matching(Op::Delete, Some(k)).into_iter().find_map(|f| match f {
                Fault::Fail(e) => Some(e),
                _ => None,
            });
            match refused {
                Some(e) => failed.push((k.clone(), e)),
                None => forward.push(k.clone()),
            }
        }
        if !forward.is_empty() {
            failed.extend(self.inner.delete_many(&forward).await?);
        }
        Ok(failed)
    }
    async fn probe(&self) -> ProbeReport {
        self.inner.probe().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{body, fs_store, read};

    #[tokio::test]
    async fn rules_count_down_and_bodies_break_or_change() {
        let dir = tempfile::tempdir().unwrap();
        let st = FaultyStore::new(Arc::new(fs_store(dir.path(), "s")));
        st.put("k", body(b"hello world"), 11, &WriteOptions::default())
            .await
            .unwrap();
        st.inject(Rule::new(&[Op::Get], Fault::BreakBodyAfter(4)).times(1));
        let mut b = st.get("k", None).await.unwrap();
        let first = b.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b"hell");
        assert!(b.next().await.unwrap().unwrap_err().is_retryable());
        assert_eq!(read(&st, "k").await, b"hello world", "the rule is used up");
        st.inject(Rule::new(&[Op::Get], Fault::Tamper).key("k"));
        assert_eq!(read(&st, "k").await[0], b'h' ^ 0xff);
        st.heal();
        st.inject(Rule::new(&[Op::Delete], Fault::denied()).key("k"));
        let failed = st.delete_many(&["k".into(), "none".into()]).await.unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "k");
        st.inject(Rule::new(Op::WRITES, Fault::transient()).times(2));
        for _ in 0..2 {
            assert!(st
                .put("x", body(b"1"), 1, &WriteOptions::default())
                .await
                .unwrap_err()
                .is_retryable());
        }
        st.put("x", body(b"1"), 1, &WriteOptions::default()).await.unwrap();
        assert_eq!(
            st.take_counts(),
            RequestCounts {
                put: 4,
                get: 3,
                delete: 1,
                ..Default::default()
            }
        );
        assert_eq!(st.describe(), st.inner().describe());
    }
}
