//! Deterministic (canonical) protobuf encoding for messages that contain map fields.
//!
//! prost encodes `map<..>` fields from a `HashMap` in its (randomly seeded) iteration order, so two
//! nodes holding the same state could produce different snapshot bytes. Here map entries are
//! written sorted by key. The output is ordinary protobuf: a map field is a repeated entry message,
//! and protobuf decoders merge a message's fields when they appear in several chunks, so any
//! decoder (including prost's `decode`) reads these bytes back to the same message.

use mesh_proto::v1 as pb;
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;

/// Appends field `tag` holding the already-encoded sub-message `bytes`.
fn put_submessage(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

/// Canonical bytes of a `Membership` (nodes sorted by id).
pub fn membership(m: &pb::Membership) -> Vec<u8> {
    let mut buf = pb::Membership {
        configs: m.configs.clone(),
        nodes: Default::default(),
    }
    .encode_to_vec();
    let mut ids: Vec<&u64> = m.nodes.keys().collect();
    ids.sort();
    for id in ids {
        let one = pb::Membership {
            configs: vec![],
            nodes: [(*id, m.nodes[id].clone())].into_iter().collect(),
        };
        one.encode(&mut buf).expect("Vec<u8> grows");
    }
    buf
}

/// Canonical bytes of a `StoredMembership`.
pub fn stored_membership(m: &pb::StoredMembership) -> Vec<u8> {
    let mut buf = pb::StoredMembership {
        log_id: m.log_id,
        membership: None,
    }
    .encode_to_vec();
    if let Some(mem) = &m.membership {
        put_submessage(&mut buf, 2, &membership(mem));
    }
    buf
}

/// Canonical bytes of a `NodeRecord` (labels sorted by key).
pub fn node_record(n: &pb::NodeRecord) -> Vec<u8> {
    let mut buf = pb::NodeRecord {
        labels: Default::default(),
        ..n.clone()
    }
    .encode_to_vec();
    let mut keys: Vec<&String> = n.labels.keys().collect();
    keys.sort();
    for k in keys {
        let one = pb::NodeRecord {
            labels: [(k.clone(), n.labels[k].clone())].into_iter().collect(),
            ..Default::default()
        };
        one.encode(&mut buf).expect("Vec<u8> grows");
    }
    buf
}

/// Canonical bytes of a `SnapshotData` (nodes, settings, locations, credentials, jobs and tasks —
/// which have no map fields — in the order
/// given, which callers keep sorted by id / name).
pub fn snapshot_data(s: &pb::SnapshotData) -> Vec<u8> {
    let mut buf = pb::SnapshotData {
        last_applied: s.last_applied,
        membership: None,
        cluster: s.cluster.clone(),
        nodes: vec![],
        settings: s.settings.clone(),
        locations: vec![],
        credentials: vec![],
        jobs: s.jobs.clone(),
        tasks: s.tasks.clone(),
    }
    .encode_to_vec();
    if let Some(m) = &s.membership {
        put_submessage(&mut buf, 2, &stored_membership(m));
    }
    for n in &s.nodes {
        put_submessage(&mut buf, 4, &node_record(n));
    }
    // Location and Credential have no map fields: prost's encoding of them is already canonical.
    for l in &s.locations {
        put_submessage(&mut buf, 6, &l.encode_to_vec());
    }
    for c in &s.credentials {
        put_submessage(&mut buf, 7, &c.encode_to_vec());
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> pb::NodeRecord {
        pb::NodeRecord {
            id: 7,
            addr: "n7:7400".into(),
            labels: (0..20).map(|i| (format!("k{i}"), format!("v{i}"))).collect(),
            state: pb::NodeState::Active as i32,
            ..Default::default()
        }
    }

    #[test]
    fn node_record_is_canonical_and_decodes() {
        let a = record();
        // A separately built map has a different hash seed, hence (usually) a different order.
        let b = pb::NodeRecord {
            labels: (0..20).rev().map(|i| (format!("k{i}"), format!("v{i}"))).collect(),
            ..a.clone()
        };
        assert_eq!(node_record(&a), node_record(&b));
        assert_eq!(pb::NodeRecord::decode(node_record(&a).as_slice()).unwrap(), a);
    }

    #[test]
    fn snapshot_data_decodes_back() {
        let s = pb::SnapshotData {
            last_applied: Some(pb::LogId {
                term: 1,
                node_id: 2,
                index: 3,
            }),
            membership: Some(pb::StoredMembership {
                log_id: Some(pb::LogId {
                    term: 1,
                    node_id: 2,
                    index: 1,
                }),
                membership: Some(pb::Membership {
                    configs: vec![pb::VoterSet { ids: vec![1, 2] }],
                    nodes: (1..10).map(|i| (i, format!("n{i}"))).collect(),
                }),
            }),
            cluster: Some(pb::ClusterInfo {
                cluster_id: "c".into(),
                root_token_sha256: "ab".into(),
                created_at_ms: 5,
                data_key_sha256: "cd".into(),
            }),
            nodes: vec![
                record(),
                pb::NodeRecord {
                    id: 9,
                    ..Default::default()
                },
            ],
            settings: vec![pb::Setting {
                name: "node_ttl".into(),
                value: "5s".into(),
                updated_at_ms: 1,
            }],
            locations: vec![
                pb::Location {
                    name: "a".into(),
                    kind: pb::LocationKind::Fs as i32,
                    fs_path: "/data".into(),
                    ..Default::default()
                },
                pb::Location {
                    name: "b".into(),
                    kind: pb::LocationKind::S3 as i32,
                    bucket: "bkt".into(),
                    credential: "c".into(),
                    ..Default::default()
                },
            ],
            credentials: vec![pb::Credential {
                name: "c".into(),
                kind: pb::CredentialKind::Static as i32,
                access_key_id: "AK".into(),
                secret_access_key_enc: vec![7; 40],
                ..Default::default()
            }],
            jobs: vec![],
            tasks: vec![],
        };
        let bytes = snapshot_data(&s);
        assert_eq!(pb::SnapshotData::decode(bytes.as_slice()).unwrap(), s);
        assert_eq!(snapshot_data(&s.clone()), bytes);
    }
}
