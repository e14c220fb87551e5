//! Rendering of every response as an aligned text table or as JSON.
//!
//! JSON uses the proto field names (`cluster_id`, `last_contact_ms`, ...) with u64 ids as numbers,
//! so scripts can rely on it. Tables are for people: durations like `120ms` / `3.2s`, `-` for
//! unknown or empty values, lowercase roles and states, UTC timestamps.

use mesh_proto::names::job_state as job_state_name;
use mesh_proto::names::{credential_kind as credential_kind_name, location_kind as location_kind_name};
use mesh_proto::v1::{
    AddCredentialResponse, AddLocationResponse, CredentialView, GetLocationResponse, GetSettingResponse, Job,
    JobAction, JobCounters, JobEvent, JobOp, JobSpec, JobState, JobView, ListCredentialsResponse, ListJobsResponse,
    ListLocationsResponse, ListNodesResponse, ListSettingsResponse, Location, LocationKind, NodeStatus,
    RemoveCredentialResponse, RemoveLocationResponse, SetSettingResponse, Setting, SettingView, StatusResponse,
    TestLocationResponse, TransferLeaderResponsePublic,
};
use serde::Serialize;

use mesh_pki::{CaFiles, NodeCertFiles};

/// Output format of `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// JSON with proto field names, for scripts.
    Json,
}

#[derive(Serialize)]
struct NodeJson<'a> {
    id: u64,
    addr: &'a str,
    region: &'a str,
    zone: &'a str,
    role: String,
    state: String,
    last_contact_ms: i64,
    applied_index: u64,
    version: &'a str,
}

impl<'a> From<&'a NodeStatus> for NodeJson<'a> {
    fn from(n: &'a NodeStatus) -> Self {
        NodeJson {
            id: n.id,
            addr: &n.addr,
            region: &n.region,
            zone: &n.zone,
            role: n.role.to_lowercase(),
            state: n.state.to_lowercase(),
            last_contact_ms: n.last_contact_ms,
            applied_index: n.applied_index,
            version: &n.version,
        }
    }
}

#[derive(Serialize)]
struct StatusJson<'a> {
    cluster_id: &'a str,
    leader_id: u64,
    term: u64,
    commit_index: u64,
    served_by: u64,
    linearizable: bool,
    voter_target: u32,
    nodes: Vec<NodeJson<'a>>,
}

#[derive(Serialize)]
struct SettingJson<'a> {
    name: &'a str,
    value: &'a str,
    updated_at_ms: u64,
}

impl<'a> From<&'a Setting> for SettingJson<'a> {
    fn from(s: &'a Setting) -> Self {
        SettingJson {
            name: &s.name,
            value: &s.value,
            updated_at_ms: s.updated_at_ms,
        }
    }
}

#[derive(Serialize)]
struct SettingViewJson<'a> {
    name: &'a str,
    value: &'a str,
    is_default: bool,
    help: &'a str,
    updated_at_ms: u64,
}

fn json(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("plain data serializes");
    s.push('\n');
    s
}

/// `cluster status`.
pub fn cluster_status(r: &StatusResponse, format: Format) -> String {
    if format == Format::Json {
        return json(&StatusJson {
            cluster_id: &r.cluster_id,
            leader_id: r.leader_id,
            term: r.term,
            commit_index: r.commit_index,
            served_by: r.served_by,
            linearizable: r.linearizable,
            voter_target: r.voter_target,
            nodes: r.nodes.iter().map(NodeJson::from).collect(),
        });
    }
    let name_of = |id: u64| match r.nodes.iter().find(|n| n.id == id) {
        Some(n) if !n.addr.is_empty() => format!("{id} ({})", n.addr),
        _ => id.to_string(),
    };
    let leader = if r.leader_id == 0 {
        "none (election in progress or quorum lost)".to_string()
    } else {
        name_of(r.leader_id)
    };
    let mut out = fields(&[
        ("cluster id", dash(&r.cluster_id)),
        ("leader", leader),
        ("term", r.term.to_string()),
        ("commit index", r.commit_index.to_string()),
        ("served by", name_of(r.served_by)),
        ("linearizable", consistency(r.linearizable)),
        ("voter target", r.voter_target.to_string()),
    ]);
    out.push('\n');
    out.push_str(&node_table(&r.nodes, r.leader_id));
    out
}

/// `node list`.
pub fn node_list(r: &ListNodesResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            nodes: Vec<NodeJson<'a>>,
            linearizable: bool,
        }
        return json(&J {
            nodes: r.nodes.iter().map(NodeJson::from).collect(),
            linearizable: r.linearizable,
        });
    }
    let mut out = node_table(&r.nodes, 0);
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `node remove ID`; `node` is what the cluster knew about it just before, if anything.
pub fn node_removed(id: u64, node: Option<&NodeStatus>, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            removed: u64,
            node: Option<NodeJson<'a>>,
        }
        return json(&J {
            removed: id,
            node: node.map(NodeJson::from),
        });
    }
    match node {
        Some(n) => format!(
            "removed node {id} ({}, {} {}, region {}, zone {})\n",
            dash(&n.addr),
            dash(&n.role.to_lowercase()),
            dash(&n.state.to_lowercase()),
            dash(&n.region),
            dash(&n.zone)
        ),
        None => format!("removed node {id}\n"),
    }
}

/// `cluster transfer-leader`.
pub fn transfer_leader(r: &TransferLeaderResponsePublic, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J {
            new_leader: u64,
        }
        return json(&J {
            new_leader: r.new_leader,
        });
    }
    format!("leadership transferred to node {}\n", r.new_leader)
}

/// `setting set`.
pub fn setting_set(r: &SetSettingResponse, format: Format) -> String {
    let default = Setting::default();
    let s = r.setting.as_ref().unwrap_or(&default);
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            setting: SettingJson<'a>,
        }
        return json(&J { setting: s.into() });
    }
    format!("{} = {} (updated {})\n", s.name, s.value, timestamp(s.updated_at_ms))
}

/// `setting get`.
pub fn setting_get(r: &GetSettingResponse, format: Format) -> String {
    let default = Setting::default();
    let s = r.setting.as_ref().unwrap_or(&default);
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            setting: SettingJson<'a>,
            linearizable: bool,
            is_default: bool,
        }
        return json(&J {
            setting: s.into(),
            linearizable: r.linearizable,
            is_default: r.is_default,
        });
    }
    let mut out = fields(&[
        ("name", s.name.clone()),
        ("value", dash(&s.value)),
        ("default", yes_no(r.is_default)),
        ("updated", timestamp(s.updated_at_ms)),
    ]);
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `setting list`.
pub fn setting_list(r: &ListSettingsResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            settings: Vec<SettingViewJson<'a>>,
            linearizable: bool,
        }
        let settings = r.settings.iter().map(|s: &SettingView| SettingViewJson {
            name: &s.name,
            value: &s.value,
            is_default: s.is_default,
            help: &s.help,
            updated_at_ms: s.updated_at_ms,
        });
        return json(&J {
            settings: settings.collect(),
            linearizable: r.linearizable,
        });
    }
    let rows = r
        .settings
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                dash(&s.value),
                yes_no(s.is_default),
                timestamp(s.updated_at_ms),
                dash(&s.help),
            ]
        })
        .collect();
    let mut out = table(&["NAME", "VALUE", "DEFAULT", "UPDATED", "HELP"], rows);
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `tls ca create`.
pub fn ca_created(f: &CaFiles, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            cert: &'a std::path::Path,
            key: &'a std::path::Path,
            not_after: &'a str,
        }
        return json(&J {
            cert: &f.cert,
            key: &f.key,
            not_after: &f.not_after,
        });
    }
    format!(
        "created CA certificate {} and key {} (valid until {})\nkeep the key secret; give {} to nodes and meshctl users\n",
        f.cert.display(),
        f.key.display(),
        f.not_after,
        f.cert.display()
    )
}

/// `tls cert create`.
pub fn cert_created(f: &NodeCertFiles, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            cert: &'a std::path::Path,
            key: &'a std::path::Path,
            sans: &'a [String],
            not_after: &'a str,
        }
        return json(&J {
            cert: &f.cert,
            key: &f.key,
            sans: &f.sans,
            not_after: &f.not_after,
        });
    }
    format!(
        "created certificate {} and key {} (valid until {})\nnames: {}\n",
        f.cert.display(),
        f.key.display(),
        f.not_after,
        f.sans.join(", ")
    )
}

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

/// A credential as JSON: kind and key id, never a secret (the view has none to give).
#[derive(Serialize)]
struct CredentialJson<'a> {
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

/// What a credential is, in a few words: `static, key AKIA…`, `assume_role arn:… via keys`.
fn credential_summary(c: &CredentialView) -> String {
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
            l.credential
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

// ------------------------------------------------------------------------------------------
// jobs
// ------------------------------------------------------------------------------------------

/// `copy`, `move` or `sync`.
pub fn op_name(op: i32) -> &'static str {
    match JobOp::try_from(op).unwrap_or(JobOp::Unspecified) {
        JobOp::Copy => "copy",
        JobOp::Move => "move",
        JobOp::Sync => "sync",
        JobOp::Unspecified => "unknown",
    }
}

/// `LOCATION:PATH` (`LOCATION:` for the root).
pub fn place(location: &str, path: &str) -> String {
    format!("{location}:{path}")
}

fn src_dst(spec: &JobSpec) -> String {
    format!(
        "{} → {}",
        place(&spec.src_location, &spec.src_path),
        place(&spec.dst_location, &spec.dst_path)
    )
}

/// Binary-unit size: `512 B`, `1.5 KiB`, `9.5 MiB`, `1.2 GiB`.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A rate in bytes per second: `195.3 KiB/s`, `-` when unknown.
pub fn rate(bytes_per_sec: f64) -> String {
    if bytes_per_sec > 0.0 && bytes_per_sec.is_finite() {
        format!("{}/s", size(bytes_per_sec.round() as u64))
    } else {
        "-".into()
    }
}

/// Objects and bytes the job has finished with (copied, skipped or failed), for progress
/// displays: at most the totals known (while it runs, an object re-copied after a node failure
/// is counted twice until the job's final figures replace the running ones).
pub fn processed(c: &JobCounters) -> (u64, u64) {
    let objects = c.objects_done + c.objects_skipped + c.objects_failed;
    let bytes = c.bytes_done + c.bytes_skipped + c.bytes_failed;
    let cap = |n: u64, total: u64| if total > 0 { n.min(total) } else { n };
    (cap(objects, c.objects_total), cap(bytes, c.bytes_total))
}

fn eta(v: &JobView) -> String {
    if v.eta_ms == 0 {
        "-".into()
    } else {
        duration_ms(v.eta_ms as i64)
    }
}

fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

#[derive(Serialize)]
struct RuleJson<'a> {
    include: bool,
    glob: &'a str,
}

#[derive(Serialize)]
struct SpecJson<'a> {
    op: &'static str,
    src_location: &'a str,
    src_path: &'a str,
    dst_location: &'a str,
    dst_path: &'a str,
    delete: bool,
    tier: &'a str,
    rules: Vec<RuleJson<'a>>,
    verify: &'a str,
    storage_class: &'a str,
    sse: &'a str,
    kms_key_id: &'a str,
    bwlimit_bytes_per_sec: u64,
    dry_run: bool,
}

impl<'a> From<&'a JobSpec> for SpecJson<'a> {
    fn from(s: &'a JobSpec) -> Self {
        SpecJson {
            op: op_name(s.op),
            src_location: &s.src_location,
            src_path: &s.src_path,
            dst_location: &s.dst_location,
            dst_path: &s.dst_path,
            delete: s.delete,
            tier: &s.tier,
            rules: s
                .rules
                .iter()
                .map(|r| RuleJson {
                    include: r.include,
                    glob: &r.glob,
                })
                .collect(),
            verify: &s.verify,
            storage_class: &s.storage_class,
            sse: &s.sse,
            kms_key_id: &s.kms_key_id,
            bwlimit_bytes_per_sec: s.bwlimit_bytes_per_sec,
            dry_run: s.dry_run,
        }
    }
}

#[derive(Serialize)]
struct CountersJson {
    objects_total: u64,
    bytes_total: u64,
    objects_done: u64,
    bytes_done: u64,
    objects_skipped: u64,
    bytes_skipped: u64,
    objects_failed: u64,
    bytes_failed: u64,
    objects_deleted: u64,
}

impl From<&JobCounters> for CountersJson {
    fn from(c: &JobCounters) -> Self {
        CountersJson {
            objects_total: c.objects_total,
            bytes_total: c.bytes_total,
            objects_done: c.objects_done,
            bytes_done: c.bytes_done,
            objects_skipped: c.objects_skipped,
            bytes_skipped: c.bytes_skipped,
            objects_failed: c.objects_failed,
            bytes_failed: c.bytes_failed,
            objects_deleted: c.objects_deleted,
        }
    }
}

/// What a view adds to a job.
#[derive(Serialize)]
struct ViewJson<'a> {
    bytes_per_sec: f64,
    objects_per_sec: f64,
    eta_ms: u64,
    tasks_running: u32,
    tasks_pending: u32,
    tasks_done: u32,
    nodes_running: &'a [u64],
    now_ms: u64,
}

#[derive(Serialize)]
struct FailureJson<'a> {
    key: &'a str,
    error: &'a str,
}

/// A job as JSON: its fields by their proto names, enums by name, the spec and counters as
/// objects, plus the derived view fields when there is a view.
#[derive(Serialize)]
struct JobJson<'a> {
    id: &'a str,
    op: &'static str,
    state: &'static str,
    source: String,
    destination: String,
    owner: &'a str,
    spec: SpecJson<'a>,
    counters: CountersJson,
    #[serde(flatten)]
    view: Option<ViewJson<'a>>,
    tasks_total: u32,
    open_tasks: u32,
    nodes_used: &'a [u64],
    created_at_ms: u64,
    started_at_ms: u64,
    ended_at_ms: u64,
    updated_at_ms: u64,
    paused_ms: u64,
    error: &'a str,
    warnings: u32,
    recopied: u64,
    report_key: &'a str,
    failures: Vec<FailureJson<'a>>,
    submitted_via: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    linearizable: Option<bool>,
}

fn job_json<'a>(j: &'a Job, spec: &'a JobSpec, counters: &JobCounters, v: Option<&'a JobView>) -> JobJson<'a> {
    JobJson {
        id: &j.id,
        op: op_name(spec.op),
        state: job_state_name(j.state),
        source: place(&spec.src_location, &spec.src_path),
        destination: place(&spec.dst_location, &spec.dst_path),
        owner: &j.owner,
        spec: spec.into(),
        counters: counters.into(),
        view: v.map(|v| ViewJson {
            bytes_per_sec: round3(v.bytes_per_sec),
            objects_per_sec: round3(v.objects_per_sec),
            eta_ms: v.eta_ms,
            tasks_running: v.tasks_running,
            tasks_pending: v.tasks_pending,
            tasks_done: v.tasks_done,
            nodes_running: &v.nodes_running,
            now_ms: v.now_ms,
        }),
        tasks_total: j.tasks_total,
        open_tasks: j.open_tasks,
        nodes_used: &j.nodes_used,
        created_at_ms: j.created_at_ms,
        started_at_ms: j.started_at_ms,
        ended_at_ms: j.ended_at_ms,
        updated_at_ms: j.updated_at_ms,
        paused_ms: j.paused_ms,
        error: &j.error,
        warnings: j.warnings,
        recopied: j.recopied,
        report_key: &j.report_key,
        failures: j
            .failures
            .iter()
            .map(|f| FailureJson {
                key: &f.key,
                error: &f.error,
            })
            .collect(),
        submitted_via: j.submitted_via,
        linearizable: None,
    }
}

fn render_view(v: &JobView, linearizable: Option<bool>) -> String {
    let default = Job::default();
    let j = v.job.as_ref().unwrap_or(&default);
    let spec = j.spec.clone().unwrap_or_default();
    let counters = j.counters.unwrap_or_default();
    let mut out = job_json(j, &spec, &counters, Some(v));
    out.linearizable = linearizable;
    json(&out)
}

/// `cp|mv|sync` without `--wait`: the job id (table), or the job (JSON).
pub fn job_submitted(j: &Job, format: Format) -> String {
    if format == Format::Json {
        let spec = j.spec.clone().unwrap_or_default();
        let counters = j.counters.unwrap_or_default();
        return json(&job_json(j, &spec, &counters, None));
    }
    format!("{}\n", j.id)
}

/// One line saying what was submitted (printed to stderr, so stdout is just the id).
pub fn job_submitted_note(j: &Job) -> String {
    let spec = j.spec.clone().unwrap_or_default();
    let mut opts: Vec<String> = Vec::new();
    if !spec.tier.is_empty() {
        opts.push(format!("tier {}", spec.tier));
    }
    if spec.delete {
        opts.push("deleting extraneous destination objects".into());
    }
    if !spec.rules.is_empty() {
        opts.push(format!("{} filter rule{}", spec.rules.len(), plural(spec.rules.len())));
    }
    if !spec.verify.is_empty() {
        opts.push(format!("verify {}", spec.verify));
    }
    if spec.bwlimit_bytes_per_sec > 0 {
        opts.push(format!("limit {}", rate(spec.bwlimit_bytes_per_sec as f64)));
    }
    if spec.dry_run {
        opts.push("dry run".into());
    }
    let opts = if opts.is_empty() {
        String::new()
    } else {
        format!(" ({})", opts.join(", "))
    };
    format!(
        "submitted job {}: {} {}{opts}\n",
        j.id,
        op_name(spec.op),
        src_dst(&spec)
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `job list`.
pub fn job_list(r: &ListJobsResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            jobs: Vec<JobJson<'a>>,
            linearizable: bool,
        }
        let parts: Vec<(&Job, JobSpec, JobCounters, &JobView)> = r
            .jobs
            .iter()
            .filter_map(|v| {
                let j = v.job.as_ref()?;
                Some((j, j.spec.clone().unwrap_or_default(), j.counters.unwrap_or_default(), v))
            })
            .collect();
        return json(&J {
            jobs: parts
                .iter()
                .map(|(j, spec, c, v)| job_json(j, spec, c, Some(v)))
                .collect(),
            linearizable: r.linearizable,
        });
    }
    let rows = r
        .jobs
        .iter()
        .filter_map(|v| v.job.as_ref())
        .map(|j| {
            let spec = j.spec.clone().unwrap_or_default();
            let c = j.counters.unwrap_or_default();
            let (objects, bytes) = processed(&c);
            vec![
                j.id.clone(),
                op_name(spec.op).to_string(),
                job_state_name(j.state).to_string(),
                src_dst(&spec),
                format!("{objects}/{}", c.objects_total),
                format!("{}/{}", size(bytes), size(c.bytes_total)),
                timestamp(j.created_at_ms),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "OP",
            "STATE",
            "SOURCE → DESTINATION",
            "OBJECTS",
            "BYTES",
            "CREATED",
        ],
        rows,
    );
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `job show`: always JSON.
pub fn job_show(v: &JobView, linearizable: bool) -> String {
    render_view(v, Some(linearizable))
}

/// The progress bar's message: state, objects, bytes, rate, ETA.
pub fn job_progress_message(v: &JobView) -> String {
    let default = Job::default();
    let j = v.job.as_ref().unwrap_or(&default);
    let c = j.counters.unwrap_or_default();
    let (objects, bytes) = processed(&c);
    format!(
        "{}: {objects}/{} objects, {}/{}, {}, ETA {}",
        job_state_name(j.state),
        c.objects_total,
        size(bytes),
        size(c.bytes_total),
        rate(v.bytes_per_sec),
        eta(v)
    )
}

/// One progress line of `--wait` / `job watch` when the output is not a terminal: the job id
/// and [`job_progress_message`].
pub fn job_progress_line(v: &JobView) -> String {
    let id = v.job.as_ref().map(|j| j.id.as_str()).unwrap_or("-");
    format!("{id} {}\n", job_progress_message(v))
}

/// The summary `--wait` and `job watch` end with: the final state and counters, rate, nodes,
/// report and error (table); the `job show` JSON (json).
pub fn job_summary(v: &JobView, format: Format) -> String {
    if format == Format::Json {
        return render_view(v, None);
    }
    let default = Job::default();
    let j = v.job.as_ref().unwrap_or(&default);
    let spec = j.spec.clone().unwrap_or_default();
    let c = j.counters.unwrap_or_default();
    let verb = match JobOp::try_from(spec.op) {
        Ok(JobOp::Move) => "moved",
        _ => "copied",
    };
    let dry = if spec.dry_run { " (dry run)" } else { "" };
    let mut pairs = vec![
        ("job", format!("{} {}", j.id, job_state_name(j.state))),
        ("operation", format!("{} {}{dry}", op_name(spec.op), src_dst(&spec))),
        (
            "objects",
            format!(
                "{} {verb}, {} skipped, {} failed of {}",
                c.objects_done, c.objects_skipped, c.objects_failed, c.objects_total
            ),
        ),
        (
            "bytes",
            format!(
                "{} {verb}, {} skipped, {} failed of {}",
                size(c.bytes_done),
                size(c.bytes_skipped),
                size(c.bytes_failed),
                size(c.bytes_total)
            ),
        ),
    ];
    if spec.delete || c.objects_deleted > 0 {
        pairs.push(("deleted", format!("{} objects", c.objects_deleted)));
    }
    let end = if j.ended_at_ms > 0 { j.ended_at_ms } else { v.now_ms };
    let took = if j.started_at_ms > 0 {
        let mut t = duration_ms(end.saturating_sub(j.started_at_ms) as i64);
        if j.paused_ms > 0 {
            t.push_str(&format!(" (paused {})", duration_ms(j.paused_ms as i64)));
        }
        t
    } else {
        "-".into()
    };
    pairs.push(("time", took));
    pairs.push((
        "rate",
        if v.bytes_per_sec > 0.0 {
            format!("{} average, {:.1} objects/s", rate(v.bytes_per_sec), v.objects_per_sec)
        } else {
            "-".into()
        },
    ));
    pairs.push(("nodes", ids(&j.nodes_used)));
    if j.recopied > 0 {
        pairs.push(("recopied", format!("{} objects written more than once", j.recopied)));
    }
    pairs.push((
        "report",
        if j.report_key.is_empty() {
            "-".into()
        } else {
            format!("{} (meshctl job report {})", j.report_key, j.id)
        },
    ));
    if !j.error.is_empty() {
        pairs.push(("error", j.error.clone()));
    }
    let mut out = fields(&pairs);
    if !j.failures.is_empty() {
        let shown = j.failures.len() as u64;
        let total = c.objects_failed.max(shown);
        if total > shown {
            out.push_str(&format!(
                "failures (first {shown} of {total}; all are in the report):\n"
            ));
        } else {
            out.push_str("failures:\n");
        }
        for f in &j.failures {
            out.push_str(&format!("  {}: {}\n", f.key, f.error));
        }
    }
    out
}

fn ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        "-".into()
    } else {
        ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// `job pause|resume|cancel`.
pub fn job_controlled(action: JobAction, v: &JobView, format: Format) -> String {
    if format == Format::Json {
        return render_view(v, None);
    }
    let default = Job::default();
    let j = v.job.as_ref().unwrap_or(&default);
    let state = job_state_name(j.state);
    match action {
        JobAction::Pause => format!(
            "paused job {} (its tasks keep their checkpoints; `meshctl job resume {}` continues it)\n",
            j.id, j.id
        ),
        JobAction::Resume => format!("resumed job {}: now {state}\n", j.id),
        JobAction::Cancel if j.state == JobState::Cancelling as i32 => format!(
            "cancelling job {}: open uploads are being aborted (`meshctl job watch {}` follows it)\n",
            j.id, j.id
        ),
        _ => format!("job {} is {state}\n", j.id),
    }
}

/// `job logs`: one line per event (UTC time, node or `cluster`, text).
pub fn job_logs(id: &str, events: &[JobEvent], format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct E<'a> {
            at_ms: u64,
            node_id: u64,
            text: &'a str,
        }
        #[derive(Serialize)]
        struct J<'a> {
            id: &'a str,
            events: Vec<E<'a>>,
        }
        return json(&J {
            id,
            events: events
                .iter()
                .map(|e| E {
                    at_ms: e.at_ms,
                    node_id: e.node_id,
                    text: &e.text,
                })
                .collect(),
        });
    }
    let who = |e: &JobEvent| {
        if e.node_id == 0 {
            "cluster".to_string()
        } else {
            format!("node {}", e.node_id)
        }
    };
    let width = events.iter().map(|e| who(e).len()).max().unwrap_or(0);
    events
        .iter()
        .map(|e| format!("{}  {:<width$}  {}\n", timestamp(e.at_ms), who(e), e.text))
        .collect()
}

fn node_table(nodes: &[NodeStatus], leader: u64) -> String {
    let rows = nodes
        .iter()
        .map(|n| {
            let mut role = dash(&n.role.to_lowercase());
            if leader != 0 && n.id == leader {
                role.push_str(" (leader)");
            }
            vec![
                n.id.to_string(),
                dash(&n.addr),
                dash(&n.region),
                dash(&n.zone),
                role,
                dash(&n.state.to_lowercase()),
                duration_ms(n.last_contact_ms),
                n.applied_index.to_string(),
                dash(&n.version),
            ]
        })
        .collect();
    let headers = [
        "ID",
        "ADDRESS",
        "REGION",
        "ZONE",
        "ROLE",
        "STATE",
        "LAST CONTACT",
        "APPLIED",
        "VERSION",
    ];
    table(&headers, rows)
}

/// Left-aligned columns separated by two spaces, no trailing blanks.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs
        .iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:"), width = width))
        .collect()
}

fn dash(s: &str) -> String {
    if s.trim().is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn consistency(linearizable: bool) -> String {
    if linearizable {
        "yes"
    } else {
        "no (local read, may be stale)"
    }
    .into()
}

fn stale_note(linearizable: bool) -> String {
    if linearizable {
        String::new()
    } else {
        "(local read from this node: may be stale)\n".into()
    }
}

/// Human-readable milliseconds: `-` for unknown (negative), `120ms`, `3.2s`, `4m05s`, `2h03m`.
pub fn duration_ms(ms: i64) -> String {
    match ms {
        ms if ms < 0 => "-".into(),
        ms if ms < 1_000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        ms => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SSZ`; `-` for 0.
pub fn timestamp(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms(-1), "-");
        assert_eq!(duration_ms(0), "0ms");
        assert_eq!(duration_ms(120), "120ms");
        assert_eq!(duration_ms(3_210), "3.2s");
        assert_eq!(duration_ms(245_000), "4m05s");
        assert_eq!(duration_ms(7_380_000), "2h03m");
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(10 << 20), "10.0 MiB");
        assert_eq!(size(u64::MAX), "16.0 EiB");
        assert_eq!(rate(0.0), "-");
        assert_eq!(rate(f64::NAN), "-");
        assert_eq!(rate(200_000.0), "195.3 KiB/s");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(timestamp(0), "-");
        assert_eq!(timestamp(1_709_210_096_000), "2024-02-29 12:34:56Z");
    }
}
