//! mesh-pki: the cluster CA and node certificates, used by `meshctl tls ca create` / `meshctl tls
//! cert create` and by `meshd --dev` (a self-signed CA and certificate for one local node).
//!
//! It sits below both binaries so that neither depends on the other: meshd needs certificate
//! creation for its dev mode, meshctl for the operator's CA, and both need exactly the same rules.
//!
//! Files in the CA directory: `ca.pem`, `ca-key.pem` (0600), and per node `NAME.pem`,
//! `NAME-key.pem` (0600). Node certificates have CN=NAME, SANs DNS:NAME, each `--dns`, each
//! `--ip`, and both serverAuth and clientAuth (nodes are servers and each other's clients).
//! Keys are ECDSA P-256. The CA is reloaded from its PEM files for every node certificate.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};

/// Default validity of a CA, in days.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Default validity of a node certificate, in days.
pub const DEFAULT_CERT_DAYS: u32 = 365;

/// Why a TLS file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Bad user input (node name, IP, DNS name, days).
    #[error("{0}")]
    Invalid(String),
    /// `tls ca create` found a CA and `--force` was not given.
    #[error("a CA already exists ({}): refusing to overwrite it", .0.display())]
    CaExists(PathBuf),
    /// `tls cert create` found no CA.
    #[error("no CA in {}: missing {}", .dir.display(), .missing.display())]
    NoCa {
        /// The directory given.
        dir: PathBuf,
        /// The first missing file.
        missing: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The CA files are unusable.
    #[error("bad CA in {}: {reason}", .path.display())]
    BadCa {
        /// ca.pem or ca-key.pem.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rcgen refused to build the certificate.
    #[error("cannot build the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

impl TlsError {
    /// Whether this is a usage error (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, TlsError::Invalid(_))
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            TlsError::CaExists(_) => {
                Some("pass --force to replace it; every node certificate must then be re-issued".into())
            }
            TlsError::NoCa { dir, .. } => Some(format!("run `meshctl tls ca create --dir {}` first", dir.display())),
            _ => None,
        }
    }
}

/// Files written by [`create_ca`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// `DIR/ca.pem`.
    pub cert: PathBuf,
    /// `DIR/ca-key.pem` (0600).
    pub key: PathBuf,
    /// Last day of validity, `YYYY-MM-DD`.
    pub not_after: String,
}

/// Input of [`create_node_cert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCertRequest {
    /// Node name: CN, first DNS SAN and file name.
    pub node: String,
    /// IP SANs, as text (validated).
    pub ips: Vec<String>,
    /// Extra DNS SANs.
    pub dns: Vec<String>,
    /// Validity in days.
    pub days: u32,
}

/// Files written by [`create_node_cert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCertFiles {
    /// `DIR/NAME.pem`.
    pub cert: PathBuf,
    /// `DIR/NAME-key.pem` (0600).
    pub key: PathBuf,
    /// The SANs, as `DNS:x` / `IP:y`.
    pub sans: Vec<String>,
    /// Last day of validity, `YYYY-MM-DD`.
    pub not_after: String,
}

fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.pem"), dir.join("ca-key.pem"))
}

/// Creates a new CA in `dir` (created if missing). Refuses to replace one unless `force`.
pub fn create_ca(dir: &Path, force: bool, days: u32) -> Result<CaFiles, TlsError> {
    check_days(days)?;
    let (cert_path, key_path) = ca_paths(dir);
    if !force {
        if let Some(existing) = [&cert_path, &key_path].into_iter().find(|p| p.exists()) {
            return Err(TlsError::CaExists(existing.clone()));
        }
    }
    create_dir(dir)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "bucketmesh");
    params
        .distinguished_name
        .push(DnType::CommonName, "bucketmesh cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let not_after = set_validity(&mut params, days);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(CaFiles {
        cert: cert_path,
        key: key_path,
        not_after,
    })
}

/// Issues a node certificate signed by the CA in `dir`; replaces an existing one for the same
/// node (renewal).
pub fn create_node_cert(dir: &Path, req: &NodeCertRequest) -> Result<NodeCertFiles, TlsError> {
    check_days(req.days)?;
    check_name(&req.node, "node name")?;
    if req.node == "ca" || req.node.ends_with("-key") {
        return Err(TlsError::Invalid(format!(
            "node name {:?} would clash with the CA or key files; pick another",
            req.node
        )));
    }
    let mut sans = vec![SanType::DnsName(ia5(&req.node)?)];
    let mut shown = vec![format!("DNS:{}", req.node)];
    for name in &req.dns {
        check_name(name.strip_prefix("*.").unwrap_or(name), "--dns name")?;
        if !shown.contains(&format!("DNS:{name}")) {
            sans.push(SanType::DnsName(ia5(name)?));
            shown.push(format!("DNS:{name}"));
        }
    }
    for ip in &req.ips {
        let parsed: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| TlsError::Invalid(format!("invalid --ip {ip:?}: not an IPv4 or IPv6 address")))?;
        if !shown.contains(&format!("IP:{parsed}")) {
            sans.push(SanType::IpAddress(parsed));
            shown.push(format!("IP:{parsed}"));
        }
    }
    let issuer = load_issuer(dir)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "bucketmesh");
    params.distinguished_name.push(DnType::CommonName, req.node.as_str());
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let not_after = set_validity(&mut params, req.days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let cert_path = dir.join(format!("{}.pem", req.node));
    let key_path = dir.join(format!("{}-key.pem", req.node));
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(NodeCertFiles {
        cert: cert_path,
        key: key_path,
        sans: shown,
        not_after,
    })
}

/// Reloads the CA of `dir` as an rcgen issuer, checking that key and certificate belong together.
fn load_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>, TlsError> {
    let (cert_path, key_path) = ca_paths(dir);
    for p in [&cert_path, &key_path] {
        if !p.exists() {
            return Err(TlsError::NoCa {
                dir: dir.to_path_buf(),
                missing: p.clone(),
            });
        }
    }
    let read = |p: &PathBuf| {
        fs::read(p).map_err(|source| TlsError::Io {
            path: p.clone(),
            source,
        })
    };
    let bad = |p: &PathBuf, reason: String| TlsError::BadCa {
        path: p.clone(),
        reason,
    };
    let key_pem = String::from_utf8(read(&key_path)?).map_err(|_| bad(&key_path, "not PEM".into()))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| bad(&key_path, e.to_string()))?;
    let cert_pem = read(&cert_path)?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&cert_pem)
        .map_err(|e| bad(&cert_path, format!("not a PEM certificate ({e})")))?;
    let x509 = pem.parse_x509().map_err(|e| bad(&cert_path, e.to_string()))?;
    if !x509.is_ca() {
        return Err(bad(&cert_path, "it is not a CA certificate".into()));
    }
    if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(bad(&key_path, "this key does not belong to ca.pem".into()));
    }
    let mut dn = DistinguishedName::new();
    for attr in x509.subject().iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| bad(&cert_path, "unsupported subject attribute".into()))?
            .collect();
        let text = attr
            .as_str()
            .map_err(|_| bad(&cert_path, "unsupported subject string".into()))?;
        let value = match attr.attr_value().header.tag() {
            x509_parser::der_parser::asn1_rs::Tag::PrintableString => DnValue::PrintableString(text.try_into()?),
            x509_parser::der_parser::asn1_rs::Tag::Ia5String => DnValue::Ia5String(text.try_into()?),
            _ => DnValue::Utf8String(text.to_string()),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    for ext in x509.extensions() {
        if let x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(ski) = ext.parsed_extension() {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski.0.to_vec());
        }
    }
    Ok(Issuer::new(params, key))
}

fn ia5(name: &str) -> Result<rcgen::string::Ia5String, TlsError> {
    name.try_into()
        .map_err(|_| TlsError::Invalid(format!("{name:?} is not an ASCII name")))
}

fn check_days(days: u32) -> Result<(), TlsError> {
    if days == 0 || days > 36500 {
        return Err(TlsError::Invalid("--days must be between 1 and 36500".into()));
    }
    Ok(())
}

/// A host-name-like label list: letters, digits, '-', '_' and '.', not starting with '-' or '.'.
fn check_name(name: &str, what: &str) -> Result<(), TlsError> {
    let invalid = |why: &str| TlsError::Invalid(format!("invalid {what} {name:?}: {why}"));
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(invalid(
            "it must not contain '/' (it becomes a file name and a DNS name)",
        ));
    }
    if name.len() > 253 {
        return Err(invalid("it is longer than 253 characters"));
    }
    if name.starts_with(['-', '.']) || name.ends_with('.') || name.contains("..") {
        return Err(invalid(
            "it must not start with '-' or '.', end with '.' or contain '..'",
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(invalid(&format!(
            "character {c:?} is not allowed (use letters, digits, '-', '_', '.')"
        )));
    }
    Ok(())
}

/// Valid from yesterday (clock skew) to today + `days` (UTC calendar days); returns the last day.
fn set_validity(params: &mut CertificateParams, days: u32) -> String {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let ymd = |d: jiff::civil::Date| rcgen::date_time_ymd(d.year() as i32, d.month() as u8, d.day() as u8);
    let from = today.yesterday().unwrap_or(today);
    let until = today
        .checked_add(jiff::Span::new().days(i64::from(days)))
        .unwrap_or(jiff::civil::Date::MAX);
    params.not_before = ymd(from);
    params.not_after = ymd(until);
    until.strftime("%Y-%m-%d").to_string()
}

fn create_dir(dir: &Path) -> Result<(), TlsError> {
    if dir.is_dir() {
        return Ok(());
    }
    let io = |source| TlsError::Io {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// Writes `data` to `path` with `mode`, also tightening the mode of a file that already existed.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(mode);
        let mut f = opts.open(path).map_err(io)?;
        f.set_permissions(fs::Permissions::from_mode(mode)).map_err(io)?;
        f.write_all(data).map_err(io)?;
        f.sync_all().map_err(io)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut f = opts.open(path).map_err(io)?;
        f.write_all(data).map_err(io)
    }
}
