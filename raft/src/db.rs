//! The on-disk layout: one sled database under `<data-dir>/db` with three trees, and the
//! integrity check run when it is opened.
//!
//! - `meta`: `format_version`, `vote`, `committed`, `last_purged` (protobuf values);
//! - `log`: big-endian u64 index -> protobuf `LogEntry`;
//! - `sm`: the state machine, one tree so a sled batch updates tables and last-applied atomically
//!   (see [`crate::state_machine`] for its keys).

use std::path::{Path, PathBuf};

use mesh_proto::v1 as pb;
use openraft::{LogId, Vote};

use crate::codec::{self, CodecError};
use crate::error::StoreError;
use crate::NodeId;

pub(crate) const TREE_META: &str = "meta";
pub(crate) const TREE_LOG: &str = "log";
pub(crate) const TREE_SM: &str = "sm";

pub(crate) const KEY_FORMAT_VERSION: &[u8] = b"format_version";
pub(crate) const KEY_VOTE: &[u8] = b"vote";
pub(crate) const KEY_COMMITTED: &[u8] = b"committed";
pub(crate) const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// The layout version this code writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// Handles shared by the log store and the state machine.
#[derive(Clone)]
pub(crate) struct Db {
    pub db: sled::Db,
    pub meta: sled::Tree,
    pub log: sled::Tree,
    pub sm: sled::Tree,
    /// The data dir, for error messages.
    pub dir: PathBuf,
}

impl Db {
    pub fn corrupt(&self, problem: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            dir: self.dir.clone(),
            problem: problem.into(),
        }
    }
}

pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub(crate) fn key_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Opens (creating if needed) the database under `dir` and checks its format version.
pub(crate) fn open_db(dir: &Path) -> Result<Db, StoreError> {
    let open_err = |source| StoreError::Open {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| open_err(sled::Error::Io(e)))?;
    let db = sled::Config::new().path(dir.join("db")).open().map_err(open_err)?;
    let meta = db.open_tree(TREE_META).map_err(open_err)?;
    let log = db.open_tree(TREE_LOG).map_err(open_err)?;
    let sm = db.open_tree(TREE_SM).map_err(open_err)?;
    let db = Db {
        db,
        meta,
        log,
        sm,
        dir: dir.to_path_buf(),
    };

    match db.meta.get(KEY_FORMAT_VERSION)? {
        Some(v) if v.as_ref() == FORMAT_VERSION.as_bytes() => {}
        Some(v) => {
            return Err(db.corrupt(format!(
                "unknown store format version {:?} (this meshd reads version {FORMAT_VERSION}); it was \
                 probably written by a newer meshd",
                String::from_utf8_lossy(&v)
            )))
        }
        None => {
            // Only a completely empty database is initialized; anything else without a version
            // is not ours or is damaged.
            if !(db.meta.is_empty() && db.log.is_empty() && db.sm.is_empty()) {
                return Err(db.corrupt("the format_version record is missing but the database holds data"));
            }
            db.meta.insert(KEY_FORMAT_VERSION, FORMAT_VERSION.as_bytes())?;
            db.db.flush()?;
        }
    }
    Ok(db)
}

fn decode_meta<M: prost::Message + Default>(db: &Db, key: &[u8], what: &'static str) -> Result<Option<M>, StoreError> {
    match db.meta.get(key)? {
        None => Ok(None),
        Some(bytes) => codec::decode::<M>(what, &bytes)
            .map(Some)
            .map_err(|e: CodecError| db.corrupt(format!("the stored {what} does not decode ({e})"))),
    }
}

pub(crate) fn read_vote(db: &Db) -> Result<Option<Vote<NodeId>>, StoreError> {
    Ok(decode_meta::<pb::Vote>(db, KEY_VOTE, "vote")?.map(|v| codec::vote_from_pb(&v)))
}

pub(crate) fn read_log_id(db: &Db, key: &[u8], what: &'static str) -> Result<Option<LogId<NodeId>>, StoreError> {
    Ok(decode_meta::<pb::LogId>(db, key, what)?.map(|v| codec::log_id_from_pb(&v)))
}

/// Checks the log part of the store: meta records decode, the log has no hole and its keys match
/// the entries they hold. Cost: two entry decodes and one key count.
pub(crate) fn check_log(db: &Db) -> Result<(), StoreError> {
    read_vote(db)?;
    read_log_id(db, KEY_COMMITTED, "committed log id")?;
    let purged = read_log_id(db, KEY_LAST_PURGED, "last purged log id")?;

    let (Some((first_k, first_v)), Some((last_k, last_v))) = (db.log.first()?, db.log.last()?) else {
        return Ok(());
    };
    let check_entry = |k: &[u8], v: &[u8]| -> Result<u64, StoreError> {
        let idx = key_index(k).ok_or_else(|| db.corrupt(format!("log key {k:?} is not an 8-byte index")))?;
        let e = codec::decode_entry(v)
            .map_err(|e| db.corrupt(format!("log entry at index {idx} does not decode ({e})")))?;
        if e.log_id.index != idx {
            return Err(db.corrupt(format!("log key {idx} holds the entry of index {}", e.log_id.index)));
        }
        Ok(idx)
    };
    let first = check_entry(&first_k, &first_v)?;
    let last = check_entry(&last_k, &last_v)?;
    let count = db.log.len() as u64;
    if last - first + 1 != count {
        return Err(db.corrupt(format!(
            "the log has holes: indexes {first}..={last} should be {} entries but {count} are stored",
            last - first + 1
        )));
    }
    if let Some(p) = purged {
        // Entries up to `p` may remain if a purge was interrupted; a gap after it may not.
        if first > p.index + 1 {
            return Err(db.corrupt(format!(
                "the log starts at index {first} but entries are only purged up to {}; entries {}..{first} are missing",
                p.index,
                p.index + 1
            )));
        }
    }
    Ok(())
}
