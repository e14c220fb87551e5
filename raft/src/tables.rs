//! In-memory form of the applied state: the tables (`cluster`, `nodes`, `settings`, `locations`,
//! `credentials`, `jobs`, `tasks`) plus the last
//! applied log id and membership, and the [`StateReader`] that node/ uses to read them.
//!
//! The state machine keeps one [`AppliedState`] in memory, mirrored in sled. Readers see each
//! apply batch whole; they may see it just before its rows are flushed to the `sm` tree, which a
//! crash cannot undo, because the batch's entries are committed and flushed in the log and are
//! applied again on restart (see [`crate::StateMachineStore`]).

use std::sync::{Arc, RwLock};

use mesh_proto::v1 as pb;
use openraft::{BasicNode, LogId, StoredMembership};

use crate::codec::{self, CodecError};
use crate::settings;
use crate::table::Table;

/// The business tables, as ordered maps that record their changed keys (see [`Table`]).
/// [`crate::apply::apply_command`] works on this.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables {
    pub cluster: Option<pb::ClusterInfo>,
    pub nodes: Table<u64, pb::NodeRecord>,
    pub settings: Table<String, pb::Setting>,
    /// Locations by name (see [`crate::config`]).
    pub locations: Table<String, pb::Location>,
    /// Credentials by name; secret fields are ciphertext under the cluster data key.
    pub credentials: Table<String, pb::Credential>,
    /// Jobs by id (see [`crate::jobs`]); finished jobs keep only their summary.
    pub jobs: Table<String, pb::Job>,
    /// Tasks of unfinished jobs by (job id, task id).
    pub tasks: Table<crate::jobs::TaskKey, pb::Task>,
}

/// Everything the state machine holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedState {
    pub last_applied: Option<LogId<u64>>,
    pub membership: StoredMembership<u64, BasicNode>,
    pub tables: Tables,
}

impl AppliedState {
    /// The snapshot message of this state (nodes sorted by id, settings by name).
    pub fn to_snapshot_data(&self) -> pb::SnapshotData {
        pb::SnapshotData {
            last_applied: codec::opt_log_id_to_pb(&self.last_applied),
            membership: Some(codec::stored_membership_to_pb(&self.membership)),
            cluster: self.tables.cluster.clone(),
            nodes: self.tables.nodes.values().cloned().collect(),
            settings: self.tables.settings.values().cloned().collect(),
            locations: self.tables.locations.values().cloned().collect(),
            credentials: self.tables.credentials.values().cloned().collect(),
            jobs: self.tables.jobs.values().cloned().collect(),
            tasks: self.tables.tasks.values().cloned().collect(),
        }
    }

    /// Canonical (deterministic) snapshot bytes of this state.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        crate::canonical::snapshot_data(&self.to_snapshot_data())
    }

    /// Rebuilds the state from a snapshot message, refusing duplicate or invalid rows.
    pub fn from_snapshot_data(s: &pb::SnapshotData) -> Result<Self, CodecError> {
        let membership = match &s.membership {
            Some(m) => codec::stored_membership_from_pb(m)?,
            None => return Err(CodecError::new("snapshot data", "membership is missing")),
        };
        let mut tables = Tables {
            cluster: s.cluster.clone(),
            ..Default::default()
        };
        for n in &s.nodes {
            if n.id == 0 {
                return Err(CodecError::new("snapshot data", "node record with id 0"));
            }
            if tables.nodes.insert(n.id, n.clone()).is_some() {
                return Err(CodecError::new("snapshot data", format!("node {} appears twice", n.id)));
            }
        }
        for st in &s.settings {
            if settings::spec(&st.name).is_none() {
                return Err(CodecError::new(
                    "snapshot data",
                    format!("unknown setting {:?}", st.name),
                ));
            }
            if tables.settings.insert(st.name.clone(), st.clone()).is_some() {
                return Err(CodecError::new(
                    "snapshot data",
                    format!("setting {:?} appears twice", st.name),
                ));
            }
        }
        for l in &s.locations {
            if l.name.is_empty() {
                return Err(CodecError::new("snapshot data", "location without a name"));
            }
            if tables.locations.insert(l.name.clone(), l.clone()).is_some() {
                return Err(CodecError::new(
                    "snapshot data",
                    format!("location {:?} appears twice", l.name),
                ));
            }
        }
        for c in &s.credentials {
            if c.name.is_empty() {
                return Err(CodecError::new("snapshot data", "credential without a name"));
            }
            if tables.credentials.insert(c.name.clone(), c.clone()).is_some() {
                return Err(CodecError::new(
                    "snapshot data",
                    format!("credential {:?} appears twice", c.name),
                ));
            }
        }
        for j in &s.jobs {
            if j.id.is_empty() || tables.jobs.insert(j.id.clone(), j.clone()).is_some() {
                return Err(CodecError::new(
                    "snapshot data",
                    format!("job {:?} is unnamed or appears twice", j.id),
                ));
            }
        }
        for t in &s.tasks {
            if tables.tasks.insert((t.job_id.clone(), t.id), t.clone()).is_some() {
                return Err(CodecError::new(
                    "snapshot data",
                    format!("task {}/{} appears twice", t.job_id, t.id),
                ));
            }
        }
        Ok(Self {
            last_applied: codec::opt_log_id_from_pb(&s.last_applied),
            membership,
            tables,
        })
    }
}

/// Read access to the applied state. Cheap to clone; reads take a short read lock and never wait
/// for Raft (only for a concurrent in-memory swap after an apply).
#[derive(Clone, Debug)]
pub struct StateReader {
    pub(crate) state: Arc<RwLock<AppliedState>>,
}

impl StateReader {
    /// A reader over a detached state (for tests and tools).
    pub fn from_state(state: AppliedState) -> Self {
        Self {
            state: Arc::new(RwLock::new(state)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&AppliedState) -> T) -> T {
        // A poisoned lock means a panic while applying in place: the node's Raft stops with it
        // and a restart reloads the flushed state, so reading on in the meantime is harmless.
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    pub fn cluster(&self) -> Option<pb::ClusterInfo> {
        self.with(|s| s.tables.cluster.clone())
    }

    /// All node records, sorted by id.
    pub fn nodes(&self) -> Vec<pb::NodeRecord> {
        self.with(|s| s.tables.nodes.values().cloned().collect())
    }

    pub fn node(&self, id: u64) -> Option<pb::NodeRecord> {
        self.with(|s| s.tables.nodes.get(&id).cloned())
    }

    /// Settings explicitly set in the cluster, sorted by name (defaults are not listed; see
    /// [`crate::settings::all`] and [`Self::setting_or_default`]).
    pub fn settings(&self) -> Vec<pb::Setting> {
        self.with(|s| s.tables.settings.values().cloned().collect())
    }

    pub fn setting(&self, name: &str) -> Option<pb::Setting> {
        self.with(|s| s.tables.settings.get(name).cloned())
    }

    /// The applied value of `name`, else its registry default, else "" for an unknown name.
    pub fn setting_or_default(&self, name: &str) -> String {
        self.setting(name)
            .map(|s| s.value)
            .unwrap_or_else(|| settings::default_of(name).unwrap_or_default().to_string())
    }

    /// All locations, sorted by name.
    pub fn locations(&self) -> Vec<pb::Location> {
        self.with(|s| s.tables.locations.values().cloned().collect())
    }

    pub fn location(&self, name: &str) -> Option<pb::Location> {
        self.with(|s| s.tables.locations.get(name).cloned())
    }

    /// All credentials (secret fields encrypted), sorted by name.
    pub fn credentials(&self) -> Vec<pb::Credential> {
        self.with(|s| s.tables.credentials.values().cloned().collect())
    }

    pub fn credential(&self, name: &str) -> Option<pb::Credential> {
        self.with(|s| s.tables.credentials.get(name).cloned())
    }

    /// What depends on credential `name` (`location:X`, `credential:Y`), sorted.
    pub fn credential_users(&self, name: &str) -> Vec<String> {
        self.with(|s| crate::config::credential_users(&s.tables, name))
    }

    /// All jobs, sorted by id.
    pub fn jobs(&self) -> Vec<pb::Job> {
        self.with(|s| s.tables.jobs.values().cloned().collect())
    }

    pub fn job(&self, id: &str) -> Option<pb::Job> {
        self.with(|s| s.tables.jobs.get(id).cloned())
    }

    /// The tasks of job `id`, by task id (none once the job is finished and compacted).
    pub fn job_tasks(&self, id: &str) -> Vec<pb::Task> {
        self.with(|s| crate::jobs::job_tasks(&s.tables, id).map(|(_, t)| t.clone()).collect())
    }

    /// Every task (of unfinished jobs) matching `f`.
    pub fn tasks_where(&self, f: impl Fn(&pb::Task) -> bool) -> Vec<pb::Task> {
        self.with(|s| s.tables.tasks.values().filter(|t| f(t)).cloned().collect())
    }

    pub fn task(&self, job_id: &str, task_id: u64) -> Option<pb::Task> {
        self.with(|s| s.tables.tasks.get(&(job_id.to_string(), task_id)).cloned())
    }

    pub fn last_applied(&self) -> Option<LogId<u64>> {
        self.with(|s| s.last_applied)
    }

    pub fn membership(&self) -> StoredMembership<u64, BasicNode> {
        self.with(|s| s.membership.clone())
    }

    /// A consistent copy of the whole applied state.
    pub fn snapshot(&self) -> AppliedState {
        self.with(|s| s.clone())
    }
}
