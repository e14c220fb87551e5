//! `node list [--local]` and `node remove ID`.

use mesh_proto::v1::{ListNodesRequest, RemoveNodeRequest};

use super::session::{consistency, Session};
use crate::cli::GlobalArgs;
use crate::errors::CliError;
use crate::output;

/// `node list [--local]`.
pub async fn node_list(g: &GlobalArgs, local: bool) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let req = ListNodesRequest {
        consistency: consistency(local),
    };
    let resp = s.clients.cluster.list_nodes(req).await.map_err(|e| s.fail(e))?;
    Ok(output::node_list(resp.get_ref(), g.output))
}

/// `node remove ID`: looks the node up (local read, best effort), removes it, says what it removed.
pub async fn node_remove(g: &GlobalArgs, id: u64) -> Result<String, CliError> {
    if id == 0 {
        return Err(CliError::usage("node id 0 does not exist").with_hint("see `meshctl node list`"));
    }
    let mut s = Session::open(g).await?;
    let known = s
        .clients
        .cluster
        .list_nodes(ListNodesRequest {
            consistency: consistency(true),
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().nodes.into_iter().find(|n| n.id == id));
    s.clients
        .cluster
        .remove_node(RemoveNodeRequest { id })
        .await
        .map_err(|e| s.fail(e))?;
    Ok(output::node_removed(id, known.as_ref(), g.output))
}
