//! Failure classification: every way a command can fail becomes a [`CliError`] with a message
//! that says what is wrong, an optional hint that says what to do, and an exit code.
//!
//! - Connection failures ([`ClientError`], from [`crate::client::connect`] or from a broken
//!   channel inside an RPC status) are sorted by walking the error's source chain: refused or
//!   timed-out connections name the address; rustls errors say which side rejected what.
//! - gRPC statuses ([`from_status`]) switch on the code and the `mesh-reason` metadata.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use tonic::{Code, Status};

/// Metadata key of the machine-readable reason meshd attaches to error statuses.
pub use mesh_proto::REASON_KEY;

const ADDR_HINT: &str = "check that the node is running and that --addr / MESH_ADDR names its gRPC port (default 7400)";

/// Exit code of a command that failed (RPC, connection, TLS or file error).
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a usage error (bad or missing arguments).
pub const EXIT_USAGE: u8 = 2;

/// A failure ready to print: `error: <message>` and optionally `hint: <hint>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Process exit code: [`EXIT_FAILED`] or [`EXIT_USAGE`].
    pub exit_code: u8,
}

impl CliError {
    /// An operation failure (exit code 1).
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            exit_code: EXIT_FAILED,
        }
    }

    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            exit_code: EXIT_USAGE,
        }
    }

    /// Adds a hint line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// Why a connection to a node could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An `http://` address: meshd has no plaintext listener.
    #[error("refusing plaintext address {addr}: meshd only accepts TLS connections")]
    Plaintext {
        /// The address as given.
        addr: String,
    },
    /// The address is not `host:port` or `https://host:port`.
    #[error("invalid address {addr:?}: {reason}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA file is missing, unreadable or holds no certificate.
    #[error("cannot use the CA certificate {}: {reason}", path.display())]
    CaCert {
        /// The CA file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The token cannot be put in an HTTP header.
    #[error("the token cannot be sent: {reason}")]
    BadToken {
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered at the address (refused, timed out, unknown host).
    #[error("meshd at {addr} is unreachable: {reason}")]
    Unreachable {
        /// host:port that was dialled.
        addr: String,
        /// Refused, timed out, ...
        reason: String,
    },
    /// TCP worked but the TLS handshake failed.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// host:port that was dialled.
        addr: String,
        /// Which side rejected what.
        reason: String,
        /// What to do.
        hint: String,
    },
}

impl ClientError {
    /// What to do about this error.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ClientError::Plaintext { .. } => "use host:port or https://host:port".into(),
            ClientError::BadAddress { .. } => "pass --addr HOST:PORT (or https://HOST:PORT)".into(),
            ClientError::CaCert { .. } => {
                "pass the cluster CA (ca.pem from `meshctl tls ca create`) with --cacert or MESH_CACERT".into()
            }
            ClientError::BadToken { .. } => "check MESH_TOKEN or the root-token file".into(),
            ClientError::Unreachable { .. } => ADDR_HINT.into(),
            ClientError::Tls { hint, .. } => hint.clone(),
        })
    }

    /// Whether this is the user's input being wrong (exit 2) rather than a failed operation.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ClientError::Plaintext { .. } | ClientError::BadAddress { .. } | ClientError::BadToken { .. }
        )
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let base = if e.is_usage() {
            CliError::usage(e.to_string())
        } else {
            CliError::failed(e.to_string())
        };
        match e.hint() {
            Some(h) => base.with_hint(h),
            None => base,
        }
    }
}

/// The error and its sources, looking inside `io::Error`s (whose `source()` skips the wrapped
/// error itself).
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        out.push(e);
        cur = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
        if out.len() > 32 {
            break;
        }
    }
    out
}

/// The whole chain as one line, `a: b: c`, skipping repeats.
pub fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain(err) {
        let s = e.to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// Sorts a transport-level failure (from `Endpoint::connect` or the source of an RPC status)
/// into unreachable or TLS, naming the address and, for an unknown issuer, the CA file.
pub fn classify_transport(err: &(dyn StdError + 'static), addr: &str, cacert: Option<&Path>) -> ClientError {
    let unreachable = |reason: &str| ClientError::Unreachable {
        addr: addr.into(),
        reason: reason.into(),
    };
    let tls = |reason: String, hint: &str| ClientError::Tls {
        addr: addr.into(),
        reason,
        hint: hint.into(),
    };
    for e in chain(err) {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            let (reason, hint) = rustls_reason(t, addr, cacert);
            return tls(reason, &hint);
        }
    }
    let text = chain_text(err);
    let lower = text.to_lowercase();
    for e in chain(err) {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return unreachable("connection refused"),
                io::ErrorKind::TimedOut => return unreachable("connection timed out"),
                io::ErrorKind::UnexpectedEof if lower.contains("tls") => return plaintext_server(addr),
                _ => {}
            }
        }
    }
    if lower.contains("connection refused") {
        unreachable("connection refused")
    } else if lower.contains("tls handshake eof") || lower.contains("corrupt message") {
        plaintext_server(addr)
    } else if lower.contains("tls handshake timeout") {
        tls("no TLS answer within the timeout".into(), ADDR_HINT)
    } else if lower.contains("http/2 was not negotiated") {
        tls(
            "the server does not speak gRPC (HTTP/2 was not negotiated)".into(),
            ADDR_HINT,
        )
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        unreachable(&format!("cannot resolve the host name ({text})"))
    } else if lower.contains("timed out") || lower.contains("elapsed") {
        unreachable("no answer within the connect timeout")
    } else {
        unreachable(&text)
    }
}

fn plaintext_server(addr: &str) -> ClientError {
    ClientError::Tls {
        addr: addr.into(),
        reason: "the server did not answer with TLS (is this a plaintext port, e.g. the metrics port?)".into(),
        hint: ADDR_HINT.into(),
    }
}

/// Which side rejected what, for a rustls error seen by meshctl.
fn rustls_reason(e: &rustls::Error, addr: &str, cacert: Option<&Path>) -> (String, String) {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let ca = cacert
        .map(|p| format!("the CA in {}", p.display()))
        .unwrap_or_else(|| "the given CA".into());
    let reissue = "re-issue it with `meshctl tls cert create --dir DIR --node NAME [--ip IP] [--dns NAME]`";
    let ca_hint = "pass the cluster CA that signed the node certificates with --cacert or MESH_CACERT";
    let host = addr
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(addr)
        .trim_matches(['[', ']']);
    match e {
        E::InvalidCertificate(c) => {
            let why = match c {
                C::UnknownIssuer | C::BadSignature => {
                    return (
                        format!("meshctl rejected the server's certificate: it is not signed by {ca}"),
                        ca_hint.into(),
                    )
                }
                C::NotValidForName => format!("it is not valid for the name {host}"),
                C::NotValidForNameContext { presented, .. } => {
                    let names: Vec<String> = presented.iter().map(|n| san_text(n)).collect();
                    format!("it is not valid for the name {host} (it names {})", names.join(", "))
                }
                C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet (check the clocks)".into(),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                    "it is not issued for server use (no serverAuth)".into()
                }
                other => format!("{other:?}"),
            };
            let hint = match c {
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    format!("connect with a name or IP the certificate names, or {reissue}")
                }
                _ => reissue.to_string(),
            };
            (format!("meshctl rejected the server's certificate: {why}"), hint)
        }
        E::AlertReceived(a) => {
            let hint = match a {
                A::CertificateRequired | A::BadCertificate | A::UnknownCA => {
                    "this port wants a client certificate (a node-to-node port?); meshctl authenticates with a token"
                }
                _ => ADDR_HINT,
            };
            (
                format!("the server refused the handshake (TLS alert {a:?})"),
                hint.into(),
            )
        }
        E::InvalidMessage(_) => match plaintext_server(addr) {
            ClientError::Tls { reason, hint, .. } => (reason, hint),
            _ => unreachable!(),
        },
        other => (format!("{other}"), ADDR_HINT.into()),
    }
}

/// `DnsName("n1")` / `IpAddress(127.0.0.1)` (rustls' rendering) to `n1` / `127.0.0.1`.
fn san_text(name: &str) -> String {
    let inner = ["DnsName(", "IpAddress("]
        .iter()
        .find_map(|p| name.strip_prefix(p).and_then(|r| r.strip_suffix(')')))
        .unwrap_or(name);
    inner.trim_matches('"').to_string()
}

/// Turns a gRPC status from meshd into a [`CliError`]; `addr` is the node that was called.
pub fn from_status(status: &Status, addr: &str) -> CliError {
    from_status_with_ca(status, addr, None)
}

/// Like [`from_status`], naming the CA file if the channel broke with a TLS error.
pub fn from_status_with_ca(status: &Status, addr: &str, cacert: Option<&Path>) -> CliError {
    let reason = status
        .metadata()
        .get(REASON_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let message = status.message().trim();
    if reason.as_deref().and_then(mesh_proto::Reason::parse) == Some(mesh_proto::Reason::NoLeader) {
        return CliError::failed(
            "the cluster has no leader yet (election in progress or quorum lost); retry in a few seconds",
        )
        .with_hint("read commands accept --local to answer from this node's (possibly stale) state");
    }
    match status.code() {
        Code::Unauthenticated => {
            let detail = if message.is_empty() {
                String::new()
            } else {
                format!(" (server: {message})")
            };
            CliError::failed(format!(
                "the token was refused: check MESH_TOKEN or the root-token file{detail}"
            ))
            .with_hint("the root token is in <data-dir>/root-token on the node that bootstrapped the cluster")
        }
        Code::Unavailable if reason.is_none() => {
            if let Some(src) = StdError::source(status) {
                return classify_transport(src, addr, cacert).into();
            }
            let text = if message.is_empty() { "unavailable" } else { message };
            CliError::failed(format!("meshd at {addr} is unavailable: {text}")).with_hint(ADDR_HINT)
        }
        Code::DeadlineExceeded => timeout(addr),
        Code::Cancelled if message.to_lowercase().contains("timeout") => timeout(addr),
        code => {
            let tag = reason.unwrap_or_else(|| format!("{code:?}"));
            let text = if message.is_empty() {
                code.description()
            } else {
                message
            };
            CliError::failed(format!("{text} [{tag}]"))
        }
    }
}

fn timeout(addr: &str) -> CliError {
    CliError::failed(format!("meshd at {addr} did not answer in time"))
        .with_hint("the node may be overloaded or cut off from the cluster; try another node, or --local for reads")
}
