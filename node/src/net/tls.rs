//! TLS material of a node: loads the cluster CA, the node certificate and key, checks that they
//! fit together and cover the address the node advertises, and builds the tonic server and
//! client configurations.
//!
//! One port serves everything over TLS. The server asks for a client certificate but does not
//! require one at the handshake: node-to-node services then insist on a certificate from the
//! cluster CA (see `auth`), client services on a bearer token. A certificate from another CA is
//! refused by the handshake itself.

use std::net::IpAddr;
use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use x509_parser::prelude::*;

use crate::config::TlsFiles;

/// Loaded PEM material.
#[derive(Clone)]
pub struct TlsMaterial {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

impl TlsMaterial {
    /// Reads and checks the files: each parses, the node certificate is issued by the CA, is
    /// currently valid, and covers `advertise_host` (an IP SAN for an IP, a DNS SAN for a name).
    pub fn load(files: &TlsFiles, advertise_host: &str) -> Result<TlsMaterial, TlsError> {
        let read = |p: &Path, what: &str| {
            std::fs::read(p).map_err(|e| TlsError(format!("cannot read the {what} {}: {e}", p.display())))
        };
        let ca_pem = read(&files.ca, "CA certificate (--tls-ca)")?;
        let cert_pem = read(&files.cert, "node certificate (--tls-cert)")?;
        let key_pem = read(&files.key, "node key (--tls-key)")?;
        let ca_der = first_cert_der(&ca_pem).map_err(|e| TlsError(format!("--tls-ca {}: {e}", files.ca.display())))?;
        let cert_der =
            first_cert_der(&cert_pem).map_err(|e| TlsError(format!("--tls-cert {}: {e}", files.cert.display())))?;
        if !String::from_utf8_lossy(&key_pem).contains("PRIVATE KEY") {
            return Err(TlsError(format!(
                "--tls-key {}: no PEM private key found",
                files.key.display()
            )));
        }
        let (_, ca) = X509Certificate::from_der(&ca_der)
            .map_err(|e| TlsError(format!("--tls-ca {}: not a valid certificate: {e}", files.ca.display())))?;
        let (_, cert) = X509Certificate::from_der(&cert_der).map_err(|e| {
            TlsError(format!(
                "--tls-cert {}: not a valid certificate: {e}",
                files.cert.display()
            ))
        })?;
        if cert.issuer() != ca.subject() {
            return Err(TlsError(format!(
                "--tls-cert {} was issued by `{}`, not by the cluster CA `{}` in --tls-ca {}; create the node certificate with the cluster's CA",
                files.cert.display(),
                cert.issuer(),
                ca.subject(),
                files.ca.display()
            )));
        }
        if !cert.validity().is_valid() {
            return Err(TlsError(format!(
                "--tls-cert {} is not valid now (valid {} to {})",
                files.cert.display(),
                cert.validity().not_before,
                cert.validity().not_after
            )));
        }
        let names = san_names(&cert);
        if !covers(&names, advertise_host) {
            return Err(TlsError(format!(
                "--tls-cert {} does not cover this node's address `{advertise_host}` (it names: {}); create a certificate for it with `meshctl tls cert create --node NAME {} {advertise_host}`",
                files.cert.display(),
                if names.is_empty() { "nothing".to_string() } else { names.join(", ") },
                if advertise_host.parse::<IpAddr>().is_ok() { "--ip" } else { "--dns" },
            )));
        }
        Ok(TlsMaterial {
            ca_pem,
            cert_pem,
            key_pem,
        })
    }

    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(true)
    }

    /// Client config for dialing a peer at `host`: trusts only the cluster CA and presents this
    /// node's certificate.
    pub fn client_config(&self, host: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(host.to_string())
    }

    /// rustls config of the metrics endpoint: the node certificate, no client certificate needed.
    pub fn metrics_server_config(&self) -> Result<std::sync::Arc<rustls::ServerConfig>, TlsError> {
        let certs = rustls_pemfile::certs(&mut &self.cert_pem[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError(format!("node certificate: {e}")))?;
        let key = rustls_pemfile::private_key(&mut &self.key_pem[..])
            .map_err(|e| TlsError(format!("node key: {e}")))?
            .ok_or_else(|| TlsError("node key: no private key found".into()))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError(format!("node certificate and key do not match: {e}")))?;
        Ok(std::sync::Arc::new(cfg))
    }

    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }
}

fn first_cert_der(pem: &[u8]) -> Result<Vec<u8>, String> {
    let mut reader = std::io::BufReader::new(pem);
    let first = rustls_pemfile::certs(&mut reader).next();
    match first {
        Some(Ok(der)) => Ok(der.to_vec()),
        Some(Err(e)) => Err(format!("not PEM: {e}")),
        None => Err("no PEM certificate found".to_string()),
    }
}

fn san_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => out.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => out.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()),
                    16 => out.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    out
}

fn covers(names: &[String], host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => names
            .iter()
            .any(|n| n.parse::<IpAddr>().map(|x| x == ip).unwrap_or(false)),
        Err(_) => names.iter().any(|n| {
            n.eq_ignore_ascii_case(host)
                || n.strip_prefix("*.")
                    .map(|suffix| {
                        host.split_once('.')
                            .map(|(_, rest)| rest.eq_ignore_ascii_case(suffix))
                            .unwrap_or(false)
                    })
                    .unwrap_or(false)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_by_ip_dns_and_wildcard() {
        let names = vec![
            "node1".to_string(),
            "127.0.0.5".to_string(),
            "*.mesh.internal".to_string(),
        ];
        assert!(covers(&names, "127.0.0.5"));
        assert!(!covers(&names, "127.0.0.6"));
        assert!(covers(&names, "NODE1"));
        assert!(covers(&names, "a.mesh.internal"));
        assert!(!covers(&names, "a.b.mesh.internal"));
        assert!(!covers(&names, "node2"));
    }
}
