//! PeerService: node-to-node coordination. Forming (Hello), joining (Join, forwarded to the
//! leader), liveness (Heartbeat), forwarded writes (Forward), linearizable reads on followers
//! (ReadIndex), the pieces of a leadership transfer (TransferLeader, Campaign), and handing the
//! cluster data key to another node of the cluster (GetDataKey).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::cluster::membership;
use crate::error::ApiError;
use crate::node::{Liveness, Node};

pub struct PeerRpc {
    pub node: Arc<Node>,
}

impl PeerRpc {
    /// Errors unless this node leads (NO_LEADER makes the caller look up the leader and retry).
    fn require_leader(&self) -> Result<(), ApiError> {
        if self.node.is_leader() {
            Ok(())
        } else {
            Err(ApiError::NoLeader)
        }
    }
}

#[tonic::async_trait]
impl pb::peer_service_server::PeerService for PeerRpc {
    async fn hello(&self, req: Request<pb::HelloRequest>) -> Result<Response<pb::HelloResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("Hello");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        let initialized = self.node.raft.is_initialized().await.unwrap_or(false);
        let (leader_id, leader_addr) = self.node.leader().unwrap_or((0, String::new()));
        Ok(Response::new(pb::HelloResponse {
            node_id: self.node.id,
            addr: self.node.cfg.advertise.clone(),
            cluster_id: self.node.cluster_id.read().unwrap().clone(),
            initialized,
            leader_id,
            leader_addr,
            bootstrap_expect: self.node.cfg.bootstrap_expect,
        }))
    }

    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("Join");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        let record = r
            .node
            .ok_or_else(|| ApiError::InvalidArgument("join request without a node record".into()))?;
        if self.node.is_leader() {
            membership::admit(&self.node, record).await?;
        } else {
            // Any member forwards a join to the leader.
            let (leader, addr) = self.node.leader().ok_or(ApiError::NoLeader)?;
            let mut client = self.node.peers.peer_client(&addr)?;
            let header = r.header.map(|mut h| {
                h.to = leader;
                h
            });
            client
                .join(pb::JoinRequest {
                    header,
                    node: Some(record),
                })
                .await
                .map_err(|s| self.node.peers.call_failed(&addr, s))?;
        }
        let cluster_id = self.node.cluster_id.read().unwrap().clone();
        Ok(Response::new(pb::JoinResponse {
            cluster_id,
            leader_id: self.node.leader().map(|l| l.0).unwrap_or(0),
        }))
    }

    async fn heartbeat(&self, req: Request<pb::HeartbeatRequest>) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("Heartbeat");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        self.require_leader()?;
        let from = r.header.as_ref().map(|h| h.from).unwrap_or(0);
        self.node.liveness.lock().unwrap().insert(
            from,
            Liveness {
                last_heard: Instant::now(),
                applied_index: r.applied_index,
                version: r.version,
            },
        );
        Ok(Response::new(pb::HeartbeatResponse {
            leader_id: self.node.id,
        }))
    }

    async fn forward(&self, req: Request<pb::ForwardRequest>) -> Result<Response<pb::CommandResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("Forward");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        self.require_leader()?;
        let cmd = r
            .command
            .ok_or_else(|| ApiError::InvalidArgument("forwarded write without a command".into()))?;
        Ok(Response::new(self.node.write_local(cmd).await?))
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("TransferLeader");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        self.require_leader()?;
        let new_leader = membership::transfer_leadership(&self.node, r.to).await?;
        Ok(Response::new(pb::TransferLeaderResponse { new_leader }))
    }

    async fn leader_view(
        &self,
        req: Request<pb::LeaderViewRequest>,
    ) -> Result<Response<pb::LeaderViewResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("LeaderView");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        self.require_leader()?;
        Ok(Response::new(pb::LeaderViewResponse {
            nodes: membership::liveness_view(&self.node),
        }))
    }

    async fn campaign(&self, req: Request<pb::CampaignRequest>) -> Result<Response<pb::CampaignResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("Campaign");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        let raft = self.node.raft.clone();
        if r.hold_elect_ms > 0 {
            // Hold our own election timer so that the transfer target wins the election.
            raft.runtime_config().elect(false);
            let hold = Duration::from_millis(r.hold_elect_ms.min(30_000));
            let raft = raft.clone();
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                raft.runtime_config().elect(true);
            });
        }
        if r.elect_after_ms > 0 {
            let after = Duration::from_millis(r.elect_after_ms.min(30_000));
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = raft.trigger().elect().await;
            });
        }
        Ok(Response::new(pb::CampaignResponse {}))
    }

    async fn get_data_key(
        &self,
        req: Request<pb::GetDataKeyRequest>,
    ) -> Result<Response<pb::GetDataKeyResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("GetDataKey");
        // PeerAuth has checked the caller's certificate (cluster CA); the header its cluster.
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        let key = crate::secrets::require_key(&self.node)?;
        let from = r.header.as_ref().map(|h| h.from).unwrap_or(0);
        tracing::info!(to_node = from, "handing the cluster data key to a peer");
        Ok(Response::new(pb::GetDataKeyResponse {
            key: key.expose_bytes().to_vec(),
            sha256: key.fingerprint(),
        }))
    }

    async fn read_index(&self, req: Request<pb::ReadIndexRequest>) -> Result<Response<pb::ReadIndexResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("ReadIndex");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        Ok(Response::new(pb::ReadIndexResponse {
            read_index: self.node.leader_read_index().await?,
        }))
    }
}
