//! The built `meshctl` binary: exit codes 0/1/2, `error:`/`hint:` on stderr, config fallback.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

/// Runs meshctl in `cwd` with no MESH_* variables inherited.
async fn meshctl(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshctl"));
    cmd.args(args).current_dir(cwd);
    for var in ["MESH_ADDR", "MESH_TOKEN", "MESH_CACERT", "MESH_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().await.unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &[][..],
        &["cluster"],
        &["node", "remove", "abc"],
        &["-o", "yaml", "cluster", "status"],
        &["frobnicate"],
    ] {
        let o = meshctl(dir.path(), args, &[]).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let o = meshctl(dir.path(), &["--help"], &[]).await;
    assert_eq!(o.status.code(), Some(0));
}

#[tokio::test]
async fn missing_addr_exits_2_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let o = meshctl(dir.path(), &["cluster", "status"], &[]).await;
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.starts_with("error: no node address"), "{err}");
    assert!(
        err.contains("hint: ") && err.contains("MESH_ADDR") && err.contains("meshd --dev"),
        "{err}"
    );
    let o = meshctl(
        dir.path(),
        &["node", "list", "--addr", "h:1", "--cacert", "ca.pem"],
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no token"), "{}", stderr(&o));
    let o = meshctl(
        dir.path(),
        &["node", "list"],
        &[("MESH_ADDR", "http://h:1"), ("MESH_TOKEN", "t"), ("MESH_CACERT", "x")],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("plaintext"), "{}", stderr(&o));
}

#[tokio::test]
async fn unreachable_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let addr = format!("127.0.0.1:{}", closed_port());
    let ca = ca_path(dir.path());
    let o = meshctl(
        dir.path(),
        &[
            "cluster",
            "status",
            "--addr",
            &addr,
            "--token",
            "t",
            "--cacert",
            ca.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&format!("error: meshd at {addr} is unreachable")), "{err}");
    assert!(o.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talks_to_a_server_with_env_and_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(Some(make_pki(dir.path()))).await.to_string();
    let ca = ca_path(dir.path());
    let env = [
        ("MESH_ADDR", addr.as_str()),
        ("MESH_TOKEN", TOKEN),
        ("MESH_CACERT", ca.to_str().unwrap()),
    ];
    let o = meshctl(dir.path(), &["cluster", "status", "-o", "json"], &env).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["cluster_id"], "fake-cluster");
    assert_eq!(v["nodes"][0]["id"], 7);

    // ./.meshctl.toml with a relative CA path and a token file.
    std::fs::write(dir.path().join("root-token"), format!("{TOKEN}\n")).unwrap();
    let toml = format!("addr = \"{addr}\"\ncacert = \"ca.pem\"\ntoken_file = \"root-token\"\n");
    std::fs::write(dir.path().join(".meshctl.toml"), toml).unwrap();
    let o = meshctl(dir.path(), &["cluster", "transfer-leader"], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "leadership transferred to node 8\n");

    // A flag beats the file: a wrong token is refused.
    let o = meshctl(dir.path(), &["node", "list", "--token", "wrong"], &[]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("the token was refused"), "{}", stderr(&o));

    // Server errors carry the message and the reason.
    let o = meshctl(dir.path(), &["node", "remove", "99"], &[]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("node 99 is not a member") && stderr(&o).contains("NOT_FOUND"),
        "{}",
        stderr(&o)
    );
    let o = meshctl(dir.path(), &["setting", "set", "node_ttl", "5s"], &[]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no leader yet"), "{}", stderr(&o));

    // MESH_CONFIG pointing nowhere is an error, not a silent fallback.
    let o = meshctl(dir.path(), &["node", "list"], &[("MESH_CONFIG", "/nonexistent/m.toml")]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/m.toml"), "{}", stderr(&o));
}

#[tokio::test]
async fn tls_commands() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let p = pki.to_str().unwrap();
    let o = meshctl(dir.path(), &["tls", "ca", "create", "--dir", p], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = meshctl(dir.path(), &["tls", "ca", "create", "--dir", p], &[]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("refusing to overwrite") && stderr(&o).contains("--force"));
    let o = meshctl(
        dir.path(),
        &["tls", "cert", "create", "--dir", p, "--node", "n1", "--ip", "nope"],
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid --ip \"nope\""), "{}", stderr(&o));
    let args = [
        "-o", "json", "tls", "cert", "create", "--dir", p, "--node", "n1", "--ip", "10.0.0.1", "--dns", "n1.local",
    ];
    let o = meshctl(dir.path(), &args, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sans"], serde_json::json!(["DNS:n1", "DNS:n1.local", "IP:10.0.0.1"]));
    assert!(pki.join("n1.pem").exists() && pki.join("n1-key.pem").exists());
}

/// Bad `location add` / `credential add` input is refused before connecting: exit 2, a message
/// that names the problem (the address below is never dialled).
#[tokio::test]
async fn bad_config_input_exits_2_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let conn = ["--addr", "127.0.0.1:1", "--cacert", "nope.pem", "--token", "t"];
    let cases: &[(&[&str], &str)] = &[
        (&["location", "add", "x", "--s3", "Bad_Bucket"], "invalid bucket name"),
        (&["location", "add", "x", "--s3", "ab/prefix"], "3 to 63 characters"),
        (&["location", "add", "x", "--fs", "relative/dir"], "must be absolute"),
        (&["location", "add", "x y", "--fs", "/data"], "location name"),
        (
            &["location", "add", "x", "--s3", "abc", "--sse", "des"],
            "expected aes256 or aws:kms",
        ),
        (
            &["location", "add", "x", "--s3", "abc", "--endpoint", "host:9000"],
            "http://",
        ),
        (
            &["location", "add", "x", "--s3", "abc", "--fs", "/d"],
            "cannot be used with",
        ),
        (&["location", "add", "x"], "required"),
        (&["location", "add", "x", "--fs", "/d", "--region", "r"], "--s3"),
        (&["location", "show", "a/b"], "location name"),
        (&["credential", "add", "c"], "required"),
        (
            &["credential", "add", "c", "--default-chain", "--access-key-id", "AK"],
            "cannot be used with",
        ),
        (
            &["credential", "add", "c", "--access-key-id", "AK"],
            "needs a secret access key",
        ),
        (&["credential", "add", "c", "--assume-role", "not-an-arn"], "role ARN"),
        (&["credential", "add", "c", "--via", "x"], "--assume-role"),
        (&["credential", "remove", ""], "credential name is empty"),
    ];
    for (args, expect) in cases {
        let mut all: Vec<&str> = conn.to_vec();
        all.extend_from_slice(args);
        let o = meshctl(dir.path(), &all, &[]).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: expected {expect:?} in {err}");
        assert!(!err.contains("nope.pem"), "{args:?} tried to connect: {err}");
    }
}

/// The secret may come from the environment or stdin instead of the command line; then it gets
/// as far as connecting (which fails here: exit 1, not a usage error).
#[tokio::test]
async fn secret_from_env_or_stdin_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let conn = ["--addr", "127.0.0.1:1", "--cacert", "nope.pem", "--token", "t"];
    let mut args: Vec<&str> = conn.to_vec();
    args.extend(["credential", "add", "c", "--access-key-id", "AK"]);
    let o = meshctl(dir.path(), &args, &[("MESH_SECRET_ACCESS_KEY", "s3cr3t")]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope.pem"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("s3cr3t"));

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshctl"));
    cmd.args(&args)
        .arg("--secret-access-key-stdin")
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for var in [
        "MESH_ADDR",
        "MESH_TOKEN",
        "MESH_CACERT",
        "MESH_CONFIG",
        "MESH_SECRET_ACCESS_KEY",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().unwrap();
    use tokio::io::AsyncWriteExt;
    child.stdin.take().unwrap().write_all(b"from-stdin\n").await.unwrap();
    let o = child.wait_with_output().await.unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stderr(&o).contains("from-stdin"));

    let o = meshctl(dir.path(), &["credential", "add", "--help"], &[]).await;
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("MESH_SECRET_ACCESS_KEY") && help.contains("--secret-access-key-stdin"),
        "{help}"
    );
}

/// `meshctl completion SHELL` prints a script that knows the real subcommands; an unknown shell
/// is a usage error.
#[tokio::test]
async fn completion_scripts() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef meshctl"),
        ("fish", "complete -c meshctl"),
    ] {
        let o = meshctl(dir.path(), &["completion", shell], &[]).await;
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(script.contains(marker), "{shell}: no {marker:?} in {script}");
        for sub in ["location", "job", "credential", "transfer-leader"] {
            assert!(script.contains(sub), "{shell}: no {sub:?} in the script");
        }
    }
    let o = meshctl(dir.path(), &["completion", "tcsh"], &[]).await;
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("tcsh") && err.contains("bash"), "{err}");
    assert!(o.stdout.is_empty());
}

/// `meshctl man --dir DIR` writes roff pages for meshctl and every subcommand, creating DIR; a
/// DIR that cannot be created is an error (exit 1) that names it.
#[tokio::test]
async fn man_pages() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("share/man/man1");
    let o = meshctl(dir.path(), &["man", "--dir", out.to_str().unwrap()], &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let written = std::fs::read_dir(&out).unwrap().count();
    assert!(written > 30, "only {written} pages");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("wrote {written} man pages into {}\n", out.display())
    );
    for page in [
        "meshctl.1",
        "meshctl-job.1",
        "meshctl-job-watch.1",
        "meshctl-location-add.1",
    ] {
        let text = std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        // clap_mangen defines the Aq string first, then the .TH header.
        let th = text
            .lines()
            .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
            .unwrap_or_default();
        let name = page.trim_end_matches(".1");
        assert!(th.starts_with(&format!(".TH {name} 1 ")), "{page}: {th:?}");
        assert!(th.contains("meshctl 0."), "{page}: no version in {th:?}");
    }
    let job = std::fs::read_to_string(out.join("meshctl-job.1")).unwrap();
    assert!(job.contains("watch") && job.contains("cancel"), "{job}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let bad = file.join("man");
    let o = meshctl(dir.path(), &["man", "--dir", bad.to_str().unwrap()], &[]).await;
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: ") && err.contains(bad.to_str().unwrap()),
        "{err}"
    );
}
