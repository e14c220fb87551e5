//! Registry of the replicated cluster settings (`meshctl setting set NAME VALUE`).
//!
//! Each setting has a name, a default and a help line; [`validate`] is what the state machine runs
//! on `SetSetting`, so a value that is accepted here is valid on every node. Typed accessors
//! ([`voter_target`], [`node_ttl`], ...) read the applied value or the default.

use std::time::Duration;

use mesh_proto::rules::{parse_duration, parse_size, validate_name};

use crate::StateReader;

/// One cluster setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingSpec {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

pub const VOTER_TARGET: &str = "voter_target";
pub const NODE_TTL: &str = "node_ttl";
pub const LEADER_GRACE: &str = "leader_grace";
pub const DEAD_VOTER_GRACE: &str = "dead_voter_grace";
pub const STABILIZATION_TIME: &str = "stabilization_time";
pub const TIER_EXPRESS: &str = "tier.express";
pub const TIER_PLUS: &str = "tier.plus";
pub const TIER_ULTRA: &str = "tier.ultra";
pub const JOB_DEFAULT_TIER: &str = "job.default_tier";
pub const WORKER_SLOTS: &str = "worker.slots";
pub const JOB_OBJECT_CONCURRENCY: &str = "job.object_concurrency";
pub const JOB_COPY_TASK_OBJECTS: &str = "job.copy_task_objects";
pub const JOB_COPY_TASK_BYTES: &str = "job.copy_task_bytes";
pub const JOB_SPLIT_OBJECT_BYTES: &str = "job.split_object_bytes";
pub const JOB_PART_TASK_BYTES: &str = "job.part_task_bytes";
pub const JOB_TASK_ATTEMPTS: &str = "job.task_attempts";
pub const JOB_REPORT_LOCATION: &str = "job.report_location";

const ALL: &[SettingSpec] = &[
    SettingSpec {
        name: VOTER_TARGET,
        default: "3",
        help: "voters the autopilot keeps (1, 3, 5 or 7)",
    },
    SettingSpec {
        name: NODE_TTL,
        default: "10s",
        help: "a node silent this long is marked down",
    },
    SettingSpec {
        name: LEADER_GRACE,
        default: "10s",
        help: "after a leader change, nobody is judged before this",
    },
    SettingSpec {
        name: DEAD_VOTER_GRACE,
        default: "60s",
        help: "a voter down this long is replaced by a healthy learner and removed",
    },
    SettingSpec {
        name: STABILIZATION_TIME,
        default: "10s",
        help: "a learner must be healthy this long before promotion",
    },
    SettingSpec {
        name: TIER_EXPRESS,
        default: "4",
        help: "most nodes an express job spreads over",
    },
    SettingSpec {
        name: TIER_PLUS,
        default: "12",
        help: "most nodes a plus job spreads over",
    },
    SettingSpec {
        name: TIER_ULTRA,
        default: "40",
        help: "most nodes an ultra job spreads over",
    },
    SettingSpec {
        name: JOB_DEFAULT_TIER,
        default: "plus",
        help: "tier of a job submitted without --tier (express, plus or ultra)",
    },
    SettingSpec {
        name: WORKER_SLOTS,
        default: "4",
        help: "tasks a node runs at once (all jobs together)",
    },
    SettingSpec {
        name: JOB_OBJECT_CONCURRENCY,
        default: "64",
        help: "objects a node copies at once, shared by its running tasks",
    },
    SettingSpec {
        name: JOB_COPY_TASK_OBJECTS,
        default: "1000",
        help: "most objects in one copy task (a listing cuts tasks at this count)",
    },
    SettingSpec {
        name: JOB_COPY_TASK_BYTES,
        default: "256MiB",
        help: "most bytes in one copy task (a listing cuts tasks at this size)",
    },
    SettingSpec {
        name: JOB_SPLIT_OBJECT_BYTES,
        default: "4GiB",
        help: "an object this large is split into part-range tasks run by several nodes",
    },
    SettingSpec {
        name: JOB_PART_TASK_BYTES,
        default: "1GiB",
        help: "bytes of a split object one part-range task copies",
    },
    SettingSpec {
        name: JOB_TASK_ATTEMPTS,
        default: "5",
        help: "attempts of a task (a listing error, a lost part) before it fails its job",
    },
    SettingSpec {
        name: JOB_REPORT_LOCATION,
        default: "",
        help: "LOCATION[:PATH] where job reports go (\"\" = the destination, under .bucketmesh/reports/)",
    },
];

/// Every known setting, in display order.
pub fn all() -> &'static [SettingSpec] {
    ALL
}

/// The spec of setting `name`, if it exists.
pub fn spec(name: &str) -> Option<&'static SettingSpec> {
    ALL.iter().find(|s| s.name == name)
}

/// The default value of setting `name`, if it exists.
pub fn default_of(name: &str) -> Option<&'static str> {
    spec(name).map(|s| s.default)
}

/// Checks that `value` is acceptable for setting `name`. The error names the setting and the
/// accepted form.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    match name {
        VOTER_TARGET => match value.trim().parse::<u32>() {
            Ok(1 | 3 | 5 | 7) if value.trim() == value => Ok(()),
            _ => Err(format!(
                "invalid value {value:?} for setting voter_target: expected 1, 3, 5 or 7"
            )),
        },
        TIER_EXPRESS
        | TIER_PLUS
        | TIER_ULTRA
        | WORKER_SLOTS
        | JOB_OBJECT_CONCURRENCY
        | JOB_COPY_TASK_OBJECTS
        | JOB_TASK_ATTEMPTS => match value.parse::<u32>() {
            Ok(n) if (1..=100_000).contains(&n) && value.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            _ => Err(format!(
                "invalid value {value:?} for setting {name}: expected a whole number from 1 to 100000"
            )),
        },
        JOB_DEFAULT_TIER => match tier_setting(value) {
            Some(_) => Ok(()),
            None => Err(format!(
                "invalid value {value:?} for setting {name}: expected express, plus or ultra"
            )),
        },
        JOB_COPY_TASK_BYTES | JOB_SPLIT_OBJECT_BYTES | JOB_PART_TASK_BYTES => match parse_size(value) {
            Ok(n) if n >= 5 * 1024 * 1024 || name == JOB_COPY_TASK_BYTES && n > 0 => Ok(()),
            Ok(_) => Err(format!(
                "invalid value {value:?} for setting {name}: must be at least 5MiB (the S3 minimum part size)"
            )),
            Err(e) => Err(format!("invalid value {value:?} for setting {name}: {e}")),
        },
        JOB_REPORT_LOCATION => {
            let loc = value.split(':').next().unwrap_or("");
            if value.is_empty() || validate_name("location", loc).is_ok() {
                Ok(())
            } else {
                Err(format!(
                    "invalid value {value:?} for setting {name}: expected LOCATION or LOCATION:PATH/"
                ))
            }
        }
        NODE_TTL | LEADER_GRACE | DEAD_VOTER_GRACE | STABILIZATION_TIME => match parse_duration(value) {
            Ok(d) if !d.is_zero() => Ok(()),
            Ok(_) => Err(format!(
                "invalid value {value:?} for setting {name}: must be greater than zero"
            )),
            Err(e) => Err(format!("invalid value {value:?} for setting {name}: {e}")),
        },
        _ => Err(format!(
            "unknown setting {name:?}; known settings: {}",
            ALL.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The setting holding the node limit of tier `tier`, if it is a known tier.
pub fn tier_setting(tier: &str) -> Option<&'static str> {
    match tier {
        "express" => Some(TIER_EXPRESS),
        "plus" => Some(TIER_PLUS),
        "ultra" => Some(TIER_ULTRA),
        _ => None,
    }
}

/// A whole-number setting: applied value or default.
pub fn u32_setting(r: &StateReader, name: &str) -> u32 {
    r.setting_or_default(name)
        .parse()
        .or_else(|_| default_of(name).unwrap_or("1").parse())
        .unwrap_or(1)
}

/// A size setting: applied value or default.
pub fn size_setting(r: &StateReader, name: &str) -> u64 {
    parse_size(&r.setting_or_default(name))
        .or_else(|_| parse_size(default_of(name).unwrap_or("0")))
        .unwrap_or(0)
}

/// Most nodes a job of `tier` ("" = the default tier) spreads over.
pub fn tier_nodes(r: &StateReader, tier: &str) -> u32 {
    let tier = if tier.is_empty() {
        r.setting_or_default(JOB_DEFAULT_TIER)
    } else {
        tier.to_string()
    };
    tier_setting(&tier).map(|s| u32_setting(r, s)).unwrap_or(4)
}

fn duration_setting(r: &StateReader, name: &str) -> Duration {
    parse_duration(&r.setting_or_default(name))
        .or_else(|_| parse_duration(default_of(name).unwrap_or("0s")))
        .unwrap_or_default()
}

/// `voter_target`: applied value or default (3).
pub fn voter_target(r: &StateReader) -> u32 {
    r.setting_or_default(VOTER_TARGET).parse().unwrap_or(3)
}

/// `node_ttl`: applied value or default.
pub fn node_ttl(r: &StateReader) -> Duration {
    duration_setting(r, NODE_TTL)
}

/// `leader_grace`: applied value or default.
pub fn leader_grace(r: &StateReader) -> Duration {
    duration_setting(r, LEADER_GRACE)
}

/// `dead_voter_grace`: applied value or default.
pub fn dead_voter_grace(r: &StateReader) -> Duration {
    duration_setting(r, DEAD_VOTER_GRACE)
}

/// `stabilization_time`: applied value or default.
pub fn stabilization_time(r: &StateReader) -> Duration {
    duration_setting(r, STABILIZATION_TIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        for s in all() {
            validate(s.name, s.default).unwrap();
        }
        assert_eq!(all().len(), 17);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        for bad in [
            "",
            "s",
            "10",
            "1.5s",
            "-1s",
            "10 s",
            "10d",
            "ms",
            "+5s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        for bad in ["", "MiB", "1.5GiB", "-1", "1 GiB", "10XB", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
        let e = validate("job.split_object_bytes", "1MiB").unwrap_err();
        assert!(e.contains("5MiB"), "{e}");
        validate("job.split_object_bytes", "64MiB").unwrap();
        assert!(validate("tier.plus", "0").is_err());
        assert!(validate("job.default_tier", "gold")
            .unwrap_err()
            .contains("express, plus or ultra"));
        validate("job.report_location", "reports:jobs/").unwrap();
        assert!(validate("job.report_location", "bad name:x/").is_err());
    }

    #[test]
    fn validation_messages() {
        validate("voter_target", "5").unwrap();
        let e = validate("voter_target", "4").unwrap_err();
        assert!(e.contains("voter_target") && e.contains("1, 3, 5 or 7"), "{e}");
        assert!(validate("voter_target", " 3").is_err());
        let e = validate("node_ttl", "ten").unwrap_err();
        assert!(e.contains("node_ttl") && e.contains("10s"), "{e}");
        assert!(validate("node_ttl", "0ms").unwrap_err().contains("greater than zero"));
        let e = validate("nope", "1").unwrap_err();
        assert!(e.contains("unknown setting") && e.contains("voter_target"), "{e}");
    }
}
