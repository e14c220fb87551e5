//! Enum values by name: the words meshctl prints and parses, the state machine writes into
//! events and messages, and the API returns in its views. One table per enum, used in both
//! directions, so a name can never be spelled two ways.

use crate::v1 as pb;

/// Defines `$name(i32) -> &'static str` (the unknown word for values this build does not know)
/// and `$parse(&str) -> Option<Enum>`, from one table.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident, $parse:ident, $ty:ident, unknown = $unknown:literal,
     { $($variant:ident => $word:literal),* $(,)? }) => {
        $(#[$doc])*
        pub fn $name(value: i32) -> &'static str {
            match pb::$ty::try_from(value) {
                $(Ok(pb::$ty::$variant) => $word,)*
                _ => $unknown,
            }
        }

        #[doc = concat!("Parses a name printed by [`", stringify!($name), "`].")]
        pub fn $parse(word: &str) -> Option<pb::$ty> {
            match word {
                $($word => Some(pb::$ty::$variant),)*
                _ => None,
            }
        }
    };
}

names!(
    /// A job state: `queued`, `running`, `completed_with_warnings`, ...
    job_state, parse_job_state, JobState, unknown = "unknown", {
        Queued => "queued",
        Planning => "planning",
        Running => "running",
        Paused => "paused",
        Verifying => "verifying",
        Completed => "completed",
        CompletedWithWarnings => "completed_with_warnings",
        Failed => "failed",
        Cancelled => "cancelled",
        Cancelling => "cancelling",
    }
);

names!(
    /// A job operation: `copy`, `move`, `sync`.
    job_op, parse_job_op, JobOp, unknown = "unknown", {
        Copy => "copy",
        Move => "move",
        Sync => "sync",
    }
);

names!(
    /// A task kind: `list`, `copy`, `part-init`, ...
    task_kind, parse_task_kind, TaskKind, unknown = "unknown", {
        List => "list",
        Copy => "copy",
        PartInit => "part-init",
        PartCopy => "part-copy",
        PartComplete => "part-complete",
        Finalize => "finalize",
    }
);

names!(
    /// A node state: `joining`, `active`, `draining`, `down`, `left` (and `unspecified`).
    node_state, parse_node_state, NodeState, unknown = "unknown", {
        Unspecified => "unspecified",
        Joining => "joining",
        Active => "active",
        Draining => "draining",
        Down => "down",
        Left => "left",
    }
);

names!(
    /// A location kind: `s3`, `fs`.
    location_kind, parse_location_kind, LocationKind, unknown = "unspecified", {
        S3 => "s3",
        Fs => "fs",
    }
);

names!(
    /// A credential kind: `default_chain`, `static`, `assume_role`.
    credential_kind, parse_credential_kind, CredentialKind, unknown = "unspecified", {
        DefaultChain => "default_chain",
        Static => "static",
        AssumeRole => "assume_role",
    }
);

/// Whether a job state is final.
pub fn is_terminal_job_state(state: i32) -> bool {
    matches!(
        pb::JobState::try_from(state),
        Ok(pb::JobState::Completed
            | pb::JobState::CompletedWithWarnings
            | pb::JobState::Failed
            | pb::JobState::Cancelled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back() {
        for v in 0..=16 {
            for (name, back) in [
                (job_state(v), parse_job_state(job_state(v)).map(|e| e as i32)),
                (job_op(v), parse_job_op(job_op(v)).map(|e| e as i32)),
                (task_kind(v), parse_task_kind(task_kind(v)).map(|e| e as i32)),
                (node_state(v), parse_node_state(node_state(v)).map(|e| e as i32)),
                (
                    location_kind(v),
                    parse_location_kind(location_kind(v)).map(|e| e as i32),
                ),
                (
                    credential_kind(v),
                    parse_credential_kind(credential_kind(v)).map(|e| e as i32),
                ),
            ] {
                match back {
                    Some(b) => assert_eq!(b, v, "{name}"),
                    None => assert!(name == "unknown" || name == "unspecified", "{v} -> {name}"),
                }
            }
        }
        assert_eq!(
            job_state(pb::JobState::CompletedWithWarnings as i32),
            "completed_with_warnings"
        );
        assert_eq!(task_kind(pb::TaskKind::PartInit as i32), "part-init");
        assert!(is_terminal_job_state(pb::JobState::Cancelled as i32));
        assert!(!is_terminal_job_state(pb::JobState::Cancelling as i32));
    }
}
