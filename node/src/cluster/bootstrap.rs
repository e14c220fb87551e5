//! Getting a node into a mesh at start-up.
//!
//! - Restart: a node whose store already has a membership does nothing; Raft resumes.
//! - Forming (`--bootstrap-expect N --join A,B,C`): the node probes the join list with Hello
//!   until it sees N distinct nodes (itself included), none of them part of a cluster yet, then
//!   initializes Raft with exactly those N as voters. Every forming node computes the same
//!   membership from the same answers, and openraft accepts identical initializations on several
//!   nodes, so exactly one initial membership results. If one of them already belongs to a
//!   cluster, the node joins that cluster instead.
//! - Joining (`--join A`): the node asks any member to admit it; the member forwards to the
//!   leader, which adds it as a learner.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mesh_proto::v1 as pb;
use openraft::BasicNode;

use crate::cluster::duties::own_record;
use crate::node::Node;

/// Pause between rounds of probing the join list.
const RETRY: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A start-up problem that must stop the node.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BootstrapError(pub String);

/// Runs until the node is part of a mesh (or shutdown). Errors are fatal for the node.
pub async fn run(node: Arc<Node>) -> Result<(), BootstrapError> {
    if node.raft.is_initialized().await.unwrap_or(false) {
        // A restart. Refuse a join list that belongs to another cluster (the probe fails with
        // WRONG_CLUSTER) instead of sitting there unable to talk to anyone.
        if !node.cluster_id.read().unwrap().is_empty() {
            probe_all(&node).await?;
        }
        tracing::info!("resuming as a member of the existing mesh");
        return Ok(());
    }
    let expect = node.cfg.bootstrap_expect;
    if expect == 1 && node.cfg.join.iter().all(|a| *a == node.cfg.advertise) {
        return initialize(&node, BTreeMap::from([(node.id, node.cfg.advertise.clone())])).await;
    }
    if node.cfg.join.is_empty() {
        return Err(BootstrapError(
            "this node is not part of a mesh yet: start it with --bootstrap-expect N --join <the N members> to form a new mesh, or --join <a member> to join one".into(),
        ));
    }
    let mut warned_extra = false;
    loop {
        if node.shutdown.is_cancelled() {
            return Ok(());
        }
        let probes = probe_all(&node).await?;
        if let Some(member) = probes.iter().find(|h| h.initialized || !h.cluster_id.is_empty()) {
            return join(&node, Some(member.addr.clone())).await;
        }
        if expect >= 1 {
            let mut seen: BTreeMap<u64, String> = probes.iter().map(|h| (h.node_id, h.addr.clone())).collect();
            seen.insert(node.id, node.cfg.advertise.clone());
            if seen.len() == expect as usize {
                return initialize(&node, seen).await;
            }
            if seen.len() > expect as usize && !warned_extra {
                tracing::error!(seen = seen.len(), expect, "more nodes answered than --bootstrap-expect; not forming a mesh (check that every node has the same --bootstrap-expect)");
                warned_extra = true;
            } else {
                tracing::info!(seen = seen.len(), expect, "waiting for the initial members");
            }
        } else if !probes.is_empty() {
            // Plain --join, but nobody is initialized yet: keep waiting for a mesh to exist.
            tracing::info!("no member of the join list belongs to a mesh yet; waiting");
        }
        tokio::select! {
            _ = node.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

async fn initialize(node: &Node, members: BTreeMap<u64, String>) -> Result<(), BootstrapError> {
    tracing::info!(?members, "forming a new mesh");
    let members: BTreeMap<u64, BasicNode> = members
        .into_iter()
        .map(|(id, addr)| (id, BasicNode::new(addr)))
        .collect();
    match node.raft.initialize(members).await {
        Ok(()) => Ok(()),
        // Another forming node's identical membership reached us first.
        Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(BootstrapError(format!("could not form the mesh: {e}"))),
    }
}

/// Asks each join address who it is. Unreachable addresses are skipped; a member of another
/// cluster is an error.
async fn probe_all(node: &Node) -> Result<Vec<pb::HelloResponse>, BootstrapError> {
    let mut out = Vec::new();
    for addr in node.cfg.join.iter().filter(|a| **a != node.cfg.advertise) {
        let Ok(mut client) = node.peers.peer_client(addr) else {
            continue;
        };
        let mut req = tonic::Request::new(pb::HelloRequest {
            header: Some(node.peers.header(0)),
        });
        req.set_timeout(PROBE_TIMEOUT);
        match client.hello(req).await {
            Ok(r) => {
                let h = r.into_inner();
                if h.node_id != node.id {
                    out.push(h);
                }
            }
            Err(s) if crate::error::reason_of(&s) == Some(mesh_proto::Reason::WrongCluster) => {
                return Err(BootstrapError(format!(
                    "{addr} belongs to another cluster than the data directory {} (cluster {}): {}",
                    node.cfg.data_dir.display(),
                    node.cluster_id.read().unwrap(),
                    s.message()
                )));
            }
            Err(s) => {
                tracing::debug!(addr, error = %s.message(), "join address did not answer");
                node.peers.call_failed(addr, s);
            }
        }
    }
    Ok(out)
}

/// Joins an existing mesh through `first` or any join address, retrying until admitted.
async fn join(node: &Node, first: Option<String>) -> Result<(), BootstrapError> {
    let addrs: Vec<String> = first
        .into_iter()
        .chain(node.cfg.join.iter().cloned())
        .filter(|a| *a != node.cfg.advertise)
        .collect();
    let known_cluster = node.cluster_id.read().unwrap().clone();
    loop {
        for addr in &addrs {
            let Ok(mut client) = node.peers.peer_client(addr) else {
                continue;
            };
            let mut hello = tonic::Request::new(pb::HelloRequest {
                header: Some(node.peers.header(0)),
            });
            hello.set_timeout(PROBE_TIMEOUT);
            let Ok(h) = client.hello(hello).await.map(|r| r.into_inner()) else {
                node.peers.evict(addr);
                continue;
            };
            if !known_cluster.is_empty() && !h.cluster_id.is_empty() && h.cluster_id != known_cluster {
                return Err(BootstrapError(format!(
                    "the data directory {} belongs to cluster {known_cluster}, but {addr} is a member of cluster {}; refusing to join (use a fresh data directory to join that cluster)",
                    node.cfg.data_dir.display(),
                    h.cluster_id
                )));
            }
            let mut req = tonic::Request::new(pb::JoinRequest {
                header: Some(node.peers.header(0)),
                node: Some(own_record(node)),
            });
            req.set_timeout(Duration::from_secs(10));
            match client.join(req).await {
                Ok(r) => {
                    tracing::info!(
                        via = addr,
                        cluster_id = r.get_ref().cluster_id,
                        "admitted to the mesh (a new node starts as a learner; an initial member keeps its vote)"
                    );
                    return Ok(());
                }
                Err(s) if s.code() == tonic::Code::PermissionDenied => {
                    return Err(BootstrapError(format!("{addr} refused this node: {}", s.message())));
                }
                Err(s) => tracing::info!(addr, error = %s.message(), "join not accepted yet; retrying"),
            }
        }
        tokio::select! {
            _ = node.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(RETRY * 2) => {}
        }
    }
}
