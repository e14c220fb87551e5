//! `meshd --dev`: everything a single local node needs, made on first start — a CA and node
//! certificate under `<data-dir>/tls` (made with meshctl's PKI code, the same a newcomer uses by
//! hand) and a `./.meshctl.toml` so that plain `meshctl` commands work next to it.

use std::path::{Path, PathBuf};

use mesh_pki::{create_ca, create_node_cert, NodeCertRequest};

use crate::cluster::identity::{write_atomic, ROOT_TOKEN_FILE};
use crate::config::{Config, TlsFiles};

const NODE_NAME: &str = "dev-node";

/// Creates the dev TLS material if missing and points the config at it.
pub fn prepare(cfg: &mut Config) -> Result<(), String> {
    let dir = cfg.data_dir.join("tls");
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{NODE_NAME}.pem")),
        key: dir.join(format!("{NODE_NAME}-key.pem")),
    };
    if !files.ca.exists() {
        create_ca(&dir, false, 3650).map_err(|e| format!("cannot create the dev CA in {}: {e}", dir.display()))?;
    }
    if !files.cert.exists() {
        let host = cfg.advertise_host().to_string();
        let mut ips = vec!["127.0.0.1".to_string()];
        let mut dns = vec!["localhost".to_string()];
        if host.parse::<std::net::IpAddr>().is_ok() {
            ips.push(host);
        } else {
            dns.push(host);
        }
        ips.dedup();
        create_node_cert(
            &dir,
            &NodeCertRequest {
                node: NODE_NAME.into(),
                ips,
                dns,
                days: 825,
            },
        )
        .map_err(|e| format!("cannot create the dev node certificate in {}: {e}", dir.display()))?;
    }
    cfg.tls = Some(files);
    Ok(())
}

/// Writes `./.meshctl.toml` pointing at this node, and returns what to tell the user.
pub fn write_meshctl_config(cfg: &Config) -> Result<String, String> {
    let abs = |p: &Path| -> PathBuf { std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()) };
    let data_dir = abs(&cfg.data_dir);
    let ca = abs(&cfg.tls.as_ref().expect("prepared").ca);
    let token_file = data_dir.join(ROOT_TOKEN_FILE);
    let text = format!(
        "# Written by `meshd --dev`: lets plain `meshctl` commands in this directory reach the dev node.\naddr = \"{}\"\ncacert = \"{}\"\ntoken_file = \"{}\"\n",
        cfg.advertise,
        ca.display(),
        token_file.display()
    );
    write_atomic(Path::new(".meshctl.toml"), text.as_bytes(), true)
        .map_err(|e| format!("cannot write ./.meshctl.toml: {e}"))?;
    Ok(format!(
        "dev node listening on {} (TLS). meshctl in this directory is configured by ./.meshctl.toml; elsewhere use:\n  export MESH_ADDR={} MESH_CACERT={} MESH_TOKEN=$(cat {})\n  meshctl cluster status",
        cfg.advertise,
        cfg.advertise,
        ca.display(),
        token_file.display()
    ))
}
