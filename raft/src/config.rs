//! The replicated configuration of the copy engine: tables `locations` and `credentials`, their
//! validation and the pure apply of PutLocation / DeleteLocation / PutCredential /
//! DeleteCredential.
//!
//! Every check here is a function of the command and the tables only, so every node refuses the
//! same commands with the same message. The validators are public so that node/ (and meshctl) can
//! refuse bad input before proposing, with the same words.
//!
//! Rules:
//! - names: `[A-Za-z0-9._-]{1,64}`;
//! - a location of kind s3 names an existing credential, a valid bucket (the S3 naming rules), an
//!   optional prefix (normalised: no leading '/', a trailing '/' when non-empty), an optional
//!   http(s) endpoint, SSE "", "AES256" or "aws:kms" (a KMS key id only with aws:kms);
//! - a location of kind fs has an absolute path and none of the s3 fields;
//! - a credential has exactly the fields of its kind; static secrets are ciphertext under the
//!   cluster data key (its fingerprint must be the cluster's when the cluster has one);
//!   assume_role's `via` must exist and must not lead back to the credential (no cycles);
//! - Put refuses an existing name (ALREADY_EXISTS) unless `replace` is set; a replace keeps
//!   `created_at_ms`;
//! - a credential used by a location, or by another credential's `via`, cannot be deleted (IN_USE);
//!   a location used by a job cannot be deleted ([`location_in_use`]).

use mesh_proto::v1::{self as pb, CredentialKind, LocationKind};

use crate::tables::Tables;

pub const REASON_ALREADY_EXISTS: &str = "ALREADY_EXISTS";
pub const REASON_IN_USE: &str = "IN_USE";

/// AES-256-GCM nonce (12) + tag (16): the shortest valid ciphertext (of an empty plaintext).
pub const MIN_CIPHERTEXT_LEN: usize = 28;

/// A refusal: (reason, message).
pub type Refusal = (&'static str, String);

fn invalid(msg: impl Into<String>) -> Refusal {
    (crate::apply::REASON_INVALID, msg.into())
}

/// Checks a location or credential name: `[A-Za-z0-9._-]{1,64}`.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if name.len() > 64 {
        return Err(format!("{what} name {name:?} is longer than 64 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{what} name {name:?} contains {c:?}; use letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Checks a bucket name against the S3 general purpose bucket naming rules.
pub fn validate_bucket(bucket: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid bucket name {bucket:?}: {why}"));
    if bucket.len() < 3 || bucket.len() > 63 {
        return bad("must be 3 to 63 characters long");
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return bad(&format!(
            "contains {c:?}; only lowercase letters, digits, '.' and '-' are allowed"
        ));
    }
    let first = bucket.as_bytes()[0];
    let last = bucket.as_bytes()[bucket.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return bad("must begin and end with a letter or digit");
    }
    if bucket.contains("..") {
        return bad("must not contain two adjacent periods");
    }
    if bucket.contains(".-") || bucket.contains("-.") {
        return bad("must not contain a period next to a hyphen");
    }
    if bucket.split('.').count() == 4
        && bucket
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        return bad("must not be formatted as an IP address");
    }
    for p in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if bucket.starts_with(p) {
            return bad(&format!("must not start with {p:?}"));
        }
    }
    for s in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if bucket.ends_with(s) {
            return bad(&format!("must not end with {s:?}"));
        }
    }
    Ok(())
}

/// The normal form of a key prefix: no leading '/', and a trailing '/' when non-empty.
pub fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim_start_matches('/');
    if p.is_empty() || p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    }
}

fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > 1024 {
        return Err(format!(
            "prefix is {} bytes long; S3 keys are at most 1024",
            prefix.len()
        ));
    }
    if prefix.chars().any(|c| c.is_control()) {
        return Err(format!("prefix {prefix:?} contains a control character"));
    }
    Ok(())
}

fn validate_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| format!("endpoint {endpoint:?} must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || endpoint.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("endpoint {endpoint:?} is not a URL like https://host[:port]"));
    }
    Ok(())
}

fn validate_region(region: &str) -> Result<(), String> {
    if region.len() > 64
        || !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("region {region:?} is not a region name like eu-west-1"));
    }
    Ok(())
}

fn validate_storage_class(sc: &str) -> Result<(), String> {
    if sc.len() > 64
        || !sc
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "storage class {sc:?} is not a storage class like STANDARD, STANDARD_IA or GLACIER_IR"
        ));
    }
    Ok(())
}

/// Validates a location on its own (not its references) and returns its normal form (prefix
/// normalised). Timestamps are left as given.
pub fn normalize_location(l: &pb::Location) -> Result<pb::Location, String> {
    validate_name("location", &l.name)?;
    let mut l = l.clone();
    match LocationKind::try_from(l.kind).unwrap_or(LocationKind::Unspecified) {
        LocationKind::Unspecified => {
            return Err(format!("location {:?}: kind must be s3 or fs", l.name));
        }
        LocationKind::S3 => {
            let ctx = |e: String| format!("location {:?}: {e}", l.name);
            validate_bucket(&l.bucket).map_err(ctx)?;
            l.prefix = normalize_prefix(&l.prefix);
            validate_prefix(&l.prefix).map_err(ctx)?;
            if !l.region.is_empty() {
                validate_region(&l.region).map_err(ctx)?;
            }
            if !l.endpoint.is_empty() {
                validate_endpoint(&l.endpoint).map_err(ctx)?;
            }
            if l.credential.is_empty() {
                return Err(ctx(
                    "an s3 location needs a credential (create one with `meshctl credential add NAME --default-chain` to use the nodes' default AWS credentials)".into(),
                ));
            }
            validate_name("credential", &l.credential).map_err(ctx)?;
            if !l.storage_class.is_empty() {
                validate_storage_class(&l.storage_class).map_err(ctx)?;
            }
            match l.sse.as_str() {
                "" | "AES256" => {
                    if !l.kms_key_id.is_empty() {
                        return Err(ctx("a KMS key id needs sse aws:kms".into()));
                    }
                }
                "aws:kms" => {}
                other => {
                    return Err(ctx(format!(
                        "sse {other:?} is not one of \"\", \"AES256\", \"aws:kms\""
                    )));
                }
            }
            if !l.fs_path.is_empty() {
                return Err(ctx("an s3 location has no fs path".into()));
            }
        }
        LocationKind::Fs => {
            let ctx = |e: &str| format!("location {:?}: {e}", l.name);
            if !l.fs_path.starts_with('/') {
                return Err(ctx(&format!(
                    "fs path {:?} must be absolute (the same directory on every node)",
                    l.fs_path
                )));
            }
            if l.fs_path.contains('\0') {
                return Err(ctx("fs path contains a NUL byte"));
            }
            let s3_fields = [
                ("bucket", l.bucket.is_empty()),
                ("prefix", l.prefix.is_empty()),
                ("region", l.region.is_empty()),
                ("endpoint", l.endpoint.is_empty()),
                ("path style", !l.path_style),
                ("credential", l.credential.is_empty()),
                ("storage class", l.storage_class.is_empty()),
                ("sse", l.sse.is_empty()),
                ("kms key id", l.kms_key_id.is_empty()),
            ];
            if let Some((f, _)) = s3_fields.iter().find(|(_, empty)| !empty) {
                return Err(ctx(&format!("an fs location has no {f}")));
            }
        }
    }
    Ok(l)
}

/// Validates a credential on its own (not its references).
pub fn validate_credential(c: &pb::Credential) -> Result<(), String> {
    validate_name("credential", &c.name)?;
    let ctx = |e: &str| format!("credential {:?}: {e}", c.name);
    let kind = CredentialKind::try_from(c.kind).unwrap_or(CredentialKind::Unspecified);
    let has_secret = !c.secret_access_key_enc.is_empty() || !c.session_token_enc.is_empty();
    let has_role = !c.role_arn.is_empty() || !c.external_id.is_empty() || !c.via.is_empty();
    match kind {
        CredentialKind::Unspecified => return Err(ctx("kind must be default_chain, static or assume_role")),
        CredentialKind::DefaultChain => {
            if !c.access_key_id.is_empty() || has_secret || has_role {
                return Err(ctx("a default_chain credential has no keys, role or via"));
            }
        }
        CredentialKind::Static => {
            if c.access_key_id.is_empty() {
                return Err(ctx("a static credential needs an access key id"));
            }
            if c.access_key_id.len() > 128 || !c.access_key_id.chars().all(|ch| ch.is_ascii_graphic()) {
                return Err(ctx(
                    "the access key id must be printable ASCII without spaces, at most 128 characters",
                ));
            }
            if c.secret_access_key_enc.is_empty() {
                return Err(ctx("a static credential needs a secret access key"));
            }
            for (f, v) in [
                ("secret access key", &c.secret_access_key_enc),
                ("session token", &c.session_token_enc),
            ] {
                if !v.is_empty() && v.len() < MIN_CIPHERTEXT_LEN {
                    return Err(ctx(&format!(
                        "the {f} is not AES-256-GCM ciphertext (secrets are encrypted by the node before they are proposed)"
                    )));
                }
            }
            if c.key_fingerprint.is_empty() {
                return Err(ctx(
                    "encrypted secrets need the fingerprint of the data key that encrypted them",
                ));
            }
            if has_role {
                return Err(ctx("a static credential has no role, external id or via"));
            }
        }
        CredentialKind::AssumeRole => {
            if !c.role_arn.starts_with("arn:") || !c.role_arn.contains(":role/") {
                return Err(ctx(&format!(
                    "role ARN {:?} is not like arn:aws:iam::123456789012:role/NAME",
                    c.role_arn
                )));
            }
            if !c.access_key_id.is_empty() || has_secret {
                return Err(ctx(
                    "an assume_role credential has no keys of its own (put them in the `via` credential)",
                ));
            }
            if c.external_id.len() > 1224 || c.external_id.chars().any(|ch| ch.is_control()) {
                return Err(ctx("the external id must be at most 1224 printable characters"));
            }
            if !c.via.is_empty() {
                validate_name("via credential", &c.via).map_err(|e| ctx(&e))?;
                if c.via == c.name {
                    return Err(ctx("a credential cannot assume its role via itself"));
                }
            }
        }
    }
    Ok(())
}

/// Hook for jobs (see the jobs issue): the name of a job that uses location `name`, which then
/// cannot be removed. There are no jobs yet, so nothing uses a location.
pub fn location_in_use(t: &Tables, name: &str) -> Option<String> {
    crate::jobs::job_using_location(t, name)
}

/// What depends on credential `name`: `location:X` for locations that use it and
/// `credential:Y` for credentials that assume a role via it. Sorted.
pub fn credential_users(t: &Tables, name: &str) -> Vec<String> {
    let mut users: Vec<String> = t
        .locations
        .values()
        .filter(|l| l.credential == name)
        .map(|l| format!("location:{}", l.name))
        .collect();
    users.extend(
        t.credentials
            .values()
            .filter(|c| c.via == name)
            .map(|c| format!("credential:{}", c.name)),
    );
    users
}

pub(crate) fn put_location(t: &mut Tables, p: &pb::PutLocation, at: u64) -> Result<(), Refusal> {
    let l = p
        .location
        .as_ref()
        .ok_or_else(|| invalid("PutLocation without a location"))?;
    let mut l = normalize_location(l).map_err(invalid)?;
    if l.kind == LocationKind::S3 as i32 && !t.credentials.contains_key(&l.credential) {
        return Err((
            crate::apply::REASON_NOT_FOUND,
            format!(
                "location {:?}: credential {:?} does not exist (create it first with `meshctl credential add {} ...`)",
                l.name, l.credential, l.credential
            ),
        ));
    }
    match t.locations.get(&l.name) {
        Some(_) if !p.replace => {
            return Err((
                REASON_ALREADY_EXISTS,
                format!("location {:?} already exists (use --replace to change it)", l.name),
            ))
        }
        Some(old) => l.created_at_ms = old.created_at_ms,
        None => l.created_at_ms = at,
    }
    l.updated_at_ms = at;
    t.locations.insert(l.name.clone(), l);
    Ok(())
}

pub(crate) fn delete_location(t: &mut Tables, d: &pb::DeleteLocation) -> Result<(), Refusal> {
    if !t.locations.contains_key(&d.name) {
        return Err((
            crate::apply::REASON_NOT_FOUND,
            format!("location {:?} not found", d.name),
        ));
    }
    if let Some(job) = location_in_use(t, &d.name) {
        return Err((
            REASON_IN_USE,
            format!(
                "location {:?} is in use by job {job}; wait for it to finish or cancel it",
                d.name
            ),
        ));
    }
    t.locations.remove(&d.name);
    Ok(())
}

pub(crate) fn put_credential(t: &mut Tables, p: &pb::PutCredential, at: u64) -> Result<(), Refusal> {
    let c = p
        .credential
        .as_ref()
        .ok_or_else(|| invalid("PutCredential without a credential"))?;
    validate_credential(c).map_err(invalid)?;
    let mut c = c.clone();
    if c.kind != CredentialKind::Static as i32 {
        // Only static credentials hold secrets; no fingerprint without ciphertext.
        c.key_fingerprint.clear();
    }
    if !c.key_fingerprint.is_empty() {
        if let Some(cluster) = &t.cluster {
            if !cluster.data_key_sha256.is_empty() && cluster.data_key_sha256 != c.key_fingerprint {
                return Err(invalid(format!(
                    "credential {:?}: its secrets are encrypted under data key {} but the cluster's data key is {}",
                    c.name,
                    short_fp(&c.key_fingerprint),
                    short_fp(&cluster.data_key_sha256)
                )));
            }
        }
    }
    if !c.via.is_empty() {
        if !t.credentials.contains_key(&c.via) {
            return Err((
                crate::apply::REASON_NOT_FOUND,
                format!("credential {:?}: via credential {:?} does not exist", c.name, c.via),
            ));
        }
        // Follow the via chain, with this credential in place, and refuse a cycle.
        let mut seen = vec![c.name.clone()];
        let mut cur = c.via.clone();
        while !cur.is_empty() {
            if seen.contains(&cur) {
                seen.push(cur);
                return Err(invalid(format!(
                    "credential {:?}: via would make a cycle ({})",
                    c.name,
                    seen.join(" -> ")
                )));
            }
            seen.push(cur.clone());
            cur = t.credentials.get(&cur).map(|x| x.via.clone()).unwrap_or_default();
        }
    }
    match t.credentials.get(&c.name) {
        Some(_) if !p.replace => {
            return Err((
                REASON_ALREADY_EXISTS,
                format!("credential {:?} already exists (use --replace to change it)", c.name),
            ))
        }
        Some(old) => c.created_at_ms = old.created_at_ms,
        None => c.created_at_ms = at,
    }
    c.updated_at_ms = at;
    t.credentials.insert(c.name.clone(), c);
    Ok(())
}

pub(crate) fn delete_credential(t: &mut Tables, d: &pb::DeleteCredential) -> Result<(), Refusal> {
    if !t.credentials.contains_key(&d.name) {
        return Err((
            crate::apply::REASON_NOT_FOUND,
            format!("credential {:?} not found", d.name),
        ));
    }
    let users = credential_users(t, &d.name);
    if !users.is_empty() {
        return Err((
            REASON_IN_USE,
            format!(
                "credential {:?} is in use by {}; remove or change those first",
                d.name,
                users.join(", ")
            ),
        ));
    }
    t.credentials.remove(&d.name);
    Ok(())
}

/// The first 16 hex digits of a fingerprint, for messages.
pub fn short_fp(fp: &str) -> &str {
    &fp[..fp.len().min(16)]
}

/// Human name of a location kind (`s3`, `fs`, `unspecified`).
pub fn location_kind_name(kind: i32) -> &'static str {
    match LocationKind::try_from(kind).unwrap_or(LocationKind::Unspecified) {
        LocationKind::S3 => "s3",
        LocationKind::Fs => "fs",
        LocationKind::Unspecified => "unspecified",
    }
}

/// Human name of a credential kind (`default_chain`, `static`, `assume_role`, `unspecified`).
pub fn credential_kind_name(kind: i32) -> &'static str {
    match CredentialKind::try_from(kind).unwrap_or(CredentialKind::Unspecified) {
        CredentialKind::DefaultChain => "default_chain",
        CredentialKind::Static => "static",
        CredentialKind::AssumeRole => "assume_role",
        CredentialKind::Unspecified => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_rules() {
        for ok in ["abc", "my-bucket.v2", "a1b", &"a".repeat(63)] {
            validate_bucket(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "my_bucket",
            "-abc",
            "abc-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "abc--ol-s3",
        ] {
            assert!(validate_bucket(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("//a/b"), "a/b/");
        assert_eq!(normalize_prefix("a/b/"), "a/b/");
    }

    #[test]
    fn names() {
        validate_name("x", "a.B_c-9").unwrap();
        assert!(validate_name("x", "").is_err());
        assert!(validate_name("x", "a b").is_err());
        assert!(validate_name("x", "a/b").is_err());
        assert!(validate_name("x", &"a".repeat(65)).is_err());
    }
}
