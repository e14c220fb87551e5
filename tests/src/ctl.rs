//! Typed views of `meshctl -o json` output.
//!
//! The contract (docs/contracts.md) says `cluster status -o json` prints the StatusResponse fields
//! by their proto names. Parsing is lenient on representation: 64-bit integers may be JSON numbers
//! or strings (proto3 JSON mapping), absent fields mean the proto default, enums may be strings in
//! any case.

use serde_json::Value;

/// `meshctl cluster status -o json`.
#[derive(Debug, Clone)]
pub struct Status {
    pub cluster_id: String,
    pub leader_id: u64,
    pub term: u64,
    pub commit_index: u64,
    pub served_by: u64,
    pub linearizable: bool,
    pub voter_target: u64,
    pub nodes: Vec<NodeStatus>,
    /// The whole JSON document, for messages.
    pub raw: Value,
}

/// One entry of `nodes[]`.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub id: u64,
    pub addr: String,
    pub region: String,
    pub zone: String,
    /// `voter` | `learner` | `none` (lower-cased).
    pub role: String,
    /// `joining` | `active` | `draining` | `down` | `left` (lower-cased).
    pub state: String,
    pub last_contact_ms: i64,
    pub applied_index: u64,
    pub version: String,
}

/// A u64 that may be a number or a string; absent/null = 0.
pub fn u64_of(v: &Value, key: &str) -> u64 {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)).unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn i64_of(v: &Value, key: &str, default: i64) -> i64 {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(default),
        _ => default,
    }
}

fn str_of(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Normalizes an enum-ish string: lower case, without a `ROLE_` / `NODE_STATE_` style prefix.
fn enum_of(v: &Value, key: &str) -> String {
    let s = str_of(v, key).to_ascii_lowercase();
    for p in ["node_state_", "node_role_", "role_", "state_"] {
        if let Some(rest) = s.strip_prefix(p) {
            return rest.to_string();
        }
    }
    s
}

impl NodeStatus {
    pub fn from_json(v: &Value) -> NodeStatus {
        NodeStatus {
            id: u64_of(v, "id"),
            addr: str_of(v, "addr"),
            region: str_of(v, "region"),
            zone: str_of(v, "zone"),
            role: enum_of(v, "role"),
            state: enum_of(v, "state"),
            last_contact_ms: i64_of(v, "last_contact_ms", -1),
            applied_index: u64_of(v, "applied_index"),
            version: str_of(v, "version"),
        }
    }

    pub fn is_voter(&self) -> bool {
        self.role == "voter"
    }

    pub fn is_learner(&self) -> bool {
        self.role == "learner"
    }

    /// Removed from the cluster as far as status shows (`role none` or `state left`).
    pub fn is_gone(&self) -> bool {
        self.role == "none" || self.state == "left"
    }
}

impl Status {
    pub fn from_json(v: Value) -> Status {
        let nodes = v
            .get("nodes")
            .and_then(|n| n.as_array())
            .map(|a| a.iter().map(NodeStatus::from_json).collect())
            .unwrap_or_default();
        Status {
            cluster_id: str_of(&v, "cluster_id"),
            leader_id: u64_of(&v, "leader_id"),
            term: u64_of(&v, "term"),
            commit_index: u64_of(&v, "commit_index"),
            served_by: u64_of(&v, "served_by"),
            linearizable: v.get("linearizable").and_then(|b| b.as_bool()).unwrap_or(false),
            voter_target: u64_of(&v, "voter_target"),
            nodes,
            raw: v,
        }
    }

    pub fn node(&self, id: u64) -> Option<&NodeStatus> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_by_addr(&self, addr: &str) -> Option<&NodeStatus> {
        self.nodes
            .iter()
            .find(|n| n.addr == addr || n.addr.trim_start_matches("https://") == addr)
    }

    /// Ids of the voters, sorted.
    pub fn voters(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.nodes.iter().filter(|n| n.is_voter()).map(|n| n.id).collect();
        v.sort();
        v
    }

    /// Ids of the learners, sorted.
    pub fn learners(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.nodes.iter().filter(|n| n.is_learner()).map(|n| n.id).collect();
        v.sort();
        v
    }

    /// A short one-line summary for messages.
    pub fn summary(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}@{} {} {} applied={}", n.id, n.addr, n.role, n.state, n.applied_index))
            .collect();
        format!(
            "leader={} term={} commit={} served_by={} lin={} target={} nodes=[{}]",
            self.leader_id,
            self.term,
            self.commit_index,
            self.served_by,
            self.linearizable,
            self.voter_target,
            nodes.join("; ")
        )
    }
}

/// The value in `setting get -o json` output: `setting.value` (GetSettingResponse) or `value`.
pub fn setting_value(v: &Value) -> Option<String> {
    if let Some(s) = v.get("setting") {
        if let Some(val) = s.get("value") {
            return val.as_str().map(str::to_string).or_else(|| Some(val.to_string()));
        }
    }
    match v.get("value") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    }
}
