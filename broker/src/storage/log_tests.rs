//! Unit tests of [`PartitionLog`]: appends, reads, retention, truncation. Recovery tests are
//! in `recovery_tests.rs`, the proptest model in `model_tests.rs`.

use super::segment::segment_file;
use super::{LogConfig, PartitionLog, StorageError};
use crate::wire::record_batch::{build_test_batch, validate_batches, BatchHeader};

pub(crate) fn config(segment_bytes: u64, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        retention_bytes: None,
        retention_ms: None,
    }
}

/// A batch of `records` records with values of `value_len` bytes, stamped `timestamp`.
pub(crate) fn batch(records: usize, value_len: usize, timestamp: i64) -> Vec<u8> {
    let value = vec![b'v'; value_len];
    let pairs: Vec<(&[u8], &[u8])> = (0..records).map(|_| (&b"key"[..], &value[..])).collect();
    build_test_batch(0, &pairs, -1, -1, -1, timestamp)
}

/// Appends and returns each batch as stored (base offset rewritten).
pub(crate) fn append_all(log: &mut PartitionLog, batches: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    batches
        .into_iter()
        .map(|mut bytes| {
            let info = log.append(&mut bytes).unwrap();
            assert_eq!(
                BatchHeader::parse(&bytes).unwrap().base_offset,
                info.base_offset
            );
            bytes
        })
        .collect()
}

/// Reads the whole log in chunks of `max_bytes` and returns the batches.
pub(crate) fn read_everything(log: &PartitionLog, max_bytes: usize) -> Vec<Vec<u8>> {
    let mut offset = log.log_start_offset();
    let mut batches = Vec::new();
    loop {
        let result = log.read(offset, max_bytes, i64::MAX).unwrap();
        if result.bytes.is_empty() {
            assert_eq!(result.next_offset, offset);
            return batches;
        }
        let headers = validate_batches(&result.bytes, usize::MAX).unwrap();
        let mut at = 0;
        for header in &headers {
            batches.push(result.bytes[at..at + header.total_bytes()].to_vec());
            at += header.total_bytes();
        }
        assert_eq!(
            result.next_offset,
            headers.last().unwrap().last_offset() + 1
        );
        offset = result.next_offset;
    }
}

pub(crate) fn varied_batches(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| batch(1 + i % 4, (i * 37) % 300, 1_000 + i as i64))
        .collect()
}

#[test]
fn append_assigns_offsets_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (0, 0, 0)
    );
    let mut first = batch(3, 10, 5);
    let info = log.append(&mut first).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.max_timestamp),
        (0, 2, 5)
    );
    assert_eq!(info.position_bytes, 0);
    let mut second = batch(2, 10, 6);
    let info = log.append(&mut second).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (3, 4));
    assert_eq!(info.position_bytes, first.len() as u64);
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.size_bytes(), (first.len() + second.len()) as u64);
    let result = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(result.bytes, [first.clone(), second.clone()].concat());
    assert_eq!(result.next_offset, 5);
    // An offset inside a batch returns that whole batch.
    let result = log.read(4, 1 << 20, i64::MAX).unwrap();
    assert_eq!(result.bytes, second);
}

#[test]
fn append_rejects_what_is_not_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let mut two = [batch(1, 1, 1), batch(1, 1, 1)].concat();
    assert!(matches!(
        log.append(&mut two),
        Err(StorageError::InvalidBatch(_))
    ));
    let mut short = vec![0u8; 10];
    assert!(matches!(
        log.append(&mut short),
        Err(StorageError::InvalidBatch(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn round_trip_across_many_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(2048, 256)).unwrap();
    let stored = append_all(&mut log, varied_batches(300));
    assert!(log.segment_count() > 20, "{} segments", log.segment_count());
    for max_bytes in [1, 500, 3000, 1 << 20] {
        let read = read_everything(&log, max_bytes);
        let first_difference = read.iter().zip(&stored).position(|(a, b)| a != b);
        if let Some(at) = first_difference {
            let got = BatchHeader::parse(&read[at]).unwrap();
            let want = BatchHeader::parse(&stored[at]).unwrap();
            panic!("max_bytes {max_bytes}: batch {at}: got {got:?} (len {}), want {want:?} (len {}), segments {:?}", read[at].len(), stored[at].len(), log.segment_base_offsets());
        }
        assert_eq!(read.len(), stored.len(), "max_bytes {max_bytes}");
    }
    // Every offset returns the batch containing it first.
    let mut base = 0;
    for bytes in &stored {
        let header = BatchHeader::parse(bytes).unwrap();
        for offset in base..=header.last_offset() {
            let result = log.read(offset, 1, i64::MAX).unwrap();
            assert_eq!(&result.bytes[..], &bytes[..], "offset {offset}");
        }
        base = header.last_offset() + 1;
    }
    let end = log.log_end_offset();
    let size = log.size_bytes();
    let segments = log.segment_count();
    log.sync().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), config(2048, 256)).unwrap();
    assert_eq!(
        (log.log_end_offset(), log.size_bytes(), log.segment_count()),
        (end, size, segments)
    );
    assert_eq!(read_everything(&log, 4096), stored);
}

#[test]
fn a_batch_larger_than_a_segment_gets_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1000, 100)).unwrap();
    let stored = append_all(
        &mut log,
        vec![batch(1, 10, 1), batch(2, 3000, 2), batch(1, 10, 3)],
    );
    assert_eq!(log.segment_count(), 3);
    assert_eq!(log.segment_base_offsets(), vec![0, 1, 3]);
    assert_eq!(read_everything(&log, 1 << 20), stored);
}

#[test]
fn read_returns_an_oversized_first_batch_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let stored = append_all(&mut log, vec![batch(5, 1000, 1), batch(1, 10, 2)]);
    let result = log.read(0, 100, i64::MAX).unwrap();
    assert_eq!(result.bytes, stored[0]);
    assert_eq!(result.next_offset, 5);
    let result = log.read(0, 0, i64::MAX).unwrap();
    assert_eq!(result.bytes, stored[0]);
    // Exactly enough room for both.
    let both = stored[0].len() + stored[1].len();
    assert_eq!(log.read(0, both, i64::MAX).unwrap().bytes, stored.concat());
    assert_eq!(log.read(0, both - 1, i64::MAX).unwrap().bytes, stored[0]);
}

#[test]
fn read_is_capped_by_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 64)).unwrap();
    // Batches of 2 records: offsets 0-1, 2-3, 4-5, ...
    let stored = append_all(&mut log, (0..50).map(|i| batch(2, 50, i)).collect());
    for high_watermark in 0..=100 {
        let result = log.read(0, 1 << 20, high_watermark).unwrap();
        let expected = (high_watermark as usize).div_ceil(2);
        assert_eq!(
            result.bytes,
            stored[..expected].concat(),
            "hw {high_watermark}"
        );
        let next = if expected == 0 {
            0
        } else {
            expected as i64 * 2
        };
        assert_eq!(result.next_offset, next);
    }
    let result = log.read(10, 1 << 20, 10).unwrap();
    assert!(result.bytes.is_empty());
    assert_eq!(result.next_offset, 10);
}

#[test]
fn read_out_of_range_and_at_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(500, 64)).unwrap();
    append_all(&mut log, varied_batches(30));
    let end = log.log_end_offset();
    let result = log.read(end, 1000, i64::MAX).unwrap();
    assert!(result.bytes.is_empty());
    assert_eq!(result.next_offset, end);
    assert!(log
        .read(end + 100, 1000, i64::MAX)
        .unwrap()
        .bytes
        .is_empty());
    log.set_config(LogConfig {
        retention_bytes: Some(0),
        ..config(500, 64)
    });
    let outcome = log.enforce_retention(0).unwrap();
    assert!(outcome.deleted_segments > 0);
    let start = log.log_start_offset();
    assert!(start > 0);
    match log.read(start - 1, 1000, i64::MAX) {
        Err(StorageError::OffsetOutOfRange { offset, log_start }) => {
            assert_eq!((offset, log_start), (start - 1, start));
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert!(!log.read(start, 1000, i64::MAX).unwrap().bytes.is_empty());
}

#[test]
fn offset_for_timestamp_finds_the_first_batch_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(2500, 150)).unwrap();
    // Timestamps go up and down, like producers with skewed clocks.
    let timestamps: Vec<i64> = (0..200)
        .map(|i| 10_000 + i * 10 + ((i * 7919) % 13) * 25)
        .collect();
    let mut batches = Vec::new();
    for &timestamp in &timestamps {
        let mut bytes = batch(2, 40, timestamp);
        let info = log.append(&mut bytes).unwrap();
        batches.push((info.base_offset, timestamp));
    }
    assert!(log.segment_count() > 5);
    let check = |log: &PartitionLog| {
        for target in (9_990..=12_500)
            .step_by(3)
            .chain([i64::MIN, -1, 0, i64::MAX])
        {
            let expected = batches
                .iter()
                .find(|(_, timestamp)| *timestamp >= target)
                .copied();
            assert_eq!(
                log.offset_for_timestamp(target).unwrap(),
                expected,
                "target {target}"
            );
        }
    };
    check(&log);
    log.sync().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), config(2500, 150)).unwrap();
    check(&log);
}

#[test]
fn retention_by_bytes_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1000, 100)).unwrap();
    let stored = append_all(&mut log, (0..40).map(|i| batch(1, 200, i)).collect());
    let before = log.segment_count();
    let size = log.size_bytes();
    log.set_config(LogConfig {
        retention_bytes: Some(size - 1),
        ..config(1000, 100)
    });
    // Deleting the oldest segment would leave less than size - 1: nothing goes.
    assert_eq!(log.enforce_retention(0).unwrap().deleted_segments, 0);
    log.set_config(LogConfig {
        retention_bytes: Some(2500),
        ..config(1000, 100)
    });
    let outcome = log.enforce_retention(0).unwrap();
    assert!(outcome.deleted_segments > 0);
    assert_eq!(log.segment_count(), before - outcome.deleted_segments);
    assert!(log.size_bytes() >= 2500);
    assert_eq!(log.size_bytes(), size - outcome.deleted_bytes);
    assert_eq!(outcome.log_start_offset, log.log_start_offset());
    assert_eq!(outcome.deleted_base_offsets[0], 0);
    for base in &outcome.deleted_base_offsets {
        assert!(!segment_file(dir.path(), *base, "log").exists());
        assert!(!segment_file(dir.path(), *base, "index").exists());
    }
    let start = log.log_start_offset() as usize;
    assert_eq!(read_everything(&log, 1 << 20), stored[start..].to_vec());
    // Retention never deletes the active segment.
    log.set_config(LogConfig {
        retention_bytes: Some(0),
        ..config(1000, 100)
    });
    log.enforce_retention(0).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 40);
    drop(log);
    let log = PartitionLog::open(dir.path(), config(1000, 100)).unwrap();
    assert_eq!((log.segment_count(), log.log_end_offset()), (1, 40));
}

#[test]
fn retention_by_time_uses_the_newest_timestamp_of_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1000, 100)).unwrap();
    append_all(
        &mut log,
        (0..40).map(|i| batch(1, 200, 1_000 * i)).collect(),
    );
    let retention = LogConfig {
        retention_ms: Some(5_000),
        ..config(1000, 100)
    };
    log.set_config(retention);
    // At now = 20_000, segments whose newest batch is before 15_000 go.
    let outcome = log.enforce_retention(20_000).unwrap();
    assert!(outcome.deleted_segments > 0);
    let start = log.log_start_offset();
    assert!(start <= 15, "start {start}");
    // The batch just before the new start was older than the cut.
    assert!((start - 1) * 1_000 < 15_000);
    // The high watermark bound keeps uncommitted segments.
    let outcome = log.enforce_retention_below(i64::MAX, start + 1).unwrap();
    assert_eq!(outcome.deleted_segments, 0);
    let outcome = log.enforce_retention(i64::MAX / 2).unwrap();
    assert!(outcome.deleted_segments > 0);
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn truncate_to_drops_the_tail_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1500, 100);
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    // Batches of 3 records: 0-2, 3-5, ...
    let stored = append_all(
        &mut log,
        (0..60).map(|i| batch(3, 30 + i, i as i64)).collect(),
    );
    let segments = log.segment_count();
    log.truncate_to(1_000).unwrap(); // past the end: nothing
    assert_eq!(log.log_end_offset(), 180);
    log.truncate_to(150).unwrap(); // a batch boundary
    assert_eq!(log.log_end_offset(), 150);
    assert_eq!(read_everything(&log, 1 << 20), stored[..50].to_vec());
    assert!(log.segment_count() < segments);
    log.truncate_to(100).unwrap(); // inside batch 99-101: cut at 99
    assert_eq!(log.log_end_offset(), 99);
    let size: usize = stored[..33].iter().map(Vec::len).sum();
    assert_eq!(log.size_bytes(), size as u64);
    let info = log.append(&mut batch(1, 5, 7)).unwrap();
    assert_eq!(info.base_offset, 99);
    let mut expected = stored[..33].to_vec();
    expected.push(log.read(99, 1 << 20, i64::MAX).unwrap().bytes.to_vec());
    drop(log);
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    assert_eq!(read_everything(&log, 1 << 20), expected);
    // To a segment's base: that segment stays, empty, as the active one.
    let base = log.segment_base_offsets()[1];
    log.truncate_to(base).unwrap();
    assert_eq!(log.log_end_offset(), base);
    assert_eq!(*log.segment_base_offsets().last().unwrap(), base);
    // Below the start: everything goes and the log restarts there.
    log.set_config(LogConfig {
        retention_bytes: Some(0),
        ..cfg.clone()
    });
    log.enforce_retention(0).unwrap();
    log.set_config(cfg.clone());
    log.truncate_to(log.log_start_offset()).unwrap();
    assert_eq!(log.size_bytes(), 0);
    log.truncate_to(2).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.segment_count()
        ),
        (2, 2, 1)
    );
    assert_eq!(log.append(&mut batch(1, 5, 7)).unwrap().base_offset, 2);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 3));
}

#[test]
fn scan_headers_visits_every_batch_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1000, 100)).unwrap();
    let stored = append_all(&mut log, varied_batches(50));
    let headers: Vec<BatchHeader> = stored
        .iter()
        .map(|bytes| BatchHeader::parse(bytes).unwrap())
        .collect();
    let mut seen = Vec::new();
    log.scan_headers(0, |header| seen.push(*header)).unwrap();
    assert_eq!(seen, headers);
    let from = headers[23].base_offset + 1;
    assert!(headers[23].record_count > 1);
    let mut seen = Vec::new();
    log.scan_headers(from, |header| seen.push(*header)).unwrap();
    assert_eq!(seen, headers[23..].to_vec());
}

#[test]
fn delete_removes_the_directory() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("topic-0");
    let mut log = PartitionLog::open(&dir, LogConfig::default()).unwrap();
    append_all(&mut log, varied_batches(3));
    assert!(dir.exists());
    log.delete().unwrap();
    assert!(!dir.exists());
}

#[test]
fn stray_files_are_ignored_and_orphan_indexes_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    std::fs::write(segment_file(dir.path(), 500, "index"), b"12345678").unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert!(!segment_file(dir.path(), 500, "index").exists());
    assert!(dir.path().join("notes.txt").exists());
    append_all(&mut log, varied_batches(3));
    assert_eq!(log.log_end_offset(), 1 + 2 + 3);
}
