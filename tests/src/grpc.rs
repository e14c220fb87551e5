//! A direct gRPC client of `mesh.v1.ClusterService`: TLS with the cluster CA and a bearer token,
//! or deliberately plaintext (`http://`) to check that nodes refuse it.
//!
//! Tests use the `meshctl` binary for everything an operator does; this client is for the write
//! benchmark (no process spawn per request) and for protocol-level negative tests.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mesh_proto::v1::cluster_service_client::ClusterServiceClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The client type returned by [`connect`].
pub type Client = ClusterServiceClient<InterceptedService<Channel, Bearer>>;

fn bearer(token: Option<&str>) -> anyhow::Result<Bearer> {
    Ok(Bearer(match token {
        Some(t) => Some(format!("Bearer {t}").parse()?),
        None => None,
    }))
}

/// Health client (grpc.health.v1) with the bearer interceptor.
pub type HealthClient = tonic_health::pb::health_client::HealthClient<InterceptedService<Channel, Bearer>>;

/// grpc.health.v1 `Check` for service "" on `addr` over TLS; returns the serving status name
/// (`SERVING`, `NOT_SERVING`, ...).
pub async fn health(addr: SocketAddr, ca_pem: &Path, token: Option<&str>) -> anyhow::Result<String> {
    let ch = tls_channel(addr, ca_pem).await?;
    let mut cl = tonic_health::pb::health_client::HealthClient::with_interceptor(ch, bearer(token)?);
    let r = cl
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await?
        .into_inner();
    Ok(
        tonic_health::pb::health_check_response::ServingStatus::try_from(r.status)
            .map(|s| s.as_str_name().to_string())
            .unwrap_or_else(|_| format!("status {}", r.status)),
    )
}

/// A TLS channel to `addr` trusting `ca_pem`.
pub async fn tls_channel(addr: SocketAddr, ca_pem: &Path) -> anyhow::Result<Channel> {
    let ca = std::fs::read(ca_pem)?;
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    Ok(Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// Connects over TLS to `addr`, trusting `ca_pem`, sending `token`.
pub async fn connect(addr: SocketAddr, ca_pem: &Path, token: Option<&str>) -> anyhow::Result<Client> {
    let ca = std::fs::read(ca_pem)?;
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    let ch = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(ClusterServiceClient::with_interceptor(ch, bearer(token)?))
}

/// Connects with `http://` (no TLS) — a node must refuse every call made this way.
pub async fn connect_plaintext(addr: SocketAddr, token: Option<&str>) -> anyhow::Result<Client> {
    let ch = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await?;
    Ok(ClusterServiceClient::with_interceptor(ch, bearer(token)?))
}

/// The meshctl library client (`meshctl::client::connect`) for node address `addr` — what the
/// benchmarks use, so they measure the same client code operators run.
pub async fn meshctl_client(
    addr: SocketAddr,
    ca_pem: &Path,
    token: &str,
) -> Result<meshctl::client::Clients, meshctl::client::ClientError> {
    meshctl::client::connect(&meshctl::client::ClientOpts {
        addr: addr.to_string(),
        cacert: ca_pem.to_path_buf(),
        token: token.to_string(),
    })
    .await
}
