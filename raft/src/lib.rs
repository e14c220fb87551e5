//! mesh-raft: the replicated state of a bucketmesh cluster.
//!
//! This crate holds everything Raft persists and nothing that talks to the outside world:
//! - the openraft [`TypeConfig`] (commands and responses are `mesh_proto::v1` messages);
//! - the sled [`LogStore`] (log entries and vote as protobuf, flushed before acknowledged);
//! - the [`StateMachineStore`]: tables `cluster`, `nodes`, `settings`, `locations`,
//!   `credentials` (see [`config`]), `jobs` and `tasks` (see [`jobs`]) updated by the pure,
//!   deterministic [`apply::apply_command`], persisted atomically with last-applied, plus
//!   snapshots (protobuf `SnapshotData`);
//! - [`codec`]: lossless openraft <-> protobuf conversions, shared with node/'s Raft network;
//! - [`settings`]: the registry of cluster settings.
//!
//! No network, no clock (timestamps travel in `Command.at_ms`), no I/O outside the store under
//! the data dir. [`open`] opens both stores on one sled database and refuses damaged data instead
//! of re-initializing it.

use std::path::Path;

pub mod apply;
mod canonical;
pub mod codec;
pub mod config;
mod db;
mod error;
#[cfg(test)]
mod golden_tests;
pub mod jobs;
#[cfg(test)]
mod jobs_tests;
mod log_store;
pub mod settings;
mod state_machine;
mod table;
mod tables;

pub use codec::CodecError;
pub use db::FORMAT_VERSION;
pub use error::StoreError;
pub use log_store::LogStore;
pub use state_machine::{SnapshotBuilder, StateMachineStore};
pub use table::Table;
pub use tables::{AppliedState, StateReader, Tables};

pub use openraft;
pub use openraft::{BasicNode, LogId, StoredMembership, Vote};

/// A Raft node id (random in 1..2^53, persisted by node/).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of the mesh.
    pub TypeConfig:
        D = mesh_proto::v1::Command,
        R = mesh_proto::v1::CommandResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// The Raft handle node/ runs.
pub type MeshRaft = openraft::Raft<TypeConfig>;

/// Opens (or creates) the raft store under `dir` (sled database `dir/db`) and runs the integrity
/// check. Both stores share the database. Damaged or unknown data is an error, never silently
/// re-initialized.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    let db = db::open_db(dir)?;
    db::check_log(&db)?;
    let sm = StateMachineStore::load(db.clone())?;
    Ok((LogStore::new(db), sm))
}
