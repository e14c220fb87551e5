//! The command line: global connection flags and the noun-verb subcommands.
//!
//! Flags fall back to environment variables (clap's `env`), and those to the config file (see
//! [`crate::config`]). Usage errors detected by clap exit with code 2.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};

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
    /// gRPC address of any node: host:port or https://host:port; a comma-separated list
    /// (a:7400,b:7400) is tried in order, and `--wait`/`job watch` move on to the next address
    /// when a node goes away
    #[arg(long, env = "MESH_ADDR", global = true, value_name = "ADDR[,ADDR...]")]
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
    /// Named places data lives: S3 buckets (and prefixes) or directories
    #[command(subcommand)]
    Location(LocationCommand),
    /// How nodes obtain AWS credentials (secrets are stored encrypted, never shown)
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Copy objects: SRC and DST are LOCATION:PATH (LOCATION: or LOCATION alone = its root)
    Cp(TransferArgs),
    /// Move objects (each source object is deleted once its copy is verified)
    Mv(TransferArgs),
    /// Copy what is missing or changed; with --delete also remove destination objects that
    /// have no source
    Sync(SyncArgs),
    /// Copy jobs: list, show, watch, pause, resume, cancel, logs, report
    #[command(subcommand)]
    Job(JobCommand),
    /// What runs inside the nodes: background workers (leader duties and per-node duties)
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Print a shell completion script to stdout (bash, zsh or fish)
    Completion {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Write man pages (meshctl.1 and one page per subcommand, e.g. meshctl-job.1) into a directory
    Man {
        /// Directory to write the pages into (created if missing)
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Shells `meshctl completion` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash
    Bash,
    /// Z shell
    Zsh,
    /// fish
    Fish,
}

/// Nodes a job may spread over (the cluster settings tier.express|plus|ultra).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tier {
    /// Up to 4 nodes by default
    Express,
    /// Up to 12 nodes by default
    Plus,
    /// Up to 40 nodes by default
    Ultra,
}

impl Tier {
    /// The name the API takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Express => "express",
            Tier::Plus => "plus",
            Tier::Ultra => "ultra",
        }
    }
}

/// How a copy is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Verify {
    /// No check
    None,
    /// Sizes match
    Size,
    /// Sizes and ETags match (multipart ETags recomputed)
    Etag,
    /// Sizes and content checksums match
    Checksum,
}

impl Verify {
    /// The name the API takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::None => "none",
            Verify::Size => "size",
            Verify::Etag => "etag",
            Verify::Checksum => "checksum",
        }
    }
}

/// Accepted forms of `--bwlimit`.
pub const RATE_FORM: &str = "expected bytes per second like 50MiB/s, 100M or 1GB/s (units B, K/KiB, M/MiB, G/GiB, T/TiB, KB, MB, GB, TB; an optional /s)";

/// Parses a `--bwlimit` rate: a size (see `mesh_proto::rules::parse_size`) with an optional
/// `/s`, in bytes per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    mesh_proto::rules::parse_size(t).map_err(|_| format!("{s:?}: {RATE_FORM}"))
}

/// `meshctl cp|mv SRC DST ...`
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Source: LOCATION:PATH (a folder of the location; LOCATION: is its root)
    #[arg(value_name = "SRC")]
    pub src: String,
    /// Destination: LOCATION:PATH
    #[arg(value_name = "DST")]
    pub dst: String,
    /// Options shared by cp, mv and sync.
    #[command(flatten)]
    pub opts: JobOptions,
}

/// `meshctl sync SRC DST [--delete] ...`
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Source and destination, and the shared options.
    #[command(flatten)]
    pub transfer: TransferArgs,
    /// Delete destination objects that have no source (never in a range that had errors)
    #[arg(long)]
    pub delete: bool,
}

/// Options of cp, mv and sync.
#[derive(Debug, Args)]
pub struct JobOptions {
    /// How many nodes the job may spread over (default: the setting job.default_tier)
    #[arg(long, value_enum)]
    pub tier: Option<Tier>,
    /// Include and exclude rules, in command-line order.
    #[command(flatten)]
    pub filters: FilterArgs,
    /// How each copy is checked (default: size)
    #[arg(long, value_enum)]
    pub verify: Option<Verify>,
    /// Storage class of the objects written (default: the destination location's)
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Server-side encryption of the objects written (default: the destination location's)
    #[arg(long, value_name = "aes256|aws:kms", value_parser = ["aes256", "aws:kms"], ignore_case = true)]
    pub sse: Option<String>,
    /// KMS key id or ARN, with --sse aws:kms
    #[arg(long, value_name = "K")]
    pub kms_key: Option<String>,
    /// Bandwidth limit of the whole job, shared by its nodes: e.g. 50MiB/s, 100M, 1GB/s
    #[arg(long, value_name = "RATE", value_parser = parse_rate, allow_hyphen_values = true)]
    pub bwlimit: Option<u64>,
    /// List what would be done without copying or deleting anything
    #[arg(long)]
    pub dry_run: bool,
    /// Follow the job until it ends with a progress display; exit 0 only if it completed
    #[arg(long)]
    pub wait: bool,
}

/// One include (`true`) or exclude (`false`) glob.
pub type Rule = (bool, String);

/// `--include GLOB` and `--exclude GLOB`, repeatable, kept in the order they were given (the
/// first matching rule wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterArgs {
    /// The rules in command-line order.
    pub rules: Vec<Rule>,
}

const INCLUDE: &str = "include";
const EXCLUDE: &str = "exclude";

impl FromArgMatches for FilterArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut indexed: Vec<(usize, bool, String)> = Vec::new();
        for (id, include) in [(INCLUDE, true), (EXCLUDE, false)] {
            if let (Some(values), Some(indices)) = (m.get_many::<String>(id), m.indices_of(id)) {
                indexed.extend(values.zip(indices).map(|(v, i)| (i, include, v.clone())));
            }
        }
        indexed.sort_by_key(|(i, _, _)| *i);
        Ok(FilterArgs {
            rules: indexed.into_iter().map(|(_, inc, g)| (inc, g)).collect(),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for FilterArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            Arg::new(INCLUDE)
                .long(INCLUDE)
                .value_name("GLOB")
                .action(ArgAction::Append)
                .help("Only objects matching GLOB (relative to SRC; `*` within a folder, `**` across folders); repeatable, rules apply in order, first match wins"),
        )
        .arg(
            Arg::new(EXCLUDE)
                .long(EXCLUDE)
                .value_name("GLOB")
                .action(ArgAction::Append)
                .help("Skip objects matching GLOB; repeatable, in order with --include"),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Job states `job list --state` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum StateFilter {
    Queued,
    Planning,
    Running,
    Paused,
    Verifying,
    Cancelling,
    Completed,
    CompletedWithWarnings,
    Failed,
    Cancelled,
}

impl StateFilter {
    /// The job state it stands for.
    pub fn state(self) -> mesh_proto::v1::JobState {
        use mesh_proto::v1::JobState as S;
        match self {
            StateFilter::Queued => S::Queued,
            StateFilter::Planning => S::Planning,
            StateFilter::Running => S::Running,
            StateFilter::Paused => S::Paused,
            StateFilter::Verifying => S::Verifying,
            StateFilter::Cancelling => S::Cancelling,
            StateFilter::Completed => S::Completed,
            StateFilter::CompletedWithWarnings => S::CompletedWithWarnings,
            StateFilter::Failed => S::Failed,
            StateFilter::Cancelled => S::Cancelled,
        }
    }
}

/// `meshctl job ...`
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// List jobs, newest first
    List {
        /// Only jobs in this state
        #[arg(long, value_enum)]
        state: Option<StateFilter>,
        /// Answer from the contacted node's applied state (may be stale)
        #[arg(long)]
        local: bool,
    },
    /// Everything about one job, as JSON: state, counters, rate, ETA, nodes, failures
    Show {
        /// Job id (j-...)
        id: String,
        /// Answer from the contacted node's applied state (may be stale)
        #[arg(long)]
        local: bool,
    },
    /// Follow a job until it ends (progress bar on a terminal, a line every 2 s otherwise);
    /// exit 0 only if it completed
    Watch {
        /// Job id
        id: String,
    },
    /// Pause a job: its tasks are handed back, keeping their checkpoints
    Pause {
        /// Job id
        id: String,
    },
    /// Resume a paused job from its checkpoints
    Resume {
        /// Job id
        id: String,
    },
    /// Cancel a job: open tasks stop and unfinished multipart uploads are aborted
    Cancel {
        /// Job id
        id: String,
    },
    /// The job's event log: one line per event (time, node, text)
    Logs {
        /// Job id
        id: String,
    },
    /// Print the job's whole report (JSON lines: key, outcome, bytes, checksum, error) once it
    /// ended, fetched page by page
    Report {
        /// Job id
        id: String,
        /// Print at most this much of it, whole lines only (default: all of it)
        #[arg(long, value_name = "SIZE", value_parser = mesh_proto::rules::parse_size)]
        max_bytes: Option<u64>,
    },
}

/// `meshctl location ...`
#[derive(Debug, Subcommand)]
pub enum LocationCommand {
    /// Add a location (an S3 bucket/prefix or a directory on every node)
    #[command(group(clap::ArgGroup::new("target").required(true).args(["s3", "fs"])))]
    Add(LocationAddArgs),
    /// List the locations
    List {
        /// Answer from the contacted node's applied state (may be stale)
        #[arg(long)]
        local: bool,
    },
    /// Show one location and its credential (kind and key id only)
    Show {
        /// Location name
        name: String,
        /// Answer from the contacted node's applied state (may be stale)
        #[arg(long)]
        local: bool,
    },
    /// Remove a location (refused while a job uses it)
    Remove {
        /// Location name
        name: String,
    },
    /// Check that a location works, from the contacted node: list, head, region, clock, TLS.
    /// Prints each step and its outcome; exits 1 if any step failed
    Test {
        /// Location name
        name: String,
    },
}

/// `meshctl location add NAME ...`
#[derive(Debug, Args)]
pub struct LocationAddArgs {
    /// Location name: letters, digits, '.', '_' and '-' (at most 64)
    pub name: String,
    /// S3 bucket, optionally with a key prefix: BUCKET or BUCKET/PREFIX
    #[arg(long, value_name = "BUCKET[/PREFIX]", conflicts_with = "fs")]
    pub s3: Option<String>,
    /// A directory, the same absolute path on every node
    #[arg(long, value_name = "PATH")]
    pub fs: Option<String>,
    /// Bucket region (default: discovered from the bucket)
    #[arg(long, value_name = "R", requires = "s3")]
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible store (default: AWS)
    #[arg(long, value_name = "URL", requires = "s3")]
    pub endpoint: Option<String>,
    /// Address buckets in the path (http://host/bucket) instead of the host name
    #[arg(long, requires = "s3")]
    pub path_style: bool,
    /// Credential to access the bucket with (see `meshctl credential add`); default: each node's
    /// default AWS credential chain (environment, profile, web identity, ECS, instance role)
    #[arg(long, value_name = "C", requires = "s3")]
    pub credential: Option<String>,
    /// Default storage class of objects written here (e.g. STANDARD_IA)
    #[arg(long, value_name = "CLASS", requires = "s3")]
    pub storage_class: Option<String>,
    /// Default server-side encryption of objects written here: aes256 or aws:kms
    #[arg(long, value_name = "aes256|aws:kms", requires = "s3")]
    pub sse: Option<String>,
    /// KMS key id or ARN for --sse aws:kms (default: the AWS managed key)
    #[arg(long, value_name = "K", requires = "sse")]
    pub kms_key: Option<String>,
    /// Replace an existing location of the same name
    #[arg(long)]
    pub replace: bool,
}

/// `meshctl credential ...`
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Add a credential. Secrets are encrypted by the cluster before they are stored and are
    /// never shown again. To keep the secret off the command line, set MESH_SECRET_ACCESS_KEY
    /// (and MESH_SESSION_TOKEN) in the environment or pass --secret-access-key-stdin
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["default_chain", "access_key_id", "assume_role"])))]
    Add(CredentialAddArgs),
    /// List the credentials (kind and access key id; never a secret)
    List {
        /// Answer from the contacted node's applied state (may be stale)
        #[arg(long)]
        local: bool,
    },
    /// Remove a credential (refused while a location or another credential uses it)
    Remove {
        /// Credential name
        name: String,
    },
}

/// `meshctl credential add NAME ...`
#[derive(Debug, Args)]
pub struct CredentialAddArgs {
    /// Credential name: letters, digits, '.', '_' and '-' (at most 64)
    pub name: String,
    /// Use each node's default AWS credential chain (env, profile, web identity, ECS, instance role)
    #[arg(long)]
    pub default_chain: bool,
    /// Static access key id (with a secret access key, and a session token for STS keys)
    #[arg(long, value_name = "X")]
    pub access_key_id: Option<String>,
    /// Secret access key. Visible to other local users on a command line: prefer
    /// MESH_SECRET_ACCESS_KEY or --secret-access-key-stdin
    #[arg(
        long,
        value_name = "Y",
        requires = "access_key_id",
        conflicts_with = "secret_access_key_stdin"
    )]
    pub secret_access_key: Option<String>,
    /// Read the secret access key from the first line of stdin
    #[arg(long, requires = "access_key_id")]
    pub secret_access_key_stdin: bool,
    /// Session token of STS temporary keys (or MESH_SESSION_TOKEN)
    #[arg(long, value_name = "Z", requires = "access_key_id")]
    pub session_token: Option<String>,
    /// Assume this IAM role (arn:aws:iam::ACCOUNT:role/NAME)
    #[arg(long, value_name = "ARN")]
    pub assume_role: Option<String>,
    /// External id the role's trust policy requires
    #[arg(long, value_name = "E", requires = "assume_role")]
    pub external_id: Option<String>,
    /// Credential to assume the role with (default: the nodes' default chain)
    #[arg(long, value_name = "C", requires = "assume_role")]
    pub via: Option<String>,
    /// Replace an existing credential of the same name
    #[arg(long)]
    pub replace: bool,
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
        #[arg(long, default_value_t = mesh_pki::DEFAULT_CA_DAYS)]
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
        #[arg(long, default_value_t = mesh_pki::DEFAULT_CERT_DAYS)]
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

/// `meshctl operator ...`
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Background workers: name, scope, state, period, runs, failures, last run and last error
    Workers {
        /// The contacted node's own workers (default: the leader's, where the leader duties run)
        #[arg(long)]
        local: bool,
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
