//! ClusterService: the public administration API (`meshctl cluster|node|setting`).
//!
//! Reads say whether they are linearizable (confirmed through the leader) or local. Calls that
//! must run on the leader (node removal, leadership transfer) are relayed to it with the caller's
//! own token, so any node accepts any call.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mesh_proto::names;
use mesh_proto::v1::{self as pb, cluster_service_client::ClusterServiceClient, NodeState, ReadConsistency};
use mesh_raft::settings;
use tonic::{Request, Response, Status};

use super::consistency;
use crate::cluster::membership;
use crate::error::ApiError;
use crate::node::{now_ms, Node};

pub struct ClusterRpc {
    pub node: Arc<Node>,
}

/// A node state's name in views: a record not yet given a state counts as joining.
fn state_name(s: NodeState) -> &'static str {
    match s {
        NodeState::Unspecified => names::node_state(NodeState::Joining as i32),
        s => names::node_state(s as i32),
    }
}

impl ClusterRpc {
    /// The leader's liveness table: local on the leader, fetched otherwise (best effort).
    async fn liveness(&self) -> Vec<pb::NodeLiveness> {
        if self.node.is_leader() {
            return membership::liveness_view(&self.node);
        }
        let Some((leader, addr)) = self.node.leader() else {
            return vec![];
        };
        let Ok(mut client) = self.node.peers.peer_client(&addr) else {
            return vec![];
        };
        let mut req = Request::new(pb::LeaderViewRequest {
            header: Some(self.node.peers.header(leader)),
        });
        req.set_timeout(Duration::from_secs(2));
        client
            .leader_view(req)
            .await
            .map(|r| r.into_inner().nodes)
            .unwrap_or_default()
    }

    /// Every node of the cluster (members and recorded nodes that have not left).
    async fn node_statuses(&self) -> Vec<pb::NodeStatus> {
        let (voters, all) = membership::members(&self.node);
        let records = self.node.state.nodes();
        let live = self.liveness().await;
        let mut ids: BTreeSet<u64> = all.clone();
        ids.extend(records.iter().filter(|r| r.state() != NodeState::Left).map(|r| r.id));
        let m = self.node.raft_metrics();
        let membership = m.membership_config.membership().clone();
        ids.into_iter()
            .map(|id| {
                let rec = records.iter().find(|r| r.id == id).cloned().unwrap_or_default();
                let l = live.iter().find(|l| l.node_id == id);
                let role = if voters.contains(&id) {
                    "voter"
                } else if all.contains(&id) {
                    "learner"
                } else {
                    "none"
                };
                let (last_contact_ms, applied_index) = match l {
                    Some(l) if l.heard => (l.last_contact_ms_ago as i64, l.applied_index),
                    _ if id == self.node.id => (-1, m.last_applied.map(|x| x.index).unwrap_or(0)),
                    _ => (-1, 0),
                };
                let (last_contact_ms, applied_index) = if id == self.node.id && self.node.is_leader() {
                    (0, m.last_applied.map(|x| x.index).unwrap_or(0))
                } else {
                    (last_contact_ms, applied_index)
                };
                pb::NodeStatus {
                    id,
                    addr: if rec.addr.is_empty() {
                        membership.get_node(&id).map(|n| n.addr.clone()).unwrap_or_default()
                    } else {
                        rec.addr.clone()
                    },
                    region: rec.region.clone(),
                    zone: rec.zone.clone(),
                    role: role.to_string(),
                    state: if rec.id == 0 {
                        "joining".to_string()
                    } else {
                        state_name(rec.state()).to_string()
                    },
                    last_contact_ms,
                    applied_index,
                    version: rec.version.clone(),
                }
            })
            .collect()
    }

    /// A client of the leader's ClusterService, to relay leader-only calls (the caller's own
    /// authorization goes along, see `with_auth`).
    fn leader_client(&self) -> Result<ClusterServiceClient<tonic::transport::Channel>, ApiError> {
        let (_, addr) = self.node.leader().ok_or(ApiError::NoLeader)?;
        Ok(ClusterServiceClient::new(self.node.peers.channel(&addr)?))
    }
}

fn with_auth<T>(msg: T, auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(a) = auth {
        req.metadata_mut().insert("authorization", a);
    }
    req.set_timeout(Duration::from_secs(30));
    req
}

#[tonic::async_trait]
impl pb::cluster_service_server::ClusterService for ClusterRpc {
    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("Status");
        let linearizable = self.node.read_barrier(consistency(req.get_ref().consistency)).await?;
        let m = self.node.raft_metrics();
        let cluster_id = self.node.cluster_id.read().unwrap().clone();
        let nodes = self.node_statuses().await;
        Ok(Response::new(pb::StatusResponse {
            cluster_id,
            leader_id: m.current_leader.unwrap_or(0),
            term: m.current_term,
            commit_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            served_by: self.node.id,
            linearizable,
            nodes,
            voter_target: settings::voter_target(&self.node.state),
        }))
    }

    async fn list_nodes(&self, req: Request<pb::ListNodesRequest>) -> Result<Response<pb::ListNodesResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("ListNodes");
        let linearizable = self.node.read_barrier(consistency(req.get_ref().consistency)).await?;
        Ok(Response::new(pb::ListNodesResponse {
            nodes: self.node_statuses().await,
            linearizable,
        }))
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("RemoveNode");
        let id = req.get_ref().id;
        if id == 0 {
            return Err(ApiError::InvalidArgument(
                "give the id of the node to remove (see `meshctl node list`)".into(),
            )
            .into());
        }
        if self.node.is_leader() {
            membership::remove(&self.node, id).await?;
            return Ok(Response::new(pb::RemoveNodeResponse {}));
        }
        let auth = req.metadata().get("authorization").cloned();
        self.leader_client()?
            .remove_node(with_auth(pb::RemoveNodeRequest { id }, auth))
            .await
            .map_err(|s| ApiError::from_status(&s))?;
        Ok(Response::new(pb::RemoveNodeResponse {}))
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequestPublic>,
    ) -> Result<Response<pb::TransferLeaderResponsePublic>, Status> {
        let _t = self.node.metrics.rpc_timer("TransferLeader");
        let to = req.get_ref().to;
        if self.node.is_leader() {
            let new_leader = membership::transfer_leadership(&self.node, to).await?;
            return Ok(Response::new(pb::TransferLeaderResponsePublic { new_leader }));
        }
        let auth = req.metadata().get("authorization").cloned();
        let resp = self
            .leader_client()?
            .transfer_leader(with_auth(pb::TransferLeaderRequestPublic { to }, auth))
            .await
            .map_err(|s| ApiError::from_status(&s))?;
        Ok(resp)
    }

    async fn set_setting(
        &self,
        req: Request<pb::SetSettingRequest>,
    ) -> Result<Response<pb::SetSettingResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("SetSetting");
        let r = req.into_inner();
        settings::validate(&r.name, &r.value).map_err(ApiError::InvalidArgument)?;
        let cmd = pb::Command {
            at_ms: now_ms(),
            kind: Some(pb::command::Kind::SetSetting(pb::SetSetting {
                name: r.name.clone(),
                value: r.value.clone(),
            })),
        };
        self.node.write(cmd).await?;
        // The leader answers only after applying the write itself; a follower that forwarded it
        // waits until it has applied it too, so a local read right after sees it.
        if !self.node.is_leader() {
            self.node.read_barrier(ReadConsistency::Linearizable).await?;
        }
        Ok(Response::new(pb::SetSettingResponse {
            setting: self.node.state.setting(&r.name),
        }))
    }

    async fn get_setting(
        &self,
        req: Request<pb::GetSettingRequest>,
    ) -> Result<Response<pb::GetSettingResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("GetSetting");
        let r = req.into_inner();
        let default = settings::default_of(&r.name)
            .ok_or_else(|| ApiError::NotFound(format!("unknown setting `{}` (see `meshctl setting list`)", r.name)))?;
        let linearizable = self.node.read_barrier(consistency(r.consistency)).await?;
        let (setting, is_default) = match self.node.state.setting(&r.name) {
            Some(s) => (s, false),
            None => (
                pb::Setting {
                    name: r.name.clone(),
                    value: default.to_string(),
                    updated_at_ms: 0,
                },
                true,
            ),
        };
        Ok(Response::new(pb::GetSettingResponse {
            setting: Some(setting),
            linearizable,
            is_default,
        }))
    }

    async fn list_settings(
        &self,
        req: Request<pb::ListSettingsRequest>,
    ) -> Result<Response<pb::ListSettingsResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("ListSettings");
        let linearizable = self.node.read_barrier(consistency(req.get_ref().consistency)).await?;
        let settings = settings::all()
            .iter()
            .map(|spec| match self.node.state.setting(spec.name) {
                Some(s) => pb::SettingView {
                    name: s.name,
                    value: s.value,
                    is_default: false,
                    help: spec.help.to_string(),
                    updated_at_ms: s.updated_at_ms,
                },
                None => pb::SettingView {
                    name: spec.name.to_string(),
                    value: spec.default.to_string(),
                    is_default: true,
                    help: spec.help.to_string(),
                    updated_at_ms: 0,
                },
            })
            .collect();
        Ok(Response::new(pb::ListSettingsResponse { settings, linearizable }))
    }

    async fn list_workers(
        &self,
        req: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("ListWorkers");
        if req.get_ref().local || self.node.is_leader() {
            return Ok(Response::new(pb::ListWorkersResponse {
                node_id: self.node.id,
                is_leader: self.node.is_leader(),
                workers: self.node.workers.statuses(),
            }));
        }
        let auth = req.metadata().get("authorization").cloned();
        let resp = self
            .leader_client()?
            .list_workers(with_auth(pb::ListWorkersRequest { local: true }, auth))
            .await
            .map_err(|s| ApiError::from_status(&s))?;
        Ok(resp)
    }
}
