//! Distributed copy jobs end to end: real `meshd` nodes, the real `meshctl`, real SeaweedFS.
//!
//! - a 2,000-object copy over three nodes, with one 40 MiB object split into part tasks that run
//!   on several nodes; every destination object checked against its source (size and MD5 ETag
//!   of every object, the bytes of a sample and of every multipart object);
//! - kill -9 of a busy node, of the leader, and of the whole cluster in the middle of a job: the
//!   job completes from its checkpoints, nothing is missing, the report is whole, and the
//!   re-copied share is printed ("recopied N of 2000 (X%)");
//! - pause (no progress, nothing written) and resume; cancel while a split object is being
//!   copied (no multipart upload left behind);
//! - move with a node killed mid-way: a source object is never lost (it is in the source, or in
//!   the destination with its bytes) and the source ends empty; and the report keeps the objects
//!   a node moved just before it was killed;
//! - sync --delete with an --exclude: only the extraneous, non-excluded objects are deleted;
//! - ten concurrent jobs from three clients on four nodes, express jobs kept within their tier;
//! - bad input refused (meshctl exit 2, gRPC INVALID_ARGUMENT) and no job created.
//!
//! The S3 tests print `SKIP: …` and pass when SeaweedFS cannot be started, unless
//! `MESH_REQUIRE_S3=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use mesh_proto::v1 as pb;
use mesh_tests::jobs::{self, content, Job, S3};
use mesh_tests::seaweed::SeaweedFs;
use mesh_tests::wait::holds_for;
use mesh_tests::TestCluster;

const MIB: usize = 1024 * 1024;
/// Deadline of a whole job (generous: debug binaries on two cores).
const JOB_TIMEOUT: Duration = Duration::from_secs(180);

/// A cluster of `n` nodes with S3 locations `src` and `dst` on fresh buckets of the shared
/// SeaweedFS, and `settings` applied.
struct Env {
    c: TestCluster,
    s3: S3,
    src: String,
    dst: String,
}

fn env(n: usize, settings: &[(&str, &str)]) -> Option<Env> {
    let t = Instant::now();
    let sw = SeaweedFs::shared_or_skip()?;
    eprintln!("[jobs_e2e] SeaweedFS up in {:?}", t.elapsed());
    let s3 = S3::new(&sw.endpoint());
    let (src, dst) = (s3.bucket("jobs-src"), s3.bucket("jobs-dst"));
    let c = TestCluster::start_new(n);
    jobs::add_s3_locations(
        &c,
        0,
        s3.endpoint(),
        &[("src", &src, "us-east-1"), ("dst", &dst, "us-east-1")],
    );
    jobs::set_settings(&c, 0, settings);
    eprintln!("[jobs_e2e] cluster and SeaweedFS ready in {:?}", t.elapsed());
    Some(Env { c, s3, src, dst })
}

/// `n` small objects of mixed sizes (0 to ~6 KiB) in a few folders under `prefix`.
fn small_objects(prefix: &str, n: usize, version: u8) -> BTreeMap<String, Vec<u8>> {
    (0..n)
        .map(|i| {
            let key = format!("{prefix}d{}/f{i:05}.bin", i % 7);
            let size = (i * 7919) % 6000;
            let body = content(&key, size, version);
            (key, body)
        })
        .collect()
}

/// Settings that make a job of 2,000 small objects last several seconds (40 tasks, two per node
/// at a time, a few objects at once) and make failover quick.
const SLOW: &[(&str, &str)] = &[
    ("node_ttl", "3s"),
    ("leader_grace", "3s"),
    ("job.copy_task_objects", "50"),
    ("worker.slots", "2"),
    ("job.object_concurrency", "4"),
];

fn all_nodes(c: &TestCluster) -> Vec<usize> {
    (0..c.len()).collect()
}

/// Checks the report of a finished job: one line per expected key, with its outcome and size.
/// Returns how many objects it says were written more than once.
fn check_report(e: &Env, via: usize, id: &str, expected: &BTreeMap<String, Vec<u8>>, outcome: &str) -> u64 {
    let lines = jobs::report(&e.c, via, id);
    let keys: BTreeSet<&str> = lines.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(lines.len(), keys.len(), "job {id}: a key appears twice in the report");
    let want: BTreeSet<&str> = expected.keys().map(String::as_str).collect();
    let missing: Vec<&&str> = want.difference(&keys).take(5).collect();
    let extra: Vec<&&str> = keys.difference(&want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "job {id}: report has {} lines for {} objects; missing {missing:?}, unexpected {extra:?}",
        lines.len(),
        expected.len()
    );
    for l in &lines {
        assert_eq!(l.outcome, outcome, "job {id}: report line {l:?}");
        assert_eq!(l.bytes, expected[&l.key].len() as u64, "job {id}: bytes of {l:?}");
        assert!(l.error.is_empty(), "job {id}: {l:?}");
    }
    lines.iter().filter(|l| l.writes > 1).count() as u64
}

/// Asserts a finished copy job of `expected` completed with exact counters and a whole report;
/// returns the number of objects re-copied (job show and report agree on it).
fn check_completed_copy(e: &Env, via: usize, j: &Job, expected: &BTreeMap<String, Vec<u8>>, outcome: &str) -> u64 {
    let n = expected.len() as u64;
    let bytes: u64 = expected.values().map(|d| d.len() as u64).sum();
    assert_eq!(j.state, "completed", "{}", j.summary());
    // The report first: it names the objects a wrong count is about.
    let recopied = check_report(e, via, &j.id, expected, outcome);
    let c = &j.counters;
    assert_eq!(
        (c.objects_done, c.objects_total, c.objects_failed, c.objects_skipped),
        (n, n, 0, 0),
        "{}",
        j.summary()
    );
    assert_eq!((c.bytes_done, c.bytes_total), (bytes, bytes), "{}", j.summary());
    assert_eq!(
        j.recopied, recopied,
        "job show `recopied` and the report's writes > 1 disagree"
    );
    // The report chunks are merged and deleted; the report itself stays.
    let reports =
        e.s3.list_all(&e.dst, &format!("{}reports/{}/", jobs::RESERVED_PREFIX, j.id));
    let names: Vec<&String> = reports.keys().collect();
    assert_eq!(
        names,
        [&format!("{}reports/{}/report.jsonl", jobs::RESERVED_PREFIX, j.id)],
        "only the merged report stays under the job's report folder"
    );
    recopied
}

fn print_recopied(what: &str, recopied: u64, total: usize) {
    eprintln!(
        "[jobs_e2e] {what}: recopied {recopied} of {total} ({:.1}%)",
        recopied as f64 * 100.0 / total as f64
    );
}

/// Waits until job `id` has copied at least `min` objects and is still running; panics if it
/// ended first (the test could not interrupt it mid-way).
fn wait_progress(c: &TestCluster, nodes: &[usize], id: &str, min: u64) -> Job {
    let j = jobs::wait_job(c, nodes, id, &format!("≥ {min} objects done"), JOB_TIMEOUT, |j| {
        j.counters.objects_done >= min || j.is_terminal()
    });
    assert!(
        !j.is_terminal() && j.counters.objects_done < j.counters.objects_total.max(min + 1),
        "the job ended before it could be interrupted mid-way: {}",
        j.summary()
    );
    j
}

// ------------------------------------------------------------------------------------ tests

#[test]
fn three_nodes_copy_2000_objects() {
    let Some(e) = env(
        3,
        &[
            ("job.copy_task_objects", "100"),
            ("job.split_object_bytes", "24MiB"),
            ("job.part_task_bytes", "8MiB"),
            // Room on every node when the parts are planned, so they can spread (with every
            // slot busy, the node that frees one first takes the next part).
            ("worker.slots", "8"),
        ],
    ) else {
        return;
    };
    let mut objects = small_objects("", 1999, 1);
    let big_key = "d3/huge.bin".to_string();
    objects.insert(big_key.clone(), content(&big_key, 40 * MIB + 12_345, 1));
    let t = Instant::now();
    e.s3.put_all(&e.src, &objects);
    eprintln!("[jobs_e2e] seeding took {:?}", t.elapsed());

    let t = Instant::now();
    let out =
        e.c.ctl_with(1, &e.c.token(), &["cp", "src:", "dst:", "--wait"], JOB_TIMEOUT);
    assert!(out.success(), "cp --wait: {}", out.describe());
    eprintln!("[jobs_e2e] copy of 2000 objects (40 MiB split) took {:?}", t.elapsed());
    let id = out.json().unwrap()["id"].as_str().unwrap().to_string();
    let j = jobs::show(&e.c, 2, &id).unwrap();
    let t = Instant::now();
    check_completed_copy(&e, 0, &j, &objects, "copied");
    eprintln!("[jobs_e2e] report check took {:?}", t.elapsed());
    let t = Instant::now();
    let read = e.s3.assert_holds(&e.dst, &objects);
    eprintln!(
        "[jobs_e2e] verification took {:?} ({read} objects read, the others by MD5 ETag)",
        t.elapsed()
    );
    assert!(e.s3.uploads(&e.dst).is_empty(), "multipart uploads left open");

    // The split object: its init, parts and completion ran, the parts on several nodes.
    let part_nodes = jobs::nodes_that_ran(&e.c, &id, "part-copy");
    assert!(
        part_nodes.len() >= 2,
        "the part tasks of {big_key} ran on {part_nodes:?}; expected at least 2 nodes"
    );
    assert_eq!(jobs::nodes_that_ran(&e.c, &id, "part-init").len(), 1);
    assert_eq!(jobs::nodes_that_ran(&e.c, &id, "part-complete").len(), 1);
    assert_eq!(j.nodes_used.len(), 3, "{}", j.summary());
    eprintln!(
        "[jobs_e2e] part-copy tasks ran on nodes {part_nodes:?}; {}",
        j.summary()
    );
}

/// Which node the kill tests take down.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Victim {
    /// A node holding tasks of the job (not the leader).
    Busy,
    Leader,
}

fn kill9_mid_job(victim: Victim) {
    let Some(mut e) = env(3, SLOW) else { return };
    let objects = small_objects("", 2000, 2);
    e.s3.put_all(&e.src, &objects);
    let leader = e.c.leader_index();
    let submit_via = (leader + 1) % 3;
    let id = jobs::submit(&e.c, submit_via, &["cp", "src:", "dst:"]);
    let at = wait_progress(&e.c, &[submit_via], &id, 400);
    let target = match victim {
        Victim::Leader => leader,
        Victim::Busy => {
            // `job show` names the nodes running tasks, not how many each runs (at most
            // worker.slots = 2): take one of them that is not the leader.
            let j = jobs::wait_job(
                &e.c,
                &[submit_via],
                &id,
                "a follower running a task",
                JOB_TIMEOUT,
                |j| j.nodes_running.iter().any(|n| *n != e.c.node_id(leader)),
            );
            let busy = *j.nodes_running.iter().find(|n| **n != e.c.node_id(leader)).unwrap();
            e.c.index_of(busy).unwrap()
        }
    };
    let target_id = e.c.node_id(target);
    e.c.kill9(target);
    let survivors: Vec<usize> = all_nodes(&e.c).into_iter().filter(|&i| i != target).collect();
    eprintln!(
        "[jobs_e2e] killed node {target} (id {target_id}, {victim:?}) at {}",
        at.summary()
    );
    let after = jobs::show_any(&e.c, &survivors, &id).unwrap();
    let held = after.nodes_running.contains(&target_id);

    let j = jobs::wait_end(&e.c, &survivors, &id, JOB_TIMEOUT);
    let via = survivors[0];
    let recopied = check_completed_copy(&e, via, &j, &objects, "copied");
    e.s3.assert_holds(&e.dst, &objects);
    let events = jobs::logs(&e.c, via, &id);
    let taken_back = events
        .iter()
        .any(|ev| ev.text.contains(&format!("taken back from node {target_id}")));
    if held {
        assert!(
            taken_back,
            "node {target_id} held a task when it was killed, but no event says it was taken back: {:#?}",
            events.iter().map(|e| &e.text).collect::<Vec<_>>()
        );
    }
    print_recopied(&format!("kill -9 {victim:?}"), recopied, objects.len());
    // What a killed node copied after its last checkpoint report (≤ about a second of its work)
    // is copied again; measured 0–0.2% here.
    assert!(
        recopied as f64 <= 0.05 * objects.len() as f64,
        "recopied {recopied} of {}: more than 5%",
        objects.len()
    );
}

#[test]
fn kill9_busiest_node_mid_job() {
    kill9_mid_job(Victim::Busy);
}

#[test]
fn kill9_leader_mid_job() {
    kill9_mid_job(Victim::Leader);
}

#[test]
fn full_cluster_kill9_restart_mid_job() {
    let Some(mut e) = env(3, SLOW) else { return };
    let objects = small_objects("", 2000, 3);
    e.s3.put_all(&e.src, &objects);
    let id = jobs::submit(&e.c, 0, &["cp", "src:", "dst:"]);
    wait_progress(&e.c, &[0], &id, 400);
    // Kill while tasks run (between two tasks a node holds none).
    let at = jobs::wait_job(&e.c, &[0], &id, "tasks running on two nodes", JOB_TIMEOUT, |j| {
        j.nodes_running.len() >= 2 || j.is_terminal()
    });
    assert!(!at.is_terminal(), "{}", at.summary());
    for i in 0..3 {
        e.c.kill9(i);
    }
    eprintln!("[jobs_e2e] killed every node at {}", at.summary());
    for i in 0..3 {
        e.c.restart(i);
    }
    e.c.wait_ready(Duration::from_secs(60));
    let j = jobs::wait_end(&e.c, &all_nodes(&e.c), &id, JOB_TIMEOUT);
    let recopied = check_completed_copy(&e, 1, &j, &objects, "copied");
    e.s3.assert_holds(&e.dst, &objects);
    print_recopied("full-cluster kill -9", recopied, objects.len());
}

#[test]
fn pause_resume() {
    let Some(e) = env(3, SLOW) else { return };
    let objects = small_objects("", 1000, 4);
    e.s3.put_all(&e.src, &objects);
    let id = jobs::submit(&e.c, 0, &["cp", "src:", "dst:"]);
    wait_progress(&e.c, &[0], &id, 150);

    let o = e.c.ctl(1, &["job", "pause", &id]);
    assert!(o.success(), "{}", o.describe());
    assert_eq!(Job::from_json(o.json().unwrap()).state, "paused", "{}", o.describe());
    // The tasks are handed back; then nothing moves.
    let paused = jobs::wait_job(
        &e.c,
        &[2],
        &id,
        "no task running while paused",
        Duration::from_secs(20),
        |j| j.tasks_running == 0 && j.nodes_running.is_empty(),
    );
    assert_eq!(paused.state, "paused");
    assert!(paused.counters.objects_done < 1000, "{}", paused.summary());
    // Workers see the withdrawal within a moment and let their in-flight objects finish; once
    // the destination has not changed for a second, nothing more may be written.
    let mut last = (usize::MAX, Instant::now());
    let written = mesh_tests::wait_for(
        "the destination to settle after the pause",
        Duration::from_secs(20),
        || {
            let n = e.s3.list(&e.dst, "").len();
            if n != last.0 {
                last = (n, Instant::now());
            }
            if last.1.elapsed() >= Duration::from_secs(1) {
                Ok(n)
            } else {
                Err(format!("{n} objects written"))
            }
        },
    );
    holds_for(Duration::from_secs(2), || {
        let j = jobs::show(&e.c, 0, &id)?;
        if j.state != "paused" || j.counters != paused.counters {
            return Err(format!(
                "moved while paused: {} (was {})",
                j.summary(),
                paused.summary()
            ));
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let now = e.s3.list(&e.dst, "").len();
    assert_eq!(now, written, "objects were written while the job was paused");

    let o = e.c.ctl(2, &["job", "resume", &id]);
    assert!(o.success(), "{}", o.describe());
    assert_ne!(Job::from_json(o.json().unwrap()).state, "paused", "{}", o.describe());
    let j = jobs::wait_end(&e.c, &[1], &id, JOB_TIMEOUT);
    let recopied = check_completed_copy(&e, 1, &j, &objects, "copied");
    e.s3.assert_holds(&e.dst, &objects);
    let texts: Vec<String> = jobs::logs(&e.c, 0, &id).into_iter().map(|e| e.text).collect();
    assert!(texts.iter().any(|t| t.starts_with("paused by")), "{texts:#?}");
    assert!(texts.iter().any(|t| t.starts_with("resumed by")), "{texts:#?}");
    print_recopied("pause/resume", recopied, objects.len());
    // The tasks resumed after the pause list the destination once and find what their earlier
    // run copied (also the objects in flight when the pause came): nothing is written twice.
    assert_eq!(
        recopied,
        0,
        "objects were copied again after the resume: {}",
        j.summary()
    );
}

/// `JobService.Watch`, as a third-party client uses it: views stream as the job moves (through a
/// follower too), counters never go back, the last view is the terminal one and the stream then
/// ends; an unknown job is NOT_FOUND.
#[test]
fn watch_streams_the_job_until_it_ends() {
    let Some(e) = env(3, SLOW) else { return };
    let objects = small_objects("", 400, 9);
    e.s3.put_all(&e.src, &objects);
    let id = jobs::submit(&e.c, 0, &["cp", "src:", "dst:"]);
    let leader = e.c.leader_index();
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let mut client = jobs::job_client(&e.c, follower);
    let views: Vec<pb::JobView> = e.c.rt().block_on(async {
        let req = pb::WatchJobRequest {
            id: id.clone(),
            consistency: pb::ReadConsistency::Linearizable as i32,
        };
        let mut stream = client.watch(req).await.expect("watch").into_inner();
        let mut views = Vec::new();
        let deadline = tokio::time::Instant::now() + JOB_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, stream.message())
                .await
                .expect("the watch stream neither ended nor sent within the job timeout");
            match next.expect("watch stream error") {
                Some(v) => views.push(v),
                None => break views,
            }
        }
    });
    let counters = |v: &pb::JobView| v.job.as_ref().and_then(|j| j.counters).unwrap_or_default();
    let last = views.last().expect("at least one view");
    let state = last.job.as_ref().map(|j| j.state).unwrap_or_default();
    assert_eq!(state, pb::JobState::Completed as i32, "last view: {last:?}");
    assert_eq!(counters(last).objects_done, objects.len() as u64);
    let moving: Vec<u64> = views.iter().map(|v| counters(v).objects_done).collect();
    assert!(
        moving.windows(2).all(|w| w[0] <= w[1]),
        "objects_done went back: {moving:?}"
    );
    let distinct: BTreeSet<u64> = moving.iter().copied().collect();
    assert!(
        distinct.len() >= 3,
        "the stream should show the job moving, not only its start and end: {moving:?}"
    );
    eprintln!("[jobs_e2e] watch: {} views, objects_done {moving:?}", views.len());

    let err =
        e.c.rt()
            .block_on(client.watch(pb::WatchJobRequest {
                id: "j-000000000000".into(),
                consistency: 0,
            }))
            .map(|_| ())
            .expect_err("watching an unknown job");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
}

/// Progress moves with a large object, not only when it ends: a streamed 40 MiB object (8 MiB
/// parts, bandwidth-limited so it takes seconds) shows `bytes_in_flight` growing in `job show`
/// while `objects_done` is still 0; the job then counts the object and in-flight bytes are gone.
#[test]
fn progress_moves_within_a_large_object() {
    let Some(e) = env(1, &[]) else { return };
    jobs::add_s3_location(&e.c, 0, e.s3.endpoint(), "far", &e.dst, "us-west-2");
    let key = "big/one.bin".to_string();
    let objects: BTreeMap<String, Vec<u8>> = [(key.clone(), content(&key, 40 * MIB, 12))].into();
    e.s3.put_all(&e.src, &objects);
    let id = jobs::submit(&e.c, 0, &["cp", "src:", "far:", "--bwlimit", "8MiB/s"]);
    let mut seen = Vec::new();
    let partial = mesh_tests::wait_for("bytes in flight before the object ends", JOB_TIMEOUT, || {
        let j = jobs::show(&e.c, 0, &id)?;
        let inflight = j.raw.get("bytes_in_flight").and_then(|v| v.as_u64()).unwrap_or(0);
        seen.push((inflight, j.counters.objects_done));
        if j.is_terminal() {
            return Ok(None);
        }
        if inflight > 0 && j.counters.objects_done == 0 {
            Ok(Some(inflight))
        } else {
            Err(format!("bytes_in_flight {inflight}, {}", j.summary()))
        }
    });
    let partial = partial.unwrap_or_else(|| panic!("the job ended before any progress was seen: {seen:?}"));
    assert!(
        partial < 40 * MIB as u64,
        "in flight {partial} should be part of the object"
    );
    let j = jobs::wait_end(&e.c, &[0], &id, JOB_TIMEOUT);
    assert_eq!(j.state, "completed", "{}", j.summary());
    assert_eq!(j.counters.bytes_done, 40 * MIB as u64);
    let inflight = j.raw.get("bytes_in_flight").and_then(|v| v.as_u64()).unwrap_or(0);
    assert_eq!(inflight, 0, "nothing in flight once the job ended");
}

/// The report is read in pages (`JobService.Report` with an offset), each ending on a line
/// boundary; together they are the whole report, as `meshctl job report` prints it; an offset
/// past the end is refused; `--max-bytes` prints whole lines only and says where the rest is.
#[test]
fn report_is_paged_on_line_boundaries() {
    let Some(e) = env(1, &[]) else { return };
    let objects = small_objects("", 300, 13);
    e.s3.put_all(&e.src, &objects);
    let id = jobs::submit(&e.c, 0, &["cp", "src:", "dst:"]);
    let j = jobs::wait_end(&e.c, &[0], &id, JOB_TIMEOUT);
    assert_eq!(j.state, "completed", "{}", j.summary());
    let whole = e.c.ctl(0, &["job", "report", &id]);
    assert!(whole.success(), "{}", whole.describe());
    assert_eq!(whole.stdout.lines().count(), 300, "{}", whole.describe());

    let mut client = jobs::job_client(&e.c, 0);
    let mut pages = Vec::new();
    let mut offset = 0;
    loop {
        let r =
            e.c.rt()
                .block_on(client.report(pb::JobReportRequest {
                    id: id.clone(),
                    max_bytes: 1000,
                    offset,
                }))
                .expect("report page")
                .into_inner();
        assert!(r.content.len() <= 1000, "a page is at most max_bytes");
        assert!(r.content.ends_with(b"\n"), "a page ends on a line boundary");
        assert_eq!(r.total_bytes, whole.stdout.len() as u64);
        pages.push(String::from_utf8(r.content).unwrap());
        if r.next_offset == 0 {
            assert!(!r.truncated);
            break;
        }
        assert!(r.truncated);
        offset = r.next_offset;
    }
    assert!(pages.len() > 10, "{} pages", pages.len());
    assert_eq!(pages.concat(), whole.stdout, "the pages together are the whole report");

    let err =
        e.c.rt()
            .block_on(client.report(pb::JobReportRequest {
                id: id.clone(),
                max_bytes: 1000,
                offset: whole.stdout.len() as u64 + 1,
            }))
            .expect_err("an offset past the end");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("next_offset"), "{err:?}");

    let cut = e.c.ctl(0, &["job", "report", &id, "--max-bytes", "5000"]);
    assert!(cut.success(), "{}", cut.describe());
    assert!(
        cut.stdout.len() <= 5000 && cut.stdout.ends_with('\n'),
        "{}",
        cut.describe()
    );
    assert!(whole.stdout.starts_with(&cut.stdout));
    assert!(cut.stderr.contains("omit --max-bytes"), "{}", cut.describe());
}

/// A store that fails every request shows within seconds: retries become job events naming the
/// request and the error, and the job counts them as warnings — not a silent `running` job.
#[test]
fn retries_against_a_failing_store_show_as_job_events() {
    let Some(e) = env(1, &[]) else { return };
    let objects = small_objects("", 3, 10);
    e.s3.put_all(&e.src, &objects);
    // A destination whose endpoint refuses connections (a port nobody listens on).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    jobs::add_s3_location(&e.c, 0, &dead_endpoint, "dead", "nowhere", "us-east-1");
    let id = jobs::submit(&e.c, 0, &["cp", "src:", "dead:"]);
    let events = mesh_tests::wait_for("a retry event", Duration::from_secs(30), || {
        let texts: Vec<String> = jobs::logs(&e.c, 0, &id).into_iter().map(|e| e.text).collect();
        if texts.iter().any(|t| t.contains("retrying")) {
            Ok(texts)
        } else {
            Err(format!("events so far: {texts:?}"))
        }
    });
    let retry = events.iter().find(|t| t.contains("retrying")).unwrap();
    assert!(retry.contains(" of 5,"), "the event should count the retries: {retry}");
    assert!(
        retry.contains(dead_endpoint.trim_start_matches("http://")),
        "the event should name the failing store: {retry}"
    );
    let j = jobs::show(&e.c, 0, &id).unwrap();
    assert!(j.warnings > 0, "retries should count as warnings: {}", j.summary());
    let o = e.c.ctl(0, &["job", "cancel", &id]);
    assert!(o.success(), "{}", o.describe());
}

#[test]
fn cancel_aborts_uploads() {
    let Some(e) = env(
        3,
        &[("job.split_object_bytes", "24MiB"), ("job.part_task_bytes", "8MiB")],
    ) else {
        return;
    };
    // Another region: the copy streams through the nodes (so --bwlimit applies to it).
    jobs::add_s3_location(&e.c, 0, e.s3.endpoint(), "far", &e.dst, "us-west-2");
    let mut objects = small_objects("", 20, 5);
    let big_key = "big/huge.bin".to_string();
    objects.insert(big_key.clone(), content(&big_key, 40 * MIB, 5));
    e.s3.put_all(&e.src, &objects);
    let id = jobs::submit(&e.c, 0, &["cp", "src:", "far:", "--bwlimit", "2MiB/s"]);
    // PART_INIT has created the upload; part tasks are copying.
    let uploads = mesh_tests::wait_for("the split object's multipart upload", Duration::from_secs(60), || {
        let u = e.s3.uploads(&e.dst);
        if u.iter().any(|u| u.key == big_key) {
            Ok(u)
        } else {
            Err(format!("uploads: {:?}", u.iter().map(|u| &u.key).collect::<Vec<_>>()))
        }
    });
    let running = jobs::wait_job(&e.c, &[1], &id, "part tasks running", Duration::from_secs(30), |j| {
        j.tasks_running > 0
    });
    assert_eq!(running.state, "running", "{}", running.summary());
    eprintln!(
        "[jobs_e2e] cancelling with {} upload(s) open: {}",
        uploads.len(),
        running.summary()
    );
    let o = e.c.ctl(1, &["job", "cancel", &id]);
    assert!(o.success(), "{}", o.describe());
    let j = jobs::wait_end(&e.c, &[2], &id, Duration::from_secs(60));
    assert_eq!(j.state, "cancelled", "{}", j.summary());
    let left = e.s3.uploads(&e.dst);
    assert!(
        left.is_empty(),
        "multipart uploads left after cancel: {:?}",
        left.iter().map(|u| (&u.key, &u.upload_id)).collect::<Vec<_>>()
    );
    // Part tasks that were mid-part when the job was cancelled must not bring an upload back.
    holds_for(Duration::from_secs(3), || match e.s3.uploads(&e.dst) {
        u if u.is_empty() => Ok(()),
        u => Err(format!(
            "an upload reappeared after the cancel: {:?}",
            u.iter().map(|u| (&u.key, &u.upload_id)).collect::<Vec<_>>()
        )),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !e.s3.list(&e.dst, "").contains_key(&big_key),
        "the cancelled split object was completed anyway"
    );
    let texts: Vec<String> = jobs::logs(&e.c, 0, &id).into_iter().map(|e| e.text).collect();
    assert!(texts.iter().any(|t| t.starts_with("cancelled by")), "{texts:#?}");
}

#[test]
fn move_deletes_sources_only_after_verified_copy() {
    let Some(mut e) = env(
        3,
        &[
            ("node_ttl", "3s"),
            ("leader_grace", "3s"),
            ("job.copy_task_objects", "25"),
            ("worker.slots", "1"),
            ("job.object_concurrency", "2"),
        ],
    ) else {
        return;
    };
    let objects = small_objects("", 500, 6);
    e.s3.put_all(&e.src, &objects);
    let leader = e.c.leader_index();
    let id = jobs::submit(&e.c, leader, &["mv", "src:", "dst:"]);
    let at = wait_progress(&e.c, &[leader], &id, 75);
    let target = (0..3)
        .find(|&i| i != leader && at.nodes_running.contains(&e.c.node_id(i)))
        .unwrap_or((leader + 1) % 3);
    e.c.kill9(target);
    eprintln!("[jobs_e2e] mv: killed node {target} at {}", at.summary());
    let survivors: Vec<usize> = all_nodes(&e.c).into_iter().filter(|&i| i != target).collect();

    // Never lost: a key gone from the source is in the destination with its bytes. The source is
    // listed first, so a key it lacks was deleted before the destination is read.
    let never_lost = |e: &Env| -> Result<usize, String> {
        let in_src = e.s3.list(&e.src, "");
        let gone: Vec<String> = objects.keys().filter(|k| !in_src.contains_key(*k)).cloned().collect();
        let bodies = e.s3.read_all(&e.dst, &gone);
        for k in &gone {
            if bodies[k].as_deref() != Some(objects[k].as_slice()) {
                return Err(format!(
                    "{k} is gone from the source and {} in the destination",
                    if bodies[k].is_some() { "wrong" } else { "missing" }
                ));
            }
        }
        Ok(gone.len())
    };
    let mut checks = 0;
    let j = mesh_tests::wait_for(&format!("move {id} to end"), JOB_TIMEOUT, || {
        let moved = never_lost(&e).unwrap_or_else(|m| panic!("an object was lost: {m}"));
        checks += 1;
        let j = jobs::show_any(&e.c, &survivors, &id)?;
        if j.is_terminal() {
            Ok(j)
        } else {
            Err(format!("{moved} moved; {}", j.summary()))
        }
    });
    assert!(checks >= 2, "the invariant was checked only {checks} time(s)");
    assert!(
        e.s3.list(&e.src, "").is_empty(),
        "the source is not empty after the move"
    );
    e.s3.assert_holds(&e.dst, &objects);
    let recopied = check_completed_copy(&e, survivors[0], &j, &objects, "moved");
    print_recopied("mv with kill -9", recopied, objects.len());
}

#[test]
fn sync_delete_with_excludes() {
    let Some(e) = env(3, &[("job.copy_task_objects", "40")]) else {
        return;
    };
    let src = small_objects("data/", 200, 7);
    let keys: Vec<&String> = src.keys().collect();
    let (identical, rest) = keys.split_at(120);
    let (changed, missing) = rest.split_at(40);
    let mut dst: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for k in identical {
        dst.insert((*k).clone(), src[*k].clone());
    }
    for (n, k) in changed.iter().enumerate() {
        // Half the same size with other bytes, half another size.
        let size = src[*k].len() + if n % 2 == 0 { 0 } else { 17 };
        let mut body = content(k, size, 70);
        if body == src[*k] {
            body.push(b'!');
        }
        dst.insert((*k).clone(), body);
    }
    let extras = small_objects("old/", 25, 8);
    let kept = small_objects("keep/", 15, 9);
    dst.extend(extras.clone());
    dst.extend(kept.clone());
    e.s3.put_all(&e.src, &src);
    e.s3.put_all(&e.dst, &dst);

    let out = e.c.ctl_with(
        2,
        &e.c.token(),
        &["sync", "src:", "dst:", "--delete", "--exclude", "keep/**", "--wait"],
        JOB_TIMEOUT,
    );
    assert!(out.success(), "sync --wait: {}", out.describe());
    let id = out.json().unwrap()["id"].as_str().unwrap().to_string();
    let j = jobs::show(&e.c, 0, &id).unwrap();
    assert_eq!(j.state, "completed", "{}", j.summary());
    let c = &j.counters;
    assert_eq!(
        (
            c.objects_total,
            c.objects_done,
            c.objects_skipped,
            c.objects_deleted,
            c.objects_failed
        ),
        (200, 80, 120, 25, 0),
        "(total, copied, skipped, deleted, failed): {}",
        j.summary()
    );
    let mut want = src.clone();
    want.extend(kept.clone());
    e.s3.assert_holds(&e.dst, &want);

    let lines = jobs::report(&e.c, 1, &id);
    let outcome_of = |k: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.key == k || l.dst_key == k)
            .map(|l| l.outcome.clone())
            .collect()
    };
    for k in identical {
        assert_eq!(outcome_of(k), ["skipped"], "{k}");
    }
    for k in changed.iter().chain(missing) {
        assert_eq!(outcome_of(k), ["copied"], "{k}");
    }
    for k in extras.keys() {
        assert_eq!(outcome_of(k), ["deleted"], "{k}");
    }
    for k in kept.keys() {
        assert!(
            outcome_of(k).is_empty(),
            "{k} is excluded but has report lines {:?}",
            outcome_of(k)
        );
    }
    assert_eq!(lines.len(), 200 + 25, "report lines");
}

#[test]
fn ten_jobs_three_clients_tier_limits() {
    let Some(e) = env(
        4,
        &[
            ("tier.express", "2"),
            ("job.copy_task_objects", "10"),
            ("worker.slots", "2"),
        ],
    ) else {
        return;
    };
    let mut all = BTreeMap::new();
    for k in 0..10 {
        all.extend(small_objects(&format!("p{k}/"), 60, 10 + k as u8));
    }
    e.s3.put_all(&e.src, &all);
    let express = |k: usize| k.is_multiple_of(2);
    // Three clients, each talking to its own node, submit their jobs at the same time.
    let submitted: Vec<(usize, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let c = &e.c;
                s.spawn(move || {
                    (0..10)
                        .filter(|k| k % 3 == t)
                        .map(|k| {
                            let (from, to) = (format!("src:p{k}/"), format!("dst:p{k}/"));
                            let mut args = vec!["cp", from.as_str(), to.as_str()];
                            if express(k) {
                                args.extend(["--tier", "express"]);
                            }
                            (k, jobs::submit(c, t, &args))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(submitted.len(), 10);
    assert_eq!(jobs::job_ids(&e.c, 3).len(), 10, "job list");
    let mut over_tier = Vec::new();
    for (k, id) in &submitted {
        let j = jobs::wait_end(&e.c, &[3], id, JOB_TIMEOUT);
        assert_eq!(j.state, "completed", "job {k}: {}", j.summary());
        assert_eq!(
            (j.counters.objects_done, j.counters.objects_total),
            (60, 60),
            "job {k}: {}",
            j.summary()
        );
        eprintln!(
            "[jobs_e2e] job {k} ({}) used nodes {:?}",
            if express(*k) { "express" } else { "plus" },
            j.nodes_used
        );
        assert!(!j.nodes_used.is_empty(), "job {k}: {}", j.summary());
        if express(*k) && j.nodes_used.len() > 2 {
            over_tier.push(format!("job {k} ({id}) used {:?}", j.nodes_used));
        }
    }
    e.s3.assert_holds(&e.dst, &all);
    assert!(
        over_tier.is_empty(),
        "express jobs spread over more than tier.express = 2 nodes: {over_tier:#?}"
    );
}

#[test]
fn bad_input_is_refused() {
    // Nothing is copied: the locations only need to exist (no S3 server is contacted).
    let c = TestCluster::start_new(1);
    jobs::add_s3_locations(
        &c,
        0,
        "http://127.0.0.1:9",
        &[("src", "bad-src", "us-east-1"), ("dst", "bad-dst", "us-east-1")],
    );
    let cases: &[(&[&str], &[&str])] = &[
        (&["cp", "nope:", "dst:"], &["\"nope\"", "does not exist"]),
        (&["cp", "src:a/../../x", "dst:"], &["source path", "'..'"]),
        (&["cp", "src:", "dst:/abs"], &["destination path", "leading '/'"]),
        (&["mv", "src:a/b", "src:a/"], &["inside destination"]),
        (&["sync", "src:a/b/", "src:a"], &["inside destination"]),
        (&["mv", "src:a/", "src:a/b/"], &["inside source"]),
        (&["sync", "src:x", "src:x/"], &["same place"]),
        (&["cp", "src:", "dst:", "--tier", "gold"], &["--tier", "gold"]),
        (
            &["cp", "src:", "dst:", "--bwlimit", "12parsecs"],
            &["--bwlimit", "12parsecs"],
        ),
        (&["cp", "src:", "dst:", "--include", "["], &["--include", "\"[\""]),
        (&["cp", "src:", "dst:", "--exclude", "a/{b"], &["--exclude"]),
    ];
    for (args, words) in cases {
        let o = c.ctl(0, args);
        assert_eq!(o.code, Some(2), "{args:?} should be a usage error: {}", o.describe());
        let text = o.all_text();
        for w in *words {
            assert!(
                text.contains(w),
                "{args:?}: the message should name {w:?}: {}",
                o.describe()
            );
        }
    }
    assert!(jobs::job_ids(&c, 0).is_empty(), "a refused submit created a job");

    // Straight through gRPC: the same rules, INVALID_ARGUMENT, nothing created.
    let mut client = jobs::job_client(&c, 0);
    let spec = |src: &str, src_path: &str, dst: &str, op: pb::JobOp| pb::JobSpec {
        op: op as i32,
        src_location: src.into(),
        src_path: src_path.into(),
        dst_location: dst.into(),
        ..Default::default()
    };
    for (what, s) in [
        ("unknown location", spec("nowhere", "", "dst", pb::JobOp::Copy)),
        ("path with ..", spec("src", "../up/", "dst", pb::JobOp::Copy)),
        ("sync onto itself", spec("src", "", "src", pb::JobOp::Sync)),
        ("no operation", spec("src", "", "dst", pb::JobOp::Unspecified)),
    ] {
        let r = c.rt().block_on(client.submit(pb::SubmitJobRequest { spec: Some(s) }));
        let status = r.expect_err(what);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{what}: {status:?}");
        if what == "unknown location" {
            assert!(status.message().contains("\"nowhere\""), "{what}: {status:?}");
        }
    }
    let listed = c
        .rt()
        .block_on(client.list(pb::ListJobsRequest::default()))
        .expect("list jobs")
        .into_inner();
    assert!(
        listed.jobs.is_empty(),
        "refused submits created jobs: {:?}",
        listed.jobs
    );
    assert!(jobs::job_ids(&c, 0).is_empty());
}

/// A move deletes a task's sources in one batch when its copies are verified, and the outcome
/// lines of those objects reach the report with the task's next report chunk. A node that dies
/// in between must not leave them out: the task resumed elsewhere no longer finds those sources,
/// but finds their copies at the destination, written since the job started, and reports them
/// as moved. The nodes are frozen (SIGSTOP) the moment the first batch of sources disappears;
/// the node that ran that task is then killed, the others resume.
#[test]
fn move_report_keeps_objects_moved_just_before_a_kill() {
    let Some(mut e) = env(
        3,
        &[
            ("node_ttl", "3s"),
            ("leader_grace", "3s"),
            ("job.copy_task_objects", "25"),
            ("worker.slots", "1"),
            ("job.object_concurrency", "2"),
        ],
    ) else {
        return;
    };
    let objects = small_objects("", 250, 11);
    e.s3.put_all(&e.src, &objects);
    let id = jobs::submit(&e.c, 0, &["mv", "src:", "dst:"]);
    // The listing order is key order here; the LIST task (1) cut tasks 2, 3, ... of 25 keys, and
    // tasks 2, 3 and 4 run first, one per node. Their first keys are watched as fast as the store
    // answers (a task deletes its sources in one batch, at its end).
    let keys: Vec<&String> = objects.keys().collect();
    let watched: Vec<String> = [0, 25, 50].iter().map(|&i| keys[i].clone()).collect();
    // (No pause between polls: the window between the deletion and the next report is short.)
    let deadline = Instant::now() + JOB_TIMEOUT;
    while e.s3.read_all(&e.src, &watched).values().all(|b| b.is_some()) {
        assert!(Instant::now() < deadline, "no source was moved within {JOB_TIMEOUT:?}");
    }
    for i in 0..3 {
        e.c.sigstop(i);
    }
    let left = e.s3.list(&e.src, "");
    let gone: Vec<String> = objects.keys().filter(|k| !left.contains_key(*k)).cloned().collect();
    let task_of = |k: &String| 2 + keys.iter().position(|x| *x == k).unwrap() / 25;
    let tasks: BTreeSet<usize> = gone.iter().map(task_of).collect();
    let runner = |task: usize| {
        (0..3).find(|&i| {
            e.c.log_text(i)
                .lines()
                .any(|l| l.contains("running task") && l.contains(&id) && l.contains(&format!(" task={task} ")))
        })
    };
    let task = *tasks.iter().next().unwrap();
    let victim = runner(task).unwrap_or_else(|| panic!("no node logged running task {task}"));
    eprintln!(
        "[jobs_e2e] {} sources gone (tasks {tasks:?}); killing node {victim}, which ran task {task}",
        gone.len()
    );
    e.c.kill9(victim);
    let survivors: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    for &i in &survivors {
        e.c.sigcont(i);
    }
    let j = jobs::wait_end(&e.c, &survivors, &id, JOB_TIMEOUT);
    assert!(
        e.s3.list(&e.src, "").is_empty(),
        "the source is not empty after the move"
    );
    e.s3.assert_holds(&e.dst, &objects);
    let lines = jobs::report(&e.c, survivors[0], &id);
    let reported: BTreeSet<&str> = lines.iter().map(|l| l.key.as_str()).collect();
    let unreported: Vec<&String> = objects.keys().filter(|k| !reported.contains(k.as_str())).collect();
    assert!(
        unreported.is_empty(),
        "{} moved objects are missing from the report (the batch moved just before the kill was {:?}…): {:?}; {}",
        unreported.len(),
        &gone[..gone.len().min(3)],
        &unreported[..unreported.len().min(5)],
        j.summary()
    );
    check_completed_copy(&e, survivors[0], &j, &objects, "moved");
}
