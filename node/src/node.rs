//! The running node: its Raft handle, its view of the applied state, its connections to peers,
//! and the two operations every service builds on — [`Node::write`] (propose a command through
//! the leader, wherever it is) and [`Node::read_barrier`] (make a read linearizable, or say it is
//! local).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mesh_proto::v1::{self as pb, ReadConsistency};
use mesh_raft::{MeshRaft, NodeId, StateReader};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{RaftMetrics, ServerState};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::net::peers::{is_transport_failure, Peers};

/// How long a write or a linearizable read waits for a leader before giving up with NO_LEADER.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Timeout of one forwarded call to the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(12);
/// Longest the leader waits for one of its proposals to commit and apply.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest command proposed to the replicated log (requests are bounded well below this; this
/// guards every path, the node's own proposals included).
pub const MAX_ENTRY_BYTES: usize = 8 << 20;

/// meshd version, reported in heartbeats and status.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the leader last heard from a node (kept in memory on the leader only; never in the log).
#[derive(Clone, Debug)]
pub struct Liveness {
    pub last_heard: Instant,
    pub applied_index: u64,
    pub version: String,
}

pub struct Node {
    pub id: NodeId,
    pub cfg: Config,
    pub raft: MeshRaft,
    pub state: StateReader,
    pub peers: Arc<Peers>,
    /// Cluster id once known ("" before); shared with `peers` for request headers.
    pub cluster_id: Arc<RwLock<String>>,
    /// Leader-side liveness of every node, fed by heartbeats.
    pub liveness: Mutex<HashMap<NodeId, Liveness>>,
    /// When this node last became leader (None while not leading): nobody is judged down before
    /// the leader-grace period has passed since then.
    pub leading_since: Mutex<Option<Instant>>,
    /// The one cancellation signal every task watches.
    pub shutdown: CancellationToken,
    pub metrics: Metrics,
    /// The cluster data key once this node has it (see `crate::secrets`); never logged.
    pub data_key: RwLock<Option<Arc<crate::secrets::DataKey>>>,
    /// The status board of this node's background workers (see `crate::background`).
    pub workers: crate::background::Workers,
    /// Why the node must stop, once something found it cannot go on (see [`Node::fatal`]).
    pub fatal: Mutex<Option<String>>,
}

/// Wall-clock milliseconds, stamped into commands by their proposer.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// See [`Node::applied_watch`].
pub struct AppliedWatch {
    metrics: tokio::sync::watch::Receiver<RaftMetrics<NodeId, openraft::BasicNode>>,
    state: StateReader,
    seen: Option<openraft::LogId<NodeId>>,
}

impl AppliedWatch {
    /// Returns once an entry has been applied since the last return (at once if one was applied
    /// meanwhile); false when Raft has stopped. Cancel-safe, for `select!`.
    pub async fn changed(&mut self) -> bool {
        loop {
            let applied = self.state.last_applied();
            if applied != self.seen {
                self.seen = applied;
                return true;
            }
            if self.metrics.changed().await.is_err() {
                return false;
            }
        }
    }
}

impl Node {
    /// Stops the node because it cannot go on: keeps the first reason (the node exits 1 with it)
    /// and fires the shutdown signal.
    pub fn fatal(&self, reason: impl Into<String>) {
        self.fatal.lock().unwrap().get_or_insert_with(|| reason.into());
        self.shutdown.cancel();
    }

    /// Waits for entries applied to this node's state machine: what event-driven duties (the job
    /// scheduler, the job worker, `JobService.Watch`) select on.
    pub fn applied_watch(&self) -> AppliedWatch {
        AppliedWatch {
            metrics: self.raft.metrics(),
            state: self.state.clone(),
            seen: self.state.last_applied(),
        }
    }

    /// A copy of the current Raft metrics (never hold the watch borrow across an await).
    pub fn raft_metrics(&self) -> RaftMetrics<NodeId, openraft::BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// The current leader's id and address, if one is known.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.raft_metrics();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id).map(|n| n.addr.clone())?;
        Some((id, addr))
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft_metrics();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Waits until some leader is known, up to `LEADER_WAIT`.
    async fn await_leader(&self) -> Result<(NodeId, String), ApiError> {
        let deadline = Instant::now() + LEADER_WAIT;
        let mut rx = self.raft.metrics();
        loop {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.shutdown.is_cancelled() {
                return Err(ApiError::NoLeader);
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), rx.changed()).await;
        }
    }

    /// Proposes `cmd` through the leader and waits for it to be applied. On the leader it goes
    /// straight into Raft; elsewhere it is forwarded. Retries across a leader change until
    /// `LEADER_WAIT` runs out. A deterministic refusal by the state machine becomes an error.
    pub async fn write(&self, mut cmd: pb::Command) -> Result<pb::CommandResponse, ApiError> {
        let size = prost::Message::encoded_len(&cmd);
        if size > MAX_ENTRY_BYTES {
            return Err(ApiError::InvalidArgument(format!(
                "this change is {size} bytes encoded; a replicated entry is at most {MAX_ENTRY_BYTES}"
            )));
        }
        if cmd.at_ms == 0 {
            cmd.at_ms = now_ms();
        }
        self.on_leader(Instant::now() + LEADER_WAIT, |leader, addr| {
            let cmd = cmd.clone();
            async move {
                if leader == self.id {
                    self.write_local(cmd).await
                } else {
                    self.forward(leader, &addr, cmd).await
                }
            }
        })
        .await
    }

    /// Runs `attempt` against the current leader, looking it up again and retrying after a
    /// leader change or a transient failure (NO_LEADER, UNAVAILABLE) until `deadline`.
    async fn on_leader<T, F, Fut>(&self, deadline: Instant, mut attempt: F) -> Result<T, ApiError>
    where
        F: FnMut(NodeId, String) -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        loop {
            let (leader, addr) = self.await_leader().await?;
            match attempt(leader, addr).await {
                Err(ApiError::NoLeader) | Err(ApiError::Unavailable(_))
                    if Instant::now() < deadline && !self.shutdown.is_cancelled() =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// Proposes on this node, which must be the leader (otherwise NO_LEADER, so callers retry).
    pub async fn write_local(&self, cmd: pb::Command) -> Result<pb::CommandResponse, ApiError> {
        let started = Instant::now();
        let result = tokio::select! {
            r = tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(cmd)) => match r {
                Ok(r) => r,
                Err(_) => return Err(ApiError::Unavailable(format!(
                    "the write was not committed within {}s (no quorum reachable?); it may still be applied later, so check before retrying",
                    WRITE_TIMEOUT.as_secs()
                ))),
            },
            _ = self.shutdown.cancelled() => return Err(ApiError::Unavailable("this node is shutting down".into())),
        };
        self.metrics.apply_latency.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(resp) => refusal_to_error(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(ApiError::NoLeader),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(ApiError::InvalidArgument(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => Err(ApiError::Unavailable(format!("this node's Raft has stopped: {e}"))),
        }
    }

    async fn forward(&self, leader: NodeId, addr: &str, cmd: pb::Command) -> Result<pb::CommandResponse, ApiError> {
        let mut client = self.peers.peer_client(addr)?;
        let mut req = tonic::Request::new(pb::ForwardRequest {
            header: Some(self.peers.header(leader)),
            command: Some(cmd),
        });
        req.set_timeout(FORWARD_TIMEOUT);
        match client.forward(req).await {
            Ok(resp) => refusal_to_error(resp.into_inner()),
            Err(status) => Err(self.peers.call_failed(addr, status)),
        }
    }

    /// Makes a read linearizable when asked (Raft ReadIndex: on the leader by confirming its
    /// leadership with a quorum; on a follower by asking the leader for its read index and
    /// waiting to apply up to it). Returns whether the read is linearizable.
    pub async fn read_barrier(&self, consistency: ReadConsistency) -> Result<bool, ApiError> {
        if consistency == ReadConsistency::Local {
            return Ok(false);
        }
        let deadline = Instant::now() + LEADER_WAIT;
        let index = self
            .on_leader(deadline, |leader, addr| async move {
                if leader == self.id {
                    self.leader_read_index().await
                } else {
                    self.remote_read_index(leader, &addr).await
                }
            })
            .await?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        self.raft
            .wait(Some(left))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| ApiError::Unavailable(format!("this node did not catch up with the leader in time: {e}")))?;
        Ok(true)
    }

    /// On the leader: the index a linearizable read must wait for, after confirming leadership.
    pub async fn leader_read_index(&self) -> Result<u64, ApiError> {
        match self.raft.get_read_log_id().await {
            Ok((read, applied)) => Ok(read.max(applied).map(|l| l.index).unwrap_or(0)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => Err(ApiError::NoLeader),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                Err(ApiError::Unavailable(format!("the leader cannot reach a quorum: {e}")))
            }
            Err(RaftError::Fatal(e)) => Err(ApiError::Unavailable(format!("this node's Raft has stopped: {e}"))),
        }
    }

    async fn remote_read_index(&self, leader: NodeId, addr: &str) -> Result<u64, ApiError> {
        let mut client = self.peers.peer_client(addr)?;
        let mut req = tonic::Request::new(pb::ReadIndexRequest {
            header: Some(self.peers.header(leader)),
        });
        req.set_timeout(FORWARD_TIMEOUT);
        match client.read_index(req).await {
            Ok(r) => Ok(r.into_inner().read_index),
            Err(status) if is_transport_failure(&status) => Err(self.peers.call_failed(addr, status)),
            Err(status) => Err(ApiError::from_status(&status)),
        }
    }

    /// Refuses `what` unless every voter's recorded version is at least `min` (`x.y.z`): a new
    /// shape of replicated entry is proposed only once every voter's state machine accepts it.
    pub fn require_voters_at(&self, min: &str, what: &str) -> Result<(), ApiError> {
        let m = self.raft_metrics();
        let voters: Vec<(NodeId, String)> = m
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| (id, self.state.node(id).map(|r| r.version).unwrap_or_default()))
            .collect();
        let behind = voters_behind(&voters, min);
        if behind.is_empty() {
            return Ok(());
        }
        Err(ApiError::FailedPrecondition(format!(
            "{what} needs every voter at version {min} or later, but {} {} older; upgrade them first",
            behind.join(", "),
            if behind.len() == 1 { "is" } else { "are" }
        )))
    }

    /// Checks the header of a node-to-node request: it must be meant for this node and come from
    /// this node's cluster.
    pub fn check_peer_header(&self, header: Option<&pb::PeerHeader>) -> Result<(), ApiError> {
        let h = header.ok_or_else(|| ApiError::InvalidArgument("peer request without header".into()))?;
        if h.to != 0 && h.to != self.id {
            return Err(ApiError::WrongNode(format!(
                "this request was meant for node {} but reached node {} (stale address or reused IP); refusing it",
                h.to, self.id
            )));
        }
        let ours = self.cluster_id.read().unwrap().clone();
        if !h.cluster_id.is_empty() && !ours.is_empty() && h.cluster_id != ours {
            return Err(ApiError::WrongCluster(format!(
                "node {} belongs to cluster {} but this node belongs to cluster {}; refusing it",
                h.from, h.cluster_id, ours
            )));
        }
        Ok(())
    }
}

/// The voters (id, recorded version) older than `min`, described for a message. Versions are
/// compared as numbers part by part (`0.10.0` > `0.9.1`); an empty version counts as oldest.
pub fn voters_behind(voters: &[(NodeId, String)], min: &str) -> Vec<String> {
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    voters
        .iter()
        .filter(|(_, v)| parse(v) < parse(min))
        .map(|(id, v)| match v.as_str() {
            "" => format!("node {id} (version unknown)"),
            v => format!("node {id} ({v})"),
        })
        .collect()
}

/// Turns a state-machine refusal carried in a response into an error.
pub fn refusal_to_error(resp: pb::CommandResponse) -> Result<pb::CommandResponse, ApiError> {
    if resp.error.is_empty() {
        Ok(resp)
    } else {
        Err(ApiError::from_refusal(&resp.reason, resp.error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_behind_a_version_are_named() {
        let voters = [
            (1, "0.2.0".to_string()),
            (2, "0.10.0".to_string()),
            (3, "0.1.9".to_string()),
            (4, String::new()),
        ];
        assert_eq!(
            voters_behind(&voters, "0.2.0"),
            ["node 3 (0.1.9)", "node 4 (version unknown)"]
        );
        assert!(voters_behind(&voters[..2], "0.2.0").is_empty());
        assert_eq!(voters_behind(&voters[..2], "0.9.0"), ["node 1 (0.2.0)"]);
    }
}
