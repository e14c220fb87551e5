//! The command line: global connection flags and the noun-verb subcommands.
//!
//! Flags fall back to environment variables (clap's `env`), and those to the config file (see
//! [`crate::config`]). Usage errors detected by clap exit with code 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

/// `meshctl`: administer a bucketmesh cluster.
#[derive(Debug, Parser)]
#[command(name = "meshctl", version, about = "Administer a bucketmesh cluster")]
pub struct Cli {
    /// Connection settings and output format, accepted before or after the subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// gRPC address of any node: host:port or https://host:port
    #[arg(long, env = "MESH_ADDR", global = true, value_name = "ADDR")]
    pub addr: Option<String>,
    /// Bearer token (the root token or an access token)
    #[arg(
        long,
        env = "MESH_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// PEM file of the cluster CA that signed the node certificates
    #[arg(long, env = "MESH_CACERT", global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

/// Top-level nouns.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the cluster CA and node certificates
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Cluster-wide status and leadership
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Cluster members
    #[command(subcommand)]
    Node(NodeCommand),
    /// Replicated cluster settings
    #[command(subcommand)]
    Setting(SettingCommand),
}

/// `meshctl tls ...`
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// The cluster certificate authority
    #[command(subcommand)]
    Ca(TlsCaCommand),
    /// Node certificates signed by the cluster CA
    #[command(subcommand)]
    Cert(TlsCertCommand),
}

/// `meshctl tls ca ...`
#[derive(Debug, Subcommand)]
pub enum TlsCaCommand {
    /// Create DIR/ca.pem and DIR/ca-key.pem
    Create {
        /// Directory to write the CA into (created if missing)
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Replace an existing CA (every node certificate must then be re-issued)
        #[arg(long)]
        force: bool,
        /// Validity in days
        #[arg(long, default_value_t = crate::tls::DEFAULT_CA_DAYS)]
        days: u32,
    },
}

/// `meshctl tls cert ...`
#[derive(Debug, Subcommand)]
pub enum TlsCertCommand {
    /// Create DIR/NAME.pem and DIR/NAME-key.pem signed by DIR/ca.pem
    Create {
        /// Directory holding ca.pem and ca-key.pem; the certificate is written there too
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Node name: the certificate's CN and first DNS name, and the file name
        #[arg(long, value_name = "NAME")]
        node: String,
        /// IP address SAN (repeatable)
        #[arg(long = "ip", value_name = "IP")]
        ips: Vec<String>,
        /// Extra DNS name SAN (repeatable)
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// Validity in days
        #[arg(long, default_value_t = crate::tls::DEFAULT_CERT_DAYS)]
        days: u32,
    },
}

/// `meshctl cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Leader, term, commit index and every node's health
    Status {
        /// Answer from the contacted node's applied state (may be stale, works without a leader)
        #[arg(long)]
        local: bool,
    },
    /// Hand leadership to another voter
    TransferLeader {
        /// Node id of the new leader (default: any up-to-date voter)
        #[arg(long, value_name = "ID")]
        to: Option<u64>,
    },
}

/// `meshctl node ...`
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List the cluster's nodes
    List {
        /// Answer from the contacted node's applied state (may be stale)
        #[arg(long)]
        local: bool,
    },
    /// Remove a node from the cluster (its id is never reused)
    Remove {
        /// Node id, as shown by `meshctl node list`
        #[arg(value_name = "ID")]
        id: u64,
    },
}

/// `meshctl setting ...`
#[derive(Debug, Subcommand)]
pub enum SettingCommand {
    /// Change a replicated setting
    Set {
        /// Setting name (see `meshctl setting list`)
        name: String,
        /// New value
        value: String,
    },
    /// Show one setting
    Get {
        /// Setting name
        name: String,
        /// Answer from the contacted node's applied state (may be stale)
        #[arg(long)]
        local: bool,
    },
    /// Show every setting with its value and default
    List {
        /// Answer from the contacted node's applied state (may be stale)
        #[arg(long)]
        local: bool,
    },
}
