//! A 3-node mesh bootstraps with `--bootstrap-expect 3` and every node agrees on one leader.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use mesh_tests::{wait_for, TestCluster};

#[test]
fn three_node_bootstrap_agrees_on_one_leader() {
    let c = TestCluster::start_new(3);
    let ids: Vec<u64> = (0..3).map(|i| c.node_id(i)).collect();
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 3, "node ids must be distinct: {ids:?}");
    for id in &ids {
        assert!(*id >= 1 && *id < (1u64 << 53), "node id {id} must be in 1..2^53");
    }

    let leader = c.leader();
    assert!(ids.contains(&leader), "leader {leader} is not one of {ids:?}");

    // Every node's own view and every node's linearizable answer name the same leader and cluster.
    let mut cluster_id = None;
    for i in 0..3 {
        let local = c
            .status_local(i)
            .unwrap_or_else(|o| panic!("status --local on {i}: {}", o.describe()));
        assert_eq!(local.leader_id, leader, "node {i} local view: {}", local.summary());
        let st = wait_for(
            &format!("node {i}: status listing 3 voters"),
            Duration::from_secs(20),
            || {
                let st = c.status(i).map_err(|o| o.describe())?;
                if st.voters().len() == 3 {
                    Ok(st)
                } else {
                    Err(st.summary())
                }
            },
        );
        assert_eq!(st.leader_id, leader, "node {i}: {}", st.summary());
        assert!(
            st.linearizable,
            "status without --local must be linearizable: {}",
            st.summary()
        );
        assert!(!st.cluster_id.is_empty(), "empty cluster_id: {}", st.raw);
        let mut listed: Vec<u64> = st.nodes.iter().map(|n| n.id).collect();
        listed.sort();
        assert_eq!(listed, uniq, "node {i} lists other nodes: {}", st.summary());
        for n in &st.nodes {
            let idx = c.index_of(n.id).unwrap();
            assert_eq!(
                n.addr,
                c.advertise(idx),
                "node {} must be listed at its advertised address",
                n.id
            );
        }
        match &cluster_id {
            None => cluster_id = Some(st.cluster_id.clone()),
            Some(cid) => assert_eq!(&st.cluster_id, cid, "cluster ids differ between nodes"),
        }
        assert_eq!(st.voter_target, 3, "default voter_target: {}", st.raw);
    }

    // Readiness: grpc.health.v1 reports SERVING for service "" on every node (a leader is known).
    for i in 0..3 {
        let addr = c.node(i).listen;
        let ca = c.ca();
        let tok = c.token();
        let r = c.rt().block_on(mesh_tests::grpc::health(addr, &ca, Some(&tok)));
        match r {
            Ok(s) => assert_eq!(s, "SERVING", "node {i} health"),
            Err(e) => panic!("node {i}: grpc.health.v1 Check failed: {e:#}"),
        }
    }

    // Only the root token's SHA-256 may be logged, never the token itself.
    let tok = c.token();
    for i in 0..3 {
        assert!(
            !c.log_text(i).contains(&tok),
            "node {i} logged the root token: {}",
            c.node(i).log.display()
        );
    }

    // The root token was written once, by the node that bootstrapped, mode 0600.
    let holders: Vec<usize> = (0..3).filter(|&i| c.read_root_token(i).is_some()).collect();
    assert_eq!(
        holders.len(),
        1,
        "exactly one node writes <data-dir>/root-token, got {holders:?}"
    );
    let p = c.node(holders[0]).data_dir.join("root-token");
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", p.display());
}
