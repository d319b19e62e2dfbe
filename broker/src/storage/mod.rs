//! One partition's log on disk.
//!
//! A partition directory holds segments named by their base offset, zero-padded to 20 digits:
//!
//! * `00000000000000000000.log`: record batches exactly as produced (compressed payloads pass
//!   through untouched), with base offsets rewritten to the offsets this log assigned.
//!   Offsets are contiguous: each batch starts at the previous batch's last offset + 1.
//! * `.index`: sparse offset index, big-endian entries of (offset relative to the segment's
//!   base u32, byte position in the `.log` u32), one at the first batch written after every
//!   `index_interval_bytes` of log.
//! * `.timeindex`: big-endian entries of (timestamp i64, relative offset u32), written at the
//!   same points as offset index entries when the segment's largest timestamp grew since the
//!   last time entry. An entry (T, r) means: every batch of the segment before offset
//!   base + r has a max timestamp <= T. Timestamps and offsets strictly increase.
//! * one `recovery-point` file per directory: "CRP1", an i64 offset R and a CRC-32C of the
//!   preceding 12 bytes. Every segment whose base offset is below R was sealed and has been
//!   synced, log and indexes, so recovery trusts it (checking only its index and its tail).
//!
//! The log is single-writer: the partition's apply step calls [`PartitionLog::append`], which
//! assigns offsets. Readers call [`PartitionLog::read`] through `&self` (positioned reads, so
//! many can read at once under a read lock).
//!
//! Durability: `append` only writes (the page cache is the buffer); [`PartitionLog::sync`]
//! fdatasyncs every segment rolled since the last sync (with its indexes), the directory when
//! segments were created, and the active segment's log. Indexes of the active segment are
//! never synced: they are derived data, rebuilt on recovery.
//!
//! Recovery ([`PartitionLog::open`]): the last segment, and every segment at or above the
//! recovery point, is scanned from its start with each batch's length, offset continuity and
//! CRC-32C checked, and its indexes rebuilt. A trusted segment is checked from its last index
//! entry (which must point at a batch with the right base offset) to its end. The first bad
//! batch marks a torn tail: the file is truncated there and every later segment is deleted.

pub mod import;
mod index;
mod log;
mod recovery;
mod segment;
mod sync;

#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod recovery_tests;

use std::io;
use std::path::PathBuf;

pub use log::PartitionLog;
pub use sync::SyncHandle;

/// How a partition log is laid out and how long data is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Size at which the active segment is rolled (a single larger batch still gets a segment
    /// of its own). Capped at 4 GiB, the reach of the index's u32 positions.
    pub segment_bytes: u64,
    /// Bytes of log between two offset index entries.
    pub index_interval_bytes: u32,
    /// Delete old segments while the log would still be at least this big without them.
    pub retention_bytes: Option<u64>,
    /// Delete old segments whose newest batch is older than this.
    pub retention_ms: Option<i64>,
}

impl Default for LogConfig {
    /// Kafka's defaults: 1 GiB segments, an index entry every 4 KiB, no size limit, 7 days.
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 4096,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
        }
    }
}

/// Where [`PartitionLog::append`] put a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's maxTimestamp header field.
    pub max_timestamp: i64,
    /// Byte position of the batch inside its segment's `.log` file.
    pub position_bytes: u64,
}

/// Whole batches returned by [`PartitionLog::read`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// Concatenated record batches, each whole; empty when there was nothing to return.
    pub bytes: bytes::Bytes,
    /// The offset after the last returned batch (the requested offset if nothing was read).
    pub next_offset: i64,
}

/// What [`PartitionLog::enforce_retention`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub deleted_segments: usize,
    pub deleted_bytes: u64,
    /// Base offsets of the deleted segments.
    pub deleted_base_offsets: Vec<i64>,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file system call failed (a full disk is `ErrorKind::StorageFull`, see
    /// [`StorageError::is_disk_full`]).
    #[error("I/O error while {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The offset is below the log start offset.
    #[error("offset {offset} is out of range: the log starts at {log_start}")]
    OffsetOutOfRange { offset: i64, log_start: i64 },
    /// On-disk data that recovery accepted no longer reads back as valid batches.
    #[error("corrupt log data in {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// `append` was given something that is not one whole v2 batch.
    #[error("cannot append: {0}")]
    InvalidBatch(String),
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether this is ENOSPC (or a quota).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => {
                source.kind() == io::ErrorKind::StorageFull
                    || source.kind() == io::ErrorKind::QuotaExceeded
                    || source.raw_os_error() == Some(28)
            }
            _ => false,
        }
    }

    /// The Kafka error code for a client: OFFSET_OUT_OF_RANGE (1), CORRUPT_MESSAGE (2) for a
    /// bad batch given to append, KAFKA_STORAGE_ERROR (56) otherwise.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            StorageError::OffsetOutOfRange { .. } => 1,
            StorageError::InvalidBatch(_) => 2,
            StorageError::Io { .. } | StorageError::Corrupt { .. } => 56,
        }
    }
}
