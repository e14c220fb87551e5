//! Background workers: every periodic duty of a node is a named [`Worker`] with its own period,
//! started and stopped by one supervisor and observable by operators (`meshctl operator workers`,
//! `ClusterService.ListWorkers`).
//!
//! Two scopes:
//! - [`Scope::Node`]: runs on every node from start to shutdown (heartbeats, the data key, the
//!   cluster id file, the Raft gauges);
//! - [`Scope::Leader`]: runs only while this node leads. The supervisor starts these workers when
//!   the node gains leadership and cancels them when it loses it, so a deposed leader stops
//!   proposing within one observation of its metrics (and every proposal it still makes is
//!   refused by Raft anyway: only the current leader can commit).
//!
//! A worker's `work` is one pass of its duty. The runner calls it once at start and then every
//! `period` (a late pass delays the next, never piles up) — and, for a worker that
//! [`wakes_on_apply`](Worker::wakes_on_apply), also whenever an entry has been applied since its
//! last pass (passes never overlap; entries applied during a pass start one more pass), races it against the worker's stop
//! signal (a pass can wait on Raft, and a draining node must not hang on a cluster that lost its
//! quorum), and records the outcome. A [`WorkError::Retry`] is logged and retried on the next
//! pass; a [`WorkError::Fatal`] stops the node (the data directory belongs to another cluster,
//! this node holds the wrong data key).
//!
//! Adding a duty is adding a `Worker` and listing it in `run.rs`; nothing else changes.
//!
//! Caveats: workers of one scope run concurrently, so a duty must not rely on another having run
//! first in the same period (each duty re-reads the replicated state it needs). Leader workers
//! skip their pass until the cluster identity exists (`needs_cluster`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

use crate::node::{now_ms, Node};

/// How often the supervisor looks at the node's leadership besides reacting to Raft metrics.
const LEADERSHIP_POLL: Duration = Duration::from_millis(100);

/// Where a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// On every node, always.
    Node,
    /// Only on the leader, while it leads.
    Leader,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Node => "node",
            Scope::Leader => "leader",
        }
    }
}

/// How a pass of a worker failed.
#[derive(Debug)]
pub enum WorkError {
    /// Logged and retried on the next pass.
    Retry(String),
    /// The node cannot go on: it stops (exit code 1) with this message.
    Fatal(String),
}

impl From<crate::error::ApiError> for WorkError {
    fn from(e: crate::error::ApiError) -> Self {
        WorkError::Retry(e.to_string())
    }
}

/// One periodic duty.
#[tonic::async_trait]
pub trait Worker: Send + Sync + 'static {
    /// The name operators see (`job-scheduler`, `autopilot`, ...), unique per node.
    fn name(&self) -> &'static str;
    /// Where it runs.
    fn scope(&self) -> Scope;
    /// Time between the starts of two passes.
    fn period(&self) -> Duration;
    /// Whether a pass needs the cluster identity to exist (skipped until then). Default: leader
    /// duties do, node duties do not.
    fn needs_cluster(&self) -> bool {
        self.scope() == Scope::Leader
    }
    /// Whether an entry applied to this node's state machine also starts a pass (besides the
    /// period, which is then the safety net): for duties that react to replicated changes, such
    /// as the job scheduler assigning a submitted job's tasks. Default: no.
    fn wakes_on_apply(&self) -> bool {
        false
    }
    /// One pass of the duty.
    async fn work(&self, node: &Node) -> Result<(), WorkError>;
}

/// What operators see of one worker.
#[derive(Clone, Debug, Default)]
struct Info {
    scope: &'static str,
    period: Duration,
    running: bool,
    busy: bool,
    runs: u64,
    failures: u64,
    started_at_ms: u64,
    last_run_at_ms: u64,
    last_duration: Duration,
    last_error: String,
    last_error_at_ms: u64,
}

/// The status board of a node's workers, shared by the supervisor (writes) and the API (reads).
#[derive(Clone, Default)]
pub struct Workers {
    /// Guarded by a std mutex: it is held only to copy or update a few fields, never across an
    /// await.
    board: Arc<Mutex<BTreeMap<&'static str, Info>>>,
}

impl Workers {
    fn update(&self, name: &'static str, f: impl FnOnce(&mut Info)) {
        f(self.board.lock().unwrap().entry(name).or_default());
    }

    /// Every worker's status, by name.
    pub fn statuses(&self) -> Vec<pb::WorkerStatus> {
        self.board
            .lock()
            .unwrap()
            .iter()
            .map(|(name, i)| pb::WorkerStatus {
                name: name.to_string(),
                scope: i.scope.to_string(),
                state: match (i.running, i.busy) {
                    (false, _) => "stopped",
                    (true, true) => "busy",
                    (true, false) => "idle",
                }
                .to_string(),
                period_ms: i.period.as_millis() as u64,
                runs: i.runs,
                failures: i.failures,
                started_at_ms: i.started_at_ms,
                last_run_at_ms: i.last_run_at_ms,
                last_duration_ms: i.last_duration.as_millis() as u64,
                last_error: i.last_error.clone(),
                last_error_at_ms: i.last_error_at_ms,
            })
            .collect()
    }
}

/// Runs `workers` until the node shuts down: node-scope workers at once, leader-scope workers
/// while this node leads. Also keeps the leadership bookkeeping every leader duty relies on
/// (`Node::leading_since`, and a fresh liveness table on every leadership gain).
pub async fn run(node: Arc<Node>, workers: Vec<Arc<dyn Worker>>) {
    let mut tasks = tokio::task::JoinSet::new();
    for w in &workers {
        node.workers.update(w.name(), |i| {
            i.scope = w.scope().name();
            i.period = w.period();
        });
        if w.scope() == Scope::Node {
            tasks.spawn(drive(w.clone(), node.clone(), node.shutdown.clone()));
        }
    }
    let mut metrics = node.raft.metrics();
    let mut leading: Option<CancellationToken> = None;
    loop {
        let now_leader = node.is_leader();
        match (now_leader, leading.is_some()) {
            (true, false) => {
                *node.leading_since.lock().unwrap() = Some(Instant::now());
                // A new leader knows nothing of others' heartbeats: start everyone's clock now.
                node.liveness.lock().unwrap().clear();
                let stop = node.shutdown.child_token();
                for w in workers.iter().filter(|w| w.scope() == Scope::Leader) {
                    tasks.spawn(drive(w.clone(), node.clone(), stop.clone()));
                }
                tracing::info!("leader duties started");
                leading = Some(stop);
            }
            (false, true) => {
                *node.leading_since.lock().unwrap() = None;
                if let Some(stop) = leading.take() {
                    stop.cancel();
                }
                tracing::info!("leader duties stopped");
            }
            _ => {}
        }
        tokio::select! {
            _ = node.shutdown.cancelled() => break,
            r = metrics.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(LEADERSHIP_POLL) => {}
            Some(_) = tasks.join_next() => {}
        }
    }
    if let Some(stop) = leading.take() {
        stop.cancel();
    }
    while tasks.join_next().await.is_some() {}
}

/// Runs one worker until `stop`.
async fn drive(worker: Arc<dyn Worker>, node: Arc<Node>, stop: CancellationToken) {
    let name = worker.name();
    let board = node.workers.clone();
    board.update(name, |i| {
        i.running = true;
        i.started_at_ms = now_ms();
    });
    let mut ticker = tokio::time::interval(worker.period());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let on_apply = worker.wakes_on_apply();
    let mut applied = node.applied_watch();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
            alive = applied.changed(), if on_apply => {
                if !alive {
                    break;
                }
            }
        }
        if worker.needs_cluster() && node.state.cluster().is_none() {
            continue;
        }
        board.update(name, |i| i.busy = true);
        let started = Instant::now();
        let result = tokio::select! {
            _ = stop.cancelled() => break,
            r = worker.work(&node) => r,
        };
        board.update(name, |i| {
            i.busy = false;
            i.runs += 1;
            i.last_run_at_ms = now_ms();
            i.last_duration = started.elapsed();
            match &result {
                Ok(()) => i.last_error.clear(),
                Err(WorkError::Retry(e) | WorkError::Fatal(e)) => {
                    i.failures += 1;
                    i.last_error = e.clone();
                    i.last_error_at_ms = i.last_run_at_ms;
                }
            }
        });
        match result {
            Ok(()) => {}
            Err(WorkError::Retry(e)) => tracing::debug!(worker = name, error = %e, "worker pass failed; retrying"),
            Err(WorkError::Fatal(e)) => {
                tracing::error!("{e}");
                node.fatal(e);
                break;
            }
        }
    }
    board.update(name, |i| {
        i.running = false;
        i.busy = false;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_shows_state_and_last_error() {
        let w = Workers::default();
        w.update("b", |i| {
            i.scope = "leader";
            i.period = Duration::from_millis(500);
        });
        w.update("a", |i| {
            i.scope = "node";
            i.running = true;
            i.busy = true;
            i.runs = 3;
            i.failures = 1;
            i.last_error = "no quorum".into();
        });
        let s = w.statuses();
        assert_eq!(s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((s[0].state.as_str(), s[0].runs, s[0].failures), ("busy", 3, 1));
        assert_eq!(s[0].last_error, "no quorum");
        assert_eq!(
            (s[1].state.as_str(), s[1].scope.as_str(), s[1].period_ms),
            ("stopped", "leader", 500)
        );
    }
}
