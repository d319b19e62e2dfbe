use std::sync::atomic::{AtomicU64, Ordering};

use protobuf::Message as _;
use raft::eraftpb::SnapshotMetadata;

use super::*;
use crate::raft::log_store::{GroupWrite, MemoryLogStore};

/// A memory store that counts the entry and term reads that reach it.
#[derive(Default)]
struct CountingStore {
    store: MemoryLogStore,
    reads: AtomicU64,
}

impl RaftLogStore for CountingStore {
    fn hard_state(&self, group: u64) -> StoreResult<HardState> {
        self.store.hard_state(group)
    }
    fn conf_state(&self, group: u64) -> StoreResult<ConfState> {
        self.store.conf_state(group)
    }
    fn truncated_state(&self, group: u64) -> StoreResult<TruncatedState> {
        self.store.truncated_state(group)
    }
    fn recorded_snapshot(&self, group: u64) -> StoreResult<Option<Snapshot>> {
        self.store.recorded_snapshot(group)
    }
    fn entries(&self, group: u64, low: u64, high: u64, max_bytes: u64) -> StoreResult<Vec<Entry>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.store.entries(group, low, high, max_bytes)
    }
    fn term(&self, group: u64, index: u64) -> StoreResult<u64> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.store.term(group, index)
    }
    fn last_index(&self, group: u64) -> StoreResult<u64> {
        self.store.last_index(group)
    }
    fn write(&self, batch: StoreBatch, sync: bool) -> StoreResult<()> {
        self.store.write(batch, sync)
    }
    fn remove_group(&self, group: u64) -> StoreResult<()> {
        self.store.remove_group(group)
    }
    fn used_bytes(&self) -> u64 {
        self.store.used_bytes()
    }
}

fn entry(index: u64, term: u64, data_bytes: usize) -> Entry {
    Entry {
        index,
        term,
        data: vec![(index % 251) as u8; data_bytes].into(),
        ..Entry::default()
    }
}

fn entries(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    indexes.map(|index| entry(index, term, 100)).collect()
}

fn write(store: &dyn RaftLogStore, group: u64, change: GroupWrite) {
    let mut batch = StoreBatch::default();
    *batch.group(group) = change;
    store.write(batch, true).unwrap();
}

fn append(store: &dyn RaftLogStore, group: u64, new: Vec<Entry>) {
    write(
        store,
        group,
        GroupWrite {
            entries: new,
            ..GroupWrite::default()
        },
    );
}

fn cached(budget_bytes: u64) -> (Arc<CountingStore>, CachedLogStore) {
    let inner = Arc::new(CountingStore::default());
    let store = CachedLogStore::new(inner.clone(), budget_bytes);
    (inner, store)
}

#[test]
fn entries_just_written_are_read_without_the_store() {
    let (inner, store) = cached(ENTRY_CACHE_BUDGET_BYTES);
    append(&store, 1, entries(1..=10, 1));
    append(&store, 2, entries(1..=5, 1));
    assert_eq!(
        store.entries(1, 3, 11, u64::MAX).unwrap(),
        entries(3..=10, 1)
    );
    assert_eq!(store.entries(2, 1, 6, u64::MAX).unwrap(), entries(1..=5, 1));
    assert_eq!(store.term(1, 10).unwrap(), 1);
    assert_eq!(inner.reads.load(Ordering::Relaxed), 0);
}

#[test]
fn a_read_reaching_below_the_cache_goes_to_the_store() {
    let one_write_bytes = 10 * (100 + ENTRY_OVERHEAD_BYTES);
    let (inner, store) = cached(one_write_bytes);
    append(&store, 1, entries(1..=10, 1));
    append(&store, 1, entries(11..=20, 1));
    assert_eq!(store.cached_bytes(), one_write_bytes);
    assert_eq!(
        store.entries(1, 11, 21, u64::MAX).unwrap(),
        entries(11..=20, 1)
    );
    assert_eq!(inner.reads.load(Ordering::Relaxed), 0);
    assert_eq!(
        store.entries(1, 5, 15, u64::MAX).unwrap(),
        entries(5..=14, 1)
    );
    assert_eq!(inner.reads.load(Ordering::Relaxed), 1);
}

#[test]
fn the_byte_limit_stops_a_read_after_at_least_one_entry() {
    let (_inner, store) = cached(ENTRY_CACHE_BUDGET_BYTES);
    append(&store, 1, entries(1..=10, 1));
    let one_entry_bytes = entries(1..=1, 1)[0].compute_size() as u64;
    assert_eq!(store.entries(1, 1, 11, 0).unwrap().len(), 1);
    assert_eq!(
        store.entries(1, 1, 11, 3 * one_entry_bytes).unwrap().len(),
        3
    );
}

#[test]
fn overwritten_entries_are_replaced_in_the_cache() {
    let (inner, store) = cached(ENTRY_CACHE_BUDGET_BYTES);
    append(&store, 1, entries(1..=10, 1));
    append(&store, 1, entries(6..=8, 2));
    let expected: Vec<Entry> = entries(1..=5, 1)
        .into_iter()
        .chain(entries(6..=8, 2))
        .collect();
    assert_eq!(store.entries(1, 1, 9, u64::MAX).unwrap(), expected);
    assert_eq!(store.term(1, 8).unwrap(), 2);
    assert_eq!(store.last_index(1).unwrap(), 8);
    assert!(store.term(1, 9).is_err(), "entry 9 was overwritten away");
    assert_eq!(inner.reads.load(Ordering::Relaxed), 1);
}

#[test]
fn compaction_and_an_installed_snapshot_drop_cached_entries() {
    let (_inner, store) = cached(ENTRY_CACHE_BUDGET_BYTES);
    append(&store, 1, entries(1..=10, 1));
    write(
        &store,
        1,
        GroupWrite {
            compact_to: Some(4),
            ..GroupWrite::default()
        },
    );
    assert_eq!(store.cached_bytes(), 6 * (100 + ENTRY_OVERHEAD_BYTES));
    assert!(store.entries(1, 4, 6, u64::MAX).is_err());
    let mut snapshot = Snapshot::default();
    snapshot.set_metadata(SnapshotMetadata {
        index: 20,
        term: 3,
        ..SnapshotMetadata::default()
    });
    write(
        &store,
        1,
        GroupWrite {
            install_snapshot: Some(snapshot),
            ..GroupWrite::default()
        },
    );
    assert_eq!(store.cached_bytes(), 0);
    assert!(store.term(1, 10).is_err());
    append(&store, 1, entries(21..=22, 3));
    assert_eq!(
        store.entries(1, 21, 23, u64::MAX).unwrap(),
        entries(21..=22, 3)
    );
}

#[test]
fn the_budget_drops_the_oldest_writes_of_any_group() {
    let write_bytes = 10 * (100 + ENTRY_OVERHEAD_BYTES);
    let (inner, store) = cached(2 * write_bytes);
    append(&store, 1, entries(1..=10, 1));
    append(&store, 2, entries(1..=10, 1));
    append(&store, 3, entries(1..=10, 1));
    assert_eq!(store.cached_bytes(), 2 * write_bytes);
    store.entries(2, 1, 11, u64::MAX).unwrap();
    store.entries(3, 1, 11, u64::MAX).unwrap();
    assert_eq!(inner.reads.load(Ordering::Relaxed), 0);
    store.entries(1, 1, 11, u64::MAX).unwrap();
    assert_eq!(inner.reads.load(Ordering::Relaxed), 1);
    store.remove_group(2).unwrap();
    assert_eq!(store.cached_bytes(), write_bytes);
}
