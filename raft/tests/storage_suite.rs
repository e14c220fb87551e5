//! Runs openraft's storage conformance suite against the sled stores, each test on a fresh
//! temporary data dir.

use mesh_raft::openraft::testing::{StoreBuilder, Suite};
use mesh_raft::openraft::StorageError;
use mesh_raft::{LogStore, NodeId, StateMachineStore, TypeConfig};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, sm) = mesh_raft::open(dir.path()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(SledBuilder).expect("openraft storage suite");
}
