//! Shared test helpers: an in-process ClusterService (fixed answers, bearer token required) served
//! over TLS made by `mesh_pki`, or over plaintext to test the refusal.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mesh_pki::{create_ca, create_node_cert, NodeCertRequest};
use mesh_proto::v1::cluster_service_server::{ClusterService, ClusterServiceServer};
use mesh_proto::v1::*;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

/// The token the fake server accepts.
pub const TOKEN: &str = "s3cret-token";

/// The StatusResponse the fake server returns.
pub fn fixed_status() -> StatusResponse {
    StatusResponse {
        cluster_id: "fake-cluster".into(),
        leader_id: 7,
        term: 3,
        commit_index: 42,
        served_by: 7,
        linearizable: true,
        voter_target: 3,
        nodes: vec![NodeStatus {
            id: 7,
            addr: "127.0.0.1:7400".into(),
            region: "r1".into(),
            zone: "z1".into(),
            role: "voter".into(),
            state: "active".into(),
            last_contact_ms: 0,
            applied_index: 42,
            version: "0.1.0".into(),
        }],
    }
}

fn with_reason(mut s: Status, reason: &'static str) -> Status {
    s.metadata_mut()
        .insert(meshctl::errors::REASON_KEY, reason.parse().unwrap());
    s
}

struct Fake;

#[tonic::async_trait]
impl ClusterService for Fake {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(fixed_status()))
    }
    async fn list_nodes(&self, _: Request<ListNodesRequest>) -> Result<Response<ListNodesResponse>, Status> {
        Ok(Response::new(ListNodesResponse {
            nodes: fixed_status().nodes,
            linearizable: false,
        }))
    }
    async fn remove_node(&self, _: Request<RemoveNodeRequest>) -> Result<Response<RemoveNodeResponse>, Status> {
        Err(with_reason(
            Status::not_found("node 99 is not a member; see `meshctl node list`"),
            "NOT_FOUND",
        ))
    }
    async fn transfer_leader(
        &self,
        _: Request<TransferLeaderRequestPublic>,
    ) -> Result<Response<TransferLeaderResponsePublic>, Status> {
        Ok(Response::new(TransferLeaderResponsePublic { new_leader: 8 }))
    }
    async fn set_setting(&self, _: Request<SetSettingRequest>) -> Result<Response<SetSettingResponse>, Status> {
        Err(with_reason(Status::unavailable("no leader"), "NO_LEADER"))
    }
    async fn get_setting(&self, _: Request<GetSettingRequest>) -> Result<Response<GetSettingResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn list_settings(&self, _: Request<ListSettingsRequest>) -> Result<Response<ListSettingsResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn list_workers(
        &self,
        _: Request<mesh_proto::v1::ListWorkersRequest>,
    ) -> Result<Response<mesh_proto::v1::ListWorkersResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}

/// A CA in `dir` and a certificate for node `n1` valid for 127.0.0.1 only; returns (cert, key) PEM.
pub fn make_pki(dir: &Path) -> (String, String) {
    create_ca(dir, false, 30).unwrap();
    let req = NodeCertRequest {
        node: "n1".into(),
        ips: vec!["127.0.0.1".into()],
        dns: vec![],
        days: 30,
    };
    let files = create_node_cert(dir, &req).unwrap();
    (
        std::fs::read_to_string(files.cert).unwrap(),
        std::fs::read_to_string(files.key).unwrap(),
    )
}

/// Path of the CA made by [`make_pki`].
pub fn ca_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// Serves the fake on 127.0.0.1:0 (TLS if `identity` is given) and returns its address.
pub async fn serve(identity: Option<(String, String)>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = ClusterServiceServer::with_interceptor(Fake, |req: Request<()>| {
        let ok = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {TOKEN}"));
        if ok {
            Ok(req)
        } else {
            Err(with_reason(Status::unauthenticated("invalid token"), "UNAUTHENTICATED"))
        }
    });
    let mut builder = Server::builder();
    if let Some((cert, key)) = identity {
        let tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        builder = builder.tls_config(tls).unwrap();
    }
    let router = builder.add_service(svc);
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    addr
}

/// A 127.0.0.1 port with nothing listening.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
