//! gRPC services of a node, all on its one TLS port:
//! - `raft`: RaftService, the receiving side of the Raft network (mutual TLS).
//! - `peer`: PeerService, node-to-node coordination: forming, joining, heartbeats, forwarded
//!   writes, read index, leadership transfer (mutual TLS).
//! - `cluster`: ClusterService, the public administration API (bearer token).
//! - `config`: LocationService and CredentialService, the replicated configuration of the copy
//!   engine (bearer token).
//! - `jobs`: JobService, copy / move / sync jobs: submit, list, watch, control, logs, report
//!   (bearer token).
//!
//! - `auth`: bearer tokens for clients, certificates for peers: the one place callers are checked.
//!
//! Handlers return `Result<_, ApiError>`; `crate::error` turns that into a status.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod jobs;
pub mod peer;
pub mod raft;

use mesh_proto::v1::ReadConsistency;

/// The consistency a read request asked for; unset (or unknown) means linearizable.
pub fn consistency(v: i32) -> ReadConsistency {
    match ReadConsistency::try_from(v).unwrap_or(ReadConsistency::Linearizable) {
        ReadConsistency::Unspecified => ReadConsistency::Linearizable,
        c => c,
    }
}
