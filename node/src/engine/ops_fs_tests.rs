//! Transfer and range-operation tests on the real filesystem store ([`super::fs::FsStore`]).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::filter::Filter;
use super::fs::FsStore;
use super::ops::*;
use super::store::*;
use super::transfer::*;
use super::verify::{self, Verify};

fn fs(dir: &tempfile::TempDir, name: &str) -> FsStore {
    let root = dir.path().join(name);
    std::fs::create_dir_all(&root).unwrap();
    FsStore::new(&FsLocationSpec { root })
}

fn bytes_of(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed)).collect()
}

async fn put(store: &dyn ObjectStore, key: &str, data: &[u8], opts: &WriteOptions) {
    let d = bytes::Bytes::copy_from_slice(data);
    let body: Body = Box::pin(futures::stream::once(async move { Ok(d) }));
    store.put(key, body, data.len() as u64, opts).await.unwrap();
}

async fn read(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    use futures::StreamExt;
    let mut b = store.get(key, None).await.unwrap();
    let mut v = Vec::new();
    while let Some(c) = b.next().await {
        v.extend_from_slice(&c.unwrap());
    }
    v
}

fn rich() -> WriteOptions {
    WriteOptions {
        content_type: Some("text/csv; charset=utf-8".into()),
        cache_control: Some("no-cache".into()),
        content_disposition: Some("inline".into()),
        content_encoding: Some("gzip".into()),
        content_language: Some("de-CH".into()),
        expires: Some("Thu, 01 Jan 2037 00:00:00 GMT".into()),
        user_metadata: BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("long-name".to_string(), "ünïcödé".to_string()),
        ]),
        tags: vec![("env".into(), "prod".into()), ("cost center".into(), "42".into())],
        ..Default::default()
    }
}

fn quick(o: CopyOptions) -> CopyOptions {
    CopyOptions {
        retry_min_delay: Duration::from_millis(1),
        retry_max_delay: Duration::from_millis(5),
        ..o
    }
}

async fn same_meta(a: &dyn ObjectStore, ak: &str, b: &dyn ObjectStore, bk: &str) {
    let (x, y) = (a.head(ak).await.unwrap(), b.head(bk).await.unwrap());
    assert_eq!(
        (
            &x.content_type,
            &x.cache_control,
            &x.content_disposition,
            &x.content_encoding,
            &x.content_language,
            &x.expires,
            &x.user_metadata
        ),
        (
            &y.content_type,
            &y.cache_control,
            &y.content_disposition,
            &y.content_encoding,
            &y.content_language,
            &y.expires,
            &y.user_metadata
        )
    );
    let mut ta = a.get_tags(ak).await.unwrap();
    let mut tb = b.get_tags(bk).await.unwrap();
    ta.sort();
    tb.sort();
    assert_eq!(ta, tb);
    assert_eq!(read(a, ak).await, read(b, bk).await);
}

#[tokio::test]
async fn fs_copy_single_and_multipart_with_metadata_and_every_verification() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (fs(&dir, "src"), fs(&dir, "dst"));
    let body = bytes_of(10_000, 1);
    put(&src, "in/data.csv", &body, &rich()).await;
    for v in [Verify::None, Verify::Size, Verify::Etag, Verify::Checksum] {
        let r = copy_object(
            &src,
            "in/data.csv",
            &dst,
            &format!("single/{v:?}"),
            &quick(CopyOptions {
                verify: v,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
        assert_eq!((r.mode, r.parts), (CopyMode::Streaming, None));
        same_meta(&src, "in/data.csv", &dst, &format!("single/{v:?}")).await;
        let opts = quick(CopyOptions {
            verify: v,
            multipart_threshold: 4096,
            part_size: Some(3000),
            parts_in_flight: 2,
            ..Default::default()
        });
        let r = copy_object(&src, "in/data.csv", &dst, &format!("multi/{v:?}"), &opts)
            .await
            .unwrap();
        assert_eq!(r.parts, Some(4));
        same_meta(&src, "in/data.csv", &dst, &format!("multi/{v:?}")).await;
        if v == Verify::Etag {
            assert!(r.verified.etag && r.verified.source_etag, "{:?}", r.verified);
            assert_eq!(r.etag.unwrap(), verify::etag_of(&body, Some(3000)));
        }
        if v == Verify::Checksum {
            assert_eq!(
                r.verified.checksum.unwrap().1,
                verify::checksum_of(ChecksumAlgo::Crc32c, &body)
            );
        }
    }
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
}

#[tokio::test]
async fn fs_key_corpus_round_trips_through_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (fs(&dir, "src"), fs(&dir, "dst"));
    let long = format!("long/{}", "k".repeat(1024 - 5));
    let keys: Vec<String> = [
        "unicode/日本語/ü.txt",
        "spaces/a b  c",
        "plus/a+b",
        "percent/100%",
        "percent/%41",
        "question/a?b",
        "hash/a#b",
        "double//slash",
        "/leading",
        "folder/",
        "zero",
        long.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, k) in keys.iter().enumerate() {
        let data = if k == "zero" || k.ends_with('/') {
            Vec::new()
        } else {
            bytes_of(100 + i, i as u8)
        };
        put(&src, k, &data, &WriteOptions::default()).await;
    }
    let opts = RangeOptions {
        copy: quick(CopyOptions {
            verify: Verify::Etag,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut out = Vec::new();
    let sum = run_range(
        RangeOp::Copy,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
        |o| out.push(o),
    )
    .await
    .unwrap();
    assert_eq!(sum.failed, 0, "{out:#?}");
    assert_eq!(sum.copied as usize, keys.len());
    let mut sorted = keys.clone();
    sorted.sort();
    let listed: Vec<String> = dst
        .list(&KeyRange::default(), 1000)
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, sorted);
    for k in &keys {
        assert_eq!(read(&src, k).await, read(&dst, k).await, "{k}");
    }
    // A second sync finds everything identical.
    let sum = run_range(
        RangeOp::Sync { delete: true },
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::identity(),
        &Filter::new(),
        &opts,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((sum.copied, sum.skipped, sum.deleted), (0, keys.len() as u64, 0));
}

/// A real store that fails writes of chosen keys.
struct FailKeys<S> {
    inner: S,
    fail: HashSet<String>,
}

impl<S: ObjectStore> FailKeys<S> {
    fn check(&self, key: &str) -> StoreResult<()> {
        if self.fail.contains(key) {
            return Err(StoreError::AccessDenied {
                detail: format!("test refuses `{key}`"),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl<S: ObjectStore> ObjectStore for FailKeys<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn endpoint_id(&self) -> EndpointId {
        self.inner.endpoint_id()
    }
    async fn list(&self, range: &KeyRange, max_keys: usize) -> StoreResult<ListPage> {
        self.inner.list(range, max_keys).await
    }
    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn get_tags(&self, key: &str) -> StoreResult<Vec<(String, String)>> {
        self.inner.get_tags(key).await
    }
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> StoreResult<Body> {
        self.inner.get(key, range).await
    }
    async fn put(&self, key: &str, body: Body, len: u64, opts: &WriteOptions) -> StoreResult<PutResult> {
        self.check(key)?;
        self.inner.put(key, body, len, opts).await
    }
    async fn create_multipart(&self, key: &str, opts: &WriteOptions) -> StoreResult<String> {
        self.check(key)?;
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
        self.inner
            .upload_part(key, upload_id, part_number, body, len, checksum)
            .await
    }
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        opts: &WriteOptions,
    ) -> StoreResult<PutResult> {
        self.inner.complete_multipart(key, upload_id, parts, opts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<UploadInfo>> {
        self.inner.list_multipart_uploads(prefix).await
    }
    async fn copy_object(&self, src: &CopySource, key: &str, opts: &WriteOptions) -> StoreResult<PutResult> {
        self.check(key)?;
        self.inner.copy_object(src, key, opts).await
    }
    async fn upload_part_copy(
        &self,
        src: &CopySource,
        key: &str,
        upload_id: &str,
        part_number: u32,
        range: (u64, u64),
    ) -> StoreResult<CompletedPart> {
        self.inner
            .upload_part_copy(src, key, upload_id, part_number, range)
            .await
    }
    async fn delete_many(&self, keys: &[String]) -> StoreResult<Vec<(String, StoreError)>> {
        self.inner.delete_many(keys).await
    }
    async fn probe(&self) -> ProbeReport {
        self.inner.probe().await
    }
}

#[tokio::test]
async fn fs_move_deletes_only_verified_sources() {
    let dir = tempfile::tempdir().unwrap();
    let src = fs(&dir, "src");
    let dst = FailKeys {
        inner: fs(&dir, "dst"),
        fail: HashSet::from(["m/b".to_string(), "m/d".to_string()]),
    };
    for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
        put(&src, k, &bytes_of(5000, i as u8), &WriteOptions::default()).await;
    }
    // d is large enough for a multipart upload: its failure must leave no upload behind.
    let copy = quick(CopyOptions {
        verify: Verify::Etag,
        multipart_threshold: 4000,
        part_size: Some(2000),
        ..Default::default()
    });
    let opts = RangeOptions {
        copy,
        ..Default::default()
    };
    let sum = run_range(
        RangeOp::Move,
        &src,
        &dst,
        &KeyRange::default(),
        &KeyMap::new("", "m/"),
        &Filter::new(),
        &opts,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((sum.deleted, sum.failed), (2, 2));
    let left: Vec<String> = src
        .list(&KeyRange::default(), 100)
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(left, vec!["b", "d"]);
    let moved: Vec<String> = dst
        .list(&KeyRange::default(), 100)
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(moved, vec!["m/a", "m/c"]);
    assert_eq!(sum.last_completed_key.as_deref(), Some("a"));
}

#[tokio::test]
async fn fs_sync_delete_respects_excludes_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let src = fs(&dir, "src");
    let dst_fs = fs(&dir, "dst");
    for k in ["a", "b", "logs/x"] {
        put(&src, k, k.as_bytes(), &WriteOptions::default()).await;
    }
    for k in ["b", "extra", "logs/keep"] {
        put(&dst_fs, k, b"old", &WriteOptions::default()).await;
    }
    let filter = Filter::new().exclude("logs/**").unwrap();
    let opts = RangeOptions {
        copy: quick(CopyOptions::default()),
        ..Default::default()
    };
    // A range with an error: nothing is deleted.
    let failing = FailKeys {
        inner: dst_fs.clone(),
        fail: HashSet::from(["a".to_string()]),
    };
    let sum = run_range(
        RangeOp::Sync { delete: true },
        &src,
        &failing,
        &KeyRange::default(),
        &KeyMap::identity(),
        &filter,
        &opts,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((sum.failed, sum.deleted), (1, 0));
    assert!(sum.delete_suppressed.is_some());
    assert!(dst_fs.head("extra").await.is_ok());
    // Without the error: extra is deleted, logs/keep (excluded) stays, logs/x is not copied.
    let sum = run_range(
        RangeOp::Sync { delete: true },
        &src,
        &dst_fs,
        &KeyRange::default(),
        &KeyMap::identity(),
        &filter,
        &opts,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((sum.failed, sum.deleted, sum.copied), (0, 1, 1), "{sum:?}");
    let keys: Vec<String> = dst_fs
        .list(&KeyRange::default(), 100)
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, vec!["a", "b", "logs/keep"]);
    assert_eq!(read(&dst_fs, "b").await, b"b");
}

#[tokio::test]
async fn fs_cancellation_leaves_no_upload() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (fs(&dir, "src"), fs(&dir, "dst"));
    put(&src, "k", &bytes_of(300_000, 3), &WriteOptions::default()).await;
    let log = UploadLog::new();
    let opts = CopyOptions {
        multipart_threshold: 1,
        part_size: Some(64 * 1024),
        bandwidth: Some(TokenBucket::new(300_000, 16 * 1024)),
        uploads: Some(log.clone()),
        ..Default::default()
    };
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let e = copy_object(&src, "k", &dst, "k", &opts).await.unwrap_err();
    assert!(is_cancelled(&e));
    assert_eq!(log.started_total(), 1);
    assert!(log.open().is_empty());
    assert!(dst.list_multipart_uploads("").await.unwrap().is_empty());
    assert!(matches!(dst.head("k").await, Err(StoreError::NotFound { .. })));
}
