//! A segment's sparse offset index and time index: kept in memory, mirrored to files that
//! are only ever appended to or rewritten whole. Both are derived data: recovery validates
//! them and rebuilds them from the log when they look wrong.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StorageError;
use crate::wire::record_batch::BATCH_HEADER_BYTES;

pub(crate) const OFFSET_ENTRY_BYTES: usize = 8;
pub(crate) const TIME_ENTRY_BYTES: usize = 12;

/// (offset relative to the segment base, byte position in the segment's log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel: u32,
    pub pos: u32,
}

/// Every batch before offset base + `rel` has a max timestamp <= `timestamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub rel: u32,
}

impl OffsetEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel.to_be_bytes());
        out.extend_from_slice(&self.pos.to_be_bytes());
    }
}

impl TimeEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.rel.to_be_bytes());
    }
}

/// The last entry whose relative offset is <= `rel`.
pub(crate) fn floor_entry(entries: &[OffsetEntry], rel: u32) -> Option<OffsetEntry> {
    let after = entries.partition_point(|entry| entry.rel <= rel);
    after.checked_sub(1).map(|at| entries[at])
}

/// The first entry whose relative offset is >= `rel`.
pub(crate) fn ceil_entry(entries: &[OffsetEntry], rel: u32) -> Option<OffsetEntry> {
    let at = entries.partition_point(|entry| entry.rel < rel);
    entries.get(at).copied()
}

/// The last time entry whose timestamp is < `timestamp`.
pub(crate) fn last_time_entry_below(entries: &[TimeEntry], timestamp: i64) -> Option<TimeEntry> {
    let after = entries.partition_point(|entry| entry.timestamp < timestamp);
    after.checked_sub(1).map(|at| entries[at])
}

/// Decodes an offset index, or `None` if it cannot be right for a log of `log_len` bytes:
/// not a whole number of entries, relative offsets or positions not strictly increasing,
/// positions closer than a batch header apart, or a position at or past the end of the log.
pub(crate) fn decode_offset_index(bytes: &[u8], log_len: u64) -> Option<Vec<OffsetEntry>> {
    if !bytes
        .chunks_exact(OFFSET_ENTRY_BYTES)
        .remainder()
        .is_empty()
    {
        return None;
    }
    let mut entries = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_BYTES);
    let mut previous: Option<OffsetEntry> = None;
    for raw in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
        let entry = OffsetEntry {
            rel: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            pos: u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
        };
        if entry.pos as u64 + BATCH_HEADER_BYTES as u64 > log_len {
            return None;
        }
        if let Some(previous) = previous {
            if entry.rel <= previous.rel
                || (entry.pos as u64) < previous.pos as u64 + BATCH_HEADER_BYTES as u64
            {
                return None;
            }
        }
        previous = Some(entry);
        entries.push(entry);
    }
    Some(entries)
}

/// Decodes a time index, or `None` if it is not a whole number of entries with strictly
/// increasing timestamps and relative offsets.
pub(crate) fn decode_time_index(bytes: &[u8]) -> Option<Vec<TimeEntry>> {
    if !bytes.chunks_exact(TIME_ENTRY_BYTES).remainder().is_empty() {
        return None;
    }
    let mut entries: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / TIME_ENTRY_BYTES);
    for raw in bytes.chunks_exact(TIME_ENTRY_BYTES) {
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&raw[..8]);
        let entry = TimeEntry {
            timestamp: i64::from_be_bytes(timestamp),
            rel: u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]),
        };
        if let Some(previous) = entries.last() {
            if entry.timestamp <= previous.timestamp || entry.rel <= previous.rel {
                return None;
            }
        }
        entries.push(entry);
    }
    Some(entries)
}

pub(crate) fn encode_offset_entries(entries: &[OffsetEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * OFFSET_ENTRY_BYTES);
    entries.iter().for_each(|entry| entry.encode(&mut out));
    out
}

pub(crate) fn encode_time_entries(entries: &[TimeEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TIME_ENTRY_BYTES);
    entries.iter().for_each(|entry| entry.encode(&mut out));
    out
}

/// One index file (either kind): positioned writes, no userspace buffer.
pub(crate) struct IndexFile {
    pub path: PathBuf,
    pub file: Arc<File>,
}

impl IndexFile {
    pub fn open(path: PathBuf, truncate: bool) -> Result<IndexFile, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(&path)
            .map_err(|error| StorageError::io("opening index", &path, error))?;
        Ok(IndexFile {
            path,
            file: Arc::new(file),
        })
    }

    /// The whole file, or `None` if it is longer than `max_len` (then it cannot be valid and is
    /// not read at all).
    pub fn read_all(&self, max_len: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let len = self.len()?;
        if len > max_len {
            return Ok(None);
        }
        let mut bytes = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(|error| StorageError::io("reading index", &self.path, error))?;
        Ok(Some(bytes))
    }

    pub fn len(&self) -> Result<u64, StorageError> {
        self.file
            .metadata()
            .map(|metadata| metadata.len())
            .map_err(|error| StorageError::io("reading size of index", &self.path, error))
    }

    pub fn write_at(&self, bytes: &[u8], position: u64) -> Result<(), StorageError> {
        self.file
            .write_all_at(bytes, position)
            .map_err(|error| StorageError::io("writing index", &self.path, error))
    }

    pub fn set_len(&self, len: u64) -> Result<(), StorageError> {
        self.file
            .set_len(len)
            .map_err(|error| StorageError::io("truncating index", &self.path, error))
    }

    /// Makes the file hold exactly `bytes[from..]` written at `from` on top of what is there.
    pub fn write_tail(&self, bytes: &[u8], from: usize) -> Result<(), StorageError> {
        if from < bytes.len() {
            self.write_at(&bytes[from..], from as u64)?;
        }
        self.set_len(bytes.len() as u64)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_round_trip_and_lookup() {
        let entries = vec![
            OffsetEntry { rel: 3, pos: 100 },
            OffsetEntry { rel: 10, pos: 5000 },
            OffsetEntry { rel: 20, pos: 9000 },
        ];
        let bytes = encode_offset_entries(&entries);
        assert_eq!(bytes.len(), 24);
        assert_eq!(decode_offset_index(&bytes, 10_000).unwrap(), entries);
        assert_eq!(floor_entry(&entries, 2), None);
        assert_eq!(floor_entry(&entries, 3), Some(entries[0]));
        assert_eq!(floor_entry(&entries, 15), Some(entries[1]));
        assert_eq!(floor_entry(&entries, 99), Some(entries[2]));
        assert_eq!(ceil_entry(&entries, 0), Some(entries[0]));
        assert_eq!(ceil_entry(&entries, 11), Some(entries[2]));
        assert_eq!(ceil_entry(&entries, 21), None);
    }

    #[test]
    fn offset_index_validation() {
        let ok = encode_offset_entries(&[OffsetEntry { rel: 1, pos: 100 }]);
        assert!(decode_offset_index(&ok, 161).is_some());
        assert!(
            decode_offset_index(&ok, 160).is_none(),
            "header must fit in the log"
        );
        assert!(
            decode_offset_index(&ok[..7], 1000).is_none(),
            "partial entry"
        );
        let zeros = vec![0u8; 16];
        assert!(
            decode_offset_index(&zeros, 1000).is_none(),
            "zero-filled index"
        );
        let backwards = encode_offset_entries(&[
            OffsetEntry { rel: 5, pos: 100 },
            OffsetEntry { rel: 4, pos: 300 },
        ]);
        assert!(decode_offset_index(&backwards, 1000).is_none());
        let too_close = encode_offset_entries(&[
            OffsetEntry { rel: 5, pos: 100 },
            OffsetEntry { rel: 6, pos: 120 },
        ]);
        assert!(decode_offset_index(&too_close, 1000).is_none());
        assert_eq!(decode_offset_index(&[], 0), Some(vec![]));
    }

    #[test]
    fn time_index_round_trip_and_lookup() {
        let entries = vec![
            TimeEntry {
                timestamp: 100,
                rel: 4,
            },
            TimeEntry {
                timestamp: 200,
                rel: 9,
            },
        ];
        let bytes = encode_time_entries(&entries);
        assert_eq!(decode_time_index(&bytes).unwrap(), entries);
        assert!(decode_time_index(&bytes[..11]).is_none());
        assert!(decode_time_index(&[0u8; 24]).is_none());
        assert_eq!(last_time_entry_below(&entries, 100), None);
        assert_eq!(last_time_entry_below(&entries, 101), Some(entries[0]));
        assert_eq!(last_time_entry_below(&entries, 1000), Some(entries[1]));
    }
}
