//! `location add|list|show|remove|test` rendering. `location show` includes the credential the
//! location uses, in the shape of [`super::credential`].

use mesh_proto::names::location_kind as location_kind_name;
use mesh_proto::v1::{
    AddLocationResponse, GetLocationResponse, ListLocationsResponse, Location, LocationKind, RemoveLocationResponse,
    TestLocationResponse,
};
use serde::Serialize;

use super::credential::{credential_summary, CredentialJson};
use super::format::{dash, fields, json, stale_note, table, timestamp, yes_no, Format};

#[derive(Serialize)]
struct LocationJson<'a> {
    name: &'a str,
    kind: &'static str,
    bucket: &'a str,
    prefix: &'a str,
    region: &'a str,
    endpoint: &'a str,
    path_style: bool,
    credential: &'a str,
    storage_class: &'a str,
    sse: &'a str,
    kms_key_id: &'a str,
    fs_path: &'a str,
    tenant: &'a str,
    created_at_ms: u64,
    updated_at_ms: u64,
}

impl<'a> From<&'a Location> for LocationJson<'a> {
    fn from(l: &'a Location) -> Self {
        LocationJson {
            name: &l.name,
            kind: location_kind_name(l.kind),
            bucket: &l.bucket,
            prefix: &l.prefix,
            region: &l.region,
            endpoint: &l.endpoint,
            path_style: l.path_style,
            credential: &l.credential,
            storage_class: &l.storage_class,
            sse: &l.sse,
            kms_key_id: &l.kms_key_id,
            fs_path: &l.fs_path,
            tenant: &l.tenant,
            created_at_ms: l.created_at_ms,
            updated_at_ms: l.updated_at_ms,
        }
    }
}

/// Where a location points: `s3://bucket/prefix/` or the directory.
pub fn location_target(l: &Location) -> String {
    match l.kind() {
        LocationKind::S3 => format!("s3://{}/{}", l.bucket, l.prefix),
        LocationKind::Fs => l.fs_path.clone(),
        LocationKind::Unspecified => "-".into(),
    }
}

fn location_defaults(l: &Location) -> String {
    let mut parts = Vec::new();
    if !l.storage_class.is_empty() {
        parts.push(l.storage_class.clone());
    }
    match (l.sse.as_str(), l.kms_key_id.as_str()) {
        ("", _) => {}
        ("aws:kms", "") => parts.push("sse aws:kms".into()),
        ("aws:kms", k) => parts.push(format!("sse aws:kms ({k})")),
        (s, _) => parts.push(format!("sse {s}")),
    }
    dash(&parts.join(", "))
}

/// `location add`.
pub fn location_added(r: &AddLocationResponse, format: Format) -> String {
    let default = Location::default();
    let l = r.location.as_ref().unwrap_or(&default);
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            location: LocationJson<'a>,
        }
        return json(&J { location: l.into() });
    }
    match l.kind() {
        LocationKind::S3 => format!(
            "added location {} ({}, credential {})\n",
            l.name,
            location_target(l),
            if l.credential.is_empty() {
                "- (the nodes' default chain)"
            } else {
                &l.credential
            }
        ),
        _ => format!("added location {} ({})\n", l.name, location_target(l)),
    }
}

/// `location list`.
pub fn location_list(r: &ListLocationsResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            locations: Vec<LocationJson<'a>>,
            linearizable: bool,
        }
        return json(&J {
            locations: r.locations.iter().map(LocationJson::from).collect(),
            linearizable: r.linearizable,
        });
    }
    let rows = r
        .locations
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                location_kind_name(l.kind).to_string(),
                location_target(l),
                dash(&l.region),
                dash(&l.endpoint),
                dash(&l.credential),
                location_defaults(l),
            ]
        })
        .collect();
    let mut out = table(
        &["NAME", "KIND", "WHERE", "REGION", "ENDPOINT", "CREDENTIAL", "DEFAULTS"],
        rows,
    );
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `location show`.
pub fn location_show(r: &GetLocationResponse, format: Format) -> String {
    let default = Location::default();
    let l = r.location.as_ref().unwrap_or(&default);
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            location: LocationJson<'a>,
            credential: Option<CredentialJson<'a>>,
            linearizable: bool,
        }
        return json(&J {
            location: l.into(),
            credential: r.credential.as_ref().map(CredentialJson::from),
            linearizable: r.linearizable,
        });
    }
    let mut pairs = vec![
        ("name", l.name.clone()),
        ("kind", location_kind_name(l.kind).to_string()),
    ];
    match l.kind() {
        LocationKind::Fs => pairs.push(("path", l.fs_path.clone())),
        _ => {
            let credential = match &r.credential {
                Some(_) if l.credential.is_empty() => {
                    "- (each node's default AWS credential chain: environment, profile, instance role)".to_string()
                }
                Some(c) => format!("{} ({})", l.credential, credential_summary(c)),
                None => format!("{} (missing)", dash(&l.credential)),
            };
            pairs.extend([
                ("bucket", l.bucket.clone()),
                ("prefix", dash(&l.prefix)),
                (
                    "region",
                    if l.region.is_empty() {
                        "- (discovered)".to_string()
                    } else {
                        l.region.clone()
                    },
                ),
                (
                    "endpoint",
                    if l.endpoint.is_empty() {
                        "- (AWS)".to_string()
                    } else {
                        l.endpoint.clone()
                    },
                ),
                ("path style", yes_no(l.path_style)),
                ("credential", credential),
                ("storage class", dash(&l.storage_class)),
                ("sse", dash(&l.sse)),
                ("kms key", dash(&l.kms_key_id)),
            ]);
        }
    }
    pairs.extend([
        ("created", timestamp(l.created_at_ms)),
        ("updated", timestamp(l.updated_at_ms)),
    ]);
    let mut out = fields(&pairs);
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `location remove`.
pub fn location_removed(name: &str, r: &RemoveLocationResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            removed: &'a str,
            location: Option<LocationJson<'a>>,
        }
        return json(&J {
            removed: name,
            location: r.removed.as_ref().map(LocationJson::from),
        });
    }
    match &r.removed {
        Some(l) => format!("removed location {name} ({})\n", location_target(l)),
        None => format!("removed location {name}\n"),
    }
}

/// `location test`: every step with its outcome, then a verdict.
pub fn location_test(r: &TestLocationResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct Step<'a> {
            step: &'a str,
            ok: bool,
            detail: &'a str,
        }
        #[derive(Serialize)]
        struct J<'a> {
            name: &'a str,
            target: &'a str,
            ok: bool,
            served_by: u64,
            steps: Vec<Step<'a>>,
        }
        return json(&J {
            name: &r.name,
            target: &r.target,
            ok: r.ok,
            served_by: r.served_by,
            steps: r
                .steps
                .iter()
                .map(|s| Step {
                    step: &s.step,
                    ok: s.ok,
                    detail: &s.detail,
                })
                .collect(),
        });
    }
    let mut out = format!(
        "testing location {} ({}) from node {}\n",
        r.name,
        dash(&r.target),
        r.served_by
    );
    let rows = r
        .steps
        .iter()
        .map(|s| {
            vec![
                s.step.clone(),
                if s.ok { "ok" } else { "FAILED" }.to_string(),
                dash(&s.detail),
            ]
        })
        .collect();
    out.push_str(&table(&["STEP", "RESULT", "DETAIL"], rows));
    let failed = r.steps.iter().filter(|s| !s.ok).count();
    if r.ok && failed == 0 {
        out.push_str(&format!("result: ok ({} steps passed)\n", r.steps.len()));
    } else {
        out.push_str(&format!(
            "result: FAILED ({failed} of {} steps failed)\n",
            r.steps.len()
        ));
    }
    out
}
