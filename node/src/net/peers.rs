//! Connections to other nodes: one cached, mutually-authenticated tonic channel per peer address,
//! and the header every node-to-node request carries.
//!
//! A channel is created lazily on first use and dropped from the cache after a transport error,
//! so a peer that restarted (or moved) is dialled afresh instead of through a dead connection
//! (openraft issue #1770: a stale pooled connection kept a follower from ever hearing its leader).
//! HTTP/2 keep-alives detect a silently dead peer within a few seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mesh_proto::v1::{peer_service_client::PeerServiceClient, raft_service_client::RaftServiceClient, PeerHeader};
use tonic::transport::{Channel, Endpoint};

use crate::config::split_host_port;
use crate::error::ApiError;
use crate::net::tls::TlsMaterial;

/// Time allowed to open a TCP+TLS connection to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 ping interval on idle peer connections; a peer that misses a ping for
/// `KEEPALIVE_TIMEOUT` is considered gone and its connection closed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest message accepted from a peer (snapshot chunks and append batches stay far below).
pub const MAX_PEER_MESSAGE: usize = 64 * 1024 * 1024;

pub struct Peers {
    self_id: u64,
    tls: TlsMaterial,
    /// Outgoing connections are bound to this IP (the listen IP), so peers and fault proxies
    /// see a stable source address per node.
    source_ip: Option<IpAddr>,
    /// The cluster id once known; shared with the node, written when the cluster forms.
    cluster_id: Arc<RwLock<String>>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    pub fn new(self_id: u64, tls: TlsMaterial, source_ip: Option<IpAddr>, cluster_id: Arc<RwLock<String>>) -> Peers {
        Peers {
            self_id,
            tls,
            source_ip,
            cluster_id,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The header for a request to node `to` (0 when the target's id is not known yet).
    pub fn header(&self, to: u64) -> PeerHeader {
        PeerHeader {
            from: self.self_id,
            to,
            cluster_id: self.cluster_id.read().unwrap().clone(),
        }
    }

    /// The cached channel to `addr`, creating it if needed.
    pub fn channel(&self, addr: &str) -> Result<Channel, ApiError> {
        if let Some(ch) = self.channels.lock().unwrap().get(addr) {
            return Ok(ch.clone());
        }
        let (host, _) = split_host_port(addr)
            .ok_or_else(|| ApiError::InvalidArgument(format!("peer address `{addr}` is not host:port")))?;
        let endpoint = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| ApiError::InvalidArgument(format!("peer address `{addr}`: {e}")))?
            .tls_config(self.tls.client_config(host))
            .map_err(|e| ApiError::Internal(format!("TLS config for {addr}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .local_address(self.source_ip);
        let channel = endpoint.connect_lazy();
        self.channels.lock().unwrap().insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Forgets the channel to `addr` after a transport failure; the next call dials again.
    pub fn evict(&self, addr: &str) {
        self.channels.lock().unwrap().remove(addr);
    }

    pub fn raft_client(&self, addr: &str) -> Result<RaftServiceClient<Channel>, ApiError> {
        Ok(RaftServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    pub fn peer_client(&self, addr: &str) -> Result<PeerServiceClient<Channel>, ApiError> {
        Ok(PeerServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    /// Maps a failed peer call to an ApiError, evicting the channel when the transport failed.
    pub fn call_failed(&self, addr: &str, status: tonic::Status) -> ApiError {
        if is_transport_failure(&status) {
            self.evict(addr);
            return ApiError::Unavailable(format!("peer {addr} unreachable: {}", status.message()));
        }
        ApiError::from_status(&status)
    }
}

/// True when a status means the request may not have reached the peer's service at all.
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    status.metadata().get(mesh_proto::REASON_KEY).is_none()
        && matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        )
}
