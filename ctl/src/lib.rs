//! meshctl: the admin CLI of a bucketmesh cluster, as a library.
//!
//! The binary (`src/main.rs`) only parses the command line and calls [`commands::run`]. Everything
//! else lives here so that the end-to-end tests in `tests/` can reuse the client
//! ([`client::connect`]), and the error classification ([`errors`]).
//!
//! - [`cli`]: the clap command line (global `--addr/--token/--cacert/-o`, noun-verb subcommands).
//! - [`config`]: the `.meshctl.toml` fallback and flag > env > file resolution.
//! - [`client`]: a TLS + bearer-token gRPC connection to one meshd node.
//! - [`errors`]: turns transport, TLS and gRPC failures into messages with a hint and an exit code.
//! - [`output`]: table and JSON rendering of every response.
//! - [`commands`]: one function per subcommand.
//! - [`jobs`]: `cp`, `mv`, `sync` and `job ...`, with the `--wait` / `job watch` progress loop.

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod errors;
pub mod jobs;
pub mod output;
