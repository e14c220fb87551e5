//! Errors of the store, and their mapping to openraft's `StorageError` where the traits need it.

use std::path::PathBuf;

use openraft::{AnyError, StorageError, StorageIOError};

use crate::codec::CodecError;
use crate::NodeId;

/// What went wrong opening or using the raft store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open the database (missing permissions, locked by another process, ...).
    #[error("cannot open the raft store under data dir {dir}: {source}")]
    Open { dir: PathBuf, source: sled::Error },

    /// The data is present but inconsistent or unreadable. Never repaired silently.
    #[error(
        "the raft store under data dir {dir} failed its integrity check: {problem}. The node will \
         not start on this data. Do not delete the data dir blindly: it may hold the only copy of \
         committed entries; back it up, check the disk and the meshd version that wrote it, and \
         only if this node can be rebuilt from its peers remove it from the cluster and start it \
         with a fresh data dir and a new node id"
    )]
    Corrupt { dir: PathBuf, problem: String },

    /// An I/O error from sled while running.
    #[error("raft store I/O error: {0}")]
    Io(#[from] sled::Error),

    /// Malformed protobuf on disk or from a peer.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

pub(crate) fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read(AnyError::new(&e)).into()
}

pub(crate) fn read_logs_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

pub(crate) fn write_logs_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

pub(crate) fn write_vote_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_vote(AnyError::new(&e)).into()
}

pub(crate) fn read_vote_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_vote(AnyError::new(&e)).into()
}

pub(crate) fn write_sm_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

pub(crate) fn write_snapshot_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

pub(crate) fn read_snapshot_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(None, AnyError::new(&e)).into()
}
