//! `meshctl` binary: parse the command line (clap exits 2 on usage errors), run the command,
//! print `error: ...` / `hint: ...` to stderr and exit 0, 1 (operation failed) or 2 (usage).

use std::process::ExitCode;

use clap::Parser;
use meshctl::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(meshctl::errors::EXIT_FAILED);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(meshctl::cmd::run(cli, &mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code)
        }
    }
}
