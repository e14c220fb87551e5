//! The state machine on sled (openraft storage v2 `RaftStateMachine`) and its snapshots.
//!
//! Keys of the `sm` tree (values are protobuf):
//! - `t/cluster` ClusterInfo, `t/node/<be u64 id>` NodeRecord, `t/setting/<name>` Setting,
//!   `t/location/<name>` Location, `t/credential/<name>` Credential (secrets as ciphertext),
//!   `t/job/<id>` Job, `t/task/<job id>\0<be u64 task id>` Task;
//! - `a/last_applied` LogId, `a/membership` StoredMembership;
//! - `x/snapshot_meta` SnapshotMeta, `x/snapshot_data` SnapshotData bytes, `x/snapshot_counter`.
//!
//! Each `apply` call runs the pure [`crate::apply::apply_command`] on a copy of the in-memory
//! state, writes the changed rows together with last-applied and membership as one sled batch
//! (atomic), flushes, and only then publishes the new state to readers. A crash therefore leaves
//! either the old or the new state, never tables and last-applied out of step.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use mesh_proto::v1 as pb;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StoredMembership,
};
use prost::Message;
use tokio::sync::Mutex;

use crate::apply::apply_command;
use crate::codec::{self, CodecError};
use crate::db::Db;
use crate::error::{read_snapshot_err, write_sm_err, write_snapshot_err, StoreError};
use crate::tables::{AppliedState, StateReader, Tables};
use crate::{canonical, NodeId, TypeConfig};

const K_CLUSTER: &[u8] = b"t/cluster";
const P_NODE: &[u8] = b"t/node/";
const P_SETTING: &[u8] = b"t/setting/";
const P_LOCATION: &[u8] = b"t/location/";
const P_CREDENTIAL: &[u8] = b"t/credential/";
const P_JOB: &[u8] = b"t/job/";
const P_TASK: &[u8] = b"t/task/";
const P_TABLES: &[u8] = b"t/";
const K_LAST_APPLIED: &[u8] = b"a/last_applied";
const K_MEMBERSHIP: &[u8] = b"a/membership";
const K_SNAP_META: &[u8] = b"x/snapshot_meta";
const K_SNAP_DATA: &[u8] = b"x/snapshot_data";
const K_SNAP_COUNTER: &[u8] = b"x/snapshot_counter";

fn node_key(id: u64) -> Vec<u8> {
    [P_NODE, &id.to_be_bytes()].concat()
}

fn setting_key(name: &str) -> Vec<u8> {
    [P_SETTING, name.as_bytes()].concat()
}

fn location_key(name: &str) -> Vec<u8> {
    [P_LOCATION, name.as_bytes()].concat()
}

fn credential_key(name: &str) -> Vec<u8> {
    [P_CREDENTIAL, name.as_bytes()].concat()
}

fn job_key(id: &str) -> Vec<u8> {
    [P_JOB, id.as_bytes()].concat()
}

/// `t/task/<job id> NUL <be u64 task id>` (job ids never contain NUL).
fn task_key(k: &crate::jobs::TaskKey) -> Vec<u8> {
    [P_TASK, k.0.as_bytes(), &[0], &k.1.to_be_bytes()].concat()
}

/// Writes to `batch` the changes of one name-keyed table.
fn diff_map<V: PartialEq + Message>(
    batch: &mut sled::Batch,
    old: &std::collections::BTreeMap<String, V>,
    new: &std::collections::BTreeMap<String, V>,
    key: fn(&str) -> Vec<u8>,
) {
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        batch.remove(key(name));
    }
    for (name, v) in new {
        if old.get(name) != Some(v) {
            batch.insert(key(name), v.encode_to_vec());
        }
    }
}

/// The state machine store. Clones share the database, the in-memory state and the write lock.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Db,
    state: Arc<RwLock<AppliedState>>,
    write: Arc<Mutex<()>>,
}

/// Builds snapshots of a [`StateMachineStore`].
pub struct SnapshotBuilder {
    sm: StateMachineStore,
}

impl StateMachineStore {
    /// Loads the applied state from the `sm` tree, checking that every record decodes.
    pub(crate) fn load(db: Db) -> Result<Self, StoreError> {
        let state = load_state(&db)?;
        Ok(Self {
            db,
            state: Arc::new(RwLock::new(state)),
            write: Arc::new(Mutex::new(())),
        })
    }

    /// A reader of the applied (committed, flushed) state.
    pub fn reader(&self) -> StateReader {
        StateReader {
            state: self.state.clone(),
        }
    }

    fn current(&self) -> AppliedState {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn publish(&self, s: AppliedState) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = s;
    }

    async fn flush(&self) -> Result<(), sled::Error> {
        self.db.db.flush_async().await.map(|_| ())
    }

    fn read_current_snapshot(&self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        let (Some(meta), Some(data)) = (self.db.sm.get(K_SNAP_META)?, self.db.sm.get(K_SNAP_DATA)?) else {
            return Ok(None);
        };
        let meta = codec::snapshot_meta_from_pb(&codec::decode("snapshot meta", &meta)?)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        }))
    }
}

fn put_state_header(batch: &mut sled::Batch, s: &AppliedState) {
    match &s.last_applied {
        Some(id) => batch.insert(K_LAST_APPLIED, codec::log_id_to_pb(id).encode_to_vec()),
        None => batch.remove(K_LAST_APPLIED),
    }
    batch.insert(
        K_MEMBERSHIP,
        canonical::stored_membership(&codec::stored_membership_to_pb(&s.membership)),
    );
}

fn put_all_tables(batch: &mut sled::Batch, t: &Tables) {
    if let Some(c) = &t.cluster {
        batch.insert(K_CLUSTER, c.encode_to_vec());
    }
    for (id, n) in &t.nodes {
        batch.insert(node_key(*id), canonical::node_record(n));
    }
    for (name, st) in &t.settings {
        batch.insert(setting_key(name), st.encode_to_vec());
    }
    for (name, l) in &t.locations {
        batch.insert(location_key(name), l.encode_to_vec());
    }
    for (name, c) in &t.credentials {
        batch.insert(credential_key(name), c.encode_to_vec());
    }
    for (id, j) in &t.jobs {
        batch.insert(job_key(id), j.encode_to_vec());
    }
    for (k, task) in &t.tasks {
        batch.insert(task_key(k), task.encode_to_vec());
    }
}

/// Adds to `batch` the row changes that turn `old` into `new`.
fn diff_tables(batch: &mut sled::Batch, old: &Tables, new: &Tables) {
    if old.cluster != new.cluster {
        match &new.cluster {
            Some(c) => batch.insert(K_CLUSTER, c.encode_to_vec()),
            None => batch.remove(K_CLUSTER),
        }
    }
    for id in old.nodes.keys().filter(|id| !new.nodes.contains_key(id)) {
        batch.remove(node_key(*id));
    }
    for (id, n) in &new.nodes {
        if old.nodes.get(id) != Some(n) {
            batch.insert(node_key(*id), canonical::node_record(n));
        }
    }
    for name in old.settings.keys().filter(|n| !new.settings.contains_key(*n)) {
        batch.remove(setting_key(name));
    }
    for (name, st) in &new.settings {
        if old.settings.get(name) != Some(st) {
            batch.insert(setting_key(name), st.encode_to_vec());
        }
    }
    diff_map(batch, &old.locations, &new.locations, location_key);
    diff_map(batch, &old.credentials, &new.credentials, credential_key);
    diff_map(batch, &old.jobs, &new.jobs, job_key);
    for k in old.tasks.keys().filter(|k| !new.tasks.contains_key(*k)) {
        batch.remove(task_key(k));
    }
    for (k, task) in &new.tasks {
        if old.tasks.get(k) != Some(task) {
            batch.insert(task_key(k), task.encode_to_vec());
        }
    }
}

/// Reads and validates the whole `sm` tree.
fn load_state(db: &Db) -> Result<AppliedState, StoreError> {
    let bad = |key: &[u8], e: CodecError| {
        db.corrupt(format!(
            "state machine record {:?} does not decode ({e})",
            String::from_utf8_lossy(key)
        ))
    };
    let mut s = AppliedState::default();
    for kv in db.sm.iter() {
        let (k, v) = kv?;
        let k = k.as_ref();
        if k == K_CLUSTER {
            s.tables.cluster = Some(codec::decode::<pb::ClusterInfo>("cluster info", &v).map_err(|e| bad(k, e))?);
        } else if let Some(id) = k.strip_prefix(P_NODE) {
            let rec = codec::decode::<pb::NodeRecord>("node record", &v).map_err(|e| bad(k, e))?;
            let id = crate::db::key_index(id).ok_or_else(|| db.corrupt(format!("bad node key {k:?}")))?;
            if rec.id != id {
                return Err(db.corrupt(format!("node key {id} holds the record of node {}", rec.id)));
            }
            s.tables.nodes.insert(id, rec);
        } else if let Some(name) = k.strip_prefix(P_SETTING) {
            let st = codec::decode::<pb::Setting>("setting", &v).map_err(|e| bad(k, e))?;
            if st.name.as_bytes() != name {
                return Err(db.corrupt(format!(
                    "setting key {:?} holds setting {:?}",
                    String::from_utf8_lossy(name),
                    st.name
                )));
            }
            s.tables.settings.insert(st.name.clone(), st);
        } else if let Some(name) = k.strip_prefix(P_LOCATION) {
            let l = codec::decode::<pb::Location>("location", &v).map_err(|e| bad(k, e))?;
            if l.name.as_bytes() != name {
                return Err(db.corrupt(format!(
                    "location key {:?} holds location {:?}",
                    String::from_utf8_lossy(name),
                    l.name
                )));
            }
            s.tables.locations.insert(l.name.clone(), l);
        } else if let Some(name) = k.strip_prefix(P_CREDENTIAL) {
            let c = codec::decode::<pb::Credential>("credential", &v).map_err(|e| bad(k, e))?;
            if c.name.as_bytes() != name {
                return Err(db.corrupt(format!(
                    "credential key {:?} holds credential {:?}",
                    String::from_utf8_lossy(name),
                    c.name
                )));
            }
            s.tables.credentials.insert(c.name.clone(), c);
        } else if let Some(id) = k.strip_prefix(P_JOB) {
            let j = codec::decode::<pb::Job>("job", &v).map_err(|e| bad(k, e))?;
            if j.id.as_bytes() != id {
                return Err(db.corrupt(format!(
                    "job key {:?} holds job {:?}",
                    String::from_utf8_lossy(id),
                    j.id
                )));
            }
            s.tables.jobs.insert(j.id.clone(), j);
        } else if k.starts_with(P_TASK) {
            let t = codec::decode::<pb::Task>("task", &v).map_err(|e| bad(k, e))?;
            let tk = (t.job_id.clone(), t.id);
            if task_key(&tk) != k {
                return Err(db.corrupt(format!(
                    "task key {:?} holds task {}/{}",
                    String::from_utf8_lossy(k),
                    t.job_id,
                    t.id
                )));
            }
            s.tables.tasks.insert(tk, t);
        } else if k == K_LAST_APPLIED {
            let id = codec::decode::<pb::LogId>("last applied log id", &v).map_err(|e| bad(k, e))?;
            s.last_applied = Some(codec::log_id_from_pb(&id));
        } else if k == K_MEMBERSHIP {
            let m = codec::decode::<pb::StoredMembership>("membership", &v).map_err(|e| bad(k, e))?;
            s.membership = codec::stored_membership_from_pb(&m).map_err(|e| bad(k, e))?;
        } else if k == K_SNAP_META {
            let m = codec::decode::<pb::SnapshotMeta>("snapshot meta", &v).map_err(|e| bad(k, e))?;
            codec::snapshot_meta_from_pb(&m).map_err(|e| bad(k, e))?;
            if db.sm.get(K_SNAP_DATA)?.is_none() {
                return Err(db.corrupt("the current snapshot has metadata but no data"));
            }
        } else if k == K_SNAP_DATA || k == K_SNAP_COUNTER {
            // Snapshot data is decoded when installed or sent; the counter is 8 bytes.
        } else {
            return Err(db.corrupt(format!("unknown state machine key {:?}", String::from_utf8_lossy(k))));
        }
    }
    Ok(s)
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let s = self.state.read().unwrap_or_else(|e| e.into_inner());
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<pb::CommandResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let _g = self.write.lock().await;
        let old = self.current();
        let mut new = old.clone();
        let mut responses = Vec::new();
        for e in entries {
            new.last_applied = Some(e.log_id);
            let resp = match e.payload {
                EntryPayload::Blank => pb::CommandResponse::default(),
                EntryPayload::Normal(cmd) => apply_command(&mut new.tables, &cmd),
                EntryPayload::Membership(m) => {
                    new.membership = StoredMembership::new(Some(e.log_id), m);
                    pb::CommandResponse::default()
                }
            };
            responses.push(resp);
        }
        if responses.is_empty() {
            return Ok(responses);
        }
        let mut batch = sled::Batch::default();
        diff_tables(&mut batch, &old.tables, &new.tables);
        put_state_header(&mut batch, &new);
        self.db.sm.apply_batch(batch).map_err(write_sm_err)?;
        self.flush().await.map_err(write_sm_err)?;
        self.publish(new);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { sm: self.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let pb_data = codec::decode::<pb::SnapshotData>("snapshot data", &data).map_err(read_snapshot_err)?;
        let state = AppliedState::from_snapshot_data(&pb_data).map_err(read_snapshot_err)?;
        if state.last_applied != meta.last_log_id || state.membership != meta.last_membership {
            return Err(read_snapshot_err(CodecError::new(
                "snapshot",
                format!(
                    "snapshot {} says last log id {:?} / membership {:?} but its data holds {:?} / {:?}",
                    meta.snapshot_id, meta.last_log_id, meta.last_membership, state.last_applied, state.membership
                ),
            )));
        }

        let _g = self.write.lock().await;
        let mut batch = sled::Batch::default();
        for kv in self.db.sm.scan_prefix(P_TABLES) {
            let (k, _) = kv.map_err(write_sm_err)?;
            batch.remove(k);
        }
        put_all_tables(&mut batch, &state.tables);
        put_state_header(&mut batch, &state);
        batch.insert(K_SNAP_META, codec::snapshot_meta_to_pb(meta).encode_to_vec());
        batch.insert(K_SNAP_DATA, data);
        self.db.sm.apply_batch(batch).map_err(write_snapshot_err)?;
        self.flush().await.map_err(write_snapshot_err)?;
        self.publish(state);
        tracing::info!(snapshot_id = %meta.snapshot_id, last_log_id = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        self.read_current_snapshot().map_err(read_snapshot_err)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let sm = &self.sm;
        let _g = sm.write.lock().await;
        let state = sm.current();
        let data = state.encode_snapshot();

        let counter = match sm.db.sm.get(K_SNAP_COUNTER).map_err(read_snapshot_err)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        } + 1;
        let (term, index) = state
            .last_applied
            .map(|id| (id.leader_id.term, id.index))
            .unwrap_or((0, 0));
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
            snapshot_id: format!("{term}-{index}-{counter}"),
        };

        let mut batch = sled::Batch::default();
        batch.insert(K_SNAP_META, codec::snapshot_meta_to_pb(&meta).encode_to_vec());
        batch.insert(K_SNAP_DATA, data.clone());
        batch.insert(K_SNAP_COUNTER, &counter.to_be_bytes());
        sm.db.sm.apply_batch(batch).map_err(write_snapshot_err)?;
        sm.flush().await.map_err(write_snapshot_err)?;
        tracing::info!(snapshot_id = %meta.snapshot_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
