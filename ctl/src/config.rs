//! Connection settings: flag > environment > config file.
//!
//! clap already merges each flag with its environment variable (`MESH_ADDR`, `MESH_TOKEN`,
//! `MESH_CACERT`); what is still missing comes from the config file, `$MESH_CONFIG` if set
//! (it must exist) or else `./.meshctl.toml` (optional). Its keys are `addr`, `cacert`, `token`
//! and `token_file`; relative `cacert`/`token_file` paths are relative to the file's directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::GlobalArgs;
use crate::client::ClientOpts;
use crate::errors::CliError;

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "MESH_CONFIG";
/// Config file looked for in the current directory when `MESH_CONFIG` is unset.
pub const DEFAULT_CONFIG: &str = ".meshctl.toml";

/// The keys of a config file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Node address, like `--addr`.
    pub addr: Option<String>,
    /// CA file, like `--cacert`.
    pub cacert: Option<PathBuf>,
    /// Token, like `--token`.
    pub token: Option<String>,
    /// File holding the token (e.g. a node's `root-token`).
    pub token_file: Option<PathBuf>,
}

/// A loaded config file; its paths are already resolved against the file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its values.
    pub values: FileConfig,
}

/// Loads `$MESH_CONFIG` (an error if missing) or `./.meshctl.toml` (None if missing).
pub fn load_default() -> Result<Option<ConfigFile>, CliError> {
    match std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        Some(path) => load(Path::new(&path)).map(Some),
        None if Path::new(DEFAULT_CONFIG).exists() => load(Path::new(DEFAULT_CONFIG)).map(Some),
        None => Ok(None),
    }
}

/// Reads and checks one config file.
pub fn load(path: &Path) -> Result<ConfigFile, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::failed(format!("cannot read config file {}: {e}", path.display()))
            .with_hint(format!("fix or unset {CONFIG_ENV}"))
    })?;
    let mut values: FileConfig = toml::from_str(&text).map_err(|e| {
        CliError::failed(format!("config file {}: {}", path.display(), e.message()))
            .with_hint("allowed keys: addr, cacert, token, token_file (strings)")
    })?;
    if values.token.is_some() && values.token_file.is_some() {
        return Err(CliError::failed(format!(
            "config file {}: set either token or token_file, not both",
            path.display()
        )));
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    values.cacert = values.cacert.map(|p| dir.join(p));
    values.token_file = values.token_file.map(|p| dir.join(p));
    Ok(ConfigFile {
        path: path.to_path_buf(),
        values,
    })
}

/// Combines flags (already merged with the environment by clap) with the config file.
pub fn resolve(args: &GlobalArgs, file: Option<&ConfigFile>) -> Result<ClientOpts, CliError> {
    let fv = file.map(|f| f.values.clone()).unwrap_or_default();
    let addr = args
        .addr
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or(fv.addr)
        .ok_or_else(|| {
            CliError::usage("no node address given").with_hint(
                "pass --addr HOST:PORT or set MESH_ADDR, or run meshctl next to a `meshd --dev` \
             (it reads ./.meshctl.toml)",
            )
        })?;
    let cacert = args.cacert.clone().or(fv.cacert).ok_or_else(|| {
        CliError::usage("no CA certificate given").with_hint(
            "pass --cacert FILE or set MESH_CACERT (the ca.pem of the cluster), or add cacert to .meshctl.toml",
        )
    })?;
    let token = match (
        args.token.clone().filter(|t| !t.trim().is_empty()),
        fv.token,
        fv.token_file,
    ) {
        (Some(t), _, _) | (None, Some(t), _) => t,
        (None, None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| CliError::failed(format!("cannot read token file {}: {e}", path.display())))?,
        (None, None, None) => {
            return Err(CliError::usage("no token given").with_hint(
                "pass --token or set MESH_TOKEN (the root token is in <data-dir>/root-token of the \
                 node that bootstrapped the cluster), or add token_file to .meshctl.toml",
            ))
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(CliError::usage("the token is empty").with_hint("check MESH_TOKEN or the token file"));
    }
    Ok(ClientOpts { addr, cacert, token })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;

    fn args(addr: Option<&str>, token: Option<&str>, cacert: Option<&str>) -> GlobalArgs {
        GlobalArgs {
            addr: addr.map(Into::into),
            token: token.map(Into::into),
            cacert: cacert.map(Into::into),
            output: Format::Table,
        }
    }

    #[test]
    fn flags_win_over_file_and_relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(dir.path().join("tok"), "  secret\n").unwrap();
        std::fs::write(&path, "addr = \"f:1\"\ncacert = \"ca.pem\"\ntoken_file = \"tok\"\n").unwrap();
        let file = load(&path).unwrap();
        let opts = resolve(&args(None, None, None), Some(&file)).unwrap();
        assert_eq!(opts.addr, "f:1");
        assert_eq!(opts.cacert, dir.path().join("ca.pem"));
        assert_eq!(opts.token, "secret");
        let opts = resolve(&args(Some("a:2"), Some("t"), Some("/x.pem")), Some(&file)).unwrap();
        assert_eq!((opts.addr.as_str(), opts.token.as_str()), ("a:2", "t"));
        assert_eq!(opts.cacert, PathBuf::from("/x.pem"));
    }

    #[test]
    fn missing_values_are_usage_errors() {
        let e = resolve(&args(None, Some("t"), Some("c")), None).unwrap_err();
        assert_eq!(e.exit_code, 2);
        assert!(e.hint.unwrap().contains("MESH_ADDR"));
        let e = resolve(&args(Some("a:1"), None, Some("c")), None).unwrap_err();
        assert_eq!(e.exit_code, 2);
        assert!(e.message.contains("token"));
        let e = resolve(&args(Some("a:1"), Some("t"), None), None).unwrap_err();
        assert!(e.message.contains("CA"));
    }

    #[test]
    fn bad_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "adr = \"x\"\n").unwrap();
        assert!(load(&path).unwrap_err().message.contains("adr"));
        std::fs::write(&path, "token = \"a\"\ntoken_file = \"b\"\n").unwrap();
        assert!(load(&path).unwrap_err().message.contains("not both"));
        assert!(load(&dir.path().join("none.toml")).is_err());
    }
}
