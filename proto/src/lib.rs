//! mesh-proto: the wire and storage messages of bucketmesh, generated from `proto/mesh/v1`.
//!
//! Everything that crosses a process boundary or lands on disk is one of these messages: the
//! replicated log entries and snapshots (state.proto), node-to-node RPCs (internal.proto) and the
//! public API (cluster.proto, config.proto, jobs.proto). Keeping one schema for all of them is what
//! lets nodes of different versions share a cluster during a rolling upgrade.
//!
//! Beside the generated code, this crate holds what every party must agree on about a message
//! without holding any state, so that meshctl needs nothing heavier than this crate:
//! - [`reason`]: the one table of machine-readable error reasons (`mesh-reason`);
//! - [`names`]: enum values by name, both ways;
//! - [`rules`]: well-formedness rules and request bounds shared by clients and the state machine.

pub mod names;
pub mod reason;
pub mod rules;

pub use reason::{Reason, REASON_KEY};

/// The generated messages and services of package `mesh.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("mesh.v1");
}

/// Encoded `FileDescriptorSet` of all mesh.v1 protos, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mesh_descriptor.bin"));
