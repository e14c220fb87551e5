//! LocationService and CredentialService: the replicated configuration of the copy engine.
//!
//! Writes are validated here with the state machine's own validators (so bad input is refused
//! before it is proposed, in the same words), then proposed through the leader; the state machine
//! checks references (credential exists, not in use, no via cycle) deterministically.
//!
//! Secrets: `CredentialService.Add` is the only call that carries one. This node encrypts it under
//! the cluster data key before proposing, so plaintext never reaches the log, a snapshot, a peer or
//! a response; credentials are returned as `CredentialView` (kind, access key id, role, via).
//!
//! `LocationService.Test` resolves the location on this node (decrypting its credential in
//! memory) and runs the engine's probe.

use std::sync::Arc;

use mesh_proto::v1::{self as pb, CredentialKind, LocationKind, ReadConsistency};
use mesh_proto::{names, rules};
use tonic::{Request, Response, Status};

use super::consistency;
use crate::error::ApiError;
use crate::node::{now_ms, Node};
use crate::secrets;

/// Both services; clones share the node and the S3 client cache.
#[derive(Clone)]
pub struct ConfigRpc {
    pub node: Arc<Node>,
    clients: Arc<mesh_engine::S3Clients>,
}

impl ConfigRpc {
    pub fn new(node: Arc<Node>) -> ConfigRpc {
        ConfigRpc {
            node,
            clients: Arc::new(mesh_engine::S3Clients::new()),
        }
    }

    async fn propose(&self, kind: pb::command::Kind) -> Result<(), ApiError> {
        self.node
            .write(pb::Command {
                at_ms: now_ms(),
                kind: Some(kind),
            })
            .await?;
        // Applied on the leader; wait until this node has applied it too so that the answer (and
        // a local read right after) shows it.
        self.node.read_barrier(ReadConsistency::Linearizable).await?;
        Ok(())
    }

    fn view(&self, c: &pb::Credential) -> pb::CredentialView {
        credential_view(c, self.node.state.credential_users(&c.name))
    }
}

/// What the API shows of a credential: never a secret.
pub fn credential_view(c: &pb::Credential, used_by: Vec<String>) -> pb::CredentialView {
    pb::CredentialView {
        name: c.name.clone(),
        kind: c.kind,
        access_key_id: c.access_key_id.clone(),
        has_secret_access_key: !c.secret_access_key_enc.is_empty(),
        has_session_token: !c.session_token_enc.is_empty(),
        role_arn: c.role_arn.clone(),
        external_id: c.external_id.clone(),
        via: c.via.clone(),
        key_fingerprint: mesh_raft::config::short_fp(&c.key_fingerprint).to_string(),
        used_by,
        created_at_ms: c.created_at_ms,
        updated_at_ms: c.updated_at_ms,
    }
}

fn name_arg(what: &str, name: &str) -> Result<(), ApiError> {
    rules::validate_name(what, name).map_err(ApiError::InvalidArgument)
}

#[tonic::async_trait]
impl pb::location_service_server::LocationService for ConfigRpc {
    async fn add(&self, req: Request<pb::AddLocationRequest>) -> Result<Response<pb::AddLocationResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("AddLocation");
        let r = req.into_inner();
        let mut loc = r
            .location
            .ok_or_else(|| ApiError::InvalidArgument("AddLocation needs a location".into()))?;
        loc.created_at_ms = 0;
        loc.updated_at_ms = 0;
        let loc = rules::admit_location(&loc).map_err(ApiError::InvalidArgument)?;
        if loc.kind() == pb::LocationKind::S3 && loc.credential.is_empty() {
            self.node
                .require_voters_at(rules::DEFAULT_CHAIN_SINCE, "an s3 location without --credential")?;
        }
        let name = loc.name.clone();
        self.propose(pb::command::Kind::PutLocation(pb::PutLocation {
            location: Some(loc),
            replace: r.replace,
        }))
        .await?;
        tracing::info!(location = %name, replace = r.replace, "location added");
        Ok(Response::new(pb::AddLocationResponse {
            location: self.node.state.location(&name),
        }))
    }

    async fn list(
        &self,
        req: Request<pb::ListLocationsRequest>,
    ) -> Result<Response<pb::ListLocationsResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("ListLocations");
        let linearizable = self.node.read_barrier(consistency(req.get_ref().consistency)).await?;
        Ok(Response::new(pb::ListLocationsResponse {
            locations: self.node.state.locations(),
            linearizable,
        }))
    }

    async fn get(&self, req: Request<pb::GetLocationRequest>) -> Result<Response<pb::GetLocationResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("GetLocation");
        let r = req.into_inner();
        name_arg("location", &r.name)?;
        let linearizable = self.node.read_barrier(consistency(r.consistency)).await?;
        let location = self.node.state.location(&r.name).ok_or_else(|| {
            ApiError::NotFound(format!("location `{}` not found (see `meshctl location list`)", r.name))
        })?;
        let credential = if location.kind() == pb::LocationKind::S3 && location.credential.is_empty() {
            // No credential named: the nodes' default chain, shown as a nameless credential.
            Some(pb::CredentialView {
                kind: pb::CredentialKind::DefaultChain as i32,
                ..Default::default()
            })
        } else {
            Some(&location.credential)
                .filter(|c| !c.is_empty())
                .and_then(|c| self.node.state.credential(c))
                .map(|c| self.view(&c))
        };
        Ok(Response::new(pb::GetLocationResponse {
            location: Some(location),
            credential,
            linearizable,
        }))
    }

    async fn remove(
        &self,
        req: Request<pb::RemoveLocationRequest>,
    ) -> Result<Response<pb::RemoveLocationResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("RemoveLocation");
        let r = req.into_inner();
        name_arg("location", &r.name)?;
        self.node.read_barrier(ReadConsistency::Linearizable).await?;
        let before = self.node.state.location(&r.name);
        self.propose(pb::command::Kind::DeleteLocation(pb::DeleteLocation {
            name: r.name.clone(),
        }))
        .await?;
        tracing::info!(location = %r.name, "location removed");
        Ok(Response::new(pb::RemoveLocationResponse { removed: before }))
    }

    async fn test(&self, req: Request<pb::TestLocationRequest>) -> Result<Response<pb::TestLocationResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("TestLocation");
        let r = req.into_inner();
        name_arg("location", &r.name)?;
        self.node.read_barrier(ReadConsistency::Linearizable).await?;
        let loc = self.node.state.location(&r.name).ok_or_else(|| {
            ApiError::NotFound(format!("location `{}` not found (see `meshctl location list`)", r.name))
        })?;
        let needs_key = loc.kind() == LocationKind::S3;
        let key = if needs_key {
            secrets::require_key(&self.node)?
        } else {
            // fs locations have no secrets; any key will do for the resolver.
            secrets::require_key(&self.node).unwrap_or_else(|_| Arc::new(secrets::DataKey::generate()))
        };
        let spec = secrets::location_spec(&self.node.state, &loc, &key)?;
        let store = match mesh_engine::open_store(&spec, &self.clients).await {
            Ok(s) => s,
            Err(e) => {
                return Ok(Response::new(pb::TestLocationResponse {
                    name: r.name,
                    target: String::new(),
                    ok: false,
                    steps: vec![pb::ProbeStep {
                        step: "open".into(),
                        ok: false,
                        detail: e.to_string(),
                    }],
                    served_by: self.node.id,
                }))
            }
        };
        let report = store.probe().await;
        let steps: Vec<pb::ProbeStep> = report
            .steps
            .iter()
            .map(|(step, outcome)| match outcome {
                Ok(detail) => pb::ProbeStep {
                    step: step.clone(),
                    ok: true,
                    detail: detail.clone(),
                },
                Err(e) => pb::ProbeStep {
                    step: step.clone(),
                    ok: false,
                    detail: e.to_string(),
                },
            })
            .collect();
        Ok(Response::new(pb::TestLocationResponse {
            name: r.name,
            target: store.describe(),
            ok: report.ok(),
            steps,
            served_by: self.node.id,
        }))
    }
}

#[tonic::async_trait]
impl pb::credential_service_server::CredentialService for ConfigRpc {
    async fn add(&self, req: Request<pb::AddCredentialRequest>) -> Result<Response<pb::AddCredentialResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("AddCredential");
        // Never log `r`: it holds plaintext secrets.
        let r = req.into_inner();
        name_arg("credential", &r.name)?;
        let kind = CredentialKind::try_from(r.kind).unwrap_or(CredentialKind::Unspecified);
        let mut cred = pb::Credential {
            name: r.name.clone(),
            kind: r.kind,
            access_key_id: r.access_key_id.trim().to_string(),
            role_arn: r.role_arn.clone(),
            external_id: r.external_id.clone(),
            via: r.via.clone(),
            ..Default::default()
        };
        match kind {
            CredentialKind::Static => {
                if r.secret_access_key.is_empty() {
                    return Err(ApiError::InvalidArgument(format!(
                        "credential `{}`: a static credential needs a secret access key",
                        r.name
                    ))
                    .into());
                }
                let key = secrets::require_key(&self.node)?;
                let cluster_fp = self.node.state.cluster().map(|c| c.data_key_sha256).unwrap_or_default();
                if cluster_fp.is_empty() {
                    return Err(ApiError::Unavailable(
                        "the cluster has no data key to encrypt secrets with (a cluster created by an older meshd); static credentials cannot be stored yet".into(),
                    )
                    .into());
                }
                cred.secret_access_key_enc = secrets::encrypt(&key, r.secret_access_key.as_bytes());
                if !r.session_token.is_empty() {
                    cred.session_token_enc = secrets::encrypt(&key, r.session_token.as_bytes());
                }
                cred.key_fingerprint = key.fingerprint();
            }
            _ => {
                if !r.secret_access_key.is_empty() || !r.session_token.is_empty() {
                    return Err(ApiError::InvalidArgument(format!(
                        "credential `{}`: only a static credential has a secret access key or session token",
                        r.name
                    ))
                    .into());
                }
            }
        }
        rules::validate_credential(&cred).map_err(ApiError::InvalidArgument)?;
        self.propose(pb::command::Kind::PutCredential(pb::PutCredential {
            credential: Some(cred),
            replace: r.replace,
        }))
        .await?;
        tracing::info!(credential = %r.name, kind = names::credential_kind(r.kind), "credential added");
        let stored = self
            .node
            .state
            .credential(&r.name)
            .ok_or_else(|| ApiError::Internal("the credential was applied but is not in the state".into()))?;
        Ok(Response::new(pb::AddCredentialResponse {
            credential: Some(self.view(&stored)),
        }))
    }

    async fn list(
        &self,
        req: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("ListCredentials");
        let linearizable = self.node.read_barrier(consistency(req.get_ref().consistency)).await?;
        let credentials = self.node.state.credentials().iter().map(|c| self.view(c)).collect();
        Ok(Response::new(pb::ListCredentialsResponse {
            credentials,
            linearizable,
        }))
    }

    async fn remove(
        &self,
        req: Request<pb::RemoveCredentialRequest>,
    ) -> Result<Response<pb::RemoveCredentialResponse>, Status> {
        let _t = self.node.metrics.rpc_timer("RemoveCredential");
        let r = req.into_inner();
        name_arg("credential", &r.name)?;
        self.node.read_barrier(ReadConsistency::Linearizable).await?;
        let before = self.node.state.credential(&r.name).map(|c| credential_view(&c, vec![]));
        self.propose(pb::command::Kind::DeleteCredential(pb::DeleteCredential {
            name: r.name.clone(),
        }))
        .await?;
        tracing::info!(credential = %r.name, "credential removed");
        Ok(Response::new(pb::RemoveCredentialResponse { removed: before }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_carry_no_secret() {
        let c = pb::Credential {
            name: "k".into(),
            kind: CredentialKind::Static as i32,
            access_key_id: "AKIA".into(),
            secret_access_key_enc: vec![1; 40],
            session_token_enc: vec![2; 40],
            key_fingerprint: "0123456789abcdef0123".into(),
            ..Default::default()
        };
        let v = credential_view(&c, vec!["location:x".into()]);
        assert!(v.has_secret_access_key && v.has_session_token);
        assert_eq!(v.key_fingerprint, "0123456789abcdef");
        let bytes = prost::Message::encode_to_vec(&v);
        assert!(!bytes.windows(40).any(|w| w == [1; 40] || w == [2; 40]));
    }
}
