//! One function per subcommand; [`run`] dispatches a parsed command line.
//!
//! RPC commands resolve the connection settings (flags > env > config file), connect, make one
//! call (two for `node remove`, which first looks the node up to say what it removed), and
//! write the rendered response to `out`. Every failure comes back as a [`CliError`].

use std::io::Write;

use mesh_proto::rules;
use mesh_proto::v1::{
    AddCredentialRequest, AddLocationRequest, CredentialKind, GetLocationRequest, GetSettingRequest, JobAction, JobOp,
    ListCredentialsRequest, ListLocationsRequest, ListNodesRequest, ListSettingsRequest, Location, LocationKind,
    ReadConsistency, RemoveCredentialRequest, RemoveLocationRequest, RemoveNodeRequest, SetSettingRequest,
    StatusRequest, TestLocationRequest, TransferLeaderRequestPublic,
};
use tonic::Status;

use crate::cli::{
    Cli, ClusterCommand, Command, CredentialAddArgs, CredentialCommand, GlobalArgs, JobCommand, LocationAddArgs,
    LocationCommand, NodeCommand, SettingCommand, TlsCaCommand, TlsCertCommand, TlsCommand,
};
use crate::client::{connect, ClientOpts, Clients};
use crate::errors::{from_status_with_ca, CliError};
use crate::jobs;
use crate::output;
use mesh_pki::{NodeCertRequest, TlsError};

/// Runs one parsed command line, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let g = &cli.global;
    let text = match cli.command {
        Command::Tls(TlsCommand::Ca(TlsCaCommand::Create { dir, force, days })) => {
            output::ca_created(&mesh_pki::create_ca(&dir, force, days).map_err(tls_error)?, g.output)
        }
        Command::Tls(TlsCommand::Cert(TlsCertCommand::Create {
            dir,
            node,
            ips,
            dns,
            days,
        })) => {
            let req = NodeCertRequest { node, ips, dns, days };
            output::cert_created(&mesh_pki::create_node_cert(&dir, &req).map_err(tls_error)?, g.output)
        }
        Command::Cluster(ClusterCommand::Status { local }) => cluster_status(g, local).await?,
        Command::Cluster(ClusterCommand::TransferLeader { to }) => transfer_leader(g, to).await?,
        Command::Node(NodeCommand::List { local }) => node_list(g, local).await?,
        Command::Node(NodeCommand::Remove { id }) => node_remove(g, id).await?,
        Command::Setting(SettingCommand::Set { name, value }) => setting_set(g, name, value).await?,
        Command::Setting(SettingCommand::Get { name, local }) => setting_get(g, name, local).await?,
        Command::Setting(SettingCommand::List { local }) => setting_list(g, local).await?,
        Command::Location(LocationCommand::Add(a)) => location_add(g, a).await?,
        Command::Location(LocationCommand::List { local }) => location_list(g, local).await?,
        Command::Location(LocationCommand::Show { name, local }) => location_show(g, name, local).await?,
        Command::Location(LocationCommand::Remove { name }) => location_remove(g, name).await?,
        Command::Location(LocationCommand::Test { name }) => {
            // The report is printed whatever the outcome; a failed step makes the exit code 1.
            let (text, ok) = location_test(g, name.clone()).await?;
            write_out(out, &text)?;
            if !ok {
                return Err(CliError::failed(format!(
                    "location `{name}` failed its test (see the steps above)"
                )));
            }
            return Ok(());
        }
        Command::Credential(CredentialCommand::Add(a)) => {
            let secret = secret_input(&a, &mut std::io::stdin().lock(), |k| std::env::var(k).ok())?;
            credential_add(g, a, secret).await?
        }
        Command::Credential(CredentialCommand::List { local }) => credential_list(g, local).await?,
        Command::Credential(CredentialCommand::Remove { name }) => credential_remove(g, name).await?,
        Command::Cp(a) => return jobs::transfer(g, JobOp::Copy, a, false, out).await,
        Command::Mv(a) => return jobs::transfer(g, JobOp::Move, a, false, out).await,
        Command::Sync(a) => return jobs::transfer(g, JobOp::Sync, a.transfer, a.delete, out).await,
        Command::Job(JobCommand::List { state, local }) => jobs::job_list(g, state, local).await?,
        Command::Job(JobCommand::Show { id, local }) => jobs::job_show(g, id, local).await?,
        Command::Job(JobCommand::Watch { id }) => return jobs::job_watch(g, id, out).await,
        Command::Job(JobCommand::Pause { id }) => jobs::job_control(g, id, JobAction::Pause).await?,
        Command::Job(JobCommand::Resume { id }) => jobs::job_control(g, id, JobAction::Resume).await?,
        Command::Job(JobCommand::Cancel { id }) => jobs::job_control(g, id, JobAction::Cancel).await?,
        Command::Job(JobCommand::Logs { id }) => jobs::job_logs(g, id).await?,
        Command::Job(JobCommand::Report { id, max_bytes }) => return jobs::job_report(g, id, max_bytes, out).await,
    };
    write_out(out, &text)
}

pub(crate) fn write_out(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
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
pub(crate) struct Session {
    pub(crate) clients: Clients,
    pub(crate) opts: ClientOpts,
}

impl Session {
    pub(crate) async fn open(g: &GlobalArgs) -> Result<Session, CliError> {
        let file = crate::config::load_default()?;
        let opts = crate::config::resolve(g, file.as_ref())?;
        let clients = connect(&opts).await?;
        Ok(Session { clients, opts })
    }

    pub(crate) fn fail(&self, status: Status) -> CliError {
        from_status_with_ca(&status, &self.clients.addr, Some(&self.opts.cacert))
    }
}

pub(crate) fn consistency(local: bool) -> i32 {
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

// ------------------------------------------------------------------------------------------
// locations
// ------------------------------------------------------------------------------------------

/// Credential a location uses when `--credential` is not given.
pub const DEFAULT_CREDENTIAL: &str = "default";

/// Builds the Location of `location add` and checks it as the cluster will (usage error on bad
/// input: exit 2). Whether its credential exists is for the cluster to say.
pub fn location_from_args(a: &LocationAddArgs) -> Result<Location, CliError> {
    let mut l = Location {
        name: a.name.clone(),
        ..Default::default()
    };
    match (&a.s3, &a.fs) {
        (Some(s3), None) => {
            let s3 = s3.strip_prefix("s3://").unwrap_or(s3);
            let (bucket, prefix) = s3.split_once('/').unwrap_or((s3, ""));
            l.kind = LocationKind::S3 as i32;
            l.bucket = bucket.to_string();
            l.prefix = prefix.to_string();
            l.region = a.region.clone().unwrap_or_default();
            l.endpoint = a.endpoint.clone().unwrap_or_default();
            l.path_style = a.path_style;
            l.credential = a.credential.clone().unwrap_or_else(|| DEFAULT_CREDENTIAL.to_string());
            l.storage_class = a.storage_class.clone().unwrap_or_default();
            l.sse = match a.sse.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None => String::new(),
                Some("aes256") => "AES256".into(),
                Some("aws:kms") | Some("kms") => "aws:kms".into(),
                Some(other) => {
                    return Err(CliError::usage(format!("--sse {other}: expected aes256 or aws:kms")));
                }
            };
            l.kms_key_id = a.kms_key.clone().unwrap_or_default();
        }
        (None, Some(path)) => {
            let s3_only = [
                ("--region", a.region.is_some()),
                ("--endpoint", a.endpoint.is_some()),
                ("--path-style", a.path_style),
                ("--credential", a.credential.is_some()),
                ("--storage-class", a.storage_class.is_some()),
                ("--sse", a.sse.is_some()),
                ("--kms-key", a.kms_key.is_some()),
            ];
            if let Some((flag, _)) = s3_only.iter().find(|(_, set)| *set) {
                return Err(CliError::usage(format!(
                    "{flag} applies to --s3 locations only, not to --fs"
                )));
            }
            l.kind = LocationKind::Fs as i32;
            l.fs_path = path.clone();
        }
        _ => return Err(CliError::usage("give exactly one of --s3 BUCKET[/PREFIX] or --fs PATH")),
    }
    rules::normalize_location(&l).map_err(|e| {
        let hint = if l.kind == LocationKind::Fs as i32 {
            "an fs location is a directory with the same absolute path on every node"
        } else {
            "see `meshctl location add --help`"
        };
        CliError::usage(e).with_hint(hint)
    })
}

/// `location add NAME (--s3 ... | --fs PATH)`.
pub async fn location_add(g: &GlobalArgs, a: LocationAddArgs) -> Result<String, CliError> {
    let location = location_from_args(&a)?;
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .location
        .add(AddLocationRequest {
            location: Some(location),
            replace: a.replace,
        })
        .await
        .map_err(|e| s.fail(e))?;
    Ok(output::location_added(resp.get_ref(), g.output))
}

/// `location list [--local]`.
pub async fn location_list(g: &GlobalArgs, local: bool) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let req = ListLocationsRequest {
        consistency: consistency(local),
    };
    let resp = s.clients.location.list(req).await.map_err(|e| s.fail(e))?;
    Ok(output::location_list(resp.get_ref(), g.output))
}

/// `location show NAME [--local]`.
pub async fn location_show(g: &GlobalArgs, name: String, local: bool) -> Result<String, CliError> {
    name_arg("location", &name)?;
    let mut s = Session::open(g).await?;
    let req = GetLocationRequest {
        name,
        consistency: consistency(local),
    };
    let resp = s.clients.location.get(req).await.map_err(|e| s.fail(e))?;
    Ok(output::location_show(resp.get_ref(), g.output))
}

/// `location remove NAME`.
pub async fn location_remove(g: &GlobalArgs, name: String) -> Result<String, CliError> {
    name_arg("location", &name)?;
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .location
        .remove(RemoveLocationRequest { name: name.clone() })
        .await
        .map_err(|e| s.fail(e))?;
    Ok(output::location_removed(&name, resp.get_ref(), g.output))
}

/// `location test NAME`: the rendered report and whether every step passed.
pub async fn location_test(g: &GlobalArgs, name: String) -> Result<(String, bool), CliError> {
    name_arg("location", &name)?;
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .location
        .test(TestLocationRequest { name })
        .await
        .map_err(|e| s.fail(e))?;
    let r = resp.into_inner();
    Ok((output::location_test(&r, g.output), r.ok))
}

fn name_arg(what: &str, name: &str) -> Result<(), CliError> {
    rules::validate_name(what, name).map_err(CliError::usage)
}

// ------------------------------------------------------------------------------------------
// credentials
// ------------------------------------------------------------------------------------------

/// Secrets of `credential add`, from flags, stdin or the environment (never echoed).
#[derive(Default)]
pub struct SecretInput {
    pub secret_access_key: String,
    pub session_token: String,
}

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretInput(<redacted>)")
    }
}

/// Env var read for the secret access key when no flag gives it.
pub const SECRET_ENV: &str = "MESH_SECRET_ACCESS_KEY";
/// Env var read for the session token when no flag gives it.
pub const SESSION_TOKEN_ENV: &str = "MESH_SESSION_TOKEN";

/// Where the secret comes from: `--secret-access-key`, else `--secret-access-key-stdin` (first
/// line), else `$MESH_SECRET_ACCESS_KEY`; the session token from `--session-token` or
/// `$MESH_SESSION_TOKEN`. Only for static keys (`--access-key-id`).
pub fn secret_input(
    a: &CredentialAddArgs,
    stdin: &mut dyn std::io::BufRead,
    env: impl Fn(&str) -> Option<String>,
) -> Result<SecretInput, CliError> {
    if a.access_key_id.is_none() {
        return Ok(SecretInput::default());
    }
    let secret_access_key = if let Some(s) = &a.secret_access_key {
        s.clone()
    } else if a.secret_access_key_stdin {
        let mut line = String::new();
        stdin
            .read_line(&mut line)
            .map_err(|e| CliError::failed(format!("cannot read the secret access key from stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        env(SECRET_ENV).unwrap_or_default()
    };
    if secret_access_key.is_empty() {
        return Err(
            CliError::usage("--access-key-id needs a secret access key").with_hint(format!(
            "set {SECRET_ENV}, pass --secret-access-key-stdin, or --secret-access-key Y (visible in the process list)"
        )),
        );
    }
    let session_token = a
        .session_token
        .clone()
        .or_else(|| env(SESSION_TOKEN_ENV))
        .unwrap_or_default();
    Ok(SecretInput {
        secret_access_key,
        session_token,
    })
}

/// The AddCredential request of `credential add` (usage error on bad input: exit 2).
pub fn credential_request(a: &CredentialAddArgs, secret: SecretInput) -> Result<AddCredentialRequest, CliError> {
    name_arg("credential", &a.name)?;
    let mut req = AddCredentialRequest {
        name: a.name.clone(),
        replace: a.replace,
        ..Default::default()
    };
    if a.default_chain {
        req.kind = CredentialKind::DefaultChain as i32;
    } else if let Some(id) = &a.access_key_id {
        req.kind = CredentialKind::Static as i32;
        req.access_key_id = id.trim().to_string();
        if req.access_key_id.is_empty() || !req.access_key_id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(CliError::usage(
                "--access-key-id must be printable ASCII without spaces",
            ));
        }
        req.secret_access_key = secret.secret_access_key;
        req.session_token = secret.session_token;
    } else if let Some(arn) = &a.assume_role {
        req.kind = CredentialKind::AssumeRole as i32;
        req.role_arn = arn.clone();
        req.external_id = a.external_id.clone().unwrap_or_default();
        req.via = a.via.clone().unwrap_or_default();
        let probe = mesh_proto::v1::Credential {
            name: req.name.clone(),
            kind: req.kind,
            role_arn: req.role_arn.clone(),
            external_id: req.external_id.clone(),
            via: req.via.clone(),
            ..Default::default()
        };
        rules::validate_credential(&probe).map_err(CliError::usage)?;
    } else {
        return Err(CliError::usage(
            "give one of --default-chain, --access-key-id X, or --assume-role ARN",
        ));
    }
    Ok(req)
}

/// `credential add NAME ...`.
pub async fn credential_add(g: &GlobalArgs, a: CredentialAddArgs, secret: SecretInput) -> Result<String, CliError> {
    let req = credential_request(&a, secret)?;
    let mut s = Session::open(g).await?;
    let resp = s.clients.credential.add(req).await.map_err(|e| s.fail(e))?;
    Ok(output::credential_added(resp.get_ref(), g.output))
}

/// `credential list [--local]`.
pub async fn credential_list(g: &GlobalArgs, local: bool) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let req = ListCredentialsRequest {
        consistency: consistency(local),
    };
    let resp = s.clients.credential.list(req).await.map_err(|e| s.fail(e))?;
    Ok(output::credential_list(resp.get_ref(), g.output))
}

/// `credential remove NAME`.
pub async fn credential_remove(g: &GlobalArgs, name: String) -> Result<String, CliError> {
    name_arg("credential", &name)?;
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .credential
        .remove(RemoveCredentialRequest { name: name.clone() })
        .await
        .map_err(|e| s.fail(e))?;
    Ok(output::credential_removed(&name, resp.get_ref(), g.output))
}
