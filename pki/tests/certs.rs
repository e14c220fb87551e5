//! `mesh_pki`: CA and node certificates checked with x509-parser.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;

use mesh_pki::{create_ca, create_node_cert, NodeCertRequest, TlsError};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::parse_x509_pem;

fn req(node: &str, ips: &[&str], dns: &[&str]) -> NodeCertRequest {
    NodeCertRequest {
        node: node.into(),
        ips: ips.iter().map(|s| s.to_string()).collect(),
        dns: dns.iter().map(|s| s.to_string()).collect(),
        days: 10,
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn ca_and_node_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = create_ca(dir.path(), false, 100).unwrap();
    assert_eq!(mode(&ca.key), 0o600);
    let files = create_node_cert(dir.path(), &req("node-a", &["127.0.0.1", "::1"], &["a.mesh.internal"])).unwrap();
    assert_eq!(files.cert, dir.path().join("node-a.pem"));
    assert_eq!(files.key, dir.path().join("node-a-key.pem"));
    assert_eq!(mode(&files.key), 0o600);
    assert!(std::fs::read_to_string(&files.key).unwrap().contains("PRIVATE KEY"));

    let ca_pem = std::fs::read(&ca.cert).unwrap();
    let (_, ca_pem) = parse_x509_pem(&ca_pem).unwrap();
    let ca_x509 = ca_pem.parse_x509().unwrap();
    assert!(ca_x509.is_ca());

    let pem = std::fs::read(&files.cert).unwrap();
    let (_, pem) = parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert!(!cert.is_ca());
    assert_eq!(cert.issuer().to_string(), ca_x509.subject().to_string());
    assert_ne!(cert.subject().to_string(), cert.issuer().to_string());
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cn, ["node-a"]);

    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let mut eku = None;
    let mut aki = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        GeneralName::IPAddress(b) => ips.push(match b.len() {
                            4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()),
                            _ => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()),
                        }),
                        other => panic!("unexpected SAN {other:?}"),
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(e) => eku = Some((e.server_auth, e.client_auth)),
            ParsedExtension::AuthorityKeyIdentifier(a) => aki = a.key_identifier.as_ref().map(|k| k.0.to_vec()),
            _ => {}
        }
    }
    assert_eq!(dns, ["node-a", "a.mesh.internal"]);
    assert_eq!(ips, ["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
    assert_eq!(eku, Some((true, true)));
    let ca_ski = ca_x509.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
        _ => None,
    });
    assert_eq!(aki, ca_ski, "authority key id matches the CA's subject key id");
}

#[test]
fn ca_is_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let first = create_ca(dir.path(), false, 10).unwrap();
    let key_before = std::fs::read(&first.key).unwrap();
    let err = create_ca(dir.path(), false, 10).unwrap_err();
    assert!(matches!(err, TlsError::CaExists(_)), "{err:?}");
    assert!(err.hint().unwrap().contains("--force"));
    assert_eq!(std::fs::read(&first.key).unwrap(), key_before);
    create_ca(dir.path(), true, 10).unwrap();
    assert_ne!(std::fs::read(&first.key).unwrap(), key_before);
    assert_eq!(mode(&first.key), 0o600);
}

#[test]
fn bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    create_ca(dir.path(), false, 10).unwrap();
    let err = create_node_cert(dir.path(), &req("n1", &["10.0.0.300"], &[])).unwrap_err();
    assert!(
        err.is_usage() && err.to_string().contains("invalid --ip \"10.0.0.300\""),
        "{err}"
    );
    for name in ["", "a/b", "../x", "ca", "with space", "-x"] {
        let err = create_node_cert(dir.path(), &req(name, &[], &[])).unwrap_err();
        assert!(err.is_usage(), "{name:?}: {err}");
    }
    let err = create_node_cert(dir.path(), &req("n1", &[], &["bad/name"])).unwrap_err();
    assert!(err.is_usage(), "{err}");
    assert!(!dir.path().join("n1.pem").exists());
}

#[test]
fn node_certificate_needs_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    let err = create_node_cert(dir.path(), &req("n1", &[], &[])).unwrap_err();
    assert!(matches!(err, TlsError::NoCa { .. }), "{err:?}");
    assert!(err.hint().unwrap().contains("tls ca create"));
}

#[test]
fn mismatched_ca_key_is_detected() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    create_ca(a.path(), false, 10).unwrap();
    create_ca(b.path(), false, 10).unwrap();
    std::fs::copy(b.path().join("ca-key.pem"), a.path().join("ca-key.pem")).unwrap();
    let err = create_node_cert(a.path(), &req("n1", &[], &[])).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
}
