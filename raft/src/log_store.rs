//! The Raft log and vote on sled (openraft storage v2 `RaftLogStorage`).
//!
//! Entries are protobuf `LogEntry` bytes keyed by big-endian index in the `log` tree; vote,
//! committed and last-purged log ids are protobuf values in the `meta` tree. All writes go through
//! one async mutex, so they are applied in call order (v2 rule: vote and log IO are serialized).
//! Durability: `save_vote` and `append` flush before they report success; `purge` persists
//! `last_purged` (flushed) before deleting entries.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, Vote};
use prost::Message;
use tokio::sync::Mutex;

use crate::codec;
use crate::db::{self, index_key, Db, KEY_COMMITTED, KEY_LAST_PURGED, KEY_VOTE};
use crate::error::{read_err, read_logs_err, read_vote_err, write_logs_err, write_vote_err};
use crate::{NodeId, TypeConfig};

/// The log store. Clones share the same database and write lock.
#[derive(Clone)]
pub struct LogStore {
    db: Db,
    write: Arc<Mutex<()>>,
}

impl LogStore {
    pub(crate) fn new(db: Db) -> Self {
        Self {
            db,
            write: Arc::new(Mutex::new(())),
        }
    }

    async fn flush(&self) -> Result<(), sled::Error> {
        self.db.db.flush_async().await.map(|_| ())
    }
}

fn range_to_keys<RB: RangeBounds<u64>>(range: &RB) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.checked_add(1), // None: up to u64::MAX inclusive
        Bound::Excluded(e) => Some(*e),
        Bound::Unbounded => None,
    };
    match end {
        Some(e) if e <= start => None,
        _ => Some((start, end)),
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let Some((start, end)) = range_to_keys(&range) else {
            return Ok(vec![]);
        };
        let iter = match end {
            Some(e) => self.db.log.range(index_key(start)..index_key(e)),
            None => self.db.log.range(index_key(start)..),
        };
        let mut out = Vec::new();
        for kv in iter {
            let (_, v) = kv.map_err(read_logs_err)?;
            out.push(codec::decode_entry(&v).map_err(read_logs_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id =
            db::read_log_id(&self.db, KEY_LAST_PURGED, "last purged log id").map_err(read_logs_err)?;
        let last = match self.db.log.last().map_err(read_logs_err)? {
            Some((_, v)) => Some(codec::decode_entry(&v).map_err(read_logs_err)?.log_id),
            None => None,
        };
        let last_log_id = std::cmp::max(last, last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let _g = self.write.lock().await;
        let bytes = codec::vote_to_pb(vote).encode_to_vec();
        self.db.meta.insert(KEY_VOTE, bytes).map_err(write_vote_err)?;
        self.flush().await.map_err(write_vote_err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        db::read_vote(&self.db).map_err(read_vote_err)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        // Not flushed on its own: the state machine is durable when apply returns, so `committed`
        // is only a hint for re-applying after a restart; the next flush carries it.
        let _g = self.write.lock().await;
        let r = match committed {
            Some(c) => self
                .db
                .meta
                .insert(KEY_COMMITTED, codec::log_id_to_pb(&c).encode_to_vec()),
            None => self.db.meta.remove(KEY_COMMITTED),
        };
        r.map(|_| ()).map_err(write_logs_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        db::read_log_id(&self.db, KEY_COMMITTED, "committed log id").map_err(read_err)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let _g = self.write.lock().await;
        let mut batch = sled::Batch::default();
        for e in entries {
            batch.insert(&index_key(e.log_id.index), codec::encode_entry(&e));
        }
        self.db.log.apply_batch(batch).map_err(write_logs_err)?;
        match self.flush().await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_logs_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let _g = self.write.lock().await;
        let mut batch = sled::Batch::default();
        for kv in self.db.log.range(index_key(log_id.index)..) {
            let (k, _) = kv.map_err(read_logs_err)?;
            batch.remove(k);
        }
        self.db.log.apply_batch(batch).map_err(write_logs_err)?;
        self.flush().await.map_err(write_logs_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let _g = self.write.lock().await;
        // 1. Persist last_purged first: a crash after this leaves extra entries, never a hole.
        self.db
            .meta
            .insert(KEY_LAST_PURGED, codec::log_id_to_pb(&log_id).encode_to_vec())
            .map_err(write_logs_err)?;
        self.flush().await.map_err(write_logs_err)?;
        // 2. Delete the entries.
        let mut batch = sled::Batch::default();
        for kv in self.db.log.range(..=index_key(log_id.index)) {
            let (k, _) = kv.map_err(read_logs_err)?;
            batch.remove(k);
        }
        self.db.log.apply_batch(batch).map_err(write_logs_err)?;
        self.flush().await.map_err(write_logs_err)
    }
}

impl LogStore {
    /// Flushes everything written to the store (used by a node's graceful shutdown).
    pub async fn flush_all(&self) -> Result<(), sled::Error> {
        self.flush().await
    }
}
