//! `meshctl completion SHELL` and `meshctl man --dir DIR`: shell completion scripts
//! (`clap_complete`) and roff man pages (`clap_mangen`), generated from the [`crate::cli`] definition.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::session::write_out;
use crate::cli::{Cli, CompletionShell};
use crate::errors::CliError;

/// `completion bash|zsh|fish`: the script on `out`.
pub fn completion(shell: CompletionShell, out: &mut dyn Write) -> Result<(), CliError> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    // Rendered in memory first: clap_complete panics on a write error (e.g. a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "meshctl", &mut script);
    write_out(out, &String::from_utf8_lossy(&script))
}

/// `man --dir DIR`: writes `meshctl.1` and `meshctl-<subcommand>[-<subcommand>].1` into `dir`
/// (created if missing) and says how many pages it wrote.
pub fn man(dir: &Path) -> Result<String, CliError> {
    let cannot = |what: &str, e: std::io::Error| {
        CliError::failed(format!("cannot {what} the man page directory {}: {e}", dir.display()))
            .with_hint("give --dir a directory you can write to")
    };
    std::fs::create_dir_all(dir).map_err(|e| cannot("create", e))?;
    // clap_mangen::generate_to, with the version in every page's footer (clap gives it to the
    // top-level command only).
    fn generate(cmd: clap::Command, dir: &Path, source: &str) -> std::io::Result<usize> {
        let mut pages = 1;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            pages += generate(sub, dir, source)?;
        }
        clap_mangen::Man::new(cmd).source(source).generate_to(dir)?;
        Ok(pages)
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let source = format!("meshctl {}", env!("CARGO_PKG_VERSION"));
    let pages = generate(cmd, dir, &source).map_err(|e| cannot("write into", e))?;
    Ok(format!("wrote {pages} man pages into {}\n", dir.display()))
}
