//! Refused clients: plaintext (tonic `http://` channel and a raw HTTP/2 prior-knowledge
//! connection), a CA the node's certificate does not chain to, and a wrong or missing token.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mesh_proto::v1::StatusRequest;
use mesh_tests::tls::Pki;
use mesh_tests::{grpc, TestCluster};

fn one_node() -> TestCluster {
    TestCluster::builder(1).start()
}

#[test]
fn plaintext_clients_are_refused() {
    let c = one_node();
    let addr = c.node(0).listen;
    let tok = c.token();

    // A tonic channel with http://: connecting may succeed at TCP level, the call must fail.
    let r: anyhow::Result<_> = c.rt().block_on(async {
        let mut cl = grpc::connect_plaintext(addr, Some(&tok)).await?;
        Ok(cl.status(StatusRequest::default()).await?)
    });
    match r {
        Ok(resp) => panic!("a plaintext gRPC call was answered: {:?}", resp.into_inner()),
        Err(e) => eprintln!("plaintext tonic call refused: {e:#}"),
    }

    // Raw HTTP/2 with prior knowledge: preface + empty SETTINGS frame. A TLS server answers with
    // a TLS alert or closes; it must never answer with an HTTP/2 frame.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let _ = s.write_all(&hello);
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= 9 {
                    break;
                }
            }
        }
    }
    let is_h2_settings = got.len() >= 9 && got[3] == 4;
    assert!(!is_h2_settings, "node spoke plaintext HTTP/2: {got:02x?}");
    assert!(
        got.is_empty() || got[0] == 0x15,
        "expected close or a TLS alert record, got {got:02x?}"
    );

    // TLS clients still work.
    c.status(0).map_err(|o| o.describe()).unwrap();
}

#[test]
fn wrong_ca_is_refused_with_a_clear_error() {
    let c = one_node();
    let other = Pki::create(&c.root().join("other-pki"));
    let mut cmd = c.meshctl_command();
    cmd.arg("--addr")
        .arg(c.node(0).listen.to_string())
        .arg("--cacert")
        .arg(other.ca())
        .arg("--token")
        .arg(c.token())
        .args(["-o", "json", "cluster", "status"]);
    let out = mesh_tests::proc::run(cmd, Duration::from_secs(20));
    eprintln!("wrong CA: code {:?}: {}", out.code, out.stderr.trim());
    assert_eq!(out.code, Some(1), "wrong CA: {}", out.describe());
    let e = out.stderr.to_lowercase();
    assert!(
        ["certificate", "tls", "issuer", "trust", "cacert"]
            .iter()
            .any(|w| e.contains(w)),
        "stderr must name the TLS/certificate problem: {}",
        out.describe()
    );
}

#[test]
fn wrong_or_missing_token_is_refused_with_a_clear_error() {
    let c = one_node();
    let out = c.ctl_with(0, "not-the-root-token", &["cluster", "status"], Duration::from_secs(20));
    eprintln!("wrong token: code {:?}: {}", out.code, out.stderr.trim());
    assert_eq!(out.code, Some(1), "wrong token: {}", out.describe());
    let e = out.stderr.to_lowercase();
    assert!(
        e.contains("token") || e.contains("unauthenticated"),
        "stderr must name the token: {}",
        out.describe()
    );

    let out = c.ctl_with(
        0,
        "not-the-root-token",
        &["setting", "set", "leader_grace", "44s"],
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(1), "write with wrong token: {}", out.describe());
    assert_ne!(
        c.get_setting(0, "leader_grace", false)
            .map_err(|o| o.describe())
            .unwrap(),
        "44s"
    );

    // No token at all.
    let mut cmd = c.meshctl_command();
    cmd.arg("--addr")
        .arg(c.node(0).listen.to_string())
        .arg("--cacert")
        .arg(c.ca());
    cmd.args(["-o", "json", "cluster", "status"]);
    let out = mesh_tests::proc::run(cmd, Duration::from_secs(20));
    eprintln!("missing token: code {:?}: {}", out.code, out.stderr.trim());
    assert!(
        matches!(out.code, Some(1) | Some(2)),
        "missing token: {}",
        out.describe()
    );
    assert!(
        out.stderr.to_lowercase().contains("token"),
        "stderr must name the token: {}",
        out.describe()
    );

    // Through gRPC: UNAUTHENTICATED with mesh-reason metadata.
    let addr = c.node(0).listen;
    let ca = c.ca();
    let st = c.rt().block_on(async {
        let mut cl = grpc::connect(addr, &ca, Some("not-the-root-token")).await.unwrap();
        cl.status(StatusRequest::default())
            .await
            .expect_err("status with a wrong token")
    });
    assert_eq!(st.code(), tonic::Code::Unauthenticated, "{st:?}");
    let reason = st
        .metadata()
        .get("mesh-reason")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(
        reason.as_deref(),
        Some("UNAUTHENTICATED"),
        "mesh-reason metadata: {st:?}"
    );
}
