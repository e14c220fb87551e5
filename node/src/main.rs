//! `meshd`: parses the configuration, sets up logging, runs the node, and maps the outcome to an
//! exit code (0 clean stop, 1 failure, 2 bad input).

use clap::Parser;
use mesh_node::config::{Args, Config};
use mesh_node::run::{run, RunError};

fn main() {
    let args = Args::parse();
    if args.man {
        use std::io::Write;
        let _ = std::io::stdout().write_all(&Args::man_page());
        return;
    }
    let cfg = match Config::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meshd: {e}");
            eprintln!("run `meshd --help` for every flag and config key");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cfg.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match rt.block_on(run(cfg)) {
        Ok(()) => 0,
        Err(RunError::Input(e)) => {
            eprintln!("meshd: {e}");
            2
        }
        Err(RunError::Failed(e)) => {
            eprintln!("meshd: {e}");
            1
        }
    };
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
