//! Seeding: SeaweedFS servers with the buckets `src` and `dst` opened as engine stores
//! ([`Servers`]), incompressible object bodies, parallel single PUTs ([`put_objects`]) and one
//! multipart upload ([`put_multipart`]), and listing what a copy left ([`list_all`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use mesh_engine::store::{
    Body, CredentialSource, KeyRange, LocationSpec, ObjectInfo, ObjectStore, S3LocationSpec, Secret, WriteDefaults,
    WriteOptions,
};
use mesh_engine::{open_store, S3Clients};

use super::{die, MIB};
use crate::seaweed::SeaweedFs;

/// The SeaweedFS server(s) of a benchmark: bucket `src` on the first, `dst` on the last (the
/// same one unless started with two servers), opened through the engine's `S3Store`.
pub struct Servers {
    pub servers: Vec<SeaweedFs>,
    pub clients: S3Clients,
    pub src: Arc<dyn ObjectStore>,
    pub dst: Arc<dyn ObjectStore>,
    /// The delay proxy every client goes through, and its endpoint ([`Servers::start_delayed`]).
    pub delay: Option<(crate::proxy::FaultProxy, String)>,
}

impl Servers {
    /// One server with both buckets, or (`two`) one per bucket.
    pub async fn start(two: bool) -> Servers {
        Self::start_at(two, None).await
    }

    /// [`Self::start`] with the servers bound to `ip` (else each on a random loopback address).
    pub async fn start_at(two: bool, ip: Option<std::net::Ipv4Addr>) -> Servers {
        let start = |b: &[&str]| {
            let sb = match ip {
                Some(ip) => SeaweedFs::builder().ip(ip),
                None => SeaweedFs::builder(),
            };
            b.iter()
                .fold(sb, |sb, name| sb.bucket(name))
                .start()
                .unwrap_or_else(|e| die(&e))
        };
        let servers = if two {
            vec![start(&["src"]), start(&["dst"])]
        } else {
            vec![start(&["src", "dst"])]
        };
        let clients = S3Clients::new();
        let open = |endpoint: String, bucket: &'static str| {
            let clients = &clients;
            async move {
                open_store(&s3_spec(&endpoint, bucket), clients)
                    .await
                    .unwrap_or_else(|e| die(&e.to_string()))
            }
        };
        let src = open(servers[0].endpoint(), "src").await;
        let dst = open(servers.last().expect("a server").endpoint(), "dst").await;
        Servers {
            servers,
            clients,
            src,
            dst,
            delay: None,
        }
    }

    /// One server with both buckets behind a userspace delay proxy that adds `rtt / 2` each way
    /// (P4: netem is not available). Every client — the engine's stores, the peers'
    /// `$SRC_ENDPOINT`, the mesh's locations — goes through the proxy; the metrics do not.
    pub async fn start_delayed(rtt: Duration) -> Servers {
        let mut s = Servers::start(false).await;
        let target = s.servers[0].s3_addr();
        let bind = std::net::SocketAddr::from((s.servers[0].ip(), 0));
        let proxy = crate::proxy::FaultProxy::start(&tokio::runtime::Handle::current(), bind, target)
            .unwrap_or_else(|e| die(&format!("delay proxy: {e}")));
        proxy.set_delay(rtt / 2);
        let endpoint = format!("http://{}", proxy.addr());
        let store = open_store(&s3_spec(&endpoint, "src"), &s.clients)
            .await
            .unwrap_or_else(|e| die(&e.to_string()));
        let dst = open_store(&s3_spec(&endpoint, "dst"), &s.clients)
            .await
            .unwrap_or_else(|e| die(&e.to_string()));
        s.src = store;
        s.dst = dst;
        s.delay = Some((proxy, endpoint));
        s
    }

    /// The server of bucket `src`.
    pub fn first(&self) -> &SeaweedFs {
        &self.servers[0]
    }

    pub fn src_endpoint(&self) -> String {
        match &self.delay {
            Some((_, e)) => e.clone(),
            None => self.servers[0].endpoint(),
        }
    }

    pub fn dst_endpoint(&self) -> String {
        match &self.delay {
            Some((_, e)) => e.clone(),
            None => self.servers.last().expect("a server").endpoint(),
        }
    }
}

/// The S3 location `bucket` on `endpoint`: path style, region us-east-1, the dummy static
/// credential `bench` / `bench-secret`.
pub fn s3_spec(endpoint: &str, bucket: &str) -> LocationSpec {
    LocationSpec::S3(S3LocationSpec {
        bucket: bucket.into(),
        prefix: String::new(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        path_style: true,
        credential_name: "bench".into(),
        credential: CredentialSource::Static {
            access_key_id: "bench".into(),
            secret_access_key: Secret::new("bench-secret"),
            session_token: None,
        },
        defaults: WriteDefaults::default(),
    })
}

/// Seeded object `i` under `prefix`: `prefixNNNNNN`.
pub fn object_key(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:06}")
}

/// Pseudo-random, incompressible bytes (xorshift64*).
pub fn noise(len: usize, mut seed: u64) -> Bytes {
    let mut v = Vec::with_capacity(len + 8);
    seed |= 1;
    while v.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        v.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// `size` bytes in ≤ 1 MiB slices of `pool` (2 MiB) at offsets that differ per `i` and chunk
/// (different content per object, little memory). A fresh one per attempt (a PUT consumes it).
pub fn body(pool: &Bytes, size: u64, i: u64) -> Body {
    let mut chunks = Vec::new();
    let mut left = size;
    let mut n = 0u64;
    while left > 0 {
        let len = left.min(MIB);
        let off = ((i * 7919 + n * 104_729) % MIB) as usize;
        chunks.push(pool.slice(off..off + len as usize));
        left -= len;
        n += 1;
    }
    Box::pin(stream::iter(chunks.into_iter().map(Ok)))
}

/// Up to 5 tries of `f`, `pause` apart; the last error.
async fn retry<T, F, Fut>(what: &str, pause: Duration, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, mesh_engine::store::StoreError>>,
{
    let mut last = String::new();
    for _ in 0..5 {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(pause).await;
    }
    Err(format!("seed {what}: {last}"))
}

/// Seeds `n` objects of `size` as `prefixNNNNNN` ([`object_key`]), `parallel` PUTs at once;
/// dies when one still fails after 5 tries. Returns the time it took.
pub async fn put_objects(store: &Arc<dyn ObjectStore>, prefix: &str, n: usize, size: u64, parallel: usize) -> Duration {
    let t = Instant::now();
    let pool = noise(2 * MIB as usize, 0x5eed);
    let results: Vec<Result<(), String>> = stream::iter(0..n)
        .map(|i| {
            let (pool, store, key) = (pool.clone(), store.clone(), object_key(prefix, i));
            async move {
                let wo = WriteOptions::default();
                let put = || store.put(&key, body(&pool, size, i as u64), size, &wo);
                retry(&key, Duration::from_millis(200), put).await.map(|_| ())
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        die(&e);
    }
    t.elapsed()
}

/// Seeds one object `key` of `size` by multipart upload in parts of `part`, 8 at once; dies on
/// failure. Returns (the time it took, the number of parts).
pub async fn put_multipart(store: &Arc<dyn ObjectStore>, key: &str, size: u64, part: u64) -> (Duration, u64) {
    let t = Instant::now();
    let pool = noise(2 * MIB as usize, 0xb16);
    let id = store
        .create_multipart(key, &WriteOptions::default())
        .await
        .unwrap_or_else(|e| die(&format!("create multipart: {e}")));
    let n = size.div_ceil(part);
    let parts: Vec<_> = stream::iter(1..=n)
        .map(|pn| {
            let (pool, store, id) = (pool.clone(), store.clone(), id.clone());
            let len = part.min(size - (pn - 1) * part);
            async move {
                let upload = || store.upload_part(key, &id, pn as u32, body(&pool, len, pn), len, None);
                retry(&format!("part {pn}"), Duration::from_millis(500), upload)
                    .await
                    .unwrap_or_else(|e| die(&e))
            }
        })
        .buffered(8)
        .collect()
        .await;
    store
        .complete_multipart(key, &id, &parts, &WriteOptions::default())
        .await
        .unwrap_or_else(|e| die(&format!("complete multipart: {e}")));
    (t.elapsed(), n)
}

/// Every object under `prefix` of `store`, in key order.
pub async fn list_all(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<ObjectInfo>, String> {
    let mut range = KeyRange {
        prefix: prefix.to_string(),
        ..Default::default()
    };
    let mut out = Vec::new();
    loop {
        let p = store
            .list(&range, 1000)
            .await
            .map_err(|e| format!("listing {prefix} failed: {e}"))?;
        out.extend(p.objects);
        match p.next_start_after {
            Some(k) => range.start_after = Some(k),
            None => return Ok(out),
        }
    }
}
