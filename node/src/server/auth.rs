//! Who may call what: the single place where callers are authenticated.
//!
//! Client services (ClusterService, LocationService, CredentialService, JobService) require `authorization: Bearer
//! <token>`; the token's SHA-256 is compared with the hashes in the replicated state (today the
//! root token; users, access keys and roles plug in here). Node-to-node services require a client
//! certificate, which the TLS handshake has already checked against the cluster CA.
//!
//! The authenticated [`Principal`] is put into the request extensions for handlers to read.

use mesh_raft::StateReader;
use sha2::{Digest, Sha256};
use tonic::{service::Interceptor, Request, Status};

use crate::error::ApiError;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Holder of the root token created at bootstrap.
    Root,
    /// Another node of the cluster (mutual TLS).
    Peer,
}

/// Hex SHA-256 of a token, as stored in the log.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Interceptor of client services.
#[derive(Clone)]
pub struct ClientAuth {
    pub state: StateReader,
}

impl ClientAuth {
    fn check(&self, req: &Request<()>) -> Result<Principal, ApiError> {
        let header = req.metadata().get("authorization").ok_or_else(|| {
            ApiError::Unauthenticated(
                "no token: send `authorization: Bearer <token>` (meshctl: --token or MESH_TOKEN)".into(),
            )
        })?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::Unauthenticated("the authorization header is not text".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::Unauthenticated("the authorization header must be `Bearer <token>`".into()))?
            .trim();
        let cluster = self.state.cluster().ok_or_else(|| {
            ApiError::Unavailable("the cluster is still forming (no root token yet); retry in a few seconds".into())
        })?;
        if constant_time_eq(&token_hash(token), &cluster.root_token_sha256) {
            Ok(Principal::Root)
        } else {
            Err(ApiError::Unauthenticated(
                "the token was refused: it is not a token of this cluster (check MESH_TOKEN or the root-token file)"
                    .into(),
            ))
        }
    }
}

impl Interceptor for ClientAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let principal = self.check(&req)?;
        req.extensions_mut().insert(principal);
        Ok(req)
    }
}

/// Interceptor of node-to-node services.
#[derive(Clone)]
pub struct PeerAuth;

impl Interceptor for PeerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        // With client auth optional at the handshake, a connection without a certificate gets
        // this far; one with a certificate from another CA never does.
        match req.peer_certs() {
            Some(certs) if !certs.is_empty() => {
                req.extensions_mut().insert(Principal::Peer);
                Ok(req)
            }
            _ => Err(ApiError::PermissionDenied(
                "node-to-node services need a client certificate signed by the cluster CA".into(),
            )
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq("ab", "ab"));
        assert!(!constant_time_eq("ab", "ac"));
        assert!(!constant_time_eq("ab", "abc"));
    }

    #[test]
    fn peer_services_refuse_callers_without_a_certificate() {
        let err = PeerAuth.call(Request::new(())).unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
    }
}
