//! A node that missed more entries than the leader keeps (`--snapshot-every 20`) catches up,
//! by snapshot, whether it was killed and restarted or frozen with SIGSTOP and continued.

use std::time::Duration;

use mesh_tests::TestCluster;

const WRITES: u64 = 60;

/// Writes WRITES settings through node `via`; returns the last value.
fn write_many(c: &TestCluster, via: usize) -> String {
    let mut last = String::new();
    for k in 0..WRITES {
        last = format!("{}ms", 10_000 + k);
        c.set_setting_eventually(via, "leader_grace", &last, Duration::from_secs(10));
    }
    last
}

/// The lagging node's log since its last start must show it installed a snapshot (meshd logs
/// "installed snapshot ..." from the state machine); the log lines are printed either way.
fn assert_installed_snapshot(c: &TestCluster, i: usize) {
    let log = c.last_run_log(i);
    let lines: Vec<&str> = log.lines().filter(|l| l.to_lowercase().contains("snapshot")).collect();
    eprintln!(
        "node {i}: log lines about snapshots since its last start:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| l.to_lowercase().contains("install")),
        "node {i} caught up without installing a snapshot (the leader compacted at --snapshot-every 20)"
    );
}

#[test]
fn killed_follower_catches_up_by_snapshot_after_compaction() {
    let mut c = TestCluster::builder(3).snapshot_every(20).start();
    let li = c.leader_index();
    let f = (0..3).find(|&i| i != li).unwrap();
    c.kill9(f);
    let last = write_many(&c, li);
    let commit = c.status(li).map_err(|o| o.describe()).unwrap().commit_index;
    assert!(commit >= WRITES, "commit index {commit} after {WRITES} writes");

    c.restart(f);
    c.wait_applied(f, commit, Duration::from_secs(30));
    c.wait_setting(f, "leader_grace", &last, true, Duration::from_secs(10));
    c.wait_leader(Duration::from_secs(20));
    assert_installed_snapshot(&c, f);
}

#[test]
fn sigstopped_follower_catches_up_after_sigcont() {
    let mut c = TestCluster::builder(3).snapshot_every(20).start();
    let li = c.leader_index();
    let f = (0..3).find(|&i| i != li).unwrap();
    c.sigstop(f);
    let last = write_many(&c, li);
    let commit = c.status(li).map_err(|o| o.describe()).unwrap().commit_index;

    c.sigcont(f);
    c.wait_applied(f, commit, Duration::from_secs(30));
    c.wait_setting(f, "leader_grace", &last, true, Duration::from_secs(10));
    c.wait_leader(Duration::from_secs(20));
    assert_installed_snapshot(&c, f);
}
