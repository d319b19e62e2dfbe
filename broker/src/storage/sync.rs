//! Durability bookkeeping: which rolled segments still need an fdatasync, whether the
//! directory does (new segment files), and the recovery point file that tells recovery which
//! segments it can trust.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::warn;

use super::StorageError;
use crate::page_cache;

pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point";
const RECOVERY_POINT_MAGIC: &[u8; 4] = b"CRP1";
const RECOVERY_POINT_BYTES: usize = 16;

/// File handles of a segment that was rolled and may not be synced yet.
pub(crate) struct SealedFiles {
    pub base_offset: i64,
    pub log: Arc<File>,
    pub log_path: PathBuf,
    pub index: Arc<File>,
    pub index_path: PathBuf,
    pub time: Arc<File>,
    pub time_path: PathBuf,
}

impl SealedFiles {
    fn sync(&self) -> Result<(), StorageError> {
        for (file, path) in [
            (&self.log, &self.log_path),
            (&self.index, &self.index_path),
            (&self.time, &self.time_path),
        ] {
            file.sync_data()
                .map_err(|error| StorageError::io("syncing", path, error))?;
        }
        Ok(())
    }
}

struct SyncState {
    /// Rolled segments not yet known to be synced, oldest first.
    pending: Vec<Arc<SealedFiles>>,
    /// Bumped whenever a segment file is created; the directory is synced up to it.
    dir_generation: u64,
    dir_synced_generation: u64,
    /// Base offset of the active segment.
    active_base: i64,
    /// What the recovery point file says (or the lowest value that could be on disk).
    recovery_point: i64,
    /// The active log file whose synced pages were last dropped from the page cache, and up
    /// to which byte (a page boundary).
    released: Option<(PathBuf, u64)>,
}

pub(crate) struct SyncShared {
    dir: PathBuf,
    recovery_point_path: PathBuf,
    state: Mutex<SyncState>,
}

impl SyncShared {
    pub fn new(dir: &Path, active_base: i64, recovery_point: i64) -> SyncShared {
        SyncShared {
            dir: dir.to_path_buf(),
            recovery_point_path: dir.join(RECOVERY_POINT_FILE),
            state: Mutex::new(SyncState {
                pending: Vec::new(),
                dir_generation: 1,
                dir_synced_generation: 0,
                active_base,
                recovery_point,
                released: None,
            }),
        }
    }

    /// A segment was rolled: `sealed` needs a sync, `new_active_base` was just created.
    pub fn on_roll(&self, sealed: Arc<SealedFiles>, new_active_base: i64) {
        let mut state = self.state.lock();
        state.pending.push(sealed);
        state.active_base = new_active_base;
        state.dir_generation += 1;
    }

    /// Marks a sealed segment as needing a sync (recovery rebuilt it without syncing).
    pub fn add_pending(&self, sealed: Arc<SealedFiles>) {
        self.state.lock().pending.push(sealed);
    }

    /// Segments were deleted or truncated: forget pending ones whose base matches `drop`.
    pub fn forget(&self, drop: impl Fn(i64) -> bool) {
        self.state
            .lock()
            .pending
            .retain(|sealed| !drop(sealed.base_offset));
    }

    pub fn recovery_point(&self) -> i64 {
        self.state.lock().recovery_point
    }

    /// Before segments at or above `new_active_base` are rewritten (truncation): durably
    /// lowers the recovery point to it, makes it the active base and forgets pending syncs of
    /// segments at or above it, all under one lock so a concurrent sync cannot raise the
    /// recovery point past the segment being rewritten.
    pub fn prepare_rewrite(&self, new_active_base: i64) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        if state.recovery_point > new_active_base {
            write_recovery_point(&self.recovery_point_path, new_active_base, true)?;
            state.recovery_point = new_active_base;
        }
        state.active_base = new_active_base;
        state.dir_generation += 1;
        state
            .pending
            .retain(|sealed| sealed.base_offset < new_active_base);
        state.released = None;
        Ok(())
    }

    /// fdatasyncs pending sealed segments, the directory if needed, then `active`; then moves
    /// the recovery point up to the oldest segment that may still be unsynced. What was synced
    /// leaves the page cache, except the newest [`page_cache::PARTITION_TAIL_CACHED_BYTES`] of
    /// `active`.
    pub fn sync(&self, active: &File, active_path: &Path) -> Result<(), StorageError> {
        let (pending, dir_generation, dir_dirty) = {
            let state = self.state.lock();
            let dirty = state.dir_generation > state.dir_synced_generation;
            (state.pending.clone(), state.dir_generation, dirty)
        };
        let written_bytes = active.metadata().map(|metadata| metadata.len()).ok();
        for sealed in &pending {
            sealed.sync()?;
            page_cache::release_all(&sealed.log);
        }
        if dir_dirty {
            File::open(&self.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|error| StorageError::io("syncing directory", &self.dir, error))?;
        }
        active
            .sync_data()
            .map_err(|error| StorageError::io("syncing", active_path, error))?;
        if let Some(written_bytes) = written_bytes {
            self.release_synced(active, active_path, written_bytes);
        }

        let mut state = self.state.lock();
        if !pending.is_empty() {
            state
                .pending
                .retain(|sealed| !pending.iter().any(|done| Arc::ptr_eq(done, sealed)));
        }
        state.dir_synced_generation = state.dir_synced_generation.max(dir_generation);
        let durable_below = state
            .pending
            .iter()
            .map(|sealed| sealed.base_offset)
            .fold(state.active_base, i64::min);
        if durable_below > state.recovery_point {
            // Not synced itself: a lost write leaves an older, lower (safe) recovery point.
            match write_recovery_point(&self.recovery_point_path, durable_below, false) {
                Ok(()) => state.recovery_point = durable_below,
                Err(error) => warn!(%error, "could not update the recovery point"),
            }
        }
        Ok(())
    }

    /// Drops `active`'s pages below its newest cached tail, from where the last call stopped.
    fn release_synced(&self, active: &File, active_path: &Path, synced_bytes: u64) {
        let end = synced_bytes.saturating_sub(page_cache::PARTITION_TAIL_CACHED_BYTES)
            / page_cache::PAGE_BYTES
            * page_cache::PAGE_BYTES;
        let start = {
            let state = self.state.lock();
            match &state.released {
                Some((path, released)) if path == active_path => {
                    released.saturating_sub(page_cache::LARGEST_FOLIO_BYTES)
                }
                _ => 0,
            }
        };
        if end <= start + page_cache::LARGEST_FOLIO_BYTES {
            return;
        }
        page_cache::release(active, start, end);
        self.state.lock().released = Some((active_path.to_path_buf(), end));
    }
}

/// Lets a caller fdatasync a partition log outside the lock that guards it. Everything
/// appended before [`PartitionLog::sync_handle`](super::PartitionLog::sync_handle) was called
/// is durable once [`SyncHandle::sync`] returns Ok.
#[derive(Clone)]
pub struct SyncHandle {
    pub(crate) active: Arc<File>,
    pub(crate) active_path: Arc<PathBuf>,
    pub(crate) shared: Arc<SyncShared>,
}

impl SyncHandle {
    pub fn sync(&self) -> Result<(), StorageError> {
        self.shared.sync(&self.active, &self.active_path)
    }
}

/// The recovery point in `dir`, or `None` when missing or unreadable (then nothing is trusted).
pub(crate) fn read_recovery_point(dir: &Path) -> Option<i64> {
    let bytes = std::fs::read(dir.join(RECOVERY_POINT_FILE)).ok()?;
    if bytes.len() != RECOVERY_POINT_BYTES || &bytes[..4] != RECOVERY_POINT_MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if crc32c::crc32c(&bytes[..12]) != crc {
        return None;
    }
    let mut value = [0u8; 8];
    value.copy_from_slice(&bytes[4..12]);
    Some(i64::from_be_bytes(value))
}

pub(crate) fn write_recovery_point(
    path: &Path,
    value: i64,
    sync: bool,
) -> Result<(), StorageError> {
    let mut bytes = Vec::with_capacity(RECOVERY_POINT_BYTES);
    bytes.extend_from_slice(RECOVERY_POINT_MAGIC);
    bytes.extend_from_slice(&value.to_be_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_be_bytes());
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|error| StorageError::io("opening", path, error))?;
    file.write_all_at(&bytes, 0)
        .map_err(|error| StorageError::io("writing", path, error))?;
    if sync {
        file.sync_data()
            .map_err(|error| StorageError::io("syncing", path, error))?;
    }
    Ok(())
}
