//! RaftService: receives AppendEntries, Vote and snapshot chunks from the leader/candidates,
//! checks they are meant for this node and cluster, and hands them to openraft.

use std::sync::Arc;

use mesh_proto::v1 as pb;
use mesh_raft::codec;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::net::network::{append_response_to_pb, missing};
use crate::node::Node;

pub struct RaftRpc {
    pub node: Arc<Node>,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidArgument(format!("malformed Raft message: {e}"))
}

fn fatal<E: std::fmt::Display>(e: RaftError<u64, E>) -> ApiError {
    ApiError::Unavailable(format!("Raft on this node is not running: {e}"))
}

#[tonic::async_trait]
impl pb::raft_service_server::RaftService for RaftRpc {
    async fn append_entries(
        &self,
        req: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("AppendEntries");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        let entries = r
            .entries
            .iter()
            .map(codec::entry_from_pb)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let rpc = AppendEntriesRequest {
            vote: codec::vote_from_pb(r.vote.as_ref().ok_or_else(|| bad(missing("vote")))?),
            prev_log_id: codec::opt_log_id_from_pb(&r.prev_log_id),
            entries,
            leader_commit: codec::opt_log_id_from_pb(&r.leader_commit),
        };
        let resp = self.node.raft.append_entries(rpc).await.map_err(fatal)?;
        Ok(Response::new(append_response_to_pb(&resp)))
    }

    async fn vote(&self, req: Request<pb::VoteRequest>) -> Result<Response<pb::VoteResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("Vote");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        let rpc = VoteRequest {
            vote: codec::vote_from_pb(r.vote.as_ref().ok_or_else(|| bad(missing("vote")))?),
            last_log_id: codec::opt_log_id_from_pb(&r.last_log_id),
        };
        let resp = self.node.raft.vote(rpc).await.map_err(fatal)?;
        Ok(Response::new(pb::VoteResponse {
            vote: Some(codec::vote_to_pb(&resp.vote)),
            vote_granted: resp.vote_granted,
            last_log_id: codec::opt_log_id_to_pb(&resp.last_log_id),
        }))
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("InstallSnapshot");
        let r = req.into_inner();
        self.node.check_peer_header(r.header.as_ref())?;
        let rpc = InstallSnapshotRequest {
            vote: codec::vote_from_pb(r.vote.as_ref().ok_or_else(|| bad(missing("vote")))?),
            meta: codec::snapshot_meta_from_pb(r.meta.as_ref().ok_or_else(|| bad(missing("meta")))?).map_err(bad)?,
            offset: r.offset,
            data: r.data,
            done: r.done,
        };
        match self.node.raft.install_snapshot(rpc).await {
            Ok(resp) => Ok(Response::new(pb::InstallSnapshotResponse {
                vote: Some(codec::vote_to_pb(&resp.vote)),
            })),
            Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => {
                Err(ApiError::SnapshotMismatch(m.to_string()).into())
            }
            Err(e) => Err(fatal(e).into()),
        }
    }
}
