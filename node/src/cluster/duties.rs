//! The cluster's periodic duties, each a background [`Worker`] (see `crate::background`):
//!
//! | worker | scope | what one pass does |
//! |---|---|---|
//! | `observer` | node | Raft gauges (term, indexes, voters, leader changes) |
//! | `cluster-identity` | node | records the cluster id in the data dir; stops a node whose directory belongs to another cluster; finishes the root-token file |
//! | `heartbeat` | node | a follower tells the leader it is alive (and how far it applied); the leader notes itself |
//! | `node-record` | node | (re-)registers this node's record (address, region, zone, version) when it is missing or out of date |
//! | `cluster-init` | leader | creates the cluster identity, the root token and the data key, once |
//! | `liveness` | leader | marks nodes down when silent for the node TTL, active again when heard |
//! | `autopilot` | leader | replaces dead voters, drops dead learners, promotes learners to the voter target (see `membership`) |

use std::time::{Duration, Instant};

use mesh_proto::v1::{self as pb, NodeState};
use rand::RngCore;

use crate::background::{Scope, WorkError, Worker};
use crate::cluster::identity::{self, write_atomic, ROOT_TOKEN_FILE};
use crate::cluster::membership;
use crate::error::ApiError;
use crate::node::{now_ms, Liveness, Node, VERSION};
use crate::server::auth::token_hash;

/// Period of every cluster duty, and of heartbeats to the leader.
pub const TICK: Duration = Duration::from_millis(500);

/// This node's record as it should be in the state.
pub fn own_record(node: &Node) -> pb::NodeRecord {
    pb::NodeRecord {
        id: node.id,
        addr: node.cfg.advertise.clone(),
        region: node.cfg.region.clone(),
        zone: node.cfg.zone.clone(),
        version: VERSION.to_string(),
        state: NodeState::Active as i32,
        ..Default::default()
    }
}

fn record_outdated(node: &Node) -> bool {
    match node.state.node(node.id) {
        None => true,
        Some(r) => {
            r.addr != node.cfg.advertise
                || r.region != node.cfg.region
                || r.zone != node.cfg.zone
                || r.version != VERSION
        }
    }
}

/// Records the cluster id in the data dir once the state has it, and stops the node if the
/// directory belongs to another cluster.
fn sync_cluster_id(node: &Node) -> Result<(), String> {
    let Some(cluster) = node.state.cluster() else {
        return Ok(());
    };
    let known = node.cluster_id.read().unwrap().clone();
    if known == cluster.cluster_id {
        return Ok(());
    }
    if !known.is_empty() {
        return Err(format!(
            "the data directory {} belongs to cluster {known}, but the replicated state says cluster {}; refusing to continue (start this node with a fresh data directory to join the other cluster)",
            node.cfg.data_dir.display(),
            cluster.cluster_id
        ));
    }
    identity::record_cluster_id(&node.cfg.data_dir, &cluster.cluster_id)
        .map_err(|e| format!("cannot record the cluster id in {}: {e}", node.cfg.data_dir.display()))?;
    *node.cluster_id.write().unwrap() = cluster.cluster_id.clone();
    finish_pending_token(node, &cluster.root_token_sha256);
    Ok(())
}

/// Creates the cluster identity and the root token, once. The token is written to
/// `root-token.pending` before it is proposed and renamed to `root-token` once the cluster
/// records its hash, so a crash in between never loses the only copy.
async fn init_cluster(node: &Node) -> Result<(), ApiError> {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!("mesh_{}", hex::encode(bytes));
    let mut id = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut id);
    let cluster_id = hex::encode(id);
    let pending = node.cfg.data_dir.join(format!("{ROOT_TOKEN_FILE}.pending"));
    write_atomic(&pending, token.as_bytes(), true)
        .map_err(|e| ApiError::Internal(format!("cannot write {}: {e}", pending.display())))?;
    // The cluster data key, kept as data-key.pending (0600) until the cluster records its hash.
    let data_key =
        crate::secrets::pending_key_for_init(&node.cfg.data_dir).map_err(|e| ApiError::Internal(e.to_string()))?;
    let cmd = pb::Command {
        at_ms: now_ms(),
        kind: Some(pb::command::Kind::InitCluster(pb::InitCluster {
            cluster_id: cluster_id.clone(),
            root_token_sha256: token_hash(&token),
            data_key_sha256: data_key.fingerprint(),
        })),
    };
    match node.write_local(cmd).await {
        Ok(_) => {
            tracing::info!(
                cluster_id,
                "cluster created; root token written to {}",
                node.cfg.data_dir.join(ROOT_TOKEN_FILE).display()
            );
            Ok(())
        }
        Err(ApiError::AlreadyInitialized(_)) => {
            let _ = std::fs::remove_file(&pending);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Renames `root-token.pending` to `root-token` when its hash is the cluster's.
fn finish_pending_token(node: &Node, hash: &str) {
    let dir = &node.cfg.data_dir;
    let pending = dir.join(format!("{ROOT_TOKEN_FILE}.pending"));
    if let Ok(token) = std::fs::read_to_string(&pending) {
        if token_hash(token.trim()) == hash {
            let _ = std::fs::rename(&pending, dir.join(ROOT_TOKEN_FILE));
        } else {
            let _ = std::fs::remove_file(&pending);
        }
    }
}

/// Raft gauges, on every node.
#[derive(Default)]
pub struct Observer {
    /// The leader seen by the previous pass (leader changes are counted and logged).
    last_leader: std::sync::Mutex<Option<u64>>,
}

#[tonic::async_trait]
impl Worker for Observer {
    fn name(&self) -> &'static str {
        "observer"
    }
    fn scope(&self) -> Scope {
        Scope::Node
    }
    fn period(&self) -> Duration {
        TICK
    }
    async fn work(&self, node: &Node) -> Result<(), WorkError> {
        let m = node.raft_metrics();
        let metrics = &node.metrics;
        metrics.term.set(m.current_term);
        metrics.last_log_index.set(m.last_log_index.unwrap_or(0));
        metrics.applied_index.set(m.last_applied.map(|l| l.index).unwrap_or(0));
        metrics.snapshot_index.set(m.snapshot.map(|l| l.index).unwrap_or(0));
        let membership = m.membership_config.membership();
        let voters = membership.voter_ids().count();
        metrics.voters.set(voters as i64);
        metrics.learners.set((membership.nodes().count() - voters) as i64);
        let mut last = self.last_leader.lock().unwrap();
        if m.current_leader != *last {
            if m.current_leader.is_some() {
                metrics.leader_changes.inc();
            }
            tracing::info!(leader = ?m.current_leader, term = m.current_term, "leader changed");
            *last = m.current_leader;
        }
        metrics.is_leader.set(node.is_leader() as i64);
        Ok(())
    }
}

/// The cluster id file, on every node.
pub struct ClusterIdentity;

#[tonic::async_trait]
impl Worker for ClusterIdentity {
    fn name(&self) -> &'static str {
        "cluster-identity"
    }
    fn scope(&self) -> Scope {
        Scope::Node
    }
    fn period(&self) -> Duration {
        TICK
    }
    async fn work(&self, node: &Node) -> Result<(), WorkError> {
        sync_cluster_id(node).map_err(WorkError::Fatal)
    }
}

/// Heartbeats, on every node: a follower sends one to the leader; the leader notes its own.
pub struct Heartbeat;

#[tonic::async_trait]
impl Worker for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }
    fn scope(&self) -> Scope {
        Scope::Node
    }
    fn period(&self) -> Duration {
        TICK
    }
    async fn work(&self, node: &Node) -> Result<(), WorkError> {
        let applied = node.raft_metrics().last_applied.map(|l| l.index).unwrap_or(0);
        if node.is_leader() {
            node.liveness.lock().unwrap().insert(
                node.id,
                Liveness {
                    last_heard: Instant::now(),
                    applied_index: applied,
                    version: VERSION.to_string(),
                },
            );
            return Ok(());
        }
        let Some((leader, addr)) = node.leader() else {
            return Ok(());
        };
        let mut client = node.peers.peer_client(&addr)?;
        let mut req = tonic::Request::new(pb::HeartbeatRequest {
            header: Some(node.peers.header(leader)),
            applied_index: applied,
            version: VERSION.to_string(),
            addr: node.cfg.advertise.clone(),
        });
        req.set_timeout(TICK * 2);
        client
            .heartbeat(req)
            .await
            .map_err(|s| node.peers.call_failed(&addr, s))?;
        Ok(())
    }
}

/// This node's record in the state, on every node: registered through the leader when it is
/// missing or out of date (a restart with a new address, region or version).
pub struct NodeRecord;

#[tonic::async_trait]
impl Worker for NodeRecord {
    fn name(&self) -> &'static str {
        "node-record"
    }
    fn scope(&self) -> Scope {
        Scope::Node
    }
    fn period(&self) -> Duration {
        TICK
    }
    fn needs_cluster(&self) -> bool {
        true
    }
    async fn work(&self, node: &Node) -> Result<(), WorkError> {
        if !record_outdated(node) {
            return Ok(());
        }
        if node.is_leader() {
            membership::admit(node, own_record(node)).await?;
            return Ok(());
        }
        let Some((leader, addr)) = node.leader() else {
            return Ok(());
        };
        let mut client = node.peers.peer_client(&addr)?;
        let mut req = tonic::Request::new(pb::JoinRequest {
            header: Some(node.peers.header(leader)),
            node: Some(own_record(node)),
        });
        req.set_timeout(Duration::from_secs(5));
        client.join(req).await.map_err(|s| node.peers.call_failed(&addr, s))?;
        Ok(())
    }
}

/// The cluster identity, root token and data key, created once by the first leader.
pub struct ClusterInit;

#[tonic::async_trait]
impl Worker for ClusterInit {
    fn name(&self) -> &'static str {
        "cluster-init"
    }
    fn scope(&self) -> Scope {
        Scope::Leader
    }
    fn period(&self) -> Duration {
        TICK
    }
    fn needs_cluster(&self) -> bool {
        false
    }
    async fn work(&self, node: &Node) -> Result<(), WorkError> {
        if node.state.cluster().is_none() {
            init_cluster(node).await?;
        }
        Ok(())
    }
}

/// Judges every node's liveness from its heartbeats (leader only).
pub struct LivenessCheck;

#[tonic::async_trait]
impl Worker for LivenessCheck {
    fn name(&self) -> &'static str {
        "liveness"
    }
    fn scope(&self) -> Scope {
        Scope::Leader
    }
    fn period(&self) -> Duration {
        TICK
    }
    async fn work(&self, node: &Node) -> Result<(), WorkError> {
        membership::mark_liveness(node).await?;
        Ok(())
    }
}

/// Keeps the voter set healthy (leader only, once the leader-grace period has passed).
pub struct Autopilot;

#[tonic::async_trait]
impl Worker for Autopilot {
    fn name(&self) -> &'static str {
        "autopilot"
    }
    fn scope(&self) -> Scope {
        Scope::Leader
    }
    fn period(&self) -> Duration {
        TICK
    }
    async fn work(&self, node: &Node) -> Result<(), WorkError> {
        if grace_over(node) {
            membership::autopilot(node).await?;
        }
        Ok(())
    }
}

/// Whether this node has led for the leader-grace period: nobody is judged before that.
pub fn grace_over(node: &Node) -> bool {
    node.leading_since
        .lock()
        .unwrap()
        .is_some_and(|s| s.elapsed() >= mesh_raft::settings::leader_grace(&node.state))
}
