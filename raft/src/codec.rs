//! Lossless conversions between openraft types and their protobuf form (`mesh.v1` state messages).
//!
//! Everything that openraft hands to the store, or that travels between nodes, is converted here:
//! log ids, votes, memberships, stored memberships, log entries and snapshot metadata. `*_to_pb`
//! never fails; `*_from_pb` validates input coming from disk or the wire and returns a
//! [`CodecError`] naming what is malformed instead of panicking.

use std::collections::{BTreeMap, BTreeSet};

use mesh_proto::v1 as pb;
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LeaderId, LogId, Membership, SnapshotMeta, StoredMembership,
    Vote,
};
use prost::Message;

use crate::{NodeId, TypeConfig};

/// Malformed protobuf input (from disk or from a peer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {detail}")]
pub struct CodecError {
    /// The message kind that failed to decode, e.g. "log entry".
    pub what: &'static str,
    /// What exactly is wrong.
    pub detail: String,
}

impl CodecError {
    pub(crate) fn new(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            what,
            detail: detail.into(),
        }
    }
}

/// Decodes protobuf bytes, mapping a decode failure to a [`CodecError`].
pub fn decode<M: Message + Default>(what: &'static str, bytes: &[u8]) -> Result<M, CodecError> {
    M::decode(bytes).map_err(|e| CodecError::new(what, e.to_string()))
}

// ---- LogId ----------------------------------------------------------------------------------

pub fn log_id_to_pb(id: &LogId<NodeId>) -> pb::LogId {
    pb::LogId {
        term: id.leader_id.term,
        node_id: id.leader_id.node_id,
        index: id.index,
    }
}

pub fn log_id_from_pb(id: &pb::LogId) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(id.term, id.node_id), id.index)
}

pub fn opt_log_id_to_pb(id: &Option<LogId<NodeId>>) -> Option<pb::LogId> {
    id.as_ref().map(log_id_to_pb)
}

pub fn opt_log_id_from_pb(id: &Option<pb::LogId>) -> Option<LogId<NodeId>> {
    id.as_ref().map(log_id_from_pb)
}

// ---- Vote -----------------------------------------------------------------------------------

pub fn vote_to_pb(v: &Vote<NodeId>) -> pb::Vote {
    pb::Vote {
        term: v.leader_id.term,
        node_id: v.leader_id.node_id,
        committed: v.committed,
    }
}

pub fn vote_from_pb(v: &pb::Vote) -> Vote<NodeId> {
    Vote {
        leader_id: LeaderId::new(v.term, v.node_id),
        committed: v.committed,
    }
}

// ---- Membership -----------------------------------------------------------------------------

pub fn membership_to_pb(m: &Membership<NodeId, BasicNode>) -> pb::Membership {
    pb::Membership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|set| pb::VoterSet {
                ids: set.iter().copied().collect(),
            })
            .collect(),
        nodes: m.nodes().map(|(id, n)| (*id, n.addr.clone())).collect(),
    }
}

pub fn membership_from_pb(m: &pb::Membership) -> Result<Membership<NodeId, BasicNode>, CodecError> {
    let mut configs = Vec::with_capacity(m.configs.len());
    for (i, set) in m.configs.iter().enumerate() {
        let ids: BTreeSet<NodeId> = set.ids.iter().copied().collect();
        if ids.len() != set.ids.len() {
            return Err(CodecError::new(
                "membership",
                format!("voter set {i} lists a node id twice: {:?}", set.ids),
            ));
        }
        for id in &ids {
            if !m.nodes.contains_key(id) {
                return Err(CodecError::new(
                    "membership",
                    format!("voter {id} in voter set {i} has no node address"),
                ));
            }
        }
        configs.push(ids);
    }
    if configs.len() > 2 {
        return Err(CodecError::new(
            "membership",
            format!("{} voter sets (at most 2, during a joint change)", configs.len()),
        ));
    }
    let nodes: BTreeMap<NodeId, BasicNode> = m.nodes.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
    Ok(Membership::new(configs, nodes))
}

pub fn stored_membership_to_pb(m: &StoredMembership<NodeId, BasicNode>) -> pb::StoredMembership {
    pb::StoredMembership {
        log_id: opt_log_id_to_pb(m.log_id()),
        membership: Some(membership_to_pb(m.membership())),
    }
}

pub fn stored_membership_from_pb(m: &pb::StoredMembership) -> Result<StoredMembership<NodeId, BasicNode>, CodecError> {
    let membership = match &m.membership {
        Some(mem) => membership_from_pb(mem)?,
        None => return Err(CodecError::new("stored membership", "membership field is missing")),
    };
    Ok(StoredMembership::new(opt_log_id_from_pb(&m.log_id), membership))
}

// ---- Entry ----------------------------------------------------------------------------------

pub fn entry_to_pb(e: &Entry<TypeConfig>) -> pb::LogEntry {
    use pb::log_entry::Payload;
    let payload = match &e.payload {
        EntryPayload::Blank => Payload::Blank(pb::Blank {}),
        EntryPayload::Normal(cmd) => Payload::Command(cmd.clone()),
        EntryPayload::Membership(m) => Payload::Membership(membership_to_pb(m)),
    };
    pb::LogEntry {
        log_id: Some(log_id_to_pb(&e.log_id)),
        payload: Some(payload),
    }
}

pub fn entry_from_pb(e: &pb::LogEntry) -> Result<Entry<TypeConfig>, CodecError> {
    use pb::log_entry::Payload;
    let log_id = match &e.log_id {
        Some(id) => log_id_from_pb(id),
        None => return Err(CodecError::new("log entry", "log_id is missing")),
    };
    let payload = match &e.payload {
        Some(Payload::Blank(_)) => EntryPayload::Blank,
        Some(Payload::Command(c)) => EntryPayload::Normal(c.clone()),
        Some(Payload::Membership(m)) => EntryPayload::Membership(membership_from_pb(m)?),
        None => {
            return Err(CodecError::new(
                "log entry",
                format!(
                    "entry at index {} has no payload (unknown kind, written by a newer version?)",
                    log_id.index
                ),
            ))
        }
    };
    Ok(Entry { log_id, payload })
}

/// Encodes an entry to protobuf bytes.
pub fn encode_entry(e: &Entry<TypeConfig>) -> Vec<u8> {
    entry_to_pb(e).encode_to_vec()
}

/// Decodes an entry from protobuf bytes.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, CodecError> {
    entry_from_pb(&decode::<pb::LogEntry>("log entry", bytes)?)
}

// ---- SnapshotMeta ---------------------------------------------------------------------------

pub fn snapshot_meta_to_pb(m: &SnapshotMeta<NodeId, BasicNode>) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        last_log_id: opt_log_id_to_pb(&m.last_log_id),
        last_membership: Some(stored_membership_to_pb(&m.last_membership)),
        snapshot_id: m.snapshot_id.clone(),
    }
}

pub fn snapshot_meta_from_pb(m: &pb::SnapshotMeta) -> Result<SnapshotMeta<NodeId, BasicNode>, CodecError> {
    let last_membership = match &m.last_membership {
        Some(sm) => stored_membership_from_pb(sm)?,
        None => return Err(CodecError::new("snapshot meta", "last_membership is missing")),
    };
    if m.snapshot_id.is_empty() {
        return Err(CodecError::new("snapshot meta", "snapshot_id is empty"));
    }
    Ok(SnapshotMeta {
        last_log_id: opt_log_id_from_pb(&m.last_log_id),
        last_membership,
        snapshot_id: m.snapshot_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lid(term: u64, node: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, node), index)
    }

    fn mem(configs: Vec<Vec<u64>>, learners: &[u64]) -> Membership<NodeId, BasicNode> {
        let configs: Vec<BTreeSet<u64>> = configs.into_iter().map(|c| c.into_iter().collect()).collect();
        let mut nodes = BTreeMap::new();
        for c in &configs {
            for id in c {
                nodes.insert(*id, BasicNode::new(format!("10.0.0.{id}:7400")));
            }
        }
        for id in learners {
            nodes.insert(*id, BasicNode::new(format!("learner-{id}:7400")));
        }
        Membership::new(configs, nodes)
    }

    #[test]
    fn log_id_round_trip() {
        for id in [lid(0, 0, 0), lid(7, 42, 1000), lid(u64::MAX, u64::MAX, u64::MAX)] {
            assert_eq!(log_id_from_pb(&log_id_to_pb(&id)), id);
            let bytes = log_id_to_pb(&id).encode_to_vec();
            assert_eq!(log_id_from_pb(&decode("log id", &bytes).unwrap()), id);
        }
        assert_eq!(opt_log_id_from_pb(&opt_log_id_to_pb(&None)), None);
        assert_eq!(
            opt_log_id_from_pb(&opt_log_id_to_pb(&Some(lid(1, 2, 3)))),
            Some(lid(1, 2, 3))
        );
    }

    #[test]
    fn vote_round_trip() {
        let mut committed = Vote::new(5, 9);
        committed.commit();
        for v in [
            Vote::default(),
            Vote::new(1, 2),
            committed,
            Vote::new_committed(u64::MAX, 1),
        ] {
            assert_eq!(vote_from_pb(&vote_to_pb(&v)), v);
        }
        assert!(vote_to_pb(&committed).committed);
    }

    #[test]
    fn membership_round_trip() {
        let cases = [
            Membership::new(vec![], BTreeMap::<u64, BasicNode>::new()),
            mem(vec![vec![1]], &[]),
            mem(vec![vec![1, 2, 3]], &[4, 5]),
            mem(vec![vec![1, 2, 3], vec![3, 4, 5]], &[9]),
        ];
        for m in cases {
            let pbm = membership_to_pb(&m);
            let back = membership_from_pb(&decode::<pb::Membership>("m", &pbm.encode_to_vec()).unwrap()).unwrap();
            assert_eq!(back, m);
            // node addresses survive too (Membership's PartialEq compares them, but be explicit)
            assert_eq!(back.nodes().collect::<Vec<_>>(), m.nodes().collect::<Vec<_>>());
        }
    }

    #[test]
    fn membership_rejects_malformed() {
        let dup = pb::Membership {
            configs: vec![pb::VoterSet { ids: vec![1, 1] }],
            nodes: [(1, "a:1".to_string())].into_iter().collect(),
        };
        assert!(membership_from_pb(&dup).unwrap_err().to_string().contains("twice"));
        let no_addr = pb::Membership {
            configs: vec![pb::VoterSet { ids: vec![1, 2] }],
            nodes: [(1, "a:1".to_string())].into_iter().collect(),
        };
        assert!(membership_from_pb(&no_addr)
            .unwrap_err()
            .to_string()
            .contains("voter 2"));
        let three = pb::Membership {
            configs: vec![
                pb::VoterSet { ids: vec![] },
                pb::VoterSet { ids: vec![] },
                pb::VoterSet { ids: vec![] },
            ],
            nodes: Default::default(),
        };
        assert!(membership_from_pb(&three).is_err());
    }

    #[test]
    fn stored_membership_round_trip() {
        for sm in [
            StoredMembership::default(),
            StoredMembership::new(Some(lid(2, 1, 7)), mem(vec![vec![1, 2, 3]], &[4])),
            StoredMembership::new(None, mem(vec![vec![1]], &[])),
        ] {
            assert_eq!(stored_membership_from_pb(&stored_membership_to_pb(&sm)).unwrap(), sm);
        }
        let missing = pb::StoredMembership {
            log_id: None,
            membership: None,
        };
        assert!(stored_membership_from_pb(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }

    #[test]
    fn entry_round_trip() {
        let cmd = pb::Command {
            at_ms: 1234,
            kind: Some(pb::command::Kind::SetSetting(pb::SetSetting {
                name: "node_ttl".into(),
                value: "5s".into(),
            })),
        };
        let entries = vec![
            Entry::<TypeConfig> {
                log_id: lid(1, 1, 1),
                payload: EntryPayload::Blank,
            },
            Entry::<TypeConfig> {
                log_id: lid(1, 1, 2),
                payload: EntryPayload::Normal(cmd),
            },
            Entry::<TypeConfig> {
                log_id: lid(2, 3, 3),
                payload: EntryPayload::Membership(mem(vec![vec![1, 3]], &[7])),
            },
        ];
        for e in entries {
            let back = decode_entry(&encode_entry(&e)).unwrap();
            assert_eq!(back.log_id, e.log_id);
            assert_eq!(back.payload, e.payload);
        }
    }

    #[test]
    fn entry_rejects_malformed() {
        assert!(decode_entry(&[0xff, 0xff, 0xff])
            .unwrap_err()
            .to_string()
            .contains("malformed log entry"));
        let no_id = pb::LogEntry {
            log_id: None,
            payload: Some(pb::log_entry::Payload::Blank(pb::Blank {})),
        };
        assert!(entry_from_pb(&no_id).unwrap_err().to_string().contains("log_id"));
        let no_payload = pb::LogEntry {
            log_id: Some(log_id_to_pb(&lid(1, 1, 5))),
            payload: None,
        };
        let err = entry_from_pb(&no_payload).unwrap_err().to_string();
        assert!(err.contains("index 5") && err.contains("no payload"), "{err}");
    }

    #[test]
    fn snapshot_meta_round_trip() {
        for m in [
            SnapshotMeta::<NodeId, BasicNode> {
                last_log_id: None,
                last_membership: StoredMembership::default(),
                snapshot_id: "0-0-1".into(),
            },
            SnapshotMeta {
                last_log_id: Some(lid(3, 2, 99)),
                last_membership: StoredMembership::new(Some(lid(2, 1, 50)), mem(vec![vec![1, 2], vec![2, 3]], &[])),
                snapshot_id: "3-99-7".into(),
            },
        ] {
            let bytes = snapshot_meta_to_pb(&m).encode_to_vec();
            let back = snapshot_meta_from_pb(&decode("snapshot meta", &bytes).unwrap()).unwrap();
            assert_eq!(back, m);
        }
        let bad = pb::SnapshotMeta {
            last_log_id: None,
            last_membership: None,
            snapshot_id: "x".into(),
        };
        assert!(snapshot_meta_from_pb(&bad).is_err());
    }
}
