//! The node's background loop, one tick every `TICK`:
//! - on every node: keep metrics and the cluster id file current, heartbeat the leader, and
//!   (re-)register this node's record through the leader when it is missing or out of date;
//! - on the leader: create the cluster identity and root token once, judge liveness, run the
//!   autopilot (see `membership`) and the job scheduler (see `scheduler`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_proto::v1::{self as pb, NodeState};
use rand::RngCore;

use crate::cluster::identity::{self, write_atomic, ROOT_TOKEN_FILE};
use crate::cluster::membership;
use crate::error::ApiError;
use crate::node::{now_ms, Liveness, Node, VERSION};
use crate::server::auth::token_hash;

/// Period of the controller loop and of heartbeats to the leader.
pub const TICK: Duration = Duration::from_millis(500);

/// Runs until shutdown. Errors of one tick are logged and retried on the next.
pub async fn run(node: Arc<Node>) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_leader = None;
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        observe(&node, &mut last_leader);
        if let Err(e) = sync_cluster_id(&node) {
            tracing::error!("{e}");
            node.shutdown.cancel();
            return;
        }
        // Hold the cluster data key once the cluster has one (fetched from a member if need be).
        let key_sync = tokio::select! {
            _ = node.shutdown.cancelled() => return,
            r = crate::secrets::sync(&node) => r,
        };
        if let Err(e) = key_sync {
            tracing::error!("{e}");
            node.shutdown.cancel();
            return;
        }
        // A tick can wait on Raft (a write without quorum never commits), so it races the
        // shutdown signal: a draining node must not hang on a cluster that lost its quorum.
        let work = async {
            if node.is_leader() {
                leader_tick(&node).await
            } else {
                follower_tick(&node).await
            }
        };
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            result = work => if let Err(e) = result {
                tracing::debug!(error = %e, "controller tick");
            }
        }
    }
}

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

/// Updates gauges and leadership bookkeeping from openraft's metrics.
fn observe(node: &Node, last_leader: &mut Option<u64>) {
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
    if m.current_leader != *last_leader {
        if m.current_leader.is_some() {
            metrics.leader_changes.inc();
        }
        tracing::info!(leader = ?m.current_leader, term = m.current_term, "leader changed");
        *last_leader = m.current_leader;
    }
    let leading = node.is_leader();
    metrics.is_leader.set(leading as i64);
    let mut since = node.leading_since.lock().unwrap();
    match (leading, since.is_some()) {
        (true, false) => {
            *since = Some(Instant::now());
            // A new leader knows nothing of others' heartbeats: start everyone's clock now.
            node.liveness.lock().unwrap().clear();
        }
        (false, true) => *since = None,
        _ => {}
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

async fn leader_tick(node: &Node) -> Result<(), ApiError> {
    node.liveness.lock().unwrap().insert(
        node.id,
        Liveness {
            last_heard: Instant::now(),
            applied_index: node.raft_metrics().last_applied.map(|l| l.index).unwrap_or(0),
            version: VERSION.to_string(),
        },
    );
    if node.state.cluster().is_none() {
        return init_cluster(node).await;
    }
    if record_outdated(node) {
        membership::admit(node, own_record(node)).await?;
    }
    membership::mark_liveness(node).await?;
    let grace_over = node
        .leading_since
        .lock()
        .unwrap()
        .is_some_and(|s| s.elapsed() >= mesh_raft::settings::leader_grace(&node.state));
    if grace_over {
        membership::autopilot(node).await?;
    }
    crate::jobs::scheduler::tick(node, grace_over).await?;
    Ok(())
}

async fn follower_tick(node: &Node) -> Result<(), ApiError> {
    let Some((leader, addr)) = node.leader() else {
        return Ok(());
    };
    let mut client = node.peers.peer_client(&addr)?;
    let applied = node.raft_metrics().last_applied.map(|l| l.index).unwrap_or(0);
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
    if node.state.cluster().is_some() && record_outdated(node) {
        let mut req = tonic::Request::new(pb::JoinRequest {
            header: Some(node.peers.header(leader)),
            node: Some(own_record(node)),
        });
        req.set_timeout(Duration::from_secs(5));
        client.join(req).await.map_err(|s| node.peers.call_failed(&addr, s))?;
    }
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
