//! Registry of the replicated cluster settings (`meshctl setting set NAME VALUE`).
//!
//! Each setting has a name, a default and a help line; [`validate`] is what the state machine runs
//! on `SetSetting`, so a value that is accepted here is valid on every node. Typed accessors
//! ([`voter_target`], [`node_ttl`], ...) read the applied value or the default.

use std::time::Duration;

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

/// Parses `<n>ms`, `<n>s`, `<n>m` or `<n>h` (n a non-negative integer).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let form = "expected a duration like 500ms, 10s, 5m or 1h";
    let (num, mult_ms): (&str, u64) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        return Err(format!("{s:?}: {form}"));
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?}: {form}"));
    }
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: number too large"))?;
    let ms = n
        .checked_mul(mult_ms)
        .ok_or_else(|| format!("{s:?}: duration too large"))?;
    Ok(Duration::from_millis(ms))
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
        assert_eq!(all().len(), 5);
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
