//! Data-driven ("golden") tests of [`crate::apply::apply_command`].
//!
//! Each `src/testdata/apply/*.txt` file is a script of blocks:
//!
//! ```text
//! # comment
//! set_setting at=5 name=node_ttl value=5s
//! ---
//! ok
//! ```
//!
//! A block is one command line, `---`, and the expected output up to a blank line. Commands:
//! `init_cluster`, `upsert_node`, `set_node_state`, `set_setting`, `delete_setting`,
//! `put_location`, `delete_location`, `put_credential` (`secret=N`/`token=N` stand for N bytes of
//! ciphertext; the dump shows them as `<enc N bytes>`), `delete_credential`, `noop`, `empty` (a
//! command with no kind) and `dump` (prints the configuration tables). Arguments are `key=value`,
//! values may be double-quoted. Set `UPDATE_GOLDEN=1` to rewrite the expected output.
//!
//! Job commands (every one takes `at=MS`; sizes may be written in MiB, `33M`):
//! - `submit_job id= op=copy|move|sync|unspecified src= src_path= dst= dst_path= owner= via=NODE`
//!   `[delete=true] [tier=] [verify=] [sse=] [kms_key_id=] [include=GLOB] [exclude=GLOB]`;
//!   `none=1` sends no job, `nospec=1` a job without a spec.
//! - `assign_tasks a=JOB/TASK@NODE,JOB/TASK@NODE...`
//! - `report_tasks node=N` then the reports, separated by ` ; `, each
//!   `job= task= epoch= [outcome=progress|done|retry|failed]` (default progress) with
//!   `[checkpoint=KEY]` (an empty value is an empty checkpoint), cumulative counters
//!   `[done=OBJ/BYTES] [skipped=OBJ/BYTES] [failed=OBJ/BYTES] [deleted=OBJ] [in_flight=BYTES]`, planned tasks in order
//!   `[copy=START..END:OBJ/BYTES]` (an empty bound is none; `pcopy=` in path order) and
//!   `[split=KEY:BYTES/PART_SIZE/PARTS_PER_TASK]` (etag `src-etag`), `[error=]`, `[fail=KEY:ERROR]...`,
//!   `[upload=ID]`, `[parts=N,N:ETAG...]` (etag `eN` by default), `[event=TEXT]...`, and for
//!   FINALIZE `[final=0] [final.total=OBJ/BYTES] [final.done=..] [final.skipped=..] [final.failed=..]`
//!   `[final.deleted=OBJ]` (any of them sends final counters), `[report_key=] [recopied=N] [warnings=N]`.
//! - `control_job job= action=pause|resume|cancel|unspecified|N [by=]`
//! - `release_tasks node= reason=`
//!
//! A job command prints `ok`, then `stale=[JOB/TASK,...]` for the stale reports it names, then
//! `(no change)` when it left the tables exactly as they were (a skipped assignment, a stale
//! report); a refusal prints `error REASON: message`.
//!
//! Dumps: `jobs [id=]` prints one line per job, sorted by id: state, spec, owner, the node that
//! took the submit, created/updated (and, when set, started/ended/paused_at/paused_ms), open and
//! total tasks, next task id, nodes used, counters (`total=OBJ/BYTES done=OBJ/BYTES`, and
//! skipped/failed/deleted when not zero), warnings/recopied/report/failures/error when set, the
//! number of events and the last one. `tasks [job=]` prints one line per task, sorted by (job,
//! id): kind, state, node, epoch, attempts, the range `(START,END]` (`-` for none) and planned
//! counts of LIST/COPY, or the key, etag, group, parts, bytes and part size of split-object tasks,
//! then when set: assigned_at, not_before, checkpoint, counters, upload id, part ETags, last error.
//! `events job=` prints every event of a job: `AT node=N text`.
//!
//! Besides the expected text, the runner checks on every step that a refused command left the
//! tables unchanged; that a report command with stale reports changed the tables exactly as its
//! current reports alone do (nothing, when every report is stale); and at the end that replaying
//! the same commands on fresh tables gives byte-identical snapshot data (determinism).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mesh_proto::v1::{self as pb, command::Kind, JobAction, NodeState, TaskKind, TaskOutcome, TaskState};

use crate::apply::apply_command;
use crate::tables::{AppliedState, Tables};
use mesh_proto::names;

fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                has = true;
            }
            c if c.is_whitespace() && !quoted => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

fn parse_state(s: &str) -> i32 {
    match s {
        "unspecified" => NodeState::Unspecified as i32,
        "joining" => NodeState::Joining as i32,
        "active" => NodeState::Active as i32,
        "draining" => NodeState::Draining as i32,
        "down" => NodeState::Down as i32,
        "left" => NodeState::Left as i32,
        n => n.parse().unwrap_or_else(|_| panic!("bad state {n:?}")),
    }
}

/// One script line: a command to apply, or a dump.
enum Step {
    Apply(Box<pb::Command>),
    Dump,
    Jobs(Option<String>),
    Tasks(Option<String>),
    Events(String),
}

/// Parses a command line into a [`Step`].
fn parse_step(line: &str) -> Step {
    let toks = tokenize(line);
    let (name, args) = toks.split_first().expect("empty command");
    if let Some(step) = parse_job_step(name, args) {
        return step;
    }
    match parse_command(name, args) {
        Some(cmd) => Step::Apply(Box::new(cmd)),
        None => Step::Dump,
    }
}

/// Parses a command of the configuration tables into a Command, or None for `dump`.
fn parse_command(name: &str, args: &[String]) -> Option<pb::Command> {
    let mut kv: BTreeMap<&str, &str> = BTreeMap::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .unwrap_or_else(|| panic!("argument {a:?} is not key=value"));
        kv.insert(k, v);
    }
    let s = |k: &str| kv.get(k).map(|v| v.to_string()).unwrap_or_default();
    let n = |k: &str| {
        kv.get(k)
            .map(|v| v.parse::<u64>().unwrap_or_else(|_| panic!("{k}={v} not a number")))
            .unwrap_or(0)
    };
    let kind = match name {
        "dump" => return None,
        "empty" => None,
        "noop" => Some(Kind::Noop(pb::Noop {})),
        "init_cluster" => Some(Kind::InitCluster(pb::InitCluster {
            cluster_id: s("cluster_id"),
            root_token_sha256: s("token"),
            data_key_sha256: s("data_key"),
        })),
        "put_location" => Some(Kind::PutLocation(pb::PutLocation {
            location: if kv.contains_key("none") {
                None
            } else {
                Some(pb::Location {
                    name: s("name"),
                    kind: match kv.get("kind").copied().unwrap_or("") {
                        "s3" => pb::LocationKind::S3 as i32,
                        "fs" => pb::LocationKind::Fs as i32,
                        "" => 0,
                        n => n.parse().unwrap_or_else(|_| panic!("bad location kind {n:?}")),
                    },
                    bucket: s("bucket"),
                    prefix: s("prefix"),
                    region: s("region"),
                    endpoint: s("endpoint"),
                    path_style: kv.get("path_style") == Some(&"true"),
                    credential: s("credential"),
                    storage_class: s("storage_class"),
                    sse: s("sse"),
                    kms_key_id: s("kms_key_id"),
                    fs_path: s("path"),
                    tenant: s("tenant"),
                    created_at_ms: n("created_at"),
                    updated_at_ms: n("updated_at"),
                })
            },
            replace: kv.get("replace") == Some(&"true"),
        })),
        "delete_location" => Some(Kind::DeleteLocation(pb::DeleteLocation { name: s("name") })),
        "put_credential" => Some(Kind::PutCredential(pb::PutCredential {
            credential: if kv.contains_key("none") {
                None
            } else {
                // secret=N / token=N stand for N bytes of ciphertext.
                let enc = |k: &str| vec![0xA5u8; n(k) as usize];
                Some(pb::Credential {
                    name: s("name"),
                    kind: match kv.get("kind").copied().unwrap_or("") {
                        "default_chain" => pb::CredentialKind::DefaultChain as i32,
                        "static" => pb::CredentialKind::Static as i32,
                        "assume_role" => pb::CredentialKind::AssumeRole as i32,
                        "" => 0,
                        n => n.parse().unwrap_or_else(|_| panic!("bad credential kind {n:?}")),
                    },
                    access_key_id: s("access_key_id"),
                    secret_access_key_enc: enc("secret"),
                    session_token_enc: enc("token"),
                    role_arn: s("role_arn"),
                    external_id: s("external_id"),
                    via: s("via"),
                    key_fingerprint: s("key"),
                    created_at_ms: n("created_at"),
                    updated_at_ms: n("updated_at"),
                })
            },
            replace: kv.get("replace") == Some(&"true"),
        })),
        "delete_credential" => Some(Kind::DeleteCredential(pb::DeleteCredential { name: s("name") })),
        "upsert_node" => Some(Kind::UpsertNode(pb::UpsertNode {
            node: if kv.contains_key("none") {
                None
            } else {
                Some(pb::NodeRecord {
                    id: n("id"),
                    addr: s("addr"),
                    region: s("region"),
                    zone: s("zone"),
                    labels: kv
                        .get("labels")
                        .map(|l| {
                            l.split(',')
                                .filter(|p| !p.is_empty())
                                .map(|p| {
                                    let (k, v) = p.split_once(':').expect("label k:v");
                                    (k.to_string(), v.to_string())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    version: s("version"),
                    state: kv.get("state").map(|v| parse_state(v)).unwrap_or(0),
                    capacity_slots: n("slots") as u32,
                    joined_at_ms: n("joined_at"),
                    state_changed_at_ms: n("state_changed_at"),
                    state_reason: s("reason"),
                })
            },
        })),
        "set_node_state" => Some(Kind::SetNodeState(pb::SetNodeState {
            node_id: n("id"),
            state: kv.get("state").map(|v| parse_state(v)).unwrap_or(0),
            reason: s("reason"),
        })),
        "set_setting" => Some(Kind::SetSetting(pb::SetSetting {
            name: s("name"),
            value: s("value"),
        })),
        "delete_setting" => Some(Kind::DeleteSetting(pb::DeleteSetting { name: s("name") })),
        other => panic!("unknown command {other:?}"),
    };
    Some(pb::Command { at_ms: n("at"), kind })
}

// ---------- job commands ----------

const MIB: u64 = 1 << 20;

/// The `key=value` arguments of one command (or one report of `report_tasks`), in order; a key
/// may repeat (`copy=`, `fail=`, `event=`).
struct Args(Vec<(String, String)>);

impl Args {
    fn parse(toks: &[String]) -> Self {
        Args(
            toks.iter()
                .filter(|a| *a != ";")
                .map(|a| {
                    let (k, v) = a
                        .split_once('=')
                        .unwrap_or_else(|| panic!("argument {a:?} is not key=value"));
                    (k.to_string(), v.to_string())
                })
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    fn has(&self, k: &str) -> bool {
        self.get(k).is_some()
    }
    fn s(&self, k: &str) -> String {
        self.get(k).unwrap_or_default().to_string()
    }
    fn n(&self, k: &str) -> u64 {
        self.get(k).map(size).unwrap_or(0)
    }
    fn flag(&self, k: &str) -> bool {
        self.get(k) == Some("true")
    }
    fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(key, _)| key == k).map(|(_, v)| v.as_str())
    }
}

/// A number, or a number of MiB (`33M`).
fn size(v: &str) -> u64 {
    let (digits, mult) = match v.strip_suffix('M') {
        Some(d) => (d, MIB),
        None => (v, 1),
    };
    digits
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("{v:?} is not a number"))
        * mult
}

/// The inverse of [`size`] for dumps: whole MiB print as `NM`.
fn fmt_size(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{}M", n / MIB)
    } else {
        n.to_string()
    }
}

/// `OBJECTS/BYTES`.
fn pair(v: &str) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    let (o, b) = v.split_once('/').unwrap_or((v, "0"));
    (size(o), size(b))
}

fn enum_or_number<T: Copy>(v: &str, names: &[(&str, T)], to_i32: impl Fn(T) -> i32) -> i32 {
    names
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, e)| to_i32(*e))
        .unwrap_or_else(|| v.parse().unwrap_or_else(|_| panic!("unknown value {v:?}")))
}

fn parse_outcome(v: &str) -> i32 {
    use TaskOutcome::*;
    let names = [
        ("unspecified", Unspecified),
        ("progress", Progress),
        ("done", Done),
        ("retry", Retry),
        ("failed", Failed),
    ];
    enum_or_number(v, &names, |e| e as i32)
}

fn task_counters(a: &Args) -> Option<pb::TaskCounters> {
    if !["done", "skipped", "failed", "deleted", "in_flight"]
        .iter()
        .any(|k| a.has(k))
    {
        return None;
    }
    let (objects_done, bytes_done) = pair(&a.s("done"));
    let (objects_skipped, bytes_skipped) = pair(&a.s("skipped"));
    let (objects_failed, bytes_failed) = pair(&a.s("failed"));
    Some(pb::TaskCounters {
        objects_done,
        bytes_done,
        objects_skipped,
        bytes_skipped,
        objects_failed,
        bytes_failed,
        objects_deleted: a.n("deleted"),
        bytes_in_flight: a.n("in_flight"),
    })
}

fn final_counters(a: &Args) -> Option<pb::JobCounters> {
    let f = |k: &str| a.get(&format!("final.{k}")).map(pair).unwrap_or_default();
    if !a.has("final") && !a.0.iter().any(|(k, _)| k.starts_with("final.")) {
        return None;
    }
    let (objects_total, bytes_total) = f("total");
    let (objects_done, bytes_done) = f("done");
    let (objects_skipped, bytes_skipped) = f("skipped");
    let (objects_failed, bytes_failed) = f("failed");
    Some(pb::JobCounters {
        objects_total,
        bytes_total,
        objects_done,
        bytes_done,
        objects_skipped,
        bytes_skipped,
        objects_failed,
        bytes_failed,
        objects_deleted: f("deleted").0,
    })
}

/// `copy=START..END:OBJECTS/BYTES` (an empty bound is none) and `split=KEY:BYTES/PART_SIZE/PER_TASK`,
/// in the order given.
fn new_tasks(a: &Args) -> Vec<pb::NewTask> {
    let mut out = Vec::new();
    for (k, v) in &a.0 {
        match k.as_str() {
            "copy" | "pcopy" => {
                let (range, counts) = v.rsplit_once(':').expect("copy=START..END:OBJECTS/BYTES");
                let (start, end) = range.split_once("..").expect("copy=START..END:OBJECTS/BYTES");
                let (objects, bytes) = pair(counts);
                out.push(pb::NewTask {
                    kind: TaskKind::Copy as i32,
                    start_after: start.into(),
                    has_start_after: !start.is_empty(),
                    end: end.into(),
                    has_end: !end.is_empty(),
                    objects,
                    bytes,
                    path_order: k == "pcopy",
                    ..Default::default()
                });
            }
            "split" => {
                let (key, rest) = v.rsplit_once(':').expect("split=KEY:BYTES/PART_SIZE/PER_TASK");
                let n: Vec<u64> = rest.split('/').map(size).collect();
                assert_eq!(n.len(), 3, "split=KEY:BYTES/PART_SIZE/PER_TASK");
                out.push(pb::NewTask {
                    kind: TaskKind::PartInit as i32,
                    key: key.into(),
                    etag: "src-etag".into(),
                    bytes: n[0],
                    part_size: n[1],
                    parts_per_task: n[2] as u32,
                    ..Default::default()
                });
            }
            _ => {}
        }
    }
    out
}

fn task_report(a: &Args) -> pb::TaskReport {
    pb::TaskReport {
        job_id: a.s("job"),
        task_id: a.n("task"),
        epoch: a.n("epoch"),
        outcome: parse_outcome(a.get("outcome").unwrap_or("progress")),
        checkpoint: a.s("checkpoint"),
        has_checkpoint: a.has("checkpoint"),
        counters: task_counters(a),
        new_tasks: new_tasks(a),
        error: a.s("error"),
        failures: a
            .all("fail")
            .map(|f| {
                let (key, error) = f.split_once(':').expect("fail=KEY:ERROR");
                pb::ObjectFailure {
                    key: key.into(),
                    error: error.into(),
                }
            })
            .collect(),
        upload_id: a.s("upload"),
        parts: a
            .get("parts")
            .map(|p| {
                p.split(',')
                    .filter(|x| !x.is_empty())
                    .map(|x| {
                        let (n, etag) = match x.split_once(':') {
                            Some((n, e)) => (n.to_string(), e.to_string()),
                            None => (x.to_string(), format!("e{x}")),
                        };
                        pb::PartEtag {
                            part_number: n.parse().expect("part number"),
                            etag,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
        events: a.all("event").map(String::from).collect(),
        final_counters: final_counters(a),
        report_key: a.s("report_key"),
        recopied: a.n("recopied"),
        warnings: a.n("warnings") as u32,
    }
}

fn job_spec(a: &Args) -> pb::JobSpec {
    use pb::JobOp::*;
    let ops = [
        ("unspecified", Unspecified),
        ("copy", Copy),
        ("move", Move),
        ("sync", Sync),
    ];
    pb::JobSpec {
        op: enum_or_number(a.get("op").unwrap_or("unspecified"), &ops, |e| e as i32),
        src_location: a.s("src"),
        src_path: a.s("src_path"),
        dst_location: a.s("dst"),
        dst_path: a.s("dst_path"),
        delete: a.flag("delete"),
        tier: a.s("tier"),
        rules: a
            .0
            .iter()
            .filter(|(k, _)| k == "include" || k == "exclude")
            .map(|(k, v)| pb::FilterRule {
                include: k == "include",
                glob: v.clone(),
            })
            .collect(),
        verify: a.s("verify"),
        storage_class: a.s("storage_class"),
        sse: a.s("sse"),
        kms_key_id: a.s("kms_key_id"),
        bwlimit_bytes_per_sec: a.n("bwlimit"),
        dry_run: a.flag("dry_run"),
    }
}

/// Parses the job commands and dumps; None for any other command.
fn parse_job_step(name: &str, toks: &[String]) -> Option<Step> {
    let a = Args::parse(toks);
    let kind = match name {
        "jobs" => return Some(Step::Jobs(a.get("id").map(String::from))),
        "tasks" => return Some(Step::Tasks(a.get("job").map(String::from))),
        "events" => return Some(Step::Events(a.s("job"))),
        "submit_job" => Kind::SubmitJob(pb::SubmitJob {
            job: (!a.has("none")).then(|| pb::Job {
                id: a.s("id"),
                spec: (!a.has("nospec")).then(|| job_spec(&a)),
                owner: a.s("owner"),
                submitted_via: a.n("via"),
                ..Default::default()
            }),
        }),
        // a=JOB/TASK@NODE,...
        "assign_tasks" => Kind::AssignTasks(pb::AssignTasks {
            assignments: a
                .s("a")
                .split(',')
                .filter(|x| !x.is_empty())
                .map(|x| {
                    let (jt, node) = x.split_once('@').expect("a=JOB/TASK@NODE");
                    let (job, task) = jt.rsplit_once('/').expect("a=JOB/TASK@NODE");
                    pb::Assignment {
                        job_id: job.into(),
                        task_id: size(task),
                        node_id: size(node),
                    }
                })
                .collect(),
        }),
        "report_tasks" => {
            let groups: Vec<&[String]> = toks.split(|t| t == ";").collect();
            let mut reports = Vec::new();
            for (i, g) in groups.iter().enumerate() {
                let ga = Args::parse(g);
                if i > 0 || ga.0.iter().any(|(k, _)| k != "at" && k != "node") {
                    reports.push(task_report(&ga));
                }
            }
            Kind::ReportTasks(pb::ReportTasks {
                node_id: Args::parse(groups[0]).n("node"),
                reports,
            })
        }
        "control_job" => {
            use JobAction::*;
            let actions = [
                ("unspecified", Unspecified),
                ("pause", Pause),
                ("resume", Resume),
                ("cancel", Cancel),
            ];
            Kind::ControlJob(pb::ControlJob {
                job_id: a.s("job"),
                action: enum_or_number(a.get("action").unwrap_or("unspecified"), &actions, |e| e as i32),
                by: a.s("by"),
            })
        }
        "release_tasks" => Kind::ReleaseTasks(pb::ReleaseTasks {
            node_id: a.n("node"),
            reason: a.s("reason"),
        }),
        _ => return None,
    };
    let at = Args::parse(toks.split(|t| t == ";").next().unwrap_or_default()).n("at");
    Some(Step::Apply(Box::new(pb::Command {
        at_ms: at,
        kind: Some(kind),
    })))
}

fn is_job_command(cmd: &pb::Command) -> bool {
    matches!(
        cmd.kind,
        Some(
            Kind::SubmitJob(_)
                | Kind::AssignTasks(_)
                | Kind::ReportTasks(_)
                | Kind::ControlJob(_)
                | Kind::ReleaseTasks(_)
        )
    )
}

fn counters_text(c: &pb::JobCounters) -> String {
    let mut out = format!(
        "total={}/{} done={}/{}",
        c.objects_total,
        fmt_size(c.bytes_total),
        c.objects_done,
        fmt_size(c.bytes_done)
    );
    for (name, o, b) in [
        ("skipped", c.objects_skipped, c.bytes_skipped),
        ("failed", c.objects_failed, c.bytes_failed),
    ] {
        if o > 0 || b > 0 {
            write!(out, " {name}={o}/{}", fmt_size(b)).unwrap();
        }
    }
    if c.objects_deleted > 0 {
        write!(out, " deleted={}", c.objects_deleted).unwrap();
    }
    out
}

fn spec_text(s: &pb::JobSpec) -> String {
    let mut out = format!(
        "{} {}:{} -> {}:{}",
        names::job_op(s.op),
        s.src_location,
        s.src_path,
        s.dst_location,
        s.dst_path
    );
    if s.delete {
        out.push_str(" --delete");
    }
    for (name, v) in [
        ("tier", &s.tier),
        ("verify", &s.verify),
        ("sse", &s.sse),
        ("kms", &s.kms_key_id),
        ("storage_class", &s.storage_class),
    ] {
        if !v.is_empty() {
            write!(out, " {name}={v}").unwrap();
        }
    }
    for r in &s.rules {
        write!(out, " {}={}", if r.include { "include" } else { "exclude" }, r.glob).unwrap();
    }
    out
}

/// One line per job (sorted by id): state, spec, times, task counts, nodes, counters, and what
/// is set of error, warnings, report, failures; the number of events and the last one.
fn dump_jobs(t: &Tables, id: Option<&str>) -> String {
    let mut out = String::new();
    for j in t.jobs.values().filter(|j| id.is_none_or(|id| id == j.id)) {
        let spec = j.spec.as_ref().map(spec_text).unwrap_or_else(|| "-".into());
        write!(
            out,
            "job {} {} spec={spec:?} owner={} via={} created={} updated={}",
            j.id,
            names::job_state(j.state),
            j.owner,
            j.submitted_via,
            j.created_at_ms,
            j.updated_at_ms
        )
        .unwrap();
        for (name, v) in [
            ("started", j.started_at_ms),
            ("ended", j.ended_at_ms),
            ("paused_at", j.paused_at_ms),
            ("paused_ms", j.paused_ms),
        ] {
            if v > 0 {
                write!(out, " {name}={v}").unwrap();
            }
        }
        let nodes: Vec<String> = j.nodes_used.iter().map(u64::to_string).collect();
        write!(
            out,
            " open={} total_tasks={} next={} nodes=[{}] {}",
            j.open_tasks,
            j.tasks_total,
            j.next_task_id,
            nodes.join(","),
            counters_text(&j.counters.unwrap_or_default())
        )
        .unwrap();
        if j.warnings > 0 {
            write!(out, " warnings={}", j.warnings).unwrap();
        }
        if j.recopied > 0 {
            write!(out, " recopied={}", j.recopied).unwrap();
        }
        if !j.report_key.is_empty() {
            write!(out, " report={}", j.report_key).unwrap();
        }
        if !j.failures.is_empty() {
            let f: Vec<String> = j.failures.iter().map(|f| format!("{}:{}", f.key, f.error)).collect();
            write!(out, " failures=[{}]", f.join(",")).unwrap();
        }
        if !j.error.is_empty() {
            write!(out, " error={:?}", j.error).unwrap();
        }
        let last = j.events.last().map(|e| e.text.as_str()).unwrap_or("");
        writeln!(out, " events={} last={last:?}", j.events.len()).unwrap();
    }
    if out.is_empty() {
        return "(no jobs)".into();
    }
    out.trim_end().to_string()
}

fn bound(has: bool, v: &str) -> String {
    match (has, v.is_empty()) {
        (false, _) => "-".into(),
        (true, true) => "\"\"".into(),
        (true, false) => v.into(),
    }
}

/// One line per task (sorted by job id, task id): kind, state, node, epoch, attempts, then what
/// the kind has (range or object and parts) and what is set of the progress fields.
fn dump_tasks(t: &Tables, job: Option<&str>) -> String {
    let mut out = String::new();
    for x in t.tasks.values().filter(|x| job.is_none_or(|j| j == x.job_id)) {
        let state = match TaskState::try_from(x.state) {
            Ok(TaskState::Pending) => "pending",
            Ok(TaskState::Assigned) => "assigned",
            Ok(TaskState::Done) => "done",
            Ok(TaskState::Failed) => "failed",
            Ok(TaskState::Blocked) => "blocked",
            _ => "unknown",
        };
        write!(
            out,
            "task {}/{} {} {state} node={} epoch={} attempts={}",
            x.job_id,
            x.id,
            names::task_kind(x.kind),
            x.node_id,
            x.epoch,
            x.attempts
        )
        .unwrap();
        let kind = TaskKind::try_from(x.kind).unwrap_or(TaskKind::Unspecified);
        match kind {
            TaskKind::List | TaskKind::Copy => {
                write!(
                    out,
                    " range=({},{}]",
                    bound(x.has_start_after, &x.start_after),
                    bound(x.has_end, &x.end)
                )
                .unwrap();
                if x.objects > 0 || x.bytes > 0 {
                    write!(out, " planned={}/{}", x.objects, fmt_size(x.bytes)).unwrap();
                }
                if x.path_order {
                    out.push_str(" path_order");
                }
            }
            TaskKind::PartInit | TaskKind::PartCopy | TaskKind::PartComplete => {
                write!(out, " key={} etag={}", x.key, x.etag).unwrap();
                if x.group > 0 {
                    write!(out, " group={}", x.group).unwrap();
                }
                write!(
                    out,
                    " parts={}-{} bytes={} part_size={}",
                    x.first_part,
                    x.last_part,
                    fmt_size(x.bytes),
                    fmt_size(x.part_size)
                )
                .unwrap();
                if x.parts_per_task > 0 {
                    write!(out, " per_task={}", x.parts_per_task).unwrap();
                }
                if x.objects > 0 {
                    write!(out, " objects={}", x.objects).unwrap();
                }
            }
            _ => {}
        }
        if x.assigned_at_ms > 0 {
            write!(out, " assigned_at={}", x.assigned_at_ms).unwrap();
        }
        if x.not_before_ms > 0 {
            write!(out, " not_before={}", x.not_before_ms).unwrap();
        }
        if x.has_checkpoint {
            write!(out, " checkpoint={:?}", x.checkpoint).unwrap();
        }
        if let Some(c) = &x.counters {
            if *c != pb::TaskCounters::default() {
                let jc = pb::JobCounters {
                    objects_done: c.objects_done,
                    bytes_done: c.bytes_done,
                    objects_skipped: c.objects_skipped,
                    bytes_skipped: c.bytes_skipped,
                    objects_failed: c.objects_failed,
                    bytes_failed: c.bytes_failed,
                    objects_deleted: c.objects_deleted,
                    ..Default::default()
                };
                let text = counters_text(&jc);
                write!(out, " {}", text.trim_start_matches("total=0/0 ")).unwrap();
                if c.bytes_in_flight > 0 {
                    write!(out, " in_flight={}", fmt_size(c.bytes_in_flight)).unwrap();
                }
            }
        }
        if !x.upload_id.is_empty() {
            write!(out, " upload={}", x.upload_id).unwrap();
        }
        if !x.parts.is_empty() {
            let p: Vec<String> = x
                .parts
                .iter()
                .map(|p| format!("{}:{}", p.part_number, p.etag))
                .collect();
            write!(out, " etags=[{}]", p.join(",")).unwrap();
        }
        if !x.last_error.is_empty() {
            write!(out, " error={:?}", x.last_error).unwrap();
        }
        out.push('\n');
    }
    if out.is_empty() {
        return "(no tasks)".into();
    }
    out.trim_end().to_string()
}

/// Every event of a job: `at node text`.
fn dump_events(t: &Tables, job: &str) -> String {
    let Some(j) = t.jobs.get(job) else {
        return format!("(no job {job})");
    };
    let lines: Vec<String> = j
        .events
        .iter()
        .map(|e| format!("{} node={} {}", e.at_ms, e.node_id, e.text))
        .collect();
    lines.join("\n")
}

/// The response of an applied command as the script shows it.
fn response_text(
    before: &Tables,
    tables: &Tables,
    cmd: &pb::Command,
    resp: &pb::CommandResponse,
    line: &str,
) -> String {
    if !resp.error.is_empty() {
        assert_eq!(before, tables, "{line}: refused command changed the tables");
        assert!(!resp.reason.is_empty(), "{line}: error without reason");
        return format!("error {}: {}", resp.reason, resp.error);
    }
    assert!(resp.reason.is_empty(), "{line}: reason without error");
    let mut out = "ok".to_string();
    if !resp.stale.is_empty() {
        let Some(Kind::ReportTasks(r)) = &cmd.kind else {
            panic!("{line}: stale tasks in the response of a command that is not a report");
        };
        // A stale report changes nothing: the command does what its current reports alone do.
        let stale: Vec<(String, u64)> = resp.stale.iter().map(|s| (s.job_id.clone(), s.task_id)).collect();
        let current = pb::ReportTasks {
            node_id: r.node_id,
            reports: r
                .reports
                .iter()
                .filter(|x| !stale.contains(&(x.job_id.clone(), x.task_id)))
                .cloned()
                .collect(),
        };
        let mut expected = before.clone();
        let again = apply_command(
            &mut expected,
            &pb::Command {
                at_ms: cmd.at_ms,
                kind: Some(Kind::ReportTasks(current.clone())),
            },
        );
        assert!(again.stale.is_empty(), "{line}: a current report became stale");
        assert_eq!(&expected, tables, "{line}: a stale report changed the tables");
        if current.reports.is_empty() {
            assert_eq!(before, tables, "{line}: stale reports changed the tables");
        }
        let s: Vec<String> = resp
            .stale
            .iter()
            .map(|s| format!("{}/{}", s.job_id, s.task_id))
            .collect();
        write!(out, " stale=[{}]", s.join(",")).unwrap();
    }
    if is_job_command(cmd) && before == tables {
        out.push_str(" (no change)");
    }
    out
}

fn dump(t: &Tables) -> String {
    let mut out = String::new();
    match &t.cluster {
        Some(c) if c.data_key_sha256.is_empty() => writeln!(
            out,
            "cluster id={} token={} created_at={}",
            c.cluster_id, c.root_token_sha256, c.created_at_ms
        ),
        Some(c) => writeln!(
            out,
            "cluster id={} token={} created_at={} data_key={}",
            c.cluster_id, c.root_token_sha256, c.created_at_ms, c.data_key_sha256
        ),
        None => writeln!(out, "cluster (none)"),
    }
    .unwrap();
    for n in t.nodes.values() {
        let labels: BTreeMap<_, _> = n.labels.iter().collect();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        writeln!(
            out,
            "node {} addr={} region={} zone={} version={} state={} slots={} joined_at={} state_changed_at={} reason={:?} labels=[{}]",
            n.id,
            n.addr,
            n.region,
            n.zone,
            n.version,
            names::node_state(n.state),
            n.capacity_slots,
            n.joined_at_ms,
            n.state_changed_at_ms,
            n.state_reason,
            labels.join(",")
        )
        .unwrap();
    }
    for s in t.settings.values() {
        writeln!(out, "setting {}={} updated_at={}", s.name, s.value, s.updated_at_ms).unwrap();
    }
    let enc = |b: &[u8]| {
        if b.is_empty() {
            "-".to_string()
        } else {
            format!("<enc {} bytes>", b.len())
        }
    };
    let or_dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    for c in t.credentials.values() {
        writeln!(
            out,
            "credential {} kind={} access_key_id={} secret={} token={} role_arn={} external_id={} via={} key={} created_at={} updated_at={}",
            c.name,
            names::credential_kind(c.kind),
            or_dash(&c.access_key_id),
            enc(&c.secret_access_key_enc),
            enc(&c.session_token_enc),
            or_dash(&c.role_arn),
            or_dash(&c.external_id),
            or_dash(&c.via),
            or_dash(&c.key_fingerprint),
            c.created_at_ms,
            c.updated_at_ms
        )
        .unwrap();
    }
    for l in t.locations.values() {
        match l.kind() {
            pb::LocationKind::Fs => writeln!(
                out,
                "location {} kind=fs path={} tenant={} created_at={} updated_at={}",
                l.name,
                l.fs_path,
                or_dash(&l.tenant),
                l.created_at_ms,
                l.updated_at_ms
            ),
            _ => writeln!(
                out,
                "location {} kind={} bucket={} prefix={:?} region={} endpoint={} path_style={} credential={} storage_class={} sse={} kms_key_id={} tenant={} created_at={} updated_at={}",
                l.name,
                names::location_kind(l.kind),
                l.bucket,
                l.prefix,
                or_dash(&l.region),
                or_dash(&l.endpoint),
                l.path_style,
                or_dash(&l.credential),
                or_dash(&l.storage_class),
                or_dash(&l.sse),
                or_dash(&l.kms_key_id),
                or_dash(&l.tenant),
                l.created_at_ms,
                l.updated_at_ms
            ),
        }
        .unwrap();
    }
    out.trim_end().to_string()
}

struct Block {
    command: String,
    expected: String,
}

fn parse_script(text: &str) -> (Vec<String>, Vec<Block>) {
    // Returns the leading comment lines of each block (kept for rewriting) and the blocks.
    let mut comments = Vec::new();
    let mut blocks = Vec::new();
    let mut lines = text.lines().peekable();
    let mut pending_comments = String::new();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            pending_comments.push_str(line);
            pending_comments.push('\n');
            continue;
        }
        let command = line.to_string();
        assert_eq!(
            lines.next().map(str::trim),
            Some("---"),
            "expected --- after {command:?}"
        );
        let mut expected = Vec::new();
        while let Some(l) = lines.peek() {
            if l.trim().is_empty() {
                break;
            }
            expected.push(lines.next().unwrap().to_string());
        }
        comments.push(std::mem::take(&mut pending_comments));
        blocks.push(Block {
            command,
            expected: expected.join("\n"),
        });
    }
    (comments, blocks)
}

fn run_file(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let (comments, blocks) = parse_script(&text);
    let mut tables = Tables::default();
    let mut commands = Vec::new();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let actual = match parse_step(&b.command) {
            Step::Dump => dump(&tables),
            Step::Jobs(id) => dump_jobs(&tables, id.as_deref()),
            Step::Tasks(job) => dump_tasks(&tables, job.as_deref()),
            Step::Events(job) => dump_events(&tables, &job),
            Step::Apply(cmd) => {
                let before = tables.clone();
                let resp = apply_command(&mut tables, &cmd);
                let text = response_text(&before, &tables, &cmd, &resp, &b.command);
                commands.push(*cmd);
                text
            }
        };
        if actual != b.expected {
            failures.push(format!(
                "{}:\n  {}\n---\nexpected:\n{}\nactual:\n{}",
                path.display(),
                b.command,
                b.expected,
                actual
            ));
        }
        if i > 0 {
            rewritten.push('\n');
        }
        write!(rewritten, "{}{}\n---\n{}\n", comments[i], b.command, actual).unwrap();
    }

    // Determinism: replaying the same commands on fresh tables gives identical snapshot bytes.
    let replay = |cmds: &[pb::Command]| {
        let mut t = Tables::default();
        for c in cmds {
            apply_command(&mut t, c);
        }
        AppliedState {
            tables: t,
            ..Default::default()
        }
        .encode_snapshot()
    };
    let final_bytes = AppliedState {
        tables: tables.clone(),
        ..Default::default()
    }
    .encode_snapshot();
    assert_eq!(
        replay(&commands),
        final_bytes,
        "{}: replay is not deterministic",
        path.display()
    );
    assert_eq!(replay(&commands), replay(&commands));

    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, rewritten).unwrap();
    } else if !failures.is_empty() {
        panic!("{} golden mismatch(es):\n{}", failures.len(), failures.join("\n\n"));
    }
}

/// The folder of the state-machine scripts.
fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata/apply")
}

fn scripts() -> Vec<PathBuf> {
    let dir = scripts_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

/// One test per script, so a failure names its script and the others still run.
macro_rules! golden_scripts {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run_file(&scripts_dir().join($file));
            }
        )*

        /// Every script in the folder has its test above: a new file cannot be left unrun.
        #[test]
        fn every_script_has_a_test() {
            let listed: Vec<&str> = vec![$($file),*];
            let found: Vec<String> = scripts()
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            assert_eq!(found, listed, "add the new script to golden_scripts! in golden_tests.rs");
        }
    };
}

golden_scripts! {
    golden_01_cluster => "01_cluster.txt",
    golden_02_nodes => "02_nodes.txt",
    golden_03_node_state => "03_node_state.txt",
    golden_04_settings => "04_settings.txt",
    golden_05_credentials => "05_credentials.txt",
    golden_06_locations => "06_locations.txt",
    golden_07_jobs_submit => "07_jobs_submit.txt",
    golden_08_jobs_plan => "08_jobs_plan.txt",
    golden_09_jobs_assign_report => "09_jobs_assign_report.txt",
    golden_10_jobs_release => "10_jobs_release.txt",
    golden_11_jobs_control => "11_jobs_control.txt",
    golden_12_jobs_finalize => "12_jobs_finalize.txt",
}

#[test]
fn every_command_kind_is_covered() {
    let mut seen = std::collections::BTreeSet::new();
    for f in scripts() {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            if let Some(w) = line.split_whitespace().next() {
                seen.insert(w.to_string());
            }
        }
    }
    for c in [
        "init_cluster",
        "upsert_node",
        "set_node_state",
        "set_setting",
        "delete_setting",
        "noop",
        "empty",
        "dump",
        "put_location",
        "delete_location",
        "put_credential",
        "delete_credential",
        "submit_job",
        "assign_tasks",
        "report_tasks",
        "control_job",
        "release_tasks",
        "jobs",
        "tasks",
        "events",
    ] {
        assert!(seen.contains(c), "no golden script uses {c}");
    }
}

#[test]
fn tokenizer_keeps_quoted_spaces() {
    assert_eq!(tokenize(r#"a x="b c" d="" "#), vec!["a", "x=b c", "d="]);
}
