//! Recovery tests: torn tails, flipped bytes, damaged indexes, the recovery point, failed
//! writes.

use std::fs::OpenOptions;
use std::path::Path;

use super::log_tests::{append_all, batch, config, read_everything, varied_batches};
use super::segment::{fault, segment_file};
use super::sync::{read_recovery_point, RECOVERY_POINT_FILE};
use super::PartitionLog;
use crate::wire::record_batch::BatchHeader;

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn cut_file(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn flip_byte(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    byte[0] ^= 0x5a;
    file.write_all_at(&byte, at).unwrap();
}

#[test]
fn recovery_truncates_a_torn_tail_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 128)).unwrap();
    let stored = append_all(&mut log, varied_batches(12));
    drop(log);
    let path = segment_file(dir.path(), 0, "log");
    let pristine = std::fs::read(&path).unwrap();
    let ends: Vec<usize> = stored
        .iter()
        .scan(0, |end, bytes| {
            Some(*end + bytes.len()).inspect(|e| *end = *e)
        })
        .collect();
    for cut in (0..=pristine.len()).step_by(7).chain([pristine.len() - 1]) {
        std::fs::write(&path, &pristine[..cut]).unwrap();
        let mut log = PartitionLog::open(dir.path(), config(1 << 20, 128)).unwrap();
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        assert_eq!(
            read_everything(&log, 1 << 20),
            stored[..whole].to_vec(),
            "cut {cut}"
        );
        assert_eq!(
            file_len(&path),
            ends[..whole].last().copied().unwrap_or(0) as u64
        );
        let expected_end: i64 = stored[..whole]
            .iter()
            .map(|bytes| BatchHeader::parse(bytes).unwrap().record_count as i64)
            .sum();
        assert_eq!(log.log_end_offset(), expected_end);
        // The next append continues right there.
        let info = log.append(&mut batch(1, 5, 99)).unwrap();
        assert_eq!(info.base_offset, expected_end);
        assert_eq!(
            info.position_bytes,
            ends[..whole].last().copied().unwrap_or(0) as u64
        );
    }
}

#[test]
fn recovery_stops_at_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 128)).unwrap();
    let stored = append_all(&mut log, varied_batches(8));
    drop(log);
    let path = segment_file(dir.path(), 0, "log");
    let pristine = std::fs::read(&path).unwrap();
    let last_start = (pristine.len() - stored[7].len()) as u64;
    let middle_start = stored[..4].iter().map(Vec::len).sum::<usize>() as u64;
    // Every byte but the partition leader epoch (12..16, outside the CRC like Kafka's).
    for (start, kept) in [(last_start, 7), (middle_start, 4)] {
        let len = stored[kept].len() as u64;
        for at in (0..len).filter(|at| !(12..16).contains(at)) {
            std::fs::write(&path, &pristine).unwrap();
            flip_byte(&path, start + at);
            let log = PartitionLog::open(dir.path(), config(1 << 20, 128)).unwrap();
            assert_eq!(
                read_everything(&log, 1 << 20),
                stored[..kept].to_vec(),
                "byte {at}"
            );
            assert_eq!(file_len(&path), start);
        }
    }
}

#[test]
fn a_torn_sealed_segment_drops_every_later_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1000, 100)).unwrap();
    let stored = append_all(&mut log, varied_batches(40));
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 4);
    drop(log); // never synced: no segment is trusted
    let victim = segment_file(dir.path(), bases[2], "log");
    cut_file(&victim, file_len(&victim) - 1);
    let log = PartitionLog::open(dir.path(), config(1000, 100)).unwrap();
    assert_eq!(log.segment_count(), 3);
    let kept = read_everything(&log, 1 << 20);
    assert_eq!(kept, stored[..kept.len()].to_vec());
    assert!(!segment_file(dir.path(), bases[3], "log").exists());
    assert_eq!(
        log.log_end_offset(),
        BatchHeader::parse(kept.last().unwrap())
            .unwrap()
            .last_offset()
            + 1
    );
}

#[test]
fn indexes_are_rebuilt_identically_when_missing_or_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(3000, 200);
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let stored = append_all(&mut log, varied_batches(120));
    let bases = log.segment_base_offsets();
    log.sync().unwrap();
    drop(log);
    let index_files: Vec<_> = bases
        .iter()
        .flat_map(|&base| {
            ["index", "timeindex"].map(|suffix| segment_file(dir.path(), base, suffix))
        })
        .collect();
    let originals: Vec<Vec<u8>> = index_files
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    assert!(originals.iter().any(|bytes| !bytes.is_empty()));
    let damages: [&dyn Fn(&Path); 5] = [
        &|path| std::fs::remove_file(path).unwrap(),
        &|path| std::fs::write(path, b"garbage!garbage!garbage").unwrap(),
        &|path| std::fs::write(path, vec![0u8; 64]).unwrap(),
        &|path| std::fs::write(path, vec![0xffu8; 48]).unwrap(),
        &|path| cut_file(path, file_len(path) / 2),
    ];
    for (which, damage) in damages.iter().enumerate() {
        for path in &index_files {
            damage(path);
        }
        let log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(read_everything(&log, 700), stored, "damage {which}");
        for (path, original) in index_files.iter().zip(&originals) {
            assert_eq!(
                &std::fs::read(path).unwrap(),
                original,
                "damage {which}: {path:?}"
            );
        }
    }
}

#[test]
fn sync_writes_a_recovery_point_after_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1000, 100)).unwrap();
    append_all(&mut log, varied_batches(30));
    assert_eq!(read_recovery_point(dir.path()), None);
    let handle = log.sync_handle();
    handle.sync().unwrap();
    let active = *log.segment_base_offsets().last().unwrap();
    assert_eq!(read_recovery_point(dir.path()), Some(active));
    append_all(&mut log, varied_batches(30));
    log.sync().unwrap();
    let active = *log.segment_base_offsets().last().unwrap();
    assert_eq!(read_recovery_point(dir.path()), Some(active));
    // Truncating below it lowers it first.
    let base = log.segment_base_offsets()[2];
    log.truncate_to(base + 1).unwrap();
    assert_eq!(read_recovery_point(dir.path()), Some(base));
    // A garbage recovery point only costs a full scan.
    drop(log);
    std::fs::write(dir.path().join(RECOVERY_POINT_FILE), b"nonsense").unwrap();
    let log = PartitionLog::open(dir.path(), config(1000, 100)).unwrap();
    assert!((base..=base + 1).contains(&log.log_end_offset()));
}

#[test]
fn trusted_segment_with_a_bad_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(3000, 200);
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let stored = append_all(&mut log, varied_batches(80));
    log.sync().unwrap();
    let bases = log.segment_base_offsets();
    drop(log);
    // Plausible-looking but wrong: the last entry points at a batch with another offset.
    let index = segment_file(dir.path(), bases[0], "index");
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(bytes.len() >= 8);
    let at = bytes.len() - 8;
    bytes[at + 3] = bytes[at + 3].wrapping_add(1);
    std::fs::write(&index, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(read_everything(&log, 1 << 20), stored);
    assert_ne!(std::fs::read(&index).unwrap(), bytes);
}

#[test]
fn a_failed_write_leaves_the_log_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, 64);
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let mut stored = append_all(&mut log, varied_batches(10));
    let size = log.size_bytes();
    let path = segment_file(dir.path(), 0, "log");
    let index = segment_file(dir.path(), 0, "index");
    let index_len = file_len(&index);
    let mut big = batch(4, 500, 1);
    fault::fail_next_write_after(700);
    let error = log.append(&mut big).unwrap_err();
    assert!(error.is_disk_full(), "{error}");
    assert_eq!(error.kafka_error_code(), 56);
    assert!(error.to_string().contains("appending"), "{error}");
    assert_eq!(log.size_bytes(), size);
    assert_eq!(file_len(&path), size);
    assert_eq!(file_len(&index), index_len);
    assert_eq!(read_everything(&log, 1 << 20), stored);
    let mut next = batch(1, 10, 2);
    let info = log.append(&mut next).unwrap();
    assert_eq!(info.position_bytes, size);
    stored.push(next);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(read_everything(&log, 1 << 20), stored);
}

/// Pages of a log file still in the page cache, by whether they lie below `boundary_bytes`.
fn cached_below_and_above(path: &Path, boundary_bytes: u64) -> (usize, usize) {
    let pages = crate::page_cache::residency::cached_pages(path);
    let boundary = usize::try_from(boundary_bytes / crate::page_cache::PAGE_BYTES).unwrap();
    let below = pages[..boundary].iter().filter(|page| **page).count();
    let above = pages[boundary..].iter().filter(|page| **page).count();
    (below, pages.len() - boundary - above)
}

#[test]
fn a_sync_drops_the_synced_log_from_the_page_cache_but_its_newest_bytes() {
    const MIB: usize = 1024 * 1024;
    let tail = crate::page_cache::PARTITION_TAIL_CACHED_BYTES;
    let dir = crate::page_cache::residency::disk_directory();
    let mut log = PartitionLog::open(dir.path(), config(1 << 30, 4096)).unwrap();
    let active = segment_file(dir.path(), 0, super::segment::LOG_SUFFIX);
    for round in 1..=2 {
        append_all(&mut log, (0..24).map(|_| batch(1, MIB, 1_000)).collect());
        log.sync().unwrap();
        let length = std::fs::metadata(&active).unwrap().len();
        let boundary = (length - tail) / 4096 * 4096;
        // Nothing in the tail left the cache.
        assert_eq!(
            cached_below_and_above(&active, boundary).1,
            0,
            "round {round}"
        );
        // Below it, at most the huge-page folios at the edges of what each sync released.
        let edge = crate::page_cache::LARGEST_FOLIO_BYTES;
        let (cached_below, _) = cached_below_and_above(&active, boundary);
        assert!(
            cached_below as u64 * 4096 <= 2 * edge,
            "round {round}: {cached_below} pages below the tail still cached"
        );
    }

    // A rolled segment leaves the cache whole once synced.
    let dir = crate::page_cache::residency::disk_directory();
    let mut log = PartitionLog::open(dir.path(), config(4 * MIB as u64, 4096)).unwrap();
    append_all(&mut log, (0..12).map(|_| batch(1, MIB, 1_000)).collect());
    log.sync().unwrap();
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 2, "{bases:?}");
    for base in &bases[..bases.len() - 1] {
        let sealed = segment_file(dir.path(), *base, super::segment::LOG_SUFFIX);
        assert!(crate::page_cache::residency::cached_pages(&sealed)
            .iter()
            .all(|page| !*page));
    }
    // The data is all there.
    assert_eq!(read_everything(&log, 1 << 24).len(), 12);
}
