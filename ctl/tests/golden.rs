//! Golden tests of every output format: rendered tables and JSON are compared with the files in
//! tests/golden/. Run with `UPDATE_GOLDEN=1` to rewrite them after an intended change.

use mesh_proto::v1::*;
use meshctl::output::{self, Format};

/// Compares `actual` with tests/golden/`name`, or rewrites it when UPDATE_GOLDEN=1.
fn check(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display()));
    if expected != actual {
        let (e, a): (Vec<_>, Vec<_>) = (expected.lines().collect(), actual.lines().collect());
        let mut diff = String::new();
        for i in 0..e.len().max(a.len()) {
            match (e.get(i), a.get(i)) {
                (Some(x), Some(y)) if x == y => diff.push_str(&format!("  {x}\n")),
                (x, y) => {
                    if let Some(x) = x {
                        diff.push_str(&format!("- {x}\n"));
                    }
                    if let Some(y) = y {
                        diff.push_str(&format!("+ {y}\n"));
                    }
                }
            }
        }
        panic!(
            "{} differs (- expected, + actual; UPDATE_GOLDEN=1 to accept):\n{diff}",
            path.display()
        );
    }
}

/// A node row: (id, address, zone, role, state) and (last contact, applied index, version).
fn node(who: (u64, &str, &str, &str, &str), health: (i64, u64, &str)) -> NodeStatus {
    let (id, addr, zone, role, state) = who;
    let (contact, applied, version) = health;
    NodeStatus {
        id,
        addr: addr.into(),
        region: "eu-west-1".into(),
        zone: zone.into(),
        role: role.into(),
        state: state.into(),
        last_contact_ms: contact,
        applied_index: applied,
        version: version.into(),
    }
}

fn nodes() -> Vec<NodeStatus> {
    vec![
        node(
            (4_503_599_627_370_001, "10.0.1.10:7400", "eu-west-1a", "voter", "active"),
            (0, 1042, "0.1.0"),
        ),
        node(
            (2_251_799_813_685_247, "10.0.2.11:7400", "eu-west-1b", "voter", "active"),
            (120, 1041, "0.1.0"),
        ),
        node((17, "10.0.3.12:7400", "", "learner", "joining"), (3_210, 900, "0.1.0")),
        node(
            (981_237, "10.0.1.13:7400", "eu-west-1a", "VOTER", "DOWN"),
            (-1, 800, "0.0.9"),
        ),
        node((5, "10.0.2.14:7400", "eu-west-1b", "none", "left"), (245_000, 640, "")),
    ]
}

fn status() -> StatusResponse {
    StatusResponse {
        cluster_id: "c-7f3a9e21".into(),
        leader_id: 4_503_599_627_370_001,
        term: 7,
        commit_index: 1042,
        served_by: 2_251_799_813_685_247,
        linearizable: true,
        nodes: nodes(),
        voter_target: 3,
    }
}

fn both(name: &str, render: impl Fn(Format) -> String) {
    check(&format!("{name}.txt"), &render(Format::Table));
    let json = render(Format::Json);
    serde_json::from_str::<serde_json::Value>(&json).expect("valid JSON");
    check(&format!("{name}.json"), &json);
}

#[test]
fn cluster_status() {
    both("cluster_status", |f| output::cluster_status(&status(), f));
}

#[test]
fn cluster_status_json_matches_the_contract() {
    let v: serde_json::Value = serde_json::from_str(&output::cluster_status(&status(), Format::Json)).unwrap();
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    let mut expected = [
        "cluster_id",
        "leader_id",
        "term",
        "commit_index",
        "served_by",
        "linearizable",
        "voter_target",
        "nodes",
    ];
    expected.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, expected);
    let n = &v["nodes"][0];
    let mut nk: Vec<_> = n.as_object().unwrap().keys().cloned().collect();
    nk.sort();
    let mut expected = [
        "id",
        "addr",
        "region",
        "zone",
        "role",
        "state",
        "last_contact_ms",
        "applied_index",
        "version",
    ];
    expected.sort();
    assert_eq!(nk, expected);
    assert_eq!(
        v["leader_id"].as_u64(),
        Some(4_503_599_627_370_001),
        "u64 ids are JSON numbers"
    );
    assert_eq!(v["nodes"][3]["last_contact_ms"].as_i64(), Some(-1));
    assert_eq!(v["nodes"][3]["state"], "down");
}

#[test]
fn cluster_status_without_leader_local() {
    let mut s = status();
    s.leader_id = 0;
    s.linearizable = false;
    s.served_by = 17;
    both("cluster_status_no_leader", |f| output::cluster_status(&s, f));
}

#[test]
fn node_list() {
    let r = ListNodesResponse {
        nodes: nodes(),
        linearizable: true,
    };
    both("node_list", |f| output::node_list(&r, f));
    let local = ListNodesResponse {
        nodes: nodes()[..2].to_vec(),
        linearizable: false,
    };
    both("node_list_local", |f| output::node_list(&local, f));
}

#[test]
fn node_remove() {
    let n = nodes()[3].clone();
    both("node_removed", |f| output::node_removed(981_237, Some(&n), f));
    both("node_removed_unknown", |f| output::node_removed(44, None, f));
}

#[test]
fn transfer_leader() {
    let r = TransferLeaderResponsePublic {
        new_leader: 2_251_799_813_685_247,
    };
    both("transfer_leader", |f| output::transfer_leader(&r, f));
}

fn view(name: &str, value: &str, is_default: bool, help: &str, at: u64) -> SettingView {
    SettingView {
        name: name.into(),
        value: value.into(),
        is_default,
        help: help.into(),
        updated_at_ms: at,
    }
}

#[test]
fn settings() {
    let list = ListSettingsResponse {
        settings: vec![
            view(
                "voter_target",
                "5",
                false,
                "voters the autopilot keeps (1, 3, 5 or 7)",
                1_709_210_096_789,
            ),
            view("node_ttl", "10s", true, "a node silent this long is marked down", 0),
            view(
                "leader_grace",
                "10s",
                true,
                "after a leader change, nobody is judged before this",
                0,
            ),
            view(
                "dead_voter_grace",
                "2m",
                false,
                "a voter down this long is replaced",
                1_709_296_496_000,
            ),
            view(
                "stabilization_time",
                "10s",
                true,
                "a learner must be healthy this long before promotion",
                0,
            ),
        ],
        linearizable: true,
    };
    both("setting_list", |f| output::setting_list(&list, f));
    let local = ListSettingsResponse {
        settings: list.settings[..1].to_vec(),
        linearizable: false,
    };
    both("setting_list_local", |f| output::setting_list(&local, f));

    let setting = Setting {
        name: "node_ttl".into(),
        value: "30s".into(),
        updated_at_ms: 1_709_210_096_789,
    };
    let get = GetSettingResponse {
        setting: Some(setting.clone()),
        linearizable: true,
        is_default: false,
    };
    both("setting_get", |f| output::setting_get(&get, f));
    let get_default = GetSettingResponse {
        setting: Some(Setting {
            name: "leader_grace".into(),
            value: "10s".into(),
            updated_at_ms: 0,
        }),
        linearizable: false,
        is_default: true,
    };
    both("setting_get_default_local", |f| output::setting_get(&get_default, f));
    let set = SetSettingResponse { setting: Some(setting) };
    both("setting_set", |f| output::setting_set(&set, f));
}

// ---------------------------------------------------------------- locations and credentials

const T0: u64 = 1_709_210_096_000;

fn locations() -> Vec<Location> {
    vec![
        Location {
            name: "edge".into(),
            kind: LocationKind::Fs as i32,
            fs_path: "/var/lib/mesh/edge".into(),
            created_at_ms: T0,
            updated_at_ms: T0,
            ..Default::default()
        },
        Location {
            name: "photos".into(),
            kind: LocationKind::S3 as i32,
            bucket: "photos-2024".into(),
            prefix: "raw/".into(),
            region: "eu-west-1".into(),
            credential: "prod-keys".into(),
            created_at_ms: T0,
            updated_at_ms: T0 + 60_000,
            ..Default::default()
        },
        Location {
            name: "backup".into(),
            kind: LocationKind::S3 as i32,
            bucket: "backup.example".into(),
            endpoint: "http://127.0.0.1:8333".into(),
            path_style: true,
            credential: "seaweed".into(),
            storage_class: "STANDARD_IA".into(),
            sse: "aws:kms".into(),
            kms_key_id: "alias/backup".into(),
            created_at_ms: T0,
            updated_at_ms: T0,
            ..Default::default()
        },
    ]
}

fn credentials() -> Vec<CredentialView> {
    vec![
        CredentialView {
            name: "chain".into(),
            kind: CredentialKind::DefaultChain as i32,
            used_by: vec![],
            created_at_ms: T0,
            updated_at_ms: T0,
            ..Default::default()
        },
        CredentialView {
            name: "prod-keys".into(),
            kind: CredentialKind::Static as i32,
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            has_secret_access_key: true,
            key_fingerprint: "9f86d081884c7d65".into(),
            used_by: vec!["location:photos".into(), "credential:mover".into()],
            created_at_ms: T0,
            updated_at_ms: T0,
            ..Default::default()
        },
        CredentialView {
            name: "sts".into(),
            kind: CredentialKind::Static as i32,
            access_key_id: "ASIAEXAMPLE".into(),
            has_secret_access_key: true,
            has_session_token: true,
            key_fingerprint: "9f86d081884c7d65".into(),
            created_at_ms: T0,
            updated_at_ms: T0,
            ..Default::default()
        },
        CredentialView {
            name: "mover".into(),
            kind: CredentialKind::AssumeRole as i32,
            role_arn: "arn:aws:iam::123456789012:role/mover".into(),
            external_id: "ext-42".into(),
            via: "prod-keys".into(),
            created_at_ms: T0,
            updated_at_ms: T0,
            ..Default::default()
        },
    ]
}

#[test]
fn location_list() {
    let r = ListLocationsResponse {
        locations: locations(),
        linearizable: true,
    };
    both("location_list", |f| output::location_list(&r, f));
    let local = ListLocationsResponse {
        locations: vec![],
        linearizable: false,
    };
    both("location_list_empty_local", |f| output::location_list(&local, f));
}

#[test]
fn location_show() {
    let s3 = GetLocationResponse {
        location: Some(locations()[1].clone()),
        credential: Some(credentials()[1].clone()),
        linearizable: true,
    };
    both("location_show_s3", |f| output::location_show(&s3, f));
    let fs = GetLocationResponse {
        location: Some(locations()[0].clone()),
        credential: None,
        linearizable: true,
    };
    both("location_show_fs", |f| output::location_show(&fs, f));
}

#[test]
fn location_added_and_removed() {
    let r = AddLocationResponse {
        location: Some(locations()[2].clone()),
    };
    both("location_added", |f| output::location_added(&r, f));
    let r = RemoveLocationResponse {
        removed: Some(locations()[0].clone()),
    };
    both("location_removed", |f| output::location_removed("edge", &r, f));
}

#[test]
fn location_test() {
    let ok = TestLocationResponse {
        name: "backup".into(),
        target: "s3://backup.example/ (http://127.0.0.1:8333)".into(),
        ok: true,
        steps: vec![
            ProbeStep {
                step: "list".into(),
                ok: true,
                detail: "ok (3 keys)".into(),
            },
            ProbeStep {
                step: "head".into(),
                ok: true,
                detail: "ok".into(),
            },
        ],
        served_by: 17,
    };
    both("location_test_ok", |f| output::location_test(&ok, f));
    let failed = TestLocationResponse {
        ok: false,
        steps: vec![
            ProbeStep {
                step: "endpoint".into(),
                ok: true,
                detail: "reachable".into(),
            },
            ProbeStep {
                step: "list".into(),
                ok: false,
                detail: "bucket `backup.example` does not exist (check the location's bucket name and region)".into(),
            },
        ],
        ..ok
    };
    both("location_test_failed", |f| output::location_test(&failed, f));
}

#[test]
fn credential_list() {
    let r = ListCredentialsResponse {
        credentials: credentials(),
        linearizable: true,
    };
    both("credential_list", |f| output::credential_list(&r, f));
}

#[test]
fn credential_added_and_removed() {
    for (i, name) in [(1, "credential_added_static"), (3, "credential_added_role")] {
        let r = AddCredentialResponse {
            credential: Some(credentials()[i].clone()),
        };
        both(name, |f| output::credential_added(&r, f));
    }
    let r = RemoveCredentialResponse {
        removed: Some(credentials()[0].clone()),
    };
    both("credential_removed", |f| output::credential_removed("chain", &r, f));
}

// ---------------------------------------------------------------- jobs

fn spec(op: JobOp, src: (&str, &str), dst: (&str, &str)) -> JobSpec {
    JobSpec {
        op: op as i32,
        src_location: src.0.into(),
        src_path: src.1.into(),
        dst_location: dst.0.into(),
        dst_path: dst.1.into(),
        ..Default::default()
    }
}

/// A running copy with filters and a rate limit, a finished sync with warnings, a failed move.
fn job_views() -> Vec<JobView> {
    let mut running_spec = spec(JobOp::Copy, ("photos", "2024/"), ("backup", "photos/2024/"));
    running_spec.tier = "plus".into();
    running_spec.verify = "etag".into();
    running_spec.rules = vec![
        FilterRule {
            include: false,
            glob: "tmp/**".into(),
        },
        FilterRule {
            include: true,
            glob: "**/*.jpg".into(),
        },
    ];
    running_spec.bwlimit_bytes_per_sec = 50 << 20;
    let running = Job {
        id: "j-3f2a9c01d4e5".into(),
        spec: Some(running_spec),
        state: JobState::Running as i32,
        owner: "root".into(),
        created_at_ms: T0 + 600_000,
        started_at_ms: T0 + 601_000,
        updated_at_ms: T0 + 661_000,
        counters: Some(JobCounters {
            objects_total: 12_000,
            bytes_total: 48 << 30,
            objects_done: 3_000,
            bytes_done: 12 << 30,
            objects_skipped: 150,
            bytes_skipped: 300 << 20,
            objects_failed: 1,
            bytes_failed: 4 << 20,
            ..Default::default()
        }),
        next_task_id: 40,
        nodes_used: vec![17, 981_237, 2_251_799_813_685_247],
        open_tasks: 30,
        tasks_total: 39,
        submitted_via: 17,
        failures: vec![ObjectFailure {
            key: "2024/03/broken.jpg".into(),
            error: "access denied: GetObject (check the location's credential and the bucket policy)".into(),
        }],
        ..Default::default()
    };
    let mut sync_spec = spec(JobOp::Sync, ("edge", ""), ("backup", "edge/"));
    sync_spec.delete = true;
    let synced = Job {
        id: "j-00aa11bb22cc".into(),
        spec: Some(sync_spec),
        state: JobState::CompletedWithWarnings as i32,
        owner: "root".into(),
        created_at_ms: T0,
        started_at_ms: T0 + 1_000,
        ended_at_ms: T0 + 246_000,
        updated_at_ms: T0 + 246_000,
        paused_ms: 5_000,
        counters: Some(JobCounters {
            objects_total: 1_232,
            bytes_total: 1_288_490_189,
            objects_done: 1_200,
            bytes_done: 1_200_000_000,
            objects_skipped: 30,
            bytes_skipped: 88_000_000,
            objects_failed: 2,
            bytes_failed: 490_189,
            objects_deleted: 7,
        }),
        nodes_used: vec![17, 981_237],
        tasks_total: 12,
        warnings: 2,
        recopied: 3,
        report_key: "reports:jobs/j-00aa11bb22cc.jsonl".into(),
        submitted_via: 981_237,
        failures: vec![
            ObjectFailure {
                key: "a/b.bin".into(),
                error: "data mismatch for `a/b.bin`: size 10 != 12".into(),
            },
            ObjectFailure {
                key: "c.txt".into(),
                error: "throttled by the store: SlowDown".into(),
            },
        ],
        ..Default::default()
    };
    let mut move_spec = spec(JobOp::Move, ("photos", "inbox/"), ("edge", "archive/"));
    move_spec.dry_run = true;
    let failed = Job {
        id: "j-ffee00112233".into(),
        spec: Some(move_spec),
        state: JobState::Failed as i32,
        owner: "root".into(),
        created_at_ms: T0 - 3_600_000,
        started_at_ms: 0,
        ended_at_ms: T0 - 3_590_000,
        counters: Some(JobCounters::default()),
        error:
            "task 1 (list) failed: bucket `photos-2024` does not exist (check the location's bucket name and region)"
                .into(),
        submitted_via: 17,
        ..Default::default()
    };
    vec![
        JobView {
            job: Some(running),
            bytes_per_sec: (12u64 << 30) as f64 / 60.0,
            objects_per_sec: 50.0,
            eta_ms: 181_000,
            tasks_running: 6,
            tasks_pending: 24,
            tasks_done: 9,
            nodes_running: vec![17, 981_237],
            now_ms: T0 + 661_000,
            bytes_in_flight: 512 << 20,
        },
        JobView {
            job: Some(synced),
            bytes_per_sec: 1_200_000_000.0 / 240.0,
            objects_per_sec: 5.0,
            eta_ms: 0,
            tasks_done: 12,
            now_ms: T0 + 661_000,
            ..Default::default()
        },
        JobView {
            job: Some(failed),
            now_ms: T0 + 661_000,
            ..Default::default()
        },
    ]
}

#[test]
fn job_list() {
    let r = ListJobsResponse {
        jobs: job_views(),
        linearizable: true,
    };
    both("job_list", |f| output::job_list(&r, f));
    let local = ListJobsResponse {
        jobs: vec![],
        linearizable: false,
    };
    both("job_list_empty_local", |f| output::job_list(&local, f));
}

#[test]
fn job_submitted() {
    let mut job = job_views()[0].job.clone().unwrap();
    job.state = JobState::Queued as i32;
    job.started_at_ms = 0;
    job.counters = Some(JobCounters::default());
    job.nodes_used = vec![];
    job.failures = vec![];
    job.open_tasks = 1;
    job.tasks_total = 1;
    both("job_submitted", |f| output::job_submitted(&job, f));
    check("job_submitted_note.txt", &output::job_submitted_note(&job));
}

#[test]
fn job_show_is_json() {
    for (i, name) in [(0, "job_show_running.json"), (1, "job_show_synced.json")] {
        let text = output::job_show(&job_views()[i], true);
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        check(name, &text);
        for key in [
            "id",
            "state",
            "counters",
            "bytes_per_sec",
            "eta_ms",
            "nodes_used",
            "created_at_ms",
            "started_at_ms",
            "ended_at_ms",
            "error",
            "failures",
            "linearizable",
        ] {
            assert!(v.get(key).is_some(), "{name}: no {key}");
        }
    }
}

#[test]
fn job_summaries_and_progress() {
    let views = job_views();
    both("job_summary_synced", |f| output::job_summary(&views[1], f));
    check("job_summary_failed.txt", &output::job_summary(&views[2], Format::Table));
    check(
        "job_summary_running.txt",
        &output::job_summary(&views[0], Format::Table),
    );
    let lines: String = views.iter().map(output::job_progress_line).collect();
    check("job_progress_lines.txt", &lines);
}

#[test]
fn job_control_and_logs() {
    let mut v = job_views()[0].clone();
    let job = v.job.as_mut().unwrap();
    job.state = JobState::Paused as i32;
    both("job_paused", |f| output::job_controlled(JobAction::Pause, &v, f));
    v.job.as_mut().unwrap().state = JobState::Cancelling as i32;
    check(
        "job_cancelling.txt",
        &output::job_controlled(JobAction::Cancel, &v, Format::Table),
    );
    v.job.as_mut().unwrap().state = JobState::Running as i32;
    check(
        "job_resumed.txt",
        &output::job_controlled(JobAction::Resume, &v, Format::Table),
    );

    let events = vec![
        JobEvent {
            at_ms: T0,
            node_id: 17,
            text: "submitted".into(),
        },
        JobEvent {
            at_ms: T0 + 1_000,
            node_id: 0,
            text: "planning: listing the source".into(),
        },
        JobEvent {
            at_ms: T0 + 1_000,
            node_id: 2_251_799_813_685_247,
            text: "task 1 (list) assigned to node 2251799813685247 (epoch 1)".into(),
        },
        JobEvent {
            at_ms: T0 + 246_000,
            node_id: 0,
            text: "completed with 2 warnings".into(),
        },
    ];
    both("job_logs", |f| output::job_logs("j-00aa11bb22cc", &events, f));
}

#[test]
fn operator_workers() {
    let w = |name: &str, scope: &str, state: &str, runs: u64, failures: u64, error: &str| WorkerStatus {
        name: name.into(),
        scope: scope.into(),
        state: state.into(),
        period_ms: 500,
        runs,
        failures,
        started_at_ms: 1_709_210_000_000,
        last_run_at_ms: if runs == 0 { 0 } else { 1_709_210_096_000 },
        last_duration_ms: 3,
        last_error: error.into(),
        last_error_at_ms: if failures == 0 { 0 } else { 1_709_210_095_500 },
    };
    let leader = ListWorkersResponse {
        node_id: 7,
        is_leader: true,
        workers: vec![
            w("autopilot", "leader", "idle", 190, 0, ""),
            w("heartbeat", "node", "idle", 200, 0, ""),
            w(
                "job-scheduler",
                "leader",
                "busy",
                191,
                2,
                "the cluster has no leader right now",
            ),
        ],
    };
    both("operator_workers", |f| output::workers(&leader, f));
    let follower = ListWorkersResponse {
        node_id: 8,
        is_leader: false,
        workers: vec![
            w("autopilot", "leader", "stopped", 0, 0, ""),
            w("heartbeat", "node", "idle", 12, 0, ""),
        ],
    };
    both("operator_workers_follower", |f| output::workers(&follower, f));
}
