//! `credential add|list|remove`: `credential add` takes its secret from a flag, stdin or the
//! environment (never echoed) and checks the request before connecting.

use mesh_proto::rules;
use mesh_proto::v1::{AddCredentialRequest, CredentialKind, ListCredentialsRequest, RemoveCredentialRequest};

use super::session::{consistency, name_arg, Session};
use crate::cli::{CredentialAddArgs, GlobalArgs};
use crate::errors::CliError;
use crate::output;

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
