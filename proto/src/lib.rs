//! mesh-proto: the wire and storage messages of bucketmesh, generated from `proto/mesh/v1`.
//!
//! Everything that crosses a process boundary or lands on disk is one of these messages: the
//! replicated log entries and snapshots (state.proto), node-to-node RPCs (internal.proto) and the
//! public API (cluster.proto). Keeping one schema for all three is what lets nodes of different
//! versions share a cluster during a rolling upgrade.

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("mesh.v1");
}

/// Encoded `FileDescriptorSet` of all mesh.v1 protos, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mesh_descriptor.bin"));
