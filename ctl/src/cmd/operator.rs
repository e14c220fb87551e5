//! `operator workers [--local]`: the background workers of the leader (or of the contacted node).

use mesh_proto::v1::ListWorkersRequest;

use super::session::Session;
use crate::cli::GlobalArgs;
use crate::errors::CliError;
use crate::output;

/// `operator workers [--local]`.
pub async fn workers(g: &GlobalArgs, local: bool) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .cluster
        .list_workers(ListWorkersRequest { local })
        .await
        .map_err(|e| s.fail(e))?;
    Ok(output::workers(resp.get_ref(), g.output))
}
