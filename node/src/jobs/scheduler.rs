//! The leader's job scheduler, the `job-scheduler` worker (leader only; a pass whenever an entry
//! was applied — a submit, a report with planned or ended tasks, a release — and every 500 ms as
//! a safety net):
//! 1. takes back the tasks of nodes judged down (or gone), so they resume elsewhere from their
//!    checkpoints — only after the leader-grace period, like every liveness judgement;
//! 2. assigns pending tasks to nodes with free slots (`worker.slots` each, all jobs together),
//!    round-robin over jobs so concurrent jobs all progress, keeping each job within the node
//!    count of its tier and preferring nodes in the destination's region, then the source's, then
//!    (for a part of a split object) nodes holding fewer parts of that object, then the least
//!    loaded. All assignments of a tick go in one AssignTasks command.
//!
//! Pure planning ([`plan`]) is separate from the proposal so it can be tested without a cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mesh_proto::v1::{self as pb, NodeState, TaskState};
use mesh_raft::{jobs, settings, StateReader};

use std::time::Duration;

use crate::background::{Scope, WorkError, Worker};
use crate::cluster::duties::{grace_over, TICK};
use crate::error::ApiError;
use crate::node::{now_ms, Node};

/// The `job-scheduler` worker.
pub struct JobScheduler;

#[tonic::async_trait]
impl Worker for JobScheduler {
    fn name(&self) -> &'static str {
        "job-scheduler"
    }
    fn scope(&self) -> Scope {
        Scope::Leader
    }
    fn period(&self) -> Duration {
        TICK
    }
    fn wakes_on_apply(&self) -> bool {
        true
    }
    async fn work(&self, node: &Node) -> Result<(), WorkError> {
        tick(node, grace_over(node)).await?;
        Ok(())
    }
}

/// One pass of the scheduler (leader only).
pub async fn tick(node: &Node, grace_over: bool) -> Result<(), ApiError> {
    if grace_over {
        release_dead(node).await?;
    }
    let assignments = plan(&node.state, &live_nodes(&node.state), now_ms());
    if assignments.is_empty() {
        return Ok(());
    }
    node.write(pb::Command {
        at_ms: 0,
        kind: Some(pb::command::Kind::AssignTasks(pb::AssignTasks { assignments })),
    })
    .await?;
    Ok(())
}

/// Nodes that may take tasks: known, not down, draining or gone.
fn live_nodes(state: &StateReader) -> Vec<pb::NodeRecord> {
    state
        .nodes()
        .into_iter()
        .filter(|n| matches!(n.state(), NodeState::Active | NodeState::Joining))
        .collect()
}

async fn release_dead(node: &Node) -> Result<(), ApiError> {
    let dead: BTreeSet<u64> = node
        .state
        .tasks_where(|t| t.state == TaskState::Assigned as i32)
        .into_iter()
        .map(|t| t.node_id)
        .filter(|id| {
            node.state
                .node(*id)
                .is_none_or(|n| matches!(n.state(), NodeState::Down | NodeState::Left))
        })
        .collect();
    for id in dead {
        let reason = match node.state.node(id) {
            Some(n) if n.state() == NodeState::Down => format!("node {id} is down ({})", n.state_reason),
            _ => format!("node {id} left the cluster"),
        };
        tracing::warn!(node = id, "taking back the tasks of a dead node");
        node.write(pb::Command {
            at_ms: 0,
            kind: Some(pb::command::Kind::ReleaseTasks(pb::ReleaseTasks {
                node_id: id,
                reason,
            })),
        })
        .await?;
    }
    Ok(())
}

/// The assignments to make now.
pub fn plan(state: &StateReader, nodes: &[pb::NodeRecord], now: u64) -> Vec<pb::Assignment> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let default_slots = settings::u32_setting(state, settings::WORKER_SLOTS);
    let mut free: BTreeMap<u64, i64> = nodes
        .iter()
        .map(|n| {
            let slots = if n.capacity_slots > 0 {
                n.capacity_slots
            } else {
                default_slots
            };
            (n.id, slots as i64)
        })
        .collect();
    let all = state.tasks_where(|_| true);
    // Load per node, and nodes per job, from current assignments.
    // A job's nodes: those it has used (the tier limit counts them over the whole job, not just
    // at one moment), minus nodes no longer live (their place may be refilled), plus current
    // assignments.
    let live: BTreeSet<u64> = nodes.iter().map(|n| n.id).collect();
    let mut job_nodes: HashMap<String, BTreeSet<u64>> = state
        .jobs()
        .into_iter()
        .map(|j| (j.id, j.nodes_used.into_iter().filter(|n| live.contains(n)).collect()))
        .collect();
    // Part tasks of one split object held by each node: its parts are spread over nodes (the
    // point of splitting is to use several nodes' bandwidth), as far as free slots allow.
    let mut group_load: HashMap<(String, u64, u64), i64> = HashMap::new();
    for t in all.iter().filter(|t| t.state == TaskState::Assigned as i32) {
        if let Some(f) = free.get_mut(&t.node_id) {
            *f -= 1;
        }
        job_nodes.entry(t.job_id.clone()).or_default().insert(t.node_id);
        if t.kind == pb::TaskKind::PartCopy as i32 {
            *group_load.entry((t.job_id.clone(), t.group, t.node_id)).or_default() += 1;
        }
    }
    // Pending tasks per assignable job, oldest job first.
    let mut jobs_list: Vec<pb::Job> = state
        .jobs()
        .into_iter()
        .filter(|j| jobs::assignable_job_state(j.state))
        .collect();
    jobs_list.sort_by_key(|j| (j.created_at_ms, j.id.clone()));
    let mut queues: Vec<(pb::Job, std::collections::VecDeque<pb::Task>)> = jobs_list
        .into_iter()
        .map(|j| {
            let q: std::collections::VecDeque<pb::Task> = all
                .iter()
                .filter(|t| t.job_id == j.id && t.state == TaskState::Pending as i32 && t.not_before_ms <= now)
                .cloned()
                .collect();
            (j, q)
        })
        .filter(|(_, q)| !q.is_empty())
        .collect();
    let region_of = |loc: &str| state.location(loc).map(|l| l.region).unwrap_or_default();
    let mut out = Vec::new();
    loop {
        let mut progressed = false;
        for (job, q) in queues.iter_mut() {
            let Some(task) = q.front() else { continue };
            let spec = job.spec.clone().unwrap_or_default();
            let limit = settings::tier_nodes(state, &spec.tier).max(1) as usize;
            let used = job_nodes.entry(job.id.clone()).or_default();
            let (dst_region, src_region) = (region_of(&spec.dst_location), region_of(&spec.src_location));
            let candidate = nodes
                .iter()
                .filter(|n| free.get(&n.id).copied().unwrap_or(0) > 0)
                .filter(|n| used.contains(&n.id) || used.len() < limit)
                .min_by_key(|n| {
                    let region_rank = if !dst_region.is_empty() && n.region == dst_region {
                        0
                    } else if !src_region.is_empty() && n.region == src_region {
                        1
                    } else {
                        2
                    };
                    let same_group = if task.kind == pb::TaskKind::PartCopy as i32 {
                        group_load
                            .get(&(task.job_id.clone(), task.group, n.id))
                            .copied()
                            .unwrap_or(0)
                    } else {
                        0
                    };
                    (region_rank, same_group, -free.get(&n.id).copied().unwrap_or(0), n.id)
                })
                .map(|n| n.id);
            let Some(node_id) = candidate else { continue };
            out.push(pb::Assignment {
                job_id: task.job_id.clone(),
                task_id: task.id,
                node_id,
            });
            if task.kind == pb::TaskKind::PartCopy as i32 {
                *group_load
                    .entry((task.job_id.clone(), task.group, node_id))
                    .or_default() += 1;
            }
            q.pop_front();
            used.insert(node_id);
            *free.get_mut(&node_id).expect("candidate") -= 1;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_raft::{AppliedState, Tables};

    fn node(id: u64, region: &str) -> pb::NodeRecord {
        pb::NodeRecord {
            id,
            region: region.into(),
            state: NodeState::Active as i32,
            ..Default::default()
        }
    }

    fn state(jobs_: &[(&str, &str, usize)], nodes: &[pb::NodeRecord], slots: &str) -> StateReader {
        let mut t = Tables::default();
        for n in nodes {
            t.nodes.insert(n.id, n.clone());
        }
        t.settings.insert(
            settings::WORKER_SLOTS.into(),
            pb::Setting {
                name: settings::WORKER_SLOTS.into(),
                value: slots.into(),
                updated_at_ms: 0,
            },
        );
        for (name, region) in [("src", "us-east-1"), ("dst", "eu-west-1")] {
            t.locations.insert(
                name.into(),
                pb::Location {
                    name: name.into(),
                    region: region.into(),
                    ..Default::default()
                },
            );
        }
        for (i, (id, tier, n)) in jobs_.iter().enumerate() {
            t.jobs.insert(
                id.to_string(),
                pb::Job {
                    id: id.to_string(),
                    state: pb::JobState::Running as i32,
                    created_at_ms: i as u64,
                    spec: Some(pb::JobSpec {
                        src_location: "src".into(),
                        dst_location: "dst".into(),
                        tier: tier.to_string(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            );
            for k in 0..*n {
                t.tasks.insert(
                    (id.to_string(), k as u64 + 1),
                    pb::Task {
                        job_id: id.to_string(),
                        id: k as u64 + 1,
                        state: TaskState::Pending as i32,
                        ..Default::default()
                    },
                );
            }
        }
        StateReader::from_state(AppliedState {
            tables: t,
            ..Default::default()
        })
    }

    #[test]
    fn fills_free_slots_preferring_the_destination_region() {
        let nodes = [node(1, "us-east-1"), node(2, "eu-west-1"), node(3, "ap-south-1")];
        let st = state(&[("j1", "plus", 4)], &nodes, "2");
        let a = plan(&st, &nodes, 0);
        assert_eq!(a.len(), 4);
        let per_node: BTreeMap<u64, usize> = a.iter().fold(BTreeMap::new(), |mut m, x| {
            *m.entry(x.node_id).or_default() += 1;
            m
        });
        // Destination region first (2 slots), then the source region.
        assert_eq!(per_node.get(&2), Some(&2));
        assert_eq!(per_node.get(&1), Some(&2));
        assert_eq!(per_node.get(&3), None);
    }

    #[test]
    fn the_parts_of_a_split_object_spread_over_nodes() {
        let nodes: Vec<pb::NodeRecord> = (1..=3).map(|i| node(i, "")).collect();
        let st = state(&[("j1", "plus", 0)], &nodes, "4");
        let mut s = st.snapshot();
        // Node 1 has the most free slots (the others run a task each); three parts of one object
        // (group 7) are pending, then an ordinary copy.
        for (id, kind, state_, node_id) in [
            (1, pb::TaskKind::Copy, TaskState::Assigned, 2),
            (2, pb::TaskKind::Copy, TaskState::Assigned, 3),
            (3, pb::TaskKind::PartCopy, TaskState::Pending, 0),
            (4, pb::TaskKind::PartCopy, TaskState::Pending, 0),
            (5, pb::TaskKind::PartCopy, TaskState::Pending, 0),
            (6, pb::TaskKind::Copy, TaskState::Pending, 0),
        ] {
            s.tables.tasks.insert(
                ("j1".into(), id),
                pb::Task {
                    job_id: "j1".into(),
                    id,
                    kind: kind as i32,
                    state: state_ as i32,
                    node_id,
                    group: if kind == pb::TaskKind::PartCopy { 7 } else { 0 },
                    ..Default::default()
                },
            );
        }
        let a = plan(&StateReader::from_state(s), &nodes, 0);
        let parts: BTreeSet<u64> = a
            .iter()
            .filter(|x| (3..=5).contains(&x.task_id))
            .map(|x| x.node_id)
            .collect();
        assert_eq!(parts.len(), 3, "one part per node while every node has room: {a:?}");
        // The ordinary copy goes to the least loaded node as before.
        assert_eq!(a.iter().find(|x| x.task_id == 6).map(|x| x.node_id), Some(1), "{a:?}");
    }

    #[test]
    fn a_job_stays_within_its_tier() {
        let nodes: Vec<pb::NodeRecord> = (1..=6).map(|i| node(i, "")).collect();
        let st = state(&[("j1", "express", 30)], &nodes, "4");
        let a = plan(&st, &nodes, 0);
        let used: BTreeSet<u64> = a.iter().map(|x| x.node_id).collect();
        assert_eq!(used.len(), 4, "express spreads over at most 4 nodes");
        assert_eq!(a.len(), 16, "4 nodes × 4 slots");
    }

    #[test]
    fn the_tier_counts_nodes_used_earlier_in_the_job() {
        let nodes: Vec<pb::NodeRecord> = (1..=4).map(|i| node(i, "")).collect();
        let st = state(&[("j1", "express", 8)], &nodes, "4");
        let mut s = st.snapshot();
        // Nodes 3 and 4 ran earlier tasks of the job (now done); node 9 is gone.
        s.tables.jobs.get_mut("j1").unwrap().nodes_used = vec![3, 4, 9];
        s.tables.settings.insert(
            settings::TIER_EXPRESS.into(),
            pb::Setting {
                name: settings::TIER_EXPRESS.into(),
                value: "2".into(),
                updated_at_ms: 0,
            },
        );
        let a = plan(&StateReader::from_state(s), &nodes, 0);
        let used: BTreeSet<u64> = a.iter().map(|x| x.node_id).collect();
        assert_eq!(used, BTreeSet::from([3, 4]), "stays on the nodes it already used");
    }

    #[test]
    fn concurrent_jobs_share_the_slots() {
        let nodes = [node(1, ""), node(2, "")];
        let st = state(&[("j1", "plus", 10), ("j2", "plus", 10)], &nodes, "2");
        let a = plan(&st, &nodes, 0);
        let j1 = a.iter().filter(|x| x.job_id == "j1").count();
        let j2 = a.iter().filter(|x| x.job_id == "j2").count();
        assert_eq!((j1, j2), (2, 2));
    }

    #[test]
    fn backoff_and_busy_nodes_wait() {
        let nodes = [node(1, "")];
        let st = state(&[("j1", "plus", 1)], &nodes, "1");
        let mut s = st.snapshot();
        s.tables.tasks.update_all(|t| {
            t.not_before_ms = 5_000;
            true
        });
        let st = StateReader::from_state(s);
        assert!(plan(&st, &nodes, 1_000).is_empty(), "retry backoff not over");
        assert_eq!(plan(&st, &nodes, 5_000).len(), 1);
        assert!(plan(&st, &[], 5_000).is_empty(), "no live node");
    }
}
