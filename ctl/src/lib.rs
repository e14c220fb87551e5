//! meshctl: the admin CLI of a bucketmesh cluster, as a library.
//!
//! The binary (`src/main.rs`) only parses the command line and calls [`cmd::run`]. Everything
//! else lives here so that the end-to-end tests in `tests/` can reuse the client
//! ([`client::connect`]), and the error classification ([`errors`]).
//!
//! - [`cli`]: the clap command line (global `--addr/--token/--cacert/-o`, noun-verb subcommands).
//! - [`config`]: the `.meshctl.toml` fallback and flag > env > file resolution.
//! - [`client`]: a TLS + bearer-token gRPC connection to one meshd node.
//! - [`errors`]: turns transport, TLS and gRPC failures into messages with a hint and an exit code.
//! - [`cmd`]: the commands, one module per resource (`cmd::cluster`, `cmd::node`, `cmd::setting`,
//!   `cmd::location`, `cmd::credential`, `cmd::job`, `cmd::tls`) sharing `cmd::session`;
//!   [`cmd::run`] dispatches. `cmd::job::watch` is the `--wait` / `job watch` progress loop;
//!   `cmd::docs` writes shell completions and man pages (`completion`, `man`).
//! - [`output`]: table and JSON rendering, one module per resource (`output::cluster`, ...) on the
//!   shared helpers of `output::format`.

pub mod cli;
pub mod client;
pub mod cmd;
pub mod config;
pub mod errors;
pub mod output;
