//! [`RaftLogStore`] on raft-engine, TiKV's multi-Raft log store: every group's entries and
//! states go into one set of append-only files, a whole ready round is one write with one
//! fdatasync, and compacted entries are purged file by file.
//!
//! A purge runs only after something was compacted or removed since the last one. Without
//! that, raft-engine's purge of a log that is never compacted (snapshots disabled) copies the
//! oldest entries of every busy group into its rewrite files, again and again: work that
//! frees nothing.
//!
//! While groups are being written, a purge also waits until the log has grown to
//! [`PURGE_GROWTH_FACTOR`] times what it held after the last one that freed anything. Every purge rewrites the
//! entries each group still holds in the oldest 70% of the files, when that is fewer than 32
//! entries: raft-engine's rule for small, idle groups. Our entries are produce batches of up
//! to a megabyte and a busy group holds a few dozen, so purging every second copied most
//! groups' live tails on every purge: in `snapshot-overhead`, more bytes rewritten than a
//! third of all bytes written. Purged after the log grew well past its live tails, those
//! tails sit in the newest files and nothing is rewritten. Once appends stop, the next purge
//! runs whatever the size, so a quiet log shrinks to the purge threshold.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft_engine::{
    internals::LogQueue, Command, Config, Engine, LogBatch, MessageExt, ReadableSize, RecoveryMode,
};

use super::log_store::{RaftLogStore, StoreBatch, StoreError, StoreResult, TruncatedState};

const HARD_STATE_KEY: &[u8] = b"hard_state";
const CONF_STATE_KEY: &[u8] = b"conf_state";
const TRUNCATED_KEY: &[u8] = b"truncated";
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// Below this size raft-engine purges nothing: the floor of a quiet log's disk use.
pub const PURGE_THRESHOLD_BYTES: u64 = 16 * 1024 * 1024;
/// While appends go on, a purge waits until the log holds this many times what it held after
/// the last purge that freed anything (and at least the threshold).
pub const PURGE_GROWTH_FACTOR: u64 = 3;

#[derive(Clone)]
pub struct EntryCodec;

impl MessageExt for EntryCodec {
    type Entry = Entry;

    fn index(entry: &Entry) -> u64 {
        entry.index
    }
}

pub struct EngineLogStore {
    engine: Engine,
    directory: PathBuf,
    /// Files of the append queue below this sequence number have left the page cache.
    released_below_file: AtomicU64,
    /// Whether entries were compacted or a group removed since the last purge.
    released_since_purge: AtomicBool,
    /// Whether entries were appended since the last call of [`EngineLogStore::purge`].
    appended_since_purge_check: AtomicBool,
    /// The log's size after the last purge that freed anything, at least
    /// [`PURGE_THRESHOLD_BYTES`].
    used_after_purge_bytes: AtomicU64,
}

fn engine_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(error.to_string())
}

impl EngineLogStore {
    pub fn open(directory: &Path) -> StoreResult<EngineLogStore> {
        let config = Config {
            dir: directory.display().to_string(),
            // A torn tail is what a crash mid-write leaves; it was never acknowledged.
            recovery_mode: RecoveryMode::TolerateTailCorruption,
            // Small files and a low purge threshold: once groups compact their logs, disk use
            // follows the live tail rather than everything ever written.
            target_file_size: ReadableSize::mb(8),
            purge_threshold: ReadableSize(PURGE_THRESHOLD_BYTES),
            batch_compression_threshold: ReadableSize::kb(0),
            // Recycling keeps up to 1.5 x the purge threshold of purged files on disk for
            // reuse, outside the engine's used size: disk use would not follow the live tail.
            enable_log_recycle: false,
            ..Config::default()
        };
        let engine = Engine::open(config).map_err(engine_error)?;
        Ok(EngineLogStore {
            engine,
            directory: directory.to_path_buf(),
            released_below_file: AtomicU64::new(0),
            // What an earlier run compacted may not have been purged yet.
            released_since_purge: AtomicBool::new(true),
            appended_since_purge_check: AtomicBool::new(false),
            used_after_purge_bytes: AtomicU64::new(PURGE_THRESHOLD_BYTES),
        })
    }
}

impl RaftLogStore for EngineLogStore {
    fn hard_state(&self, group: u64) -> StoreResult<HardState> {
        let stored = self.engine.get_message::<HardState>(group, HARD_STATE_KEY);
        Ok(stored.map_err(engine_error)?.unwrap_or_default())
    }

    fn conf_state(&self, group: u64) -> StoreResult<ConfState> {
        let stored = self.engine.get_message::<ConfState>(group, CONF_STATE_KEY);
        Ok(stored.map_err(engine_error)?.unwrap_or_default())
    }

    fn truncated_state(&self, group: u64) -> StoreResult<TruncatedState> {
        let stored = self.engine.get_message::<Entry>(group, TRUNCATED_KEY);
        Ok(stored
            .map_err(engine_error)?
            .map(|entry| TruncatedState {
                index: entry.index,
                term: entry.term,
            })
            .unwrap_or_default())
    }

    fn recorded_snapshot(&self, group: u64) -> StoreResult<Option<Snapshot>> {
        let stored = self.engine.get_message::<Snapshot>(group, SNAPSHOT_KEY);
        stored.map_err(engine_error)
    }

    fn entries(&self, group: u64, low: u64, high: u64, max_bytes: u64) -> StoreResult<Vec<Entry>> {
        let mut entries = Vec::with_capacity(((high - low) as usize).min(1024));
        let max_size = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        self.engine
            .fetch_entries_to::<EntryCodec>(group, low, high, Some(max_size), &mut entries)
            .map_err(engine_error)?;
        if entries.is_empty() && low < high {
            let first = self.engine.first_index(group).unwrap_or(0);
            let last = self.engine.last_index(group).unwrap_or(0);
            return Err(StoreError::Missing {
                group,
                index: low,
                first,
                last,
            });
        }
        Ok(entries)
    }

    fn term(&self, group: u64, index: u64) -> StoreResult<u64> {
        let truncated = self.truncated_state(group)?;
        if index == truncated.index {
            return Ok(truncated.term);
        }
        match self
            .engine
            .get_entry::<EntryCodec>(group, index)
            .map_err(engine_error)?
        {
            Some(entry) => Ok(entry.term),
            None => Err(StoreError::Missing {
                group,
                index,
                first: self.engine.first_index(group).unwrap_or(0),
                last: self.engine.last_index(group).unwrap_or(0),
            }),
        }
    }

    fn last_index(&self, group: u64) -> StoreResult<u64> {
        match self.engine.last_index(group) {
            Some(last) => Ok(last),
            None => Ok(self.truncated_state(group)?.index),
        }
    }

    fn write(&self, batch: StoreBatch, sync: bool) -> StoreResult<()> {
        let mut log_batch = LogBatch::with_capacity(batch.groups.len());
        let mut releases = false;
        let mut appends = false;
        for (group, write) in batch.groups {
            if let Some(snapshot) = &write.install_snapshot {
                // Everything of the group goes, including states this write does not carry:
                // the hard state is written again below.
                let hard_state = match &write.hard_state {
                    Some(_) => None,
                    None => Some(self.hard_state(group)?),
                };
                log_batch.add_command(group, Command::Clean);
                releases = true;
                let metadata = snapshot.get_metadata();
                if let Some(hard_state) = hard_state {
                    log_batch
                        .put_message(group, HARD_STATE_KEY.to_vec(), &hard_state)
                        .map_err(engine_error)?;
                }
                log_batch
                    .put_message(group, CONF_STATE_KEY.to_vec(), metadata.get_conf_state())
                    .map_err(engine_error)?;
                let truncated = truncated_marker(metadata.index, metadata.term);
                log_batch
                    .put_message(group, TRUNCATED_KEY.to_vec(), &truncated)
                    .map_err(engine_error)?;
                log_batch
                    .put_message(group, SNAPSHOT_KEY.to_vec(), snapshot)
                    .map_err(engine_error)?;
            }
            if !write.entries.is_empty() {
                appends = true;
                log_batch
                    .add_entries::<EntryCodec>(group, &write.entries)
                    .map_err(engine_error)?;
            }
            if let Some(hard_state) = write.hard_state {
                log_batch
                    .put_message(group, HARD_STATE_KEY.to_vec(), &hard_state)
                    .map_err(engine_error)?;
            }
            if let Some(conf_state) = write.conf_state {
                log_batch
                    .put_message(group, CONF_STATE_KEY.to_vec(), &conf_state)
                    .map_err(engine_error)?;
            }
            if let Some(snapshot) = &write.record_snapshot {
                log_batch
                    .put_message(group, SNAPSHOT_KEY.to_vec(), snapshot)
                    .map_err(engine_error)?;
            }
            if let Some(index) = write.compact_to {
                let index = index.min(self.last_index(group)?);
                if index > self.truncated_state(group)?.index {
                    let term = self.term(group, index)?;
                    log_batch.add_command(group, Command::Compact { index: index + 1 });
                    releases = true;
                    log_batch
                        .put_message(
                            group,
                            TRUNCATED_KEY.to_vec(),
                            &truncated_marker(index, term),
                        )
                        .map_err(engine_error)?;
                }
            }
        }
        if log_batch.is_empty() {
            return Ok(());
        }
        self.engine
            .write(&mut log_batch, sync)
            .map_err(engine_error)?;
        if releases {
            self.released_since_purge.store(true, Ordering::Release);
        }
        if appends {
            self.appended_since_purge_check
                .store(true, Ordering::Release);
        }
        Ok(())
    }

    fn remove_group(&self, group: u64) -> StoreResult<()> {
        let mut log_batch = LogBatch::default();
        log_batch.add_command(group, Command::Clean);
        self.engine
            .write(&mut log_batch, true)
            .map_err(engine_error)?;
        Ok(())
    }

    fn used_bytes(&self) -> u64 {
        self.engine.get_used_size() as u64
    }
}

impl EngineLogStore {
    /// Deletes log files holding only compacted entries (and rewrites the few live entries of
    /// old files), if anything was compacted or removed since the last purge, and either no
    /// entries were appended since the previous call or the log grew [`PURGE_GROWTH_FACTOR`]
    /// times (see the module documentation). Blocking I/O; called periodically off the Raft
    /// loop.
    pub fn purge(&self) -> StoreResult<()> {
        self.release_written_files();
        let quiet = !self
            .appended_since_purge_check
            .swap(false, Ordering::AcqRel);
        let before = self.used_bytes();
        let grown = before
            >= self
                .used_after_purge_bytes
                .load(Ordering::Acquire)
                .saturating_mul(PURGE_GROWTH_FACTOR);
        if !(quiet || grown) || !self.released_since_purge.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        if let Err(error) = self.engine.purge_expired_files() {
            self.released_since_purge.store(true, Ordering::Release);
            return Err(engine_error(error));
        }
        // A purge that freed nothing was held back by a group that had not compacted yet (or
        // by entries it has just rewritten out of the oldest file): its size says nothing
        // about the live tails, and the next purge should not wait for three times that.
        let after = self.used_bytes();
        if after < before {
            self.used_after_purge_bytes
                .store(after.max(PURGE_THRESHOLD_BYTES), Ordering::Release);
        }
        Ok(())
    }

    /// Drops from the page cache every file raft-engine has finished writing (every file of
    /// the append queue but the newest): each write was synced, and readers go to the entry
    /// cache first (see `crate::page_cache`). Each file once.
    fn release_written_files(&self) {
        let (first, newest) = self.engine.file_span(LogQueue::Append);
        let from = first.max(self.released_below_file.load(Ordering::Acquire));
        for sequence in from..newest {
            crate::page_cache::release_file(
                &self.directory.join(format!("{sequence:016}.raftlog")),
            );
        }
        self.released_below_file.fetch_max(newest, Ordering::AcqRel);
    }
}

/// The truncated state is stored as an entry holding only its index and term.
fn truncated_marker(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Entry::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log_store::GroupWrite;

    const GROUP: u64 = 7;
    const ENTRY_BYTES: usize = 64 * 1024;

    /// Appends `count` entries of [`ENTRY_BYTES`] to [`GROUP`] after index `after`, ten to a
    /// write (a write goes whole into the file it starts in).
    fn append(store: &EngineLogStore, after: u64, count: u64) {
        let indexes: Vec<u64> = (after + 1..=after + count).collect();
        for written in indexes.chunks(10) {
            let entries = written
                .iter()
                .map(|&index| Entry {
                    index,
                    term: 1,
                    data: vec![(index % 251) as u8; ENTRY_BYTES].into(),
                    ..Entry::default()
                })
                .collect();
            let mut batch = StoreBatch::default();
            *batch.group(GROUP) = GroupWrite {
                entries,
                ..GroupWrite::default()
            };
            store.write(batch, false).expect("append");
        }
    }

    fn compact(store: &EngineLogStore, index: u64) {
        let mut batch = StoreBatch::default();
        batch.group(GROUP).compact_to = Some(index);
        store.write(batch, false).expect("compact");
    }

    /// Bytes in the engine's files whose name ends with `suffix`.
    fn file_bytes(directory: &Path, suffix: &str) -> u64 {
        std::fs::read_dir(directory)
            .expect("list the store")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(suffix))
            .map(|entry| entry.metadata().expect("stat").len())
            .sum()
    }

    /// 720 entries of 64 KiB: 45 MiB in six files, over the 16 MiB purge threshold.
    const ENTRIES: u64 = 720;

    #[test]
    fn a_log_never_compacted_is_not_rewritten_by_purges() {
        let directory = tempfile::tempdir().expect("temp dir");
        let store = EngineLogStore::open(directory.path()).expect("open");
        append(&store, 0, ENTRIES);
        let rewritten_before = file_bytes(directory.path(), ".rewrite");
        // raft-engine rewrites a busy group itself after asking nine purges in a row for it to
        // be compacted; twelve purges would reach that.
        for _ in 0..12 {
            store.purge().expect("purge");
        }
        assert_eq!(file_bytes(directory.path(), ".rewrite"), rewritten_before);
        assert_eq!(store.last_index(GROUP).expect("last index"), ENTRIES);
    }

    #[test]
    fn a_purge_after_compaction_deletes_the_compacted_files() {
        let directory = tempfile::tempdir().expect("temp dir");
        let store = EngineLogStore::open(directory.path()).expect("open");
        // 19 MiB of entries: over the threshold, under the growth factor times it.
        let first = 300;
        append(&store, 0, first);
        let appended = store.used_bytes();
        compact(&store, first - 10);
        append(&store, first, 10);
        // Entries were appended since the last call and the log has not grown: no purge yet.
        store.purge().expect("purge");
        assert!(store.used_bytes() >= appended);
        // Nothing appended since: the log went quiet.
        store.purge().expect("purge");
        let after = store.used_bytes();
        assert!(
            after <= appended / 2,
            "{after} bytes of log left of {appended} after compacting all but 10 entries"
        );
        // The purged files are gone from the disk, not kept aside for reuse.
        let on_disk = file_bytes(directory.path(), "");
        assert!(
            on_disk <= after,
            "{on_disk} bytes of files on disk, more than the {after} bytes of log in use"
        );
        assert_eq!(
            store
                .entries(GROUP, first - 9, first + 11, u64::MAX)
                .expect("read")
                .len(),
            20
        );
    }

    #[test]
    fn files_the_engine_has_moved_past_leave_the_page_cache() {
        let directory = crate::page_cache::residency::disk_directory();
        let store = EngineLogStore::open(directory.path()).expect("open");
        append(&store, 0, 300);
        let mut files: Vec<PathBuf> = std::fs::read_dir(directory.path())
            .expect("list the store")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.to_string_lossy().ends_with(".raftlog"))
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{files:?}");
        // The broker's writes are synced; these were not.
        for file in &files {
            std::fs::File::open(file)
                .and_then(|file| file.sync_data())
                .expect("sync");
        }
        store.purge().expect("purge");
        let (newest, written) = files.split_last().expect("files");
        for file in written {
            let cached = crate::page_cache::residency::cached_pages(file);
            assert!(
                cached.iter().all(|page| !*page),
                "{} still cached",
                file.display()
            );
        }
        let cached = crate::page_cache::residency::cached_pages(newest);
        assert!(
            cached.iter().any(|page| *page),
            "the newest file stays cached"
        );
        // Entries come back from the disk.
        assert_eq!(
            store.entries(GROUP, 1, 301, u64::MAX).expect("read").len(),
            300
        );
    }

    #[test]
    fn a_busy_log_is_purged_once_it_has_grown_well_past_its_live_tail() {
        let directory = tempfile::tempdir().expect("temp dir");
        let store = EngineLogStore::open(directory.path()).expect("open");
        // 19 MiB of entries in three 8 MiB files: over the threshold, under the growth factor
        // times it.
        let first = 300;
        append(&store, 0, first);
        compact(&store, first - 10);
        let before = store.used_bytes();
        assert!(
            before > PURGE_THRESHOLD_BYTES && before < PURGE_GROWTH_FACTOR * PURGE_THRESHOLD_BYTES,
            "{before} bytes"
        );
        store.purge().expect("purge");
        assert!(
            store.used_bytes() >= before,
            "purged while busy at {before} bytes, under {PURGE_GROWTH_FACTOR} x the threshold"
        );
        // Still busy, but grown past the growth factor.
        let mut last = first;
        while store.used_bytes() < PURGE_GROWTH_FACTOR * PURGE_THRESHOLD_BYTES {
            append(&store, last, 10);
            last += 10;
        }
        let grown = store.used_bytes();
        store.purge().expect("purge");
        let after = store.used_bytes();
        assert!(
            after < grown,
            "{after} bytes of log left of {grown} after compacting the first {} entries",
            first - 10
        );
        let kept = store
            .entries(GROUP, first - 9, last + 1, u64::MAX)
            .expect("read");
        assert_eq!(kept.len() as u64, last - first + 10);
    }
}
