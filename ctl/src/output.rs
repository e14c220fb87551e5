//! Rendering of every response as an aligned text table or as JSON.
//!
//! JSON uses the proto field names (`cluster_id`, `last_contact_ms`, ...) with u64 ids as numbers,
//! so scripts can rely on it. Tables are for people: durations like `120ms` / `3.2s`, `-` for
//! unknown or empty values, lowercase roles and states, UTC timestamps.

use mesh_proto::v1::{
    GetSettingResponse, ListNodesResponse, ListSettingsResponse, NodeStatus, SetSettingResponse, Setting, SettingView,
    StatusResponse, TransferLeaderResponsePublic,
};
use serde::Serialize;

use crate::tls::{CaFiles, NodeCertFiles};

/// Output format of `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// JSON with proto field names, for scripts.
    Json,
}

#[derive(Serialize)]
struct NodeJson<'a> {
    id: u64,
    addr: &'a str,
    region: &'a str,
    zone: &'a str,
    role: String,
    state: String,
    last_contact_ms: i64,
    applied_index: u64,
    version: &'a str,
}

impl<'a> From<&'a NodeStatus> for NodeJson<'a> {
    fn from(n: &'a NodeStatus) -> Self {
        NodeJson {
            id: n.id,
            addr: &n.addr,
            region: &n.region,
            zone: &n.zone,
            role: n.role.to_lowercase(),
            state: n.state.to_lowercase(),
            last_contact_ms: n.last_contact_ms,
            applied_index: n.applied_index,
            version: &n.version,
        }
    }
}

#[derive(Serialize)]
struct StatusJson<'a> {
    cluster_id: &'a str,
    leader_id: u64,
    term: u64,
    commit_index: u64,
    served_by: u64,
    linearizable: bool,
    voter_target: u32,
    nodes: Vec<NodeJson<'a>>,
}

#[derive(Serialize)]
struct SettingJson<'a> {
    name: &'a str,
    value: &'a str,
    updated_at_ms: u64,
}

impl<'a> From<&'a Setting> for SettingJson<'a> {
    fn from(s: &'a Setting) -> Self {
        SettingJson {
            name: &s.name,
            value: &s.value,
            updated_at_ms: s.updated_at_ms,
        }
    }
}

#[derive(Serialize)]
struct SettingViewJson<'a> {
    name: &'a str,
    value: &'a str,
    is_default: bool,
    help: &'a str,
    updated_at_ms: u64,
}

fn json(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("plain data serializes");
    s.push('\n');
    s
}

/// `cluster status`.
pub fn cluster_status(r: &StatusResponse, format: Format) -> String {
    if format == Format::Json {
        return json(&StatusJson {
            cluster_id: &r.cluster_id,
            leader_id: r.leader_id,
            term: r.term,
            commit_index: r.commit_index,
            served_by: r.served_by,
            linearizable: r.linearizable,
            voter_target: r.voter_target,
            nodes: r.nodes.iter().map(NodeJson::from).collect(),
        });
    }
    let name_of = |id: u64| match r.nodes.iter().find(|n| n.id == id) {
        Some(n) if !n.addr.is_empty() => format!("{id} ({})", n.addr),
        _ => id.to_string(),
    };
    let leader = if r.leader_id == 0 {
        "none (election in progress or quorum lost)".to_string()
    } else {
        name_of(r.leader_id)
    };
    let mut out = fields(&[
        ("cluster id", dash(&r.cluster_id)),
        ("leader", leader),
        ("term", r.term.to_string()),
        ("commit index", r.commit_index.to_string()),
        ("served by", name_of(r.served_by)),
        ("linearizable", consistency(r.linearizable)),
        ("voter target", r.voter_target.to_string()),
    ]);
    out.push('\n');
    out.push_str(&node_table(&r.nodes, r.leader_id));
    out
}

/// `node list`.
pub fn node_list(r: &ListNodesResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            nodes: Vec<NodeJson<'a>>,
            linearizable: bool,
        }
        return json(&J {
            nodes: r.nodes.iter().map(NodeJson::from).collect(),
            linearizable: r.linearizable,
        });
    }
    let mut out = node_table(&r.nodes, 0);
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `node remove ID`; `node` is what the cluster knew about it just before, if anything.
pub fn node_removed(id: u64, node: Option<&NodeStatus>, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            removed: u64,
            node: Option<NodeJson<'a>>,
        }
        return json(&J {
            removed: id,
            node: node.map(NodeJson::from),
        });
    }
    match node {
        Some(n) => format!(
            "removed node {id} ({}, {} {}, region {}, zone {})\n",
            dash(&n.addr),
            dash(&n.role.to_lowercase()),
            dash(&n.state.to_lowercase()),
            dash(&n.region),
            dash(&n.zone)
        ),
        None => format!("removed node {id}\n"),
    }
}

/// `cluster transfer-leader`.
pub fn transfer_leader(r: &TransferLeaderResponsePublic, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J {
            new_leader: u64,
        }
        return json(&J {
            new_leader: r.new_leader,
        });
    }
    format!("leadership transferred to node {}\n", r.new_leader)
}

/// `setting set`.
pub fn setting_set(r: &SetSettingResponse, format: Format) -> String {
    let default = Setting::default();
    let s = r.setting.as_ref().unwrap_or(&default);
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            setting: SettingJson<'a>,
        }
        return json(&J { setting: s.into() });
    }
    format!("{} = {} (updated {})\n", s.name, s.value, timestamp(s.updated_at_ms))
}

/// `setting get`.
pub fn setting_get(r: &GetSettingResponse, format: Format) -> String {
    let default = Setting::default();
    let s = r.setting.as_ref().unwrap_or(&default);
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            setting: SettingJson<'a>,
            linearizable: bool,
            is_default: bool,
        }
        return json(&J {
            setting: s.into(),
            linearizable: r.linearizable,
            is_default: r.is_default,
        });
    }
    let mut out = fields(&[
        ("name", s.name.clone()),
        ("value", dash(&s.value)),
        ("default", yes_no(r.is_default)),
        ("updated", timestamp(s.updated_at_ms)),
    ]);
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `setting list`.
pub fn setting_list(r: &ListSettingsResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            settings: Vec<SettingViewJson<'a>>,
            linearizable: bool,
        }
        let settings = r.settings.iter().map(|s: &SettingView| SettingViewJson {
            name: &s.name,
            value: &s.value,
            is_default: s.is_default,
            help: &s.help,
            updated_at_ms: s.updated_at_ms,
        });
        return json(&J {
            settings: settings.collect(),
            linearizable: r.linearizable,
        });
    }
    let rows = r
        .settings
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                dash(&s.value),
                yes_no(s.is_default),
                timestamp(s.updated_at_ms),
                dash(&s.help),
            ]
        })
        .collect();
    let mut out = table(&["NAME", "VALUE", "DEFAULT", "UPDATED", "HELP"], rows);
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `tls ca create`.
pub fn ca_created(f: &CaFiles, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            cert: &'a std::path::Path,
            key: &'a std::path::Path,
            not_after: &'a str,
        }
        return json(&J {
            cert: &f.cert,
            key: &f.key,
            not_after: &f.not_after,
        });
    }
    format!(
        "created CA certificate {} and key {} (valid until {})\nkeep the key secret; give {} to nodes and meshctl users\n",
        f.cert.display(),
        f.key.display(),
        f.not_after,
        f.cert.display()
    )
}

/// `tls cert create`.
pub fn cert_created(f: &NodeCertFiles, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            cert: &'a std::path::Path,
            key: &'a std::path::Path,
            sans: &'a [String],
            not_after: &'a str,
        }
        return json(&J {
            cert: &f.cert,
            key: &f.key,
            sans: &f.sans,
            not_after: &f.not_after,
        });
    }
    format!(
        "created certificate {} and key {} (valid until {})\nnames: {}\n",
        f.cert.display(),
        f.key.display(),
        f.not_after,
        f.sans.join(", ")
    )
}

fn node_table(nodes: &[NodeStatus], leader: u64) -> String {
    let rows = nodes
        .iter()
        .map(|n| {
            let mut role = dash(&n.role.to_lowercase());
            if leader != 0 && n.id == leader {
                role.push_str(" (leader)");
            }
            vec![
                n.id.to_string(),
                dash(&n.addr),
                dash(&n.region),
                dash(&n.zone),
                role,
                dash(&n.state.to_lowercase()),
                duration_ms(n.last_contact_ms),
                n.applied_index.to_string(),
                dash(&n.version),
            ]
        })
        .collect();
    let headers = [
        "ID",
        "ADDRESS",
        "REGION",
        "ZONE",
        "ROLE",
        "STATE",
        "LAST CONTACT",
        "APPLIED",
        "VERSION",
    ];
    table(&headers, rows)
}

/// Left-aligned columns separated by two spaces, no trailing blanks.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs
        .iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:"), width = width))
        .collect()
}

fn dash(s: &str) -> String {
    if s.trim().is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn consistency(linearizable: bool) -> String {
    if linearizable {
        "yes"
    } else {
        "no (local read, may be stale)"
    }
    .into()
}

fn stale_note(linearizable: bool) -> String {
    if linearizable {
        String::new()
    } else {
        "(local read from this node: may be stale)\n".into()
    }
}

/// Human-readable milliseconds: `-` for unknown (negative), `120ms`, `3.2s`, `4m05s`, `2h03m`.
pub fn duration_ms(ms: i64) -> String {
    match ms {
        ms if ms < 0 => "-".into(),
        ms if ms < 1_000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        ms => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SSZ`; `-` for 0.
pub fn timestamp(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms(-1), "-");
        assert_eq!(duration_ms(0), "0ms");
        assert_eq!(duration_ms(120), "120ms");
        assert_eq!(duration_ms(3_210), "3.2s");
        assert_eq!(duration_ms(245_000), "4m05s");
        assert_eq!(duration_ms(7_380_000), "2h03m");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(timestamp(0), "-");
        assert_eq!(timestamp(1_709_210_096_000), "2024-02-29 12:34:56Z");
    }
}
