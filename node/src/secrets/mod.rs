//! The cluster data key and the secrets of credentials.
//!
//! - The **data key** is 32 random bytes created by the node that bootstraps the cluster (with the
//!   root token, see `cluster::duties::ClusterInit`). Only its SHA-256 ([`DataKey::fingerprint`]) enters
//!   the log (ClusterInfo.data_key_sha256). Each node keeps the key hex-encoded in
//!   `<data-dir>/data-key`, mode 0600; nodes that did not create it fetch it from a member over
//!   mutual TLS (`PeerService.GetDataKey`) and check it against the fingerprint.
//! - A node whose cluster has a data key but which has none (and cannot fetch one) refuses to start;
//!   so does one whose key has another fingerprint ([`load_at_start`]).
//! - Secret fields of credentials are AES-256-GCM ciphertext under the data key: a random 96-bit
//!   nonce followed by the ciphertext and tag ([`encrypt`], [`decrypt`]). They are encrypted by the
//!   node that receives `CredentialService.Add`, before the command is proposed.
//! - [`resolve_location`] turns a replicated Location and its Credential(s) into the engine's
//!   [`LocationSpec`], decrypting secrets into [`Secret`]s that live only in memory.
//!
//! Neither the key nor a decrypted secret is ever logged, returned by the public API, or written
//! anywhere but the key file.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use mesh_proto::v1::{self as pb, CredentialKind, LocationKind};
use mesh_raft::StateReader;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::cluster::identity::write_atomic;
use crate::error::ApiError;
use crate::net::peers::Peers;
use crate::node::Node;
use mesh_engine::store::{CredentialSource, FsLocationSpec, LocationSpec, S3LocationSpec, Secret, Sse, WriteDefaults};

/// File of the data key in the data dir (hex, mode 0600).
pub const DATA_KEY_FILE: &str = "data-key";
/// A data key created for a cluster that has not recorded it yet (see `cluster::duties::ClusterInit`).
pub const PENDING_DATA_KEY_FILE: &str = "data-key.pending";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// How long a starting node tries to fetch a missing data key from the members.
const START_FETCH_TIMEOUT: Duration = Duration::from_secs(20);
const FETCH_CALL_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{0}")]
    Key(String),
    /// Wrong key, or the ciphertext was altered.
    #[error("cannot decrypt: the data is not authentic under this data key (wrong key or tampered ciphertext)")]
    Decrypt,
}

/// The cluster data key. Debug and Display show only a short fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey {
    bytes: [u8; KEY_LEN],
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey(<redacted>, sha256 {}…)", &self.fingerprint()[..16])
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> DataKey {
        let mut bytes = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        DataKey { bytes }
    }

    pub fn from_bytes(b: &[u8]) -> Result<DataKey, SecretsError> {
        let bytes: [u8; KEY_LEN] = b
            .try_into()
            .map_err(|_| SecretsError::Key(format!("a data key is {KEY_LEN} bytes, not {}", b.len())))?;
        Ok(DataKey { bytes })
    }

    /// The raw key, for handing it to another node (PeerService.GetDataKey) only.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Hex SHA-256 of the key: what the log records and what ciphertexts are tagged with.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.bytes))
    }

    /// Reads a key file (hex). None when it does not exist.
    pub fn load_file(path: &Path) -> Result<Option<DataKey>, SecretsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| {
                    SecretsError::Key(format!(
                        "{} is damaged (expected {} hex digits); copy the data-key file from another node of the cluster",
                        path.display(),
                        KEY_LEN * 2
                    ))
                })?;
                DataKey::from_bytes(&bytes)
                    .map(Some)
                    .map_err(|e| SecretsError::Key(format!("{} is damaged: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SecretsError::Key(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// `<dir>/data-key`, if present.
    pub fn load(dir: &Path) -> Result<Option<DataKey>, SecretsError> {
        Self::load_file(&dir.join(DATA_KEY_FILE))
    }

    /// Writes the key to `path` (hex, mode 0600, atomically).
    pub fn store_file(&self, path: &Path) -> Result<(), SecretsError> {
        let mut text = hex::encode(self.bytes);
        text.push('\n');
        write_atomic(path, text.as_bytes(), true)
            .map_err(|e| SecretsError::Key(format!("cannot write {}: {e}", path.display())))
    }

    /// Writes `<dir>/data-key`.
    pub fn store(&self, dir: &Path) -> Result<(), SecretsError> {
        self.store_file(&dir.join(DATA_KEY_FILE))
    }

    /// `<dir>/data-key`, created (random) when missing.
    pub fn load_or_create(dir: &Path) -> Result<DataKey, SecretsError> {
        if let Some(k) = Self::load(dir)? {
            return Ok(k);
        }
        let k = DataKey::generate();
        k.store(dir)?;
        Ok(k)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.bytes).expect("32-byte key")
    }
}

/// AES-256-GCM encryption under `key` with a random 96-bit nonce: `nonce || ciphertext+tag`.
pub fn encrypt(key: &DataKey, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = key
        .cipher()
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .expect("AES-GCM encryption of an in-memory buffer does not fail");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Reverses [`encrypt`]; fails for a wrong key or altered data.
pub fn decrypt(key: &DataKey, data: &[u8]) -> Result<Vec<u8>, SecretsError> {
    if data.len() < NONCE_LEN + 16 {
        return Err(SecretsError::Decrypt);
    }
    let (nonce, ct) = data.split_at(NONCE_LEN);
    key.cipher()
        .decrypt(Nonce::from_slice(nonce), ct)
        .map_err(|_| SecretsError::Decrypt)
}

/// This node's data key, or UNAVAILABLE when it has not received it yet.
pub fn require_key(node: &Node) -> Result<Arc<DataKey>, ApiError> {
    node.data_key.read().unwrap().clone().ok_or_else(|| {
        ApiError::Unavailable(
            "this node has not received the cluster data key yet (it fetches it from the other nodes); retry in a few seconds or use another node".into(),
        )
    })
}

fn decrypt_secret(key: &DataKey, cred: &pb::Credential, field: &str, data: &[u8]) -> Result<Secret, ApiError> {
    let plain = decrypt(key, data).map_err(|_| {
        ApiError::Internal(format!(
            "the {field} of credential `{}` cannot be decrypted with this node's data key (sha256 {}…); the data-key file does not belong to this cluster",
            cred.name,
            &key.fingerprint()[..16]
        ))
    })?;
    String::from_utf8(plain)
        .map(Secret::new)
        .map_err(|_| ApiError::Internal(format!("the {field} of credential `{}` is not text", cred.name)))
}

/// The decrypted credential source of credential `name` (following assume-role `via` chains).
pub fn resolve_credential(state: &StateReader, name: &str, key: &DataKey) -> Result<CredentialSource, ApiError> {
    resolve_credential_depth(state, name, key, 0)
}

fn resolve_credential_depth(
    state: &StateReader,
    name: &str,
    key: &DataKey,
    depth: usize,
) -> Result<CredentialSource, ApiError> {
    if depth > 16 {
        return Err(ApiError::InvalidArgument(format!(
            "credential `{name}`: assume-role chain is too deep (a cycle?)"
        )));
    }
    let c = state
        .credential(name)
        .ok_or_else(|| ApiError::NotFound(format!("credential `{name}` not found (see `meshctl credential list`)")))?;
    Ok(match c.kind() {
        CredentialKind::DefaultChain => CredentialSource::DefaultChain,
        CredentialKind::Static => {
            if c.key_fingerprint != key.fingerprint() {
                return Err(ApiError::Internal(format!(
                    "credential `{}` is encrypted under data key {}… but this node's data key is {}…; re-add the credential",
                    c.name,
                    mesh_raft::config::short_fp(&c.key_fingerprint),
                    &key.fingerprint()[..16]
                )));
            }
            let secret_access_key = decrypt_secret(key, &c, "secret access key", &c.secret_access_key_enc)?;
            let session_token = if c.session_token_enc.is_empty() {
                None
            } else {
                Some(decrypt_secret(key, &c, "session token", &c.session_token_enc)?)
            };
            CredentialSource::Static {
                access_key_id: c.access_key_id.clone(),
                secret_access_key,
                session_token,
            }
        }
        CredentialKind::AssumeRole => CredentialSource::AssumeRole {
            role_arn: c.role_arn.clone(),
            external_id: Some(c.external_id.clone()).filter(|e| !e.is_empty()),
            via: Box::new(if c.via.is_empty() {
                CredentialSource::DefaultChain
            } else {
                resolve_credential_depth(state, &c.via, key, depth + 1)?
            }),
        },
        CredentialKind::Unspecified => {
            return Err(ApiError::Internal(format!("credential `{name}` has no kind")));
        }
    })
}

/// The engine's [`LocationSpec`] of location `name`, with its credential decrypted.
pub fn resolve_location(state: &StateReader, name: &str, key: &DataKey) -> Result<LocationSpec, ApiError> {
    let l = state
        .location(name)
        .ok_or_else(|| ApiError::NotFound(format!("location `{name}` not found (see `meshctl location list`)")))?;
    location_spec(state, &l, key)
}

/// [`resolve_location`] for a location record at hand.
pub fn location_spec(state: &StateReader, l: &pb::Location, key: &DataKey) -> Result<LocationSpec, ApiError> {
    let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    match l.kind() {
        LocationKind::Fs => Ok(LocationSpec::Fs(FsLocationSpec {
            root: l.fs_path.clone().into(),
        })),
        LocationKind::S3 => {
            let sse = match l.sse.as_str() {
                "" => None,
                "AES256" => Some(Sse::Aes256),
                "aws:kms" => Some(Sse::Kms {
                    key_id: opt(&l.kms_key_id),
                }),
                other => {
                    return Err(ApiError::Internal(format!(
                        "location `{}` has unknown sse {other:?}",
                        l.name
                    )))
                }
            };
            Ok(LocationSpec::S3(S3LocationSpec {
                bucket: l.bucket.clone(),
                prefix: l.prefix.clone(),
                region: opt(&l.region),
                endpoint: opt(&l.endpoint),
                path_style: l.path_style,
                credential_name: l.credential.clone(),
                // No credential named: the nodes' default AWS credential chain.
                credential: if l.credential.is_empty() {
                    CredentialSource::DefaultChain
                } else {
                    resolve_credential(state, &l.credential, key)?
                },
                defaults: WriteDefaults {
                    storage_class: opt(&l.storage_class),
                    sse,
                },
            }))
        }
        LocationKind::Unspecified => Err(ApiError::Internal(format!("location `{}` has no kind", l.name))),
    }
}

// ------------------------------------------------------------------------------------------
// Getting the key onto every node
// ------------------------------------------------------------------------------------------

/// Asks the node at `addr` for the data key and checks it against `expect` (a fingerprint; empty
/// = accept the fingerprint the peer states, checked again once the cluster's is known).
pub async fn fetch_from(peers: &Peers, addr: &str, expect: &str) -> Result<DataKey, String> {
    let mut client = peers.peer_client(addr).map_err(|e| e.to_string())?;
    let mut req = tonic::Request::new(pb::GetDataKeyRequest {
        header: Some(peers.header(0)),
    });
    req.set_timeout(FETCH_CALL_TIMEOUT);
    let resp = client.get_data_key(req).await.map_err(|s| {
        let msg = s.message().to_string();
        peers.call_failed(addr, s);
        msg
    })?;
    let r = resp.into_inner();
    let key = DataKey::from_bytes(&r.key).map_err(|e| e.to_string())?;
    let fp = key.fingerprint();
    if fp != r.sha256 || (!expect.is_empty() && fp != expect) {
        return Err(format!(
            "{addr} sent a data key with fingerprint {}… (expected {}…)",
            &fp[..16],
            mesh_raft::config::short_fp(if expect.is_empty() { &r.sha256 } else { expect })
        ));
    }
    Ok(key)
}

/// The addresses of the other members (from the applied membership) and the join list.
fn member_addrs(node_id: u64, advertise: &str, state: &StateReader, join: &[String]) -> Vec<String> {
    let m = state.membership();
    let mut out: Vec<String> = m
        .membership()
        .nodes()
        .filter(|(id, _)| **id != node_id)
        .map(|(_, n)| n.addr.clone())
        .collect();
    for a in join {
        if !out.contains(a) && a != advertise {
            out.push(a.clone());
        }
    }
    out
}

/// Start-up check. Returns the node's data key (None while its cluster has none, e.g. before the
/// cluster exists), or an error that must stop the node:
/// - the cluster has a fingerprint and the key file has another one;
/// - the cluster has a fingerprint, there is no key file, and no member hands out the key within
///   a few seconds.
pub async fn load_at_start(
    node_id: u64,
    cfg: &crate::config::Config,
    state: &StateReader,
    peers: &Peers,
) -> Result<Option<DataKey>, String> {
    let dir = &cfg.data_dir;
    let local = DataKey::load(dir).map_err(|e| e.to_string())?;
    let expect = state.cluster().map(|c| c.data_key_sha256).unwrap_or_default();
    if expect.is_empty() {
        return Ok(local);
    }
    if let Some(k) = local {
        if k.fingerprint() == expect {
            return Ok(Some(k));
        }
        return Err(format!(
            "the data key in {} (sha256 {}…) is not this cluster's data key (sha256 {}…); refusing to start. Restore the right file: copy {DATA_KEY_FILE} from another node of the cluster (mode 0600)",
            dir.join(DATA_KEY_FILE).display(),
            &k.fingerprint()[..16],
            mesh_raft::config::short_fp(&expect)
        ));
    }
    // A crash between the cluster recording the key and the rename of the pending file.
    if let Ok(Some(p)) = DataKey::load_file(&dir.join(PENDING_DATA_KEY_FILE)) {
        if p.fingerprint() == expect {
            p.store(dir).map_err(|e| e.to_string())?;
            let _ = std::fs::remove_file(dir.join(PENDING_DATA_KEY_FILE));
            return Ok(Some(p));
        }
    }
    let addrs = member_addrs(node_id, &cfg.advertise, state, &cfg.join);
    // No other member to ask (a single-node cluster): fail at once.
    let deadline = Instant::now()
        + if addrs.is_empty() {
            Duration::ZERO
        } else {
            START_FETCH_TIMEOUT
        };
    let mut last_errors: Vec<String> = Vec::new();
    loop {
        last_errors.clear();
        for a in &addrs {
            match fetch_from(peers, a, &expect).await {
                Ok(k) => {
                    k.store(dir).map_err(|e| e.to_string())?;
                    tracing::info!(from = %a, "fetched the cluster data key");
                    return Ok(Some(k));
                }
                Err(e) => last_errors.push(format!("{a}: {e}")),
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "this node's cluster encrypts credentials under a data key (sha256 {}…), but {} is missing and no member handed it out within {}s ({}); refusing to start without it. Start another member first, or copy {DATA_KEY_FILE} from another node of the cluster into the data directory (mode 0600)",
        mesh_raft::config::short_fp(&expect),
        dir.join(DATA_KEY_FILE).display(),
        START_FETCH_TIMEOUT.as_secs(),
        if last_errors.is_empty() {
            "no other member is known".to_string()
        } else {
            last_errors.join("; ")
        }
    ))
}

/// The key a bootstrapping leader proposes: the pending key of an earlier attempt, else a new one
/// written to `data-key.pending` (0600) before it is proposed.
pub fn pending_key_for_init(dir: &Path) -> Result<DataKey, SecretsError> {
    if let Some(k) = DataKey::load(dir)? {
        // A key placed by the operator (or kept from an earlier attempt) is used as is.
        return Ok(k);
    }
    let path = dir.join(PENDING_DATA_KEY_FILE);
    if let Some(k) = DataKey::load_file(&path)? {
        return Ok(k);
    }
    let k = DataKey::generate();
    k.store_file(&path)?;
    Ok(k)
}

/// The `data-key` worker (every node): see [`sync`].
pub struct DataKeySync;

#[tonic::async_trait]
impl crate::background::Worker for DataKeySync {
    fn name(&self) -> &'static str {
        "data-key"
    }
    fn scope(&self) -> crate::background::Scope {
        crate::background::Scope::Node
    }
    fn period(&self) -> Duration {
        crate::cluster::duties::TICK
    }
    async fn work(&self, node: &Node) -> Result<(), crate::background::WorkError> {
        sync(node).await.map_err(crate::background::WorkError::Fatal)
    }
}

/// One pass of the `data-key` worker: once the cluster has a data key fingerprint, make sure this node
/// holds that key — promote the pending key of the bootstrapping node, or fetch it from the leader
/// or another member. Err = this node holds a different key: it must stop.
pub async fn sync(node: &Node) -> Result<(), String> {
    let Some(cluster) = node.state.cluster() else {
        return Ok(());
    };
    let expect = cluster.data_key_sha256;
    if expect.is_empty() {
        return Ok(());
    }
    let dir = &node.cfg.data_dir;
    if let Some(k) = node.data_key.read().unwrap().clone() {
        if k.fingerprint() == expect {
            return Ok(());
        }
        return Err(format!(
            "this node's data key (sha256 {}…, in {}) is not the cluster's (sha256 {}…); stopping. Replace the file with the cluster's key (copy it from another node, mode 0600) and restart",
            &k.fingerprint()[..16],
            dir.join(DATA_KEY_FILE).display(),
            mesh_raft::config::short_fp(&expect)
        ));
    }
    let pending = dir.join(PENDING_DATA_KEY_FILE);
    if let Ok(Some(p)) = DataKey::load_file(&pending) {
        if p.fingerprint() != expect {
            // Another node's InitCluster won: this candidate key was never used.
            let _ = std::fs::remove_file(&pending);
        } else {
            p.store(dir).map_err(|e| e.to_string())?;
            let _ = std::fs::remove_file(&pending);
            *node.data_key.write().unwrap() = Some(Arc::new(p));
            tracing::info!(
                "the cluster recorded this node's data key; kept in {}",
                dir.join(DATA_KEY_FILE).display()
            );
            return Ok(());
        }
    }
    let mut addrs = Vec::new();
    if let Some((id, addr)) = node.leader() {
        if id != node.id {
            addrs.push(addr);
        }
    }
    for a in member_addrs(node.id, &node.cfg.advertise, &node.state, &[]) {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    for a in addrs {
        match fetch_from(&node.peers, &a, &expect).await {
            Ok(k) => {
                k.store(dir).map_err(|e| e.to_string())?;
                *node.data_key.write().unwrap() = Some(Arc::new(k));
                tracing::info!(from = %a, "fetched the cluster data key; kept in {}", dir.join(DATA_KEY_FILE).display());
                return Ok(());
            }
            Err(e) => tracing::debug!(from = %a, error = %e, "could not fetch the data key yet"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let k = DataKey::generate();
        for msg in [&b""[..], b"s3cr3t", &[0u8; 5000]] {
            let ct = encrypt(&k, msg);
            assert_eq!(ct.len(), NONCE_LEN + msg.len() + 16);
            assert_eq!(decrypt(&k, &ct).unwrap(), msg);
        }
        // Random nonces: the same plaintext encrypts differently.
        assert_ne!(encrypt(&k, b"x"), encrypt(&k, b"x"));
    }

    #[test]
    fn wrong_key_fails() {
        let ct = encrypt(&DataKey::generate(), b"secret");
        assert!(matches!(decrypt(&DataKey::generate(), &ct), Err(SecretsError::Decrypt)));
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let k = DataKey::generate();
        let ct = encrypt(&k, b"secret value");
        for i in [0, NONCE_LEN, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[i] ^= 1;
            assert!(decrypt(&k, &bad).is_err(), "flipping byte {i} went unnoticed");
        }
        assert!(decrypt(&k, &ct[..ct.len() - 1]).is_err());
        assert!(decrypt(&k, &ct[..10]).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let k = DataKey::from_bytes(&[0xAB; 32]).unwrap();
        let d = format!("{k:?}");
        assert!(!d.contains(&hex::encode(k.expose_bytes())), "{d}");
        assert!(!d.to_lowercase().contains("abab"), "{d}");
        assert!(d.contains("redacted"), "{d}");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }

    #[test]
    fn key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DataKey::load(dir.path()).unwrap().is_none());
        let k = DataKey::load_or_create(dir.path()).unwrap();
        assert_eq!(DataKey::load_or_create(dir.path()).unwrap(), k);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(DATA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(DATA_KEY_FILE), "zz").unwrap();
        let e = DataKey::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }

    fn state_with(creds: Vec<pb::Credential>, locs: Vec<pb::Location>) -> StateReader {
        let mut s = mesh_raft::AppliedState::default();
        for c in creds {
            s.tables.credentials.insert(c.name.clone(), c);
        }
        for l in locs {
            s.tables.locations.insert(l.name.clone(), l);
        }
        StateReader::from_state(s)
    }

    #[test]
    fn resolves_locations_with_decrypted_credentials() {
        let k = DataKey::generate();
        let keys = pb::Credential {
            name: "keys".into(),
            kind: CredentialKind::Static as i32,
            access_key_id: "AKIA1".into(),
            secret_access_key_enc: encrypt(&k, b"sekrit"),
            session_token_enc: encrypt(&k, b"tok"),
            key_fingerprint: k.fingerprint(),
            ..Default::default()
        };
        let role = pb::Credential {
            name: "role".into(),
            kind: CredentialKind::AssumeRole as i32,
            role_arn: "arn:aws:iam::1:role/r".into(),
            via: "keys".into(),
            ..Default::default()
        };
        let loc = pb::Location {
            name: "l".into(),
            kind: LocationKind::S3 as i32,
            bucket: "bkt".into(),
            prefix: "p/".into(),
            credential: "role".into(),
            sse: "aws:kms".into(),
            kms_key_id: "k1".into(),
            ..Default::default()
        };
        let fs = pb::Location {
            name: "f".into(),
            kind: LocationKind::Fs as i32,
            fs_path: "/data".into(),
            ..Default::default()
        };
        let st = state_with(vec![keys, role], vec![loc, fs]);
        let LocationSpec::S3(s3) = resolve_location(&st, "l", &k).unwrap() else {
            panic!("not s3")
        };
        assert_eq!(s3.bucket, "bkt");
        assert_eq!(s3.region, None);
        assert_eq!(
            s3.defaults.sse,
            Some(Sse::Kms {
                key_id: Some("k1".into())
            })
        );
        match s3.credential {
            CredentialSource::AssumeRole {
                role_arn,
                external_id,
                via,
            } => {
                assert_eq!(role_arn, "arn:aws:iam::1:role/r");
                assert_eq!(external_id, None);
                match *via {
                    CredentialSource::Static {
                        access_key_id,
                        secret_access_key,
                        session_token,
                    } => {
                        assert_eq!(access_key_id, "AKIA1");
                        assert_eq!(secret_access_key.expose(), "sekrit");
                        assert_eq!(session_token.unwrap().expose(), "tok");
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(resolve_location(&st, "f", &k).unwrap(), LocationSpec::Fs(_)));
        assert!(matches!(resolve_location(&st, "nope", &k), Err(ApiError::NotFound(_))));
        // Another node's key cannot decrypt.
        assert!(resolve_location(&st, "l", &DataKey::generate()).is_err());
    }
}
