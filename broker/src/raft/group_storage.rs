//! raft-rs's `Storage` for one group: read-only views of the node's [`RaftLogStore`]. Every
//! write happens in the driver's ready loop, never here.

use std::sync::Arc;

use raft::eraftpb::{Entry, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::log_store::{RaftLogStore, StoreError};

pub struct GroupStorage {
    store: Arc<dyn RaftLogStore>,
    group: u64,
}

impl GroupStorage {
    pub fn new(store: Arc<dyn RaftLogStore>, group: u64) -> GroupStorage {
        GroupStorage { store, group }
    }
}

fn to_raft(error: StoreError) -> raft::Error {
    match error {
        StoreError::Missing { .. } => raft::Error::Store(StorageError::Unavailable),
        StoreError::Engine(message) => raft::Error::Store(StorageError::Other(message.into())),
    }
}

impl raft::Storage for GroupStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let hard_state = self.store.hard_state(self.group).map_err(to_raft)?;
        let conf_state = self.store.conf_state(self.group).map_err(to_raft)?;
        Ok(RaftState::new(hard_state, conf_state))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let truncated = self.store.truncated_state(self.group).map_err(to_raft)?;
        if low <= truncated.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        let max_bytes = max_size.into().unwrap_or(u64::MAX);
        self.store
            .entries(self.group, low, high, max_bytes)
            .map_err(to_raft)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let truncated = self.store.truncated_state(self.group).map_err(to_raft)?;
        if index < truncated.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.store.term(self.group, index).map_err(to_raft)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self
            .store
            .truncated_state(self.group)
            .map_err(to_raft)?
            .index
            + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.store.last_index(self.group).map_err(to_raft)
    }

    /// The recorded snapshot: a manifest in the object store (see `crate::snapshot`), small
    /// enough to travel in the message; the follower fetches the data itself. The log is only
    /// ever compacted up to a recorded snapshot, so one exists whenever entries are missing.
    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let truncated = self.store.truncated_state(self.group).map_err(to_raft)?;
        match self.store.recorded_snapshot(self.group).map_err(to_raft)? {
            Some(snapshot) if snapshot.get_metadata().index >= truncated.index.max(1) => {
                Ok(snapshot)
            }
            // raft-rs retries later on this error (any other would abort it).
            _ => Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            )),
        }
    }
}
