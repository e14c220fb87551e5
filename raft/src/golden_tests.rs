//! Data-driven ("golden") tests of [`crate::apply::apply_command`].
//!
//! Each `src/testdata/apply/*.txt` file is a script of blocks:
//!
//! ```text
//! # comment
//! set_setting at=5 name=node_ttl value=5s
//! ---
//! ok
//! ```
//!
//! A block is one command line, `---`, and the expected output up to a blank line. Commands:
//! `init_cluster`, `upsert_node`, `set_node_state`, `set_setting`, `delete_setting`,
//! `put_location`, `delete_location`, `put_credential` (`secret=N`/`token=N` stand for N bytes of
//! ciphertext; the dump shows them as `<enc N bytes>`), `delete_credential`, `noop`, `empty` (a
//! command with no kind) and `dump` (prints the tables). Arguments are `key=value`,
//! values may be double-quoted. Set `UPDATE_GOLDEN=1` to rewrite the expected output.
//!
//! Besides the expected text, the runner checks on every step that a refused command left the
//! tables unchanged, and at the end that replaying the same commands on fresh tables gives
//! byte-identical snapshot data (determinism).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mesh_proto::v1::{self as pb, command::Kind, NodeState};

use crate::apply::apply_command;
use crate::tables::{AppliedState, Tables};
use mesh_proto::names;

fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                has = true;
            }
            c if c.is_whitespace() && !quoted => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

fn parse_state(s: &str) -> i32 {
    match s {
        "unspecified" => NodeState::Unspecified as i32,
        "joining" => NodeState::Joining as i32,
        "active" => NodeState::Active as i32,
        "draining" => NodeState::Draining as i32,
        "down" => NodeState::Down as i32,
        "left" => NodeState::Left as i32,
        n => n.parse().unwrap_or_else(|_| panic!("bad state {n:?}")),
    }
}

/// Parses a command line into a Command, or None for `dump`.
fn parse_command(line: &str) -> Option<pb::Command> {
    let toks = tokenize(line);
    let (name, args) = toks.split_first().expect("empty command");
    let mut kv: BTreeMap<&str, &str> = BTreeMap::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .unwrap_or_else(|| panic!("argument {a:?} is not key=value"));
        kv.insert(k, v);
    }
    let s = |k: &str| kv.get(k).map(|v| v.to_string()).unwrap_or_default();
    let n = |k: &str| {
        kv.get(k)
            .map(|v| v.parse::<u64>().unwrap_or_else(|_| panic!("{k}={v} not a number")))
            .unwrap_or(0)
    };
    let kind = match name.as_str() {
        "dump" => return None,
        "empty" => None,
        "noop" => Some(Kind::Noop(pb::Noop {})),
        "init_cluster" => Some(Kind::InitCluster(pb::InitCluster {
            cluster_id: s("cluster_id"),
            root_token_sha256: s("token"),
            data_key_sha256: s("data_key"),
        })),
        "put_location" => Some(Kind::PutLocation(pb::PutLocation {
            location: if kv.contains_key("none") {
                None
            } else {
                Some(pb::Location {
                    name: s("name"),
                    kind: match kv.get("kind").copied().unwrap_or("") {
                        "s3" => pb::LocationKind::S3 as i32,
                        "fs" => pb::LocationKind::Fs as i32,
                        "" => 0,
                        n => n.parse().unwrap_or_else(|_| panic!("bad location kind {n:?}")),
                    },
                    bucket: s("bucket"),
                    prefix: s("prefix"),
                    region: s("region"),
                    endpoint: s("endpoint"),
                    path_style: kv.get("path_style") == Some(&"true"),
                    credential: s("credential"),
                    storage_class: s("storage_class"),
                    sse: s("sse"),
                    kms_key_id: s("kms_key_id"),
                    fs_path: s("path"),
                    tenant: s("tenant"),
                    created_at_ms: n("created_at"),
                    updated_at_ms: n("updated_at"),
                })
            },
            replace: kv.get("replace") == Some(&"true"),
        })),
        "delete_location" => Some(Kind::DeleteLocation(pb::DeleteLocation { name: s("name") })),
        "put_credential" => Some(Kind::PutCredential(pb::PutCredential {
            credential: if kv.contains_key("none") {
                None
            } else {
                // secret=N / token=N stand for N bytes of ciphertext.
                let enc = |k: &str| vec![0xA5u8; n(k) as usize];
                Some(pb::Credential {
                    name: s("name"),
                    kind: match kv.get("kind").copied().unwrap_or("") {
                        "default_chain" => pb::CredentialKind::DefaultChain as i32,
                        "static" => pb::CredentialKind::Static as i32,
                        "assume_role" => pb::CredentialKind::AssumeRole as i32,
                        "" => 0,
                        n => n.parse().unwrap_or_else(|_| panic!("bad credential kind {n:?}")),
                    },
                    access_key_id: s("access_key_id"),
                    secret_access_key_enc: enc("secret"),
                    session_token_enc: enc("token"),
                    role_arn: s("role_arn"),
                    external_id: s("external_id"),
                    via: s("via"),
                    key_fingerprint: s("key"),
                    created_at_ms: n("created_at"),
                    updated_at_ms: n("updated_at"),
                })
            },
            replace: kv.get("replace") == Some(&"true"),
        })),
        "delete_credential" => Some(Kind::DeleteCredential(pb::DeleteCredential { name: s("name") })),
        "upsert_node" => Some(Kind::UpsertNode(pb::UpsertNode {
            node: if kv.contains_key("none") {
                None
            } else {
                Some(pb::NodeRecord {
                    id: n("id"),
                    addr: s("addr"),
                    region: s("region"),
                    zone: s("zone"),
                    labels: kv
                        .get("labels")
                        .map(|l| {
                            l.split(',')
                                .filter(|p| !p.is_empty())
                                .map(|p| {
                                    let (k, v) = p.split_once(':').expect("label k:v");
                                    (k.to_string(), v.to_string())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    version: s("version"),
                    state: kv.get("state").map(|v| parse_state(v)).unwrap_or(0),
                    capacity_slots: n("slots") as u32,
                    joined_at_ms: n("joined_at"),
                    state_changed_at_ms: n("state_changed_at"),
                    state_reason: s("reason"),
                })
            },
        })),
        "set_node_state" => Some(Kind::SetNodeState(pb::SetNodeState {
            node_id: n("id"),
            state: kv.get("state").map(|v| parse_state(v)).unwrap_or(0),
            reason: s("reason"),
        })),
        "set_setting" => Some(Kind::SetSetting(pb::SetSetting {
            name: s("name"),
            value: s("value"),
        })),
        "delete_setting" => Some(Kind::DeleteSetting(pb::DeleteSetting { name: s("name") })),
        other => panic!("unknown command {other:?}"),
    };
    Some(pb::Command { at_ms: n("at"), kind })
}

fn dump(t: &Tables) -> String {
    let mut out = String::new();
    match &t.cluster {
        Some(c) if c.data_key_sha256.is_empty() => writeln!(
            out,
            "cluster id={} token={} created_at={}",
            c.cluster_id, c.root_token_sha256, c.created_at_ms
        ),
        Some(c) => writeln!(
            out,
            "cluster id={} token={} created_at={} data_key={}",
            c.cluster_id, c.root_token_sha256, c.created_at_ms, c.data_key_sha256
        ),
        None => writeln!(out, "cluster (none)"),
    }
    .unwrap();
    for n in t.nodes.values() {
        let labels: BTreeMap<_, _> = n.labels.iter().collect();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        writeln!(
            out,
            "node {} addr={} region={} zone={} version={} state={} slots={} joined_at={} state_changed_at={} reason={:?} labels=[{}]",
            n.id,
            n.addr,
            n.region,
            n.zone,
            n.version,
            names::node_state(n.state),
            n.capacity_slots,
            n.joined_at_ms,
            n.state_changed_at_ms,
            n.state_reason,
            labels.join(",")
        )
        .unwrap();
    }
    for s in t.settings.values() {
        writeln!(out, "setting {}={} updated_at={}", s.name, s.value, s.updated_at_ms).unwrap();
    }
    let enc = |b: &[u8]| {
        if b.is_empty() {
            "-".to_string()
        } else {
            format!("<enc {} bytes>", b.len())
        }
    };
    let or_dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    for c in t.credentials.values() {
        writeln!(
            out,
            "credential {} kind={} access_key_id={} secret={} token={} role_arn={} external_id={} via={} key={} created_at={} updated_at={}",
            c.name,
            names::credential_kind(c.kind),
            or_dash(&c.access_key_id),
            enc(&c.secret_access_key_enc),
            enc(&c.session_token_enc),
            or_dash(&c.role_arn),
            or_dash(&c.external_id),
            or_dash(&c.via),
            or_dash(&c.key_fingerprint),
            c.created_at_ms,
            c.updated_at_ms
        )
        .unwrap();
    }
    for l in t.locations.values() {
        match l.kind() {
            pb::LocationKind::Fs => writeln!(
                out,
                "location {} kind=fs path={} tenant={} created_at={} updated_at={}",
                l.name,
                l.fs_path,
                or_dash(&l.tenant),
                l.created_at_ms,
                l.updated_at_ms
            ),
            _ => writeln!(
                out,
                "location {} kind={} bucket={} prefix={:?} region={} endpoint={} path_style={} credential={} storage_class={} sse={} kms_key_id={} tenant={} created_at={} updated_at={}",
                l.name,
                names::location_kind(l.kind),
                l.bucket,
                l.prefix,
                or_dash(&l.region),
                or_dash(&l.endpoint),
                l.path_style,
                or_dash(&l.credential),
                or_dash(&l.storage_class),
                or_dash(&l.sse),
                or_dash(&l.kms_key_id),
                or_dash(&l.tenant),
                l.created_at_ms,
                l.updated_at_ms
            ),
        }
        .unwrap();
    }
    out.trim_end().to_string()
}

struct Block {
    command: String,
    expected: String,
}

fn parse_script(text: &str) -> (Vec<String>, Vec<Block>) {
    // Returns the leading comment lines of each block (kept for rewriting) and the blocks.
    let mut comments = Vec::new();
    let mut blocks = Vec::new();
    let mut lines = text.lines().peekable();
    let mut pending_comments = String::new();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            pending_comments.push_str(line);
            pending_comments.push('\n');
            continue;
        }
        let command = line.to_string();
        assert_eq!(
            lines.next().map(str::trim),
            Some("---"),
            "expected --- after {command:?}"
        );
        let mut expected = Vec::new();
        while let Some(l) = lines.peek() {
            if l.trim().is_empty() {
                break;
            }
            expected.push(lines.next().unwrap().to_string());
        }
        comments.push(std::mem::take(&mut pending_comments));
        blocks.push(Block {
            command,
            expected: expected.join("\n"),
        });
    }
    (comments, blocks)
}

fn run_file(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let (comments, blocks) = parse_script(&text);
    let mut tables = Tables::default();
    let mut commands = Vec::new();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let actual = match parse_command(&b.command) {
            None => dump(&tables),
            Some(cmd) => {
                let before = tables.clone();
                let resp = apply_command(&mut tables, &cmd);
                commands.push(cmd);
                if resp.error.is_empty() {
                    assert!(resp.reason.is_empty(), "{}: reason without error", b.command);
                    "ok".to_string()
                } else {
                    assert_eq!(before, tables, "{}: refused command changed the tables", b.command);
                    assert!(!resp.reason.is_empty(), "{}: error without reason", b.command);
                    format!("error {}: {}", resp.reason, resp.error)
                }
            }
        };
        if actual != b.expected {
            failures.push(format!(
                "{}:\n  {}\n---\nexpected:\n{}\nactual:\n{}",
                path.display(),
                b.command,
                b.expected,
                actual
            ));
        }
        if i > 0 {
            rewritten.push('\n');
        }
        write!(rewritten, "{}{}\n---\n{}\n", comments[i], b.command, actual).unwrap();
    }

    // Determinism: replaying the same commands on fresh tables gives identical snapshot bytes.
    let replay = |cmds: &[pb::Command]| {
        let mut t = Tables::default();
        for c in cmds {
            apply_command(&mut t, c);
        }
        AppliedState {
            tables: t,
            ..Default::default()
        }
        .encode_snapshot()
    };
    let final_bytes = AppliedState {
        tables: tables.clone(),
        ..Default::default()
    }
    .encode_snapshot();
    assert_eq!(
        replay(&commands),
        final_bytes,
        "{}: replay is not deterministic",
        path.display()
    );
    assert_eq!(replay(&commands), replay(&commands));

    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, rewritten).unwrap();
    } else if !failures.is_empty() {
        panic!("{} golden mismatch(es):\n{}", failures.len(), failures.join("\n\n"));
    }
}

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata/apply");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn golden_apply_scripts() {
    let files = scripts();
    assert!(files.len() >= 4, "golden scripts missing: {files:?}");
    for f in files {
        run_file(&f);
    }
}

#[test]
fn every_command_kind_is_covered() {
    let mut seen = std::collections::BTreeSet::new();
    for f in scripts() {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            if let Some(w) = line.split_whitespace().next() {
                seen.insert(w.to_string());
            }
        }
    }
    for c in [
        "init_cluster",
        "upsert_node",
        "set_node_state",
        "set_setting",
        "delete_setting",
        "noop",
        "empty",
        "dump",
        "put_location",
        "delete_location",
        "put_credential",
        "delete_credential",
    ] {
        assert!(seen.contains(c), "no golden script uses {c}");
    }
}

#[test]
fn tokenizer_keeps_quoted_spaces() {
    assert_eq!(tokenize(r#"a x="b c" d="" "#), vec!["a", "x=b c", "d="]);
}
