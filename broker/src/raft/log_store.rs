//! Durable Raft state of every group on a node, behind one trait so that the same driver runs
//! on raft-engine in the broker and on an in-memory store in the deterministic simulation.
//!
//! Writes come only from the driver's ready loop, as one [`StoreBatch`] per round (one sync for
//! all groups); [`super::group_storage::GroupStorage`] reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("raft log store: {0}")]
    Engine(String),
    #[error("raft log of group {group} has no entry {index} (first {first}, last {last})")]
    Missing {
        group: u64,
        index: u64,
        first: u64,
        last: u64,
    },
}

/// Where a group's log starts: entries at and below `index` are compacted away; `term` is the
/// term of entry `index` (0/0 for a log that was never compacted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TruncatedState {
    pub index: u64,
    pub term: u64,
}

/// One group's part of a write. Applied in field order: an installed snapshot first, then
/// entries, states, the recorded snapshot, and compaction last.
#[derive(Debug, Default)]
pub struct GroupWrite {
    /// A snapshot received from the leader and installed in the state machine: every stored
    /// entry is dropped, the log restarts after the snapshot's index, its configuration is
    /// the snapshot's, and it becomes the group's recorded snapshot.
    pub install_snapshot: Option<Snapshot>,
    /// New entries; any stored entries at or after the first of them are replaced.
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    pub conf_state: Option<ConfState>,
    /// The newest snapshot in the object store this node knows of: what it sends a follower
    /// that needs entries already compacted away.
    pub record_snapshot: Option<Snapshot>,
    /// Drop every entry at or below this index (it must be held; its term is kept).
    pub compact_to: Option<u64>,
}

impl GroupWrite {
    pub fn is_empty(&self) -> bool {
        self.install_snapshot.is_none()
            && self.entries.is_empty()
            && self.hard_state.is_none()
            && self.conf_state.is_none()
            && self.record_snapshot.is_none()
            && self.compact_to.is_none()
    }
}

/// Everything one ready round writes, for all groups, made durable together.
#[derive(Debug, Default)]
pub struct StoreBatch {
    pub groups: BTreeMap<u64, GroupWrite>,
}

impl StoreBatch {
    pub fn group(&mut self, group: u64) -> &mut GroupWrite {
        self.groups.entry(group).or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

pub trait RaftLogStore: Send + Sync + 'static {
    fn hard_state(&self, group: u64) -> StoreResult<HardState>;
    fn conf_state(&self, group: u64) -> StoreResult<ConfState>;
    fn truncated_state(&self, group: u64) -> StoreResult<TruncatedState>;
    /// The group's recorded snapshot (see [`GroupWrite::record_snapshot`]), if any.
    fn recorded_snapshot(&self, group: u64) -> StoreResult<Option<Snapshot>>;
    /// Entries in `[low, high)`, stopping early once `max_bytes` is reached (at least one).
    fn entries(&self, group: u64, low: u64, high: u64, max_bytes: u64) -> StoreResult<Vec<Entry>>;
    fn term(&self, group: u64, index: u64) -> StoreResult<u64>;
    /// The last index held, or the truncated index when the log is empty.
    fn last_index(&self, group: u64) -> StoreResult<u64>;
    /// Applies the batch; when `sync`, it is durable when this returns.
    fn write(&self, batch: StoreBatch, sync: bool) -> StoreResult<()>;
    /// Forgets a group entirely (its partition was deleted).
    fn remove_group(&self, group: u64) -> StoreResult<()>;
    /// Total bytes the store occupies on its medium.
    fn used_bytes(&self) -> u64;
}

/// The entries in order, stopping before the one that takes their encoded size past
/// `max_bytes`, but always at least one: what [`RaftLogStore::entries`] returns.
pub fn take_within_bytes<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    max_bytes: u64,
) -> Vec<Entry> {
    let mut taken = Vec::new();
    let mut bytes = 0u64;
    for entry in entries {
        bytes += entry.compute_size() as u64;
        if !taken.is_empty() && bytes > max_bytes {
            break;
        }
        taken.push(entry.clone());
    }
    taken
}

#[derive(Clone, Debug, Default)]
struct MemoryGroup {
    hard_state: HardState,
    conf_state: ConfState,
    truncated: TruncatedState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
}

/// An in-memory store for tests and the simulation. Everything written is "durable": a
/// simulated crash drops the node's in-memory Raft state and keeps this store.
#[derive(Clone, Default)]
pub struct MemoryLogStore {
    groups: Arc<RwLock<HashMap<u64, MemoryGroup>>>,
}

impl MemoryLogStore {
    fn with_group<T>(&self, group: u64, read: impl FnOnce(&MemoryGroup) -> T) -> T {
        let groups = self.groups.read();
        match groups.get(&group) {
            Some(state) => read(state),
            None => read(&MemoryGroup::default()),
        }
    }
}

impl RaftLogStore for MemoryLogStore {
    fn hard_state(&self, group: u64) -> StoreResult<HardState> {
        Ok(self.with_group(group, |state| state.hard_state.clone()))
    }

    fn conf_state(&self, group: u64) -> StoreResult<ConfState> {
        Ok(self.with_group(group, |state| state.conf_state.clone()))
    }

    fn truncated_state(&self, group: u64) -> StoreResult<TruncatedState> {
        Ok(self.with_group(group, |state| state.truncated))
    }

    fn recorded_snapshot(&self, group: u64) -> StoreResult<Option<Snapshot>> {
        Ok(self.with_group(group, |state| state.snapshot.clone()))
    }

    fn entries(&self, group: u64, low: u64, high: u64, max_bytes: u64) -> StoreResult<Vec<Entry>> {
        self.with_group(group, |state| {
            let first = state.truncated.index + 1;
            let last = state.truncated.index + state.entries.len() as u64;
            if low < first || high > last + 1 {
                return Err(StoreError::Missing {
                    group,
                    index: low,
                    first,
                    last,
                });
            }
            let wanted = &state.entries[(low - first) as usize..(high - first) as usize];
            Ok(take_within_bytes(wanted.iter(), max_bytes))
        })
    }

    fn term(&self, group: u64, index: u64) -> StoreResult<u64> {
        self.with_group(group, |state| {
            if index == state.truncated.index {
                return Ok(state.truncated.term);
            }
            let first = state.truncated.index + 1;
            let last = state.truncated.index + state.entries.len() as u64;
            if index < first || index > last {
                return Err(StoreError::Missing {
                    group,
                    index,
                    first,
                    last,
                });
            }
            Ok(state.entries[(index - first) as usize].term)
        })
    }

    fn last_index(&self, group: u64) -> StoreResult<u64> {
        Ok(self.with_group(group, |state| {
            state.truncated.index + state.entries.len() as u64
        }))
    }

    fn write(&self, batch: StoreBatch, _sync: bool) -> StoreResult<()> {
        let mut groups = self.groups.write();
        for (group, write) in batch.groups {
            let state = groups.entry(group).or_default();
            if let Some(snapshot) = write.install_snapshot {
                let metadata = snapshot.get_metadata();
                state.entries.clear();
                state.truncated = TruncatedState {
                    index: metadata.index,
                    term: metadata.term,
                };
                state.conf_state = metadata.get_conf_state().clone();
                state.snapshot = Some(snapshot);
            }
            if let Some(first) = write.entries.first() {
                let keep = first.index.saturating_sub(state.truncated.index + 1) as usize;
                state.entries.truncate(keep.min(state.entries.len()));
                state.entries.extend(write.entries);
            }
            if let Some(hard_state) = write.hard_state {
                state.hard_state = hard_state;
            }
            if let Some(conf_state) = write.conf_state {
                state.conf_state = conf_state;
            }
            if let Some(snapshot) = write.record_snapshot {
                state.snapshot = Some(snapshot);
            }
            if let Some(index) = write.compact_to {
                let first = state.truncated.index + 1;
                let index = index.min(state.truncated.index + state.entries.len() as u64);
                if index >= first {
                    let drop = ((index - first + 1) as usize).min(state.entries.len());
                    let term = state.entries[drop - 1].term;
                    state.entries.drain(..drop);
                    state.truncated = TruncatedState { index, term };
                }
            }
        }
        Ok(())
    }

    fn remove_group(&self, group: u64) -> StoreResult<()> {
        self.groups.write().remove(&group);
        Ok(())
    }

    fn used_bytes(&self) -> u64 {
        let groups = self.groups.read();
        groups
            .values()
            .flat_map(|state| state.entries.iter())
            .map(|entry| entry.compute_size() as u64)
            .sum()
    }
}
