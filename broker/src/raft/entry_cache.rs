//! [`CachedLogStore`]: the newest entries of every group kept in memory in front of a
//! [`RaftLogStore`], as TiKV keeps an entry cache in front of raft-engine.
//!
//! Right after a ready round writes its entries, they are read back: a leader sends them to its
//! followers and applies them once committed, a follower applies them, and raft-rs looks up
//! their terms. On raft-engine each such read goes back to the file and decodes and checksums
//! the whole write batch the entry came in, which holds every group's entries of that round, so
//! with many groups every batch was read back once per group. Entries hold their data as
//! `Bytes`, so a hit here costs a reference count, not a copy.
//!
//! The cache mirrors the store: it changes only after the store's write returned, holds for a
//! group one contiguous run of entries ending at the group's last index, and is bounded by a
//! byte budget over all groups, dropping the oldest writes first. A miss reads the store.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

use super::log_store::{take_within_bytes, RaftLogStore, StoreBatch, StoreResult, TruncatedState};

/// What a broker node keeps cached: at 160 MB/s of produce, the last 0.4 s of every group's
/// entries, while a node of idle groups holds almost nothing.
pub const ENTRY_CACHE_BUDGET_BYTES: u64 = 64 * 1024 * 1024;

/// Writes remembered for eviction; past this many, the oldest are dropped even under budget, so
/// the record of writes cannot grow without bound when entries leave by compaction instead.
const MAX_TRACKED_WRITES: usize = 65_536;

/// Per entry, besides its data: the entry's fields and its place in the deque.
const ENTRY_OVERHEAD_BYTES: u64 = 64;

pub struct CachedLogStore {
    inner: Arc<dyn RaftLogStore>,
    cache: Mutex<EntryCache>,
}

impl CachedLogStore {
    pub fn new(inner: Arc<dyn RaftLogStore>, budget_bytes: u64) -> CachedLogStore {
        CachedLogStore {
            inner,
            cache: Mutex::new(EntryCache {
                budget_bytes,
                ..EntryCache::default()
            }),
        }
    }

    /// Bytes of entries held in memory.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.lock().used_bytes
    }
}

#[derive(Default)]
struct EntryCache {
    budget_bytes: u64,
    used_bytes: u64,
    groups: HashMap<u64, VecDeque<Entry>>,
    /// Every cached write in order, as (group, last index written); eviction pops the front.
    writes: VecDeque<(u64, u64)>,
}

fn entry_bytes(entry: &Entry) -> u64 {
    (entry.data.len() + entry.context.len()) as u64 + ENTRY_OVERHEAD_BYTES
}

impl EntryCache {
    fn clear(&mut self, group: u64) {
        if let Some(entries) = self.groups.remove(&group) {
            self.used_bytes -= entries.iter().map(entry_bytes).sum::<u64>();
        }
    }

    /// New entries replace any cached at or after the first of them, as in the store.
    fn append(&mut self, group: u64, new: Vec<Entry>) {
        let (Some(first), Some(last)) = (new.first(), new.last()) else {
            return;
        };
        let (first_index, last_index) = (first.index, last.index);
        let entries = self.groups.entry(group).or_default();
        let mut dropped = 0;
        while entries
            .back()
            .is_some_and(|entry| entry.index >= first_index)
        {
            dropped += entries.pop_back().map_or(0, |entry| entry_bytes(&entry));
        }
        if entries
            .back()
            .is_some_and(|entry| entry.index + 1 != first_index)
        {
            dropped += entries
                .drain(..)
                .map(|entry| entry_bytes(&entry))
                .sum::<u64>();
        }
        let added: u64 = new.iter().map(entry_bytes).sum();
        entries.extend(new);
        self.used_bytes = self.used_bytes - dropped + added;
        self.writes.push_back((group, last_index));
    }

    /// Drops the group's entries at or below `index`.
    fn drop_through(&mut self, group: u64, index: u64) {
        let Some(entries) = self.groups.get_mut(&group) else {
            return;
        };
        while entries.front().is_some_and(|entry| entry.index <= index) {
            self.used_bytes -= entries.pop_front().map_or(0, |entry| entry_bytes(&entry));
        }
        if entries.is_empty() {
            self.groups.remove(&group);
        }
    }

    fn evict(&mut self) {
        while self.used_bytes > self.budget_bytes || self.writes.len() > MAX_TRACKED_WRITES {
            let Some((group, index)) = self.writes.pop_front() else {
                return;
            };
            self.drop_through(group, index);
        }
    }

    /// The cached run of the group, if it holds every index in `[low, high)`.
    fn covering(&self, group: u64, low: u64, high: u64) -> Option<&VecDeque<Entry>> {
        let entries = self.groups.get(&group)?;
        let first = entries.front()?.index;
        let last = entries.back()?.index;
        (low < high && first <= low && high - 1 <= last).then_some(entries)
    }
}

impl RaftLogStore for CachedLogStore {
    fn hard_state(&self, group: u64) -> StoreResult<HardState> {
        self.inner.hard_state(group)
    }

    fn conf_state(&self, group: u64) -> StoreResult<ConfState> {
        self.inner.conf_state(group)
    }

    fn truncated_state(&self, group: u64) -> StoreResult<TruncatedState> {
        self.inner.truncated_state(group)
    }

    fn recorded_snapshot(&self, group: u64) -> StoreResult<Option<Snapshot>> {
        self.inner.recorded_snapshot(group)
    }

    fn entries(&self, group: u64, low: u64, high: u64, max_bytes: u64) -> StoreResult<Vec<Entry>> {
        {
            let cache = self.cache.lock();
            if let Some(entries) = cache.covering(group, low, high) {
                let start = (low - entries[0].index) as usize;
                let wanted = entries.range(start..start + (high - low) as usize);
                return Ok(take_within_bytes(wanted, max_bytes));
            }
        }
        self.inner.entries(group, low, high, max_bytes)
    }

    fn term(&self, group: u64, index: u64) -> StoreResult<u64> {
        {
            let cache = self.cache.lock();
            if let Some(entries) = cache.covering(group, index, index + 1) {
                return Ok(entries[(index - entries[0].index) as usize].term);
            }
        }
        self.inner.term(group, index)
    }

    fn last_index(&self, group: u64) -> StoreResult<u64> {
        self.inner.last_index(group)
    }

    fn write(&self, batch: StoreBatch, sync: bool) -> StoreResult<()> {
        let changes: Vec<(u64, bool, Vec<Entry>, Option<u64>)> = batch
            .groups
            .iter()
            .map(|(group, write)| {
                let installs = write.install_snapshot.is_some();
                (*group, installs, write.entries.clone(), write.compact_to)
            })
            .collect();
        let written = self.inner.write(batch, sync);
        let mut cache = self.cache.lock();
        for (group, installs, entries, compact_to) in changes {
            if written.is_err() || installs {
                cache.clear(group);
            }
            if written.is_err() {
                continue;
            }
            cache.append(group, entries);
            if let Some(index) = compact_to {
                cache.drop_through(group, index);
            }
        }
        cache.evict();
        written
    }

    fn remove_group(&self, group: u64) -> StoreResult<()> {
        self.cache.lock().clear(group);
        self.inner.remove_group(group)
    }

    fn used_bytes(&self) -> u64 {
        self.inner.used_bytes()
    }
}

#[cfg(test)]
#[path = "entry_cache_tests.rs"]
mod tests;
