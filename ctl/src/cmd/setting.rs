//! `setting set NAME VALUE`, `setting get NAME [--local]` and `setting list [--local]`.

use mesh_proto::v1::{GetSettingRequest, ListSettingsRequest, SetSettingRequest};

use super::session::{consistency, Session};
use crate::cli::GlobalArgs;
use crate::errors::CliError;
use crate::output;

/// `setting set NAME VALUE`.
pub async fn setting_set(g: &GlobalArgs, name: String, value: String) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .cluster
        .set_setting(SetSettingRequest { name, value })
        .await
        .map_err(|e| s.fail(e))?;
    Ok(output::setting_set(resp.get_ref(), g.output))
}

/// `setting get NAME [--local]`.
pub async fn setting_get(g: &GlobalArgs, name: String, local: bool) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let req = GetSettingRequest {
        name,
        consistency: consistency(local),
    };
    let resp = s.clients.cluster.get_setting(req).await.map_err(|e| s.fail(e))?;
    Ok(output::setting_get(resp.get_ref(), g.output))
}

/// `setting list [--local]`.
pub async fn setting_list(g: &GlobalArgs, local: bool) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let req = ListSettingsRequest {
        consistency: consistency(local),
    };
    let resp = s.clients.cluster.list_settings(req).await.map_err(|e| s.fail(e))?;
    Ok(output::setting_list(resp.get_ref(), g.output))
}
