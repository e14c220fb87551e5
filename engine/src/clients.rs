//! Cached `aws_sdk_s3::Client`s, one per (credential, region, endpoint, path style).
//!
//! - One HTTPS client (hyper + rustls with *ring*; aws-lc is never linked) is shared by every S3
//!   client, so connections are pooled per endpoint across locations.
//! - Credentials: [`CredentialSource::DefaultChain`] is the SDK default chain (env, profile, web
//!   identity, ECS, IMDS); `Static` keys (with an optional session token); `AssumeRole` is
//!   `aws_config::sts::AssumeRoleProvider` on top of the `via` credential (recursively).
//! - Non-AWS endpoints get `request_checksum_calculation(WhenRequired)` and
//!   `response_checksum_validation(WhenRequired)`: the 2025 SDK defaults break S3-compatible
//!   stores. AWS keeps the SDK defaults.
//! - Retries: the SDK's standard mode with [`MAX_ATTEMPTS`] attempts, exponential backoff with
//!   jitter from 200 ms up to 20 s (throttling, 5xx, timeouts, connection errors). Body streams
//!   are *not* retried by the SDK; callers retry a part/object on a retryable [`StoreError`].
//! - Timeouts: connect [`CONNECT_TIMEOUT`], socket read [`READ_TIMEOUT`]; no whole-operation
//!   timeout (it would cut large transfers). The SDK's read timeout runs from sending a request
//!   to its response, so for an upload it includes sending the body: PutObject and UploadPart
//!   get [`upload_timeouts`] instead, which allow the body to go at [`MIN_UPLOAD_RATE`] (a node
//!   streaming 16 objects over a 64 Mbit/s link sends each at ~0.5 MiB/s; with 60 s, every 32 MiB
//!   PUT timed out and was retried forever). Stalled-stream protection is on with a grace period
//!   of [`STALL_GRACE`] (generous, so a bandwidth-limited consumer does not trip it).
//!
//! The cache key holds the credential *name* plus a SHA-256 fingerprint of its content, so a
//! credential changed under the same name gets a fresh client. Secrets are never logged: the
//! fingerprint is a hash, and [`Secret`](super::store::Secret) prints `***`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedCredentialsProvider, SharedHttpClient, StalledStreamProtectionConfig,
};
use aws_smithy_http_client::tls;
use sha2::{Digest, Sha256};

use super::store::{CredentialSource, S3LocationSpec, StoreError, StoreResult};

/// Attempts per request (1 + retries) made by the SDK.
pub const MAX_ATTEMPTS: u32 = 8;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
pub const STALL_GRACE: Duration = Duration::from_secs(120);
/// The slowest an upload body may go before its request times out (stalled-stream protection
/// still ends a body that stops moving after [`STALL_GRACE`]).
pub const MIN_UPLOAD_RATE: u64 = 64 << 10;

/// Timeouts of a request that uploads `len` bytes: [`READ_TIMEOUT`] for the response plus the
/// time the body takes at [`MIN_UPLOAD_RATE`].
pub fn upload_timeouts(len: u64) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT + Duration::from_secs(len / MIN_UPLOAD_RATE))
        .build()
}
/// Region used to talk to a bucket whose region is not known yet.
pub const DISCOVERY_REGION: &str = "us-east-1";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    credential_name: String,
    credential_fingerprint: [u8; 32],
    region: String,
    endpoint: Option<String>,
    path_style: bool,
}

struct Inner {
    http: SharedHttpClient,
    clients: tokio::sync::Mutex<HashMap<Key, aws_sdk_s3::Client>>,
}

/// A cache of S3 clients; cheap to clone (shared).
#[derive(Clone)]
pub struct S3Clients {
    inner: Arc<Inner>,
}

impl Default for S3Clients {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for S3Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Clients").finish_non_exhaustive()
    }
}

/// Normalizes an endpoint URL for comparisons and cache keys (no trailing '/').
pub fn normalize_endpoint(e: &str) -> String {
    e.trim_end_matches('/').to_string()
}

fn fingerprint(c: &CredentialSource) -> [u8; 32] {
    fn feed(h: &mut Sha256, c: &CredentialSource) {
        match c {
            CredentialSource::DefaultChain => h.update(b"default\0"),
            CredentialSource::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                h.update(b"static\0");
                h.update(access_key_id.as_bytes());
                h.update(b"\0");
                h.update(secret_access_key.expose().as_bytes());
                h.update(b"\0");
                if let Some(t) = session_token {
                    h.update(t.expose().as_bytes());
                }
                h.update(b"\0");
            }
            CredentialSource::AssumeRole {
                role_arn,
                external_id,
                via,
            } => {
                h.update(b"assume\0");
                h.update(role_arn.as_bytes());
                h.update(b"\0");
                h.update(external_id.as_deref().unwrap_or("").as_bytes());
                h.update(b"\0");
                feed(h, via);
            }
        }
    }
    let mut h = Sha256::new();
    feed(&mut h, c);
    h.finalize().into()
}

impl S3Clients {
    pub fn new() -> S3Clients {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .build_https();
        S3Clients {
            inner: Arc::new(Inner {
                http,
                clients: tokio::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The shared HTTP client (hyper + rustls/ring).
    pub fn http_client(&self) -> SharedHttpClient {
        self.inner.http.clone()
    }

    /// The client for `spec`'s credential and endpoint in `region` (cached).
    pub async fn client(&self, spec: &S3LocationSpec, region: &str) -> StoreResult<aws_sdk_s3::Client> {
        let key = Key {
            credential_name: spec.credential_name.clone(),
            credential_fingerprint: fingerprint(&spec.credential),
            region: region.to_string(),
            endpoint: spec.endpoint.as_deref().map(normalize_endpoint),
            path_style: spec.path_style,
        };
        let mut map = self.inner.clients.lock().await;
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let creds = self.credentials_provider(&spec.credential, region).await?;
        let client =
            aws_sdk_s3::Client::from_conf(self.s3_config(creds, region, key.endpoint.as_deref(), spec.path_style));
        map.insert(key, client.clone());
        Ok(client)
    }

    /// Number of cached clients (for tests and metrics).
    pub async fn cached(&self) -> usize {
        self.inner.clients.lock().await.len()
    }

    fn s3_config(
        &self,
        creds: SharedCredentialsProvider,
        region: &str,
        endpoint: Option<&str>,
        path_style: bool,
    ) -> aws_sdk_s3::Config {
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(creds)
            .http_client(self.inner.http.clone())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .build(),
            )
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .grace_period(STALL_GRACE)
                    .build(),
            )
            .force_path_style(path_style);
        if let Some(e) = endpoint {
            b = b
                .endpoint_url(e)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        b.build()
    }

    /// An `SdkConfig` for the default chain and STS (no env endpoint overrides matter for S3: the
    /// S3 config is built from scratch).
    async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(self.inner.http.clone())
            .region(Region::new(region.to_string()))
            .load()
            .await
    }

    fn credentials_provider<'a>(
        &'a self,
        src: &'a CredentialSource,
        region: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<SharedCredentialsProvider>> + Send + 'a>> {
        Box::pin(async move {
            match src {
                CredentialSource::Static {
                    access_key_id,
                    secret_access_key,
                    session_token,
                } => {
                    let c = Credentials::new(
                        access_key_id.clone(),
                        secret_access_key.expose().to_string(),
                        session_token.as_ref().map(|t| t.expose().to_string()),
                        None,
                        "bucketmesh-static",
                    );
                    Ok(SharedCredentialsProvider::new(c))
                }
                CredentialSource::DefaultChain => {
                    let conf = self.sdk_config(region).await;
                    conf.credentials_provider().ok_or_else(|| StoreError::AccessDenied {
                        detail: "the default credential chain found no credentials source".into(),
                    })
                }
                CredentialSource::AssumeRole {
                    role_arn,
                    external_id,
                    via,
                } => {
                    let base = self.credentials_provider(via, region).await?;
                    let conf = self.sdk_config(region).await;
                    let mut b = aws_config::sts::AssumeRoleProvider::builder(role_arn.clone())
                        .session_name("bucketmesh")
                        .region(Region::new(region.to_string()))
                        .configure(&conf);
                    if let Some(e) = external_id {
                        b = b.external_id(e.clone());
                    }
                    let p = b.build_from_provider(base).await;
                    Ok(SharedCredentialsProvider::new(p))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Secret;

    fn spec(secret: &str) -> S3LocationSpec {
        S3LocationSpec {
            bucket: "b".into(),
            prefix: String::new(),
            region: Some("us-east-1".into()),
            endpoint: Some("http://127.0.0.1:1/".into()),
            path_style: true,
            credential_name: "c".into(),
            credential: CredentialSource::Static {
                access_key_id: "AK".into(),
                secret_access_key: Secret::new(secret),
                session_token: None,
            },
            defaults: Default::default(),
        }
    }

    #[tokio::test]
    async fn cache_is_keyed_by_credential_content_region_and_endpoint() {
        let c = S3Clients::new();
        c.client(&spec("s1"), "us-east-1").await.unwrap();
        c.client(&spec("s1"), "us-east-1").await.unwrap();
        assert_eq!(c.cached().await, 1);
        c.client(&spec("s2"), "us-east-1").await.unwrap();
        assert_eq!(c.cached().await, 2);
        c.client(&spec("s1"), "eu-west-1").await.unwrap();
        assert_eq!(c.cached().await, 3);
        let mut s = spec("s1");
        s.endpoint = Some("http://127.0.0.1:1".into());
        c.client(&s, "us-east-1").await.unwrap();
        assert_eq!(c.cached().await, 3, "trailing slash is normalized");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = spec("very-secret-value");
        assert!(!format!("{s:?}").contains("very-secret-value"));
    }
}
