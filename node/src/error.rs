//! The one place where node errors become gRPC statuses.
//!
//! Every service returns `Result<_, ApiError>`; `impl From<ApiError> for tonic::Status` maps each
//! kind to a status code, a message that says what is wrong and what to do, and a machine-readable
//! `mesh-reason` metadata entry that meshctl and other clients switch on.

use tonic::{metadata::MetadataValue, Code, Status};

/// Metadata key carrying the machine-readable reason of an error status.
pub const REASON_KEY: &str = "mesh-reason";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No leader is known (election in progress, or quorum lost).
    #[error("the cluster has no leader right now (election in progress or quorum lost); retry in a few seconds")]
    NoLeader,
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    AlreadyInitialized(String),
    /// A name that is taken (location, credential).
    #[error("{0}")]
    AlreadyExists(String),
    /// Something still uses what was to be removed.
    #[error("{0}")]
    InUse(String),
    /// The request is well-formed but does not apply in the current state (e.g. resuming a job
    /// that is not paused, or asking for a report that is not written yet).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The request was meant for another node id (address reused, stale membership).
    #[error("{0}")]
    WrongNode(String),
    /// The request came from a node of another cluster.
    #[error("{0}")]
    WrongCluster(String),
    #[error("{0}")]
    Unavailable(String),
    /// A snapshot chunk does not continue the stream the receiver has (it restarted).
    #[error("{0}")]
    SnapshotMismatch(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Machine-readable reason sent as `mesh-reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NoLeader => "NO_LEADER",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::PermissionDenied(_) => "PERMISSION_DENIED",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::InvalidArgument(_) => "INVALID_ARGUMENT",
            ApiError::AlreadyInitialized(_) => "ALREADY_INITIALIZED",
            ApiError::AlreadyExists(_) => "ALREADY_EXISTS",
            ApiError::InUse(_) => "IN_USE",
            ApiError::FailedPrecondition(_) => "FAILED_PRECONDITION",
            ApiError::WrongNode(_) => "WRONG_NODE",
            ApiError::WrongCluster(_) => "WRONG_CLUSTER",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::SnapshotMismatch(_) => "SNAPSHOT_MISMATCH",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    fn code(&self) -> Code {
        match self {
            ApiError::NoLeader | ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) | ApiError::WrongNode(_) | ApiError::WrongCluster(_) => {
                Code::PermissionDenied
            }
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::AlreadyInitialized(_) | ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::InUse(_) | ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::Internal(_) => Code::Internal,
            ApiError::SnapshotMismatch(_) => Code::FailedPrecondition,
        }
    }

    /// Builds the error a deterministic state-machine refusal stands for.
    pub fn from_refusal(reason: &str, message: String) -> ApiError {
        match reason {
            "NOT_FOUND" => ApiError::NotFound(message),
            "ALREADY_INITIALIZED" => ApiError::AlreadyInitialized(message),
            "ALREADY_EXISTS" => ApiError::AlreadyExists(message),
            "IN_USE" => ApiError::InUse(message),
            "FAILED_PRECONDITION" => ApiError::FailedPrecondition(message),
            _ => ApiError::InvalidArgument(message),
        }
    }

    /// Rebuilds an ApiError from a status returned by a peer (forwarded writes), keeping its reason.
    pub fn from_status(status: &Status) -> ApiError {
        let reason = status
            .metadata()
            .get(REASON_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let msg = status.message().to_string();
        match reason {
            "NO_LEADER" => ApiError::NoLeader,
            "UNAUTHENTICATED" => ApiError::Unauthenticated(msg),
            "PERMISSION_DENIED" => ApiError::PermissionDenied(msg),
            "NOT_FOUND" => ApiError::NotFound(msg),
            "INVALID_ARGUMENT" => ApiError::InvalidArgument(msg),
            "ALREADY_INITIALIZED" => ApiError::AlreadyInitialized(msg),
            "ALREADY_EXISTS" => ApiError::AlreadyExists(msg),
            "IN_USE" => ApiError::InUse(msg),
            "FAILED_PRECONDITION" => ApiError::FailedPrecondition(msg),
            "WRONG_NODE" => ApiError::WrongNode(msg),
            "WRONG_CLUSTER" => ApiError::WrongCluster(msg),
            "INTERNAL" => ApiError::Internal(msg),
            _ => ApiError::Unavailable(format!("peer call failed: {} ({:?})", msg, status.code())),
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let mut status = Status::new(err.code(), err.to_string());
        status
            .metadata_mut()
            .insert(REASON_KEY, MetadataValue::from_static(err.reason()));
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_keeps_its_reason_through_a_status() {
        let all = [
            ApiError::NoLeader,
            ApiError::Unauthenticated("u".into()),
            ApiError::PermissionDenied("p".into()),
            ApiError::NotFound("n".into()),
            ApiError::InvalidArgument("i".into()),
            ApiError::AlreadyInitialized("a".into()),
            ApiError::AlreadyExists("e".into()),
            ApiError::InUse("u".into()),
            ApiError::FailedPrecondition("f".into()),
            ApiError::WrongNode("w".into()),
            ApiError::WrongCluster("c".into()),
            ApiError::Internal("x".into()),
        ];
        for err in all {
            let reason = err.reason();
            let status = Status::from(err);
            assert_eq!(status.metadata().get(REASON_KEY).unwrap(), reason);
            assert_eq!(ApiError::from_status(&status).reason(), reason);
        }
    }

    #[test]
    fn job_refusals_map_to_their_status() {
        let s = Status::from(ApiError::from_refusal(
            "FAILED_PRECONDITION",
            "job j-1 is completed".into(),
        ));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(s.metadata().get(REASON_KEY).unwrap(), "FAILED_PRECONDITION");
        let s = Status::from(ApiError::from_refusal("NOT_FOUND", "job j-1 not found".into()));
        assert_eq!(s.code(), Code::NotFound);
        let s = Status::from(ApiError::from_refusal(
            "ALREADY_EXISTS",
            "job j-1 already exists".into(),
        ));
        assert_eq!(s.code(), Code::AlreadyExists);
    }

    #[test]
    fn no_leader_is_unavailable_and_says_to_retry() {
        let status = Status::from(ApiError::NoLeader);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("retry"));
    }
}
