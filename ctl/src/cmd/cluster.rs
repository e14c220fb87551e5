//! `cluster status [--local]` and `cluster transfer-leader [--to ID]`.

use mesh_proto::v1::{StatusRequest, TransferLeaderRequestPublic};

use super::session::{consistency, Session};
use crate::cli::GlobalArgs;
use crate::errors::CliError;
use crate::output;

/// `cluster status [--local]`.
pub async fn cluster_status(g: &GlobalArgs, local: bool) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let req = StatusRequest {
        consistency: consistency(local),
    };
    let resp = s.clients.cluster.status(req).await.map_err(|e| s.fail(e))?;
    Ok(output::cluster_status(resp.get_ref(), g.output))
}

/// `cluster transfer-leader [--to ID]`.
pub async fn transfer_leader(g: &GlobalArgs, to: Option<u64>) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let req = TransferLeaderRequestPublic { to: to.unwrap_or(0) };
    let resp = s.clients.cluster.transfer_leader(req).await.map_err(|e| s.fail(e))?;
    Ok(output::transfer_leader(resp.get_ref(), g.output))
}
