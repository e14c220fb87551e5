//! Five nodes with voter target 3: two learners; a dead voter is replaced by a learner and
//! removed after `dead_voter_grace`; `meshctl node remove ID` removes a node by hand.

use std::time::Duration;

use mesh_tests::{wait_for, Status, TestCluster};

fn leader_status(c: &TestCluster) -> Result<Status, String> {
    let live = c.live();
    let mut last = String::new();
    for i in live {
        match c.status(i) {
            Ok(st) => return Ok(st),
            Err(o) => last = o.describe(),
        }
    }
    Err(last)
}

#[test]
fn five_nodes_target_3_dead_voter_replaced_and_manual_remove() {
    let mut c = TestCluster::start_new(3);
    let li = c.leader_index();
    for (k, v) in [
        ("leader_grace", "2s"),
        ("stabilization_time", "1s"),
        ("node_ttl", "2s"),
        ("dead_voter_grace", "3s"),
    ] {
        c.set_setting_eventually(li, k, v, Duration::from_secs(10));
    }
    let f = (0..3).find(|&i| i != li).unwrap();
    let a = c.join_node(f);
    let b = c.join_node(li);
    let (ida, idb) = (c.node_id(a), c.node_id(b));

    let st = wait_for(
        "5 nodes: 3 voters and the 2 new nodes as active learners",
        Duration::from_secs(40),
        || {
            let st = leader_status(&c)?;
            let ok = st.nodes.len() == 5
                && st.voters().len() == 3
                && st.learners() == {
                    let mut v = vec![ida, idb];
                    v.sort();
                    v
                }
                && st.nodes.iter().all(|n| n.state == "active");
            if ok {
                Ok(st)
            } else {
                Err(st.summary())
            }
        },
    );
    eprintln!("before: {}", st.summary());

    // Kill a voter that is not the leader.
    let leader = c.leader();
    let victim_id = *st.voters().iter().find(|&&id| id != leader).unwrap();
    let victim = c.index_of(victim_id).unwrap();
    c.kill9(victim);

    let st = wait_for(
        "the dead voter to be removed and a learner promoted (3 voters again)",
        Duration::from_secs(45),
        || {
            let st = leader_status(&c)?;
            let gone = st.node(victim_id).is_none_or(|n| n.is_gone());
            let voters = st.voters();
            let promoted = voters.contains(&ida) || voters.contains(&idb);
            if gone && voters.len() == 3 && !voters.contains(&victim_id) && promoted {
                Ok(st)
            } else {
                Err(st.summary())
            }
        },
    );
    eprintln!("after the dead voter: {}", st.summary());

    // Remove the remaining learner by hand.
    let learner_id = *[ida, idb].iter().find(|id| !st.voters().contains(id)).unwrap();
    let via = c.leader_index();
    c.ctl_ok(via, &["node", "remove", &learner_id.to_string()]);
    let st = wait_for(
        "the removed learner to leave the node list",
        Duration::from_secs(20),
        || {
            let st = leader_status(&c)?;
            if st.node(learner_id).is_none_or(|n| n.is_gone()) {
                Ok(st)
            } else {
                Err(st.summary())
            }
        },
    );
    assert_eq!(st.voters().len(), 3, "{}", st.summary());
    let li = c.index_of(learner_id).unwrap();
    c.kill9(li);
    c.wait_leader(Duration::from_secs(20));
}
