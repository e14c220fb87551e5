//! The storage abstraction the engine copies between, and its types.
//!
//! Contract every implementation keeps:
//! - keys are relative to the location root; `list` returns them in ascending byte order of the
//!   *full* key (S3 order), so ranges and merge-joins work the same on every store;
//! - `list` yields size, ETag, storage class and last-modified without a HEAD per object;
//! - errors are classified ([`StoreError`]) so callers know what to retry and what to report;
//! - nothing here logs or returns a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

/// A stream of object bytes.
pub type Body = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

pub type StoreResult<T> = Result<T, StoreError>;

/// A secret string: shown as `***` by Debug and Display, readable only through `expose()`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to obtain AWS credentials (already decrypted; lives only in memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// The SDK's default chain: env, profile, web identity, ECS, instance role.
    DefaultChain,
    Static {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    AssumeRole {
        role_arn: String,
        external_id: Option<String>,
        via: Box<CredentialSource>,
    },
}

/// Server-side encryption to request on writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sse {
    Aes256,
    Kms { key_id: Option<String> },
}

/// Additional checksum algorithms (S3 "flexible checksums").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChecksumAlgo {
    Crc32,
    Crc32c,
    Sha256,
}

/// Write defaults of a location (overridable per job).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteDefaults {
    pub storage_class: Option<String>,
    pub sse: Option<Sse>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3LocationSpec {
    pub bucket: String,
    /// Key prefix inside the bucket ("" or ending in '/'; no leading '/').
    pub prefix: String,
    /// None: discovered (GetBucketLocation / HeadBucket `x-amz-bucket-region`).
    pub region: Option<String>,
    /// None: AWS. Some(url): an S3-compatible endpoint (checksums "when required").
    pub endpoint: Option<String>,
    pub path_style: bool,
    /// Name of the credential in the cluster config (part of the client cache key).
    pub credential_name: String,
    pub credential: CredentialSource,
    pub defaults: WriteDefaults,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsLocationSpec {
    /// Directory that holds the objects (the same path on every node).
    pub root: std::path::PathBuf,
}

/// Where data lives, fully resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
// Built once per location use and rarely moved: boxing the S3 variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum LocationSpec {
    S3(S3LocationSpec),
    Fs(FsLocationSpec),
}

/// A range of keys, relative to the location root: those starting with `prefix`, strictly after
/// `start_after`, and at most `end` (inclusive) when given.
///
/// Listing stops after `end` itself or at the first key past it in the range's order: S3 byte
/// order, or with `path_order` the order of stores that list folder by folder (SeaweedFS: '/'
/// sorts before every other byte, see [`key_cmp`]). Job ranges are cut from one listing of
/// the source, so their bounds are keys in that store's own order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRange {
    pub prefix: String,
    pub start_after: Option<String>,
    pub end: Option<String>,
    pub path_order: bool,
}

/// Compares keys in S3 byte order, or (`path_order`) folder by folder: as bytes with '/'
/// ranked below every other byte.
pub fn key_cmp(a: &str, b: &str, path_order: bool) -> std::cmp::Ordering {
    if !path_order {
        return a.cmp(b);
    }
    let rank = |c: u8| if c == b'/' { 0u16 } else { c as u16 + 1 };
    a.bytes().map(rank).cmp(b.bytes().map(rank))
}

impl KeyRange {
    /// Whether listing must stop at `key` (it lies beyond `end`).
    pub fn past_end(&self, key: &str) -> bool {
        self.end
            .as_deref()
            .is_some_and(|e| key != e && key_cmp(key, e, self.path_order) == std::cmp::Ordering::Greater)
    }
    /// Whether `key` lies strictly after `start_after` and at most at `end`, in the range's order.
    pub fn contains(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
            && self
                .start_after
                .as_deref()
                .is_none_or(|s| key_cmp(key, s, self.path_order) == std::cmp::Ordering::Greater)
            && !self.past_end(key)
    }
}

/// An object as a listing shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// Without quotes.
    pub etag: Option<String>,
    pub last_modified_ms: Option<i64>,
    pub storage_class: Option<String>,
}

/// One page of a listing; `next_start_after` is Some when there may be more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectInfo>,
    pub next_start_after: Option<String>,
}

/// Everything a copy must carry over, as HEAD (plus tagging) shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub info: ObjectInfo,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    /// HTTP date, as the store returned it.
    pub expires: Option<String>,
    pub user_metadata: BTreeMap<String, String>,
    pub sse: Option<Sse>,
    /// Whole-object additional checksums the store reports (base64, as S3 returns them).
    pub checksums: BTreeMap<ChecksumAlgo, String>,
    /// Number of parts when the object was uploaded in parts (from the ETag `-N` suffix).
    pub parts_count: Option<u32>,
}

/// What a write sets on the destination object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<String>,
    pub user_metadata: BTreeMap<String, String>,
    pub tags: Vec<(String, String)>,
    pub storage_class: Option<String>,
    pub sse: Option<Sse>,
    /// Ask the store to compute and keep this checksum.
    pub checksum: Option<ChecksumAlgo>,
    /// Fail with PreconditionFailed if the key exists (`If-None-Match: *`).
    pub if_none_match: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResult {
    pub etag: Option<String>,
    pub checksum: Option<(ChecksumAlgo, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    pub checksum: Option<(ChecksumAlgo, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: Option<i64>,
}

/// Source of a server-side copy: a full bucket and key on the same endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopySource {
    pub bucket: String,
    /// The full key (location prefix included).
    pub key: String,
}

/// Identity of an endpoint: server-side copy is possible only between stores with equal ids
/// (and a destination credential that can read the source).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointId {
    /// endpoint URL ("" for AWS) and region
    S3 {
        endpoint: String,
        region: String,
    },
    Fs,
}

/// Result of `probe` (`meshctl location test`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    /// Steps run, in order, each with its outcome (e.g. "list: ok (3 keys)").
    pub steps: Vec<(String, Result<String, StoreError>)>,
}

impl ProbeReport {
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|(_, r)| r.is_ok())
    }
}

/// Classified store errors. Messages say what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no object `{key}`")]
    NotFound { key: String },
    #[error("bucket `{bucket}` does not exist (check the location's bucket name and region)")]
    NoSuchBucket { bucket: String },
    #[error("access denied: {detail} (check the location's credential and the bucket policy)")]
    AccessDenied { detail: String },
    #[error("bucket `{bucket}` is in region {actual}, not {configured} (set --region {actual})")]
    WrongRegion {
        bucket: String,
        configured: String,
        actual: String,
    },
    #[error("`{key}` already exists and the write required that it did not")]
    PreconditionFailed { key: String },
    #[error("endpoint {endpoint} is unreachable: {detail}")]
    Unreachable { endpoint: String, detail: String },
    #[error("TLS failure talking to {endpoint}: {detail}")]
    Tls { endpoint: String, detail: String },
    #[error("request refused for clock skew: {detail} (fix this node's clock: NTP)")]
    ClockSkew { detail: String },
    #[error("throttled by the store: {detail}")]
    Throttled { detail: String },
    #[error("transient failure: {detail}")]
    Transient { detail: String },
    #[error("data mismatch for `{key}`: {detail}")]
    Mismatch { key: String, detail: String },
    #[error("invalid key `{key}`: {detail}")]
    InvalidKey { key: String, detail: String },
    #[error("{detail}")]
    Other { detail: String },
}

impl StoreError {
    /// Whether trying again (with backoff) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Throttled { .. } | StoreError::Transient { .. } | StoreError::Unreachable { .. }
        )
    }
}

/// A place objects live. Implementations: `s3::S3Store`, `fs::FsStore`.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Human-readable name for messages and reports, e.g. `s3://bucket/prefix/ (http://127.0.0.1:8333)`.
    fn describe(&self) -> String;
    fn endpoint_id(&self) -> EndpointId;
    /// For S3 stores: the bucket and the full key of a relative key (server-side copy sources).
    fn copy_source(&self, _key: &str) -> Option<CopySource> {
        None
    }

    async fn list(&self, range: &KeyRange, max_keys: usize) -> StoreResult<ListPage>;
    /// NotFound when missing.
    async fn head(&self, key: &str) -> StoreResult<ObjectMeta>;
    async fn get_tags(&self, key: &str) -> StoreResult<Vec<(String, String)>>;
    /// `range` is an inclusive byte range.
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> StoreResult<Body>;
    /// Single-request write of a body of known length.
    async fn put(&self, key: &str, body: Body, len: u64, opts: &WriteOptions) -> StoreResult<PutResult>;

    async fn create_multipart(&self, key: &str, opts: &WriteOptions) -> StoreResult<String>;
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
        len: u64,
        checksum: Option<ChecksumAlgo>,
    ) -> StoreResult<CompletedPart>;
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        opts: &WriteOptions,
    ) -> StoreResult<PutResult>;
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()>;
    /// Unfinished multipart uploads under `prefix` (relative keys).
    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<UploadInfo>>;

    /// Whether `copy_object` keeps the source's content headers and user metadata when `opts`
    /// carries none of them, and its tags when `opts.tags` is empty (S3 `MetadataDirective` /
    /// `TaggingDirective` COPY). When false (the default) callers must send the full metadata,
    /// which costs them a HEAD and a GetObjectTagging per object first.
    fn copy_keeps_metadata(&self) -> bool {
        false
    }
    /// Server-side copy of a whole object (S3 only; others return Other).
    async fn copy_object(&self, src: &CopySource, key: &str, opts: &WriteOptions) -> StoreResult<PutResult>;
    /// Server-side copy of a byte range into a part (S3 only).
    async fn upload_part_copy(
        &self,
        src: &CopySource,
        key: &str,
        upload_id: &str,
        part_number: u32,
        range: (u64, u64),
    ) -> StoreResult<CompletedPart>;

    /// Deletes keys (batched); returns the keys that failed, with why.
    async fn delete_many(&self, keys: &[String]) -> StoreResult<Vec<(String, StoreError)>>;

    /// Checks the location works and diagnoses what does not (list, head, region, clock, TLS…).
    async fn probe(&self) -> ProbeReport;
}

/// Wording of the data-path probe steps that differs between stores.
pub struct ProbeWording<'a> {
    /// How the listing step reports an empty location.
    pub empty: &'a str,
    /// Prepended to the probe key in messages (the location prefix, so the operator finds it).
    pub shown_prefix: &'a str,
    /// Appended to the read-only message (what a read-only location is still good for).
    pub read_only_note: &'a str,
}

/// The probe steps every store shares, appended to `steps`: list one key, HEAD it if there is
/// one, then write and delete a probe object under `.mesh-probe/` (denied writes mean read-only,
/// which is reported, not failed).
pub async fn probe_data_steps(
    store: &dyn ObjectStore,
    steps: &mut Vec<(String, Result<String, StoreError>)>,
    wording: &ProbeWording<'_>,
) {
    let first = match store.list(&KeyRange::default(), 1).await {
        Ok(p) => {
            let first = p.objects.first().map(|o| o.key.clone());
            let msg = match &first {
                Some(k) => format!("ok (first key `{k}`)"),
                None => format!("ok ({})", wording.empty),
            };
            steps.push(("list (1 key)".into(), Ok(msg)));
            first
        }
        Err(e) => {
            steps.push(("list (1 key)".into(), Err(e)));
            None
        }
    };
    if let Some(k) = first {
        let r = store.head(&k).await.map(|m| match m.info.etag {
            Some(etag) => format!("ok ({} bytes, ETag {etag})", m.info.size),
            None => format!("ok ({} bytes)", m.info.size),
        });
        steps.push((format!("head `{k}`"), r));
    }
    let pk = format!(".mesh-probe/{:016x}", rand::random::<u64>());
    let shown = format!("{}{pk}", wording.shown_prefix);
    let body: Body = Box::pin(futures::stream::iter([Ok(Bytes::from_static(b"bucketmesh probe"))]));
    let r = match store.put(&pk, body, 16, &WriteOptions::default()).await {
        Ok(_) => match store.delete_many(std::slice::from_ref(&pk)).await {
            Ok(f) if f.is_empty() => Ok("ok (wrote and deleted a probe object)".to_string()),
            Ok(f) => Ok(format!(
                "wrote `{shown}` but could not delete it ({}); remove it by hand",
                f[0].1
            )),
            Err(e) => Ok(format!(
                "wrote `{shown}` but could not delete it ({e}); remove it by hand"
            )),
        },
        Err(StoreError::AccessDenied { detail }) => Ok(format!(
            "read-only: writes are denied ({detail}){}",
            wording.read_only_note
        )),
        Err(e) => Err(e),
    };
    steps.push(("write+delete probe object".into(), r));
}
