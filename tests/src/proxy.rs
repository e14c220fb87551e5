//! An in-process TCP fault proxy (tokio), one in front of every node.
//!
//! Each node advertises its proxy's address, so every peer-to-peer connection (Raft, heartbeats,
//! forwarded requests, joins) goes through the target node's proxy. The proxy can:
//! - [`FaultProxy::cut`]: close every open connection and close new ones at once (the node is
//!   unreachable); [`FaultProxy::heal`] undoes it;
//! - [`FaultProxy::block_from`]: close and refuse the connections whose *source IP* is given.
//!   meshd binds its outgoing peer connections to its listen IP and every test node has its own
//!   loopback IP, so the source IP names the sending node; [`FaultProxy::unblock_all`] undoes it.
//! - [`FaultProxy::set_delay`]: add a one-way latency to every chunk forwarded (netem is not
//!   available on the test machines, so latency is emulated here).
//!
//! It counts connections ([`FaultProxy::counters`]) and the bytes it forwarded each way
//! ([`FaultProxy::bytes_forwarded`]), so tests can trigger faults on observed progress instead of
//! after a fixed time.
//!
//! "Refused" connections are accepted and closed immediately, which a client sees as a reset or
//! EOF, as it would with a broken network path.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Default)]
struct State {
    cut: AtomicBool,
    blocked: Mutex<HashSet<IpAddr>>,
    conns: Mutex<HashMap<u64, (IpAddr, AbortHandle)>>,
    next_id: AtomicU64,
    delay_ms: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    /// Bytes written to the target, and back to the clients.
    to_target: AtomicU64,
    from_target: AtomicU64,
}

impl State {
    fn refuses(&self, peer: IpAddr) -> bool {
        self.cut.load(Ordering::SeqCst) || self.blocked.lock().unwrap().contains(&peer)
    }

    fn close_where(&self, pred: impl Fn(IpAddr) -> bool) {
        let mut conns = self.conns.lock().unwrap();
        conns.retain(|_, (ip, h)| {
            if pred(*ip) {
                h.abort();
                false
            } else {
                !h.is_finished()
            }
        });
    }
}

/// A TCP forwarder from `addr()` to a target address.
pub struct FaultProxy {
    local: SocketAddr,
    target: SocketAddr,
    state: Arc<State>,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Binds `bind` (port 0 for any) on the given runtime and forwards to `target`.
    pub fn start(rt: &Handle, bind: SocketAddr, target: SocketAddr) -> std::io::Result<FaultProxy> {
        let std_listener = std::net::TcpListener::bind(bind)?;
        std_listener.set_nonblocking(true)?;
        let local = std_listener.local_addr()?;
        let _guard = rt.enter();
        let listener = TcpListener::from_std(std_listener)?;
        let state = Arc::new(State::default());
        let st = state.clone();
        let accept_task = rt.spawn(async move {
            loop {
                let (sock, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let ip = peer.ip();
                if st.refuses(ip) {
                    st.refused.fetch_add(1, Ordering::Relaxed);
                    drop(sock);
                    continue;
                }
                st.accepted.fetch_add(1, Ordering::Relaxed);
                let id = st.next_id.fetch_add(1, Ordering::Relaxed);
                let st2 = st.clone();
                let task = tokio::spawn(async move {
                    if let Ok(up) = TcpStream::connect(target).await {
                        let _ = sock.set_nodelay(true);
                        let _ = up.set_nodelay(true);
                        pump(sock, up, st2.clone()).await;
                    }
                    st2.conns.lock().unwrap().remove(&id);
                });
                st.conns.lock().unwrap().insert(id, (ip, task.abort_handle()));
                // A cut/block that raced with the insert above must still close this one.
                if st.refuses(ip) {
                    task.abort();
                    st.conns.lock().unwrap().remove(&id);
                }
            }
        });
        Ok(FaultProxy {
            local,
            target,
            state,
            accept_task,
        })
    }

    /// The address the proxy listens on (what the node advertises).
    pub fn addr(&self) -> SocketAddr {
        self.local
    }

    /// The node's real address.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Closes every open connection and refuses new ones until [`heal`](Self::heal).
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.state.close_where(|_| true);
    }

    /// Undoes [`cut`](Self::cut) (blocks stay).
    pub fn heal(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Closes and refuses connections from source IP `ip`.
    pub fn block_from(&self, ip: IpAddr) {
        self.state.blocked.lock().unwrap().insert(ip);
        self.state.close_where(|p| p == ip);
    }

    /// Lets `ip` connect again.
    pub fn unblock(&self, ip: IpAddr) {
        self.state.blocked.lock().unwrap().remove(&ip);
    }

    /// Lets everyone connect again.
    pub fn unblock_all(&self) {
        self.state.blocked.lock().unwrap().clear();
    }

    /// Adds `d` of latency to every chunk forwarded in either direction (applies to new reads).
    pub fn set_delay(&self, d: Duration) {
        self.state.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        self.state.cut.load(Ordering::SeqCst)
    }

    /// Open connections right now.
    pub fn open_connections(&self) -> usize {
        self.state.close_where(|_| false);
        self.state.conns.lock().unwrap().len()
    }

    /// (to the target, from the target): bytes forwarded so far, over every connection.
    pub fn bytes_forwarded(&self) -> (u64, u64) {
        (
            self.state.to_target.load(Ordering::Relaxed),
            self.state.from_target.load(Ordering::Relaxed),
        )
    }

    /// (accepted, refused) connection counters.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.state.accepted.load(Ordering::Relaxed),
            self.state.refused.load(Ordering::Relaxed),
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.state.close_where(|_| true);
    }
}

/// Copies both directions until either side closes; a delay, when set, is applied per chunk.
async fn pump(a: TcpStream, b: TcpStream, st: Arc<State>) {
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let one = copy_half(ar, bw, st.clone(), |s| &s.to_target);
    let two = copy_half(br, aw, st, |s| &s.from_target);
    // When one direction ends (EOF or error) let the other finish on its own, like TCP half-close;
    // an abort (cut/block) drops both at once.
    let _ = tokio::join!(one, two);
}

async fn copy_half(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    st: Arc<State>,
    counter: fn(&State) -> &AtomicU64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let d = st.delay_ms.load(Ordering::Relaxed);
        if d > 0 {
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        counter(&st).fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = w.shutdown().await;
}
