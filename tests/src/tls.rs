//! The cluster PKI, made with the real `meshctl tls ca create` / `meshctl tls cert create`, so
//! the tests also cover the files meshctl writes (`ca.pem`, `NAME.pem`, `NAME-key.pem`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{bins, proc};

/// A CA directory as `meshctl tls ca create --dir D` lays it out.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
}

/// A node certificate and key.
#[derive(Debug, Clone)]
pub struct NodeCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Creates a new CA under `dir`.
    pub fn create(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let mut cmd = Command::new(bins::meshctl());
        cmd.args(["tls", "ca", "create", "--dir"]).arg(dir).current_dir(dir);
        let out = proc::run(cmd, Duration::from_secs(30));
        assert!(out.success(), "meshctl tls ca create failed: {}", out.describe());
        let pki = Pki { dir: dir.to_path_buf() };
        assert!(
            pki.ca().is_file(),
            "meshctl tls ca create did not write {}",
            pki.ca().display()
        );
        pki
    }

    /// `D/ca.pem`.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues (or returns the already issued) certificate for `name` with the given IP SANs.
    pub fn node_cert(&self, name: &str, ips: &[IpAddr], dns: &[&str]) -> NodeCert {
        let nc = NodeCert {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        if nc.cert.is_file() && nc.key.is_file() {
            return nc;
        }
        let mut cmd = Command::new(bins::meshctl());
        cmd.args(["tls", "cert", "create", "--dir"])
            .arg(&self.dir)
            .args(["--node", name]);
        for ip in ips {
            cmd.arg("--ip").arg(ip.to_string());
        }
        for d in dns {
            cmd.args(["--dns", d]);
        }
        cmd.current_dir(&self.dir);
        let out = proc::run(cmd, Duration::from_secs(30));
        assert!(out.success(), "meshctl tls cert create failed: {}", out.describe());
        assert!(
            nc.cert.is_file() && nc.key.is_file(),
            "meshctl tls cert create did not write {nc:?}"
        );
        nc
    }
}
