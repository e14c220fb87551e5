//! Restart, corruption and snapshot tests of the sled stores, plus an append+flush latency probe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use mesh_proto::v1::{self as pb, command::Kind};
use mesh_raft::openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use mesh_raft::openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder, StoredMembership,
    Vote,
};
use mesh_raft::{BasicNode, LogStore, StateMachineStore, StoreError, TypeConfig};

fn lid(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn blank(term: u64, index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: lid(term, index),
        payload: EntryPayload::Blank,
    }
}

fn cmd(term: u64, index: u64, at_ms: u64, kind: Kind) -> Entry<TypeConfig> {
    Entry {
        log_id: lid(term, index),
        payload: EntryPayload::Normal(pb::Command {
            at_ms,
            kind: Some(kind),
        }),
    }
}

fn membership(voters: &[u64]) -> Membership<u64, BasicNode> {
    let nodes: BTreeMap<u64, BasicNode> = voters
        .iter()
        .map(|id| (*id, BasicNode::new(format!("n{id}:7400"))))
        .collect();
    Membership::new(vec![voters.iter().copied().collect::<BTreeSet<_>>()], nodes)
}

fn node(id: u64) -> Kind {
    Kind::UpsertNode(pb::UpsertNode {
        node: Some(pb::NodeRecord {
            id,
            addr: format!("n{id}:7400"),
            zone: "z1".into(),
            labels: [("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]
                .into_iter()
                .collect(),
            state: pb::NodeState::Active as i32,
            ..Default::default()
        }),
    })
}

/// A log of 6 entries: membership, init, two nodes, a setting, a refused setting.
fn sample_entries() -> Vec<Entry<TypeConfig>> {
    vec![
        Entry {
            log_id: lid(1, 1),
            payload: EntryPayload::Membership(membership(&[1, 2, 3])),
        },
        cmd(
            1,
            2,
            100,
            Kind::InitCluster(pb::InitCluster {
                cluster_id: "c1".into(),
                root_token_sha256: "ff".into(),
                data_key_sha256: "ee".into(),
            }),
        ),
        cmd(1, 3, 200, node(1)),
        cmd(1, 4, 300, node(2)),
        cmd(
            2,
            5,
            400,
            Kind::SetSetting(pb::SetSetting {
                name: "node_ttl".into(),
                value: "3s".into(),
            }),
        ),
        cmd(
            2,
            6,
            500,
            Kind::SetSetting(pb::SetSetting {
                name: "voter_target".into(),
                value: "2".into(),
            }),
        ),
    ]
}

async fn fill(log: &mut LogStore, sm: &mut StateMachineStore) -> Vec<pb::CommandResponse> {
    log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
    log.blocking_append(sample_entries()).await.unwrap();
    log.save_committed(Some(lid(2, 6))).await.unwrap();
    sm.apply(sample_entries()).await.unwrap()
}

fn open(dir: &Path) -> (LogStore, StateMachineStore) {
    mesh_raft::open(dir).expect("open store")
}

fn open_err(dir: &Path) -> String {
    match mesh_raft::open(dir) {
        Ok(_) => panic!("open of a damaged store succeeded"),
        Err(e) => {
            assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains(&dir.display().to_string()),
                "message does not name the data dir: {msg}"
            );
            assert!(msg.contains("Do not delete the data dir blindly"), "{msg}");
            msg
        }
    }
}

/// Opens the raw sled database of a (closed) store.
fn raw(dir: &Path) -> sled::Db {
    sled::open(dir.join("db")).unwrap()
}

#[tokio::test]
async fn apply_responses_and_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut sm) = open(dir.path());
    let reader = sm.reader();
    let resps = fill(&mut log, &mut sm).await;
    assert_eq!(resps.len(), 6);
    assert!(resps[..5].iter().all(|r| r.error.is_empty()), "{resps:?}");
    assert_eq!(resps[5].reason, mesh_proto::Reason::InvalidArgument.as_str());
    assert!(resps[5].error.contains("voter_target"));

    assert_eq!(reader.last_applied(), Some(lid(2, 6)));
    assert_eq!(reader.cluster().unwrap().cluster_id, "c1");
    assert_eq!(reader.cluster().unwrap().created_at_ms, 100);
    assert_eq!(reader.nodes().iter().map(|n| n.id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(reader.node(2).unwrap().joined_at_ms, 300);
    assert_eq!(reader.setting("node_ttl").unwrap().value, "3s");
    assert_eq!(reader.setting_or_default("node_ttl"), "3s");
    assert_eq!(reader.setting_or_default("voter_target"), "3");
    assert_eq!(mesh_raft::settings::voter_target(&reader), 3);
    assert_eq!(
        mesh_raft::settings::node_ttl(&reader),
        std::time::Duration::from_secs(3)
    );
    assert_eq!(
        reader.membership(),
        StoredMembership::new(Some(lid(1, 1)), membership(&[1, 2, 3]))
    );
}

#[tokio::test]
async fn everything_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let (mut log, mut sm) = open(dir.path());
        fill(&mut log, &mut sm).await;
        sm.reader().snapshot()
    };

    let (mut log, mut sm) = open(dir.path());
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new_committed(2, 1)));
    assert_eq!(log.read_committed().await.unwrap(), Some(lid(2, 6)));
    let entries = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(entries.len(), 6);
    for (got, want) in entries.iter().zip(sample_entries()) {
        assert_eq!(got.log_id, want.log_id);
        assert_eq!(got.payload, want.payload);
    }
    let st = log.get_log_state().await.unwrap();
    assert_eq!((st.last_purged_log_id, st.last_log_id), (None, Some(lid(2, 6))));

    let after = sm.reader().snapshot();
    assert_eq!(after, before);
    assert_eq!(after.encode_snapshot(), before.encode_snapshot());
    let (applied, mem) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(lid(2, 6)));
    assert_eq!(mem.membership(), &membership(&[1, 2, 3]));

    // Purge then reopen: last_purged is kept and the remaining log has no hole.
    log.purge(lid(1, 4)).await.unwrap();
    drop((log, sm));
    let (mut log, sm) = open(dir.path());
    let st = log.get_log_state().await.unwrap();
    assert_eq!(
        (st.last_purged_log_id, st.last_log_id),
        (Some(lid(1, 4)), Some(lid(2, 6)))
    );
    let idx: Vec<u64> = log
        .try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(idx, vec![5, 6]);

    // Purge everything, then reopen: last log id falls back to last_purged.
    log.purge(lid(2, 6)).await.unwrap();
    drop((log, sm)); // the database stays locked until every handle is dropped
    let (mut log, _sm) = open(dir.path());
    let st = log.get_log_state().await.unwrap();
    assert_eq!(
        (st.last_purged_log_id, st.last_log_id),
        (Some(lid(2, 6)), Some(lid(2, 6)))
    );
}

#[tokio::test]
async fn truncate_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm) = open(dir.path());
        log.blocking_append((1..=10).map(|i| blank(1, i))).await.unwrap();
        log.truncate(lid(1, 7)).await.unwrap();
    }
    let (mut log, _sm) = open(dir.path());
    assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(lid(1, 6)));
}

#[tokio::test]
async fn garbage_vote_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, mut sm) = open(dir.path());
        fill(&mut log, &mut sm).await;
    }
    {
        let db = raw(dir.path());
        db.open_tree("meta")
            .unwrap()
            .insert("vote", &[0xff, 0xff, 0xff][..])
            .unwrap();
        db.flush().unwrap();
    }
    let msg = open_err(dir.path());
    assert!(msg.contains("vote"), "{msg}");
}

#[tokio::test]
async fn missing_or_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, mut sm) = open(dir.path());
        fill(&mut log, &mut sm).await;
    }
    {
        let db = raw(dir.path());
        db.open_tree("meta").unwrap().remove("format_version").unwrap();
        db.flush().unwrap();
    }
    let msg = open_err(dir.path());
    assert!(msg.contains("format_version"), "{msg}");
    // Still refused the second time: the failed open did not re-initialize anything.
    open_err(dir.path());

    {
        let db = raw(dir.path());
        db.open_tree("meta").unwrap().insert("format_version", "99").unwrap();
        db.flush().unwrap();
    }
    let msg = open_err(dir.path());
    assert!(msg.contains("\"99\""), "{msg}");
}

#[tokio::test]
async fn log_hole_and_bad_rows_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, mut sm) = open(dir.path());
        fill(&mut log, &mut sm).await;
    }
    {
        let db = raw(dir.path());
        db.open_tree("log").unwrap().remove(3u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let msg = open_err(dir.path());
    assert!(msg.contains("holes"), "{msg}");

    // Repair the hole (test only), then damage a state machine row.
    {
        let db = raw(dir.path());
        let e = mesh_raft::codec::encode_entry(&cmd(1, 3, 200, node(1)));
        db.open_tree("log").unwrap().insert(3u64.to_be_bytes(), e).unwrap();
        db.flush().unwrap();
    }
    open(dir.path());
    {
        let db = raw(dir.path());
        let key = [&b"t/node/"[..], &2u64.to_be_bytes()].concat();
        db.open_tree("sm").unwrap().insert(key, &[0x0a, 0xff][..]).unwrap();
        db.flush().unwrap();
    }
    let msg = open_err(dir.path());
    assert!(msg.contains("t/node/"), "{msg}");
}

#[tokio::test]
async fn snapshot_round_trip_into_fresh_store() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (mut log_a, mut sm_a) = open(a.path());
    fill(&mut log_a, &mut sm_a).await;
    let snap = sm_a.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id, Some(lid(2, 6)));
    assert!(snap.meta.snapshot_id.starts_with("2-6-"), "{}", snap.meta.snapshot_id);
    let bytes = snap.snapshot.get_ref().clone();

    // Building again gives the same bytes (deterministic) but a new id.
    let snap2 = sm_a.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(snap2.snapshot.get_ref(), &bytes);
    assert_ne!(snap2.meta.snapshot_id, snap.meta.snapshot_id);

    {
        let (_log_b, mut sm_b) = open(b.path());
        let reader_b = sm_b.reader();
        assert!(sm_b.get_current_snapshot().await.unwrap().is_none());
        let mut rx = sm_b.begin_receiving_snapshot().await.unwrap();
        rx.get_mut().extend_from_slice(&bytes);
        sm_b.install_snapshot(&snap.meta, rx).await.unwrap();
        assert_eq!(reader_b.snapshot(), sm_a.reader().snapshot());
        assert_eq!(reader_b.nodes(), sm_a.reader().nodes());
    }
    // The installed snapshot and state survive a restart of the follower.
    let (_log_b, mut sm_b) = open(b.path());
    assert_eq!(sm_b.reader().snapshot(), sm_a.reader().snapshot());
    let cur = sm_b.get_current_snapshot().await.unwrap().expect("current snapshot");
    assert_eq!(cur.meta, snap.meta);
    assert_eq!(cur.snapshot.get_ref(), &bytes);

    // Installing replaces tables: a snapshot of an empty state wipes the follower's rows.
    let c = tempfile::tempdir().unwrap();
    let (_log_c, mut sm_c) = open(c.path());
    sm_c.apply([blank(3, 10)]).await.unwrap();
    let empty = sm_c.get_snapshot_builder().await.build_snapshot().await.unwrap();
    sm_b.install_snapshot(&empty.meta, empty.snapshot).await.unwrap();
    assert!(sm_b.reader().nodes().is_empty());
    assert!(sm_b.reader().cluster().is_none());
    assert_eq!(sm_b.reader().last_applied(), Some(lid(3, 10)));
    drop((_log_b, sm_b));
    let (_log_b, sm_b) = open(b.path());
    assert!(sm_b.reader().nodes().is_empty() && sm_b.reader().settings().is_empty());

    // A snapshot whose data disagrees with its meta is refused.
    let mut bad_meta = snap.meta.clone();
    bad_meta.last_log_id = Some(lid(9, 99));
    let mut sm_b = sm_b;
    let mut rx = sm_b.begin_receiving_snapshot().await.unwrap();
    rx.get_mut().extend_from_slice(&bytes);
    assert!(sm_b.install_snapshot(&bad_meta, rx).await.is_err());
    let mut rx = sm_b.begin_receiving_snapshot().await.unwrap();
    rx.get_mut().extend_from_slice(b"\xff\xff garbage");
    assert!(sm_b.install_snapshot(&snap.meta, rx).await.is_err());
}

/// Measures `append` of one entry including the flush. Run with
/// `cargo test -p mesh-raft --release --test store append_latency -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn append_latency() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _sm) = open(dir.path());
    let mut samples = Vec::new();
    for i in 1..=200u64 {
        let e = cmd(
            1,
            i,
            i,
            Kind::SetSetting(pb::SetSetting {
                name: "node_ttl".into(),
                value: format!("{i}s"),
            }),
        );
        let t = Instant::now();
        log.blocking_append([e]).await.unwrap();
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "sled append of 1 entry incl. flush over {} runs: median {:?}, p90 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        samples[samples.len() / 2],
        samples[samples.len() * 9 / 10],
        samples[samples.len() * 99 / 100],
        samples[samples.len() - 1]
    );
}
