//! mesh-node: `meshd`, a bucketmesh node. Everything with effects lives here: the network, the
//! services, the background duties, the job worker. The replicated state itself (deterministic,
//! effect-free) is in mesh-raft, the copy engine in mesh-engine, certificates in mesh-pki.
//!
//! # Layout
//! - [`run`]: start-up, servers, graceful shutdown (the boot log, top to bottom).
//! - [`config`]: flags, env and TOML merged and validated.
//! - [`node`]: the running node; `write` (through the leader) and `read_barrier` (linearizable reads).
//! - [`net`]: the Raft network over tonic, one cached mTLS channel per peer, TLS material.
//! - [`cluster`]: forming or joining a mesh, membership and autopilot, the cluster's duties.
//! - [`background`]: named workers with their own period, on every node or only on the leader.
//! - [`jobs`]: the leader's job scheduler and the worker that runs tasks on every node.
//! - [`secrets`]: the cluster data key and the encrypted secrets of credentials.
//! - [`server`]: gRPC services (Raft RPC, peer coordination, the public API) and `auth`, the one
//!   place callers are checked.
//! - [`error`]: the one place errors become gRPC statuses.
//! - [`metrics`], [`dev`]: Prometheus over HTTPS, `meshd --dev`.

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
