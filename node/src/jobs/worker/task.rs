//! What every task runner of the worker shares: the node context ([`Ctx`]: the node, its S3
//! clients, per-job bandwidth limits), a running task's [`Progress`] and how it ended ([`End`]),
//! and the per-job engine settings ([`job_filter`], [`copy_options`]). The runners (`run`,
//! `parts`, `report`) depend on this module and never on each other's internals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mesh_engine::filter::Filter;
use mesh_engine::ops::SharedLimits;
use mesh_engine::store::{ObjectStore, Sse};
use mesh_engine::throttle::ByteRateLimiter;
use mesh_engine::transfer::{CopyOptions, Retry};
use mesh_engine::verify::Verify;
use mesh_engine::{open_store, S3Clients};
use mesh_proto::v1::{self as pb, TaskOutcome};
use tokio_util::sync::CancellationToken;

use crate::node::Node;

/// Key prefix (relative to a job's paths) that jobs never copy or delete: where reports go when
/// the destination holds them.
pub const RESERVED_PREFIX: &str = ".bucketmesh/";

/// What every task runner of this node shares.
pub struct Ctx {
    pub node: Arc<Node>,
    pub clients: S3Clients,
    /// Per-job bandwidth buckets on this node.
    buckets: Mutex<HashMap<String, Arc<ByteRateLimiter>>>,
    /// Rung by a task that has news for the leader at once (planned tasks, its end), so the
    /// worker reports without waiting for the next heartbeat.
    pub wake: tokio::sync::Notify,
    /// When this worker started: a task assigned before may have run here before a restart.
    pub started_ms: u64,
    /// The node's object budget (`job.object_concurrency`) shared by its running tasks, and the
    /// value it was made for (a changed setting makes a new one).
    limits: Mutex<(u32, SharedLimits)>,
}

/// Streamed multipart objects a node copies at once, all tasks together: the memory bound of
/// streaming is this × `parts_in_flight` (4) × the part size (8 MiB) = 128 MiB per node.
pub const LARGE_OBJECTS_PER_NODE: usize = 4;
/// Objects a node streams at once (GET → PUT through the node), all tasks together, within
/// `job.object_concurrency`. Measured on P2 (200 × 1 MiB between two servers, in-process engine):
/// 4 → 107, 8 → 98, 16 → 121, 32 → 96, 64 → 39 MiB/s; server-side copies are not limited by it.
pub const STREAMS_PER_NODE: usize = 16;

impl Ctx {
    pub fn new(node: Arc<Node>, clients: S3Clients) -> Ctx {
        Ctx {
            node,
            clients,
            buckets: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            started_ms: crate::node::now_ms(),
            limits: Mutex::new((0, SharedLimits::new(1, 1, 1))),
        }
    }

    /// The node-wide budgets every COPY task draws from; returns them with the per-node object
    /// count (a task alone may use all of it).
    pub fn limits(&self) -> (usize, SharedLimits) {
        let n = mesh_raft::settings::u32_setting(&self.node.state, mesh_raft::settings::JOB_OBJECT_CONCURRENCY).max(1);
        let mut g = self.limits.lock().unwrap();
        if g.0 != n {
            *g = (
                n,
                SharedLimits::new(n as usize, STREAMS_PER_NODE, LARGE_OBJECTS_PER_NODE),
            );
        }
        (n as usize, g.1.clone())
    }

    /// Opens location `name` (credentials decrypted with the cluster data key).
    pub async fn store(&self, name: &str) -> Result<Arc<dyn ObjectStore>, String> {
        let key = crate::secrets::require_key(&self.node).map_err(|e| e.to_string())?;
        let spec = crate::secrets::resolve_location(&self.node.state, name, &key).map_err(|e| e.to_string())?;
        open_store(&spec, &self.clients).await.map_err(|e| e.to_string())
    }

    /// The job's bandwidth bucket on this node: its limit divided among the nodes running it.
    fn bucket(&self, job: &pb::Job) -> Option<Arc<ByteRateLimiter>> {
        let limit = job.spec.as_ref()?.bwlimit_bytes_per_sec;
        if limit == 0 {
            return None;
        }
        let nodes: std::collections::BTreeSet<u64> = self
            .node
            .state
            .job_tasks(&job.id)
            .iter()
            .filter(|t| t.state == pb::TaskState::Assigned as i32)
            .map(|t| t.node_id)
            .collect();
        let share = (limit / nodes.len().max(1) as u64).max(1);
        let mut b = self.buckets.lock().unwrap();
        let bucket = b
            .entry(job.id.clone())
            .or_insert_with(|| ByteRateLimiter::new(share, share.min(8 << 20)));
        bucket.set_rate(share);
        Some(bucket.clone())
    }
}

/// Whether `task` may have run before (on another node, or on this one before it restarted):
/// then part of its range can be done already beyond its checkpoint.
pub fn ran_before(ctx: &Ctx, task: &pb::Task) -> bool {
    task.epoch > 1 || task.attempts > 0 || task.has_checkpoint || task.assigned_at_ms < ctx.started_ms
}

/// The engine's filter for a job: its include/exclude rules after the reserved prefix.
pub fn job_filter(spec: &pb::JobSpec) -> Result<Filter, String> {
    let mut f = Filter::new()
        .exclude(&format!("{RESERVED_PREFIX}**"))
        .map_err(|e| e.to_string())?;
    for r in &spec.rules {
        f = if r.include {
            f.include(&r.glob)
        } else {
            f.exclude(&r.glob)
        }
        .map_err(|e| e.to_string())?;
    }
    Ok(f)
}

/// Least time between two retry events of one task (the retries in between are counted in the
/// next event).
pub const RETRY_EVENT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Copy options of a job's task `task`, whose retries become job events and warnings in
/// `progress`.
pub fn copy_options(ctx: &Ctx, job: &pb::Job, task: u64, progress: &Shared, cancel: &CancellationToken) -> CopyOptions {
    let spec = job.spec.clone().unwrap_or_default();
    let p = progress.clone();
    let job_id = job.id.clone();
    let on_retry = move |r: &Retry<'_>| {
        let mut p = p.lock().unwrap();
        let now = std::time::Instant::now();
        if p.last_retry_event
            .is_some_and(|t| now.duration_since(t) < RETRY_EVENT_EVERY)
        {
            p.retries_unreported += 1;
            return;
        }
        let more = match std::mem::take(&mut p.retries_unreported) {
            0 => String::new(),
            n => format!(" ({n} more retries since the last such event)"),
        };
        tracing::warn!(job = %job_id, task, what = r.what, attempt = r.attempt, error = %r.error, "retrying");
        p.events.push(format!(
            "task {task}: retrying {} (retry {} of {}, next in {} ms): {}{more}",
            r.what,
            r.attempt,
            r.of,
            r.delay.as_millis(),
            r.error
        ));
        p.warnings += 1;
        p.last_retry_event = Some(now);
    };
    let in_flight = progress.lock().unwrap().in_flight.clone();
    let mut o = CopyOptions {
        cancel: cancel.clone(),
        bandwidth: ctx.bucket(job),
        on_retry: Some(Arc::new(on_retry)),
        in_flight: Some(in_flight),
        ..Default::default()
    };
    if let Ok(v) = spec.verify.parse::<Verify>() {
        o.verify = v;
    }
    if !spec.storage_class.is_empty() {
        o.storage_class = Some(spec.storage_class.clone());
    }
    o.sse = match spec.sse.as_str() {
        "AES256" => Some(Sse::Aes256),
        "aws:kms" => Some(Sse::Kms {
            key_id: Some(spec.kms_key_id.clone()).filter(|k| !k.is_empty()),
        }),
        _ => None,
    };
    o
}

/// What a running task shares with the reporter.
#[derive(Default)]
pub struct Progress {
    pub counters: pb::TaskCounters,
    pub checkpoint: Option<String>,
    /// LIST: planned tasks not yet acknowledged, in key order.
    pub new_tasks: Vec<pb::NewTask>,
    /// The checkpoint that goes with the last of `new_tasks` (LIST).
    pub planned_to: Option<Option<String>>,
    pub failures: Vec<pb::ObjectFailure>,
    pub events: Vec<String>,
    pub parts: Vec<pb::PartEtag>,
    /// Warnings not yet reported.
    pub warnings: u32,
    /// When the last retry event was added, and the retries since that got none of their own.
    pub last_retry_event: Option<std::time::Instant>,
    pub retries_unreported: u64,
    /// Bytes of finished parts of objects still being copied (reported as
    /// `TaskCounters.bytes_in_flight`).
    pub in_flight: Arc<std::sync::atomic::AtomicU64>,
    /// Set when the task has ended.
    pub end: Option<End>,
}

/// How a task ended.
#[derive(Clone, Debug, Default)]
pub struct End {
    pub outcome: i32,
    pub error: String,
    pub upload_id: String,
    pub final_counters: Option<pb::JobCounters>,
    pub report_key: String,
    pub recopied: u64,
}

impl End {
    pub fn done() -> End {
        End {
            outcome: TaskOutcome::Done as i32,
            ..Default::default()
        }
    }
    pub fn retry(error: impl Into<String>) -> End {
        End {
            outcome: TaskOutcome::Retry as i32,
            error: error.into(),
            ..Default::default()
        }
    }
    pub fn failed(error: impl Into<String>) -> End {
        End {
            outcome: TaskOutcome::Failed as i32,
            error: error.into(),
            ..Default::default()
        }
    }
}

/// Shared handle of one running task.
pub type Shared = Arc<Mutex<Progress>>;
