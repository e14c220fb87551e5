//! The business logic of the state machine: a pure, deterministic function from (tables, command)
//! to (tables', response). It reads no clock (timestamps come from `Command.at_ms`) and does no
//! I/O, so every node computes the same tables from the same log.
//!
//! A refused command leaves the tables unchanged and returns a response with `error` (for humans)
//! and `reason` (a [`Reason`]: `ALREADY_INITIALIZED`, `NOT_FOUND`, `INVALID_ARGUMENT`, and for the
//! configuration and job tables `ALREADY_EXISTS`, `IN_USE`, `FAILED_PRECONDITION`).

use mesh_proto::v1::{self as pb, command::Kind, NodeState};
use mesh_proto::{names, Reason};

use crate::config;
use crate::jobs;
use crate::settings;
use crate::tables::Tables;

/// A refusal of a command by the state machine: why, and what to tell the operator.
pub type Refusal = (Reason, String);

/// A refusal for malformed input.
pub(crate) fn invalid(msg: impl Into<String>) -> Refusal {
    (Reason::InvalidArgument, msg.into())
}

fn ok() -> pb::CommandResponse {
    pb::CommandResponse::default()
}

fn refuse(reason: Reason, error: impl Into<String>) -> pb::CommandResponse {
    pb::CommandResponse {
        error: error.into(),
        reason: reason.to_string(),
        ..Default::default()
    }
}

fn known_state(state: i32) -> bool {
    NodeState::try_from(state).is_ok()
}

/// Applies one command to the tables.
pub fn apply_command(t: &mut Tables, cmd: &pb::Command) -> pb::CommandResponse {
    let at = cmd.at_ms;
    match &cmd.kind {
        None => refuse(
            Reason::InvalidArgument,
            "command has no kind (unknown command, proposed by a newer version?)",
        ),
        Some(Kind::Noop(_)) => ok(),
        Some(Kind::InitCluster(c)) => init_cluster(t, c, at),
        Some(Kind::UpsertNode(u)) => upsert_node(t, u, at),
        Some(Kind::SetNodeState(s)) => set_node_state(t, s, at),
        Some(Kind::SetSetting(s)) => set_setting(t, s, at),
        Some(Kind::DeleteSetting(d)) => delete_setting(t, d),
        Some(Kind::PutLocation(p)) => result(config::put_location(t, p, at)),
        Some(Kind::DeleteLocation(d)) => result(config::delete_location(t, d)),
        Some(Kind::PutCredential(p)) => result(config::put_credential(t, p, at)),
        Some(Kind::DeleteCredential(d)) => result(config::delete_credential(t, d)),
        Some(Kind::SubmitJob(s)) => result(jobs::submit(t, s, at)),
        Some(Kind::AssignTasks(a)) => result(jobs::assign(t, a, at)),
        Some(Kind::ReportTasks(r)) => {
            let attempts = task_attempts(t);
            pb::CommandResponse {
                stale: jobs::report(t, r, at, attempts),
                ..ok()
            }
        }
        Some(Kind::ControlJob(c)) => result(jobs::control(t, c, at)),
        Some(Kind::ReleaseTasks(r)) => result(jobs::release(t, r, at)),
    }
}

/// `job.task_attempts` as applied (the tables, not a reader: apply sees only its own state).
fn task_attempts(t: &Tables) -> u32 {
    t.settings
        .get(settings::JOB_TASK_ATTEMPTS)
        .and_then(|s| s.value.parse().ok())
        .or_else(|| settings::default_of(settings::JOB_TASK_ATTEMPTS).and_then(|d| d.parse().ok()))
        .unwrap_or(5)
}

/// A response from the result of a table operation that leaves the tables unchanged on error.
fn result(r: Result<(), Refusal>) -> pb::CommandResponse {
    match r {
        Ok(()) => ok(),
        Err((reason, error)) => refuse(reason, error),
    }
}

fn init_cluster(t: &mut Tables, c: &pb::InitCluster, at: u64) -> pb::CommandResponse {
    if let Some(existing) = &t.cluster {
        return refuse(
            Reason::AlreadyInitialized,
            format!("cluster already initialized (cluster id {})", existing.cluster_id),
        );
    }
    if c.cluster_id.is_empty() {
        return refuse(Reason::InvalidArgument, "InitCluster needs a non-empty cluster_id");
    }
    t.cluster = Some(pb::ClusterInfo {
        cluster_id: c.cluster_id.clone(),
        root_token_sha256: c.root_token_sha256.clone(),
        created_at_ms: at,
        data_key_sha256: c.data_key_sha256.clone(),
    });
    ok()
}

fn upsert_node(t: &mut Tables, u: &pb::UpsertNode, at: u64) -> pb::CommandResponse {
    let Some(node) = &u.node else {
        return refuse(Reason::InvalidArgument, "UpsertNode without a node record");
    };
    if node.id == 0 {
        return refuse(Reason::InvalidArgument, "node id 0 is not a valid node id");
    }
    if !known_state(node.state) {
        return refuse(
            Reason::InvalidArgument,
            format!("node {}: unknown node state {}", node.id, node.state),
        );
    }
    let mut rec = node.clone();
    match t.nodes.get(&node.id) {
        Some(old) if old.state == NodeState::Left as i32 => {
            return refuse(
                Reason::InvalidArgument,
                format!(
                    "node {} has left the cluster; node ids are never reused, start it with a fresh data dir",
                    node.id
                ),
            );
        }
        Some(old) => {
            rec.joined_at_ms = old.joined_at_ms;
            if rec.state == NodeState::Unspecified as i32 || rec.state == old.state {
                rec.state = old.state;
                rec.state_changed_at_ms = old.state_changed_at_ms;
                if node.state == NodeState::Unspecified as i32 {
                    rec.state_reason = old.state_reason.clone();
                }
            } else {
                rec.state_changed_at_ms = at;
            }
        }
        None => {
            if rec.state == NodeState::Unspecified as i32 {
                rec.state = NodeState::Joining as i32;
            }
            rec.joined_at_ms = at;
            rec.state_changed_at_ms = at;
        }
    }
    t.nodes.insert(rec.id, rec);
    ok()
}

fn set_node_state(t: &mut Tables, s: &pb::SetNodeState, at: u64) -> pb::CommandResponse {
    if !known_state(s.state) || s.state == NodeState::Unspecified as i32 {
        return refuse(
            Reason::InvalidArgument,
            format!("node {}: invalid target state {}", s.node_id, s.state),
        );
    }
    let Some(rec) = t.nodes.get_mut(&s.node_id) else {
        return refuse(Reason::NotFound, format!("node {} not found", s.node_id));
    };
    if rec.state == NodeState::Left as i32 && s.state != NodeState::Left as i32 {
        return refuse(
            Reason::InvalidArgument,
            format!(
                "node {} has left the cluster and cannot become {}; node ids are never reused",
                s.node_id,
                names::node_state(s.state)
            ),
        );
    }
    if rec.state != s.state {
        rec.state = s.state;
        rec.state_changed_at_ms = at;
    }
    rec.state_reason = s.reason.clone();
    ok()
}

fn set_setting(t: &mut Tables, s: &pb::SetSetting, at: u64) -> pb::CommandResponse {
    if let Err(e) = settings::validate(&s.name, &s.value) {
        return refuse(Reason::InvalidArgument, e);
    }
    t.settings.insert(
        s.name.clone(),
        pb::Setting {
            name: s.name.clone(),
            value: s.value.clone(),
            updated_at_ms: at,
        },
    );
    ok()
}

fn delete_setting(t: &mut Tables, d: &pb::DeleteSetting) -> pb::CommandResponse {
    if settings::spec(&d.name).is_none() {
        return refuse(Reason::NotFound, format!("unknown setting {:?}", d.name));
    }
    t.settings.remove(&d.name);
    ok()
}
