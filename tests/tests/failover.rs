//! Leader failure: kill -9 (a new leader is elected, writes through a follower commit, the old
//! node catches up after a restart) and SIGTERM (clean exit 0, leadership moves).

use std::time::{Duration, Instant};

use mesh_tests::TestCluster;

/// Election window allowed after the leader dies (election timeout is 1 s in the harness).
const ELECTION_WINDOW: Duration = Duration::from_secs(10);

#[test]
fn kill9_leader_elects_new_leader_and_old_node_catches_up() {
    let mut c = TestCluster::start_new(3);
    let old = c.leader();
    let li = c.index_of(old).unwrap();
    c.set_setting_eventually(li, "leader_grace", "11s", Duration::from_secs(10));

    c.kill9(li);
    let t0 = Instant::now();
    let new = c.wait_new_leader(old, ELECTION_WINDOW);
    eprintln!("new leader {new} after {:?}", t0.elapsed());
    let ni = c.index_of(new).unwrap();
    assert_ne!(ni, li);

    // A write proposed to the surviving follower is forwarded and commits.
    let follower = (0..3).find(|&i| i != li && i != ni).unwrap();
    c.set_setting_eventually(follower, "leader_grace", "12s", Duration::from_secs(10));
    assert_eq!(
        c.get_setting(ni, "leader_grace", false)
            .map_err(|o| o.describe())
            .unwrap(),
        "12s"
    );
    assert_eq!(
        c.get_setting(follower, "leader_grace", false)
            .map_err(|o| o.describe())
            .unwrap(),
        "12s"
    );
    let commit = c.status(ni).map_err(|o| o.describe()).unwrap().commit_index;

    // The old leader restarts from its data dir and catches up.
    c.restart(li);
    c.wait_applied(li, commit, Duration::from_secs(30));
    c.wait_setting(li, "leader_grace", "12s", true, Duration::from_secs(30));
    let agreed = c.wait_leader(Duration::from_secs(30));
    let st = c.status(li).map_err(|o| o.describe()).unwrap();
    assert_eq!(st.leader_id, agreed);
    assert_eq!(
        st.voters().len(),
        3,
        "the old leader is still a voter: {}",
        st.summary()
    );
}

#[test]
fn sigterm_on_leader_exits_zero_promptly_and_leadership_moves() {
    let mut c = TestCluster::start_new(3);
    let old = c.leader();
    let li = c.index_of(old).unwrap();
    let t0 = Instant::now();
    let st = c.sigterm(li, Duration::from_secs(15));
    let took = t0.elapsed();
    assert_eq!(
        st.code(),
        Some(0),
        "meshd must exit 0 on SIGTERM, got {st:?}; log:\n{}",
        c.last_run_log(li)
    );
    assert!(took < Duration::from_secs(10), "SIGTERM drain took {took:?}");
    eprintln!("SIGTERM exit after {took:?}");

    let new = c.wait_new_leader(old, ELECTION_WINDOW);
    let ni = c.index_of(new).unwrap();
    c.set_setting_eventually(ni, "leader_grace", "13s", Duration::from_secs(10));
    let other = (0..3).find(|&i| i != li && i != ni).unwrap();
    c.wait_setting(other, "leader_grace", "13s", true, Duration::from_secs(10));
}
