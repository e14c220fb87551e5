//! What every RPC command shares: a `Session` (connection settings resolved flags > env >
//! config file, a connection, and the context its failures are explained with), the read
//! consistency of `--local`, name checks, and writing the rendered output.

use std::io::Write;

use mesh_proto::rules;
use mesh_proto::v1::ReadConsistency;
use tonic::Status;

use crate::cli::GlobalArgs;
use crate::client::{connect, ClientOpts, Clients};
use crate::errors::{from_status_with_ca, CliError};

pub(crate) fn write_out(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::failed(format!("cannot write the output: {e}")))
        }
        _ => Ok(()),
    }
}

/// A connection plus what is needed to explain its failures.
pub(crate) struct Session {
    pub(crate) clients: Clients,
    pub(crate) opts: ClientOpts,
}

impl Session {
    pub(crate) async fn open(g: &GlobalArgs) -> Result<Session, CliError> {
        let file = crate::config::load_default()?;
        let opts = crate::config::resolve(g, file.as_ref())?;
        let clients = connect(&opts).await?;
        Ok(Session { clients, opts })
    }

    pub(crate) fn fail(&self, status: Status) -> CliError {
        from_status_with_ca(&status, &self.clients.addr, Some(&self.opts.cacert))
    }
}

pub(crate) fn consistency(local: bool) -> i32 {
    if local {
        ReadConsistency::Local
    } else {
        ReadConsistency::Linearizable
    }
    .into()
}

/// A location or credential name, checked as the cluster will (usage error: exit 2).
pub(crate) fn name_arg(what: &str, name: &str) -> Result<(), CliError> {
    rules::validate_name(what, name).map_err(CliError::usage)
}
