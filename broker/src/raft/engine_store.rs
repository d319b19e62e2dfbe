//! [`RaftLogStore`] on raft-engine, TiKV's multi-Raft log store: every group's entries and
//! states go into one set of append-only files, a whole ready round is one write with one
//! fdatasync, and compacted entries are purged file by file.
//!
//! A purge runs only after something was compacted or removed since the last one. Without
//! that, raft-engine's purge of a log that is never compacted (snapshots disabled) copies the
//! oldest entries of every busy group into its rewrite files, again and again: work that
//! frees nothing.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft_engine::{Command, Config, Engine, LogBatch, MessageExt, ReadableSize, RecoveryMode};

use super::log_store::{RaftLogStore, StoreBatch, StoreError, StoreResult, TruncatedState};

const HARD_STATE_KEY: &[u8] = b"hard_state";
const CONF_STATE_KEY: &[u8] = b"conf_state";
const TRUNCATED_KEY: &[u8] = b"truncated";
const SNAPSHOT_KEY: &[u8] = b"snapshot";

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
    /// Whether entries were compacted or a group removed since the last purge.
    released_since_purge: AtomicBool,
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
            // follows the live tail rather than everything ever written. (Below the threshold
            // the engine purges nothing, so it is also the floor of a quiet log.)
            target_file_size: ReadableSize::mb(8),
            purge_threshold: ReadableSize::mb(16),
            batch_compression_threshold: ReadableSize::kb(0),
            // Recycling keeps up to 1.5 x the purge threshold of purged files on disk for
            // reuse, outside the engine's used size: disk use would not follow the live tail.
            enable_log_recycle: false,
            ..Config::default()
        };
        let engine = Engine::open(config).map_err(engine_error)?;
        Ok(EngineLogStore {
            engine,
            // What an earlier run compacted may not have been purged yet.
            released_since_purge: AtomicBool::new(true),
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
    /// old files), if anything was compacted or removed since the last purge. Blocking I/O;
    /// called periodically off the Raft loop.
    pub fn purge(&self) -> StoreResult<()> {
        if !self.released_since_purge.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        if let Err(error) = self.engine.purge_expired_files() {
            self.released_since_purge.store(true, Ordering::Release);
            return Err(engine_error(error));
        }
        Ok(())
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
        append(&store, 0, ENTRIES);
        store.purge().expect("purge");
        let appended = store.used_bytes();
        compact(&store, ENTRIES - 10);
        append(&store, ENTRIES, 10);
        store.purge().expect("purge");
        let after = store.used_bytes();
        assert!(
            after < appended / 2,
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
                .entries(GROUP, ENTRIES - 9, ENTRIES + 11, u64::MAX)
                .expect("read")
                .len(),
            20
        );
    }
}
