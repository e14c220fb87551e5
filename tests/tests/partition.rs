//! A follower cut off by the fault proxies cannot commit; once healed it converges.

use std::time::Duration;

use mesh_tests::TestCluster;

#[test]
fn partitioned_follower_cannot_commit_and_converges_after_heal() {
    let c = TestCluster::start_new(3);
    let li = c.leader_index();
    let f = (0..3).find(|&i| i != li).unwrap();
    c.set_setting_eventually(li, "leader_grace", "11s", Duration::from_secs(10));
    c.wait_setting(f, "leader_grace", "11s", true, Duration::from_secs(10));

    c.partition(f);

    // A write through the isolated follower must not commit (error or meshctl deadline).
    let r = c.set_setting_timeout(f, "leader_grace", "66s", Duration::from_secs(15));
    match &r {
        Ok(()) => panic!("a write through a partitioned follower reported success"),
        Err(o) => eprintln!("partitioned write refused as expected: {}", o.describe()),
    }

    // The majority keeps working.
    let majority: Vec<usize> = (0..3).filter(|&i| i != f).collect();
    let l2 = c.wait_leader_among(&majority);
    let l2i = c.index_of(l2).unwrap();
    let lv = c
        .get_setting(l2i, "leader_grace", false)
        .map_err(|o| o.describe())
        .unwrap();
    assert_ne!(lv, "66s", "the partitioned follower's write reached the majority");
    c.set_setting_eventually(l2i, "leader_grace", "22s", Duration::from_secs(15));
    let fv = c
        .get_setting(f, "leader_grace", true)
        .map_err(|o| o.describe())
        .unwrap();
    assert_ne!(
        fv, "22s",
        "the partitioned follower applied a write it cannot have received"
    );

    c.heal_all();
    let want = c
        .get_setting(l2i, "leader_grace", false)
        .map_err(|o| o.describe())
        .unwrap();
    c.wait_setting(f, "leader_grace", &want, true, Duration::from_secs(30));
    c.wait_leader(Duration::from_secs(30));
    // And it can commit again.
    c.set_setting_eventually(f, "leader_grace", "33s", Duration::from_secs(20));
    for i in 0..3 {
        c.wait_setting(i, "leader_grace", "33s", true, Duration::from_secs(10));
    }
}
