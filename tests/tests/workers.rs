//! Background workers through the real binaries (`meshctl operator workers`):
//! - every node runs its node-scope workers; only the leader runs the leader duties;
//! - asked through a follower, the leader answers (the call is relayed);
//! - after a leadership transfer the old leader's duties stop and the new leader's start;
//! - a duty that fails shows its failures and last error (a follower cut off from the leader).

use std::time::Duration;

use mesh_tests::TestCluster;
use serde_json::Value;

const LEADER_DUTIES: [&str; 4] = ["autopilot", "cluster-init", "job-scheduler", "liveness"];
const NODE_DUTIES: [&str; 5] = ["cluster-identity", "data-key", "heartbeat", "node-record", "observer"];

/// `meshctl operator workers -o json [--local]` against node `i`.
fn workers(c: &TestCluster, i: usize, local: bool) -> Value {
    let mut args = vec!["operator", "workers"]; // c.ctl asks for JSON
    if local {
        args.push("--local");
    }
    let o = c.ctl(i, &args);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

fn worker<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("no worker {name} in {v}"))
}

/// Whether every leader duty of `v` runs (and has run) and every node duty runs.
fn leading(v: &Value) -> bool {
    v["is_leader"] == true
        && LEADER_DUTIES.iter().all(|n| {
            let w = worker(v, n);
            w["state"] != "stopped" && w["runs"].as_u64().unwrap() > 0 && w["scope"] == "leader"
        })
        && NODE_DUTIES.iter().all(|n| worker(v, n)["state"] != "stopped")
}

/// Whether `v` is a follower's board: node duties run, leader duties stopped.
fn following(v: &Value) -> bool {
    v["is_leader"] == false
        && LEADER_DUTIES.iter().all(|n| worker(v, n)["state"] == "stopped")
        && NODE_DUTIES.iter().all(|n| {
            let w = worker(v, n);
            w["state"] != "stopped" && w["runs"].as_u64().unwrap() > 0 && w["scope"] == "node"
        })
}

#[test]
fn leader_duties_run_on_the_leader_only_and_follow_leadership() {
    let c = TestCluster::start_new(3);
    let leader = c.leader();
    let li = c.index_of(leader).unwrap();
    let fi = (0..3).find(|&i| i != li).unwrap();

    // Through a follower, the leader's board comes back.
    let mut v = Value::Null;
    c.wait_until("the leader's duties run", Duration::from_secs(20), || {
        v = workers(&c, fi, false);
        leading(&v)
    });
    assert_eq!(v["node_id"].as_u64(), Some(leader), "{v}");
    assert_eq!(
        v["workers"].as_array().unwrap().len(),
        LEADER_DUTIES.len() + NODE_DUTIES.len()
    );

    // The follower's own board: leader duties stopped.
    let local = workers(&c, fi, true);
    assert!(following(&local), "{local}");
    assert_ne!(local["node_id"].as_u64(), Some(leader));

    // Hand leadership to the follower: its duties start, the old leader's stop.
    let follower_id = local["node_id"].as_u64().unwrap();
    let o = c.ctl(li, &["cluster", "transfer-leader", "--to", &follower_id.to_string()]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    c.wait_until("the new leader's duties run", Duration::from_secs(20), || {
        leading(&workers(&c, fi, true))
    });
    c.wait_until("the old leader's duties stop", Duration::from_secs(20), || {
        following(&workers(&c, li, true))
    });
    // Leader duties that ran on the old leader keep their counts: the board is per node.
    let old = workers(&c, li, true);
    assert!(worker(&old, "job-scheduler")["runs"].as_u64().unwrap() > 0, "{old}");
}

#[test]
fn a_failing_duty_shows_its_failures_and_last_error() {
    let c = TestCluster::start_new(3);
    let li = c.leader_index();
    let fi = (0..3).find(|&i| i != li).unwrap();
    let before = workers(&c, fi, true);
    assert_eq!(worker(&before, "heartbeat")["last_error_at_ms"], 0, "{before}");

    // Cut the leader off: the follower's heartbeats to it fail, and its board says so.
    c.partition(li);
    let mut v = Value::Null;
    c.wait_until("a failed heartbeat on the board", Duration::from_secs(20), || {
        v = workers(&c, fi, true);
        let hb = worker(&v, "heartbeat");
        hb["failures"].as_u64().unwrap() > 0 && hb["last_error_at_ms"].as_u64().unwrap() > 0
    });
    c.heal_all();
    let hb = worker(&v, "heartbeat");
    assert!(hb["runs"].as_u64().unwrap() >= hb["failures"].as_u64().unwrap(), "{v}");
}
