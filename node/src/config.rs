//! meshd's start-up configuration: command-line flags, `MESHD_*` environment variables and an
//! optional TOML file with the same keys, merged with the precedence flag > env > file > default,
//! then validated into a [`Config`] the rest of the node trusts.
//!
//! Every validation error names the flag *and* the config key, says what is wrong and what to
//! do, and makes meshd exit with code 2 before it touches the data directory.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// Default gRPC port of a node.
pub const DEFAULT_PORT: u16 = 7400;

/// Command-line flags. Every field is optional here so that the config file can fill it; the
/// defaults are applied in [`Config::resolve`].
#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "meshd",
    version,
    about = "bucketmesh node: one of a mesh of identical nodes that move object data between buckets",
    long_about = "bucketmesh node. Identical meshd nodes form a Raft cluster; every node serves the gRPC API \
(TLS only) and runs copy work.\n\nStart a new mesh: run each node with --bootstrap-expect N --join <all N addresses>.\n\
Add a node to a running mesh: --join <any member's address>.\nTry it on one machine: meshd --dev.\n\n\
Every flag can also be given as a key of the --config TOML file (same name, '_' for '-') or as an \
environment variable MESHD_<NAME> (e.g. MESHD_DATA_DIR). Precedence: flag > environment > file > default."
)]
pub struct Args {
    /// TOML file with any of the keys below (e.g. data_dir = "/var/lib/meshd").
    #[arg(long, env = "MESHD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding this node's identity, Raft log and state. Created if missing.
    #[arg(long, env = "MESHD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the gRPC port binds to [default: 127.0.0.1:7400 with --dev].
    #[arg(long, env = "MESHD_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// Address other nodes and clients use to reach this node [default: --listen].
    #[arg(long, env = "MESHD_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Region of this node (used to place work near buckets).
    #[arg(long, env = "MESHD_REGION")]
    pub region: Option<String>,
    /// Availability zone; the autopilot spreads voters across zones.
    #[arg(long, env = "MESHD_ZONE")]
    pub zone: Option<String>,
    /// Form a new mesh once this many nodes (this one included) are reachable via --join.
    #[arg(long, env = "MESHD_BOOTSTRAP_EXPECT", value_name = "N")]
    pub bootstrap_expect: Option<u32>,
    /// Members to contact: with --bootstrap-expect, every initial member; alone, any member of a running mesh.
    #[arg(long, env = "MESHD_JOIN", value_delimiter = ',', value_name = "ADDR,...")]
    pub join: Vec<String>,
    /// PEM file of the cluster CA that signs every node certificate.
    #[arg(long, env = "MESHD_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM certificate of this node (made with `meshctl tls cert create`).
    #[arg(long, env = "MESHD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of this node's certificate.
    #[arg(long, env = "MESHD_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Address of the Prometheus metrics endpoint [default: listen IP, listen port + 1].
    #[arg(long, env = "MESHD_METRICS_LISTEN", value_name = "IP:PORT")]
    pub metrics_listen: Option<String>,
    /// Raft heartbeat interval [default: 150ms].
    #[arg(long, env = "MESHD_HEARTBEAT_INTERVAL", value_name = "DURATION")]
    pub heartbeat_interval: Option<String>,
    /// Minimum Raft election timeout; the maximum (and the leader lease) is twice this [default: 600ms].
    #[arg(long, env = "MESHD_ELECTION_TIMEOUT", value_name = "DURATION")]
    pub election_timeout: Option<String>,
    /// Take a snapshot and compact the log every N applied entries [default: 5000].
    #[arg(long, env = "MESHD_SNAPSHOT_EVERY", value_name = "N")]
    pub snapshot_every: Option<u64>,
    /// Log filter (tracing env-filter syntax) [default: info,openraft=warn].
    #[arg(long, env = "MESHD_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// One-command local node: single-node mesh, data in ./.local-mesh/dev, self-signed TLS,
    /// and a ./.meshctl.toml so plain `meshctl` commands work next to it.
    #[arg(long, env = "MESHD_DEV")]
    pub dev: bool,
    /// Print the meshd(1) man page (roff) to stdout and exit.
    #[arg(long, hide = true)]
    pub man: bool,
}

impl Args {
    /// The meshd(1) man page, in roff (`meshd --man`).
    pub fn man_page() -> Vec<u8> {
        let mut page = Vec::new();
        clap_mangen::Man::new(<Args as clap::CommandFactory>::command())
            .render(&mut page)
            .expect("rendering into memory does not fail");
        page
    }
}

/// The same keys, read from the TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    advertise: Option<String>,
    region: Option<String>,
    zone: Option<String>,
    bootstrap_expect: Option<u32>,
    join: Option<Vec<String>>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    metrics_listen: Option<String>,
    heartbeat_interval: Option<String>,
    election_timeout: Option<String>,
    snapshot_every: Option<u64>,
    log: Option<String>,
    dev: Option<bool>,
}

/// A start-up configuration error: which setting, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("invalid {}: {message}", describe(key))]
pub struct ConfigError {
    pub key: &'static str,
    pub message: String,
}

fn describe(key: &str) -> String {
    if key == "config" {
        "--config".to_string()
    } else {
        format!("--{} (config key `{}`)", key.replace('_', "-"), key)
    }
}

fn err(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        message: message.into(),
    }
}

/// TLS files of the node.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// host:port others dial.
    pub advertise: String,
    pub region: String,
    pub zone: String,
    /// 0 = do not bootstrap (join an existing mesh, or restart).
    pub bootstrap_expect: u32,
    pub join: Vec<String>,
    /// None only with --dev before the material is generated.
    pub tls: Option<TlsFiles>,
    pub metrics_listen: SocketAddr,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_every: u64,
    pub log: String,
    pub dev: bool,
}

impl Config {
    /// Merges flags (already merged with env by clap) with the optional file, applies defaults
    /// and validates.
    pub fn resolve(args: Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let dev = args.dev || file.dev.unwrap_or(false);

        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .or_else(|| dev.then(|| PathBuf::from(".local-mesh/dev")));
        let data_dir = data_dir.ok_or_else(|| {
            err(
                "data_dir",
                "missing: give the directory for this node's state, e.g. --data-dir /var/lib/meshd",
            )
        })?;
        if data_dir.as_os_str().is_empty() {
            return Err(err("data_dir", "is empty"));
        }

        let listen = args
            .listen
            .or(file.listen)
            .or_else(|| dev.then(|| format!("127.0.0.1:{DEFAULT_PORT}")));
        let listen = listen.ok_or_else(|| {
            err(
                "listen",
                format!("missing: give the address to bind, e.g. --listen 0.0.0.0:{DEFAULT_PORT}"),
            )
        })?;
        let listen: SocketAddr = listen.parse().map_err(|_| {
            err(
                "listen",
                format!("`{listen}` is not IP:PORT (e.g. 10.0.0.5:{DEFAULT_PORT})"),
            )
        })?;

        let advertise = match args.advertise.or(file.advertise) {
            Some(a) => {
                validate_host_port(&a).map_err(|m| err("advertise", m))?;
                a
            }
            None => {
                if listen.ip().is_unspecified() {
                    return Err(err(
                        "advertise",
                        format!("missing: --listen {listen} binds every interface, so give the address other nodes should dial, e.g. --advertise 10.0.0.5:{}", listen.port()),
                    ));
                }
                listen.to_string()
            }
        };

        let bootstrap_expect = args
            .bootstrap_expect
            .or(file.bootstrap_expect)
            .unwrap_or(if dev { 1 } else { 0 });
        let join = if args.join.is_empty() {
            file.join.unwrap_or_default()
        } else {
            args.join
        };
        let join: Vec<String> = join
            .into_iter()
            .map(|j| j.trim().to_string())
            .filter(|j| !j.is_empty())
            .collect();
        for j in &join {
            validate_host_port(j).map_err(|m| err("join", m))?;
        }
        if args.bootstrap_expect.is_some() || file.bootstrap_expect.is_some() {
            if bootstrap_expect == 0 {
                return Err(err(
                    "bootstrap_expect",
                    "must be at least 1 (the number of nodes that form the new mesh; 3 or 5 are typical)",
                ));
            }
            if bootstrap_expect > 1 && join.is_empty() {
                return Err(err("join", format!("missing: --bootstrap-expect {bootstrap_expect} needs the addresses of the initial members, e.g. --join 10.0.0.5:7400,10.0.0.6:7400,10.0.0.7:7400")));
            }
        }

        let tls = if dev && args.tls_ca.is_none() && file.tls_ca.is_none() {
            None
        } else {
            let ca = args.tls_ca.or(file.tls_ca).ok_or_else(|| {
                err(
                    "tls_ca",
                    "missing: give the cluster CA certificate (create one with `meshctl tls ca create --dir DIR`)",
                )
            })?;
            let cert = args.tls_cert.or(file.tls_cert).ok_or_else(|| err("tls_cert", "missing: give this node's certificate (create one with `meshctl tls cert create --dir DIR --node NAME --ip IP`)"))?;
            let key = args
                .tls_key
                .or(file.tls_key)
                .ok_or_else(|| err("tls_key", "missing: give the private key of this node's certificate"))?;
            for (k, p) in [("tls_ca", &ca), ("tls_cert", &cert), ("tls_key", &key)] {
                if !p.is_file() {
                    return Err(err(k, format!("{} does not exist or is not a file", p.display())));
                }
            }
            Some(TlsFiles { ca, cert, key })
        };

        let metrics_listen = match args.metrics_listen.or(file.metrics_listen) {
            Some(m) => m
                .parse()
                .map_err(|_| err("metrics_listen", format!("`{m}` is not IP:PORT")))?,
            None => SocketAddr::new(
                listen.ip(),
                listen.port().checked_add(1).ok_or_else(|| {
                    err(
                        "listen",
                        "port 65535 leaves no room for the metrics port; pick another or set --metrics-listen",
                    )
                })?,
            ),
        };
        if metrics_listen == listen {
            return Err(err("metrics_listen", "must differ from --listen"));
        }

        let heartbeat_interval = duration_of(
            "heartbeat_interval",
            args.heartbeat_interval.or(file.heartbeat_interval),
            Duration::from_millis(150),
        )?;
        let election_timeout = duration_of(
            "election_timeout",
            args.election_timeout.or(file.election_timeout),
            Duration::from_millis(600),
        )?;
        if heartbeat_interval.is_zero() {
            return Err(err("heartbeat_interval", "must be greater than zero"));
        }
        if election_timeout < heartbeat_interval * 3 {
            return Err(err("election_timeout", format!("must be at least 3 x --heartbeat-interval ({:?}) or followers start elections while the leader is healthy", heartbeat_interval)));
        }
        let snapshot_every = args.snapshot_every.or(file.snapshot_every).unwrap_or(5000);
        if snapshot_every == 0 {
            return Err(err("snapshot_every", "must be at least 1"));
        }
        Ok(Config {
            data_dir,
            listen,
            advertise,
            region: args.region.or(file.region).unwrap_or_default(),
            zone: args.zone.or(file.zone).unwrap_or_default(),
            bootstrap_expect,
            join,
            tls,
            metrics_listen,
            heartbeat_interval,
            election_timeout,
            snapshot_every,
            log: args
                .log
                .or(file.log)
                .unwrap_or_else(|| "info,openraft=warn".to_string()),
            dev,
        })
    }

    /// The IP outgoing peer connections are bound to: the listen IP when it is a specific one.
    pub fn source_ip(&self) -> Option<IpAddr> {
        let ip = self.listen.ip();
        (!ip.is_unspecified()).then_some(ip)
    }

    /// Host part of the advertised address (what the node certificate must cover).
    pub fn advertise_host(&self) -> &str {
        split_host_port(&self.advertise)
            .map(|(h, _)| h)
            .unwrap_or(&self.advertise)
    }
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| err("config", format!("{}: {e}", path.display())))
}

fn duration_of(key: &'static str, value: Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => mesh_proto::rules::parse_duration(&v).map_err(|m| err(key, m)),
    }
}

/// Splits `host:port` (IPv6 as `[::1]:7400`).
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (!host.is_empty() && port != 0).then_some((host, port))
}

fn validate_host_port(s: &str) -> Result<(), String> {
    if s.contains("://") {
        return Err(format!("`{s}` must be host:port without a scheme (all traffic is TLS)"));
    }
    split_host_port(s)
        .map(|_| ())
        .ok_or_else(|| format!("`{s}` is not host:port (e.g. 10.0.0.5:{DEFAULT_PORT})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        let mut v = vec!["meshd"];
        v.extend_from_slice(list);
        Args::try_parse_from(v).unwrap()
    }

    fn tls_files(dir: &Path) -> Vec<String> {
        for f in ["ca.pem", "n.pem", "n-key.pem"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        ["--tls-ca", "ca.pem", "--tls-cert", "n.pem", "--tls-key", "n-key.pem"]
            .iter()
            .map(|s| {
                if s.ends_with(".pem") {
                    dir.join(s).display().to_string()
                } else {
                    s.to_string()
                }
            })
            .collect()
    }

    #[test]
    fn man_page_renders() {
        let page = String::from_utf8(Args::man_page()).unwrap();
        assert!(page.contains(".TH meshd 1 "), "{page}");
        assert!(page.contains("data\\-dir") && !page.contains("\\-\\-man"), "{page}");
        assert!(args(&["--man"]).man);
    }

    #[test]
    fn minimal_flags_resolve_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = vec!["--data-dir", "/tmp/x", "--listen", "127.0.0.1:7400"];
        let tls = tls_files(dir.path());
        a.extend(tls.iter().map(|s| s.as_str()));
        let c = Config::resolve(args(&a)).unwrap();
        assert_eq!(c.advertise, "127.0.0.1:7400");
        assert_eq!(c.metrics_listen, "127.0.0.1:7401".parse().unwrap());
        assert_eq!(c.bootstrap_expect, 0);
        assert_eq!(c.election_timeout, Duration::from_millis(600));
    }

    #[test]
    fn errors_name_the_flag_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let tls = tls_files(dir.path());
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["--listen", "127.0.0.1:7400"], "--data-dir (config key `data_dir`)"),
            (vec!["--data-dir", "d"], "--listen"),
            (
                vec!["--data-dir", "d", "--listen", "nonsense"],
                "`nonsense` is not IP:PORT",
            ),
            (vec!["--data-dir", "d", "--listen", "0.0.0.0:7400"], "--advertise"),
            (
                vec![
                    "--data-dir",
                    "d",
                    "--listen",
                    "127.0.0.1:7400",
                    "--bootstrap-expect",
                    "0",
                ],
                "--bootstrap-expect",
            ),
            (
                vec![
                    "--data-dir",
                    "d",
                    "--listen",
                    "127.0.0.1:7400",
                    "--bootstrap-expect",
                    "3",
                ],
                "--join",
            ),
            (
                vec!["--data-dir", "d", "--listen", "127.0.0.1:7400", "--join", "https://a:1"],
                "without a scheme",
            ),
            (
                vec![
                    "--data-dir",
                    "d",
                    "--listen",
                    "127.0.0.1:7400",
                    "--election-timeout",
                    "10ms",
                ],
                "--election-timeout",
            ),
            (
                vec![
                    "--data-dir",
                    "d",
                    "--listen",
                    "127.0.0.1:7400",
                    "--heartbeat-interval",
                    "fast",
                ],
                "--heartbeat-interval",
            ),
        ];
        for (mut a, want) in cases {
            if !a.iter().any(|x| x.starts_with("--tls")) {
                a.extend(tls.iter().map(|s| s.as_str()));
            }
            let e = Config::resolve(args(&a)).unwrap_err().to_string();
            assert!(e.contains(want), "args {a:?}: error `{e}` should mention `{want}`");
        }
    }

    #[test]
    fn missing_tls_file_is_named() {
        let e = Config::resolve(args(&[
            "--data-dir",
            "d",
            "--listen",
            "127.0.0.1:7400",
            "--tls-ca",
            "/nope/ca.pem",
            "--tls-cert",
            "/nope/c",
            "--tls-key",
            "/nope/k",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("--tls-ca") && e.contains("/nope/ca.pem"), "{e}");
    }

    #[test]
    fn file_fills_in_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let tls = tls_files(dir.path());
        let file = dir.path().join("meshd.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\nlisten = \"127.0.0.2:9000\"\nregion = \"eu-west-1\"\n",
        )
        .unwrap();
        let mut a = vec!["--config", file.to_str().unwrap(), "--region", "us-east-1"];
        a.extend(tls.iter().map(|s| s.as_str()));
        let c = Config::resolve(args(&a)).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.listen, "127.0.0.2:9000".parse().unwrap());
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.source_ip(), Some("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn unknown_file_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("meshd.toml");
        std::fs::write(&file, "listen_addr = \"x\"\n").unwrap();
        let e = Config::resolve(args(&["--config", file.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_addr"), "{e}");
    }

    #[test]
    fn dev_needs_nothing_else() {
        let c = Config::resolve(args(&["--dev"])).unwrap();
        assert!(c.dev && c.tls.is_none());
        assert_eq!(c.bootstrap_expect, 1);
        assert_eq!(c.listen.port(), DEFAULT_PORT);
    }
}
