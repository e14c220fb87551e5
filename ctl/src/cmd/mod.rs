//! The commands, one module per resource; [`run`] dispatches a parsed command line.
//!
//! RPC commands resolve the connection settings (flags > env > config file), connect, make one
//! call (two for `node remove`, which first looks the node up to say what it removed), and
//! write the rendered response to `out`. Every failure comes back as a [`CliError`].
//!
//! - [`session`]: the connection and helpers every RPC command shares.
//! - [`cluster`], [`node`], [`setting`], [`location`], [`credential`], [`operator`], [`tls`]: one function per
//!   subcommand, returning the rendered text.
//! - [`job`]: `cp`, `mv`, `sync` and `job ...`; [`job::watch`] is the `--wait` / `job watch` loop.
//! - [`docs`]: `completion` and `man`, generated from the command line definition.

pub mod cluster;
pub mod credential;
pub mod docs;
pub mod job;
pub mod location;
pub mod node;
pub mod operator;
pub mod session;
pub mod setting;
pub mod tls;

use std::io::Write;

use mesh_pki::NodeCertRequest;
use mesh_proto::v1::{JobAction, JobOp};

use crate::cli::{
    Cli, ClusterCommand, Command, CredentialCommand, JobCommand, LocationCommand, NodeCommand, OperatorCommand,
    SettingCommand, TlsCaCommand, TlsCertCommand, TlsCommand,
};
use crate::errors::CliError;
use session::write_out;

/// Runs one parsed command line, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let g = &cli.global;
    let text = match cli.command {
        Command::Tls(TlsCommand::Ca(TlsCaCommand::Create { dir, force, days })) => {
            tls::ca_create(&dir, force, days, g.output)?
        }
        Command::Tls(TlsCommand::Cert(TlsCertCommand::Create {
            dir,
            node,
            ips,
            dns,
            days,
        })) => tls::cert_create(&dir, &NodeCertRequest { node, ips, dns, days }, g.output)?,
        Command::Cluster(ClusterCommand::Status { local }) => cluster::cluster_status(g, local).await?,
        Command::Cluster(ClusterCommand::TransferLeader { to }) => cluster::transfer_leader(g, to).await?,
        Command::Node(NodeCommand::List { local }) => node::node_list(g, local).await?,
        Command::Node(NodeCommand::Remove { id }) => node::node_remove(g, id).await?,
        Command::Setting(SettingCommand::Set { name, value }) => setting::setting_set(g, name, value).await?,
        Command::Setting(SettingCommand::Get { name, local }) => setting::setting_get(g, name, local).await?,
        Command::Setting(SettingCommand::List { local }) => setting::setting_list(g, local).await?,
        Command::Location(LocationCommand::Add(a)) => location::location_add(g, a).await?,
        Command::Location(LocationCommand::List { local }) => location::location_list(g, local).await?,
        Command::Location(LocationCommand::Show { name, local }) => location::location_show(g, name, local).await?,
        Command::Location(LocationCommand::Remove { name }) => location::location_remove(g, name).await?,
        Command::Location(LocationCommand::Test { name }) => {
            // The report is printed whatever the outcome; a failed step makes the exit code 1.
            let (text, ok) = location::location_test(g, name.clone()).await?;
            write_out(out, &text)?;
            if !ok {
                return Err(CliError::failed(format!(
                    "location `{name}` failed its test (see the steps above)"
                )));
            }
            return Ok(());
        }
        Command::Credential(CredentialCommand::Add(a)) => {
            let secret = credential::secret_input(&a, &mut std::io::stdin().lock(), |k| std::env::var(k).ok())?;
            credential::credential_add(g, a, secret).await?
        }
        Command::Credential(CredentialCommand::List { local }) => credential::credential_list(g, local).await?,
        Command::Credential(CredentialCommand::Remove { name }) => credential::credential_remove(g, name).await?,
        Command::Cp(a) => return job::transfer(g, JobOp::Copy, a, false, out).await,
        Command::Mv(a) => return job::transfer(g, JobOp::Move, a, false, out).await,
        Command::Sync(a) => return job::transfer(g, JobOp::Sync, a.transfer, a.delete, out).await,
        Command::Job(JobCommand::List { state, local }) => job::job_list(g, state, local).await?,
        Command::Job(JobCommand::Show { id, local }) => job::job_show(g, id, local).await?,
        Command::Job(JobCommand::Watch { id }) => return job::job_watch(g, id, out).await,
        Command::Job(JobCommand::Pause { id }) => job::job_control(g, id, JobAction::Pause).await?,
        Command::Job(JobCommand::Resume { id }) => job::job_control(g, id, JobAction::Resume).await?,
        Command::Job(JobCommand::Cancel { id }) => job::job_control(g, id, JobAction::Cancel).await?,
        Command::Job(JobCommand::Logs { id }) => job::job_logs(g, id).await?,
        Command::Job(JobCommand::Report { id, max_bytes }) => return job::job_report(g, id, max_bytes, out).await,
        Command::Operator(OperatorCommand::Workers { local }) => operator::workers(g, local).await?,
        Command::Completion { shell } => return docs::completion(shell, out),
        Command::Man { dir } => docs::man(&dir)?,
    };
    write_out(out, &text)
}
