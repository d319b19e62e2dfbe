//! One segment: a `.log` file of record batches starting at `base_offset`, with its offset
//! and time indexes. All file access is positioned (`read_at`/`write_all_at`), so readers
//! through `&self` never disturb each other or the writer's position.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use super::index::{
    ceil_entry, encode_offset_entries, encode_time_entries, floor_entry, last_time_entry_below,
    IndexFile, OffsetEntry, TimeEntry, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES,
};
use super::sync::SealedFiles;
use super::StorageError;
use crate::wire::record_batch::{BatchHeader, BATCH_HEADER_BYTES, NO_TIMESTAMP};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// `dir/00000000000000000042.suffix`.
pub(crate) fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// The base offset named by a segment file name (20 digits + suffix), if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

pub(crate) struct Segment {
    pub base_offset: i64,
    pub log_path: PathBuf,
    pub log: Arc<File>,
    pub index_file: IndexFile,
    pub time_file: IndexFile,
    /// Valid bytes in the log file (everything after is garbage to be overwritten).
    pub size: u64,
    /// The offset after the segment's last batch (its base offset when empty).
    pub next_offset: i64,
    /// Largest batch max timestamp in the segment, NO_TIMESTAMP when none.
    pub max_timestamp: i64,
    pub offset_index: Vec<OffsetEntry>,
    pub time_index: Vec<TimeEntry>,
    pub bytes_since_index: u64,
    pub index_interval: u32,
}

impl Segment {
    /// Opens (creating if missing) the three files of the segment at `base_offset`, without
    /// reading them: the caller recovers or scans it. `fresh` truncates all three.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
        fresh: bool,
    ) -> Result<Segment, StorageError> {
        let log_path = segment_file(dir, base_offset, LOG_SUFFIX);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(fresh)
            .open(&log_path)
            .map_err(|error| StorageError::io("opening segment", &log_path, error))?;
        let index_file = IndexFile::open(segment_file(dir, base_offset, INDEX_SUFFIX), fresh)?;
        let time_file = IndexFile::open(segment_file(dir, base_offset, TIME_INDEX_SUFFIX), fresh)?;
        Ok(Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            index_file,
            time_file,
            size: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index: 0,
            index_interval,
        })
    }

    pub fn file_len(&self) -> Result<u64, StorageError> {
        self.log
            .metadata()
            .map(|metadata| metadata.len())
            .map_err(|error| StorageError::io("reading size of segment", &self.log_path, error))
    }

    pub fn sealed_files(&self) -> Arc<SealedFiles> {
        Arc::new(SealedFiles {
            base_offset: self.base_offset,
            log: self.log.clone(),
            log_path: self.log_path.clone(),
            index: self.index_file.file.clone(),
            index_path: self.index_file.path.clone(),
            time: self.time_file.file.clone(),
            time_path: self.time_file.path.clone(),
        })
    }

    /// Resets the in-memory state to "empty segment".
    pub fn reset_state(&mut self) {
        self.size = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_index.clear();
        self.time_index.clear();
        self.bytes_since_index = 0;
    }

    /// Adds the index entries due for a batch about to sit at `position` (in memory only) and
    /// accounts for it. `header.base_offset` must already be the assigned offset.
    pub fn note_batch(&mut self, position: u64, header: &BatchHeader) {
        let due = self.bytes_since_index >= self.index_interval as u64;
        if due
            && self
                .offset_index
                .last()
                .is_none_or(|last| position > last.pos as u64)
        {
            let rel = (header.base_offset - self.base_offset) as u32;
            self.offset_index.push(OffsetEntry {
                rel,
                pos: position as u32,
            });
            let indexed = self
                .time_index
                .last()
                .map_or(NO_TIMESTAMP, |last| last.timestamp);
            if self.max_timestamp > indexed {
                self.time_index.push(TimeEntry {
                    timestamp: self.max_timestamp,
                    rel,
                });
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.total_bytes() as u64;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        self.next_offset = header.last_offset() + 1;
    }

    /// Writes one batch (whose header already carries its assigned base offset) at the end.
    /// All or nothing: on error the in-memory state is unchanged and the files are cut back.
    pub fn append(&mut self, batch: &[u8], header: &BatchHeader) -> Result<u64, StorageError> {
        let position = self.size;
        let saved = (
            self.offset_index.len(),
            self.time_index.len(),
            self.bytes_since_index,
            self.max_timestamp,
            self.next_offset,
        );
        self.note_batch(position, header);
        let written = self.write_batch_and_entries(batch, position, saved.0, saved.1);
        if let Err(error) = written {
            let (offset_entries, time_entries, bytes_since, max_timestamp, next_offset) = saved;
            self.offset_index.truncate(offset_entries);
            self.time_index.truncate(time_entries);
            self.bytes_since_index = bytes_since;
            self.max_timestamp = max_timestamp;
            self.next_offset = next_offset;
            // Best effort: whatever stays behind is overwritten by the next append (writes
            // are positioned) and cut off by recovery.
            if let Err(cut) = self.log.set_len(position) {
                warn!(path = %self.log_path.display(), %cut, "could not cut back a failed write");
            }
            let _ = self
                .index_file
                .set_len((offset_entries * OFFSET_ENTRY_BYTES) as u64);
            let _ = self
                .time_file
                .set_len((time_entries * TIME_ENTRY_BYTES) as u64);
            return Err(error);
        }
        self.size += batch.len() as u64;
        Ok(position)
    }

    fn write_batch_and_entries(
        &self,
        batch: &[u8],
        position: u64,
        old_offset_entries: usize,
        old_time_entries: usize,
    ) -> Result<(), StorageError> {
        if self.offset_index.len() > old_offset_entries {
            let bytes = encode_offset_entries(&self.offset_index[old_offset_entries..]);
            self.index_file
                .write_at(&bytes, (old_offset_entries * OFFSET_ENTRY_BYTES) as u64)?;
        }
        if self.time_index.len() > old_time_entries {
            let bytes = encode_time_entries(&self.time_index[old_time_entries..]);
            self.time_file
                .write_at(&bytes, (old_time_entries * TIME_ENTRY_BYTES) as u64)?;
        }
        write_log(&self.log, batch, position)
            .map_err(|error| StorageError::io("appending to segment", &self.log_path, error))
    }

    /// Rewrites the index files from memory, keeping the first `offset_from`/`time_from`
    /// entries already on disk as they are.
    pub fn persist_indexes(
        &self,
        offset_from: usize,
        time_from: usize,
    ) -> Result<(), StorageError> {
        let offsets = encode_offset_entries(&self.offset_index);
        self.index_file
            .write_tail(&offsets, offset_from * OFFSET_ENTRY_BYTES)?;
        let times = encode_time_entries(&self.time_index);
        self.time_file
            .write_tail(&times, time_from * TIME_ENTRY_BYTES)
    }

    pub fn corrupt(&self, position: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: self.log_path.clone(),
            position,
            reason: reason.into(),
        }
    }

    /// Reads and checks the header of a batch that must lie wholly below `self.size`.
    fn checked_header(
        &self,
        reader: &mut HeaderReader<'_>,
        position: u64,
    ) -> Result<Option<BatchHeader>, StorageError> {
        let Some(header) = reader.header_at(position)? else {
            if position < self.size {
                return Err(self.corrupt(position, "partial batch header"));
            }
            return Ok(None);
        };
        header
            .check_fields(0)
            .map_err(|error| self.corrupt(position, error.to_string()))?;
        if position + header.total_bytes() as u64 > self.size {
            return Err(self.corrupt(position, "batch extends past the end of the segment"));
        }
        Ok(Some(header))
    }

    /// Position and header of the first batch whose last offset is >= `offset`.
    pub fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let rel = offset
            .saturating_sub(self.base_offset)
            .clamp(0, u32::MAX as i64) as u32;
        let start = floor_entry(&self.offset_index, rel).map_or(0, |entry| entry.pos as u64);
        let mut found = None;
        self.scan_from(start, |position, header| {
            if header.last_offset() >= offset {
                found = Some((position, *header));
            }
            found.is_some()
        })?;
        Ok(found)
    }

    /// Visits batch headers from `position` on until `visit` returns true or the segment ends.
    pub fn scan_from(
        &self,
        mut position: u64,
        mut visit: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<(), StorageError> {
        let mut reader = HeaderReader::new(&self.log, &self.log_path, self.size);
        while let Some(header) = self.checked_header(&mut reader, position)? {
            if visit(position, &header) {
                break;
            }
            position += header.total_bytes() as u64;
        }
        Ok(())
    }

    /// Appends to `out` whole batches starting with the one containing `offset`, none with a
    /// base offset >= `limit_offset`, within `budget` bytes unless `force_first` and the first
    /// batch alone is larger. Returns the offset after the last batch appended, if any.
    pub fn read_into(
        &self,
        out: &mut Vec<u8>,
        offset: i64,
        budget: usize,
        force_first: bool,
        limit_offset: i64,
    ) -> Result<Option<i64>, StorageError> {
        let Some((start, first)) = self.locate(offset)? else {
            return Ok(None);
        };
        if first.base_offset >= limit_offset {
            return Ok(None);
        }
        let first_bytes = first.total_bytes();
        if first_bytes > budget && !force_first {
            return Ok(None);
        }
        // The first indexed batch at or past the limit bounds what can be returned.
        let limit_rel = limit_offset
            .saturating_sub(self.base_offset)
            .clamp(0, u32::MAX as i64) as u32;
        let end = ceil_entry(&self.offset_index, limit_rel)
            .map(|entry| entry.pos as u64)
            .filter(|&position| position > start)
            .unwrap_or(self.size);
        let wanted = ((end - start) as usize).min(budget.max(first_bytes));
        let old_len = out.len();
        if out.capacity() == 0 {
            *out = vec![0u8; wanted]; // a zeroed allocation: lazily zeroed pages when large
        } else {
            out.resize(old_len + wanted, 0);
        }
        self.log
            .read_exact_at(&mut out[old_len..], start)
            .map_err(|error| StorageError::io("reading segment", &self.log_path, error))?;
        let mut taken = 0usize;
        let mut next_offset = None;
        while taken + BATCH_HEADER_BYTES <= wanted {
            let header = BatchHeader::parse(&out[old_len + taken..])
                .map_err(|error| self.corrupt(start + taken as u64, error.to_string()))?;
            header
                .check_fields(0)
                .map_err(|error| self.corrupt(start + taken as u64, error.to_string()))?;
            if header.base_offset >= limit_offset || taken + header.total_bytes() > wanted {
                break;
            }
            taken += header.total_bytes();
            next_offset = Some(header.last_offset() + 1);
        }
        out.truncate(old_len + taken);
        Ok(next_offset)
    }

    /// The first batch whose max timestamp is >= `timestamp`: (base offset, max timestamp).
    pub fn find_by_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        // Batches before the last time entry below the target are all older than it.
        let rel = last_time_entry_below(&self.time_index, timestamp).map_or(0, |entry| entry.rel);
        let start = floor_entry(&self.offset_index, rel).map_or(0, |entry| entry.pos as u64);
        let mut found = None;
        self.scan_from(start, |_, header| {
            if header.max_timestamp >= timestamp {
                found = Some((header.base_offset, header.max_timestamp));
            }
            found.is_some()
        })?;
        Ok(found)
    }

    /// The newest timestamp in the segment for time retention: the largest batch timestamp,
    /// or the log file's modification time when no batch has one.
    pub fn retention_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        let modified = self.log.metadata().and_then(|metadata| metadata.modified());
        modified
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(NO_TIMESTAMP, |elapsed| elapsed.as_millis() as i64)
    }

    /// Removes the files (log first, so a crash leaves orphan indexes, which open removes).
    pub fn remove_files(&self) -> Result<(), StorageError> {
        for path in [
            &self.log_path,
            self.index_file.path(),
            self.time_file.path(),
        ] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(StorageError::io("deleting", path, error)),
            }
        }
        Ok(())
    }
}

/// Reads batch headers through a small window, so that runs of small batches cost one read
/// and large batches cost one small read each (payloads are skipped).
pub(crate) struct HeaderReader<'a> {
    file: &'a File,
    path: &'a Path,
    limit: u64,
    window: Box<[u8; HEADER_WINDOW]>,
    window_start: u64,
    window_len: usize,
}

const HEADER_WINDOW: usize = 4096;

impl<'a> HeaderReader<'a> {
    pub fn new(file: &'a File, path: &'a Path, limit: u64) -> HeaderReader<'a> {
        HeaderReader {
            file,
            path,
            limit,
            window: Box::new([0u8; HEADER_WINDOW]),
            window_start: 0,
            window_len: 0,
        }
    }

    /// The header at `position`, or `None` if fewer than a header's bytes remain before the
    /// limit. The header is parsed, not checked.
    pub fn header_at(&mut self, position: u64) -> Result<Option<BatchHeader>, StorageError> {
        let header_end = position + BATCH_HEADER_BYTES as u64;
        if header_end > self.limit {
            return Ok(None);
        }
        let cached = position >= self.window_start
            && header_end <= self.window_start + self.window_len as u64;
        if !cached {
            let len = (self.limit - position).min(HEADER_WINDOW as u64) as usize;
            self.file
                .read_exact_at(&mut self.window[..len], position)
                .map_err(|error| StorageError::io("reading segment", self.path, error))?;
            self.window_start = position;
            self.window_len = len;
        }
        let at = (position - self.window_start) as usize;
        Ok(BatchHeader::parse(&self.window[at..self.window_len]).ok())
    }
}

/// Positioned write of a whole buffer. In tests, [`fault::fail_next_write_after`] makes it
/// write only part of the buffer and fail as a full disk would.
fn write_log(file: &File, bytes: &[u8], position: u64) -> std::io::Result<()> {
    #[cfg(test)]
    if let Some(partial) = fault::take() {
        let partial = partial.min(bytes.len());
        file.write_all_at(&bytes[..partial], position)?;
        return Err(std::io::Error::from_raw_os_error(28));
    }
    file.write_all_at(bytes, position)
}

#[cfg(test)]
pub(crate) mod fault {
    use std::cell::Cell;

    thread_local! {
        static FAIL_AFTER: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// The next log write on this thread writes `bytes` bytes and then fails with ENOSPC.
    pub fn fail_next_write_after(bytes: usize) {
        FAIL_AFTER.with(|cell| cell.set(Some(bytes)));
    }

    pub(super) fn take() -> Option<usize> {
        FAIL_AFTER.with(|cell| cell.take())
    }
}
