//! `node list` / `node remove` rendering, and the node table and JSON shape that `cluster status`
//! reuses.

use mesh_proto::v1::{ListNodesResponse, NodeStatus};
use serde::Serialize;

use super::format::{dash, duration_ms, json, stale_note, table, Format};

#[derive(Serialize)]
pub(crate) struct NodeJson<'a> {
    id: u64,
    addr: &'a str,
    region: &'a str,
    zone: &'a str,
    role: String,
    state: String,
    last_contact_ms: i64,
    applied_index: u64,
    version: &'a str,
}

impl<'a> From<&'a NodeStatus> for NodeJson<'a> {
    fn from(n: &'a NodeStatus) -> Self {
        NodeJson {
            id: n.id,
            addr: &n.addr,
            region: &n.region,
            zone: &n.zone,
            role: n.role.to_lowercase(),
            state: n.state.to_lowercase(),
            last_contact_ms: n.last_contact_ms,
            applied_index: n.applied_index,
            version: &n.version,
        }
    }
}

/// `node list`.
pub fn node_list(r: &ListNodesResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            nodes: Vec<NodeJson<'a>>,
            linearizable: bool,
        }
        return json(&J {
            nodes: r.nodes.iter().map(NodeJson::from).collect(),
            linearizable: r.linearizable,
        });
    }
    let mut out = node_table(&r.nodes, 0);
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `node remove ID`; `node` is what the cluster knew about it just before, if anything.
pub fn node_removed(id: u64, node: Option<&NodeStatus>, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            removed: u64,
            node: Option<NodeJson<'a>>,
        }
        return json(&J {
            removed: id,
            node: node.map(NodeJson::from),
        });
    }
    match node {
        Some(n) => format!(
            "removed node {id} ({}, {} {}, region {}, zone {})\n",
            dash(&n.addr),
            dash(&n.role.to_lowercase()),
            dash(&n.state.to_lowercase()),
            dash(&n.region),
            dash(&n.zone)
        ),
        None => format!("removed node {id}\n"),
    }
}

/// The node table of `node list` and `cluster status`; `leader` (if not 0) is marked.
pub(crate) fn node_table(nodes: &[NodeStatus], leader: u64) -> String {
    let rows = nodes
        .iter()
        .map(|n| {
            let mut role = dash(&n.role.to_lowercase());
            if leader != 0 && n.id == leader {
                role.push_str(" (leader)");
            }
            vec![
                n.id.to_string(),
                dash(&n.addr),
                dash(&n.region),
                dash(&n.zone),
                role,
                dash(&n.state.to_lowercase()),
                duration_ms(n.last_contact_ms),
                n.applied_index.to_string(),
                dash(&n.version),
            ]
        })
        .collect();
    let headers = [
        "ID",
        "ADDRESS",
        "REGION",
        "ZONE",
        "ROLE",
        "STATE",
        "LAST CONTACT",
        "APPLIED",
        "VERSION",
    ];
    table(&headers, rows)
}
