//! The machine-readable reasons of every refusal and error, in one table.
//!
//! A reason travels in two places: in a state-machine refusal (`CommandResponse.reason`, set by
//! mesh-raft's apply) and in the `mesh-reason` metadata of an error status (set by meshd's one
//! error-mapping place, read by meshctl and by any third-party client). Both spell it with
//! [`Reason::as_str`]; nothing else in the workspace spells a reason.
//!
//! Reasons are part of the public contract: a name, once shipped, is never renamed or reused.
//! `INVALID` is the spelling of `INVALID_ARGUMENT` used in refusals by nodes before 0.1.1; it is
//! still read (a forwarded write may be answered by an older leader) and never written.

/// Metadata key carrying the machine-readable reason of an error status.
pub const REASON_KEY: &str = "mesh-reason";

/// Why a call or a command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::EnumIter, strum::IntoStaticStr)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// No leader is known (election in progress, or quorum lost): retry.
    NoLeader,
    /// No or a wrong bearer token.
    Unauthenticated,
    /// The caller may not do this.
    PermissionDenied,
    /// The named thing does not exist.
    NotFound,
    /// The request is malformed or breaks a rule (the message names the field).
    InvalidArgument,
    /// The cluster identity exists already (InitCluster).
    AlreadyInitialized,
    /// The name is taken.
    AlreadyExists,
    /// Something still uses what was to be removed.
    InUse,
    /// Well-formed, but not possible in the current state (resume a job that is not paused).
    FailedPrecondition,
    /// A node-to-node request meant for another node id (stale address, reused IP).
    WrongNode,
    /// A node-to-node request from a node of another cluster.
    WrongCluster,
    /// The node cannot serve the call right now (shutting down, peer unreachable, no quorum).
    Unavailable,
    /// A snapshot chunk does not continue the stream the receiver holds (it restarted).
    SnapshotMismatch,
    /// A bug or an unexpected failure inside the node.
    Internal,
}

impl Reason {
    /// The wire spelling (`NO_LEADER`, `INVALID_ARGUMENT`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Reads a wire spelling, including legacy aliases; `None` for a reason this build does not
    /// know (a newer node's): callers treat it by the status code.
    pub fn parse(s: &str) -> Option<Reason> {
        if s == "INVALID" {
            return Some(Reason::InvalidArgument);
        }
        Reason::all().find(|r| r.as_str() == s)
    }

    /// Every reason.
    pub fn all() -> impl Iterator<Item = Reason> {
        <Reason as strum::IntoEnumIterator>::iter()
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_its_spelling() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::all() {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} spelled twice");
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}");
            assert_eq!(Reason::parse(s), Some(r));
        }
        assert_eq!(seen.len(), 14);
    }

    #[test]
    fn legacy_and_unknown_spellings() {
        assert_eq!(Reason::parse("INVALID"), Some(Reason::InvalidArgument));
        assert_eq!(Reason::parse("SOMETHING_NEW"), None);
        assert_eq!(Reason::InvalidArgument.to_string(), "INVALID_ARGUMENT");
    }
}
