//! Unit tests of the job tables ([`crate::jobs`]), driven through
//! [`crate::apply::apply_command`] so that the dispatch is tested too.
//!
//! Every test builds a [`H`] (tables with fs locations `src`, `dst`, `other`, a default-chain
//! credential and active nodes 1, 2 and 3), then applies commands at increasing times
//! (`H::now` advances by 10 ms per command unless a test sets it). Every refusal is checked to
//! leave the tables unchanged; every stale report too.

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

fn s3_location(name: &str, endpoint: &str, bucket: &str, prefix: &str) -> Kind {
    Kind::PutLocation(pb::PutLocation {
        location: Some(pb::Location {
            name: name.into(),
            kind: pb::LocationKind::S3 as i32,
            endpoint: endpoint.into(),
            bucket: bucket.into(),
            prefix: prefix.into(),
            credential: "chain".into(),
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

fn set_node_state(id: u64, state: NodeState) -> Kind {
    Kind::SetNodeState(pb::SetNodeState {
        node_id: id,
        state: state as i32,
        reason: "test".into(),
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

fn set_setting(name: &str, value: &str) -> Kind {
    Kind::SetSetting(pb::SetSetting {
        name: name.into(),
        value: value.into(),
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

fn tref(job: &str, task: u64) -> pb::TaskRef {
    pb::TaskRef {
        job_id: job.into(),
        task_id: task,
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

    /// Applies a command that must be refused with `reason`, leaving the tables unchanged;
    /// returns the error message.
    fn refused(&mut self, kind: Kind, reason: &str) -> String {
        let before = self.t.clone();
        let r = self.apply(kind);
        assert_eq!(r.reason, reason, "unexpected response {r:?}");
        assert!(!r.error.is_empty(), "refusal without a message: {r:?}");
        assert_eq!(self.t, before, "a refused command changed the tables");
        r.error
    }

    /// Applies a command that changes nothing at all (a skipped assignment, a stale report).
    fn no_change(&mut self, kind: Kind) -> pb::CommandResponse {
        let before = self.t.clone();
        let r = self.apply(kind);
        assert!(r.error.is_empty(), "refused: {r:?}");
        assert_eq!(self.t, before, "the tables changed");
        r
    }

    fn job(&self, id: &str) -> &pb::Job {
        self.t.jobs.get(id).unwrap_or_else(|| panic!("no job {id}"))
    }

    fn counters(&self, id: &str) -> pb::JobCounters {
        self.job(id).counters.unwrap_or_default()
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

    fn task_state(&self, job: &str, id: u64) -> TaskState {
        TaskState::try_from(self.task(job, id).state).unwrap()
    }

    fn events(&self, job: &str) -> Vec<String> {
        self.job(job).events.iter().map(|e| e.text.clone()).collect()
    }

    fn has_event(&self, job: &str, needle: &str) -> bool {
        self.job(job).events.iter().any(|e| e.text.contains(needle))
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

    /// Assigns a task to `node` and reports it DONE.
    fn run_done(&mut self, job: &str, task: u64, node: u64) {
        self.assign(job, task, node);
        self.send(self.rep(job, task, TaskOutcome::Done));
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

#[test]
fn submit_creates_a_queued_job_and_one_pending_list_task() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    let j = h.job("j1");
    assert_eq!(j.state, JobState::Queued as i32);
    assert_eq!(j.owner, "alice");
    assert_eq!(j.spec.as_ref(), Some(&copy_spec()));
    assert_eq!(j.created_at_ms, h.now);
    assert_eq!(j.started_at_ms, 0);
    assert_eq!((j.open_tasks, j.tasks_total, j.next_task_id), (1, 1, 2));
    assert_eq!(j.submitted_via, 1);
    assert_eq!(h.events("j1"), ["submitted"]);
    assert_eq!(h.shape("j1"), [(1, TaskKind::List, TaskState::Pending)]);
    let list = h.task("j1", 1);
    assert_eq!((list.node_id, list.epoch, list.attempts), (0, 0, 0));
    assert!(
        !list.has_start_after && !list.has_end,
        "the LIST covers the whole source"
    );
}

#[test]
fn submit_of_an_existing_id_is_already_exists() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    let e = h.refused(
        submit("j1", spec(JobOp::Copy, "src", "a/", "dst", "b/")),
        "ALREADY_EXISTS",
    );
    assert!(e.contains("j1"), "{e}");
}

#[test]
fn submit_of_a_finished_job_id_is_still_already_exists() {
    let mut h = H::new();
    h.verifying("j1");
    h.finalize("j1", totals(15, 1500));
    h.refused(submit("j1", copy_spec()), "ALREADY_EXISTS");
}

#[test]
fn submit_without_job_id_spec_or_op_is_invalid() {
    let mut h = H::new();
    h.refused(Kind::SubmitJob(pb::SubmitJob { job: None }), "INVALID_ARGUMENT");
    h.refused(submit("", copy_spec()), "INVALID_ARGUMENT");
    let no_spec = Kind::SubmitJob(pb::SubmitJob {
        job: Some(pb::Job {
            id: "j1".into(),
            ..Default::default()
        }),
    });
    assert!(h.refused(no_spec, "INVALID_ARGUMENT").contains("no spec"));
    let e = h.refused(
        submit("j1", spec(JobOp::Unspecified, "src", "", "dst", "")),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("copy, move or sync"), "{e}");
}

#[test]
fn submit_with_an_unknown_location_is_invalid() {
    let mut h = H::new();
    let e = h.refused(
        submit("j1", spec(JobOp::Copy, "nope", "", "dst", "")),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("source location \"nope\" does not exist"), "{e}");
    let e = h.refused(
        submit("j1", spec(JobOp::Copy, "src", "", "gone", "")),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("destination location \"gone\" does not exist"), "{e}");
    assert!(e.contains("meshctl location list"), "{e}");
}

#[test]
fn submit_with_a_bad_path_is_invalid() {
    let mut h = H::new();
    for (path, why) in [
        ("../x/", "'..'"),
        ("a/../b/", "'..'"),
        ("./a/", "'.'"),
        ("/abs/", "no leading '/'"),
        ("noslash", "end with '/'"),
        ("a/b", "end with '/'"),
    ] {
        let e = h.refused(
            submit("j1", spec(JobOp::Copy, "src", path, "dst", "")),
            "INVALID_ARGUMENT",
        );
        assert!(e.contains("source path") && e.contains(why), "{path}: {e}");
        let e = h.refused(
            submit("j1", spec(JobOp::Copy, "src", "", "dst", path)),
            "INVALID_ARGUMENT",
        );
        assert!(e.contains("destination path") && e.contains(why), "{path}: {e}");
    }
    // Well-formed paths pass.
    h.submit("j1", spec(JobOp::Copy, "src", "a/b/", "dst", "c/"));
}

#[test]
fn submit_with_an_unknown_tier_verify_or_sse_is_invalid() {
    let mut h = H::new();
    let e = h.refused(
        submit(
            "j1",
            pb::JobSpec {
                tier: "gold".into(),
                ..copy_spec()
            },
        ),
        "INVALID_ARGUMENT",
    );
    assert!(
        e.contains("unknown tier \"gold\"") && e.contains("express, plus or ultra"),
        "{e}"
    );
    let e = h.refused(
        submit(
            "j1",
            pb::JobSpec {
                verify: "md5".into(),
                ..copy_spec()
            },
        ),
        "INVALID_ARGUMENT",
    );
    assert!(
        e.contains("unknown verify mode \"md5\"") && e.contains("checksum"),
        "{e}"
    );
    let e = h.refused(
        submit(
            "j1",
            pb::JobSpec {
                sse: "rot13".into(),
                ..copy_spec()
            },
        ),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("unknown SSE"), "{e}");
    let e = h.refused(
        submit(
            "j1",
            pb::JobSpec {
                sse: "AES256".into(),
                kms_key_id: "k".into(),
                ..copy_spec()
            },
        ),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("KMS key"), "{e}");
    let e = h.refused(
        submit(
            "j1",
            pb::JobSpec {
                rules: vec![pb::FilterRule {
                    include: true,
                    glob: String::new(),
                }],
                ..copy_spec()
            },
        ),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("pattern is empty"), "{e}");
    for (tier, verify) in [
        ("express", "none"),
        ("plus", "size"),
        ("ultra", "etag"),
        ("", "checksum"),
    ] {
        let id = format!("j-{tier}-{verify}");
        h.submit(
            &id,
            pb::JobSpec {
                tier: tier.into(),
                verify: verify.into(),
                ..copy_spec()
            },
        );
    }
}

#[test]
fn submit_with_delete_is_only_for_sync() {
    let mut h = H::new();
    for op in [JobOp::Copy, JobOp::Move] {
        let e = h.refused(
            submit(
                "j1",
                pb::JobSpec {
                    delete: true,
                    ..spec(op, "src", "", "dst", "")
                },
            ),
            "INVALID_ARGUMENT",
        );
        assert!(e.contains("--delete is only for sync"), "{e}");
    }
    h.submit(
        "j1",
        pb::JobSpec {
            delete: true,
            ..spec(JobOp::Sync, "src", "", "dst", "")
        },
    );
}

#[test]
fn move_and_sync_refuse_the_same_place() {
    let mut h = H::new();
    h.ok(fs_location("src-again", "/data/src/"));
    for op in [JobOp::Move, JobOp::Sync] {
        let e = h.refused(submit("j1", spec(op, "src", "a/", "src", "a/")), "INVALID_ARGUMENT");
        assert!(
            e.contains("source src:a/ and destination src:a/ are the same place"),
            "{e}"
        );
        // Two fs locations on the same directory (trailing '/' or not) are the same place.
        let e = h.refused(submit("j1", spec(op, "src", "", "src-again", "")), "INVALID_ARGUMENT");
        assert!(
            e.contains("same place") && e.contains("pick another destination"),
            "{e}"
        );
    }
    // Copy may write anywhere.
    h.submit("c", spec(JobOp::Copy, "src", "a/", "src-again", "b/"));
}

#[test]
fn move_and_sync_refuse_a_destination_inside_the_source() {
    let mut h = H::new();
    h.ok(fs_location("src-again", "/data/src"));
    for op in [JobOp::Move, JobOp::Sync] {
        let e = h.refused(submit("j1", spec(op, "src", "a/", "src", "a/b/")), "INVALID_ARGUMENT");
        assert!(e.contains("destination src:a/b/ is inside source src:a/"), "{e}");
        assert!(e.contains("read its own output"), "{e}");
        let e = h.refused(submit("j1", spec(op, "src", "", "src-again", "x/")), "INVALID_ARGUMENT");
        assert!(e.contains("is inside source"), "{e}");
    }
}

#[test]
fn move_and_sync_refuse_a_source_inside_the_destination() {
    let mut h = H::new();
    for op in [JobOp::Move, JobOp::Sync] {
        let e = h.refused(submit("j1", spec(op, "src", "a/b/", "src", "a/")), "INVALID_ARGUMENT");
        assert!(e.contains("source src:a/b/ is inside destination src:a/"), "{e}");
    }
}

#[test]
fn move_and_sync_accept_sibling_folders() {
    let mut h = H::new();
    // "a/" and "ab/" share a string prefix but are different folders.
    h.submit("j1", spec(JobOp::Sync, "src", "a/", "src", "ab/"));
    h.submit("j2", spec(JobOp::Move, "src", "ab/", "src", "a/"));
    h.submit("j3", spec(JobOp::Move, "src", "", "dst", ""));
}

#[test]
fn move_and_sync_refuse_nested_fs_locations() {
    let mut h = H::new();
    // /data/src/inner is inside the directory of location src.
    h.ok(fs_location("inner", "/data/src/inner"));
    let e = h.refused(
        submit("j1", spec(JobOp::Sync, "src", "", "inner", "")),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("destination inner: is inside source src:"), "{e}");
    let e = h.refused(
        submit("j1", spec(JobOp::Move, "inner", "", "src", "")),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("source inner: is inside destination src:"), "{e}");
    // src:inner/ and inner: are the same directory.
    let e = h.refused(
        submit("j1", spec(JobOp::Move, "src", "inner/", "inner", "")),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("same place"), "{e}");
    // A sibling directory with a common string prefix does not overlap.
    h.ok(fs_location("srcx", "/data/srcx"));
    h.submit("j1", spec(JobOp::Sync, "src", "", "srcx", ""));
}

#[test]
fn move_and_sync_compare_s3_locations_by_endpoint_bucket_and_prefix() {
    let mut h = H::new();
    h.ok(s3_location("all", "", "bkt", ""));
    h.ok(s3_location("data", "", "bkt", "data/"));
    h.ok(s3_location("data-again", "", "bkt", "data"));
    h.ok(s3_location("sub", "", "bkt", "data/sub/"));
    h.ok(s3_location("minio", "http://minio:9000", "bkt", "data/"));
    h.ok(s3_location("elsewhere", "", "other-bkt", "data/"));
    let e = h.refused(
        submit("j1", spec(JobOp::Sync, "data", "", "data-again", "")),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("same place"), "{e}");
    let e = h.refused(
        submit("j1", spec(JobOp::Sync, "data", "", "sub", "")),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("destination sub: is inside source data:"), "{e}");
    let e = h.refused(
        submit("j1", spec(JobOp::Move, "sub", "", "all", "")),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("source sub: is inside destination all:"), "{e}");
    // The location prefix and the job path join: data:sub/ is sub:.
    let e = h.refused(
        submit("j1", spec(JobOp::Move, "data", "sub/", "sub", "")),
        "INVALID_ARGUMENT",
    );
    assert!(e.contains("same place"), "{e}");
    // Another endpoint or bucket is another place; so is an fs location.
    h.submit("j1", spec(JobOp::Sync, "data", "", "minio", ""));
    h.submit("j2", spec(JobOp::Sync, "data", "", "elsewhere", ""));
    h.submit("j3", spec(JobOp::Move, "data", "", "dst", ""));
}

// ---------- assign ----------

#[test]
fn assign_bumps_the_epoch_and_moves_the_job_to_planning() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    let epoch = h.assign("j1", 1, 3);
    assert_eq!(epoch, 1);
    let (t, j) = (h.task("j1", 1), h.job("j1"));
    assert_eq!(t.assigned_at_ms, h.now);
    assert_eq!(j.state, JobState::Planning as i32);
    assert_eq!(j.started_at_ms, h.now);
    assert_eq!(j.nodes_used, [3]);
    assert!(h.has_event("j1", "planning"));
    assert!(h.has_event("j1", "task 1 (list) assigned to node 3 (epoch 1)"));
}

#[test]
fn assign_records_the_nodes_used_sorted_and_once() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.assign("j1", 1, 3);
    let mut r = h.rep("j1", 1, TaskOutcome::Progress);
    r.new_tasks = vec![
        copy_task("", "a", 1, 1),
        copy_task("a", "b", 1, 1),
        copy_task("b", "c", 1, 1),
    ];
    h.send(r);
    h.ok(assign(&[("j1", 2, 2), ("j1", 3, 1), ("j1", 4, 3)]));
    assert_eq!(h.job("j1").nodes_used, [1, 2, 3]);
    assert_eq!(h.task("j1", 3).node_id, 1);
    // A first COPY assignment is not worth an event; a re-assignment is.
    assert!(!h.has_event("j1", "task 2 (copy) assigned"));
    h.ok(release(2, "node down"));
    h.assign("j1", 2, 1);
    assert_eq!(h.task("j1", 2).epoch, 2);
    assert!(h.has_event("j1", "task 2 (copy) assigned to node 1 (epoch 2)"));
}

#[test]
fn assign_skips_nodes_that_are_down_left_draining_or_unknown() {
    let mut h = H::new();
    h.ok(node(4, NodeState::Active));
    h.ok(set_node_state(4, NodeState::Down));
    h.ok(node(5, NodeState::Active));
    h.ok(set_node_state(5, NodeState::Left));
    h.ok(node(6, NodeState::Active));
    h.ok(set_node_state(6, NodeState::Draining));
    h.submit("j1", copy_spec());
    for n in [4, 5, 6, 99] {
        h.no_change(assign(&[("j1", 1, n)]));
    }
    assert_eq!(h.state("j1"), JobState::Queued);
    // The same command still applies the assignments that fit.
    h.ok(assign(&[("j1", 1, 4), ("j1", 1, 2)]));
    assert_eq!(h.task("j1", 1).node_id, 2);
}

#[test]
fn assign_skips_a_paused_job() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.ok(control("j1", JobAction::Pause));
    h.no_change(assign(&[("j1", 1, 1)]));
    h.ok(control("j1", JobAction::Resume));
    h.assign("j1", 1, 1);
}

#[test]
fn assign_skips_a_task_that_is_not_pending() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.assign("j1", 1, 1);
    // Already assigned: a second assignment (another node, or the same) changes nothing.
    h.no_change(assign(&[("j1", 1, 2)]));
    h.no_change(assign(&[("j1", 1, 1)]));
    assert_eq!(h.task("j1", 1).epoch, 1);
    // Done, blocked, unknown task, unknown job.
    let mut r = h.rep("j1", 1, TaskOutcome::Done);
    r.new_tasks = vec![split_task("big", 3 * MIB, MIB, 1)];
    h.send(r);
    h.no_change(assign(&[("j1", 1, 1)]));
    assert_eq!(h.task_state("j1", 3), TaskState::Blocked);
    h.no_change(assign(&[("j1", 3, 1)]));
    h.no_change(assign(&[("j1", 77, 1)]));
    h.no_change(assign(&[("nope", 1, 1)]));
}

#[test]
fn assign_waits_for_the_retry_backoff() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.assign("j1", 1, 1);
    h.send(h.rep("j1", 1, TaskOutcome::Retry));
    let not_before = h.task("j1", 1).not_before_ms;
    assert!(not_before > h.now);
    h.now = not_before - 11; // the next command runs 1 ms before the backoff ends
    h.no_change(assign(&[("j1", 1, 1)]));
    h.now = not_before - 10; // exactly at the end of the backoff
    assert_eq!(h.assign("j1", 1, 2), 2);
}

// ---------- report ----------

#[test]
fn reports_that_do_not_match_the_assignment_are_stale() {
    let mut h = H::new();
    h.listing("j1"); // LIST (1) on node 1, epoch 1; COPY 2 and 3 pending
    let e = h.task("j1", 1).epoch;
    let rep = |job: &str, task: u64, epoch: u64| pb::TaskReport {
        job_id: job.into(),
        task_id: task,
        epoch,
        outcome: TaskOutcome::Done as i32,
        counters: Some(done_counters(100, 100)),
        ..Default::default()
    };
    for (node, r) in [
        (2, rep("j1", 1, e)),     // another node
        (1, rep("j1", 1, e + 1)), // another epoch
        (1, rep("j1", 1, e - 1)), // an older epoch
        (1, rep("j1", 2, 0)),     // a pending task
        (1, rep("j1", 99, 1)),    // an unknown task
        (1, rep("nope", 1, 1)),   // an unknown job
    ] {
        let want = tref(&r.job_id, r.task_id);
        let resp = h.no_change(reports(node, vec![r]));
        assert_eq!(resp.stale, [want]);
    }
}

#[test]
fn one_report_command_applies_the_current_and_names_the_stale() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    h.assign("j1", 3, 2);
    let mut good = h.rep("j1", 2, TaskOutcome::Progress);
    good.counters = Some(done_counters(1, 10));
    let mut stale = h.rep("j1", 3, TaskOutcome::Done);
    stale.epoch = 7;
    let resp = h.apply(reports(2, vec![stale, good]));
    assert!(resp.error.is_empty());
    assert_eq!(resp.stale, [tref("j1", 3)]);
    assert_eq!(h.counters("j1").objects_done, 1);
    assert_eq!(h.task_state("j1", 3), TaskState::Assigned);
}

#[test]
fn a_report_after_a_done_report_is_stale() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    let done = h.rep("j1", 2, TaskOutcome::Done);
    h.send(done.clone());
    let resp = h.no_change(reports(2, vec![done]));
    assert_eq!(resp.stale, [tref("j1", 2)]);
}

#[test]
fn cumulative_task_counters_add_only_their_delta_to_the_job() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    h.assign("j1", 3, 3);
    let mut r = h.rep("j1", 2, TaskOutcome::Progress);
    r.counters = Some(pb::TaskCounters {
        objects_done: 3,
        bytes_done: 300,
        objects_skipped: 1,
        bytes_skipped: 10,
        ..Default::default()
    });
    h.send(r);
    let mut r = h.rep("j1", 2, TaskOutcome::Progress);
    r.counters = Some(pb::TaskCounters {
        objects_done: 5,
        bytes_done: 500,
        objects_skipped: 2,
        bytes_skipped: 20,
        objects_failed: 1,
        bytes_failed: 7,
        objects_deleted: 4,
    });
    h.send(r);
    let c = h.counters("j1");
    assert_eq!((c.objects_done, c.bytes_done), (5, 500), "the latest, not the sum");
    assert_eq!((c.objects_skipped, c.bytes_skipped), (2, 20));
    assert_eq!((c.objects_failed, c.bytes_failed, c.objects_deleted), (1, 7, 4));
    // Another task's counters add up with the first's.
    let mut r = h.rep("j1", 3, TaskOutcome::Progress);
    r.counters = Some(done_counters(2, 200));
    h.send(r);
    let c = h.counters("j1");
    assert_eq!((c.objects_done, c.bytes_done), (7, 700));
    // The task keeps its own latest counters.
    assert_eq!(h.task("j1", 2).counters.as_ref().unwrap().objects_done, 5);
    // A report without counters resets the task's to zero (cumulative: "nothing yet").
    h.send(h.rep("j1", 3, TaskOutcome::Progress));
    assert_eq!(h.counters("j1").objects_done, 5);
}

#[test]
fn counters_survive_a_retry_and_are_not_counted_twice() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    let mut r = h.rep("j1", 2, TaskOutcome::Retry);
    r.counters = Some(done_counters(4, 400));
    h.send(r);
    assert_eq!(h.counters("j1").objects_done, 4);
    h.now = h.task("j1", 2).not_before_ms;
    h.assign("j1", 2, 3);
    let mut r = h.rep("j1", 2, TaskOutcome::Done);
    r.counters = Some(done_counters(10, 1000));
    h.send(r);
    assert_eq!(h.counters("j1").objects_done, 10);
}

#[test]
fn progress_keeps_checkpoint_events_and_failures() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    let mut r = h.rep("j1", 2, TaskOutcome::Progress);
    r.checkpoint = "f".into();
    r.has_checkpoint = true;
    r.events = vec!["slow source".into()];
    r.failures = vec![pb::ObjectFailure {
        key: "a".into(),
        error: "403".into(),
    }];
    h.send(r);
    let t = h.task("j1", 2);
    assert!(t.has_checkpoint);
    assert_eq!(t.checkpoint, "f");
    let ev = h.job("j1").events.last().unwrap().clone();
    assert_eq!((ev.text.as_str(), ev.node_id, ev.at_ms), ("slow source", 2, h.now));
    assert_eq!(h.job("j1").failures[0].key, "a");
    assert_eq!(h.job("j1").updated_at_ms, h.now);
    // A report without a checkpoint keeps the last one.
    h.send(h.rep("j1", 2, TaskOutcome::Progress));
    assert_eq!(h.task("j1", 2).checkpoint, "f");
}

#[test]
fn list_reports_create_copy_tasks_and_grow_the_totals() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.assign("j1", 1, 1);
    assert_eq!(h.state("j1"), JobState::Planning);
    h.send(h.rep("j1", 1, TaskOutcome::Progress));
    assert_eq!(h.state("j1"), JobState::Planning, "no task planned yet");
    h.send(h.list_rep(
        "j1",
        TaskOutcome::Progress,
        vec![copy_task("", "k", 10, 1000), copy_task("k", "z", 5, 500)],
    ));
    assert_eq!(h.state("j1"), JobState::Running);
    assert!(h.has_event("j1", "running"));
    assert_eq!(
        h.shape("j1"),
        [
            (1, TaskKind::List, TaskState::Assigned),
            (2, TaskKind::Copy, TaskState::Pending),
            (3, TaskKind::Copy, TaskState::Pending),
        ]
    );
    let t2 = h.task("j1", 2);
    assert_eq!((t2.has_start_after, t2.end.as_str(), t2.has_end), (false, "k", true));
    assert_eq!((t2.objects, t2.bytes), (10, 1000));
    let t3 = h.task("j1", 3);
    assert_eq!(
        (t3.start_after.as_str(), t3.has_start_after, t3.end.as_str()),
        ("k", true, "z")
    );
    assert_eq!(
        h.task("j1", 1).checkpoint,
        "z",
        "the LIST resumes after its last planned task"
    );
    let c = h.counters("j1");
    assert_eq!((c.objects_total, c.bytes_total), (15, 1500));
    let j = h.job("j1");
    assert_eq!((j.next_task_id, j.open_tasks, j.tasks_total), (4, 3, 3));
    // The next page: ids go on from next_task_id, totals grow.
    h.send(h.list_rep("j1", TaskOutcome::Done, vec![copy_task("z", "zz", 1, 7)]));
    assert_eq!(h.task("j1", 4).start_after, "z");
    let c = h.counters("j1");
    assert_eq!((c.objects_total, c.bytes_total), (16, 1507));
    let j = h.job("j1");
    assert_eq!((j.next_task_id, j.open_tasks, j.tasks_total), (5, 3, 4));
}

#[test]
fn a_resent_list_report_plans_nothing_twice() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.assign("j1", 1, 1);
    let page1 = vec![copy_task("", "k", 10, 1000), copy_task("k", "z", 5, 500)];
    let first = h.list_rep("j1", TaskOutcome::Progress, page1.clone());
    h.send(first.clone());
    let planned = h.t.clone();
    // The same report again (its answer was lost): nothing new.
    h.send(first);
    assert_eq!(h.tasks("j1"), planned.tasks.values().cloned().collect::<Vec<_>>());
    assert_eq!(h.counters("j1").objects_total, 15);
    // The unacknowledged tasks again, followed by the next page: only the new one is planned.
    let mut both = page1;
    both.push(copy_task("z", "zz", 1, 1));
    h.send(h.list_rep("j1", TaskOutcome::Progress, both));
    assert_eq!(h.tasks("j1").len(), 4);
    assert_eq!(h.task("j1", 4).start_after, "z");
    assert_eq!(h.counters("j1").objects_total, 16);
    assert_eq!(h.task("j1", 1).checkpoint, "zz");
}

#[test]
fn list_tasks_that_do_not_chain_from_the_checkpoint_are_ignored() {
    let mut h = H::new();
    h.listing("j1"); // checkpoint "z"
    let before = h.t.tasks.clone();
    h.send(h.list_rep("j1", TaskOutcome::Progress, vec![copy_task("q", "r", 1, 1)]));
    assert_eq!(h.t.tasks.len(), before.len());
    assert_eq!(h.task("j1", 1).checkpoint, "z");
    assert_eq!(h.counters("j1").objects_total, 15);
}

#[test]
fn a_list_that_planned_its_open_ended_last_task_is_done() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.assign("j1", 1, 1);
    // A one-page source: its only task is open-ended, reported while the LIST still runs.
    let r = h.list_rep("j1", TaskOutcome::Progress, vec![copy_task("", "", 3, 30)]);
    h.send(r.clone());
    assert_eq!(
        h.shape("j1"),
        [
            (1, TaskKind::List, TaskState::Done),
            (2, TaskKind::Copy, TaskState::Pending)
        ]
    );
    assert_eq!(h.job("j1").open_tasks, 1);
    // Sent again (its answer lost), or followed by the LIST's own DONE: stale, nothing planned twice.
    let resp = h.no_change(reports(1, vec![r]));
    assert_eq!(resp.stale, [tref("j1", 1)]);
    // The same after several pages: the open-ended task after checkpoint "z" ends the listing.
    h.listing("j2");
    h.send(h.list_rep("j2", TaskOutcome::Progress, vec![copy_task("z", "", 1, 1)]));
    assert_eq!(h.task_state("j2", 1), TaskState::Done);
    assert_eq!(h.tasks("j2").len(), 4);
    h.run_done("j2", 2, 2);
    h.run_done("j2", 3, 2);
    h.run_done("j2", 4, 2);
    assert_eq!(h.state("j2"), JobState::Verifying);
}

#[test]
fn copy_tasks_keep_their_path_order() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.assign("j1", 1, 1);
    let ordered = pb::NewTask {
        path_order: true,
        ..copy_task("", "a/z", 1, 1)
    };
    h.send(h.list_rep("j1", TaskOutcome::Progress, vec![copy_task("", "a/", 1, 1)]));
    h.send(h.list_rep(
        "j1",
        TaskOutcome::Progress,
        vec![pb::NewTask {
            start_after: "a/".into(),
            has_start_after: true,
            ..ordered
        }],
    ));
    assert!(!h.task("j1", 2).path_order);
    assert!(h.task("j1", 3).path_order);
}

#[test]
fn new_tasks_from_a_non_list_task_are_ignored() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    let mut r = h.rep("j1", 2, TaskOutcome::Progress);
    r.new_tasks = vec![copy_task("", "x", 1, 1)];
    h.send(r);
    assert_eq!(h.tasks("j1").len(), 3);
    assert_eq!(h.counters("j1").objects_total, 15);
}

/// Job j1 whose LIST (task 1) planned one split object: 33 MiB in 8 MiB parts (5 parts, the
/// last 1 MiB), 2 parts per task: PART_INIT 2, PART_COPY 3 (1-2), 4 (3-4), 5 (5), PART_COMPLETE 6.
fn split_job(h: &mut H) {
    h.submit("j1", copy_spec());
    h.assign("j1", 1, 1);
    let mut r = h.rep("j1", 1, TaskOutcome::Done);
    r.new_tasks = vec![split_task("big.bin", 33 * MIB, 8 * MIB, 2)];
    h.send(r);
}

#[test]
fn a_split_object_plans_init_blocked_parts_and_a_blocked_complete() {
    let mut h = H::new();
    split_job(&mut h);
    assert_eq!(
        h.shape("j1"),
        [
            (1, TaskKind::List, TaskState::Done),
            (2, TaskKind::PartInit, TaskState::Pending),
            (3, TaskKind::PartCopy, TaskState::Blocked),
            (4, TaskKind::PartCopy, TaskState::Blocked),
            (5, TaskKind::PartCopy, TaskState::Blocked),
            (6, TaskKind::PartComplete, TaskState::Blocked),
        ]
    );
    assert_eq!(h.state("j1"), JobState::Running);
    let init = h.task("j1", 2);
    assert_eq!((init.key.as_str(), init.etag.as_str()), ("big.bin", "\"src-etag\""));
    assert_eq!((init.objects, init.bytes, init.part_size), (1, 33 * MIB, 8 * MIB));
    assert_eq!((init.first_part, init.last_part, init.parts_per_task), (1, 5, 2));
    let parts: Vec<(u64, u32, u32, u64)> = (3..=5)
        .map(|id| {
            let p = h.task("j1", id);
            assert_eq!((p.key.as_str(), p.part_size), ("big.bin", 8 * MIB));
            (p.group, p.first_part, p.last_part, p.bytes)
        })
        .collect();
    assert_eq!(parts, [(2, 1, 2, 16 * MIB), (2, 3, 4, 16 * MIB), (2, 5, 5, MIB)]);
    let complete = h.task("j1", 6);
    assert_eq!((complete.group, complete.first_part, complete.last_part), (2, 1, 5));
    assert_eq!((complete.key.as_str(), complete.bytes), ("big.bin", 33 * MIB));
    let c = h.counters("j1");
    assert_eq!((c.objects_total, c.bytes_total), (1, 33 * MIB));
    let j = h.job("j1");
    assert_eq!((j.next_task_id, j.open_tasks, j.tasks_total), (7, 5, 6));
}

#[test]
fn part_tasks_cover_every_part_of_each_object() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.assign("j1", 1, 1);
    let mut r = h.rep("j1", 1, TaskOutcome::Done);
    // 4 parts of 5 MiB exactly, 3 per task: parts 1-3 and 4 (a short last task of one part).
    r.new_tasks = vec![
        split_task("a", 20 * MIB, 5 * MIB, 3),
        split_task("b", 10 * MIB, 5 * MIB, 2),
    ];
    h.send(r);
    let ranges: Vec<(String, u32, u32, u64)> = h
        .tasks("j1")
        .iter()
        .filter(|t| t.kind == TaskKind::PartCopy as i32)
        .map(|t| (t.key.clone(), t.first_part, t.last_part, t.bytes))
        .collect();
    assert_eq!(
        ranges,
        [
            ("a".to_string(), 1, 3, 15 * MIB),
            ("a".to_string(), 4, 4, 5 * MIB),
            ("b".to_string(), 1, 2, 10 * MIB),
        ]
    );
    // b's tasks belong to b's PART_INIT.
    let b_init = h
        .tasks("j1")
        .iter()
        .find(|t| t.key == "b" && t.kind == TaskKind::PartInit as i32)
        .unwrap()
        .id;
    assert!(h
        .tasks("j1")
        .iter()
        .filter(|t| t.key == "b")
        .all(|t| t.id == b_init || t.group == b_init));
    assert_eq!(h.counters("j1").objects_total, 2);
}

#[test]
fn part_init_done_unblocks_its_parts_with_the_upload_id() {
    let mut h = H::new();
    split_job(&mut h);
    h.assign("j1", 2, 1);
    let mut r = h.rep("j1", 2, TaskOutcome::Done);
    r.upload_id = "upload-1".into();
    h.send(r);
    assert_eq!(h.task("j1", 2).upload_id, "upload-1");
    for id in 3..=5 {
        assert_eq!(h.task_state("j1", id), TaskState::Pending);
        assert_eq!(h.task("j1", id).upload_id, "upload-1");
    }
    // PART_COMPLETE learns the upload id but waits for the parts.
    assert_eq!(h.task_state("j1", 6), TaskState::Blocked);
    assert_eq!(h.task("j1", 6).upload_id, "upload-1");
    assert_eq!(h.job("j1").open_tasks, 4);
}

#[test]
fn the_last_part_copy_unblocks_part_complete_with_every_etag_sorted() {
    let mut h = H::new();
    split_job(&mut h);
    h.assign("j1", 2, 1);
    let mut r = h.rep("j1", 2, TaskOutcome::Done);
    r.upload_id = "upload-1".into();
    h.send(r);
    h.assign("j1", 3, 1);
    h.assign("j1", 4, 2);
    h.assign("j1", 5, 3);
    // The last part first, then parts 3-4 (reported out of order, in two steps).
    let mut r = h.rep("j1", 5, TaskOutcome::Done);
    r.parts = vec![etag(5)];
    h.send(r);
    let mut r = h.rep("j1", 4, TaskOutcome::Progress);
    r.parts = vec![etag(4)];
    h.send(r);
    let mut r = h.rep("j1", 4, TaskOutcome::Done);
    r.parts = vec![etag(4), etag(3)];
    h.send(r);
    assert_eq!(h.task_state("j1", 6), TaskState::Blocked, "part 1-2 still running");
    assert!(h.task("j1", 6).parts.is_empty());
    let mut r = h.rep("j1", 3, TaskOutcome::Done);
    r.parts = vec![etag(2), etag(1)];
    h.send(r);
    let complete = h.task("j1", 6);
    assert_eq!(complete.state, TaskState::Pending as i32);
    assert_eq!(complete.parts, (1..=5).map(etag).collect::<Vec<_>>());
    assert_eq!(complete.upload_id, "upload-1");
    // Complete done: nothing open, the job verifies.
    h.run_done("j1", 6, 2);
    assert_eq!(h.state("j1"), JobState::Verifying);
}

// ---------- retry and failure ----------

#[test]
fn retry_puts_the_task_back_after_a_growing_backoff() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    let mut r = h.rep("j1", 2, TaskOutcome::Retry);
    r.error = "connection reset".into();
    r.checkpoint = "c".into();
    r.has_checkpoint = true;
    h.send(r);
    let t = h.task("j1", 2);
    assert_eq!(t.state, TaskState::Pending as i32);
    assert_eq!((t.node_id, t.attempts, t.epoch), (0, 1, 1));
    assert_eq!(t.not_before_ms, h.now + 1000);
    assert_eq!(t.last_error, "connection reset");
    assert_eq!(t.checkpoint, "c", "it resumes from its checkpoint");
    assert!(h.has_event(
        "j1",
        "task 2 (copy) attempt 1 failed, retrying from its checkpoint: connection reset"
    ));
    assert_eq!(h.state("j1"), JobState::Running);
    assert!(h.job("j1").error.is_empty());
    h.now = h.task("j1", 2).not_before_ms;
    assert_eq!(h.assign("j1", 2, 3), 2);
    h.send(h.rep("j1", 2, TaskOutcome::Retry));
    let t = h.task("j1", 2);
    assert_eq!((t.attempts, t.not_before_ms), (2, h.now + 2000));
}

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

/// Retries task `id` of `job` until it is no longer pending after a retry; returns the attempts.
fn retry_until_closed(h: &mut H, job: &str, id: u64) -> u32 {
    loop {
        h.now = h.now.max(h.task(job, id).not_before_ms);
        h.assign(job, id, 2);
        let mut r = h.rep(job, id, TaskOutcome::Retry);
        r.error = "disk full".into();
        h.send(r);
        let t = h.task(job, id);
        if t.state != TaskState::Pending as i32 {
            return t.attempts;
        }
        assert!(t.attempts < 100, "never gives up");
    }
}

#[test]
fn a_task_fails_after_the_default_five_attempts() {
    let mut h = H::new();
    h.running("j1");
    assert_eq!(retry_until_closed(&mut h, "j1", 2), 5);
    let t = h.task("j1", 2);
    assert_eq!(t.state, TaskState::Failed as i32);
    assert_eq!(t.last_error, "disk full");
    let j = h.job("j1");
    assert_eq!(j.error, "task 2 (copy) failed 5 times, giving up: disk full");
    assert!(h.has_event("j1", "giving up"));
    assert_eq!(j.open_tasks, 1, "task 3 is still open");
    assert_eq!(h.state("j1"), JobState::Running);
}

#[test]
fn job_task_attempts_setting_limits_the_attempts() {
    let mut h = H::new();
    h.ok(set_setting("job.task_attempts", "2"));
    h.running("j1");
    assert_eq!(retry_until_closed(&mut h, "j1", 2), 2);
    assert_eq!(h.task_state("j1", 2), TaskState::Failed);
    h.ok(set_setting("job.task_attempts", "1"));
    assert_eq!(retry_until_closed(&mut h, "j1", 3), 1);
}

#[test]
fn a_job_with_a_failed_task_ends_failed_at_finalize() {
    let mut h = H::new();
    h.running("j1");
    retry_until_closed(&mut h, "j1", 2);
    let error = h.job("j1").error.clone();
    // The other tasks finish; the job still verifies (the report is merged) and then fails.
    h.run_done("j1", 3, 3);
    assert_eq!(h.state("j1"), JobState::Verifying);
    h.finalize("j1", totals(5, 500));
    let j = h.job("j1");
    assert_eq!(j.state, JobState::Failed as i32);
    assert_eq!(j.error, error, "the first error stays");
    assert_eq!(j.ended_at_ms, h.now);
    assert!(h.tasks("j1").is_empty());
}

#[test]
fn a_failed_outcome_closes_the_task_at_once() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    let mut r = h.rep("j1", 2, TaskOutcome::Failed);
    r.error = "access denied on the destination".into();
    h.send(r);
    let t = h.task("j1", 2);
    assert_eq!((t.state, t.attempts), (TaskState::Failed as i32, 0));
    assert_eq!(
        h.job("j1").error,
        "task 2 (copy) failed: access denied on the destination"
    );
    // A later failure does not replace the first error.
    h.assign("j1", 3, 2);
    let mut r = h.rep("j1", 3, TaskOutcome::Failed);
    r.error = "other".into();
    h.send(r);
    assert!(h.job("j1").error.contains("access denied"));
    assert_eq!(h.state("j1"), JobState::Verifying);
    h.finalize("j1", totals(0, 0));
    assert_eq!(h.state("j1"), JobState::Failed);
}

#[test]
fn a_failed_part_init_fails_its_blocked_tasks_and_the_job_still_finalizes() {
    let mut h = H::new();
    split_job(&mut h);
    h.assign("j1", 2, 1);
    let mut r = h.rep("j1", 2, TaskOutcome::Failed);
    r.error = "CreateMultipartUpload: AccessDenied".into();
    h.send(r);
    // Its parts and complete can never run: they fail too, and the job goes on to FINALIZE
    // (which aborts leftover uploads) instead of waiting forever.
    for id in 3..=6 {
        assert_eq!(h.task_state("j1", id), TaskState::Failed, "task {id}");
        assert!(!h.task("j1", id).last_error.is_empty());
    }
    assert_eq!(h.state("j1"), JobState::Verifying);
    assert_eq!(h.job("j1").open_tasks, 1);
    h.finalize("j1", totals(0, 0));
    assert_eq!(h.state("j1"), JobState::Failed);
    assert!(h.job("j1").error.contains("AccessDenied"));
}

#[test]
fn a_failed_part_copy_fails_part_complete_once_the_other_parts_end() {
    let mut h = H::new();
    split_job(&mut h);
    h.assign("j1", 2, 1);
    let mut r = h.rep("j1", 2, TaskOutcome::Done);
    r.upload_id = "u".into();
    h.send(r);
    h.assign("j1", 3, 1);
    h.assign("j1", 4, 2);
    h.send(h.rep("j1", 3, TaskOutcome::Failed));
    assert_eq!(h.task_state("j1", 6), TaskState::Failed, "the object cannot complete");
    // The other parts still run to the end.
    assert_eq!(h.task_state("j1", 4), TaskState::Assigned);
    assert_eq!(h.task_state("j1", 5), TaskState::Pending);
    h.send(h.rep("j1", 4, TaskOutcome::Done));
    h.run_done("j1", 5, 3);
    assert_eq!(
        h.task_state("j1", 6),
        TaskState::Failed,
        "not unblocked by the last part"
    );
    assert_eq!(h.state("j1"), JobState::Verifying);
    h.finalize("j1", totals(0, 0));
    assert_eq!(h.state("j1"), JobState::Failed);
}

// ---------- finalize ----------

#[test]
fn when_every_task_is_done_a_finalize_task_appears() {
    let mut h = H::new();
    h.running("j1");
    h.run_done("j1", 2, 2);
    assert_eq!(h.state("j1"), JobState::Running);
    h.run_done("j1", 3, 3);
    assert_eq!(h.state("j1"), JobState::Verifying);
    assert!(h.has_event("j1", "verifying"));
    let f = h.finalize_id("j1");
    assert_eq!(f, 4);
    assert_eq!(h.task_state("j1", f), TaskState::Pending);
    let j = h.job("j1");
    assert_eq!((j.open_tasks, j.tasks_total, j.next_task_id), (1, 4, 5));
    // The FINALIZE of a verifying job is assignable.
    h.assign("j1", f, 1);
}

#[test]
fn an_empty_source_goes_straight_to_finalize() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.run_done("j1", 1, 1);
    assert_eq!(h.state("j1"), JobState::Verifying);
    assert_eq!(h.finalize_id("j1"), 2);
    h.finalize("j1", pb::JobCounters::default());
    assert_eq!(h.state("j1"), JobState::Completed);
}

#[test]
fn a_report_short_of_the_listing_completes_with_a_warning() {
    let mut h = H::new();
    h.verifying("j1");
    let f = h.finalize_id("j1");
    h.assign("j1", f, 1);
    let mut r = h.rep("j1", f, TaskOutcome::Done);
    r.final_counters = Some(pb::JobCounters {
        objects_total: 12,
        objects_done: 12,
        ..Default::default()
    });
    h.send(r);
    let j = h.job("j1");
    assert_eq!(j.state, JobState::CompletedWithWarnings as i32);
    assert!(
        j.events.iter().any(|e| e.text.contains("accounts for 12 of the 15")),
        "{:?}",
        j.events
    );
}

#[test]
fn finalize_done_completes_and_compacts_the_job() {
    let mut h = H::new();
    h.running("other-job");
    h.verifying("j1");
    let other_tasks = h.tasks("other-job");
    let f = h.finalize_id("j1");
    h.assign("j1", f, 1);
    let mut r = h.rep("j1", f, TaskOutcome::Done);
    r.final_counters = Some(pb::JobCounters {
        objects_total: 12, // fewer than the listing's 15: the total never shrinks
        bytes_total: 2000, // more: the exact figure wins
        objects_done: 14,
        bytes_done: 1900,
        objects_skipped: 1,
        bytes_skipped: 100,
        ..Default::default()
    });
    r.report_key = "dst:.bucketmesh/reports/j1.jsonl".into();
    r.recopied = 2;
    h.send(r);
    let j = h.job("j1");
    assert_eq!(j.state, JobState::Completed as i32);
    let c = j.counters.unwrap();
    assert_eq!((c.objects_total, c.bytes_total), (15, 2000));
    assert_eq!((c.objects_done, c.bytes_done, c.objects_skipped), (14, 1900, 1));
    assert_eq!(j.report_key, "dst:.bucketmesh/reports/j1.jsonl");
    assert_eq!(j.recopied, 2);
    assert_eq!(j.ended_at_ms, h.now);
    assert_eq!(j.open_tasks, 0);
    assert!(j.error.is_empty());
    assert!(h.has_event(
        "j1",
        "completed: 14 copied, 1 skipped, 0 failed, 0 deleted; report dst:.bucketmesh/reports/j1.jsonl"
    ));
    assert!(h.tasks("j1").is_empty(), "compacted");
    assert_eq!(h.tasks("other-job"), other_tasks, "another job's tasks stay");
    assert!(jobs::is_terminal(j.state));
    // Reports for the deleted tasks are stale.
    let resp = h.no_change(reports(
        1,
        vec![pb::TaskReport {
            job_id: "j1".into(),
            task_id: f,
            epoch: 1,
            outcome: TaskOutcome::Done as i32,
            ..Default::default()
        }],
    ));
    assert_eq!(resp.stale, [tref("j1", f)]);
}

#[test]
fn finalize_without_final_counters_keeps_the_running_counters() {
    let mut h = H::new();
    h.verifying("j1");
    let before = h.counters("j1");
    let f = h.finalize_id("j1");
    h.run_done("j1", f, 1);
    assert_eq!(h.state("j1"), JobState::Completed);
    assert_eq!(h.counters("j1"), before);
    assert!(h.has_event("j1", "report not written"));
}

#[test]
fn finalize_with_failed_objects_fails_the_job_naming_the_first_keys() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    let mut r = h.rep("j1", 2, TaskOutcome::Done);
    r.failures = ["a.txt", "b.txt", "c.txt", "d.txt"]
        .iter()
        .map(|k| pb::ObjectFailure {
            key: k.to_string(),
            error: "NoSuchKey".into(),
        })
        .collect();
    h.send(r);
    h.run_done("j1", 3, 3);
    h.finalize(
        "j1",
        pb::JobCounters {
            objects_failed: 4,
            bytes_failed: 40,
            ..totals(11, 1460)
        },
    );
    let j = h.job("j1");
    assert_eq!(j.state, JobState::Failed as i32);
    assert!(
        j.error.starts_with("4 object(s) failed after retries; first: "),
        "{}",
        j.error
    );
    assert!(
        j.error.contains("a.txt: NoSuchKey; b.txt: NoSuchKey; c.txt: NoSuchKey"),
        "{}",
        j.error
    );
    assert!(!j.error.contains("d.txt"), "only the first keys: {}", j.error);
    assert_eq!(j.ended_at_ms, h.now);
    assert!(h.tasks("j1").is_empty());
}

#[test]
fn a_failed_finalize_fails_the_job() {
    let mut h = H::new();
    h.verifying("j1");
    let f = h.finalize_id("j1");
    h.assign("j1", f, 1);
    let mut r = h.rep("j1", f, TaskOutcome::Failed);
    r.error = "cannot write the report".into();
    h.send(r);
    let j = h.job("j1");
    assert_eq!(j.state, JobState::Failed as i32);
    assert!(j.error.contains("cannot write the report"), "{}", j.error);
    assert!(h.tasks("j1").is_empty());
}

// ---------- pause and resume ----------

#[test]
fn pause_releases_assigned_tasks_and_makes_their_reports_stale() {
    let mut h = H::new();
    h.running("j1");
    h.assign("j1", 2, 2);
    let mut r = h.rep("j1", 2, TaskOutcome::Progress);
    r.checkpoint = "d".into();
    r.has_checkpoint = true;
    h.send(r);
    let old = h.rep("j1", 2, TaskOutcome::Done);
    h.ok(control("j1", JobAction::Pause));
    let j = h.job("j1");
    assert_eq!(j.state, JobState::Paused as i32);
    assert_eq!(j.paused_at_ms, h.now);
    assert!(h.has_event("j1", "paused by bob"));
    let t = h.task("j1", 2);
    assert_eq!((t.state, t.node_id, t.epoch), (TaskState::Pending as i32, 0, 1));
    assert_eq!(t.checkpoint, "d");
    assert!(!jobs::assignable_job_state(h.job("j1").state));
    let resp = h.no_change(reports(2, vec![old]));
    assert_eq!(resp.stale, [tref("j1", 2)]);
    h.no_change(assign(&[("j1", 2, 2)]));
}

#[test]
fn resume_runs_again_and_accumulates_the_paused_time() {
    let mut h = H::new();
    h.running("j1");
    h.now = 10_000;
    h.ok(control("j1", JobAction::Pause)); // at 10_010
    h.now = 12_000;
    h.ok(control("j1", JobAction::Resume)); // at 12_010
    let j = h.job("j1");
    assert_eq!(j.state, JobState::Running as i32);
    assert_eq!((j.paused_ms, j.paused_at_ms), (2000, 0));
    assert!(h.has_event("j1", "resumed by bob"));
    h.now = 20_000;
    h.ok(control("j1", JobAction::Pause));
    h.now = 20_500;
    h.ok(control("j1", JobAction::Resume));
    assert_eq!(h.job("j1").paused_ms, 2500);
    // Work goes on.
    assert_eq!(h.assign("j1", 2, 1), 1);
}

#[test]
fn resume_of_a_job_that_only_listed_goes_back_to_planning() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.assign("j1", 1, 1);
    h.ok(control("j1", JobAction::Pause));
    assert_eq!(h.task_state("j1", 1), TaskState::Pending);
    h.ok(control("j1", JobAction::Resume));
    assert_eq!(h.state("j1"), JobState::Planning);
    assert_eq!(h.assign("j1", 1, 2), 2);
}

#[test]
fn resume_of_a_job_never_started_goes_back_to_queued() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.ok(control("j1", JobAction::Pause));
    h.ok(control("j1", JobAction::Resume));
    assert_eq!(h.state("j1"), JobState::Queued);
}

#[test]
fn pause_is_refused_unless_queued_planning_or_running() {
    let mut h = H::new();
    h.running("j1");
    h.ok(control("j1", JobAction::Pause));
    let e = h.refused(control("j1", JobAction::Pause), "FAILED_PRECONDITION");
    assert!(e.contains("job j1 is paused"), "{e}");
    h.verifying("j2");
    let e = h.refused(control("j2", JobAction::Pause), "FAILED_PRECONDITION");
    assert!(e.contains("verifying"), "{e}");
    h.finalize("j2", totals(15, 1500));
    let e = h.refused(control("j2", JobAction::Pause), "FAILED_PRECONDITION");
    assert!(e.contains("job j2 is completed"), "{e}");
}

#[test]
fn resume_is_refused_unless_paused() {
    let mut h = H::new();
    h.running("j1");
    let e = h.refused(control("j1", JobAction::Resume), "FAILED_PRECONDITION");
    assert!(e.contains("job j1 is running; only a paused job can be resumed"), "{e}");
    h.submit("j2", copy_spec());
    h.refused(control("j2", JobAction::Resume), "FAILED_PRECONDITION");
}

#[test]
fn control_of_an_unknown_job_is_not_found_and_without_action_invalid() {
    let mut h = H::new();
    for action in [JobAction::Pause, JobAction::Resume, JobAction::Cancel] {
        let e = h.refused(control("nope", action), "NOT_FOUND");
        assert!(e.contains("job nope not found"), "{e}");
    }
    h.submit("j1", copy_spec());
    h.refused(control("j1", JobAction::Unspecified), "INVALID_ARGUMENT");
    let mut c = pb::ControlJob {
        job_id: "j1".into(),
        action: 42,
        by: String::new(),
    };
    h.refused(Kind::ControlJob(c.clone()), "INVALID_ARGUMENT");
    // Without `by`, the event names "an operator".
    c.action = JobAction::Pause as i32;
    h.ok(Kind::ControlJob(c));
    assert!(h.has_event("j1", "paused by an operator"));
}

// ---------- cancel ----------

#[test]
fn cancel_fails_every_open_task_and_finalizes() {
    let mut h = H::new();
    split_job(&mut h); // LIST done; PART_INIT pending; parts and complete blocked
    h.assign("j1", 2, 2);
    let stale = h.rep("j1", 2, TaskOutcome::Done);
    h.ok(control("j1", JobAction::Cancel));
    assert_eq!(h.state("j1"), JobState::Cancelling);
    assert!(h.has_event("j1", "cancelled by bob"));
    assert_eq!(
        h.shape("j1"),
        [
            (1, TaskKind::List, TaskState::Done),
            (2, TaskKind::PartInit, TaskState::Failed),
            (3, TaskKind::PartCopy, TaskState::Failed),
            (4, TaskKind::PartCopy, TaskState::Failed),
            (5, TaskKind::PartCopy, TaskState::Failed),
            (6, TaskKind::PartComplete, TaskState::Failed),
            (7, TaskKind::Finalize, TaskState::Pending),
        ]
    );
    for id in 2..=6 {
        let t = h.task("j1", id);
        assert_eq!((t.last_error.as_str(), t.node_id), ("cancelled", 0));
    }
    assert!(h.task("j1", 1).last_error.is_empty(), "a done task stays done");
    assert_eq!(h.job("j1").open_tasks, 1);
    assert!(h.job("j1").error.is_empty(), "cancel is not a failure");
    // The old assignment's report is stale.
    let resp = h.no_change(reports(2, vec![stale]));
    assert_eq!(resp.stale, [tref("j1", 2)]);
    // The FINALIZE of a cancelling job is assignable; its DONE cancels and compacts.
    h.finalize("j1", pb::JobCounters::default());
    let j = h.job("j1");
    assert_eq!(j.state, JobState::Cancelled as i32);
    assert_eq!(j.ended_at_ms, h.now);
    assert_eq!(j.counters.as_ref().unwrap().objects_total, 1, "the listed total stays");
    assert!(h.has_event("j1", "cancelled: 0 copied"));
    assert!(h.tasks("j1").is_empty());
}

#[test]
fn cancel_of_a_queued_job_needs_only_finalize() {
    let mut h = H::new();
    h.submit("j1", copy_spec());
    h.ok(control("j1", JobAction::Cancel));
    assert_eq!(
        h.shape("j1"),
        [
            (1, TaskKind::List, TaskState::Failed),
            (2, TaskKind::Finalize, TaskState::Pending),
        ]
    );
    h.finalize("j1", pb::JobCounters::default());
    assert_eq!(h.state("j1"), JobState::Cancelled);
}

#[test]
fn cancel_of_a_paused_job_counts_the_paused_time() {
    let mut h = H::new();
    h.running("j1");
    h.now = 50_000;
    h.ok(control("j1", JobAction::Pause)); // at 50_010
    h.now = 53_000;
    h.ok(control("j1", JobAction::Cancel)); // at 53_010
    let j = h.job("j1");
    assert_eq!((j.paused_ms, j.paused_at_ms), (3000, 0));
    assert_eq!(j.state, JobState::Cancelling as i32);
    h.finalize("j1", pb::JobCounters::default());
    assert_eq!(h.state("j1"), JobState::Cancelled);
}

#[test]
fn cancel_of_a_verifying_job_replaces_its_finalize() {
    let mut h = H::new();
    h.verifying("j1");
    let f = h.finalize_id("j1");
    h.assign("j1", f, 1);
    h.ok(control("j1", JobAction::Cancel));
    assert_eq!(h.task_state("j1", f), TaskState::Failed);
    let f2 = h.finalize_id_open();
    assert!(f2 > f);
    assert_eq!(h.job("j1").open_tasks, 1);
}

impl H {
    /// The id of the job j1's open FINALIZE task.
    fn finalize_id_open(&self) -> u64 {
        self.tasks("j1")
            .iter()
            .find(|t| t.kind == TaskKind::Finalize as i32 && jobs::is_open(t))
            .expect("an open FINALIZE")
            .id
    }
}

#[test]
fn cancel_is_refused_for_a_finished_or_cancelling_job() {
    let mut h = H::new();
    h.verifying("j1");
    h.finalize("j1", totals(15, 1500));
    let e = h.refused(control("j1", JobAction::Cancel), "FAILED_PRECONDITION");
    assert!(e.contains("job j1 is already completed"), "{e}");
    h.submit("j2", copy_spec());
    h.ok(control("j2", JobAction::Cancel));
    let e = h.refused(control("j2", JobAction::Cancel), "FAILED_PRECONDITION");
    assert!(e.contains("already cancelling"), "{e}");
    h.refused(control("j2", JobAction::Pause), "FAILED_PRECONDITION");
    h.refused(control("j2", JobAction::Resume), "FAILED_PRECONDITION");
    h.finalize("j2", pb::JobCounters::default());
    h.refused(control("j2", JobAction::Cancel), "FAILED_PRECONDITION");
}

// ---------- release ----------

#[test]
fn release_returns_only_that_nodes_assigned_tasks() {
    let mut h = H::new();
    h.running("j1");
    h.listing("j2"); // its LIST stays assigned to node 1
    h.assign("j1", 2, 1);
    h.assign("j1", 3, 2);
    let mut r = h.rep("j1", 2, TaskOutcome::Progress);
    r.checkpoint = "e".into();
    r.has_checkpoint = true;
    h.send(r);
    h.run_done("j2", 2, 1); // done on node 1: stays done
    h.ok(release(1, "node 1 is down"));
    let t = h.task("j1", 2);
    assert_eq!((t.state, t.node_id, t.epoch), (TaskState::Pending as i32, 0, 1));
    assert_eq!((t.checkpoint.as_str(), t.has_checkpoint), ("e", true));
    assert_eq!(h.task_state("j2", 1), TaskState::Pending);
    assert_eq!(h.task_state("j2", 2), TaskState::Done);
    assert_eq!(h.task_state("j1", 3), TaskState::Assigned);
    assert_eq!(h.task("j1", 3).node_id, 2);
    assert!(h.has_event(
        "j1",
        "task 2 (copy) taken back from node 1: node 1 is down; it resumes from its checkpoint"
    ));
    assert!(h.has_event("j2", "task 1 (list) taken back from node 1"));
    assert!(!h.has_event("j1", "task 3 (copy) taken back"));
    // The job state is unchanged and the released task is assignable again.
    assert_eq!(h.state("j1"), JobState::Running);
    assert_eq!(h.assign("j1", 2, 3), 2);
}

#[test]
fn release_of_a_node_without_tasks_changes_nothing() {
    let mut h = H::new();
    h.running("j1");
    h.no_change(release(3, "idle"));
}

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

#[test]
fn a_location_used_by_an_unfinished_job_cannot_be_deleted() {
    let mut h = H::new();
    h.running("j1");
    let delete = |name: &str| Kind::DeleteLocation(pb::DeleteLocation { name: name.into() });
    for name in ["src", "dst"] {
        let e = h.refused(delete(name), "IN_USE");
        assert!(e.contains("in use by job j1"), "{e}");
    }
    h.ok(delete("other"));
    h.ok(control("j1", JobAction::Cancel));
    let e = h.refused(delete("src"), "IN_USE");
    assert!(e.contains("j1"), "a cancelling job still uses it: {e}");
    h.finalize("j1", pb::JobCounters::default());
    assert_eq!(crate::config::location_in_use(&h.t, "src"), None);
    h.ok(delete("src"));
    h.ok(delete("dst"));
}

#[test]
fn a_location_is_free_once_its_job_completes() {
    let mut h = H::new();
    h.verifying("j1");
    assert_eq!(crate::config::location_in_use(&h.t, "dst").as_deref(), Some("j1"));
    h.finalize("j1", totals(15, 1500));
    h.ok(Kind::DeleteLocation(pb::DeleteLocation { name: "dst".into() }));
}

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
        let (_log, sm) = crate::open(dir.path()).unwrap();
        assert_eq!(tables(&sm), h.t, "deleted task rows stay deleted");
        assert!(sm.reader().job_tasks("j-cancel").is_empty());
        assert_eq!(sm.reader().job("j-cancel").unwrap().state, JobState::Cancelled as i32);
    }
}
