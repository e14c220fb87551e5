//! The state machine on sled (openraft storage v2 `RaftStateMachine`) and its snapshots.
//!
//! Keys of the `sm` tree (values are protobuf):
//! - `t/cluster` ClusterInfo, `t/node/<be u64 id>` NodeRecord, `t/setting/<name>` Setting,
//!   `t/location/<name>` Location, `t/credential/<name>` Credential (secrets as ciphertext),
//!   `t/job/<id>` Job, `t/task/<job id>\0<be u64 task id>` Task;
//! - `a/last_applied` LogId, `a/membership` StoredMembership;
//! - `x/snapshot_meta` SnapshotMeta, `x/snapshot_data` SnapshotData bytes, `x/snapshot_counter`.
//!
//! Each `apply` call runs the pure [`crate::apply::apply_command`] on the in-memory state in
//! place (under the readers' lock, so readers see a batch whole or not at all), then writes the
//! rows the batch changed ([`crate::Table::take_changed`]) together with last-applied and
//! membership as one sled batch (atomic) and flushes before returning. The cost of an apply
//! therefore follows what its entries change, not the size of the tables. A crash leaves either
//! the old or the new rows on disk, never tables and last-applied out of step; readers may see a
//! batch a moment before its flush, which is safe because every applied entry is committed and
//! already flushed in the log, so a restart re-applies it to the same state. A failed sled write
//! is a storage error: openraft stops the node, which reloads the flushed state when restarted.

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

/// Writes to `batch` the rows of `table` changed since the last write (present: the row,
/// absent: a delete), and clears its record of changes.
fn write_changed<K: Ord + Clone, V>(
    batch: &mut sled::Batch,
    table: &mut crate::Table<K, V>,
    key: impl Fn(&K) -> Vec<u8>,
    encode: impl Fn(&V) -> Vec<u8>,
) {
    for k in table.take_changed() {
        match table.get(&k) {
            Some(v) => batch.insert(key(&k), encode(v)),
            None => batch.remove(key(&k)),
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

    /// Applies `entries` in place and returns their responses plus the sled batch of the rows
    /// they changed (empty responses: nothing to write).
    fn apply_in_memory(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> (Vec<pb::CommandResponse>, sled::Batch) {
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        let cluster_before = s.tables.cluster.clone();
        let mut responses = Vec::new();
        for e in entries {
            s.last_applied = Some(e.log_id);
            let resp = match e.payload {
                EntryPayload::Blank => pb::CommandResponse::default(),
                EntryPayload::Normal(cmd) => apply_command(&mut s.tables, &cmd),
                EntryPayload::Membership(m) => {
                    s.membership = StoredMembership::new(Some(e.log_id), m);
                    pb::CommandResponse::default()
                }
            };
            responses.push(resp);
        }
        let mut batch = sled::Batch::default();
        if s.tables.cluster != cluster_before {
            match &s.tables.cluster {
                Some(c) => batch.insert(K_CLUSTER, c.encode_to_vec()),
                None => batch.remove(K_CLUSTER),
            }
        }
        write_changed_tables(&mut batch, &mut s.tables);
        if !responses.is_empty() {
            put_state_header(&mut batch, &s);
        }
        (responses, batch)
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

/// Adds to `batch` the changed rows of every keyed table (the cluster row is compared whole).
fn write_changed_tables(batch: &mut sled::Batch, t: &mut Tables) {
    write_changed(batch, &mut t.nodes, |id| node_key(*id), canonical::node_record);
    write_changed(batch, &mut t.settings, |n| setting_key(n), |v| v.encode_to_vec());
    write_changed(batch, &mut t.locations, |n| location_key(n), |v| v.encode_to_vec());
    write_changed(batch, &mut t.credentials, |n| credential_key(n), |v| v.encode_to_vec());
    write_changed(batch, &mut t.jobs, |id| job_key(id), |v| v.encode_to_vec());
    write_changed(batch, &mut t.tasks, task_key, |v| v.encode_to_vec());
}

/// Forgets the change records of state that is already on disk as a whole (loaded or installed).
fn forget_changes(t: &mut Tables) {
    write_changed_tables(&mut sled::Batch::default(), t);
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
    forget_changes(&mut s.tables);
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
        let (responses, batch) = self.apply_in_memory(entries);
        if responses.is_empty() {
            return Ok(responses);
        }
        self.db.sm.apply_batch(batch).map_err(write_sm_err)?;
        self.flush().await.map_err(write_sm_err)?;
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
        let mut state = AppliedState::from_snapshot_data(&pb_data).map_err(read_snapshot_err)?;
        forget_changes(&mut state.tables);
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
