//! Segment files written outside the log, by a snapshot's staging: their index files and the
//! recovery point, built from bytes the writer already holds and validated in memory.
//!
//! Without them, opening the directory would scan every segment from its start, reading the
//! whole replica back and checking each batch's CRC-32C again, to rebuild what the writer
//! knew (about a second per 600 MB on the project's machines). With them, recovery trusts
//! the segments below the recovery point as it trusts segments the log sealed and synced
//! itself: it checks their indexes and tails, and scans only the last segment.

use std::path::{Path, PathBuf};

use super::segment::{segment_file, Segment, INDEX_SUFFIX, TIME_INDEX_SUFFIX};
use super::sync::{write_recovery_point, RECOVERY_POINT_FILE};
use super::{LogConfig, StorageError};
use crate::wire::record_batch::BatchHeader;

/// Writes the offset and time index files of the segment at `base_offset` in `dir`, whose
/// `.log` file holds exactly `bytes`: whole record batches, checked by the caller, with
/// contiguous offsets from `base_offset`. Returns the paths of the two index files, which
/// the caller syncs with the log file before [`trust_segments_below`] vouches for them.
pub fn write_segment_indexes(
    dir: &Path,
    base_offset: i64,
    bytes: &[u8],
) -> Result<[PathBuf; 2], StorageError> {
    // Any index interval gives a valid sparse index; the log's own appends continue with
    // its configured one.
    let interval = LogConfig::default().index_interval_bytes;
    let mut segment = Segment::open(dir, base_offset, interval, false)?;
    let mut position = 0;
    while position < bytes.len() {
        let header = BatchHeader::parse(&bytes[position..])
            .map_err(|error| segment.corrupt(position as u64, error.to_string()))?;
        let end = position + header.total_bytes();
        if end > bytes.len() || header.base_offset != segment.next_offset {
            return Err(segment.corrupt(
                position as u64,
                format!(
                    "batch at offset {} ({} bytes) does not continue offset {} within {} bytes",
                    header.base_offset,
                    header.total_bytes(),
                    segment.next_offset,
                    bytes.len()
                ),
            ));
        }
        segment.note_batch(position as u64, &header);
        position = end;
    }
    segment.persist_indexes(0, 0)?;
    Ok([
        segment_file(dir, base_offset, INDEX_SUFFIX),
        segment_file(dir, base_offset, TIME_INDEX_SUFFIX),
    ])
}

/// Records that every segment of `dir` below `base_offset` is whole and synced, log and
/// indexes: opening the log then trusts them. Written and synced; the caller syncs `dir`.
pub fn trust_segments_below(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    write_recovery_point(&dir.join(RECOVERY_POINT_FILE), base_offset, true)
}

#[cfg(test)]
mod tests {
    use super::super::log_tests::{append_all, config, read_everything, varied_batches};
    use super::super::segment::LOG_SUFFIX;
    use super::super::PartitionLog;
    use super::*;
    use crate::wire::record_batch::BATCH_HEADER_BYTES;

    /// A log of several segments written by appends, with the default index interval.
    fn appended_log(dir: &Path) -> (PartitionLog, Vec<Vec<u8>>) {
        let interval = LogConfig::default().index_interval_bytes;
        let mut log = PartitionLog::open(dir, config(16 * 1024, interval)).unwrap();
        let stored = append_all(&mut log, varied_batches(300));
        log.sync().unwrap();
        assert!(log.segment_count() > 5, "{} segments", log.segment_count());
        (log, stored)
    }

    #[test]
    fn imported_segments_get_the_indexes_appends_write_and_open_trusted() {
        let (source, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (log, stored) = appended_log(source.path());
        let bases = log.segment_base_offsets();
        for &base in &bases {
            let bytes = std::fs::read(segment_file(source.path(), base, LOG_SUFFIX)).unwrap();
            std::fs::write(segment_file(target.path(), base, LOG_SUFFIX), &bytes).unwrap();
            write_segment_indexes(target.path(), base, &bytes).unwrap();
            for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                assert_eq!(
                    std::fs::read(segment_file(target.path(), base, suffix)).unwrap(),
                    std::fs::read(segment_file(source.path(), base, suffix)).unwrap(),
                    "{suffix} of the segment at {base}"
                );
            }
        }
        trust_segments_below(target.path(), *bases.last().unwrap()).unwrap();
        let imported = PartitionLog::open(target.path(), log.config().clone()).unwrap();
        assert_eq!(imported.segment_base_offsets(), bases);
        assert_eq!(imported.log_end_offset(), log.log_end_offset());
        assert_eq!(read_everything(&imported, 4096), stored);
    }

    /// The point of importing: opening reads a trusted segment's index and tail, not its
    /// every byte. A record byte flipped at the start of the first segment goes unnoticed (the importer
    /// checked the batches before writing them); without the recovery point, the open scans
    /// every segment, finds the bad CRC and cuts the log there.
    #[test]
    fn segments_below_the_recovery_point_are_not_read_back() {
        let source = tempfile::tempdir().unwrap();
        let (log, _stored) = appended_log(source.path());
        let bases = log.segment_base_offsets();
        for trusted in [true, false] {
            let target = tempfile::tempdir().unwrap();
            for &base in &bases {
                let mut bytes =
                    std::fs::read(segment_file(source.path(), base, LOG_SUFFIX)).unwrap();
                write_segment_indexes(target.path(), base, &bytes).unwrap();
                if base == 0 {
                    // Inside the first batch's records, long before the last index entry.
                    bytes[BATCH_HEADER_BYTES + 8] ^= 0xff;
                }
                std::fs::write(segment_file(target.path(), base, LOG_SUFFIX), &bytes).unwrap();
            }
            if trusted {
                trust_segments_below(target.path(), *bases.last().unwrap()).unwrap();
            }
            let opened = PartitionLog::open(target.path(), log.config().clone()).unwrap();
            if trusted {
                assert_eq!(opened.log_end_offset(), log.log_end_offset());
            } else {
                assert!(
                    opened.log_end_offset() < bases[1],
                    "cut inside the first segment"
                );
            }
        }
    }

    #[test]
    fn a_gap_in_offsets_or_a_cut_batch_is_refused() {
        let (source, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_log, stored) = appended_log(source.path());
        let gap = [stored[0].clone(), stored[2].clone()].concat();
        let error = write_segment_indexes(target.path(), 0, &gap).unwrap_err();
        assert!(error.to_string().contains("does not continue"), "{error}");
        let cut = &stored[0][..stored[0].len() - 1];
        let error = write_segment_indexes(target.path(), 0, cut).unwrap_err();
        assert!(error.to_string().contains("does not continue"), "{error}");
    }
}
