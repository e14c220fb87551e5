//! End-to-end tests of `meshctl::client` against an in-process TLS ClusterService.

mod common;

use common::*;
use mesh_proto::v1::{SetSettingRequest, StatusRequest};
use meshctl::client::{connect, ClientError, ClientOpts};
use meshctl::errors::from_status;

fn opts(addr: String, cacert: std::path::PathBuf, token: &str) -> ClientOpts {
    ClientOpts {
        addr,
        cacert,
        token: token.into(),
    }
}

#[tokio::test]
async fn right_ca_and_token_work() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(Some(make_pki(dir.path()))).await;
    for a in [addr.to_string(), format!("https://{addr}")] {
        let mut c = connect(&opts(a, ca_path(dir.path()), TOKEN)).await.unwrap();
        let resp = c.cluster.status(StatusRequest { consistency: 0 }).await.unwrap();
        assert_eq!(resp.into_inner(), fixed_status());
    }
}

#[tokio::test]
async fn wrong_ca_is_a_certificate_error() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let addr = serve(Some(make_pki(dir.path()))).await;
    mesh_pki::create_ca(other.path(), false, 30).unwrap();
    let err = connect(&opts(addr.to_string(), ca_path(other.path()), TOKEN))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");
    assert!(msg.contains("certificate") && msg.contains("not signed by"), "{msg}");
    assert!(
        msg.contains(&other.path().join("ca.pem").display().to_string()),
        "{msg}"
    );
}

#[tokio::test]
async fn name_mismatch_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(Some(make_pki(dir.path()))).await;
    let err = connect(&opts(format!("localhost:{}", addr.port()), ca_path(dir.path()), TOKEN))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("not valid for the name localhost"), "{msg}");
    assert!(
        msg.contains("(it names n1, 127.0.0.1)"),
        "should list the names the certificate has: {msg}"
    );
}

#[tokio::test]
async fn wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(Some(make_pki(dir.path()))).await;
    let mut c = connect(&opts(addr.to_string(), ca_path(dir.path()), "nope"))
        .await
        .unwrap();
    let status = c.cluster.status(StatusRequest { consistency: 0 }).await.unwrap_err();
    let e = from_status(&status, &addr.to_string());
    assert!(e.message.contains("token was refused"), "{e}");
    assert_eq!(e.exit_code, 1);
}

#[tokio::test]
async fn no_leader_says_retry() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(Some(make_pki(dir.path()))).await;
    let mut c = connect(&opts(addr.to_string(), ca_path(dir.path()), TOKEN))
        .await
        .unwrap();
    let req = SetSettingRequest {
        name: "node_ttl".into(),
        value: "5s".into(),
    };
    let status = c.cluster.set_setting(req).await.unwrap_err();
    let e = from_status(&status, &addr.to_string());
    assert!(
        e.message.contains("no leader yet") && e.message.contains("retry"),
        "{e}"
    );
}

#[tokio::test]
async fn plaintext_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let err = connect(&opts("http://127.0.0.1:7400".into(), ca_path(dir.path()), TOKEN))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Plaintext { .. }));
    assert!(err.to_string().contains("only accepts TLS"), "{err}");
}

#[tokio::test]
async fn plaintext_server_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let addr = serve(None).await;
    let err = connect(&opts(addr.to_string(), ca_path(dir.path()), TOKEN))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("did not answer with TLS"), "{err}");
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let addr = format!("127.0.0.1:{}", closed_port());
    let err = connect(&opts(addr.clone(), ca_path(dir.path()), TOKEN))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    assert!(msg.contains("unreachable") && msg.contains(&addr), "{msg}");
    assert!(err.hint().unwrap().contains("MESH_ADDR"));
}

#[tokio::test]
async fn missing_ca_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = connect(&opts("127.0.0.1:1".into(), dir.path().join("nope.pem"), TOKEN))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::CaCert { .. }));
    assert!(err.to_string().contains("nope.pem"), "{err}");
    std::fs::write(dir.path().join("junk.pem"), "hello").unwrap();
    let err = connect(&opts("127.0.0.1:1".into(), dir.path().join("junk.pem"), TOKEN))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}
