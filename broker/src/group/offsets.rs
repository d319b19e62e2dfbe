//! The durable committed-offset store: [`OffsetState`] fed by the [`Journal`].
//!
//! An append writes the event's record and applies it to the state under one lock, so the
//! state always equals a replay of the journal, then waits until an fdatasync covers it.
//! Concurrent appenders share fsyncs (group commit): whoever holds the sync lock syncs
//! everything written so far, and the others find their record already covered.
//! When the journal carries several times more entries than the live state, it is compacted
//! to a snapshot of the state.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::events::{GroupEvent, OffsetState};
use super::journal::Journal;
use super::replicated::StoredGroup;

/// Default: compact only once the journal exceeds this many bytes...
pub const DEFAULT_COMPACT_MIN_BYTES: u64 = 8 << 20;
/// ...and carries this many times more entries than the live state.
const COMPACT_RATIO: usize = 4;

struct StoreInner {
    journal: Journal,
    state: OffsetState,
    /// Records appended since open (a sequence for the group commit).
    appended_seq: u64,
    /// Partition entries in the journal file (live or superseded).
    journal_entries: usize,
}

pub struct OffsetStore {
    inner: Mutex<StoreInner>,
    /// Every record up to this sequence is synced.
    synced_seq: AtomicU64,
    sync_lock: tokio::sync::Mutex<()>,
    compacting: AtomicBool,
    /// An fsync failed: what was written may not be on disk, refuse further commits.
    failed: AtomicBool,
    compact_min_bytes: u64,
}

impl OffsetStore {
    /// Opens the store in `dir`, replaying (and repairing) its journal.
    pub fn open(dir: &Path) -> io::Result<OffsetStore> {
        Self::open_with(dir, DEFAULT_COMPACT_MIN_BYTES)
    }

    /// As [`OffsetStore::open`], with the journal size below which it is never compacted.
    pub fn open_with(dir: &Path, compact_min_bytes: u64) -> io::Result<OffsetStore> {
        let (journal, replay) = Journal::open(dir)?;
        let mut state = OffsetState::default();
        let mut journal_entries = 0;
        for event in &replay.events {
            journal_entries += event.entry_count();
            state.apply(event);
        }
        tracing::info!(
            dir = %dir.display(),
            records = replay.events.len(),
            offsets = state.live_entries(),
            truncated_bytes = replay.truncated_bytes,
            "group offset journal replayed"
        );
        Ok(OffsetStore {
            inner: Mutex::new(StoreInner {
                journal,
                state,
                appended_seq: 0,
                journal_entries,
            }),
            synced_seq: AtomicU64::new(0),
            sync_lock: tokio::sync::Mutex::new(()),
            compacting: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            compact_min_bytes,
        })
    }

    /// Applies an event that is already durable elsewhere (committed in the metadata Raft
    /// group, which is the record of offsets in a cluster); the journal is not written.
    pub fn apply_replicated(&self, event: &GroupEvent) {
        self.inner.lock().state.apply(event);
        match event {
            GroupEvent::OffsetsCommitted { .. } => {
                ::metrics::counter!("chronik_group_offset_commits_total").increment(1);
            }
            GroupEvent::GroupStateChanged { .. } => {
                ::metrics::counter!("chronik_group_state_changes_total").increment(1);
            }
        }
    }

    /// The committed offsets as events that rebuild them, for a snapshot of the metadata group.
    pub fn export_events(&self) -> Vec<GroupEvent> {
        self.inner.lock().state.offset_events()
    }

    /// The replicated membership of Stable groups, for a snapshot of the metadata group.
    pub fn export_memberships(&self) -> BTreeMap<String, StoredGroup> {
        self.inner.lock().state.memberships().export()
    }

    /// Replaces the replicated offsets and memberships with a snapshot's (the journal is not
    /// written: the metadata group is the record).
    pub fn restore_replicated(
        &self,
        events: &[GroupEvent],
        memberships: &BTreeMap<String, StoredGroup>,
    ) {
        let mut state = OffsetState::default();
        for event in events {
            state.apply(event);
        }
        state.restore_memberships(memberships);
        self.inner.lock().state = state;
    }

    /// A group's replicated Stable generation, if it has one.
    pub fn stored_group(&self, group: &str) -> Option<StoredGroup> {
        self.inner.lock().state.memberships().get(group).cloned()
    }

    /// Every replicated Stable generation, by group.
    pub fn stored_groups(&self) -> BTreeMap<String, StoredGroup> {
        self.export_memberships()
    }

    /// Makes `event` durable and applies it. Returns once an fdatasync covers it.
    pub async fn append(self: &Arc<Self>, event: GroupEvent) -> io::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(io::Error::other("group journal failed an earlier fsync"));
        }
        let (seq, compact) = {
            let mut inner = self.inner.lock();
            inner.journal.append(&event)?;
            inner.journal_entries += event.entry_count();
            inner.state.apply(&event);
            inner.appended_seq += 1;
            (inner.appended_seq, self.should_compact(&inner))
        };
        ::metrics::counter!("chronik_group_offset_commits_total").increment(1);
        if compact && !self.compacting.swap(true, Ordering::AcqRel) {
            let store = self.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.compact() {
                    tracing::error!(error = %e, "group journal compaction failed");
                }
                store.compacting.store(false, Ordering::Release);
            });
        }
        self.sync_to(seq).await
    }

    fn should_compact(&self, inner: &StoreInner) -> bool {
        inner.journal.len() > self.compact_min_bytes
            && inner.journal_entries > COMPACT_RATIO * inner.state.live_entries().max(1)
    }

    /// Waits until record `seq` is synced, syncing itself if nobody else is.
    async fn sync_to(&self, seq: u64) -> io::Result<()> {
        if self.synced_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _guard = self.sync_lock.lock().await;
        if self.synced_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        if self.failed.load(Ordering::Acquire) {
            return Err(io::Error::other("group journal failed an earlier fsync"));
        }
        let (file, target) = {
            let inner = self.inner.lock();
            (inner.journal.sync_handle(), inner.appended_seq)
        };
        let result = tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(io::Error::other)
            .and_then(|r| r);
        match result {
            Ok(()) => {
                self.synced_seq.fetch_max(target, Ordering::AcqRel);
                ::metrics::counter!("chronik_group_journal_fsyncs_total").increment(1);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "group journal fsync failed; refusing further commits");
                self.failed.store(true, Ordering::Release);
                Err(e)
            }
        }
    }

    /// Rewrites the journal as a snapshot of the live state (blocking I/O under the lock).
    pub fn compact(&self) -> io::Result<()> {
        let mut inner = self.inner.lock();
        let events = inner.state.snapshot();
        let before = inner.journal.len();
        inner.journal.rewrite(&events)?;
        inner.journal_entries = inner.state.live_entries();
        // The rewritten file is synced and holds everything appended so far.
        self.synced_seq
            .fetch_max(inner.appended_seq, Ordering::AcqRel);
        ::metrics::counter!("chronik_group_journal_compactions_total").increment(1);
        tracing::info!(
            before_bytes = before,
            after_bytes = inner.journal.len(),
            offsets = inner.state.live_entries(),
            "group journal compacted"
        );
        Ok(())
    }

    /// Syncs whatever was appended (shutdown).
    pub fn flush(&self) -> io::Result<()> {
        let inner = self.inner.lock();
        inner.journal.sync()?;
        self.synced_seq
            .fetch_max(inner.appended_seq, Ordering::AcqRel);
        Ok(())
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&OffsetState) -> R) -> R {
        f(&self.inner.lock().state)
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.inner.lock().state.has_group(group)
    }

    /// Journal size in bytes.
    pub fn journal_len(&self) -> u64 {
        self.inner.lock().journal.len()
    }

    /// Group ids with committed offsets.
    pub fn group_ids(&self) -> Vec<String> {
        self.read(|s| s.group_ids().map(str::to_string).collect())
    }
}
