//! [`S3Store`]: an S3 bucket (and key prefix) through aws-sdk-s3.
//!
//! - Keys are relative to the location's `prefix`; the store adds it on requests and strips it
//!   from listings.
//! - Listing is ListObjectsV2 with `prefix`/`start-after` (encoding-type=url, decoded like
//!   botocore's `unquote_plus`, so any key survives the XML), stopping at `end`.
//! - Region: the configured one, else discovered once (HeadBucket `x-amz-bucket-region`, else
//!   GetBucketLocation; empty means us-east-1) and cached. A 301/PermanentRedirect (or a 400
//!   naming another region) becomes [`StoreError::WrongRegion`] with the right region.
//! - Writes carry every [`WriteOptions`] field (content headers, user metadata, tags as the
//!   `x-amz-tagging` header, storage class, SSE AES256 / aws:kms + key id, checksum algorithm,
//!   `If-None-Match: *`) — on PutObject, on CreateMultipartUpload (S3 drops them on multipart
//!   uploads otherwise) and on CopyObject (MetadataDirective / TaggingDirective REPLACE with the
//!   given values, so overrides work; COPY when the options carry no metadata / no tags, see
//!   `copy_keeps_metadata`). The location's write defaults (storage class, SSE) apply when the options
//!   leave them unset.
//! - Bodies up to [`DEFAULT_BUFFER_LIMIT`] are buffered (signed, checksummed by us, and retried
//!   by the SDK); larger ones are streamed (not retried by the SDK: the caller retries the
//!   part). GET bodies are streams whose errors are [`StoreError::Transient`].
//! - CopySource is URL-encoded per segment, keeping `/` (the SDK does not encode it).
//! - Errors are classified by `S3Store::classify` (see its table).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, Delete, EncodingType, MetadataDirective,
    ObjectIdentifier, ServerSideEncryption, StorageClass, TaggingDirective,
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::checksum::Hasher;
use super::clients::{normalize_endpoint, S3Clients, DISCOVERY_REGION};
use super::store::*;
use super::verify;

/// Bodies up to this many bytes are buffered in memory before sending (see module docs).
pub const DEFAULT_BUFFER_LIMIT: usize = 8 * 1024 * 1024;

/// Characters left as-is in a CopySource key (RFC 3986 unreserved + `/`).
const COPY_SOURCE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// Characters left as-is in `x-amz-tagging` (form encoding of keys and values).
const TAG_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `bucket/key` URL-encoded per segment, keeping `/` (for CopyObject / UploadPartCopy).
pub fn encode_copy_source(bucket: &str, key: &str) -> String {
    format!(
        "{}/{}",
        utf8_percent_encode(bucket, COPY_SOURCE_SET),
        utf8_percent_encode(key, COPY_SOURCE_SET)
    )
}

/// The `x-amz-tagging` header value of `tags` (`k=v&k2=v2`, each part URL-encoded).
pub fn encode_tagging(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, TAG_SET),
                utf8_percent_encode(v, TAG_SET)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes a key of a ListObjectsV2 response made with encoding-type=url (`+` is a space).
fn decode_list_key(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_decode_str(&plus).decode_utf8_lossy().into_owned()
}

fn trim_etag(e: &str) -> String {
    e.trim_matches('"').to_string()
}

/// The per-request config of an upload of `len` bytes (see [`super::clients::upload_timeouts`]).
fn upload_config(len: u64) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default().timeout_config(super::clients::upload_timeouts(len))
}

fn sdk_algo(a: ChecksumAlgo) -> ChecksumAlgorithm {
    match a {
        ChecksumAlgo::Crc32 => ChecksumAlgorithm::Crc32,
        ChecksumAlgo::Crc32c => ChecksumAlgorithm::Crc32C,
        ChecksumAlgo::Sha256 => ChecksumAlgorithm::Sha256,
    }
}

fn sse_of(s: Option<&ServerSideEncryption>, kms_key: Option<&str>) -> Option<Sse> {
    match s? {
        ServerSideEncryption::Aes256 => Some(Sse::Aes256),
        ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse => Some(Sse::Kms {
            key_id: kms_key.map(str::to_string),
        }),
        _ => None,
    }
}

fn pick_checksum(crc32: Option<&str>, crc32c: Option<&str>, sha256: Option<&str>) -> Option<(ChecksumAlgo, String)> {
    crc32
        .map(|v| (ChecksumAlgo::Crc32, v.to_string()))
        .or_else(|| crc32c.map(|v| (ChecksumAlgo::Crc32c, v.to_string())))
        .or_else(|| sha256.map(|v| (ChecksumAlgo::Sha256, v.to_string())))
}

/// Applies the WriteOptions common to PutObject, CreateMultipartUpload and CopyObject builders.
macro_rules! apply_write_opts {
    ($req:expr, $o:expr) => {{
        let o: &WriteOptions = $o;
        let mut r = $req
            .set_content_type(o.content_type.clone())
            .set_cache_control(o.cache_control.clone())
            .set_content_disposition(o.content_disposition.clone())
            .set_content_encoding(o.content_encoding.clone())
            .set_content_language(o.content_language.clone());
        if let Some(e) = &o.expires {
            match DateTime::from_str(e, DateTimeFormat::HttpDate) {
                Ok(d) => r = r.expires(d),
                Err(_) => tracing::warn!(expires = %e, "not an HTTP date: Expires not set"),
            }
        }
        if !o.user_metadata.is_empty() {
            r = r.set_metadata(Some(o.user_metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()));
        }
        if !o.tags.is_empty() {
            r = r.tagging(encode_tagging(&o.tags));
        }
        if let Some(sc) = &o.storage_class {
            r = r.storage_class(StorageClass::from(sc.as_str()));
        }
        match &o.sse {
            Some(Sse::Aes256) => r = r.server_side_encryption(ServerSideEncryption::Aes256),
            Some(Sse::Kms { key_id }) => r = r.server_side_encryption(ServerSideEncryption::AwsKms).set_ssekms_key_id(key_id.clone()),
            None => {}
        }
        r
    }};
}

/// What the classifier knows about the request.
struct Cx<'a> {
    op: &'a str,
    key: Option<&'a str>,
}

/// Records the `Date` header of responses (for clock-skew detection in `probe`).
#[derive(Clone, Debug, Default)]
struct DateCapture(Arc<Mutex<Option<String>>>);

impl Intercept for DateCapture {
    fn name(&self) -> &'static str {
        "bucketmesh-date-capture"
    }
    fn read_after_transmit(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(d) = ctx.response().headers().get("date") {
            *self.0.lock().unwrap() = Some(d.to_string());
        }
        Ok(())
    }
}

/// An S3 location.
pub struct S3Store {
    spec: S3LocationSpec,
    clients: S3Clients,
    region: tokio::sync::OnceCell<String>,
    /// Send `x-amz-checksum-mode: ENABLED` on HEAD (turned off if the store rejects it).
    head_checksums: AtomicBool,
    /// Set once a listing came back out of S3 byte order.
    out_of_order: AtomicBool,
    buffer_limit: usize,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store").field("describe", &self.describe()).finish()
    }
}

impl S3Store {
    /// No I/O: the region (if not configured) is discovered on first use.
    pub fn new(spec: S3LocationSpec, clients: S3Clients) -> S3Store {
        S3Store {
            spec,
            clients,
            region: tokio::sync::OnceCell::new(),
            head_checksums: AtomicBool::new(true),
            out_of_order: AtomicBool::new(false),
            buffer_limit: DEFAULT_BUFFER_LIMIT,
        }
    }

    /// Bodies up to `n` bytes are buffered; larger ones streamed (tests use a small value).
    pub fn with_buffer_limit(mut self, n: usize) -> S3Store {
        self.buffer_limit = n;
        self
    }

    /// Whether a listing of this store ever came back out of S3 byte order (SeaweedFS does:
    /// it lists directory by directory, so `a/x` comes before `a-b`).
    pub fn saw_out_of_order(&self) -> bool {
        self.out_of_order.load(Ordering::Relaxed)
    }

    pub fn spec(&self) -> &S3LocationSpec {
        &self.spec
    }

    fn full(&self, key: &str) -> String {
        format!("{}{}", self.spec.prefix, key)
    }

    fn rel(&self, full: &str) -> String {
        full.strip_prefix(self.spec.prefix.as_str()).unwrap_or(full).to_string()
    }

    fn endpoint_label(&self) -> String {
        match &self.spec.endpoint {
            Some(e) => normalize_endpoint(e),
            None => format!(
                "s3.{}.amazonaws.com",
                self.region
                    .get()
                    .or(self.spec.region.as_ref())
                    .map(String::as_str)
                    .unwrap_or(DISCOVERY_REGION)
            ),
        }
    }

    /// The bucket's region (configured, or discovered once and cached).
    pub async fn region(&self) -> StoreResult<String> {
        if let Some(r) = &self.spec.region {
            return Ok(r.clone());
        }
        self.region.get_or_try_init(|| self.discover_region()).await.cloned()
    }

    async fn discover_region(&self) -> StoreResult<String> {
        let c = self.clients.client(&self.spec, DISCOVERY_REGION).await?;
        match c.head_bucket().bucket(&self.spec.bucket).send().await {
            Ok(out) => {
                if let Some(r) = out.bucket_region().filter(|r| !r.is_empty()) {
                    return Ok(r.to_string());
                }
            }
            Err(e) => {
                if let Some(r) = e.raw_response().and_then(|r| r.headers().get("x-amz-bucket-region")) {
                    return Ok(r.to_string());
                }
                return Err(self.classify(
                    e,
                    &Cx {
                        op: "HeadBucket",
                        key: None,
                    },
                    DISCOVERY_REGION,
                ));
            }
        }
        let out = match c.get_bucket_location().bucket(&self.spec.bucket).send().await {
            Ok(out) => out,
            Err(e) => {
                let err = self.classify(
                    e,
                    &Cx {
                        op: "GetBucketLocation",
                        key: None,
                    },
                    DISCOVERY_REGION,
                );
                // Some S3-compatible stores answer GetBucketLocation with a body the SDK cannot
                // parse (SeaweedFS: <CreateBucketConfiguration>); the bucket exists (HeadBucket
                // succeeded) and such stores ignore the region, so use the default.
                if self.spec.endpoint.is_some()
                    && matches!(err, StoreError::Other { .. } | StoreError::Transient { .. })
                {
                    tracing::debug!(store = %self.describe(), error = %err, "GetBucketLocation unusable; assuming us-east-1");
                    return Ok("us-east-1".into());
                }
                return Err(err);
            }
        };
        Ok(match out.location_constraint().map(|l| l.as_str()) {
            None | Some("") => "us-east-1".into(),
            Some("EU") => "eu-west-1".into(),
            Some(r) => r.to_string(),
        })
    }

    async fn client(&self) -> StoreResult<(aws_sdk_s3::Client, String)> {
        let r = self.region().await?;
        Ok((self.clients.client(&self.spec, &r).await?, r))
    }

    /// Classifies an SDK error (see the module docs).
    ///
    /// | what | StoreError |
    /// |---|---|
    /// | 301 / PermanentRedirect / 400 AuthorizationHeaderMalformed naming another region | WrongRegion |
    /// | NoSuchKey, 404 on an object | NotFound |
    /// | NoSuchBucket | NoSuchBucket |
    /// | NoSuchUpload | NotFound (`key (upload …)`) |
    /// | RequestTimeTooSkewed | ClockSkew |
    /// | InvalidAccessKeyId, SignatureDoesNotMatch, ExpiredToken, AccessDenied, other 403 | AccessDenied (with what to check) |
    /// | 412 PreconditionFailed | PreconditionFailed |
    /// | SlowDown, Throttling*, RequestLimitExceeded, 429 | Throttled |
    /// | 5xx, InternalError, RequestTimeout, 409 conflicts, timeouts, broken responses | Transient |
    /// | connect refused, DNS, no route | Unreachable |
    /// | TLS handshake / certificate problems | Tls |
    /// | anything else | Other (op, code, message, status) |
    fn classify<E>(
        &self,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
        cx: &Cx<'_>,
        region: &str,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let endpoint = self.endpoint_label();
        let status = err.raw_response().map(|r| r.status().as_u16());
        let hdr_region = err
            .raw_response()
            .and_then(|r| r.headers().get("x-amz-bucket-region"))
            .map(str::to_string);
        let code = err.code().map(str::to_string);
        let message = err.message().map(str::to_string).unwrap_or_default();
        let key = cx.key.unwrap_or("").to_string();
        let chain = error_chain(&err);
        match &err {
            SdkError::ConstructionFailure(_) => {
                return StoreError::Other {
                    detail: format!("{}: could not build the request: {chain}", cx.op),
                }
            }
            SdkError::TimeoutError(_) => {
                return StoreError::Transient {
                    detail: format!("{} timed out talking to {endpoint}", cx.op),
                }
            }
            SdkError::DispatchFailure(d) => {
                let lc = chain.to_lowercase();
                if [
                    "connection refused",
                    "dns error",
                    "failed to lookup",
                    "name or service not known",
                    "no route to host",
                    "network is unreachable",
                    "tcp connect error",
                ]
                .iter()
                .any(|p| lc.contains(p))
                {
                    return StoreError::Unreachable {
                        endpoint,
                        detail: chain,
                    };
                }
                if [
                    "tls",
                    "certificate",
                    "handshake",
                    "corrupt message",
                    "invalidcontenttype",
                    "unknownissuer",
                ]
                .iter()
                .any(|p| lc.contains(p))
                {
                    return StoreError::Tls {
                        endpoint,
                        detail: chain,
                    };
                }
                if d.is_timeout() {
                    return StoreError::Transient {
                        detail: format!("{}: timeout talking to {endpoint}: {chain}", cx.op),
                    };
                }
                return StoreError::Transient {
                    detail: format!("{}: connection to {endpoint} failed: {chain}", cx.op),
                };
            }
            SdkError::ResponseError(_) => {
                return StoreError::Transient {
                    detail: format!(
                        "{}: unreadable response from {endpoint} (HTTP {}): {chain}",
                        cx.op,
                        status.unwrap_or(0)
                    ),
                }
            }
            _ => {}
        }
        // Region problems first: the message of other errors would mislead.
        let configured = self.spec.region.clone().unwrap_or_else(|| region.to_string());
        let redirect = status == Some(301)
            || code.as_deref() == Some("PermanentRedirect")
            || code.as_deref() == Some("AuthorizationHeaderMalformed");
        if redirect {
            let actual = hdr_region.clone().or_else(|| region_in_message(&message));
            if let Some(actual) = actual.filter(|a| *a != configured) {
                return StoreError::WrongRegion {
                    bucket: self.spec.bucket.clone(),
                    configured,
                    actual,
                };
            }
        }
        let detail = format!(
            "{}: {} {} (HTTP {})",
            cx.op,
            code.as_deref().unwrap_or("-"),
            message,
            status.unwrap_or(0)
        );
        match (code.as_deref(), status) {
            (Some("NoSuchBucket"), _) => StoreError::NoSuchBucket { bucket: self.spec.bucket.clone() },
            (Some("NoSuchKey"), _) => StoreError::NotFound { key },
            (Some("NoSuchUpload"), _) => StoreError::NotFound { key: format!("{key} (upload)") },
            (Some("RequestTimeTooSkewed"), _) => StoreError::ClockSkew { detail: format!("{message} (the store's and this node's clocks differ by more than 15 minutes)") },
            (Some("InvalidAccessKeyId"), _) => StoreError::AccessDenied { detail: format!("the store does not know this access key id (InvalidAccessKeyId) — check the credential's access key ({})", cx.op) },
            (Some("SignatureDoesNotMatch"), _) => StoreError::AccessDenied { detail: format!("request signature rejected (SignatureDoesNotMatch) — the secret access key is probably wrong ({})", cx.op) },
            (Some("ExpiredToken") | Some("TokenRefreshRequired"), _) => StoreError::AccessDenied { detail: format!("the session token has expired ({})", cx.op) },
            (Some("InvalidToken"), _) => StoreError::AccessDenied { detail: format!("the session token is invalid ({})", cx.op) },
            (Some("AccessDenied") | Some("AllAccessDisabled"), _) | (_, Some(403)) => StoreError::AccessDenied { detail },
            (Some("PreconditionFailed"), _) | (_, Some(412)) => StoreError::PreconditionFailed { key },
            (Some("SlowDown" | "Throttling" | "ThrottlingException" | "ThrottledException" | "RequestThrottled" | "RequestLimitExceeded" | "TooManyRequestsException"), _) | (_, Some(429)) => {
                StoreError::Throttled { detail }
            }
            (Some("InternalError" | "ServiceUnavailable" | "RequestTimeout" | "OperationAborted" | "ConditionalRequestConflict"), _) => StoreError::Transient { detail },
            (_, Some(s)) if s >= 500 => StoreError::Transient { detail },
            (_, Some(404)) if cx.key.is_some() => StoreError::NotFound { key },
            (_, Some(404)) => StoreError::NoSuchBucket { bucket: self.spec.bucket.clone() },
            (_, Some(301)) => StoreError::WrongRegion { bucket: self.spec.bucket.clone(), configured, actual: hdr_region.unwrap_or_else(|| "(unknown: the store sent no x-amz-bucket-region)".into()) },
            _ => StoreError::Other { detail },
        }
    }

    fn apply_defaults(&self, o: &WriteOptions) -> WriteOptions {
        let mut o = o.clone();
        if o.storage_class.is_none() {
            o.storage_class = self.spec.defaults.storage_class.clone();
        }
        if o.sse.is_none() {
            o.sse = self.spec.defaults.sse.clone();
        }
        o
    }

    /// Turns a Body of `len` bytes into a ByteStream: buffered (with our own checksum header
    /// value) when small, streamed otherwise.
    async fn to_bytestream(
        &self,
        key: &str,
        mut body: Body,
        len: u64,
        algo: Option<ChecksumAlgo>,
    ) -> StoreResult<(ByteStream, Option<(ChecksumAlgo, String)>)> {
        if len <= self.buffer_limit as u64 {
            // Small bodies are held in memory so the SDK can retry them. A body that arrives as
            // one chunk (the transfer layer hands over whole parts) is kept as is — `Bytes` is
            // reference-counted — so a part is never held twice; only a multi-chunk body is
            // gathered into one buffer.
            let mut chunks: Vec<Bytes> = Vec::new();
            let mut total: u64 = 0;
            while let Some(c) = body.next().await {
                let c = c?;
                total += c.len() as u64;
                if total > len {
                    return Err(StoreError::Mismatch {
                        key: key.into(),
                        detail: format!("body longer than the announced {len} bytes"),
                    });
                }
                chunks.push(c);
            }
            if total != len {
                return Err(StoreError::Mismatch {
                    key: key.into(),
                    detail: format!("body ended after {total} of {len} bytes"),
                });
            }
            let data: Bytes = if chunks.len() == 1 {
                chunks.pop().expect("one chunk")
            } else {
                let mut buf = BytesMut::with_capacity(len as usize);
                for c in &chunks {
                    buf.extend_from_slice(c);
                }
                drop(chunks);
                buf.freeze()
            };
            let ck = algo.map(|a| {
                let mut h = Hasher::new(a);
                h.update(&data);
                (a, h.base64())
            });
            return Ok((ByteStream::from(data), ck));
        }
        let key = key.to_string();
        let mut seen: u64 = 0;
        let frames = SyncBody(Mutex::new(body)).map(move |r| {
            let b = r?;
            seen += b.len() as u64;
            if seen > len {
                return Err(StoreError::Mismatch {
                    key: key.clone(),
                    detail: format!("body longer than the announced {len} bytes"),
                });
            }
            Ok::<_, StoreError>(hyper::body::Frame::data(b))
        });
        Ok((ByteStream::from_body_1_x(http_body_util::StreamBody::new(frames)), None))
    }

    fn copy_source_str(src: &CopySource) -> String {
        encode_copy_source(&src.bucket, &src.key)
    }

    /// A client for probe requests: 2 attempts, so an unreachable endpoint is reported quickly.
    fn probe_override() -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::config::Builder::new().retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(100)),
        )
    }
}

/// A `Sync` view of a [`Body`] (SdkBody needs `Sync`; polling goes through `&mut`, so the
/// mutex is never contended).
struct SyncBody(Mutex<Body>);

impl futures::Stream for SyncBody {
    type Item = Result<Bytes, StoreError>;
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.get_mut().0.get_mut() {
            Ok(b) => b.as_mut().poll_next(cx),
            Err(_) => std::task::Poll::Ready(Some(Err(StoreError::Other {
                detail: "body poisoned".into(),
            }))),
        }
    }
}

/// `a: b: c` of an error and its sources.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p == &t) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// "... expecting 'eu-west-1'" / "<Region>eu-west-1</Region>" style hints.
fn region_in_message(msg: &str) -> Option<String> {
    let i = msg.find("expecting '")? + "expecting '".len();
    let rest = &msg[i..];
    Some(rest[..rest.find('\'')?].to_string())
}

fn dt_ms(d: Option<&DateTime>) -> Option<i64> {
    d.and_then(|d| d.to_millis().ok())
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        let ep = match &self.spec.endpoint {
            Some(e) => normalize_endpoint(e),
            None => "AWS".into(),
        };
        format!("s3://{}/{} ({ep})", self.spec.bucket, self.spec.prefix)
    }

    fn endpoint_id(&self) -> EndpointId {
        EndpointId::S3 {
            endpoint: self
                .spec
                .endpoint
                .as_deref()
                .map(normalize_endpoint)
                .unwrap_or_default(),
            region: self
                .spec
                .region
                .clone()
                .or_else(|| self.region.get().cloned())
                .unwrap_or_default(),
        }
    }

    fn copy_source(&self, key: &str) -> Option<CopySource> {
        Some(CopySource {
            bucket: self.spec.bucket.clone(),
            key: self.full(key),
        })
    }

    /// CopyObject uses MetadataDirective / TaggingDirective COPY when the options carry no
    /// metadata / no tags (see `copy_object`).
    fn copy_keeps_metadata(&self) -> bool {
        true
    }

    async fn list(&self, range: &KeyRange, max_keys: usize) -> StoreResult<ListPage> {
        let (c, region) = self.client().await?;
        let mut page = ListPage::default();
        let mut start_after = range.start_after.as_deref().map(|s| self.full(s));
        let prefix = self.full(&range.prefix);
        while page.objects.len() < max_keys {
            let want = (max_keys - page.objects.len()).min(1000) as i32;
            let out = c
                .list_objects_v2()
                .bucket(&self.spec.bucket)
                .prefix(&prefix)
                .set_start_after(start_after.clone())
                .max_keys(want)
                .encoding_type(EncodingType::Url)
                .send()
                .await
                .map_err(|e| {
                    self.classify(
                        e,
                        &Cx {
                            op: "ListObjectsV2",
                            key: None,
                        },
                        &region,
                    )
                })?;
            let encoded = out.encoding_type() == Some(&EncodingType::Url);
            let mut last_full = None;
            for o in out.contents() {
                let Some(k) = o.key() else { continue };
                let full = if encoded { decode_list_key(k) } else { k.to_string() };
                let rel = self.rel(&full);
                if range.past_end(&rel) {
                    page.next_start_after = None;
                    return Ok(page);
                }
                let prev = page
                    .objects
                    .last()
                    .map(|o: &ObjectInfo| o.key.as_str())
                    .or(range.start_after.as_deref());
                if prev.is_some_and(|p| rel.as_str() <= p) && !self.out_of_order.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        store = %self.describe(),
                        "the store lists keys out of S3 byte order (SeaweedFS lists directory by directory); \
                         key ranges and merge-joins against other stores may misbehave here"
                    );
                }
                last_full = Some(full);
                page.objects.push(ObjectInfo {
                    key: rel,
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().map(trim_etag),
                    last_modified_ms: dt_ms(o.last_modified()),
                    storage_class: o.storage_class().map(|s| s.as_str().to_string()),
                });
            }
            if !out.is_truncated().unwrap_or(false) || last_full.is_none() {
                page.next_start_after = None;
                return Ok(page);
            }
            start_after = last_full;
            page.next_start_after = page.objects.last().map(|o| o.key.clone());
        }
        Ok(page)
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let (c, region) = self.client().await?;
        let full = self.full(key);
        let cx = Cx {
            op: "HeadObject",
            key: Some(key),
        };
        let with_ck = self.head_checksums.load(Ordering::Relaxed);
        let req = c.head_object().bucket(&self.spec.bucket).key(&full);
        let res = if with_ck {
            req.clone().checksum_mode(ChecksumMode::Enabled).send().await
        } else {
            req.clone().send().await
        };
        let o = match res {
            Ok(o) => o,
            Err(e) if with_ck && matches!(e.raw_response().map(|r| r.status().as_u16()), Some(400 | 403 | 501)) => {
                // Some S3-compatible stores reject x-amz-checksum-mode; try once without.
                let o = req.send().await.map_err(|e| self.classify(e, &cx, &region))?;
                self.head_checksums.store(false, Ordering::Relaxed);
                tracing::info!(store = %self.describe(), "HEAD with checksum mode rejected; not asking for checksums on this location");
                o
            }
            Err(e) => return Err(self.classify(e, &cx, &region)),
        };
        let mut checksums = BTreeMap::new();
        if let Some(v) = o.checksum_crc32() {
            checksums.insert(ChecksumAlgo::Crc32, v.to_string());
        }
        if let Some(v) = o.checksum_crc32_c() {
            checksums.insert(ChecksumAlgo::Crc32c, v.to_string());
        }
        if let Some(v) = o.checksum_sha256() {
            checksums.insert(ChecksumAlgo::Sha256, v.to_string());
        }
        let etag = o.e_tag().map(trim_etag);
        Ok(ObjectMeta {
            info: ObjectInfo {
                key: key.to_string(),
                size: o.content_length().unwrap_or(0).max(0) as u64,
                etag: etag.clone(),
                last_modified_ms: dt_ms(o.last_modified()),
                storage_class: Some(
                    o.storage_class()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "STANDARD".into()),
                ),
            },
            content_type: o.content_type().map(str::to_string),
            cache_control: o.cache_control().map(str::to_string),
            content_disposition: o.content_disposition().map(str::to_string),
            content_encoding: o.content_encoding().map(str::to_string),
            content_language: o.content_language().map(str::to_string),
            expires: o.expires_string().map(str::to_string),
            user_metadata: o
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            sse: sse_of(o.server_side_encryption(), o.ssekms_key_id()),
            checksums,
            parts_count: o
                .parts_count()
                .map(|n| n as u32)
                .or_else(|| etag.as_deref().and_then(verify::multipart_parts)),
        })
    }

    async fn get_tags(&self, key: &str) -> StoreResult<Vec<(String, String)>> {
        let (c, region) = self.client().await?;
        let out = c
            .get_object_tagging()
            .bucket(&self.spec.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| {
                self.classify(
                    e,
                    &Cx {
                        op: "GetObjectTagging",
                        key: Some(key),
                    },
                    &region,
                )
            })?;
        Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> StoreResult<Body> {
        let (c, region) = self.client().await?;
        let out = c
            .get_object()
            .bucket(&self.spec.bucket)
            .key(self.full(key))
            .set_range(range.map(|(a, b)| format!("bytes={a}-{b}")))
            .send()
            .await
            .map_err(|e| {
                self.classify(
                    e,
                    &Cx {
                        op: "GetObject",
                        key: Some(key),
                    },
                    &region,
                )
            })?;
        let key = key.to_string();
        let endpoint = self.endpoint_label();
        let stream = futures::stream::unfold(Some(out.body), move |st| {
            let key = key.clone();
            let endpoint = endpoint.clone();
            async move {
                let mut bs = st?;
                match bs.next().await {
                    None => None,
                    Some(Ok(b)) => Some((Ok(b), Some(bs))),
                    Some(Err(e)) => Some((
                        Err(StoreError::Transient {
                            detail: format!("body of `{key}` from {endpoint} broke mid-stream: {}", error_chain(&e)),
                        }),
                        None,
                    )),
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn put(&self, key: &str, body: Body, len: u64, opts: &WriteOptions) -> StoreResult<PutResult> {
        let (c, region) = self.client().await?;
        let opts = self.apply_defaults(opts);
        let (bs, ck) = self.to_bytestream(key, body, len, opts.checksum).await?;
        let mut req = apply_write_opts!(c.put_object().bucket(&self.spec.bucket).key(self.full(key)), &opts)
            .content_length(len as i64)
            .body(bs);
        req = match (&ck, opts.checksum) {
            (Some((ChecksumAlgo::Crc32, v)), _) => req.checksum_crc32(v),
            (Some((ChecksumAlgo::Crc32c, v)), _) => req.checksum_crc32_c(v),
            (Some((ChecksumAlgo::Sha256, v)), _) => req.checksum_sha256(v),
            (None, Some(a)) => req.checksum_algorithm(sdk_algo(a)),
            (None, None) => req,
        };
        if opts.if_none_match {
            req = req.if_none_match("*");
        }
        let out = req
            .customize()
            .config_override(upload_config(len))
            .send()
            .await
            .map_err(|e| {
                self.classify(
                    e,
                    &Cx {
                        op: "PutObject",
                        key: Some(key),
                    },
                    &region,
                )
            })?;
        let ret = pick_checksum(out.checksum_crc32(), out.checksum_crc32_c(), out.checksum_sha256()).or(ck);
        Ok(PutResult {
            etag: out.e_tag().map(trim_etag),
            checksum: ret,
        })
    }

    async fn create_multipart(&self, key: &str, opts: &WriteOptions) -> StoreResult<String> {
        let (c, region) = self.client().await?;
        let opts = self.apply_defaults(opts);
        let mut req = apply_write_opts!(
            c.create_multipart_upload()
                .bucket(&self.spec.bucket)
                .key(self.full(key)),
            &opts
        );
        if let Some(a) = opts.checksum {
            req = req.checksum_algorithm(sdk_algo(a));
        }
        let out = req.send().await.map_err(|e| {
            self.classify(
                e,
                &Cx {
                    op: "CreateMultipartUpload",
                    key: Some(key),
                },
                &region,
            )
        })?;
        out.upload_id().map(str::to_string).ok_or_else(|| StoreError::Other {
            detail: "CreateMultipartUpload returned no upload id".into(),
        })
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
        let (c, region) = self.client().await?;
        let (bs, ck) = self.to_bytestream(key, body, len, checksum).await?;
        let mut req = c
            .upload_part()
            .bucket(&self.spec.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .part_number(part_number as i32)
            .content_length(len as i64)
            .body(bs);
        req = match (&ck, checksum) {
            (Some((ChecksumAlgo::Crc32, v)), _) => req.checksum_crc32(v),
            (Some((ChecksumAlgo::Crc32c, v)), _) => req.checksum_crc32_c(v),
            (Some((ChecksumAlgo::Sha256, v)), _) => req.checksum_sha256(v),
            (None, Some(a)) => req.checksum_algorithm(sdk_algo(a)),
            (None, None) => req,
        };
        let out = req
            .customize()
            .config_override(upload_config(len))
            .send()
            .await
            .map_err(|e| {
                self.classify(
                    e,
                    &Cx {
                        op: "UploadPart",
                        key: Some(key),
                    },
                    &region,
                )
            })?;
        let etag = out.e_tag().map(trim_etag).ok_or_else(|| StoreError::Transient {
            detail: format!("UploadPart {part_number} of `{key}` returned no ETag"),
        })?;
        let ret = pick_checksum(out.checksum_crc32(), out.checksum_crc32_c(), out.checksum_sha256()).or(ck);
        Ok(CompletedPart {
            part_number,
            etag,
            checksum: ret,
        })
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        opts: &WriteOptions,
    ) -> StoreResult<PutResult> {
        let (c, region) = self.client().await?;
        let parts: Vec<_> = parts
            .iter()
            .map(|p| {
                let mut b = aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(p.part_number as i32)
                    .e_tag(format!("\"{}\"", p.etag.trim_matches('"')));
                b = match &p.checksum {
                    Some((ChecksumAlgo::Crc32, v)) => b.checksum_crc32(v),
                    Some((ChecksumAlgo::Crc32c, v)) => b.checksum_crc32_c(v),
                    Some((ChecksumAlgo::Sha256, v)) => b.checksum_sha256(v),
                    None => b,
                };
                b.build()
            })
            .collect();
        let mut req = c
            .complete_multipart_upload()
            .bucket(&self.spec.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
        if opts.if_none_match {
            req = req.if_none_match("*");
        }
        let out = req.send().await.map_err(|e| {
            self.classify(
                e,
                &Cx {
                    op: "CompleteMultipartUpload",
                    key: Some(key),
                },
                &region,
            )
        })?;
        Ok(PutResult {
            etag: out.e_tag().map(trim_etag),
            checksum: pick_checksum(out.checksum_crc32(), out.checksum_crc32_c(), out.checksum_sha256()),
        })
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        let (c, region) = self.client().await?;
        c.abort_multipart_upload()
            .bucket(&self.spec.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| {
                self.classify(
                    e,
                    &Cx {
                        op: "AbortMultipartUpload",
                        key: Some(key),
                    },
                    &region,
                )
            })?;
        Ok(())
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<UploadInfo>> {
        let (c, region) = self.client().await?;
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let r = c
                .list_multipart_uploads()
                .bucket(&self.spec.bucket)
                .prefix(self.full(prefix))
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| {
                    self.classify(
                        e,
                        &Cx {
                            op: "ListMultipartUploads",
                            key: None,
                        },
                        &region,
                    )
                })?;
            for u in r.uploads() {
                if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                    out.push(UploadInfo {
                        key: self.rel(k),
                        upload_id: id.to_string(),
                        initiated_ms: dt_ms(u.initiated()),
                    });
                }
            }
            if !r.is_truncated().unwrap_or(false) {
                break;
            }
            let (nk, ni) = (
                r.next_key_marker().map(str::to_string),
                r.next_upload_id_marker().map(str::to_string),
            );
            if nk.is_none() || (nk == key_marker && ni == id_marker) {
                break;
            }
            key_marker = nk;
            id_marker = ni;
        }
        Ok(out)
    }

    async fn copy_object(&self, src: &CopySource, key: &str, opts: &WriteOptions) -> StoreResult<PutResult> {
        let (c, region) = self.client().await?;
        let opts = self.apply_defaults(opts);
        // `copy_keeps_metadata`: options without content headers / user metadata mean "keep the
        // source's" (MetadataDirective COPY), empty tags mean "keep the source's tags"
        // (TaggingDirective COPY). Storage class and SSE are sent either way.
        let keep_meta = opts.content_type.is_none()
            && opts.cache_control.is_none()
            && opts.content_disposition.is_none()
            && opts.content_encoding.is_none()
            && opts.content_language.is_none()
            && opts.expires.is_none()
            && opts.user_metadata.is_empty();
        let keep_tags = opts.tags.is_empty();
        let mut req = apply_write_opts!(
            c.copy_object()
                .bucket(&self.spec.bucket)
                .key(self.full(key))
                .copy_source(Self::copy_source_str(src))
                .metadata_directive(if keep_meta {
                    MetadataDirective::Copy
                } else {
                    MetadataDirective::Replace
                })
                .tagging_directive(if keep_tags {
                    TaggingDirective::Copy
                } else {
                    TaggingDirective::Replace
                }),
            &opts
        );
        if let Some(a) = opts.checksum {
            req = req.checksum_algorithm(sdk_algo(a));
        }
        if opts.if_none_match {
            req = req.if_none_match("*");
        }
        let out = req.send().await.map_err(|e| {
            self.classify(
                e,
                &Cx {
                    op: "CopyObject",
                    key: Some(key),
                },
                &region,
            )
        })?;
        let r = out.copy_object_result();
        Ok(PutResult {
            etag: r.and_then(|r| r.e_tag()).map(trim_etag),
            checksum: r.and_then(|r| pick_checksum(r.checksum_crc32(), r.checksum_crc32_c(), r.checksum_sha256())),
        })
    }

    async fn upload_part_copy(
        &self,
        src: &CopySource,
        key: &str,
        upload_id: &str,
        part_number: u32,
        range: (u64, u64),
    ) -> StoreResult<CompletedPart> {
        let (c, region) = self.client().await?;
        let out = c
            .upload_part_copy()
            .bucket(&self.spec.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .part_number(part_number as i32)
            .copy_source(Self::copy_source_str(src))
            .copy_source_range(format!("bytes={}-{}", range.0, range.1))
            .send()
            .await
            .map_err(|e| {
                self.classify(
                    e,
                    &Cx {
                        op: "UploadPartCopy",
                        key: Some(key),
                    },
                    &region,
                )
            })?;
        let r = out.copy_part_result();
        let etag = r
            .and_then(|r| r.e_tag())
            .map(trim_etag)
            .ok_or_else(|| StoreError::Transient {
                detail: format!("UploadPartCopy {part_number} of `{key}` returned no ETag"),
            })?;
        Ok(CompletedPart {
            part_number,
            etag,
            checksum: r.and_then(|r| pick_checksum(r.checksum_crc32(), r.checksum_crc32_c(), r.checksum_sha256())),
        })
    }

    async fn delete_many(&self, keys: &[String]) -> StoreResult<Vec<(String, StoreError)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (c, region) = self.client().await?;
        let mut failed = Vec::new();
        for batch in keys.chunks(1000) {
            let ids = batch
                .iter()
                .map(|k| {
                    ObjectIdentifier::builder()
                        .key(self.full(k))
                        .build()
                        .map_err(|e| StoreError::Other { detail: e.to_string() })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let del = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::Other { detail: e.to_string() })?;
            let out = c
                .delete_objects()
                .bucket(&self.spec.bucket)
                .delete(del)
                .send()
                .await
                .map_err(|e| {
                    self.classify(
                        e,
                        &Cx {
                            op: "DeleteObjects",
                            key: None,
                        },
                        &region,
                    )
                })?;
            for e in out.errors() {
                let k = self.rel(e.key().unwrap_or(""));
                let code = e.code().unwrap_or("-");
                let msg = e.message().unwrap_or("");
                let detail = format!("DeleteObjects: {code} {msg}");
                let err = match code {
                    "AccessDenied" => StoreError::AccessDenied { detail },
                    "SlowDown" | "Throttling" => StoreError::Throttled { detail },
                    "InternalError" | "ServiceUnavailable" => StoreError::Transient { detail },
                    "NoSuchKey" => continue,
                    _ => StoreError::Other { detail },
                };
                failed.push((k, err));
            }
        }
        Ok(failed)
    }

    async fn probe(&self) -> ProbeReport {
        let mut steps: Vec<(String, Result<String, StoreError>)> = Vec::new();
        let probe_region = self.spec.region.clone().unwrap_or_else(|| DISCOVERY_REGION.to_string());
        let c = match self.clients.client(&self.spec, &probe_region).await {
            Ok(c) => c,
            Err(e) => {
                steps.push(("credentials".into(), Err(e)));
                return ProbeReport { steps };
            }
        };
        // 1. endpoint reachable, bucket exists
        let dates = DateCapture::default();
        let res = c
            .head_bucket()
            .bucket(&self.spec.bucket)
            .customize()
            .config_override(Self::probe_override())
            .interceptor(dates.clone())
            .send()
            .await;
        let step1 = "reach endpoint / bucket exists (HeadBucket)".to_string();
        let region_found: Option<String>;
        match res {
            Ok(out) => {
                region_found = out.bucket_region().map(str::to_string);
                steps.push((
                    step1,
                    Ok(format!(
                        "ok: {} answers and bucket `{}` exists",
                        self.endpoint_label(),
                        self.spec.bucket
                    )),
                ));
            }
            Err(e) => {
                let hdr = e
                    .raw_response()
                    .and_then(|r| r.headers().get("x-amz-bucket-region"))
                    .map(str::to_string);
                let err = self.classify(
                    e,
                    &Cx {
                        op: "HeadBucket",
                        key: None,
                    },
                    &probe_region,
                );
                match (&err, hdr) {
                    (StoreError::WrongRegion { actual, .. }, _) => {
                        steps.push((
                            step1,
                            Ok(format!("ok: bucket `{}` exists (in {actual})", self.spec.bucket)),
                        ));
                        region_found = Some(actual.clone());
                    }
                    (_, Some(r)) if self.spec.region.is_none() => {
                        steps.push((step1, Ok(format!("ok: bucket `{}` exists (in {r})", self.spec.bucket))));
                        region_found = Some(r);
                    }
                    (StoreError::AccessDenied { .. }, _) => {
                        // HEAD responses have no body, so no error code: a listing says which
                        // (InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied…).
                        let precise = match self.list(&KeyRange::default(), 1).await {
                            Err(
                                e @ (StoreError::AccessDenied { .. }
                                | StoreError::ClockSkew { .. }
                                | StoreError::WrongRegion { .. }),
                            ) => e,
                            _ => err,
                        };
                        steps.push((step1, Err(precise)));
                        return ProbeReport { steps };
                    }
                    _ => {
                        steps.push((step1, Err(err)));
                        return ProbeReport { steps };
                    }
                }
            }
        }
        // clock skew from the Date header
        let skew = dates
            .0
            .lock()
            .unwrap()
            .clone()
            .and_then(|d| DateTime::from_str(&d, DateTimeFormat::HttpDate).ok())
            .map(|d| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|x| x.as_secs() as i64)
                    .unwrap_or(0);
                now - d.secs()
            });
        match skew {
            Some(s) if s.abs() > 15 * 60 => steps.push((
                "clock".into(),
                Err(StoreError::ClockSkew { detail: format!("this node's clock is {s} s off the store's Date header; S3 refuses requests skewed by more than 15 minutes") }),
            )),
            Some(s) if s.abs() > 60 => steps.push(("clock".into(), Ok(format!("warning: this node's clock is {s} s off the store's")))),
            Some(s) => steps.push(("clock".into(), Ok(format!("ok (within {} s of the store)", s.abs().max(1))))),
            None => {}
        }
        // 2. region
        let region_step = match (&self.spec.region, region_found) {
            (Some(conf), Some(actual)) if !actual.is_empty() && *conf != actual => {
                steps.push((
                    "region".into(),
                    Err(StoreError::WrongRegion {
                        bucket: self.spec.bucket.clone(),
                        configured: conf.clone(),
                        actual,
                    }),
                ));
                return ProbeReport { steps };
            }
            (Some(conf), _) => Ok(format!("{conf} (configured)")),
            (None, _) => match self.region().await {
                Ok(r) => Ok(format!("{r} (discovered)")),
                Err(e) => Err(e),
            },
        };
        let fatal = region_step.is_err();
        steps.push(("region".into(), region_step));
        if fatal {
            return ProbeReport { steps };
        }
        // 3. list, 4. head, 5. write + delete
        let wording = ProbeWording {
            empty: "no keys under the prefix",
            shown_prefix: &self.spec.prefix,
            read_only_note: "; usable as a source only",
        };
        probe_data_steps(self, &mut steps, &wording).await;
        ProbeReport { steps }
    }
}

/// The request a `put` with these options would send, as `(header, value)` pairs (for tests of
/// request shapes a test server cannot exercise, e.g. SSE-KMS).
#[doc(hidden)]
pub async fn put_request_headers(
    store: &S3Store,
    key: &str,
    opts: &WriteOptions,
) -> StoreResult<Vec<(String, String)>> {
    #[derive(Clone, Debug, Default)]
    struct Capture(Arc<Mutex<Vec<(String, String)>>>);
    impl Intercept for Capture {
        fn name(&self) -> &'static str {
            "bucketmesh-capture"
        }
        fn read_before_transmit(
            &self,
            ctx: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
            _rc: &RuntimeComponents,
            _cfg: &mut ConfigBag,
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let h = ctx
                .request()
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            *self.0.lock().unwrap() = h;
            Err("request captured; not sent".into())
        }
    }
    let (c, _) = store.client().await?;
    let opts = store.apply_defaults(opts);
    let cap = Capture::default();
    let req = apply_write_opts!(c.put_object().bucket(&store.spec.bucket).key(store.full(key)), &opts)
        .body(ByteStream::from_static(b"x"));
    let _ = req.customize().interceptor(cap.clone()).send().await;
    let h = cap.0.lock().unwrap().clone();
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(region: Option<&str>) -> S3Store {
        S3Store::new(
            S3LocationSpec {
                bucket: "bkt".into(),
                prefix: "pre/".into(),
                region: region.map(str::to_string),
                endpoint: Some("http://127.0.0.1:9".into()),
                path_style: true,
                credential_name: "c".into(),
                credential: CredentialSource::Static {
                    access_key_id: "AK".into(),
                    secret_access_key: Secret::new("SK"),
                    session_token: None,
                },
                defaults: WriteDefaults {
                    storage_class: None,
                    sse: Some(Sse::Kms {
                        key_id: Some("arn:aws:kms:us-east-1:111:key/abc".into()),
                    }),
                },
            },
            S3Clients::new(),
        )
    }

    #[test]
    fn copy_source_and_tagging_encoding() {
        assert_eq!(
            encode_copy_source("b", "a b/c+d%e?f#g/ü"),
            "b/a%20b/c%2Bd%25e%3Ff%23g/%C3%BC"
        );
        assert_eq!(encode_copy_source("b", "/lead//x/"), "b//lead//x/");
        assert_eq!(
            encode_tagging(&[("k 1".into(), "v&=".into()), ("a".into(), "".into())]),
            "k%201=v%26%3D&a="
        );
        assert_eq!(decode_list_key("a+b%2Bc%25"), "a b+c%");
        assert_eq!(
            region_in_message("the region 'us-east-1' is wrong; expecting 'eu-west-1'"),
            Some("eu-west-1".into())
        );
    }

    #[tokio::test]
    async fn kms_request_shape() {
        // SeaweedFS cannot do SSE-KMS: check the headers we would send.
        let st = store(Some("us-east-1"));
        let mut o = WriteOptions {
            storage_class: Some("STANDARD_IA".into()),
            ..Default::default()
        };
        o.tags.push(("team".into(), "a b".into()));
        o.user_metadata.insert("origin".into(), "x".into());
        let h = put_request_headers(&st, "k", &o).await.unwrap();
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("x-amz-server-side-encryption").as_deref(), Some("aws:kms"));
        assert_eq!(
            get("x-amz-server-side-encryption-aws-kms-key-id").as_deref(),
            Some("arn:aws:kms:us-east-1:111:key/abc")
        );
        assert_eq!(get("x-amz-storage-class").as_deref(), Some("STANDARD_IA"));
        assert_eq!(get("x-amz-tagging").as_deref(), Some("team=a%20b"));
        assert_eq!(get("x-amz-meta-origin").as_deref(), Some("x"));
        // a job-level SSE overrides the location default
        let o2 = WriteOptions {
            sse: Some(Sse::Aes256),
            ..Default::default()
        };
        let h = put_request_headers(&st, "k", &o2).await.unwrap();
        assert!(h
            .iter()
            .any(|(k, v)| k == "x-amz-server-side-encryption" && v == "AES256"));
        assert!(!h
            .iter()
            .any(|(k, _)| k == "x-amz-server-side-encryption-aws-kms-key-id"));
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        let st = store(Some("us-east-1"));
        let e = st.head("x").await.unwrap_err();
        assert!(matches!(e, StoreError::Unreachable { .. }), "{e:?}");
        assert!(e.is_retryable());
    }
}
