//! `cluster status` and `cluster transfer-leader` rendering.

use mesh_proto::v1::{StatusResponse, TransferLeaderResponsePublic};
use serde::Serialize;

use super::format::{consistency, dash, fields, json, Format};
use super::node::{node_table, NodeJson};

#[derive(Serialize)]
struct StatusJson<'a> {
    cluster_id: &'a str,
    leader_id: u64,
    term: u64,
    commit_index: u64,
    served_by: u64,
    linearizable: bool,
    voter_target: u32,
    nodes: Vec<NodeJson<'a>>,
}

/// `cluster status`.
pub fn cluster_status(r: &StatusResponse, format: Format) -> String {
    if format == Format::Json {
        return json(&StatusJson {
            cluster_id: &r.cluster_id,
            leader_id: r.leader_id,
            term: r.term,
            commit_index: r.commit_index,
            served_by: r.served_by,
            linearizable: r.linearizable,
            voter_target: r.voter_target,
            nodes: r.nodes.iter().map(NodeJson::from).collect(),
        });
    }
    let name_of = |id: u64| match r.nodes.iter().find(|n| n.id == id) {
        Some(n) if !n.addr.is_empty() => format!("{id} ({})", n.addr),
        _ => id.to_string(),
    };
    let leader = if r.leader_id == 0 {
        "none (election in progress or quorum lost)".to_string()
    } else {
        name_of(r.leader_id)
    };
    let mut out = fields(&[
        ("cluster id", dash(&r.cluster_id)),
        ("leader", leader),
        ("term", r.term.to_string()),
        ("commit index", r.commit_index.to_string()),
        ("served by", name_of(r.served_by)),
        ("linearizable", consistency(r.linearizable)),
        ("voter target", r.voter_target.to_string()),
    ]);
    out.push('\n');
    out.push_str(&node_table(&r.nodes, r.leader_id));
    out
}

/// `cluster transfer-leader`.
pub fn transfer_leader(r: &TransferLeaderResponsePublic, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J {
            new_leader: u64,
        }
        return json(&J {
            new_leader: r.new_leader,
        });
    }
    format!("leadership transferred to node {}\n", r.new_leader)
}
