//! mesh-node: `meshd`, a bucketmesh node. Everything with effects lives here; the replicated
//! state itself (deterministic, effect-free) is in mesh-raft.
//!
//! # Layout
//! - [`config`]: flags, env and TOML merged and validated.
//! - [`run`]: start-up, servers, graceful shutdown.
//! - [`node`]: the running node; `write` (through the leader) and `read_barrier` (linearizable reads).
//! - [`network`], [`peers`]: the Raft network over tonic, one cached mTLS channel per peer.
//! - [`server`]: gRPC services (Raft RPC, peer coordination, public ClusterService).
//! - [`bootstrap`]: forming a mesh (`--bootstrap-expect`) or joining one (`--join`).
//! - [`controller`], [`membership`]: heartbeats, liveness, root token, autopilot, leadership transfer.
//! - [`auth`]: bearer tokens for clients, certificates for peers — the one place callers are checked.
//! - [`error`]: the one place errors become gRPC statuses.
//! - [`secrets`]: the cluster data key and the encrypted secrets of credentials.
//! - [`tls`], [`identity`], [`dev`], [`metrics`].

pub mod background;
pub mod cluster;
pub mod config;
pub mod dev;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod net;
pub mod node;
pub mod run;
pub mod secrets;
pub mod server;
