//! `tls ca create` and `tls cert create` rendering: the files written and their validity.

use mesh_pki::{CaFiles, NodeCertFiles};
use serde::Serialize;

use super::format::{json, Format};

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
