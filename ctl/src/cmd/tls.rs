//! `tls ca create` and `tls cert create`: local files only, no connection (the work is
//! [`mesh_pki`]'s; this maps its errors to exit codes and hints).

use std::path::Path;

use mesh_pki::{NodeCertRequest, TlsError};

use crate::errors::CliError;
use crate::output::{self, Format};

/// `tls ca create --dir DIR [--force] [--days N]`.
pub fn ca_create(dir: &Path, force: bool, days: u32, format: Format) -> Result<String, CliError> {
    Ok(output::ca_created(
        &mesh_pki::create_ca(dir, force, days).map_err(tls_error)?,
        format,
    ))
}

/// `tls cert create --dir DIR --node NAME [--ip IP]... [--dns NAME]... [--days N]`.
pub fn cert_create(dir: &Path, req: &NodeCertRequest, format: Format) -> Result<String, CliError> {
    Ok(output::cert_created(
        &mesh_pki::create_node_cert(dir, req).map_err(tls_error)?,
        format,
    ))
}

fn tls_error(e: TlsError) -> CliError {
    let hint = e.hint();
    let base = if e.is_usage() {
        CliError::usage(e.to_string())
    } else {
        CliError::failed(e.to_string())
    };
    match hint {
        Some(h) => base.with_hint(h),
        None => base,
    }
}
