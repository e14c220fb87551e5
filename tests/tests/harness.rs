//! Self-tests of the harness that need no meshd: the fault proxy and the PKI made by meshctl.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mesh_tests::FaultProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

async fn echo_server(ip: Ipv4Addr) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn connect_from(src: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    sock.connect(to).await
}

/// Sends "ping" and expects it echoed (Ok) or a closed/reset connection (Err).
async fn ping(s: &mut TcpStream) -> Result<(), String> {
    s.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut buf)).await {
        Ok(Ok(_)) if &buf == b"ping" => Ok(()),
        Ok(Ok(_)) => Err(format!("garbage {buf:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timeout".into()),
    }
}

#[test]
fn fault_proxy_forwards_cuts_heals_and_blocks_by_source_ip() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ip = Ipv4Addr::new(127, 77, rand_octet(), 10);
    let a = Ipv4Addr::new(127, 77, ip.octets()[2], 11);
    let b = Ipv4Addr::new(127, 77, ip.octets()[2], 12);
    let target = rt.block_on(echo_server(ip));
    let p = FaultProxy::start(rt.handle(), SocketAddr::new(IpAddr::V4(ip), 0), target).unwrap();
    let pa = p.addr();
    rt.block_on(async {
        let mut ca = connect_from(a, pa).await.unwrap();
        let mut cb = connect_from(b, pa).await.unwrap();
        ping(&mut ca).await.unwrap();
        ping(&mut cb).await.unwrap();

        // block_from(a): a's open connection dies, b's lives; a's new connections are closed.
        p.block_from(IpAddr::V4(a));
        assert!(ping(&mut ca).await.is_err(), "blocked source still forwarded");
        ping(&mut cb).await.unwrap();
        let mut ca2 = connect_from(a, pa).await.unwrap();
        assert!(
            ping(&mut ca2).await.is_err(),
            "new connection from blocked source forwarded"
        );
        p.unblock_all();
        let mut ca3 = connect_from(a, pa).await.unwrap();
        ping(&mut ca3).await.unwrap();

        // cut: everything dies; heal: new connections work.
        p.cut();
        assert!(ping(&mut cb).await.is_err());
        assert!(ping(&mut ca3).await.is_err());
        let mut c4 = connect_from(b, pa).await.unwrap();
        assert!(ping(&mut c4).await.is_err());
        p.heal();
        let mut c5 = connect_from(b, pa).await.unwrap();
        ping(&mut c5).await.unwrap();

        // delay
        p.set_delay(Duration::from_millis(200));
        let t = std::time::Instant::now();
        ping(&mut c5).await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "delay not applied: {:?}",
            t.elapsed()
        );
    });
}

fn rand_octet() -> u8 {
    use rand::Rng;
    rand::thread_rng().gen_range(0..=255)
}

#[test]
fn pki_made_by_meshctl_has_the_contract_files() {
    let c = mesh_tests::TestCluster::builder(2).build();
    let dir = &c.pki.dir;
    for f in ["ca.pem", "ca-key.pem", "n0.pem", "n0-key.pem", "n1.pem", "n1-key.pem"] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    use std::os::unix::fs::PermissionsExt;
    for f in ["ca-key.pem", "n0-key.pem"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} mode {mode:o}");
    }
    let args = c.args(0);
    assert!(args.windows(2).any(|w| w[0] == "--advertise" && w[1] == c.advertise(0)));
    assert!(args.windows(2).any(|w| w[0] == "--bootstrap-expect" && w[1] == "2"));
}
