//! One function per subcommand; [`run`] dispatches a parsed command line.
//!
//! RPC commands resolve the connection settings (flags > env > config file), connect, make one
//! call (two for `node remove`, which first looks the node up to say what it removed), and
//! write the rendered response to `out`. Every failure comes back as a [`CliError`].

use std::io::Write;

use mesh_proto::v1::{
    GetSettingRequest, ListNodesRequest, ListSettingsRequest, ReadConsistency, RemoveNodeRequest, SetSettingRequest,
    StatusRequest, TransferLeaderRequestPublic,
};
use tonic::Status;

use crate::cli::{
    Cli, ClusterCommand, Command, GlobalArgs, NodeCommand, SettingCommand, TlsCaCommand, TlsCertCommand, TlsCommand,
};
use crate::client::{connect, ClientOpts, Clients};
use crate::errors::{from_status_with_ca, CliError};
use crate::output;
use crate::tls::{self, NodeCertRequest, TlsError};

/// Runs one parsed command line, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let g = &cli.global;
    let text = match cli.command {
        Command::Tls(TlsCommand::Ca(TlsCaCommand::Create { dir, force, days })) => {
            output::ca_created(&tls::create_ca(&dir, force, days).map_err(tls_error)?, g.output)
        }
        Command::Tls(TlsCommand::Cert(TlsCertCommand::Create {
            dir,
            node,
            ips,
            dns,
            days,
        })) => {
            let req = NodeCertRequest { node, ips, dns, days };
            output::cert_created(&tls::create_node_cert(&dir, &req).map_err(tls_error)?, g.output)
        }
        Command::Cluster(ClusterCommand::Status { local }) => cluster_status(g, local).await?,
        Command::Cluster(ClusterCommand::TransferLeader { to }) => transfer_leader(g, to).await?,
        Command::Node(NodeCommand::List { local }) => node_list(g, local).await?,
        Command::Node(NodeCommand::Remove { id }) => node_remove(g, id).await?,
        Command::Setting(SettingCommand::Set { name, value }) => setting_set(g, name, value).await?,
        Command::Setting(SettingCommand::Get { name, local }) => setting_get(g, name, local).await?,
        Command::Setting(SettingCommand::List { local }) => setting_list(g, local).await?,
    };
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::failed(format!("cannot write the output: {e}")))
        }
        _ => Ok(()),
    }
}

fn tls_error(e: TlsError) -> CliError {
    let hint = e.hint();
    let base = if e.is_usage() {
        CliError::usage(e.to_string())
    } else {
        CliError::failed(e.to_string())
    };
    match hint {
        Some(h) => base.with_hint(h),
        None => base,
    }
}

/// A connection plus what is needed to explain its failures.
struct Session {
    clients: Clients,
    opts: ClientOpts,
}

impl Session {
    async fn open(g: &GlobalArgs) -> Result<Session, CliError> {
        let file = crate::config::load_default()?;
        let opts = crate::config::resolve(g, file.as_ref())?;
        let clients = connect(&opts).await?;
        Ok(Session { clients, opts })
    }

    fn fail(&self, status: Status) -> CliError {
        from_status_with_ca(&status, &self.clients.addr, Some(&self.opts.cacert))
    }
}

fn consistency(local: bool) -> i32 {
    if local {
        ReadConsistency::Local
    } else {
        ReadConsistency::Linearizable
    }
    .into()
}

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
