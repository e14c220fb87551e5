//! Locations and credentials on a real 3-node mesh (issue 3, replicated config):
//! - every node holds the same cluster data key, `<data-dir>/data-key`, mode 0600;
//! - a credential with a secret (from the environment, never on a command line) and locations are
//!   added through one node and listed from another, in table and JSON output;
//! - the secret appears in no node's log, no meshctl output and no file under any data dir;
//! - removals are refused while in use; bad input is refused (client-side usage errors exit 2,
//!   server refusals exit 1) and nothing is created;
//! - `location test` on fs locations reports each step and exits 1 when one fails;
//! - a node without the data key fetches it at start; one with another key refuses to start, and
//!   so does one that cannot fetch it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mesh_tests::cluster::CTL_TIMEOUT;
use mesh_tests::proc::{self, ProcOutput};
use mesh_tests::{wait_for, TestCluster};
use rand::Rng;

fn random_hex(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n).map(|_| format!("{:x}", rng.gen_range(0..16u8))).collect()
}

/// meshctl against node `i` with `-o FORMAT`, extra environment and (optionally) stdin.
fn ctl(c: &TestCluster, i: usize, format: &str, args: &[&str], env: &[(&str, &str)]) -> ProcOutput {
    let mut cmd: Command = c.ctl_command(i, &c.token());
    cmd.env_remove("MESH_SECRET_ACCESS_KEY")
        .env_remove("MESH_SESSION_TOKEN")
        .args(["-o", format])
        .args(args)
        .envs(env.iter().copied());
    proc::run(cmd, CTL_TIMEOUT)
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn data_key(c: &TestCluster, i: usize) -> Option<String> {
    std::fs::read_to_string(c.node(i).data_dir.join("data-key")).ok()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn locations_and_credentials_on_a_three_node_mesh() {
    let mut c = TestCluster::start_new(3);
    let secret = format!("SeCrEt{}", random_hex(32));
    let token = format!("ToKeN{}", random_hex(40));
    let mut outputs: Vec<ProcOutput> = Vec::new();

    // ---- the data key: on every node, 0600, identical.
    let key = wait_for(
        "every node to hold the cluster data key",
        Duration::from_secs(30),
        || {
            let keys: Vec<Option<String>> = (0..3).map(|i| data_key(&c, i)).collect();
            match keys.iter().all(|k| k.is_some()) && keys.windows(2).all(|w| w[0] == w[1]) {
                true => Ok(keys[0].clone().unwrap()),
                false => Err(format!(
                    "keys present: {:?}",
                    keys.iter().map(|k| k.is_some()).collect::<Vec<_>>()
                )),
            }
        },
    );
    assert_eq!(key.trim().len(), 64, "data key file should hold 32 bytes as hex");
    for i in 0..3 {
        let p = c.node(i).data_dir.join("data-key");
        assert_eq!(mode(&p), 0o600, "{} mode", p.display());
        assert!(!c.node(i).data_dir.join("data-key.pending").exists());
    }

    // ---- add a static credential (secret and session token from the environment) via node 1.
    let add = ctl(
        &c,
        1,
        "table",
        &["credential", "add", "keys", "--access-key-id", "AKIAE2ETESTKEY"],
        &[("MESH_SECRET_ACCESS_KEY", &secret), ("MESH_SESSION_TOKEN", &token)],
    );
    assert!(add.success(), "{}", add.describe());
    assert!(
        add.stdout
            .contains("added credential keys (static, access key id AKIAE2ETESTKEY + session token)"),
        "{}",
        add.stdout
    );
    outputs.push(add);
    // ... and from stdin, as JSON.
    let mut cmd = c.ctl_command(2, &c.token());
    cmd.env_remove("MESH_SECRET_ACCESS_KEY").args([
        "-o",
        "json",
        "credential",
        "add",
        "stdin-keys",
        "--access-key-id",
        "AKIASTDIN",
        "--secret-access-key-stdin",
    ]);
    let stdin_out = run_with_stdin(cmd, format!("{secret}\n"));
    assert!(stdin_out.success(), "{}", stdin_out.describe());
    let v = stdin_out.json().unwrap();
    assert_eq!(v["credential"]["kind"], "static");
    assert_eq!(v["credential"]["has_secret_access_key"], true);
    outputs.push(stdin_out);
    let chain = ctl(&c, 2, "json", &["credential", "add", "chain", "--default-chain"], &[]);
    assert!(chain.success(), "{}", chain.describe());
    outputs.push(chain);
    let role = ctl(
        &c,
        0,
        "table",
        &[
            "credential",
            "add",
            "mover",
            "--assume-role",
            "arn:aws:iam::123456789012:role/mover",
            "--via",
            "keys",
        ],
        &[],
    );
    assert!(role.success(), "{}", role.describe());
    outputs.push(role);

    // ---- locations via node 0.
    let fs_dir = c.root().join("fs-location");
    std::fs::create_dir_all(&fs_dir).unwrap();
    let fs_path = fs_dir.display().to_string();
    let missing_dir = c.root().join("no-such-dir").display().to_string();
    for args in [
        vec![
            "location",
            "add",
            "src",
            "--s3",
            "photos-2024//raw/jpeg",
            "--endpoint",
            "http://127.0.0.1:9",
            "--path-style",
            "--credential",
            "keys",
            "--sse",
            "aes256",
        ],
        vec![
            "location",
            "add",
            "dst",
            "--s3",
            "backup.example",
            "--region",
            "eu-west-1",
            "--credential",
            "mover",
            "--storage-class",
            "STANDARD_IA",
            "--sse",
            "aws:kms",
            "--kms-key",
            "alias/backup",
        ],
        vec!["location", "add", "local", "--fs", &fs_path],
        vec!["location", "add", "gone", "--fs", &missing_dir],
    ] {
        let o = ctl(&c, 0, "table", &args, &[]);
        assert!(o.success(), "{}", o.describe());
        outputs.push(o);
    }

    // ---- read from another node, table and JSON.
    let list = ctl(&c, 2, "json", &["location", "list"], &[]);
    assert!(list.success(), "{}", list.describe());
    let v = list.json().unwrap();
    let names: Vec<&str> = v["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dst", "gone", "local", "src"]);
    let src = &v["locations"][3];
    assert_eq!(src["kind"], "s3");
    assert_eq!(src["bucket"], "photos-2024");
    assert_eq!(src["prefix"], "raw/jpeg/", "prefix is normalised");
    assert_eq!(src["sse"], "AES256");
    assert_eq!(src["path_style"], true);
    outputs.push(list);
    let table = ctl(&c, 1, "table", &["location", "list"], &[]);
    assert!(
        table.success() && table.stdout.contains("s3://photos-2024/raw/jpeg/"),
        "{}",
        table.describe()
    );
    outputs.push(table);
    let show = ctl(&c, 2, "table", &["location", "show", "src"], &[]);
    assert!(show.success(), "{}", show.describe());
    assert!(
        show.stdout
            .contains("keys (static, access key id AKIAE2ETESTKEY + session token)"),
        "{}",
        show.stdout
    );
    outputs.push(show);
    let show = ctl(&c, 1, "json", &["location", "show", "dst"], &[]);
    assert!(show.success(), "{}", show.describe());
    assert_eq!(show.json().unwrap()["credential"]["kind"], "assume_role");
    outputs.push(show);
    for (i, format) in [(2, "json"), (0, "table"), (1, "json")] {
        let o = ctl(&c, i, format, &["credential", "list"], &[]);
        assert!(o.success(), "{}", o.describe());
        assert!(o.stdout.contains("AKIAE2ETESTKEY"), "{}", o.stdout);
        outputs.push(o);
    }
    let creds = ctl(&c, 0, "json", &["credential", "list", "--local"], &[])
        .json()
        .unwrap();
    let keys = creds["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "keys")
        .unwrap()
        .clone();
    assert_eq!(keys["kind"], "static");
    assert_eq!(keys["access_key_id"], "AKIAE2ETESTKEY");
    assert_eq!(keys["has_session_token"], true);
    assert_eq!(keys["used_by"], serde_json::json!(["location:src", "credential:mover"]));

    // ---- removals refused while in use (server refusal: exit 1).
    for name in ["keys", "mover"] {
        let o = ctl(&c, 1, "table", &["credential", "remove", name], &[]);
        assert_eq!(o.code, Some(1), "{}", o.describe());
        assert!(
            o.stderr.contains("in use by") && o.stderr.contains("IN_USE"),
            "{}",
            o.stderr
        );
        outputs.push(o);
    }

    // ---- bad input: refused, clear message, nothing created.
    let bad: &[(&[&str], i32, &str)] = &[
        (
            &["location", "add", "x1", "--s3", "some-bucket", "--credential", "nope"],
            1,
            "credential \"nope\" does not exist",
        ),
        (
            &["location", "add", "x3", "--s3", "Bad_Bucket", "--credential", "keys"],
            2,
            "invalid bucket name",
        ),
        (
            &["location", "add", "x4", "--fs", "relative/dir"],
            2,
            "must be absolute",
        ),
        (&["location", "add", "src", "--fs", "/tmp"], 1, "already exists"),
        (&["credential", "add", "keys", "--default-chain"], 1, "already exists"),
        (
            &[
                "credential",
                "add",
                "x5",
                "--assume-role",
                "arn:aws:iam::1:role/r",
                "--via",
                "nope",
            ],
            1,
            "does not exist",
        ),
        (&["location", "remove", "nope"], 1, "not found"),
    ];
    for (args, code, msg) in bad {
        let o = ctl(&c, 2, "table", args, &[]);
        assert_eq!(o.code, Some(*code), "{args:?}: {}", o.describe());
        assert!(o.stderr.contains(msg), "{args:?}: expected {msg:?}: {}", o.stderr);
        outputs.push(o);
    }
    let v = ctl(&c, 0, "json", &["location", "list"], &[]).json().unwrap();
    assert_eq!(
        v["locations"].as_array().unwrap().len(),
        4,
        "a refused add created something: {v}"
    );
    let v = ctl(&c, 0, "json", &["credential", "list"], &[]).json().unwrap();
    assert_eq!(v["credentials"].as_array().unwrap().len(), 4, "{v}");

    // ---- no --credential: the nodes' default AWS credential chain, as every AWS tool does.
    let o = ctl(
        &c,
        2,
        "table",
        &["location", "add", "chain", "--s3", "some-bucket"],
        &[],
    );
    assert_eq!(o.code, Some(0), "{}", o.describe());
    assert!(o.stdout.contains("default chain"), "{}", o.stdout);
    let o = ctl(&c, 0, "table", &["location", "show", "chain"], &[]);
    assert_eq!(o.code, Some(0), "{}", o.describe());
    assert!(o.stdout.contains("default AWS credential chain"), "{}", o.stdout);
    let o = ctl(&c, 0, "table", &["location", "remove", "chain"], &[]);
    assert_eq!(o.code, Some(0), "{}", o.describe());

    // ---- location test on fs locations: every step printed; exit 1 when one fails.
    let ok = ctl(&c, 1, "table", &["location", "test", "local"], &[]);
    assert_eq!(ok.code, Some(0), "{}", ok.describe());
    assert!(
        ok.stdout.contains("root directory") && ok.stdout.contains("result: ok"),
        "{}",
        ok.stdout
    );
    let failed = ctl(&c, 1, "table", &["location", "test", "gone"], &[]);
    assert_eq!(failed.code, Some(1), "{}", failed.describe());
    assert!(
        failed.stdout.contains("does not exist on this node") && failed.stdout.contains("FAILED"),
        "{}",
        failed.stdout
    );
    let failed_json = ctl(&c, 1, "json", &["location", "test", "gone"], &[]);
    assert_eq!(failed_json.code, Some(1), "{}", failed_json.describe());
    assert_eq!(failed_json.json().unwrap()["ok"], false);
    outputs.extend([ok, failed, failed_json]);

    // ---- the secret is nowhere: meshctl output, node logs, data dirs (sled included).
    let check_nowhere = |c: &TestCluster, outputs: &[ProcOutput], when: &str| {
        for o in outputs {
            for s in [&secret, &token] {
                assert!(
                    !o.stdout.contains(s.as_str()) && !o.stderr.contains(s.as_str()),
                    "{when}: a secret in meshctl output: {}",
                    o.cmdline
                );
            }
        }
        for i in 0..3 {
            let log = c.log_text(i);
            for s in [&secret, &token, &key.trim().to_string()] {
                assert!(
                    !log.contains(s.as_str()),
                    "{when}: a secret or the data key in node {i}'s log"
                );
            }
            let files = files_under(&c.node(i).data_dir);
            assert!(
                files.iter().any(|f| f.starts_with(c.node(i).data_dir.join("db"))),
                "no sled files?"
            );
            for f in files {
                let bytes = std::fs::read(&f).unwrap_or_default();
                for s in [&secret, &token] {
                    assert!(
                        !contains(&bytes, s.as_bytes()),
                        "{when}: the secret is in {}",
                        f.display()
                    );
                }
            }
        }
    };
    check_nowhere(&c, &outputs, "while stored");

    // ---- remove in dependency order.
    for args in [
        &["location", "remove", "src"][..],
        &["location", "remove", "dst"],
        &["credential", "remove", "mover"],
        &["credential", "remove", "keys"],
        &["location", "remove", "gone"],
    ] {
        let o = ctl(&c, 2, "table", args, &[]);
        assert!(o.success(), "{}", o.describe());
        outputs.push(o);
    }
    let v = ctl(&c, 1, "json", &["credential", "list"], &[]).json().unwrap();
    let names: Vec<&str> = v["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["chain", "stdin-keys"]);

    // ---- a node without its data key fetches it from a member when it starts.
    c.sigterm(2, Duration::from_secs(20));
    std::fs::remove_file(c.node(2).data_dir.join("data-key")).unwrap();
    c.restart(2);
    c.wait_ready(Duration::from_secs(30));
    wait_for(
        "node 2 to fetch the data key again",
        Duration::from_secs(20),
        || match data_key(&c, 2) {
            Some(k) if k == key => Ok(()),
            other => Err(format!("{:?}", other.map(|_| "different key"))),
        },
    );
    assert_eq!(mode(&c.node(2).data_dir.join("data-key")), 0o600);

    // ---- a node holding another data key refuses to start.
    c.sigterm(2, Duration::from_secs(20));
    std::fs::write(c.node(2).data_dir.join("data-key"), format!("{}\n", random_hex(64))).unwrap();
    c.restart(2);
    let st = c
        .wait_exit(2, Duration::from_secs(30))
        .expect("node with a foreign data key kept running");
    assert!(!st.success(), "exit {st:?}");
    let log = c.last_run_log(2);
    assert!(
        log.contains("is not this cluster's data key") && log.contains("refusing to start"),
        "{log}"
    );

    check_nowhere(&c, &outputs, "at the end");
}

/// A single-node cluster whose node lost its data key has nobody to fetch it from: it refuses to
/// start, saying why and what to do.
#[test]
fn a_node_that_cannot_fetch_the_data_key_refuses_to_start() {
    let mut c = TestCluster::start_new(1);
    wait_for("the data key", Duration::from_secs(30), || {
        data_key(&c, 0).ok_or_else(|| "no key yet".to_string())
    });
    c.sigterm(0, Duration::from_secs(20));
    std::fs::remove_file(c.node(0).data_dir.join("data-key")).unwrap();
    c.restart(0);
    let st = c
        .wait_exit(0, Duration::from_secs(40))
        .expect("node without its data key kept running");
    assert!(!st.success(), "exit {st:?}");
    let log = c.last_run_log(0);
    assert!(
        log.contains("data-key is missing") && log.contains("refusing to start"),
        "{log}"
    );
}

fn run_with_stdin(mut cmd: Command, input: String) -> ProcOutput {
    use std::io::Write;
    use std::process::Stdio;
    let cmdline = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshctl");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    ProcOutput {
        cmdline,
        code: out.status.code(),
        timed_out: false,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `meshctl location test` against a real S3 server (SeaweedFS enforcing one identity): the node
/// decrypts the stored secret and the probe passes; a missing bucket is diagnosed by name; a
/// wrong secret fails. Prints `SKIP: …` when SeaweedFS cannot be installed or started here.
#[test]
fn location_test_against_seaweedfs() {
    let secret = format!("SwSecret{}", random_hex(24));
    let Some(sw) = mesh_tests::seaweed::SeaweedFs::builder()
        .bucket("e2edata")
        .credentials("meshe2e", &secret)
        .start_or_skip()
    else {
        return;
    };
    let c = TestCluster::start_new(1);
    let endpoint = sw.endpoint();
    let env = [("MESH_SECRET_ACCESS_KEY", secret.as_str())];
    let mut outputs = Vec::new();
    let o = ctl(
        &c,
        0,
        "table",
        &["credential", "add", "sw", "--access-key-id", "meshe2e"],
        &env,
    );
    assert!(o.success(), "{}", o.describe());
    outputs.push(o);
    let wrong = [("MESH_SECRET_ACCESS_KEY", "not-the-secret")];
    let o = ctl(
        &c,
        0,
        "table",
        &["credential", "add", "sw-wrong", "--access-key-id", "meshe2e"],
        &wrong,
    );
    assert!(o.success(), "{}", o.describe());
    for (name, bucket, cred) in [
        ("good", "e2edata/some/prefix", "sw"),
        ("missing", "no-such-bucket", "sw"),
        ("denied", "e2edata", "sw-wrong"),
    ] {
        let o = ctl(
            &c,
            0,
            "table",
            &[
                "location",
                "add",
                name,
                "--s3",
                bucket,
                "--endpoint",
                &endpoint,
                "--path-style",
                "--region",
                "us-east-1",
                "--credential",
                cred,
            ],
            &[],
        );
        assert!(o.success(), "{}", o.describe());
    }
    // The bucket is created by `weed -bucket=` shortly after the S3 port opens.
    let good = wait_for("`location test good` to pass", Duration::from_secs(30), || {
        let o = ctl(&c, 0, "table", &["location", "test", "good"], &[]);
        if o.success() {
            Ok(o)
        } else {
            Err(o.describe())
        }
    });
    println!("{}", good.stdout);
    assert!(good.stdout.contains("result: ok"), "{}", good.stdout);
    outputs.push(good);

    let missing = ctl(&c, 0, "table", &["location", "test", "missing"], &[]);
    println!("{}", missing.stdout);
    assert_eq!(missing.code, Some(1), "{}", missing.describe());
    assert!(
        missing.stdout.contains("bucket `no-such-bucket` does not exist") && missing.stdout.contains("FAILED"),
        "{}",
        missing.describe()
    );
    outputs.push(missing);
    let denied = ctl(&c, 0, "json", &["location", "test", "denied"], &[]);
    println!("{}", denied.stdout);
    assert_eq!(denied.code, Some(1), "{}", denied.describe());
    assert_eq!(denied.json().unwrap()["ok"], false);
    outputs.push(denied);

    for o in &outputs {
        assert!(
            !o.stdout.contains(&secret) && !o.stderr.contains(&secret),
            "secret in {}",
            o.cmdline
        );
    }
    assert!(!c.log_text(0).contains(&secret), "secret in the node log");
}
