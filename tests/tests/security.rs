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

/// A PeerService client over TLS trusting the cluster CA, presenting `identity` if given.
async fn peer_client(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    identity: Option<&mesh_tests::tls::NodeCert>,
) -> anyhow::Result<mesh_proto::v1::peer_service_client::PeerServiceClient<tonic::transport::Channel>> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca)?));
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(std::fs::read(&id.cert)?, std::fs::read(&id.key)?));
    }
    let ch = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await?;
    Ok(mesh_proto::v1::peer_service_client::PeerServiceClient::new(ch))
}

#[test]
fn node_to_node_services_need_a_certificate_from_the_cluster_ca() {
    let c = one_node();
    let addr = c.node(0).listen;
    let hello = || mesh_proto::v1::HelloRequest {
        header: Some(mesh_proto::v1::PeerHeader {
            from: 1,
            to: 0,
            cluster_id: String::new(),
        }),
    };

    // TLS without a client certificate: the handshake succeeds (clients need none), but the
    // node-to-node service refuses the call.
    let err = c
        .rt()
        .block_on(async {
            peer_client(addr, &c.ca(), None)
                .await?
                .hello(hello())
                .await
                .map_err(anyhow::Error::from)
        })
        .expect_err("a peer call without a client certificate must be refused");
    let status = err.downcast_ref::<tonic::Status>().expect("a gRPC status");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("client certificate"), "{status:?}");

    // A client certificate from another CA (even one covering the right IP) fails the handshake.
    let other = Pki::create(&c.root().join("foreign-pki"));
    let foreign = other.node_cert("intruder", &[c.node(0).ip.into()], &[]);
    let result = c.rt().block_on(async {
        let mut client = peer_client(addr, &c.ca(), Some(&foreign)).await?;
        client.hello(hello()).await.map_err(anyhow::Error::from)
    });
    assert!(
        result.is_err(),
        "a certificate from another CA must be refused, got {result:?}"
    );

    // With a certificate from the cluster CA the same call is answered.
    let pki = Pki {
        dir: c.ca().parent().unwrap().to_path_buf(),
    };
    let member = pki.node_cert("n-extra", &[c.node(0).ip.into()], &[]);
    let resp = c
        .rt()
        .block_on(async {
            peer_client(addr, &c.ca(), Some(&member))
                .await?
                .hello(hello())
                .await
                .map_err(anyhow::Error::from)
        })
        .expect("a cluster-CA certificate is accepted");
    assert_eq!(resp.into_inner().node_id, c.node_id(0));
}

#[test]
fn peer_requests_for_another_node_id_are_refused() {
    let c = one_node();
    let pki = Pki {
        dir: c.ca().parent().unwrap().to_path_buf(),
    };
    let member = pki.node_cert("n-extra", &[c.node(0).ip.into()], &[]);
    let wrong_to = c.node_id(0) + 1;
    let err = c
        .rt()
        .block_on(async {
            peer_client(c.node(0).listen, &c.ca(), Some(&member))
                .await?
                .hello(mesh_proto::v1::HelloRequest {
                    header: Some(mesh_proto::v1::PeerHeader {
                        from: 1,
                        to: wrong_to,
                        cluster_id: String::new(),
                    }),
                })
                .await
                .map_err(anyhow::Error::from)
        })
        .expect_err("a request for another node id must be refused");
    let status = err.downcast_ref::<tonic::Status>().unwrap();
    assert_eq!(
        status.metadata().get("mesh-reason").unwrap(),
        "WRONG_NODE",
        "{status:?}"
    );
}
