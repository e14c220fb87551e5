//! `--join` alone adds a node to a running 3-node mesh through a follower (forwarded to the
//! leader): with voter target 5 it is promoted (learner, then voter); with target 3 it stays a
//! learner.

use std::collections::BTreeSet;
use std::time::Duration;

use mesh_tests::wait::holds_for;
use mesh_tests::{wait_for, TestCluster};

#[test]
fn join_through_follower_with_target_5_becomes_voter() {
    let mut c = TestCluster::start_new(3);
    let li = c.leader_index();
    let followers: Vec<usize> = (0..3).filter(|&i| i != li).collect();
    c.set_setting_eventually(li, "stabilization_time", "3s", Duration::from_secs(10));
    c.set_setting_eventually(li, "leader_grace", "1s", Duration::from_secs(10));
    c.set_setting_eventually(li, "voter_target", "5", Duration::from_secs(10));

    let a = c.join_node(followers[0]);
    let ida = c.node_id(a);
    // Watch a's role: it must show up as a learner before it is a voter.
    let mut roles = Vec::<String>::new();
    let b = c.join_node(followers[1]);
    let idb = c.node_id(b);
    wait_for(
        "both new nodes to become voters (5 voters)",
        Duration::from_secs(45),
        || {
            let st = c.status(li).map_err(|o| o.describe())?;
            if let Some(n) = st.node(ida) {
                if roles.last() != Some(&n.role) {
                    roles.push(n.role.clone());
                }
            }
            let v = st.voters();
            if v.len() == 5 && v.contains(&ida) && v.contains(&idb) {
                Ok(())
            } else {
                Err(st.summary())
            }
        },
    );
    eprintln!("roles of the 4th node over time: {roles:?}");
    let pos_l = roles.iter().position(|r| r == "learner");
    let pos_v = roles.iter().position(|r| r == "voter");
    assert!(
        matches!((pos_l, pos_v), (Some(l), Some(v)) if l < v),
        "the 4th node must be seen as learner, then voter: {roles:?}"
    );
    let agreed = c.wait_leader(Duration::from_secs(20));
    let st = c.status(a).map_err(|o| o.describe()).unwrap();
    assert_eq!(st.leader_id, agreed);
    assert_eq!(st.voter_target, 5);
}

#[test]
fn join_through_follower_with_target_3_stays_learner() {
    let mut c = TestCluster::start_new(3);
    let li = c.leader_index();
    let f = (0..3).find(|&i| i != li).unwrap();
    c.set_setting_eventually(li, "stabilization_time", "1s", Duration::from_secs(10));
    c.set_setting_eventually(li, "leader_grace", "1s", Duration::from_secs(10));
    let voters_before: BTreeSet<u64> = (0..3).map(|i| c.node_id(i)).collect();

    let a = c.join_node(f);
    let ida = c.node_id(a);
    wait_for("the 4th node to be an active learner", Duration::from_secs(30), || {
        let st = c.status(li).map_err(|o| o.describe())?;
        match st.node(ida) {
            Some(n) if n.is_learner() && n.state == "active" => Ok(()),
            _ => Err(st.summary()),
        }
    });
    // Well past stabilization_time it is still a learner and the voters are unchanged.
    holds_for(Duration::from_secs(5), || {
        let st = c.status(li).map_err(|o| o.describe())?;
        let v: BTreeSet<u64> = st.voters().into_iter().collect();
        let n = st
            .node(ida)
            .ok_or_else(|| format!("4th node vanished: {}", st.summary()))?;
        if n.is_learner() && v == voters_before {
            Ok(())
        } else {
            Err(st.summary())
        }
    })
    .unwrap_or_else(|e| panic!("with voter target 3 the 4th node must stay a learner: {e}"));
    // It replicates: a new write reaches it, and it serves reads of the replicated state.
    c.set_setting_eventually(f, "leader_grace", "2s", Duration::from_secs(10));
    let commit = c.status(li).map_err(|o| o.describe()).unwrap().commit_index;
    c.wait_applied(a, commit, Duration::from_secs(20));
    c.wait_setting(a, "leader_grace", "2s", true, Duration::from_secs(10));
    let st = c.status_local(a).map_err(|o| o.describe()).unwrap();
    assert_eq!(st.leader_id, c.node_id(li));
    // The leader's view of the learner's applied index follows too.
    wait_for(
        "the leader to report the learner's applied index",
        Duration::from_secs(20),
        || {
            let st = c.status(li).map_err(|o| o.describe())?;
            match st.node(ida) {
                Some(n) if n.applied_index >= commit => Ok(()),
                _ => Err(st.summary()),
            }
        },
    );
}
