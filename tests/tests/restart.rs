//! Full-cluster kill -9 and restart: a leader is elected again and no acknowledged write is lost.

use std::time::Duration;

use mesh_tests::TestCluster;

#[test]
fn full_cluster_kill9_and_restart_loses_no_committed_write() {
    let mut c = TestCluster::start_new(3);
    let before = c.status(0).map_err(|o| o.describe()).unwrap();
    let mut writes: Vec<(&str, String)> = vec![
        ("dead_voter_grace", "120s".into()),
        ("stabilization_time", "13s".into()),
        ("node_ttl", "14s".into()),
    ];
    for (k, (name, v)) in writes.iter().enumerate() {
        c.set_setting_eventually(k % 3, name, v, Duration::from_secs(10));
    }
    let mut last = String::new();
    for k in 0..15 {
        last = format!("{}ms", 30_000 + k);
        c.set_setting_eventually(k % 3, "leader_grace", &last, Duration::from_secs(10));
    }
    writes.push(("leader_grace", last));

    for i in 0..3 {
        c.kill9(i);
    }
    for i in 0..3 {
        c.restart(i);
    }
    c.wait_ready(Duration::from_secs(45));

    let after = c.status(0).map_err(|o| o.describe()).unwrap();
    assert_eq!(after.cluster_id, before.cluster_id);
    let mut b: Vec<u64> = before.nodes.iter().map(|n| n.id).collect();
    let mut a: Vec<u64> = after.nodes.iter().map(|n| n.id).collect();
    b.sort();
    a.sort();
    assert_eq!(a, b, "same members after restart: {}", after.summary());
    for (name, v) in &writes {
        for i in 0..3 {
            let got = c.get_setting(i, name, false).map_err(|o| o.describe()).unwrap();
            assert_eq!(&got, v, "node {i}: {name} after full restart");
            c.wait_setting(i, name, v, true, Duration::from_secs(10));
        }
    }
}
