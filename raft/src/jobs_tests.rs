//! Unit tests of the job tables ([`crate::jobs`]) that the golden scripts
//! (`src/testdata/apply/07_jobs_*.txt` .. `12_jobs_*.txt`, see [`crate::golden_tests`]) do not
//! express: the backoff function over its whole range, the caps on events and failures (hundreds
//! of rows), and the snapshot, replay and store-reopen round trips of a busy cluster.
//!
//! Every test builds a [`H`] (tables with fs locations `src`, `dst`, `other`, a default-chain
//! credential and active nodes 1, 2 and 3), then applies commands at increasing times
//! (`H::now` advances by 10 ms per command unless a test sets it).

use mesh_proto::v1::{
    self as pb, command::Kind, JobAction, JobOp, JobState, NodeState, TaskKind, TaskOutcome, TaskState,
};

use crate::apply::apply_command;
use crate::jobs::{self, MAX_EVENTS, MAX_FAILURES};
use crate::tables::{AppliedState, Tables};

const MIB: u64 = 1 << 20;

// ---------- command builders ----------

fn fs_location(name: &str, path: &str) -> Kind {
    Kind::PutLocation(pb::PutLocation {
        location: Some(pb::Location {
            name: name.into(),
            kind: pb::LocationKind::Fs as i32,
            fs_path: path.into(),
            ..Default::default()
        }),
        replace: false,
    })
}

fn node(id: u64, state: NodeState) -> Kind {
    Kind::UpsertNode(pb::UpsertNode {
        node: Some(pb::NodeRecord {
            id,
            addr: format!("n{id}:7400"),
            state: state as i32,
            ..Default::default()
        }),
    })
}

fn spec(op: JobOp, src: &str, src_path: &str, dst: &str, dst_path: &str) -> pb::JobSpec {
    pb::JobSpec {
        op: op as i32,
        src_location: src.into(),
        src_path: src_path.into(),
        dst_location: dst.into(),
        dst_path: dst_path.into(),
        ..Default::default()
    }
}

/// copy src: -> dst:
fn copy_spec() -> pb::JobSpec {
    spec(JobOp::Copy, "src", "", "dst", "")
}

fn submit(id: &str, spec: pb::JobSpec) -> Kind {
    Kind::SubmitJob(pb::SubmitJob {
        job: Some(pb::Job {
            id: id.into(),
            spec: Some(spec),
            owner: "alice".into(),
            submitted_via: 1,
            ..Default::default()
        }),
    })
}

fn assign(list: &[(&str, u64, u64)]) -> Kind {
    Kind::AssignTasks(pb::AssignTasks {
        assignments: list
            .iter()
            .map(|(job, task, node)| pb::Assignment {
                job_id: job.to_string(),
                task_id: *task,
                node_id: *node,
            })
            .collect(),
    })
}

fn reports(node_id: u64, reports: Vec<pb::TaskReport>) -> Kind {
    Kind::ReportTasks(pb::ReportTasks { node_id, reports })
}

fn control(job: &str, action: JobAction) -> Kind {
    Kind::ControlJob(pb::ControlJob {
        job_id: job.into(),
        action: action as i32,
        by: "bob".into(),
    })
}

fn release(node_id: u64, reason: &str) -> Kind {
    Kind::ReleaseTasks(pb::ReleaseTasks {
        node_id,
        reason: reason.into(),
    })
}

fn copy_task(start_after: &str, end: &str, objects: u64, bytes: u64) -> pb::NewTask {
    pb::NewTask {
        kind: TaskKind::Copy as i32,
        start_after: start_after.into(),
        has_start_after: !start_after.is_empty(),
        end: end.into(),
        has_end: !end.is_empty(),
        objects,
        bytes,
        ..Default::default()
    }
}

fn split_task(key: &str, bytes: u64, part_size: u64, parts_per_task: u32) -> pb::NewTask {
    pb::NewTask {
        kind: TaskKind::PartInit as i32,
        key: key.into(),
        etag: "\"src-etag\"".into(),
        bytes,
        part_size,
        parts_per_task,
        ..Default::default()
    }
}

fn done_counters(objects: u64, bytes: u64) -> pb::TaskCounters {
    pb::TaskCounters {
        objects_done: objects,
        bytes_done: bytes,
        ..Default::default()
    }
}

fn etag(n: u32) -> pb::PartEtag {
    pb::PartEtag {
        part_number: n,
        etag: format!("\"etag-{n}\""),
    }
}

// ---------- the harness ----------

/// Tables plus a clock and the log of every command applied (for replay tests).
struct H {
    t: Tables,
    now: u64,
    log: Vec<pb::Command>,
}

impl H {
    /// fs locations `src` (/data/src), `dst` (/data/dst) and `other` (/srv/other), a default-chain
    /// credential `chain` (for s3 locations) and active nodes 1, 2, 3.
    fn new() -> Self {
        let mut h = H {
            t: Tables::default(),
            now: 1_000,
            log: Vec::new(),
        };
        h.ok(fs_location("src", "/data/src"));
        h.ok(fs_location("dst", "/data/dst"));
        h.ok(fs_location("other", "/srv/other"));
        h.ok(Kind::PutCredential(pb::PutCredential {
            credential: Some(pb::Credential {
                name: "chain".into(),
                kind: pb::CredentialKind::DefaultChain as i32,
                ..Default::default()
            }),
            replace: false,
        }));
        for id in 1..=3 {
            h.ok(node(id, NodeState::Active));
        }
        h
    }

    /// Applies a command 10 ms after the previous one (`now` is then the command's time).
    fn apply(&mut self, kind: Kind) -> pb::CommandResponse {
        self.now += 10;
        let cmd = pb::Command {
            at_ms: self.now,
            kind: Some(kind),
        };
        let resp = apply_command(&mut self.t, &cmd);
        self.log.push(cmd);
        resp
    }

    /// Applies a command that must succeed (and report nothing stale).
    fn ok(&mut self, kind: Kind) -> pb::CommandResponse {
        let r = self.apply(kind);
        assert!(r.error.is_empty() && r.reason.is_empty(), "refused: {r:?}");
        assert!(r.stale.is_empty(), "stale: {:?}", r.stale);
        r
    }

    fn job(&self, id: &str) -> &pb::Job {
        self.t.jobs.get(id).unwrap_or_else(|| panic!("no job {id}"))
    }

    fn task(&self, job: &str, id: u64) -> &pb::Task {
        self.t
            .tasks
            .get(&(job.to_string(), id))
            .unwrap_or_else(|| panic!("no task {job}/{id}"))
    }

    fn tasks(&self, job: &str) -> Vec<pb::Task> {
        jobs::job_tasks(&self.t, job).map(|(_, t)| t.clone()).collect()
    }

    /// (id, kind, state) of every task of `job`.
    fn shape(&self, job: &str) -> Vec<(u64, TaskKind, TaskState)> {
        self.tasks(job)
            .iter()
            .map(|t| {
                (
                    t.id,
                    TaskKind::try_from(t.kind).unwrap(),
                    TaskState::try_from(t.state).unwrap(),
                )
            })
            .collect()
    }

    fn state(&self, job: &str) -> JobState {
        JobState::try_from(self.job(job).state).unwrap()
    }

    fn events(&self, job: &str) -> Vec<String> {
        self.job(job).events.iter().map(|e| e.text.clone()).collect()
    }

    /// The id of the job's FINALIZE task.
    fn finalize_id(&self, job: &str) -> u64 {
        let ids: Vec<u64> = self
            .tasks(job)
            .iter()
            .filter(|t| t.kind == TaskKind::Finalize as i32)
            .map(|t| t.id)
            .collect();
        assert_eq!(ids.len(), 1, "FINALIZE tasks of {job}: {:?}", self.shape(job));
        ids[0]
    }

    fn submit(&mut self, id: &str, spec: pb::JobSpec) {
        self.ok(submit(id, spec));
    }

    /// Assigns one task, which must take; returns its new epoch.
    fn assign(&mut self, job: &str, task: u64, node: u64) -> u64 {
        self.ok(assign(&[(job, task, node)]));
        let t = self.task(job, task);
        assert_eq!(t.state, TaskState::Assigned as i32, "task {job}/{task} not assigned");
        assert_eq!(t.node_id, node);
        t.epoch
    }

    /// A report for the task's current assignment.
    fn rep(&self, job: &str, task: u64, outcome: TaskOutcome) -> pb::TaskReport {
        pb::TaskReport {
            job_id: job.into(),
            task_id: task,
            epoch: self.task(job, task).epoch,
            outcome: outcome as i32,
            ..Default::default()
        }
    }

    /// A LIST report planning `new_tasks`, with the checkpoint a worker sends: the end of the last
    /// planned task (none when it is open-ended).
    fn list_rep(&self, job: &str, outcome: TaskOutcome, new_tasks: Vec<pb::NewTask>) -> pb::TaskReport {
        let last = new_tasks.last().cloned().unwrap_or_default();
        pb::TaskReport {
            checkpoint: last.end.clone(),
            has_checkpoint: last.has_end,
            new_tasks,
            ..self.rep(job, 1, outcome)
        }
    }

    /// Sends a report from the node the task is assigned to; it must not be stale.
    fn send(&mut self, rep: pb::TaskReport) {
        let node_id = self.task(&rep.job_id, rep.task_id).node_id;
        self.ok(reports(node_id, vec![rep]));
    }

    /// Submits `id` (copy src: -> dst:), assigns its LIST (task 1) to node 1 and has it plan
    /// two COPY tasks (2: 10 objects / 1000 bytes, 3: 5 objects / 500 bytes); the LIST stays
    /// assigned (progress).
    fn listing(&mut self, id: &str) {
        self.submit(id, copy_spec());
        self.assign(id, 1, 1);
        self.send(self.list_rep(
            id,
            TaskOutcome::Progress,
            vec![copy_task("", "k", 10, 1000), copy_task("k", "z", 5, 500)],
        ));
    }

    /// [`Self::listing`], then the LIST done: tasks 2 and 3 (COPY) pending, job RUNNING.
    fn running(&mut self, id: &str) {
        self.listing(id);
        self.send(self.rep(id, 1, TaskOutcome::Done));
    }

    /// [`Self::running`], then both COPY tasks done (2 on node 2, 3 on node 3): job VERIFYING with
    /// its FINALIZE task pending.
    fn verifying(&mut self, id: &str) {
        self.running(id);
        self.assign(id, 2, 2);
        let mut r = self.rep(id, 2, TaskOutcome::Done);
        r.counters = Some(done_counters(10, 1000));
        self.send(r);
        self.assign(id, 3, 3);
        let mut r = self.rep(id, 3, TaskOutcome::Done);
        r.counters = Some(done_counters(5, 500));
        self.send(r);
        assert_eq!(self.state(id), JobState::Verifying);
    }

    /// Assigns the FINALIZE task to node 1 and reports it DONE with these exact totals.
    fn finalize(&mut self, id: &str, final_counters: pb::JobCounters) {
        let f = self.finalize_id(id);
        self.assign(id, f, 1);
        let mut r = self.rep(id, f, TaskOutcome::Done);
        r.final_counters = Some(final_counters);
        r.report_key = format!("dst:.bucketmesh/reports/{id}.jsonl");
        self.send(r);
    }
}

fn totals(objects: u64, bytes: u64) -> pb::JobCounters {
    pb::JobCounters {
        objects_total: objects,
        bytes_total: bytes,
        objects_done: objects,
        bytes_done: bytes,
        ..Default::default()
    }
}

// ---------- submit ----------

// ---------- assign ----------

// ---------- report ----------

// ---------- retry and failure ----------

#[test]
fn backoff_doubles_up_to_a_minute() {
    assert_eq!(jobs::backoff_ms(0), 1000);
    assert_eq!(jobs::backoff_ms(1), 1000);
    assert_eq!(jobs::backoff_ms(2), 2000);
    assert_eq!(jobs::backoff_ms(3), 4000);
    assert_eq!(jobs::backoff_ms(6), 32_000);
    assert_eq!(jobs::backoff_ms(7), jobs::MAX_BACKOFF_MS);
    assert_eq!(jobs::backoff_ms(u32::MAX), jobs::MAX_BACKOFF_MS);
}

// ---------- finalize ----------

// ---------- pause and resume ----------

// ---------- cancel ----------

// ---------- release ----------

// ---------- caps ----------

#[test]
fn events_keep_the_newest_max_events() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    let mut r = h.rep("j1", 2, TaskOutcome::Progress);
    r.events = (0..MAX_EVENTS + 50).map(|i| format!("line {i}")).collect();
    h.send(r);
    let ev = h.events("j1");
    assert_eq!(ev.len(), MAX_EVENTS);
    assert_eq!(ev[0], "line 50");
    assert_eq!(ev[MAX_EVENTS - 1], format!("line {}", MAX_EVENTS + 49));
    // One more event drops the oldest.
    h.ok(control("j1", JobAction::Pause));
    let ev = h.events("j1");
    assert_eq!(ev.len(), MAX_EVENTS);
    assert_eq!(ev[0], "line 51");
    assert_eq!(ev[MAX_EVENTS - 1], "paused by bob");
}

#[test]
fn failures_keep_the_first_max_failures() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    let failure = |i: usize| pb::ObjectFailure {
        key: format!("k{i}"),
        error: "boom".into(),
    };
    let mut r = h.rep("j1", 2, TaskOutcome::Progress);
    r.failures = (0..MAX_FAILURES - 1).map(failure).collect();
    h.send(r);
    let mut r = h.rep("j1", 2, TaskOutcome::Progress);
    r.failures = (MAX_FAILURES - 1..MAX_FAILURES + 10).map(failure).collect();
    h.send(r);
    let f = &h.job("j1").failures;
    assert_eq!(f.len(), MAX_FAILURES);
    assert_eq!(f[0].key, "k0");
    assert_eq!(f[MAX_FAILURES - 1].key, format!("k{}", MAX_FAILURES - 1));
}

// ---------- locations in use ----------

// ---------- determinism and persistence ----------

/// A busy cluster: j-done completed, j-split with a split object half copied, j-paused paused,
/// j-cancel cancelling, j-retry with a task in backoff, j-run running.
fn busy() -> H {
    let mut h = H::new();
    h.verifying("j-done");
    h.finalize("j-done", totals(15, 1500));
    {
        // split_job works on "j1"; build the same here under another id.
        h.submit("j-split", copy_spec());
        h.assign("j-split", 1, 1);
        let mut r = h.rep("j-split", 1, TaskOutcome::Progress);
        r.new_tasks = vec![split_task("big", 33 * MIB, 8 * MIB, 2), copy_task("big", "", 3, 30)];
        h.send(r);
        h.assign("j-split", 2, 2);
        let mut r = h.rep("j-split", 2, TaskOutcome::Done);
        r.upload_id = "up".into();
        h.send(r);
        h.assign("j-split", 3, 3);
        let mut r = h.rep("j-split", 3, TaskOutcome::Done);
        r.parts = vec![etag(1), etag(2)];
        h.send(r);
    }
    h.running("j-paused");
    h.assign("j-paused", 2, 1);
    h.ok(control("j-paused", JobAction::Pause));
    h.running("j-cancel");
    h.ok(control("j-cancel", JobAction::Cancel));
    h.running("j-retry");
    h.assign("j-retry", 2, 2);
    h.send(h.rep("j-retry", 2, TaskOutcome::Retry));
    h.running("j-run");
    h.assign("j-run", 3, 3);
    let mut r = h.rep("j-run", 3, TaskOutcome::Progress);
    r.counters = Some(done_counters(2, 20));
    r.checkpoint = "m".into();
    r.has_checkpoint = true;
    h.send(r);
    h
}

#[test]
fn a_snapshot_round_trip_keeps_jobs_and_tasks() {
    let h = busy();
    assert!(h.t.tasks.len() > 10 && h.t.jobs.len() == 6);
    let state = AppliedState {
        tables: h.t.clone(),
        ..Default::default()
    };
    let data = state.to_snapshot_data();
    assert_eq!(data.jobs.len(), 6);
    assert_eq!(data.tasks.len(), h.t.tasks.len());
    let back = AppliedState::from_snapshot_data(&data).unwrap();
    assert_eq!(back.tables, h.t);
    // Through the canonical bytes too.
    use prost::Message as _;
    let bytes = state.encode_snapshot();
    let decoded = pb::SnapshotData::decode(bytes.as_slice()).unwrap();
    assert_eq!(AppliedState::from_snapshot_data(&decoded).unwrap().tables, h.t);
}

#[test]
fn a_snapshot_with_a_duplicate_task_is_refused() {
    let h = busy();
    let mut data = AppliedState {
        tables: h.t.clone(),
        ..Default::default()
    }
    .to_snapshot_data();
    data.tasks.push(data.tasks[0].clone());
    assert!(AppliedState::from_snapshot_data(&data).is_err());
}

#[test]
fn replaying_the_log_gives_byte_identical_state() {
    let h = busy();
    let mut again = Tables::default();
    for cmd in &h.log {
        apply_command(&mut again, cmd);
    }
    assert_eq!(again, h.t);
    let snap = |t: &Tables| {
        AppliedState {
            tables: t.clone(),
            ..Default::default()
        }
        .encode_snapshot()
    };
    assert_eq!(snap(&again), snap(&h.t));
}

mod store {
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    use super::*;
    use crate::TypeConfig;

    fn entries(cmds: &[pb::Command], first_index: u64) -> Vec<Entry<TypeConfig>> {
        cmds.iter()
            .enumerate()
            .map(|(i, c)| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), first_index + i as u64),
                payload: EntryPayload::Normal(c.clone()),
            })
            .collect()
    }

    /// Opens the store in `dir`, waiting up to 5 s for a just-dropped instance to let go of it.
    fn reopen(dir: &std::path::Path) -> (crate::LogStore, crate::StateMachineStore) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match crate::open(dir) {
                Ok(s) => return s,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("reopen: {e}; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen {}: {e}", dir.display()),
            }
        }
    }

    fn tables(sm: &crate::StateMachineStore) -> Tables {
        sm.reader().snapshot().tables
    }

    #[tokio::test]
    async fn job_tables_survive_a_store_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = busy();
        let first = h.log.len();
        {
            let (_log, mut sm) = crate::open(dir.path()).unwrap();
            sm.apply(entries(&h.log, 1)).await.unwrap();
            assert_eq!(tables(&sm), h.t);
        }
        let (log, mut sm) = crate::open(dir.path()).unwrap();
        assert_eq!(tables(&sm), h.t, "the same tables after a reopen");

        // Finish two jobs (their task rows go) and change others; reopen again.
        let f = h.finalize_id("j-cancel");
        h.assign("j-cancel", f, 1);
        h.send(h.rep("j-cancel", f, TaskOutcome::Done));
        h.ok(control("j-paused", JobAction::Resume));
        h.ok(release(3, "down"));
        let more = h.log[first..].to_vec();
        sm.apply(entries(&more, first as u64 + 1)).await.unwrap();
        assert_eq!(tables(&sm), h.t);
        assert!(h.tasks("j-cancel").is_empty());
        drop((log, sm));
        // sled's flusher thread may hold the directory lock a moment after the drop.
        let (_log, sm) = reopen(dir.path());
        assert_eq!(tables(&sm), h.t, "deleted task rows stay deleted");
        assert!(sm.reader().job_tasks("j-cancel").is_empty());
        assert_eq!(sm.reader().job("j-cancel").unwrap().state, JobState::Cancelled as i32);
    }
}
