//! A gRPC connection to one meshd node: TLS with the cluster CA, bearer token on every call.
//!
//! There is no plaintext mode: `http://` addresses are refused. The connection is made eagerly,
//! so an unreachable node or a TLS problem is reported by [`connect`] itself, already classified
//! (see [`crate::errors::classify_transport`]). The address may be a comma-separated list of
//! nodes: [`connect`] takes the first that answers, [`connect_to`] one in particular.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mesh_proto::v1::cluster_service_client::ClusterServiceClient;
use mesh_proto::v1::credential_service_client::CredentialServiceClient;
use mesh_proto::v1::job_service_client::JobServiceClient;
use mesh_proto::v1::location_service_client::LocationServiceClient;
use rustls::pki_types::{pem::PemObject, CertificateDer};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::errors::classify_transport;
pub use crate::errors::ClientError;

/// Time allowed for TCP connect and, separately, for the TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one RPC.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// gRPC port assumed when the address has none.
pub const DEFAULT_PORT: u16 = 7400;
/// Largest response accepted from JobService (a job report is up to 16 MiB by default, 64 MiB
/// at most).
pub const MAX_JOB_MESSAGE: usize = 80 << 20;

/// Where and how to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientOpts {
    /// `host:port` or `https://host:port` of any node, or several separated by commas.
    pub addr: String,
    /// PEM file of the cluster CA.
    pub cacert: PathBuf,
    /// Bearer token sent as `authorization: Bearer <token>`.
    pub token: String,
}

impl fmt::Debug for ClientOpts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOpts")
            .field("addr", &self.addr)
            .field("cacert", &self.cacert)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// ClusterService client with the bearer-token interceptor.
pub type ClusterClient = ClusterServiceClient<InterceptedService<Channel, BearerAuth>>;

/// LocationService client with the bearer-token interceptor.
pub type LocationClient = LocationServiceClient<InterceptedService<Channel, BearerAuth>>;
/// CredentialService client with the bearer-token interceptor.
pub type CredentialClient = CredentialServiceClient<InterceptedService<Channel, BearerAuth>>;
/// JobService client with the bearer-token interceptor.
pub type JobClient = JobServiceClient<InterceptedService<Channel, BearerAuth>>;

/// The service clients of one connection (cheap to clone; they share the channel).
#[derive(Clone, Debug)]
pub struct Clients {
    /// mesh.v1.ClusterService.
    pub cluster: ClusterClient,
    /// mesh.v1.LocationService.
    pub location: LocationClient,
    /// mesh.v1.CredentialService.
    pub credential: CredentialClient,
    /// mesh.v1.JobService.
    pub job: JobClient,
    /// The node's address as `host:port`, for messages.
    pub addr: String,
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct BearerAuth {
    value: MetadataValue<Ascii>,
}

impl BearerAuth {
    /// Checks that the token can travel in a header.
    pub fn new(token: &str) -> Result<Self, ClientError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(ClientError::BadToken {
                reason: "it is empty".into(),
            });
        }
        let value = format!("Bearer {token}").parse().map_err(|_| ClientError::BadToken {
            reason: "it contains characters not allowed in a header".into(),
        })?;
        Ok(BearerAuth { value })
    }
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerAuth(<redacted>)")
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.value.clone());
        Ok(req)
    }
}

/// A parsed node address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP (IPv6 without brackets); also the TLS server name.
    pub host: String,
    /// gRPC port.
    pub port: u16,
}

impl Target {
    /// `host:port` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host:port`, `https://host:port` or `[v6]:port`; a missing port means 7400.
pub fn parse_addr(addr: &str) -> Result<Target, ClientError> {
    let raw = addr.trim();
    let bad = |reason: &str| ClientError::BadAddress {
        addr: addr.into(),
        reason: reason.into(),
    };
    let lower = raw.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        return Err(ClientError::Plaintext { addr: raw.into() });
    } else if lower.starts_with("https://") {
        &raw["https://".len()..]
    } else if raw.contains("://") {
        return Err(bad("only https:// is supported"));
    } else {
        raw
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(bad("it is empty"));
    }
    if rest.contains('/') {
        return Err(bad("expected host:port without a path"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or_else(|| bad("expected :port after ']'"))?),
            ),
        }
    } else if rest.matches(':').count() > 1 {
        return Err(bad("write IPv6 addresses as [addr]:port"));
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        },
    };
    Ok(Target {
        host: host.to_string(),
        port,
    })
}

/// The node addresses of `--addr` / MESH_ADDR: one, or several separated by commas, in order.
pub fn addresses(addr: &str) -> Vec<String> {
    addr.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// Connects to the first node of `opts.addr` (one address or a comma-separated list, tried in
/// order) that answers. Every address is checked before any is dialled; a bad CA file or token
/// is reported at once. When none answers, the error names each address.
pub async fn connect(opts: &ClientOpts) -> Result<Clients, ClientError> {
    let addrs = addresses(&opts.addr);
    if addrs.is_empty() {
        return Err(ClientError::BadAddress {
            addr: opts.addr.clone(),
            reason: "it is empty".into(),
        });
    }
    for a in &addrs {
        parse_addr(a)?;
    }
    let mut errors: Vec<ClientError> = Vec::new();
    for a in &addrs {
        match connect_to(opts, a).await {
            Ok(c) => return Ok(c),
            Err(e @ (ClientError::CaCert { .. } | ClientError::BadToken { .. })) => return Err(e),
            Err(e) => errors.push(e),
        }
    }
    if errors.len() == 1 {
        return Err(errors.remove(0));
    }
    if let Some(i) = errors
        .iter()
        .position(|e| !matches!(e, ClientError::Unreachable { .. }))
    {
        return Err(errors.remove(i));
    }
    let reasons: Vec<String> = errors
        .iter()
        .map(|e| match e {
            ClientError::Unreachable { addr, reason } => format!("{addr}: {reason}"),
            other => other.to_string(),
        })
        .collect();
    Err(ClientError::Unreachable {
        addr: addrs.join(", "),
        reason: format!("no node answered ({})", reasons.join("; ")),
    })
}

/// Connects to the one node at `addr` over TLS (verified against `opts.cacert`, server name =
/// the address's host) and returns clients that send `opts.token` with every call.
pub async fn connect_to(opts: &ClientOpts, addr: &str) -> Result<Clients, ClientError> {
    let target = parse_addr(addr)?;
    let auth = BearerAuth::new(&opts.token)?;
    let authority = target.authority();
    let ca_err = |reason: String| ClientError::CaCert {
        path: opts.cacert.clone(),
        reason,
    };
    let ca_pem = std::fs::read(&opts.cacert).map_err(|e| ca_err(e.to_string()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&ca_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ca_err(format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(ca_err("it holds no PEM certificate".into()));
    }
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca_pem))
        .domain_name(target.host.clone())
        .timeout(CONNECT_TIMEOUT);
    let bad = |e: tonic::transport::Error| ClientError::BadAddress {
        addr: addr.to_string(),
        reason: crate::errors::chain_text(&e),
    };
    let endpoint = Endpoint::from_shared(format!("https://{authority}"))
        .map_err(bad)?
        .tls_config(tls)
        .map_err(bad)?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    let channel = match tokio::time::timeout(CONNECT_TIMEOUT * 2, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => return Err(classify_transport(&e, &authority, Some(&opts.cacert))),
        Err(_) => {
            return Err(ClientError::Unreachable {
                addr: authority,
                reason: "no answer within the connect timeout".into(),
            })
        }
    };
    Ok(Clients {
        cluster: ClusterServiceClient::with_interceptor(channel.clone(), auth.clone()),
        location: LocationServiceClient::with_interceptor(channel.clone(), auth.clone()),
        credential: CredentialServiceClient::with_interceptor(channel.clone(), auth.clone()),
        job: JobServiceClient::with_interceptor(channel, auth).max_decoding_message_size(MAX_JOB_MESSAGE),
        addr: authority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let t = |s: &str| parse_addr(s).map(|t| t.authority());
        assert_eq!(t("node1:7400").unwrap(), "node1:7400");
        assert_eq!(t("https://10.0.0.1:7500/").unwrap(), "10.0.0.1:7500");
        assert_eq!(t("HTTPS://h:1").unwrap(), "h:1");
        assert_eq!(t("localhost").unwrap(), "localhost:7400");
        assert_eq!(t("[::1]:7400").unwrap(), "[::1]:7400");
        assert_eq!(parse_addr("[::1]:7400").unwrap().host, "::1");
        assert!(matches!(parse_addr("http://h:1"), Err(ClientError::Plaintext { .. })));
        assert!(matches!(parse_addr("grpc://h:1"), Err(ClientError::BadAddress { .. })));
        assert!(matches!(parse_addr("h:0"), Err(ClientError::BadAddress { .. })));
        assert!(matches!(parse_addr("h:x"), Err(ClientError::BadAddress { .. })));
        assert!(matches!(parse_addr("::1:7400"), Err(ClientError::BadAddress { .. })));
        assert!(matches!(parse_addr(" "), Err(ClientError::BadAddress { .. })));
        assert!(matches!(parse_addr("h:1/x"), Err(ClientError::BadAddress { .. })));
    }

    #[test]
    fn address_lists() {
        assert_eq!(super::addresses("a:1"), ["a:1"]);
        assert_eq!(super::addresses(" a:1 , b:2,,c "), ["a:1", "b:2", "c"]);
        assert!(super::addresses(" , ").is_empty());
    }

    #[test]
    fn token_header() {
        assert!(BearerAuth::new("abc123").is_ok());
        assert!(matches!(BearerAuth::new("  "), Err(ClientError::BadToken { .. })));
        assert!(matches!(BearerAuth::new("a\nb"), Err(ClientError::BadToken { .. })));
    }
}
