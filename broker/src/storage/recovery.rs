//! Scanning a segment's log to find where its valid batches end and to rebuild its indexes.

use std::os::unix::fs::FileExt;

use tracing::{info, warn};

use super::index::{decode_offset_index, decode_time_index, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use super::segment::Segment;
use super::StorageError;
use crate::wire::record_batch::{BatchHeader, BATCH_HEADER_BYTES, CRC_START, NO_TIMESTAMP};

/// Where a scan starts: a batch boundary, the offset expected there, and the largest
/// timestamp of the batches before it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanStart {
    pub position: u64,
    pub next_offset: i64,
    pub max_timestamp: i64,
}

impl ScanStart {
    pub fn beginning(segment: &Segment) -> ScanStart {
        ScanStart {
            position: 0,
            next_offset: segment.base_offset,
            max_timestamp: NO_TIMESTAMP,
        }
    }
}

/// What a scan cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TornTail {
    pub position: u64,
    pub offset: i64,
    pub dropped_bytes: u64,
    pub reason: String,
}

/// Scans from `start` to the physical end of the log file, checking each batch (header
/// fields, length within the file, base offset == expected next offset, and the CRC-32C when
/// `verify_crc`) and adding index entries in memory as appends would. The in-memory indexes
/// must already hold exactly the entries before `start`. The first bad batch ends the log:
/// the file is truncated there. Allocates at most one batch, bounded by the file size.
pub(crate) fn scan_tail(
    segment: &mut Segment,
    start: ScanStart,
    verify_crc: bool,
) -> Result<Option<TornTail>, StorageError> {
    let file_len = segment.file_len()?;
    segment.size = start.position;
    segment.next_offset = start.next_offset;
    segment.max_timestamp = start.max_timestamp;
    segment.bytes_since_index = 0;
    let mut position = start.position;
    let mut batch = Vec::new();
    let path = segment.log_path.clone();
    let read_error = |error| StorageError::io("recovering segment", &path, error);
    let reason = loop {
        let remaining = file_len.saturating_sub(position);
        if remaining == 0 {
            break None;
        }
        if remaining < BATCH_HEADER_BYTES as u64 {
            break Some(format!(
                "{remaining} trailing bytes, fewer than a batch header"
            ));
        }
        let mut raw = [0u8; BATCH_HEADER_BYTES];
        segment
            .log
            .read_exact_at(&mut raw, position)
            .map_err(read_error)?;
        let header = match BatchHeader::parse(&raw) {
            Ok(header) => header,
            Err(error) => break Some(error.to_string()),
        };
        if let Err(error) = header.check_fields(position as usize) {
            break Some(error.to_string());
        }
        let total = header.total_bytes() as u64;
        if total > remaining {
            break Some(format!(
                "batch of {total} bytes but only {remaining} bytes remain"
            ));
        }
        if header.base_offset != segment.next_offset {
            break Some(format!(
                "batch has base offset {} where {} was expected",
                header.base_offset, segment.next_offset
            ));
        }
        let last_rel = header.last_offset() - segment.base_offset;
        if last_rel > u32::MAX as i64 || position + total > u32::MAX as u64 {
            break Some("batch lies beyond what a segment can index".to_string());
        }
        if verify_crc {
            batch.resize(total as usize, 0);
            segment
                .log
                .read_exact_at(&mut batch, position)
                .map_err(read_error)?;
            let actual = crc32c::crc32c(&batch[CRC_START..]);
            if actual != header.crc {
                break Some(format!(
                    "CRC-32C mismatch (header {:#010x}, computed {actual:#010x})",
                    header.crc
                ));
            }
        }
        segment.note_batch(position, &header);
        position += total;
        segment.size = position;
    };
    let Some(reason) = reason else {
        return Ok(None);
    };
    let torn = TornTail {
        position,
        offset: segment.next_offset,
        dropped_bytes: file_len - position,
        reason,
    };
    warn!(
        path = %segment.log_path.display(),
        position = torn.position,
        offset = torn.offset,
        dropped_bytes = torn.dropped_bytes,
        reason = %torn.reason,
        "truncating the torn tail of a segment"
    );
    segment
        .log
        .set_len(position)
        .map_err(|error| StorageError::io("truncating segment", &segment.log_path, error))?;
    Ok(Some(torn))
}

/// Scans the whole segment from its start and rewrites both index files.
pub(crate) fn rebuild(
    segment: &mut Segment,
    verify_crc: bool,
) -> Result<Option<TornTail>, StorageError> {
    segment.reset_state();
    let torn = scan_tail(segment, ScanStart::beginning(segment), verify_crc)?;
    segment.persist_indexes(0, 0)?;
    Ok(torn)
}

/// Where to resume scanning given the in-memory indexes: the last offset index entry, with
/// the time entries trimmed to those at or before it (whose last timestamp is then the
/// largest before it). `header_base` is the base offset actually found at that entry, if it
/// was checked; a mismatch returns `None`.
fn resume_point(segment: &mut Segment, header_base: Option<i64>) -> Option<ScanStart> {
    let Some(last) = segment.offset_index.last().copied() else {
        segment.time_index.clear();
        return Some(ScanStart::beginning(segment));
    };
    let expected = segment.base_offset + last.rel as i64;
    if header_base.is_some_and(|found| found != expected) {
        return None;
    }
    segment.time_index.retain(|entry| entry.rel <= last.rel);
    let max_timestamp = segment
        .time_index
        .last()
        .map_or(NO_TIMESTAMP, |entry| entry.timestamp);
    Some(ScanStart {
        position: last.pos as u64,
        next_offset: expected,
        max_timestamp,
    })
}

/// Loads the segment's index files if they are consistent with the log (well-formed, within
/// the file, the last entry pointing at a batch with the right base offset, no time entry
/// past it). Returns where to resume scanning, or `None` when the indexes cannot be trusted.
fn load_indexes(segment: &mut Segment) -> Result<Option<ScanStart>, StorageError> {
    let log_len = segment.file_len()?;
    let max_entries = log_len / BATCH_HEADER_BYTES as u64 + 1;
    let Some(raw) = segment
        .index_file
        .read_all(max_entries * OFFSET_ENTRY_BYTES as u64)?
    else {
        return Ok(None);
    };
    let Some(offsets) = decode_offset_index(&raw, log_len) else {
        return Ok(None);
    };
    let Some(raw) = segment
        .time_file
        .read_all(max_entries * TIME_ENTRY_BYTES as u64)?
    else {
        return Ok(None);
    };
    let Some(times) = decode_time_index(&raw) else {
        return Ok(None);
    };
    if times.last().map(|entry| entry.rel) > offsets.last().map(|entry| entry.rel) {
        return Ok(None);
    }
    let mut found_base = None;
    if let Some(last) = offsets.last() {
        let mut raw = [0u8; BATCH_HEADER_BYTES];
        segment
            .log
            .read_exact_at(&mut raw, last.pos as u64)
            .map_err(|error| StorageError::io("recovering segment", &segment.log_path, error))?;
        match BatchHeader::parse(&raw) {
            Ok(header) if header.check_fields(0).is_ok() => found_base = Some(header.base_offset),
            _ => return Ok(None),
        }
    }
    segment.offset_index = offsets;
    segment.time_index = times;
    Ok(resume_point(segment, found_base))
}

/// The outcome of [`recover_segment`].
pub(crate) struct Recovered {
    pub torn: Option<TornTail>,
    pub rebuilt: bool,
}

/// Recovers a segment just opened from disk. A `trusted` segment (sealed and synced) is
/// checked from its last index entry on; any other, or a trusted one whose indexes do not
/// hold up, is scanned from its start with CRCs checked and its indexes rebuilt (and then
/// needs a sync before it can be trusted again: `rebuilt`).
pub(crate) fn recover_segment(
    segment: &mut Segment,
    trusted: bool,
) -> Result<Recovered, StorageError> {
    let mut torn_first = None;
    if trusted {
        if let Some(start) = load_indexes(segment)? {
            let (offset_entries, time_entries) =
                (segment.offset_index.len(), segment.time_index.len());
            match scan_tail(segment, start, true)? {
                None => {
                    segment.persist_indexes(offset_entries, time_entries)?;
                    return Ok(Recovered {
                        torn: None,
                        rebuilt: false,
                    });
                }
                Some(torn) => {
                    warn!(
                        path = %segment.log_path.display(),
                        position = torn.position,
                        "a synced segment has a bad tail; rescanning it whole"
                    );
                    torn_first = Some(torn);
                }
            }
        } else {
            info!(path = %segment.log_path.display(), "segment indexes inconsistent; rebuilding");
        }
    }
    let torn = rebuild(segment, true)?.or(torn_first);
    Ok(Recovered {
        torn,
        rebuilt: true,
    })
}

/// Cuts the segment at `position` (a batch boundary) and brings its indexes and state in line,
/// rescanning only from the last index entry that survives.
pub(crate) fn truncate_segment(segment: &mut Segment, position: u64) -> Result<(), StorageError> {
    segment
        .log
        .set_len(position)
        .map_err(|error| StorageError::io("truncating segment", &segment.log_path, error))?;
    segment
        .offset_index
        .retain(|entry| (entry.pos as u64) < position);
    let start = resume_point(segment, None).unwrap_or_else(|| ScanStart::beginning(segment));
    let (offset_entries, time_entries) = (segment.offset_index.len(), segment.time_index.len());
    if let Some(torn) = scan_tail(segment, start, false)? {
        warn!(reason = %torn.reason, "unexpected bad batch while truncating a segment");
    }
    segment.persist_indexes(offset_entries, time_entries)
}
