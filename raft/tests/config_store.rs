//! Locations and credentials in the sled store: they survive a restart, travel in snapshots
//! (sorted, byte-identical on rebuild), and a deleted row is gone after a restart.

use mesh_proto::v1::{self as pb, command::Kind};
use mesh_raft::openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use mesh_raft::openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use mesh_raft::TypeConfig;

fn cmd(index: u64, kind: Kind) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(pb::Command {
            at_ms: index * 100,
            kind: Some(kind),
        }),
    }
}

fn entries() -> Vec<Entry<TypeConfig>> {
    vec![
        cmd(
            1,
            Kind::InitCluster(pb::InitCluster {
                cluster_id: "c".into(),
                root_token_sha256: "t".into(),
                data_key_sha256: "fp".into(),
            }),
        ),
        cmd(
            2,
            Kind::PutCredential(pb::PutCredential {
                credential: Some(pb::Credential {
                    name: "keys".into(),
                    kind: pb::CredentialKind::Static as i32,
                    access_key_id: "AKIA1".into(),
                    secret_access_key_enc: vec![9; 60],
                    key_fingerprint: "fp".into(),
                    ..Default::default()
                }),
                replace: false,
            }),
        ),
        cmd(
            3,
            Kind::PutCredential(pb::PutCredential {
                credential: Some(pb::Credential {
                    name: "chain".into(),
                    kind: pb::CredentialKind::DefaultChain as i32,
                    ..Default::default()
                }),
                replace: false,
            }),
        ),
        cmd(
            4,
            Kind::PutLocation(pb::PutLocation {
                location: Some(pb::Location {
                    name: "zeta".into(),
                    kind: pb::LocationKind::S3 as i32,
                    bucket: "bkt".into(),
                    prefix: "p".into(),
                    credential: "keys".into(),
                    ..Default::default()
                }),
                replace: false,
            }),
        ),
        cmd(
            5,
            Kind::PutLocation(pb::PutLocation {
                location: Some(pb::Location {
                    name: "alpha".into(),
                    kind: pb::LocationKind::Fs as i32,
                    fs_path: "/srv/a".into(),
                    ..Default::default()
                }),
                replace: false,
            }),
        ),
    ]
}

#[tokio::test]
async fn config_tables_survive_restart_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let bytes;
    let meta;
    {
        let (_log, mut sm) = mesh_raft::open(dir.path()).unwrap();
        let resps = sm.apply(entries()).await.unwrap();
        assert!(resps.iter().all(|r| r.error.is_empty()), "{resps:?}");
        let r = sm.reader();
        let names: Vec<String> = r.locations().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(r.location("zeta").unwrap().prefix, "p/");
        assert_eq!(r.credential_users("keys"), ["location:zeta"]);
        assert_eq!(r.cluster().unwrap().data_key_sha256, "fp");
        let snap = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        let again = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(snap.snapshot.get_ref(), again.snapshot.get_ref());
        bytes = snap.snapshot.get_ref().clone();
        meta = snap.meta;
        // Delete one row; it must stay deleted across a restart.
        let resp = sm
            .apply([cmd(
                6,
                Kind::DeleteLocation(pb::DeleteLocation { name: "alpha".into() }),
            )])
            .await
            .unwrap();
        assert!(resp[0].error.is_empty());
    }
    let (_log, mut sm) = mesh_raft::open(dir.path()).unwrap();
    let r = sm.reader();
    assert_eq!(r.locations().len(), 1);
    assert_eq!(r.credentials().len(), 2);
    assert_eq!(r.credential("keys").unwrap().secret_access_key_enc, vec![9; 60]);

    // Installing the earlier snapshot brings alpha back and replaces the tables.
    let mut rx = sm.begin_receiving_snapshot().await.unwrap();
    rx.get_mut().extend_from_slice(&bytes);
    sm.install_snapshot(&meta, rx).await.unwrap();
    assert_eq!(r.locations().len(), 2);
    drop((_log, sm));
    let (_log, sm) = mesh_raft::open(dir.path()).unwrap();
    assert_eq!(sm.reader().locations().len(), 2);
    assert_eq!(sm.reader().credentials().len(), 2);
}
