//! apply-bench: the state machine's apply time per entry against the number of task rows it
//! holds (issue 9: "flat from 10 to 100,000 task rows"). Not run in CI.
//!
//! ```text
//! apply-bench [--rows 10,1000,10000,100000] [--entries 2000] [--batch 1,100]
//! ```
//! For each row count: a fresh sled store under a temp dir (the real `mesh_raft::open`), one job
//! whose LIST task planned that many COPY tasks, 64 of them assigned; then `--entries` progress
//! reports (one `ReportTasks` entry each, round robin over the assigned tasks) applied in calls
//! of `--batch` entries, as openraft hands them over. Prints the time per entry (median over
//! the calls, and the mean). A batch of 1 is dominated by the
//! flush; a batch of 100 shows the in-memory part.

use std::time::{Duration, Instant};

use mesh_proto::v1::{self as pb, command::Kind, JobOp, NodeState, TaskKind, TaskOutcome};
use mesh_raft::openraft::storage::RaftStateMachine;
use mesh_raft::openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use mesh_raft::{StateMachineStore, TypeConfig};

struct Opts {
    rows: Vec<u64>,
    entries: u64,
    batches: Vec<u64>,
}

fn usage() -> ! {
    eprintln!("usage: apply-bench [--rows 10,1000,10000,100000] [--entries N] [--batch 1,100]");
    std::process::exit(2)
}

fn list(v: &str) -> Vec<u64> {
    v.split(',')
        .map(|s| s.trim().parse().unwrap_or_else(|_| usage()))
        .collect()
}

fn parse() -> Opts {
    let mut o = Opts {
        rows: vec![10, 1_000, 10_000, 100_000],
        entries: 2_000,
        batches: vec![1, 100],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--rows" => o.rows = list(&val()),
            "--entries" => o.entries = val().parse().unwrap_or_else(|_| usage()),
            "--batch" => o.batches = list(&val()),
            _ => usage(),
        }
    }
    o
}

/// Hands commands to the store as log entries with consecutive indexes.
struct Feeder {
    sm: StateMachineStore,
    index: u64,
    at: u64,
}

impl Feeder {
    fn entry(&mut self, kind: Kind) -> Entry<TypeConfig> {
        self.index += 1;
        self.at += 1;
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(pb::Command {
                at_ms: self.at,
                kind: Some(kind),
            }),
        }
    }

    async fn apply(&mut self, kinds: Vec<Kind>) {
        let entries: Vec<_> = kinds.into_iter().map(|k| self.entry(k)).collect();
        for r in self.sm.apply(entries).await.expect("apply") {
            assert!(r.error.is_empty() && r.stale.is_empty(), "refused: {r:?}");
        }
    }

    fn epoch(&self, task: u64) -> u64 {
        self.sm.reader().task("j", task).expect("task").epoch
    }
}

fn fs_location(name: &str) -> Kind {
    Kind::PutLocation(pb::PutLocation {
        location: Some(pb::Location {
            name: name.into(),
            kind: pb::LocationKind::Fs as i32,
            fs_path: format!("/data/{name}"),
            ..Default::default()
        }),
        replace: false,
    })
}

fn assign(tasks: &[u64]) -> Kind {
    Kind::AssignTasks(pb::AssignTasks {
        assignments: tasks
            .iter()
            .map(|t| pb::Assignment {
                job_id: "j".into(),
                task_id: *t,
                node_id: 1,
            })
            .collect(),
    })
}

fn report(rep: pb::TaskReport) -> Kind {
    Kind::ReportTasks(pb::ReportTasks {
        node_id: 1,
        reports: vec![rep],
    })
}

/// A store holding one job with `rows` COPY tasks (task ids 2..=rows+1), 64 of them assigned.
async fn seeded(dir: &std::path::Path, rows: u64) -> Feeder {
    let (_log, sm) = mesh_raft::open(dir).expect("open store");
    let mut f = Feeder {
        sm,
        index: 0,
        at: 1_000,
    };
    let node = Kind::UpsertNode(pb::UpsertNode {
        node: Some(pb::NodeRecord {
            id: 1,
            addr: "n1:7400".into(),
            state: NodeState::Active as i32,
            ..Default::default()
        }),
    });
    let submit = Kind::SubmitJob(pb::SubmitJob {
        job: Some(pb::Job {
            id: "j".into(),
            spec: Some(pb::JobSpec {
                op: JobOp::Copy as i32,
                src_location: "src".into(),
                dst_location: "dst".into(),
                ..Default::default()
            }),
            owner: "bench".into(),
            submitted_via: 1,
            ..Default::default()
        }),
    });
    f.apply(vec![fs_location("src"), fs_location("dst"), node, submit])
        .await;
    f.apply(vec![assign(&[1])]).await;
    let key = |i: u64| format!("k{i:09}");
    let mut planned = 0;
    while planned < rows {
        let n = (rows - planned).min(1_000);
        let new_tasks: Vec<pb::NewTask> = (planned..planned + n)
            .map(|i| pb::NewTask {
                kind: TaskKind::Copy as i32,
                // The first range starts at the beginning; each next one where its predecessor ends.
                start_after: if i == 0 { String::new() } else { key(i) },
                has_start_after: i > 0,
                end: key(i + 1),
                has_end: true,
                objects: 1,
                bytes: 1 << 20,
                ..Default::default()
            })
            .collect();
        planned += n;
        let rep = pb::TaskReport {
            job_id: "j".into(),
            task_id: 1,
            epoch: f.epoch(1),
            outcome: TaskOutcome::Progress as i32,
            checkpoint: key(planned),
            has_checkpoint: true,
            new_tasks,
            ..Default::default()
        };
        f.apply(vec![report(rep)]).await;
    }
    let assigned: Vec<u64> = (2..2 + rows.min(64)).collect();
    f.apply(vec![assign(&assigned)]).await;
    f
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = parse();
    println!("rows      batch  entries  per-entry(median)  per-entry(mean)");
    for &rows in &o.rows {
        for &batch in &o.batches {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut f = seeded(dir.path(), rows).await;
            let assigned: Vec<u64> = (2..2 + rows.min(64)).collect();
            let epochs: Vec<u64> = assigned.iter().map(|t| f.epoch(*t)).collect();
            let mut times = Vec::new();
            let started = Instant::now();
            let mut sent = 0u64;
            while sent < o.entries {
                let n = batch.min(o.entries - sent);
                let kinds: Vec<Kind> = (sent..sent + n)
                    .map(|i| {
                        let slot = (i % assigned.len() as u64) as usize;
                        report(pb::TaskReport {
                            job_id: "j".into(),
                            task_id: assigned[slot],
                            epoch: epochs[slot],
                            outcome: TaskOutcome::Progress as i32,
                            counters: Some(pb::TaskCounters {
                                bytes_in_flight: i,
                                ..Default::default()
                            }),
                            ..Default::default()
                        })
                    })
                    .collect();
                let t = Instant::now();
                f.apply(kinds).await;
                times.push(t.elapsed() / n as u32);
                sent += n;
            }
            let mean = started.elapsed().as_secs_f64() * 1e6 / o.entries as f64;
            let median = median(times).as_secs_f64() * 1e6;
            println!(
                "{rows:<9} {batch:<6} {:<8} {median:>12.1} µs    {mean:>12.1} µs",
                o.entries
            );
            println!(
                "RESULT apply rows={rows} batch={batch} entries={} median_us={median:.1} mean_us={mean:.1}",
                o.entries
            );
        }
    }
}
