//! Test fixtures shared by the engine's unit tests and the integration tests in `tests/`
//! (`engine_ops`, `engine_store`): deterministic object bodies, seeding and reading objects,
//! listings, the key corpus, rich metadata, the metadata-carried assertion, fast retries, and
//! stores on a tempdir or a fresh S3 bucket.
//!
//! Compiled for unit tests, and for other crates with the `fault-injection` feature.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::filter::Filter;
use super::fs::FsStore;
use super::ops::{run_range, KeyMap, Outcome, RangeOp, RangeOptions, RangeSummary, RangeTask};
use super::s3::S3Store;
use super::store::*;
use super::transfer::CopyOptions;
use super::S3Clients;

const MIB: usize = 1024 * 1024;

/// `n` deterministic bytes; different seeds give different contents.
pub fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// A body of `d`, in chunks of at most 1 MiB.
pub fn body(d: &[u8]) -> Body {
    let parts: Vec<_> = d.chunks(MIB).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Box::pin(futures::stream::iter(parts))
}

/// Writes `d` to `key` with one PUT (panics on error).
pub async fn put(st: &dyn ObjectStore, key: &str, d: &[u8], opts: &WriteOptions) -> PutResult {
    st.put(key, body(d), d.len() as u64, opts)
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"))
}

/// Writes `d` to `key` as a multipart upload of `part_size`-byte parts (a multipart source).
pub async fn put_multipart(st: &dyn ObjectStore, key: &str, d: &[u8], part_size: usize, opts: &WriteOptions) {
    let id = st.create_multipart(key, opts).await.unwrap();
    let mut parts = Vec::new();
    for (i, c) in d.chunks(part_size).enumerate() {
        parts.push(
            st.upload_part(key, &id, i as u32 + 1, body(c), c.len() as u64, None)
                .await
                .unwrap(),
        );
    }
    st.complete_multipart(key, &id, &parts, opts).await.unwrap();
}

/// The whole object (panics on error).
pub async fn read(st: &dyn ObjectStore, key: &str) -> Vec<u8> {
    let mut b = st.get(key, None).await.unwrap_or_else(|e| panic!("get {key}: {e}"));
    let mut v = Vec::new();
    while let Some(c) = b.next().await {
        v.extend_from_slice(&c.unwrap_or_else(|e| panic!("get {key}: {e}")));
    }
    v
}

/// Every object of `range`, in the store's listing order, fetched in pages of `page`.
pub async fn list_all(st: &dyn ObjectStore, range: &KeyRange, page: usize) -> Vec<ObjectInfo> {
    let mut out = Vec::new();
    let mut r = range.clone();
    loop {
        let p = st.list(&r, page).await.unwrap();
        assert!(p.objects.len() <= page.max(1));
        out.extend(p.objects);
        match p.next_start_after {
            Some(s) => r.start_after = Some(s),
            None => return out,
        }
    }
}

/// Every key of the store, in its listing order.
pub async fn keys(st: &dyn ObjectStore) -> Vec<String> {
    list_all(st, &KeyRange::default(), 1000)
        .await
        .into_iter()
        .map(|o| o.key)
        .collect()
}

/// Keys that every store keeps exactly (SeaweedFS included): unicode, spaces, URL-special
/// characters, a folder marker, a zero-byte object, and a 1,024-byte key (S3's maximum) in
/// 200-byte segments (SeaweedFS rejects longer segments).
pub fn key_corpus() -> Vec<String> {
    vec![
        "plain.txt".into(),
        "dir/sub/file".into(),
        "unicodé/日本語/ファイル.txt".into(),
        "with space/and more".into(),
        "a+b=c".into(),
        "100%".into(),
        "%41%2F".into(),
        "q?x=1&y".into(),
        "h#frag".into(),
        "folder/".into(),
        "semi;colon,comma'quote\"".into(),
        "tilde~star*paren()".into(),
        format!("{}/{}", vec!["k".repeat(200); 5].join("/"), "k".repeat(1024 - 5 * 201)),
        "zero-byte".into(),
    ]
}

/// Keys exact on a filesystem (and AWS) that SeaweedFS normalizes (it stores keys as filer
/// paths: `a//b` -> `a/b`, `/x` -> `x`) or rejects (a segment over 255 bytes).
pub fn fs_only_keys() -> Vec<String> {
    vec!["a//b".into(), "/leading".into(), "//".into(), "k".repeat(1024)]
}

/// The body the corpus tests give `key`: empty for folder markers and `zero-byte`.
pub fn corpus_data(key: &str) -> Vec<u8> {
    if key == "zero-byte" || key.ends_with('/') {
        Vec::new()
    } else {
        format!("data of {key}").into_bytes()
    }
}

/// Every content header, user metadata and tags (values with spaces, quotes, `=`, `;`).
pub fn rich() -> WriteOptions {
    WriteOptions {
        content_type: Some("text/csv; charset=utf-8".into()),
        cache_control: Some("max-age=3600".into()),
        content_disposition: Some("attachment; filename=\"a b.csv\"".into()),
        content_encoding: Some("identity".into()),
        content_language: Some("de-CH".into()),
        expires: Some("Thu, 01 Jan 2037 00:00:00 GMT".into()),
        user_metadata: BTreeMap::from([
            ("owner".to_string(), "ana".to_string()),
            ("long-name".to_string(), "a value; with=signs".to_string()),
        ]),
        tags: vec![("team".into(), "blue".into()), ("cost center".into(), "4 2".into())],
        ..Default::default()
    }
}

/// Asserts that `b:bk` carries what `a:ak` has: content headers, user metadata, tags, bytes.
pub async fn assert_carried(a: &dyn ObjectStore, ak: &str, b: &dyn ObjectStore, bk: &str) {
    let (x, y) = (a.head(ak).await.unwrap(), b.head(bk).await.unwrap());
    assert_eq!(x.content_type, y.content_type, "content-type of {bk}");
    assert_eq!(x.cache_control, y.cache_control, "cache-control of {bk}");
    assert_eq!(
        x.content_disposition, y.content_disposition,
        "content-disposition of {bk}"
    );
    assert_eq!(x.content_encoding, y.content_encoding, "content-encoding of {bk}");
    assert_eq!(x.content_language, y.content_language, "content-language of {bk}");
    assert_eq!(x.expires.is_some(), y.expires.is_some(), "expires of {bk}");
    assert_eq!(x.user_metadata, y.user_metadata, "user metadata of {bk}");
    let (mut ta, mut tb) = (a.get_tags(ak).await.unwrap(), b.get_tags(bk).await.unwrap());
    ta.sort();
    tb.sort();
    assert_eq!(ta, tb, "tags of {bk}");
    assert_eq!(x.info.size, y.info.size, "size of {bk}");
    assert!(read(a, ak).await == read(b, bk).await, "bytes of {bk}");
}

/// `o` with short retry delays (tests inject failures; they should not wait seconds).
pub fn quick(o: CopyOptions) -> CopyOptions {
    CopyOptions {
        retry_min_delay: Duration::from_millis(2),
        retry_max_delay: Duration::from_millis(50),
        ..o
    }
}

/// [`run_range`] collecting the outcomes (panics on Err: invalid arguments).
pub async fn run_collect(
    op: RangeOp,
    src: &dyn ObjectStore,
    dst: &dyn ObjectStore,
    range: &KeyRange,
    map: &KeyMap,
    filter: &Filter,
    opts: &RangeOptions,
) -> (RangeSummary, Vec<Outcome>) {
    let mut out = Vec::new();
    let task = RangeTask {
        op,
        src,
        dst,
        range,
        map,
        filter,
    };
    let sum = run_range(task, opts, |o| out.push(o)).await.unwrap();
    (sum, out)
}

/// A filesystem store on `dir/name` (created).
pub fn fs_store(dir: &Path, name: &str) -> FsStore {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    FsStore::new(&FsLocationSpec { root })
}

/// An S3 location on a test endpoint (path-style, us-east-1, static test keys).
pub fn s3_spec(endpoint: &str, bucket: &str, prefix: &str) -> S3LocationSpec {
    S3LocationSpec {
        bucket: bucket.into(),
        prefix: prefix.into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        path_style: true,
        credential_name: "test".into(),
        credential: CredentialSource::Static {
            access_key_id: "any".into(),
            secret_access_key: Secret::new("any-secret"),
            session_token: None,
        },
        defaults: WriteDefaults::default(),
    }
}

/// Creates bucket `name` on `endpoint` and returns a store on it under `prefix`.
pub async fn s3_bucket(clients: &S3Clients, endpoint: &str, name: &str, prefix: &str) -> S3Store {
    let sp = s3_spec(endpoint, name, prefix);
    let c = clients.client(&sp, "us-east-1").await.unwrap();
    c.create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
    S3Store::new(sp, clients.clone())
}

/// A bucket name unique in this process: `{what}-{pid}-{n}`.
pub fn unique_bucket(what: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("{what}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}
