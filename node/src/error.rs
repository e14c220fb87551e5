//! The one place where node errors become gRPC statuses.
//!
//! Every service returns `Result<_, ApiError>`; `impl From<ApiError> for tonic::Status` maps each
//! kind to a status code, a message that says what is wrong and what to do, and a machine-readable
//! `mesh-reason` metadata entry that meshctl and other clients switch on.

use mesh_proto::{Reason, REASON_KEY};
use tonic::{metadata::MetadataValue, Code, Status};

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
    /// The machine-readable reason sent as `mesh-reason`.
    pub fn reason(&self) -> Reason {
        match self {
            ApiError::NoLeader => Reason::NoLeader,
            ApiError::Unauthenticated(_) => Reason::Unauthenticated,
            ApiError::PermissionDenied(_) => Reason::PermissionDenied,
            ApiError::NotFound(_) => Reason::NotFound,
            ApiError::InvalidArgument(_) => Reason::InvalidArgument,
            ApiError::AlreadyInitialized(_) => Reason::AlreadyInitialized,
            ApiError::AlreadyExists(_) => Reason::AlreadyExists,
            ApiError::InUse(_) => Reason::InUse,
            ApiError::FailedPrecondition(_) => Reason::FailedPrecondition,
            ApiError::WrongNode(_) => Reason::WrongNode,
            ApiError::WrongCluster(_) => Reason::WrongCluster,
            ApiError::Unavailable(_) => Reason::Unavailable,
            ApiError::SnapshotMismatch(_) => Reason::SnapshotMismatch,
            ApiError::Internal(_) => Reason::Internal,
        }
    }

    /// The error of `reason` with `message` (the inverse of [`ApiError::reason`]).
    pub fn of(reason: Reason, message: String) -> ApiError {
        match reason {
            Reason::NoLeader => ApiError::NoLeader,
            Reason::Unauthenticated => ApiError::Unauthenticated(message),
            Reason::PermissionDenied => ApiError::PermissionDenied(message),
            Reason::NotFound => ApiError::NotFound(message),
            Reason::InvalidArgument => ApiError::InvalidArgument(message),
            Reason::AlreadyInitialized => ApiError::AlreadyInitialized(message),
            Reason::AlreadyExists => ApiError::AlreadyExists(message),
            Reason::InUse => ApiError::InUse(message),
            Reason::FailedPrecondition => ApiError::FailedPrecondition(message),
            Reason::WrongNode => ApiError::WrongNode(message),
            Reason::WrongCluster => ApiError::WrongCluster(message),
            Reason::Unavailable => ApiError::Unavailable(message),
            Reason::SnapshotMismatch => ApiError::SnapshotMismatch(message),
            Reason::Internal => ApiError::Internal(message),
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

    /// Builds the error a deterministic state-machine refusal stands for (an unknown reason from
    /// a newer node counts as bad input).
    pub fn from_refusal(reason: &str, message: String) -> ApiError {
        ApiError::of(Reason::parse(reason).unwrap_or(Reason::InvalidArgument), message)
    }

    /// Rebuilds an ApiError from a status returned by a peer (forwarded writes), keeping its
    /// reason. A status without a known reason (a transport failure) is UNAVAILABLE.
    pub fn from_status(status: &Status) -> ApiError {
        let msg = status.message().to_string();
        match reason_of(status) {
            Some(reason) => ApiError::of(reason, msg),
            None => ApiError::Unavailable(format!("peer call failed: {} ({:?})", msg, status.code())),
        }
    }
}

/// The reason a status carries, if it carries one this build knows.
pub fn reason_of(status: &Status) -> Option<Reason> {
    status
        .metadata()
        .get(REASON_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(Reason::parse)
}

/// Longest message a status carries: it travels in an HTTP/2 header, and clients limit those.
const MAX_STATUS_MESSAGE: usize = 2048;

/// `message` cut to [`MAX_STATUS_MESSAGE`] bytes at a character boundary.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_STATUS_MESSAGE {
        let mut end = MAX_STATUS_MESSAGE - 16;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… (cut)");
    }
    message
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let mut status = Status::new(err.code(), bounded(err.to_string()));
        status
            .metadata_mut()
            .insert(REASON_KEY, MetadataValue::from_static(err.reason().as_str()));
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_survives_a_status_round_trip() {
        for reason in Reason::all() {
            let err = ApiError::of(reason, "m".into());
            assert_eq!(err.reason(), reason);
            let status = Status::from(err);
            assert_eq!(status.metadata().get(REASON_KEY).unwrap(), reason.as_str());
            assert_eq!(ApiError::from_status(&status).reason(), reason);
        }
    }

    #[test]
    fn a_status_without_a_known_reason_is_unavailable() {
        let mut s = Status::internal("boom");
        assert_eq!(ApiError::from_status(&s).reason(), Reason::Unavailable);
        s.metadata_mut()
            .insert(REASON_KEY, MetadataValue::from_static("FROM_THE_FUTURE"));
        assert_eq!(ApiError::from_status(&s).reason(), Reason::Unavailable);
        assert_eq!(
            ApiError::from_refusal("INVALID", "x".into()).reason(),
            Reason::InvalidArgument
        );
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
    fn a_long_message_is_cut() {
        let s = Status::from(ApiError::InvalidArgument("é".repeat(1 << 20)));
        assert!(s.message().len() <= MAX_STATUS_MESSAGE, "{}", s.message().len());
        assert!(s.message().ends_with("(cut)"));
    }

    #[test]
    fn no_leader_is_unavailable_and_says_to_retry() {
        let status = Status::from(ApiError::NoLeader);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("retry"));
    }
}
