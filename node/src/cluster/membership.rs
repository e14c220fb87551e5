//! Leader-side membership management: admitting joining nodes as learners, removing nodes,
//! transferring leadership, and the autopilot that promotes healthy learners to voters (up to the
//! voter target, spreading zones) and replaces voters that stay down.
//!
//! Everything here runs on the leader and changes the cluster only through Raft: membership
//! changes via openraft's joint consensus, node records via commands.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mesh_proto::v1::{self as pb, NodeState};
use mesh_raft::{settings, NodeId};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use crate::error::ApiError;
use crate::node::{now_ms, Liveness, Node};

/// Voters and all members (voters + learners) of the current membership.
pub fn members(node: &Node) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
    let m = node.raft_metrics();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let all: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    (voters, all)
}

fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ApiError::NoLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ApiError::Unavailable(format!("membership change refused: {e}"))
        }
        RaftError::Fatal(e) => ApiError::Unavailable(format!("Raft stopped: {e}")),
    }
}

async fn change(node: &Node, change: ChangeMembers<NodeId, BasicNode>) -> Result<(), ApiError> {
    tracing::info!(?change, "changing membership");
    node.raft
        .change_membership(change, false)
        .await
        .map_err(membership_error)?;
    Ok(())
}

async fn set_state(node: &Node, id: NodeId, state: NodeState, reason: String) -> Result<(), ApiError> {
    let cmd = pb::Command {
        at_ms: now_ms(),
        kind: Some(pb::command::Kind::SetNodeState(pb::SetNodeState {
            node_id: id,
            state: state as i32,
            reason,
        })),
    };
    node.write_local(cmd).await.map(|_| ())
}

/// Admits a node that asked to join (or re-registers a member whose record changed).
pub async fn admit(node: &Node, mut record: pb::NodeRecord) -> Result<(), ApiError> {
    if record.id == 0 || record.addr.is_empty() {
        return Err(ApiError::InvalidArgument(
            "a joining node must give its id and address".into(),
        ));
    }
    let existing = node.state.node(record.id);
    if let Some(prev) = &existing {
        if prev.state() == NodeState::Left {
            return Err(ApiError::PermissionDenied(format!(
                "node {} was removed from this cluster and ids are never reused; move its data directory away and start it again to join as a new node",
                record.id
            )));
        }
    }
    let (_, all) = members(node);
    if !all.contains(&record.id) {
        tracing::info!(id = record.id, addr = %record.addr, "adding learner");
        node.raft
            .add_learner(record.id, BasicNode::new(record.addr.clone()), false)
            .await
            .map_err(membership_error)?;
    }
    node.liveness.lock().unwrap().insert(
        record.id,
        Liveness {
            last_heard: Instant::now(),
            applied_index: 0,
            version: record.version.clone(),
        },
    );
    record.state = match existing.as_ref().map(|p| p.state()) {
        Some(NodeState::Draining) => NodeState::Draining as i32,
        _ => NodeState::Active as i32,
    };
    let unchanged = existing.as_ref().is_some_and(|p| {
        p.addr == record.addr
            && p.region == record.region
            && p.zone == record.zone
            && p.version == record.version
            && p.state == record.state
    });
    if !unchanged {
        let cmd = pb::Command {
            at_ms: now_ms(),
            kind: Some(pb::command::Kind::UpsertNode(pb::UpsertNode { node: Some(record) })),
        };
        node.write_local(cmd).await?;
    }
    Ok(())
}

/// Removes a node by hand (`meshctl node remove`).
pub async fn remove(node: &Node, id: NodeId) -> Result<pb::NodeRecord, ApiError> {
    let (voters, all) = members(node);
    let record = node.state.node(id);
    if record.is_none() && !all.contains(&id) {
        return Err(ApiError::NotFound(format!(
            "no node {id} in this cluster (see `meshctl node list`)"
        )));
    }
    if id == node.id {
        return Err(ApiError::InvalidArgument(format!(
            "node {id} is the leader; move leadership first (`meshctl cluster transfer-leader`), then remove it"
        )));
    }
    if voters.contains(&id) {
        if voters.len() == 1 {
            return Err(ApiError::InvalidArgument(format!(
                "node {id} is the only voter; removing it would leave the cluster without a quorum"
            )));
        }
        change(node, ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await?;
    } else if all.contains(&id) {
        change(node, ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await?;
    }
    if record.is_some() {
        set_state(node, id, NodeState::Left, "removed by an operator".into()).await?;
    }
    node.liveness.lock().unwrap().remove(&id);
    Ok(node.state.node(id).unwrap_or(pb::NodeRecord {
        id,
        state: NodeState::Left as i32,
        ..Default::default()
    }))
}

/// What the leader knows of every member's liveness (for status on any node).
pub fn liveness_view(node: &Node) -> Vec<pb::NodeLiveness> {
    let live = node.liveness.lock().unwrap();
    let (_, all) = members(node);
    all.iter()
        .map(|id| match live.get(id) {
            Some(l) => pb::NodeLiveness {
                node_id: *id,
                last_contact_ms_ago: l.last_heard.elapsed().as_millis() as u64,
                applied_index: l.applied_index,
                heard: true,
            },
            None => pb::NodeLiveness {
                node_id: *id,
                last_contact_ms_ago: u64::MAX,
                applied_index: 0,
                heard: false,
            },
        })
        .collect()
}

/// Hands leadership to voter `to` (0 = the most up-to-date other voter) and returns the new
/// leader. openraft 0.9 has no transfer, so: this leader stops heartbeats and elections, the
/// other voters hold their election timers, and the target campaigns once the leader lease
/// (election timeout max) has lapsed.
pub async fn transfer_leadership(node: &Node, to: NodeId) -> Result<NodeId, ApiError> {
    let (voters, _) = members(node);
    let others: Vec<NodeId> = voters.iter().copied().filter(|v| *v != node.id).collect();
    if others.is_empty() {
        return Err(ApiError::InvalidArgument(
            "this node is the only voter; there is nobody to hand leadership to".into(),
        ));
    }
    let m = node.raft_metrics();
    let matched = |id: &NodeId| {
        m.replication
            .as_ref()
            .and_then(|r| r.get(id).cloned().flatten())
            .map(|l| l.index)
            .unwrap_or(0)
    };
    let target = if to == 0 {
        *others.iter().max_by_key(|id| matched(id)).expect("others is not empty")
    } else if others.contains(&to) {
        to
    } else if to == node.id {
        return Ok(node.id);
    } else {
        return Err(ApiError::InvalidArgument(format!(
            "node {to} is not a voter; leadership can only go to one of {others:?}"
        )));
    };
    let lease = node.cfg.election_timeout * 2;
    let membership = m.membership_config.membership().clone();
    tracing::info!(target, "transferring leadership");
    node.raft.runtime_config().heartbeat(false);
    node.raft.runtime_config().elect(false);
    for id in &others {
        let Some(addr) = membership.get_node(id).map(|n| n.addr.clone()) else {
            continue;
        };
        let (elect_after_ms, hold_elect_ms) = if *id == target {
            (lease.as_millis() as u64 + 150, 0)
        } else {
            (0, lease.as_millis() as u64 * 3)
        };
        let req = pb::CampaignRequest {
            header: Some(node.peers.header(*id)),
            elect_after_ms,
            hold_elect_ms,
        };
        if let Ok(mut c) = node.peers.peer_client(&addr) {
            if let Err(e) = c.campaign(req).await {
                tracing::warn!(id, error = %e.message(), "campaign request failed");
            }
        }
    }
    let deadline = Instant::now() + lease * 3 + Duration::from_secs(2);
    let mut result = Err(ApiError::Unavailable(format!(
        "node {target} did not take over leadership in time; this node may still lead"
    )));
    let mut rx = node.raft.metrics();
    while Instant::now() < deadline {
        let leader = rx.borrow().current_leader;
        if let Some(l) = leader.filter(|l| *l != node.id) {
            result = Ok(l);
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
    }
    node.raft.runtime_config().heartbeat(true);
    node.raft.runtime_config().elect(true);
    result
}

/// One autopilot pass (leader only): replace long-dead voters, drop long-dead learners, promote
/// stable healthy learners up to the voter target preferring new zones.
pub async fn autopilot(node: &Node) -> Result<(), ApiError> {
    let (voters, all) = members(node);
    let target = settings::voter_target(&node.state) as usize;
    let dead_grace = settings::dead_voter_grace(&node.state).as_millis() as u64;
    let stabilization = settings::stabilization_time(&node.state).as_millis() as u64;
    let ttl = settings::node_ttl(&node.state);
    let now = now_ms();
    let record = |id: &NodeId| node.state.node(*id);
    let long_dead = |id: &NodeId| {
        record(id)
            .is_some_and(|r| r.state() == NodeState::Down && now.saturating_sub(r.state_changed_at_ms) >= dead_grace)
    };
    let healthy = |id: &NodeId| {
        let heard = node
            .liveness
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|l| l.last_heard.elapsed() < ttl);
        heard
            && record(id).is_some_and(|r| {
                r.state() == NodeState::Active
                    && now.saturating_sub(r.state_changed_at_ms.max(r.joined_at_ms)) >= stabilization
            })
    };
    let zone = |id: &NodeId| record(id).map(|r| r.zone).unwrap_or_default();
    let learners: Vec<NodeId> = all.iter().copied().filter(|id| !voters.contains(id)).collect();
    // Candidates for promotion, those in a zone no voter covers first, then oldest first.
    let mut candidates: Vec<NodeId> = learners.iter().copied().filter(|id| healthy(id)).collect();
    let voter_zones: BTreeSet<String> = voters.iter().map(zone).collect();
    candidates.sort_by_key(|id| {
        (
            voter_zones.contains(&zone(id)),
            record(id).map(|r| r.joined_at_ms).unwrap_or(0),
            *id,
        )
    });

    // 1. A voter down past the grace period is replaced by a healthy learner, then removed.
    for dead in voters.iter().filter(|id| **id != node.id && long_dead(id)) {
        let Some(replacement) = candidates.first().copied() else {
            tracing::warn!(
                dead,
                "voter is down past the grace period but no healthy learner can replace it"
            );
            continue;
        };
        let mut new_voters = voters.clone();
        new_voters.remove(dead);
        new_voters.insert(replacement);
        tracing::info!(dead, replacement, "replacing dead voter");
        change(node, ChangeMembers::ReplaceAllVoters(new_voters)).await?;
        change(node, ChangeMembers::RemoveNodes(BTreeSet::from([*dead]))).await?;
        set_state(
            node,
            *dead,
            NodeState::Left,
            format!(
                "down for more than {}s; replaced by node {replacement}",
                dead_grace / 1000
            ),
        )
        .await?;
        return Ok(()); // one change per pass; the next pass sees the new membership
    }
    // 2. A learner down past the grace period is removed.
    if let Some(dead) = learners.iter().find(|id| long_dead(id)) {
        change(node, ChangeMembers::RemoveNodes(BTreeSet::from([*dead]))).await?;
        set_state(
            node,
            *dead,
            NodeState::Left,
            format!("down for more than {}s", dead_grace / 1000),
        )
        .await?;
        return Ok(());
    }
    // 3. Promote learners up to the voter target.
    if voters.len() < target && !candidates.is_empty() {
        let promote: BTreeSet<NodeId> = candidates.into_iter().take(target - voters.len()).collect();
        tracing::info!(?promote, "promoting learners to voters");
        change(node, ChangeMembers::AddVoterIds(promote)).await?;
    }
    Ok(())
}

/// Marks nodes down when the leader has not heard them for the node TTL, and active again when
/// it has. Nobody is judged before the leader-grace period after this node became leader.
pub async fn mark_liveness(node: &Node) -> Result<(), ApiError> {
    let Some(since) = *node.leading_since.lock().unwrap() else {
        return Ok(());
    };
    let ttl = settings::node_ttl(&node.state);
    if since.elapsed() < settings::leader_grace(&node.state).max(ttl) {
        return Ok(());
    }
    let (_, all) = members(node);
    for id in all.iter().filter(|id| **id != node.id) {
        let Some(rec) = node.state.node(*id) else { continue };
        let silent_for = node
            .liveness
            .lock()
            .unwrap()
            .get(id)
            .map(|l| l.last_heard.elapsed())
            .unwrap_or(since.elapsed());
        match rec.state() {
            NodeState::Active | NodeState::Joining | NodeState::Draining if silent_for >= ttl => {
                tracing::warn!(id, ?silent_for, "node missed heartbeats; marking it down");
                set_state(
                    node,
                    *id,
                    NodeState::Down,
                    format!("no heartbeat for {}s", silent_for.as_secs()),
                )
                .await?;
            }
            NodeState::Down if silent_for < ttl => {
                tracing::info!(id, "node is back; marking it active");
                set_state(node, *id, NodeState::Active, "heartbeats resumed".into()).await?;
            }
            _ => {}
        }
    }
    Ok(())
}
