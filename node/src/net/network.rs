//! The Raft network: openraft's `RaftNetworkFactory`/`RaftNetwork` over tonic.
//!
//! openraft calls these to send AppendEntries, Vote and snapshot chunks to one target node. Each
//! call converts the openraft message to protobuf (mesh.v1 internal.proto), stamps the header with
//! the target's node id and our cluster id (the receiver refuses a message meant for another node
//! or cluster), and sends it over the peer's cached channel. Connection failures become
//! `Unreachable` (openraft backs off), anything else `Network` (it retries).

use std::sync::Arc;
use std::time::Duration;

use mesh_proto::v1 as pb;
use mesh_raft::{codec, NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, SnapshotMismatch, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, SnapshotSegmentId};

use crate::net::peers::{is_transport_failure, Peers};

pub struct Network {
    pub peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerLink {
        PeerLink {
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

/// openraft's handle on one target node.
pub struct PeerLink {
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl PeerLink {
    fn fail<E: std::error::Error>(&self, status: tonic::Status) -> RpcErr<E> {
        if is_transport_failure(&status) {
            self.peers.evict(&self.addr);
            RPCError::Unreachable(Unreachable::new(&StatusError(status)))
        } else {
            RPCError::Network(NetworkError::new(&StatusError(status)))
        }
    }

    fn request<T>(&self, msg: T, option: &RPCOption) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(option.hard_ttl());
        req
    }
}

impl RaftNetwork<TypeConfig> for PeerLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let msg = pb::AppendEntriesRequest {
            header: Some(self.peers.header(self.target)),
            vote: Some(codec::vote_to_pb(&rpc.vote)),
            prev_log_id: codec::opt_log_id_to_pb(&rpc.prev_log_id),
            entries: rpc.entries.iter().map(codec::entry_to_pb).collect(),
            leader_commit: codec::opt_log_id_to_pb(&rpc.leader_commit),
        };
        let mut client = self
            .peers
            .raft_client(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let resp = client
            .append_entries(self.request(msg, &option))
            .await
            .map_err(|s| self.fail(s))?
            .into_inner();
        append_response_from_pb(&resp).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let msg = pb::InstallSnapshotRequest {
            header: Some(self.peers.header(self.target)),
            vote: Some(codec::vote_to_pb(&rpc.vote)),
            meta: Some(codec::snapshot_meta_to_pb(&rpc.meta)),
            offset: rpc.offset,
            data: rpc.data,
            done: rpc.done,
        };
        let mut client = self
            .peers
            .raft_client(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        match client.install_snapshot(self.request(msg, &option)).await {
            Ok(resp) => {
                let vote = resp
                    .into_inner()
                    .vote
                    .ok_or_else(|| RPCError::Network(NetworkError::new(&missing("vote"))))?;
                Ok(InstallSnapshotResponse {
                    vote: codec::vote_from_pb(&vote),
                })
            }
            Err(status) if crate::error::reason_of(&status) == Some(mesh_proto::Reason::SnapshotMismatch) => {
                // The receiver lost its partial snapshot (e.g. it restarted): start over.
                let mismatch = SnapshotMismatch {
                    expect: SnapshotSegmentId {
                        id: rpc.meta.snapshot_id.clone(),
                        offset: 0,
                    },
                    got: SnapshotSegmentId {
                        id: rpc.meta.snapshot_id.clone(),
                        offset: rpc.offset,
                    },
                };
                Err(RPCError::RemoteError(RemoteError::new(
                    self.target,
                    RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch)),
                )))
            }
            Err(status) => Err(self.fail(status)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> Result<VoteResponse<NodeId>, RpcErr> {
        let msg = pb::VoteRequest {
            header: Some(self.peers.header(self.target)),
            vote: Some(codec::vote_to_pb(&rpc.vote)),
            last_log_id: codec::opt_log_id_to_pb(&rpc.last_log_id),
        };
        let mut client = self
            .peers
            .raft_client(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let resp = client
            .vote(self.request(msg, &option))
            .await
            .map_err(|s| self.fail(s))?
            .into_inner();
        let vote = resp
            .vote
            .ok_or_else(|| RPCError::Network(NetworkError::new(&missing("vote"))))?;
        Ok(VoteResponse {
            vote: codec::vote_from_pb(&vote),
            vote_granted: resp.vote_granted,
            last_log_id: codec::opt_log_id_from_pb(&resp.last_log_id),
        })
    }

    fn backoff(&self) -> Backoff {
        // An unreachable peer is retried every 500 ms: quick to notice its return, cheap while down.
        Backoff::new(std::iter::repeat(Duration::from_millis(500)))
    }
}

/// Encodes openraft's AppendEntries response.
pub fn append_response_to_pb(resp: &AppendEntriesResponse<NodeId>) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Kind;
    let mut out = pb::AppendEntriesResponse::default();
    match resp {
        AppendEntriesResponse::Success => out.set_kind(Kind::Success),
        AppendEntriesResponse::PartialSuccess(m) => {
            out.set_kind(Kind::PartialSuccess);
            out.matched = codec::opt_log_id_to_pb(m);
        }
        AppendEntriesResponse::Conflict => out.set_kind(Kind::Conflict),
        AppendEntriesResponse::HigherVote(v) => {
            out.set_kind(Kind::HigherVote);
            out.higher_vote = Some(codec::vote_to_pb(v));
        }
    }
    out
}

pub fn append_response_from_pb(resp: &pb::AppendEntriesResponse) -> Result<AppendEntriesResponse<NodeId>, WireError> {
    use pb::append_entries_response::Kind;
    Ok(match resp.kind() {
        Kind::Success => AppendEntriesResponse::Success,
        Kind::PartialSuccess => AppendEntriesResponse::PartialSuccess(codec::opt_log_id_from_pb(&resp.matched)),
        Kind::Conflict => AppendEntriesResponse::Conflict,
        Kind::HigherVote => AppendEntriesResponse::HigherVote(codec::vote_from_pb(
            resp.higher_vote.as_ref().ok_or_else(|| missing("higher_vote"))?,
        )),
        Kind::Unspecified => return Err(missing("kind")),
    })
}

/// A required field absent from a peer's message.
#[derive(Debug, thiserror::Error)]
#[error("malformed peer message: field `{0}` is missing")]
pub struct WireError(pub &'static str);

pub fn missing(field: &'static str) -> WireError {
    WireError(field)
}

/// A tonic status as a std error (openraft's error constructors take `&impl Error`).
#[derive(Debug)]
struct StatusError(tonic::Status);

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.0.code(), self.0.message())
    }
}
impl std::error::Error for StatusError {}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, Vote};

    #[test]
    fn append_responses_round_trip() {
        let cases = vec![
            AppendEntriesResponse::Success,
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::PartialSuccess(Some(LogId::new(CommittedLeaderId::new(3, 7), 42))),
            AppendEntriesResponse::HigherVote(Vote::new(9, 2)),
        ];
        for c in cases {
            assert_eq!(append_response_from_pb(&append_response_to_pb(&c)).unwrap(), c);
        }
        assert!(append_response_from_pb(&pb::AppendEntriesResponse::default()).is_err());
    }
}
