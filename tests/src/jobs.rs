//! Helpers of the distributed-job end-to-end tests (`tests/tests/jobs_e2e.rs`):
//!
//! - [`S3`]: a small client of a SeaweedFS instance through the engine's own `S3Store` (buckets,
//!   seeding many objects at once, listings, reading bodies, open multipart uploads). It owns a
//!   tokio runtime, so tests stay synchronous like the rest of the harness.
//! - [`add_s3_locations`]: a static credential (its secret from the environment, never on the
//!   command line) and S3 locations on that instance, added with the real `meshctl`.
//! - [`Job`]: typed view of `meshctl job show -o json`; [`show`], [`wait_job`], [`report`],
//!   [`logs`] and [`submit`] wrap the real `meshctl` commands.
//! - [`job_client`]: a direct `mesh.v1.JobService` gRPC client (TLS + bearer token).
//! - [`content`]: deterministic object bodies derived from the key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use mesh_engine::s3::S3Store;
use mesh_engine::store::{
    Body, CredentialSource, KeyRange, ObjectStore, S3LocationSpec, Secret, UploadInfo, WriteDefaults, WriteOptions,
};
use mesh_engine::{checksum, verify, S3Clients};
use mesh_proto::v1::job_service_client::JobServiceClient;
use serde_json::Value;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::cluster::{TestCluster, CTL_TIMEOUT};
use crate::ctl::u64_of;
use crate::proc::{self, ProcOutput};
use crate::wait::wait_for;

/// Prefix (in a job's destination) where reports go; jobs never copy or delete there.
pub const RESERVED_PREFIX: &str = ".bucketmesh/";

/// `size` deterministic bytes for `key` (`version` changes them all).
pub fn content(key: &str, size: usize, version: u8) -> Vec<u8> {
    // FNV-1a of the key seeds a cheap generator: different keys, different bytes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([version]) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = Vec::with_capacity(size);
    let mut x = h | 1;
    while out.len() < size {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        let n = (size - out.len()).min(8);
        out.extend_from_slice(&bytes[..n]);
    }
    out
}

/// One object as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub size: u64,
    pub etag: Option<String>,
}

/// A SeaweedFS endpoint seen through the engine's `S3Store`.
pub struct S3 {
    rt: tokio::runtime::Runtime,
    clients: S3Clients,
    endpoint: String,
}

fn spec(endpoint: &str, bucket: &str) -> S3LocationSpec {
    S3LocationSpec {
        bucket: bucket.into(),
        prefix: String::new(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        path_style: true,
        credential_name: "tests".into(),
        credential: CredentialSource::Static {
            access_key_id: "any".into(),
            secret_access_key: Secret::new("any-secret"),
            session_token: None,
        },
        defaults: WriteDefaults::default(),
    }
}

fn body_of(d: Vec<u8>) -> Body {
    Box::pin(futures::stream::iter([Ok(Bytes::from(d))]))
}

/// Objects written or read at once.
const IO_CONCURRENCY: usize = 32;

impl S3 {
    pub fn new(endpoint: &str) -> S3 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("mesh-tests-s3")
            .build()
            .expect("tokio runtime");
        S3 {
            rt,
            clients: S3Clients::new(),
            endpoint: endpoint.to_string(),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn store(&self, bucket: &str) -> Arc<S3Store> {
        Arc::new(S3Store::new(spec(&self.endpoint, bucket), self.clients.clone()))
    }

    /// Creates a bucket named `{what}-{pid}-{n}` (unique in this process) and returns its name.
    pub fn bucket(&self, what: &str) -> String {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "{what}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let sp = spec(&self.endpoint, &name);
        self.rt.block_on(async {
            let c = self
                .clients
                .client(&sp, "us-east-1")
                .await
                .unwrap_or_else(|e| panic!("S3 client for {name}: {e}"));
            c.create_bucket()
                .bucket(&name)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
        });
        name
    }

    /// Writes every `(key, body)` to `bucket` (several at once; panics on error).
    pub fn put_all(&self, bucket: &str, objects: &BTreeMap<String, Vec<u8>>) {
        let st = self.store(bucket);
        self.rt.block_on(async {
            futures::stream::iter(objects.iter())
                .map(|(k, d)| {
                    let st = st.clone();
                    async move {
                        st.put(k, body_of(d.clone()), d.len() as u64, &WriteOptions::default())
                            .await
                            .map_err(|e| format!("put {bucket}/{k}: {e}"))
                    }
                })
                .buffer_unordered(IO_CONCURRENCY)
                .try_collect::<Vec<_>>()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        });
    }

    /// Every object of `bucket` under `prefix` except the reserved `.bucketmesh/` prefix.
    pub fn list(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Listed> {
        self.list_all(bucket, prefix)
            .into_iter()
            .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
            .collect()
    }

    /// Every object of `bucket` under `prefix` (the reserved prefix included).
    pub fn list_all(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Listed> {
        let st = self.store(bucket);
        self.rt.block_on(async {
            let mut out = BTreeMap::new();
            let mut range = KeyRange {
                prefix: prefix.to_string(),
                ..Default::default()
            };
            loop {
                let page = st
                    .list(&range, 1000)
                    .await
                    .unwrap_or_else(|e| panic!("list {bucket}/{prefix}: {e}"));
                for o in page.objects {
                    out.insert(
                        o.key,
                        Listed {
                            size: o.size,
                            etag: o.etag,
                        },
                    );
                }
                match page.next_start_after {
                    Some(s) => range.start_after = Some(s),
                    None => return out,
                }
            }
        })
    }

    /// The bodies of `keys` in `bucket` (None: the object does not exist).
    pub fn read_all(&self, bucket: &str, keys: &[String]) -> BTreeMap<String, Option<Vec<u8>>> {
        let st = self.store(bucket);
        self.rt.block_on(async {
            futures::stream::iter(keys.iter())
                .map(|k| {
                    let st = st.clone();
                    async move {
                        let got = match st.get(k, None).await {
                            Ok(mut b) => {
                                let mut v = Vec::new();
                                while let Some(c) = b.next().await {
                                    v.extend_from_slice(&c.unwrap_or_else(|e| panic!("get {bucket}/{k}: {e}")));
                                }
                                Some(v)
                            }
                            Err(mesh_engine::store::StoreError::NotFound { .. }) => None,
                            Err(e) => panic!("get {bucket}/{k}: {e}"),
                        };
                        (k.clone(), got)
                    }
                })
                .buffer_unordered(IO_CONCURRENCY)
                .collect::<BTreeMap<_, _>>()
                .await
        })
    }

    /// The multipart uploads open in `bucket`.
    pub fn uploads(&self, bucket: &str) -> Vec<UploadInfo> {
        let st = self.store(bucket);
        self.rt.block_on(async {
            st.list_multipart_uploads("")
                .await
                .unwrap_or_else(|e| panic!("list multipart uploads of {bucket}: {e}"))
        })
    }

    /// Asserts that `bucket` holds exactly `expected` (reserved prefix aside): same keys, sizes
    /// and bytes. An object whose listed ETag is a plain MD5 is checked against the MD5 of the
    /// expected bytes; the others (multipart ETags), and every 20th object whatever its ETag (an
    /// ETag is metadata a store may copy without the bytes), are read and compared byte for
    /// byte. Panics naming the first differences; returns how many objects were read.
    pub fn assert_holds(&self, bucket: &str, expected: &BTreeMap<String, Vec<u8>>) -> usize {
        let listed = self.list(bucket, "");
        let missing: Vec<&String> = expected.keys().filter(|k| !listed.contains_key(*k)).collect();
        let extra: Vec<&String> = listed.keys().filter(|k| !expected.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "bucket {bucket}: {} missing (first {:?}), {} unexpected (first {:?})",
            missing.len(),
            &missing[..missing.len().min(5)],
            extra.len(),
            &extra[..extra.len().min(5)]
        );
        let wrong_size: Vec<(&String, u64, usize)> = expected
            .iter()
            .filter(|(k, d)| listed[*k].size != d.len() as u64)
            .map(|(k, d)| (k, listed[k].size, d.len()))
            .take(5)
            .collect();
        assert!(
            wrong_size.is_empty(),
            "bucket {bucket}: wrong sizes (key, got, want): {wrong_size:?}"
        );
        let mut to_read = Vec::new();
        let mut wrong_md5 = Vec::new();
        for (n, (k, d)) in expected.iter().enumerate() {
            match listed[k]
                .etag
                .as_deref()
                .map(|e| e.trim_matches('"').to_ascii_lowercase())
            {
                Some(e) if verify::is_plain_md5(&e) => {
                    if e != checksum::md5_hex(d) {
                        wrong_md5.push(k);
                    }
                    if n.is_multiple_of(20) {
                        to_read.push(k.clone());
                    }
                }
                _ => to_read.push(k.clone()),
            }
        }
        assert!(
            wrong_md5.is_empty(),
            "bucket {bucket}: {} objects whose ETag is not the MD5 of their source bytes (first {:?})",
            wrong_md5.len(),
            &wrong_md5[..wrong_md5.len().min(5)]
        );
        let bodies = self.read_all(bucket, &to_read);
        let wrong: Vec<&String> = to_read
            .iter()
            .filter(|k| bodies[*k].as_deref() != Some(expected[*k].as_slice()))
            .take(5)
            .collect();
        assert!(wrong.is_empty(), "bucket {bucket}: wrong bytes in {wrong:?}");
        to_read.len()
    }
}

// ------------------------------------------------------------------------------ meshctl

/// meshctl against node `i` (`-o json`) with extra environment variables and a deadline.
pub fn ctl_env(c: &TestCluster, i: usize, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> ProcOutput {
    let mut cmd = c.ctl_command(i, &c.token());
    cmd.env_remove("MESH_SECRET_ACCESS_KEY")
        .env_remove("MESH_SESSION_TOKEN")
        .args(["-o", "json"])
        .args(args)
        .envs(env.iter().copied());
    proc::run(cmd, timeout)
}

/// Sets cluster settings through node `i` (panics on failure).
pub fn set_settings(c: &TestCluster, i: usize, settings: &[(&str, &str)]) {
    for (name, value) in settings {
        c.set_setting(i, name, value)
            .unwrap_or_else(|o| panic!("setting set {name} {value}: {}", o.describe()));
    }
}

/// Adds credential `sw` (static keys; the secret from the environment) and one S3 location per
/// `(name, bucket, region)` on `endpoint` (path-style), through node `i`.
pub fn add_s3_locations(c: &TestCluster, i: usize, endpoint: &str, locations: &[(&str, &str, &str)]) {
    // Secrets are encrypted with the cluster data key, which every node (every worker) needs.
    wait_for(
        "every node to hold the cluster data key",
        Duration::from_secs(30),
        || {
            let missing: Vec<usize> = (0..c.len())
                .filter(|&n| !c.node(n).data_dir.join("data-key").exists())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("no data key yet on nodes {missing:?}"))
            }
        },
    );
    let o = ctl_env(
        c,
        i,
        &["credential", "add", "sw", "--access-key-id", "meshjobs"],
        &[("MESH_SECRET_ACCESS_KEY", "jobs-e2e-secret")],
        CTL_TIMEOUT,
    );
    assert!(o.success(), "{}", o.describe());
    for (name, bucket, region) in locations {
        add_s3_location(c, i, endpoint, name, bucket, region);
    }
}

/// Adds S3 location `name` on `bucket` at `endpoint` (path-style, credential `sw`).
pub fn add_s3_location(c: &TestCluster, i: usize, endpoint: &str, name: &str, bucket: &str, region: &str) {
    let o = c.ctl(
        i,
        &[
            "location",
            "add",
            name,
            "--s3",
            bucket,
            "--endpoint",
            endpoint,
            "--path-style",
            "--region",
            region,
            "--credential",
            "sw",
        ],
    );
    assert!(o.success(), "{}", o.describe());
}

/// `job show -o json`, typed (lenient: absent fields are 0 / empty).
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub state: String,
    pub counters: Counters,
    pub tasks_running: u64,
    pub tasks_pending: u64,
    pub tasks_done: u64,
    pub tasks_total: u64,
    pub nodes_running: Vec<u64>,
    pub nodes_used: Vec<u64>,
    pub recopied: u64,
    pub warnings: u64,
    pub error: String,
    pub report_key: String,
    pub raw: Value,
}

/// A job's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub objects_total: u64,
    pub bytes_total: u64,
    pub objects_done: u64,
    pub bytes_done: u64,
    pub objects_skipped: u64,
    pub objects_failed: u64,
    pub objects_deleted: u64,
}

fn ids(v: &Value, key: &str) -> Vec<u64> {
    v.get(key)
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok())))
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(|s| s.as_str()).unwrap_or_default().to_string()
}

impl Job {
    pub fn from_json(v: Value) -> Job {
        let c = v.get("counters").cloned().unwrap_or(Value::Null);
        Job {
            id: text(&v, "id"),
            state: text(&v, "state"),
            counters: Counters {
                objects_total: u64_of(&c, "objects_total"),
                bytes_total: u64_of(&c, "bytes_total"),
                objects_done: u64_of(&c, "objects_done"),
                bytes_done: u64_of(&c, "bytes_done"),
                objects_skipped: u64_of(&c, "objects_skipped"),
                objects_failed: u64_of(&c, "objects_failed"),
                objects_deleted: u64_of(&c, "objects_deleted"),
            },
            tasks_running: u64_of(&v, "tasks_running"),
            tasks_pending: u64_of(&v, "tasks_pending"),
            tasks_done: u64_of(&v, "tasks_done"),
            tasks_total: u64_of(&v, "tasks_total"),
            nodes_running: ids(&v, "nodes_running"),
            nodes_used: ids(&v, "nodes_used"),
            recopied: u64_of(&v, "recopied"),
            warnings: u64_of(&v, "warnings"),
            error: text(&v, "error"),
            report_key: text(&v, "report_key"),
            raw: v,
        }
    }

    /// Completed, completed_with_warnings, failed or cancelled.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.state.as_str(),
            "completed" | "completed_with_warnings" | "failed" | "cancelled"
        )
    }

    /// One line for messages.
    pub fn summary(&self) -> String {
        let c = &self.counters;
        format!(
            "{} {}: done {}/{} skipped {} failed {} deleted {}; tasks running {} pending {} done {}/{}; nodes running {:?} used {:?}; recopied {}; error {:?}",
            self.id,
            self.state,
            c.objects_done,
            c.objects_total,
            c.objects_skipped,
            c.objects_failed,
            c.objects_deleted,
            self.tasks_running,
            self.tasks_pending,
            self.tasks_done,
            self.tasks_total,
            self.nodes_running,
            self.nodes_used,
            self.recopied,
            self.error
        )
    }
}

/// `cp|mv|sync ARGS` (without `--wait`) through node `i`: the new job's id.
pub fn submit(c: &TestCluster, i: usize, args: &[&str]) -> String {
    let o = c.ctl(i, args);
    assert!(o.success(), "{}", o.describe());
    let v = o.json().unwrap_or_else(|e| panic!("{e}"));
    let id = text(&v, "id");
    assert!(id.starts_with("j-"), "no job id in {}", o.describe());
    id
}

/// `job show ID` through node `i`.
pub fn show(c: &TestCluster, i: usize, id: &str) -> Result<Job, String> {
    let o = c.ctl(i, &["job", "show", id]);
    if !o.success() {
        return Err(o.describe());
    }
    o.json().map(Job::from_json)
}

/// `job show ID` through the first of `nodes` that answers.
pub fn show_any(c: &TestCluster, nodes: &[usize], id: &str) -> Result<Job, String> {
    let mut errs = Vec::new();
    for &i in nodes {
        match show(c, i, id) {
            Ok(j) => return Ok(j),
            Err(e) => errs.push(e),
        }
    }
    Err(errs.join("\n"))
}

/// Polls `job show` through `nodes` until `pred` holds; returns that view.
pub fn wait_job(
    c: &TestCluster,
    nodes: &[usize],
    id: &str,
    desc: &str,
    timeout: Duration,
    mut pred: impl FnMut(&Job) -> bool,
) -> Job {
    wait_for(&format!("job {id}: {desc}"), timeout, || {
        let j = show_any(c, nodes, id)?;
        if pred(&j) {
            Ok(j)
        } else {
            Err(j.summary())
        }
    })
}

/// Waits until the job ends (any final state).
pub fn wait_end(c: &TestCluster, nodes: &[usize], id: &str, timeout: Duration) -> Job {
    wait_job(c, nodes, id, "to end", timeout, |j| j.is_terminal())
}

/// One line of a job report.
#[derive(Clone, Debug, Default)]
pub struct ReportLine {
    pub key: String,
    pub dst_key: String,
    pub outcome: String,
    pub bytes: u64,
    pub etag: String,
    pub error: String,
    /// How many times the object was written (absent = at most once).
    pub writes: u64,
}

/// `job report ID` through node `i`, parsed line by line.
pub fn report(c: &TestCluster, i: usize, id: &str) -> Vec<ReportLine> {
    let o = c.ctl_with(i, &c.token(), &["job", "report", id], Duration::from_secs(60));
    assert!(o.success(), "{}", o.describe());
    o.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("report line {l:?}: {e}"));
            ReportLine {
                key: text(&v, "key"),
                dst_key: text(&v, "dst_key"),
                outcome: text(&v, "outcome"),
                bytes: u64_of(&v, "bytes"),
                etag: text(&v, "etag"),
                error: text(&v, "error"),
                writes: u64_of(&v, "writes"),
            }
        })
        .collect()
}

/// One event of `job logs`.
#[derive(Clone, Debug)]
pub struct Event {
    pub at_ms: u64,
    pub node_id: u64,
    pub text: String,
}

/// `job logs ID` through node `i`.
pub fn logs(c: &TestCluster, i: usize, id: &str) -> Vec<Event> {
    let o = c.ctl(i, &["job", "logs", id]);
    assert!(o.success(), "{}", o.describe());
    let v = o.json().unwrap_or_else(|e| panic!("{e}"));
    v.get("events")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .map(|e| Event {
                    at_ms: u64_of(e, "at_ms"),
                    node_id: u64_of(e, "node_id"),
                    text: text(e, "text"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `job list` through node `i`: the ids, newest first.
pub fn job_ids(c: &TestCluster, i: usize) -> Vec<String> {
    let o = c.ctl(i, &["job", "list"]);
    assert!(o.success(), "{}", o.describe());
    let v = o.json().unwrap_or_else(|e| panic!("{e}"));
    v.get("jobs")
        .and_then(|j| j.as_array())
        .map(|a| a.iter().map(|j| text(j, "id")).collect())
        .unwrap_or_default()
}

/// Node ids that logged `running task` for a task of `kind` (e.g. `part-copy`) of job `id`.
pub fn nodes_that_ran(c: &TestCluster, id: &str, kind: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for i in 0..c.len() {
        let log = c.log_text(i);
        let ran = log.lines().any(|l| {
            l.contains("running task")
                && l.contains(id)
                && (l.contains(&format!("kind={kind}")) || l.contains(&format!("kind=\"{kind}\"")))
        });
        if ran {
            out.push(c.node_id(i));
        }
    }
    out
}

// ------------------------------------------------------------------------------ gRPC

/// Adds the bearer token to every request of a [`JobClient`].
pub type AuthInterceptor = Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

/// A `mesh.v1.JobService` client of node `i` (TLS with the cluster CA, root token).
pub type JobClient = JobServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// Connects a [`JobClient`] to node `i`.
pub fn job_client(c: &TestCluster, i: usize) -> JobClient {
    let addr = c.node(i).listen;
    let ch = c
        .rt()
        .block_on(crate::grpc::tls_channel(addr, &c.ca()))
        .unwrap_or_else(|e| panic!("gRPC connect to node {i} ({addr}): {e:#}"));
    let auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
        format!("Bearer {}", c.token()).parse().expect("token is ASCII");
    let interceptor: AuthInterceptor = Box::new(move |mut req: tonic::Request<()>| {
        req.metadata_mut().insert("authorization", auth.clone());
        Ok(req)
    });
    JobServiceClient::with_interceptor(ch, interceptor)
}
