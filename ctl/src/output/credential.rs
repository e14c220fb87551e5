//! `credential add|list|remove` rendering: kinds, key ids and where a credential is used, never
//! a secret (the views the cluster returns have none).

use mesh_proto::names::credential_kind as credential_kind_name;
use mesh_proto::v1::{AddCredentialResponse, CredentialView, ListCredentialsResponse, RemoveCredentialResponse};
use serde::Serialize;

use super::format::{dash, json, stale_note, table, timestamp, yes_no, Format};

/// A credential as JSON: kind and key id, never a secret (the view has none to give).
#[derive(Serialize)]
pub(crate) struct CredentialJson<'a> {
    name: &'a str,
    kind: &'static str,
    access_key_id: &'a str,
    has_secret_access_key: bool,
    has_session_token: bool,
    role_arn: &'a str,
    external_id: &'a str,
    via: &'a str,
    key_fingerprint: &'a str,
    used_by: &'a [String],
    created_at_ms: u64,
    updated_at_ms: u64,
}

impl<'a> From<&'a CredentialView> for CredentialJson<'a> {
    fn from(c: &'a CredentialView) -> Self {
        CredentialJson {
            name: &c.name,
            kind: credential_kind_name(c.kind),
            access_key_id: &c.access_key_id,
            has_secret_access_key: c.has_secret_access_key,
            has_session_token: c.has_session_token,
            role_arn: &c.role_arn,
            external_id: &c.external_id,
            via: &c.via,
            key_fingerprint: &c.key_fingerprint,
            used_by: &c.used_by,
            created_at_ms: c.created_at_ms,
            updated_at_ms: c.updated_at_ms,
        }
    }
}

/// What a credential is, in a few words: `static, key AKIA…`, `assume_role arn:… via keys`.
pub(crate) fn credential_summary(c: &CredentialView) -> String {
    match credential_kind_name(c.kind) {
        "static" => {
            let sts = if c.has_session_token { " + session token" } else { "" };
            format!("static, access key id {}{sts}", c.access_key_id)
        }
        "assume_role" => format!(
            "assume_role {} via {}",
            c.role_arn,
            if c.via.is_empty() { "the default chain" } else { &c.via }
        ),
        k => k.to_string(),
    }
}

/// `credential add`.
pub fn credential_added(r: &AddCredentialResponse, format: Format) -> String {
    let default = CredentialView::default();
    let c = r.credential.as_ref().unwrap_or(&default);
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            credential: CredentialJson<'a>,
        }
        return json(&J { credential: c.into() });
    }
    let mut out = format!("added credential {} ({})\n", c.name, credential_summary(c));
    if c.has_secret_access_key {
        out.push_str("the secret is stored encrypted under the cluster data key and is never shown\n");
    }
    out
}

/// `credential list`.
pub fn credential_list(r: &ListCredentialsResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            credentials: Vec<CredentialJson<'a>>,
            linearizable: bool,
        }
        return json(&J {
            credentials: r.credentials.iter().map(CredentialJson::from).collect(),
            linearizable: r.linearizable,
        });
    }
    let rows = r
        .credentials
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                credential_kind_name(c.kind).to_string(),
                dash(&c.access_key_id),
                yes_no(c.has_session_token),
                dash(&c.role_arn),
                dash(&c.via),
                dash(&c.used_by.join(", ")),
                timestamp(c.created_at_ms),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "NAME",
            "KIND",
            "ACCESS KEY ID",
            "SESSION TOKEN",
            "ROLE",
            "VIA",
            "USED BY",
            "CREATED",
        ],
        rows,
    );
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `credential remove`.
pub fn credential_removed(name: &str, r: &RemoveCredentialResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            removed: &'a str,
            credential: Option<CredentialJson<'a>>,
        }
        return json(&J {
            removed: name,
            credential: r.removed.as_ref().map(CredentialJson::from),
        });
    }
    match &r.removed {
        Some(c) => format!("removed credential {name} ({})\n", credential_summary(c)),
        None => format!("removed credential {name}\n"),
    }
}
