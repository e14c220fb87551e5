//! Well-formedness rules shared by every client and the state machine: names, buckets, prefixes,
//! endpoints, storage classes, job paths, sizes and durations, and the bounds of every request.
//!
//! They are functions of their input only, so meshctl can refuse bad input before it is sent,
//! meshd before it is proposed, and the state machine (mesh-raft) when it applies, all with the
//! same words. Changing what a rule accepts changes what the replicated state machine accepts:
//! a rule may only be widened once every voter runs a build that knows the wider rule.

use std::time::Duration;

use crate::v1::{self as pb, CredentialKind, LocationKind};

/// The first version whose state machine accepts an s3 location without a credential (the
/// nodes' default credential chain). A node proposes one only when every voter runs at least
/// this version, since older nodes refuse it.
pub const DEFAULT_CHAIN_SINCE: &str = "0.2.0";

/// Most characters of a user's input an error message shows (a 1 MiB name must not come back
/// in a status: it would break the client's metadata limit and flood logs).
pub const ECHO_CHARS: usize = 64;
/// Longest location or credential name.
pub const MAX_NAME_BYTES: usize = 64;
/// Most include/exclude rules in one job.
pub const MAX_FILTER_RULES: usize = 1_000;
/// Longest include/exclude pattern.
pub const MAX_GLOB_BYTES: usize = 1_024;
/// Longest job path (an S3 key is at most 1,024 bytes).
pub const MAX_PATH_BYTES: usize = 1_024;
/// Longest fs location root.
pub const MAX_FS_PATH_BYTES: usize = 4_096;
/// Largest encoded job spec accepted into the replicated log.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;
/// Largest encoded request a public API call may send (meshd refuses larger ones while
/// decoding).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// `input` quoted for an error message, cut to [`ECHO_CHARS`] characters (and its full length
/// said) when longer.
pub fn echo(input: &str) -> String {
    let mut chars = input.chars();
    let head: String = chars.by_ref().take(ECHO_CHARS).collect();
    if chars.next().is_none() {
        format!("{head:?}")
    } else {
        format!("{head:?}… ({} bytes)", input.len())
    }
}

/// The storage classes of Amazon S3 itself (S3-compatible stores may define their own).
pub const AWS_STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
    "FSX_OPENZFS",
];

/// Whether an S3 endpoint is Amazon's own: none given (the SDK's default), or a host under
/// `amazonaws.com` / `amazonaws.com.cn`.
pub fn is_aws_endpoint(endpoint: &str) -> bool {
    if endpoint.is_empty() {
        return true;
    }
    match url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    {
        Some(h) => h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn"),
        None => false,
    }
}

/// A storage class for a destination on `endpoint`: well-formed, and on Amazon S3 one of
/// [`AWS_STORAGE_CLASSES`].
pub fn check_storage_class_for(endpoint: &str, sc: &str) -> Result<(), String> {
    validate_storage_class(sc)?;
    if is_aws_endpoint(endpoint) && !AWS_STORAGE_CLASSES.contains(&sc) {
        return Err(format!(
            "storage class {} is not an Amazon S3 storage class; use one of {}",
            echo(sc),
            AWS_STORAGE_CLASSES.join(", ")
        ));
    }
    Ok(())
}

/// An S3 endpoint URL as an operator may give it: `http(s)://host[:port][/path]`, no user info
/// (credentials never go in a URL), query or fragment. Stricter than the state machine's rule,
/// which keeps accepting what older nodes accepted.
pub fn check_endpoint_url(endpoint: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "endpoint {} is not a URL like https://host[:port]: {why}",
            echo(endpoint)
        ))
    };
    let u = match url::Url::parse(endpoint) {
        Ok(u) => u,
        Err(e) => return bad(&e.to_string()),
    };
    if !matches!(u.scheme(), "http" | "https") {
        return bad("it must start with http:// or https://");
    }
    if u.host_str().is_none_or(str::is_empty) {
        return bad("it has no host");
    }
    if !u.username().is_empty() || u.password().is_some() {
        return bad("it must not carry a user name or password (use a credential)");
    }
    if u.query().is_some() || u.fragment().is_some() {
        return bad("it must not have a query or fragment");
    }
    Ok(())
}

/// An fs location root as an operator may give it, in its normal form: absolute, no `.` or `..`
/// segment (the same directory on every node, never a way out of it), no empty segment, no
/// trailing '/', no control character, at most [`MAX_FS_PATH_BYTES`].
pub fn normalize_fs_root(path: &str) -> Result<String, String> {
    if path.len() > MAX_FS_PATH_BYTES {
        return Err(format!(
            "fs path {} is {} bytes long; at most {MAX_FS_PATH_BYTES}",
            echo(path),
            path.len()
        ));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "fs path {} must be absolute (the same directory on every node)",
            echo(path)
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(format!("fs path {} contains a control character", echo(path)));
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(s) = segments.iter().find(|s| **s == "." || **s == "..") {
        return Err(format!(
            "fs path {} contains a {s:?} segment; give the resolved directory (e.g. with `realpath`)",
            echo(path)
        ));
    }
    Ok(format!("/{}", segments.join("/")))
}

/// The checks a node makes on a location before proposing it, beyond the state machine's own
/// (which stay as older nodes apply them): a real endpoint URL, an fs root in normal form, and
/// a storage class Amazon knows for an Amazon endpoint. Returns the location to propose.
pub fn admit_location(l: &pb::Location) -> Result<pb::Location, String> {
    validate_name("location", &l.name)?;
    let mut l = l.clone();
    let ctx = |e: String| format!("location {:?}: {e}", l.name);
    match LocationKind::try_from(l.kind).unwrap_or(LocationKind::Unspecified) {
        LocationKind::S3 => {
            if !l.endpoint.is_empty() {
                check_endpoint_url(&l.endpoint).map_err(ctx)?;
            }
            if !l.storage_class.is_empty() {
                check_storage_class_for(&l.endpoint, &l.storage_class).map_err(ctx)?;
            }
        }
        LocationKind::Fs => {
            l.fs_path = normalize_fs_root(&l.fs_path).map_err(ctx)?;
        }
        LocationKind::Unspecified => {}
    }
    normalize_location(&l)
}

/// The bounds of a job spec a node checks before proposing it: rule count and pattern length,
/// path length and characters, total encoded size.
pub fn check_spec_bounds(spec: &pb::JobSpec) -> Result<(), String> {
    use prost::Message as _;
    if spec.rules.len() > MAX_FILTER_RULES {
        return Err(format!(
            "{} include/exclude rules; a job takes at most {MAX_FILTER_RULES} (combine patterns with {{a,b}} or **)",
            spec.rules.len()
        ));
    }
    if let Some(r) = spec.rules.iter().find(|r| r.glob.len() > MAX_GLOB_BYTES) {
        return Err(format!(
            "the pattern {} is {} bytes long; at most {MAX_GLOB_BYTES}",
            echo(&r.glob),
            r.glob.len()
        ));
    }
    for (what, path) in [("source", &spec.src_path), ("destination", &spec.dst_path)] {
        if path.len() > MAX_PATH_BYTES {
            return Err(format!(
                "the {what} path {} is {} bytes long; at most {MAX_PATH_BYTES} (an S3 key's limit)",
                echo(path),
                path.len()
            ));
        }
        if path.chars().any(char::is_control) {
            return Err(format!(
                "the {what} path {} contains a control character (NUL, newline, ...)",
                echo(path)
            ));
        }
    }
    for (what, name) in [("source", &spec.src_location), ("destination", &spec.dst_location)] {
        if !name.is_empty() {
            validate_name(&format!("{what} location"), name)?;
        }
    }
    for (what, v) in [
        ("tier", &spec.tier),
        ("verify mode", &spec.verify),
        ("storage class", &spec.storage_class),
        ("SSE", &spec.sse),
        ("KMS key", &spec.kms_key_id),
    ] {
        if v.len() > 2048 {
            return Err(format!(
                "the {what} {} is {} bytes long; at most 2048",
                echo(v),
                v.len()
            ));
        }
    }
    let size = spec.encoded_len();
    if size > MAX_SPEC_BYTES {
        return Err(format!(
            "the job spec is {size} bytes encoded; at most {MAX_SPEC_BYTES}"
        ));
    }
    Ok(())
}

/// AES-256-GCM nonce (12) + tag (16): the shortest valid ciphertext (of an empty plaintext).
pub const MIN_CIPHERTEXT_LEN: usize = 28;

/// Checks a location or credential name: `[A-Za-z0-9._-]{1,64}`.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} name {} is longer than {MAX_NAME_BYTES} characters",
            echo(name)
        ));
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
    let bad = |why: &str| Err(format!("invalid bucket name {}: {why}", echo(bucket)));
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
        return Err(format!("prefix {} contains a control character", echo(prefix)));
    }
    Ok(())
}

fn validate_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| format!("endpoint {} must start with http:// or https://", echo(endpoint)))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || endpoint.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "endpoint {} is not a URL like https://host[:port]",
            echo(endpoint)
        ));
    }
    Ok(())
}

fn validate_region(region: &str) -> Result<(), String> {
    if region.len() > 64
        || !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("region {} is not a region name like eu-west-1", echo(region)));
    }
    Ok(())
}

/// Checks a storage class name: `[A-Z0-9_]{1,64}` (any S3-compatible store may define its own).
pub fn validate_storage_class(sc: &str) -> Result<(), String> {
    if sc.len() > 64
        || !sc
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "storage class {} is not a storage class like STANDARD, STANDARD_IA or GLACIER_IR",
            echo(sc)
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
            // No credential: the nodes' default AWS credential chain (environment, profile,
            // instance role), as every AWS tool does (accepted from 0.2.0; see `DEFAULT_CHAIN_SINCE`).
            if !l.credential.is_empty() {
                validate_name("credential", &l.credential).map_err(ctx)?;
            }
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
                    "fs path {} must be absolute (the same directory on every node)",
                    echo(&l.fs_path)
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
                    "role ARN {} is not like arn:aws:iam::123456789012:role/NAME",
                    echo(&c.role_arn)
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

/// A job path: relative ("" or not starting with '/'), no `.`/`..` segment, ends with '/' when
/// not empty (a folder of the location).
pub fn validate_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Ok(());
    }
    if p.starts_with('/') {
        return Err("must be relative to the location (no leading '/')".into());
    }
    if p.split('/').any(|s| s == "." || s == "..") {
        return Err("must stay inside its location ('.' and '..' are not allowed)".into());
    }
    if !p.ends_with('/') {
        return Err("must name a folder and end with '/'".into());
    }
    Ok(())
}

/// A job path in its normal form: "" (the location root) or a folder ending in '/'. `photos`
/// means `photos/`; surrounding blanks are dropped. Whether it stays inside its location is for
/// `mesh_raft::jobs::validate_path` to say.
pub fn normalize_path(p: &str) -> String {
    let p = p.trim();
    if p.is_empty() || p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    }
}

/// The spec as it will be proposed: paths normalised, tier and verify lowercased, SSE in its
/// canonical spelling (`aes256` → `AES256`, `kms` → `aws:kms`).
pub fn normalize_spec(spec: &pb::JobSpec) -> pb::JobSpec {
    let mut s = spec.clone();
    s.src_location = s.src_location.trim().to_string();
    s.dst_location = s.dst_location.trim().to_string();
    s.src_path = normalize_path(&s.src_path);
    s.dst_path = normalize_path(&s.dst_path);
    s.tier = s.tier.trim().to_ascii_lowercase();
    s.verify = s.verify.trim().to_ascii_lowercase();
    s.storage_class = s.storage_class.trim().to_string();
    s.kms_key_id = s.kms_key_id.trim().to_string();
    s.sse = match s.sse.trim().to_ascii_lowercase().as_str() {
        "aes256" => "AES256".into(),
        "aws:kms" | "kms" => "aws:kms".into(),
        _ => s.sse.trim().to_string(),
    };
    s
}

/// Parses `<n>ms`, `<n>s`, `<n>m` or `<n>h` (n a non-negative integer).
///
/// This grammar and [`parse_size`]'s are part of the replicated contract: the state machine
/// validates `SetSetting` values with them on every node, so widening them (as `humantime` or
/// `bytesize` would: `1h 30m`, `1.5GiB`) would make old and new nodes disagree on what a log
/// entry means. They stay hand-written and frozen; display formatting uses the crates.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let form = "expected a duration like 500ms, 10s, 5m or 1h";
    let (num, mult_ms): (&str, u64) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        return Err(format!("{}: {form}", echo(s)));
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{}: {form}", echo(s)));
    }
    let n: u64 = num.parse().map_err(|_| format!("{}: number too large", echo(s)))?;
    let ms = n
        .checked_mul(mult_ms)
        .ok_or_else(|| format!("{}: duration too large", echo(s)))?;
    Ok(Duration::from_millis(ms))
}

/// Parses a size: a whole number of bytes, optionally with a unit `B`, `KiB`, `MiB`, `GiB`, `TiB`
/// (powers of 1024) or `KB`, `MB`, `GB`, `TB` (powers of 1000); `K`, `M`, `G`, `T` mean the
/// binary units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let form = "expected a size like 1048576, 64KiB, 512MiB, 1GiB or 10MB";
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || t != s {
        return Err(format!("{}: {form}", echo(s)));
    }
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(format!("{}: {form}", echo(s))),
    };
    let n: u64 = num.parse().map_err(|_| format!("{}: number too large", echo(s)))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{}: size too large", echo(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_cuts_long_input_and_says_its_length() {
        assert_eq!(echo("abc"), "\"abc\"");
        let long = "é".repeat(1000);
        let e = echo(&long);
        assert!(e.starts_with(&format!("{:?}", "é".repeat(ECHO_CHARS))), "{e}");
        assert!(e.ends_with("(2000 bytes)"), "{e}");
        let e = validate_name("location", &"n".repeat(1 << 20)).unwrap_err();
        assert!(e.len() < 200 && e.contains("1048576 bytes"), "{e}");
    }

    #[test]
    fn endpoints_must_be_urls_without_credentials() {
        for ok in [
            "https://s3.eu-west-1.amazonaws.com",
            "http://127.0.0.1:8333",
            "http://[::1]:9000",
            "https://minio.lan/s3",
        ] {
            check_endpoint_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("http://[::1", "invalid IPv6"),
            ("ftp://host", "http:// or https://"),
            ("https://user:pw@host", "user name or password"),
            ("https://host/?x=1", "query"),
            ("host:9000", "http:// or https://"),
        ] {
            let e = check_endpoint_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn fs_roots_are_normalised_and_never_escape() {
        assert_eq!(normalize_fs_root("/data//mesh/").unwrap(), "/data/mesh");
        assert_eq!(normalize_fs_root("/").unwrap(), "/");
        for (bad, why) in [
            ("/tmp/../etc", "\"..\" segment"),
            ("/a/./b", "\".\" segment"),
            ("relative", "absolute"),
            ("/a\0b", "control character"),
        ] {
            let e = normalize_fs_root(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(normalize_fs_root(&format!("/{}", "a".repeat(5000))).is_err());
    }

    #[test]
    fn storage_classes_of_amazon_and_of_compatible_stores() {
        check_storage_class_for("", "GLACIER_IR").unwrap();
        check_storage_class_for("https://s3.us-east-1.amazonaws.com", "DEEP_ARCHIVE").unwrap();
        let e = check_storage_class_for("", "COLD_AS_ICE").unwrap_err();
        assert!(
            e.contains("not an Amazon S3 storage class") && e.contains("STANDARD_IA"),
            "{e}"
        );
        assert!(check_storage_class_for("https://bucket.s3.amazonaws.com.cn", "COLD_AS_ICE").is_err());
        check_storage_class_for("http://127.0.0.1:8333", "COLD_AS_ICE").unwrap();
        assert!(check_storage_class_for("http://127.0.0.1:8333", "cold as ice").is_err());
    }

    #[test]
    fn job_specs_are_bounded() {
        let mut s = pb::JobSpec {
            src_location: "a".into(),
            dst_location: "b".into(),
            ..Default::default()
        };
        check_spec_bounds(&s).unwrap();
        s.rules = vec![
            pb::FilterRule {
                include: true,
                glob: "*".into()
            };
            MAX_FILTER_RULES + 1
        ];
        assert!(check_spec_bounds(&s).unwrap_err().contains("at most 1000"));
        s.rules.truncate(MAX_FILTER_RULES);
        check_spec_bounds(&s).unwrap();
        s.rules = vec![pb::FilterRule {
            include: true,
            glob: "g".repeat(MAX_GLOB_BYTES + 1),
        }];
        assert!(check_spec_bounds(&s).unwrap_err().contains("1025 bytes long"));
        s.rules.clear();
        s.dst_path = "a\0/".into();
        assert!(check_spec_bounds(&s).unwrap_err().contains("control character"));
        s.dst_path = format!("{}/", "p".repeat(MAX_PATH_BYTES));
        assert!(check_spec_bounds(&s).unwrap_err().contains("at most 1024"));
        s.dst_path.clear();
        s.dst_location = "bad name".into();
        assert!(check_spec_bounds(&s).unwrap_err().contains("destination location name"));
    }

    #[test]
    fn an_s3_location_without_a_credential_uses_the_default_chain() {
        let l = pb::Location {
            name: "aws".into(),
            kind: LocationKind::S3 as i32,
            bucket: "my-bucket".into(),
            ..Default::default()
        };
        assert_eq!(admit_location(&l).unwrap().credential, "");
    }

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
