//! [`PartitionLog`]: the ordered segments of one partition.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::recovery::{recover_segment, truncate_segment, Recovered};
use super::segment::{parse_segment_name, Segment, LOG_SUFFIX};
use super::sync::{read_recovery_point, SyncHandle, SyncShared};
use super::{AppendInfo, LogConfig, ReadResult, RetentionOutcome, StorageError};
use crate::wire::record_batch::{set_base_offset, BatchHeader, BATCH_HEADER_BYTES};

/// One partition's log: segments ordered by base offset, the last one active. Single writer
/// (`&mut self` methods); readers share `&self`.
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Never empty; sorted by base offset; contiguous offsets; the last is active.
    segments: Vec<Segment>,
    size_bytes: u64,
    sync: Arc<SyncShared>,
}

impl PartitionLog {
    /// Opens the log in `dir` (creating the directory if missing) and recovers it: see the
    /// module documentation. Blocking I/O, proportional to the size of the active segment
    /// (and of any segment not known to be synced).
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, StorageError> {
        std::fs::create_dir_all(dir)
            .map_err(|error| StorageError::io("creating directory", dir, error))?;
        let (bases, orphans) = list_segments(dir)?;
        for orphan in orphans {
            warn!(path = %orphan.display(), "removing an index file without a log");
            std::fs::remove_file(&orphan)
                .map_err(|error| StorageError::io("deleting orphan index", &orphan, error))?;
        }
        let recovery_point = read_recovery_point(dir);
        let interval = config.index_interval_bytes;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        let mut needs_sync: Vec<bool> = Vec::with_capacity(bases.len());
        let mut ended = false;
        for (index, &base) in bases.iter().enumerate() {
            let is_last = index + 1 == bases.len();
            let mut segment = Segment::open(dir, base, interval, false)?;
            if ended {
                warn!(path = %segment.log_path.display(), "deleting a segment after a torn one");
                segment.remove_files()?;
                continue;
            }
            let trusted = !is_last && recovery_point.is_some_and(|point| base < point);
            let Recovered { torn, rebuilt } = recover_segment(&mut segment, trusted)?;
            if let Some(previous) = segments.last() {
                if previous.next_offset != base {
                    warn!(
                        path = %segment.log_path.display(),
                        expected = previous.next_offset,
                        "segment does not continue the log; deleting it and every later one"
                    );
                    segment.remove_files()?;
                    ended = true;
                    continue;
                }
            }
            if segment.size == 0 && !is_last && torn.is_none() {
                info!(path = %segment.log_path.display(), "deleting an empty sealed segment");
                segment.remove_files()?;
                continue;
            }
            ended = torn.is_some();
            needs_sync.push(rebuilt);
            segments.push(segment);
        }
        if segments.is_empty() {
            segments.push(Segment::open(dir, 0, interval, true)?);
            needs_sync.push(true);
        }
        let active_base = segments.last().map_or(0, |segment| segment.base_offset);
        let sync = Arc::new(SyncShared::new(
            dir,
            active_base,
            recovery_point.unwrap_or(i64::MIN),
        ));
        if sync.recovery_point() > active_base {
            sync.prepare_rewrite(active_base)?;
        }
        let sealed = segments.len() - 1;
        for (segment, _) in segments[..sealed]
            .iter()
            .zip(&needs_sync)
            .filter(|(_, &u)| u)
        {
            sync.add_pending(segment.sealed_files());
        }
        let size_bytes = segments.iter().map(|segment| segment.size).sum();
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            size_bytes,
            sync,
        };
        info!(
            dir = %dir.display(),
            segments = log.segments.len(),
            log_start_offset = log.log_start_offset(),
            log_end_offset = log.log_end_offset(),
            size_bytes = log.size_bytes,
            "opened partition log"
        );
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Changes the configuration (topic config updates); applies to future rolls, index
    /// entries and retention runs.
    pub fn set_config(&mut self, config: LogConfig) {
        for segment in &mut self.segments {
            segment.index_interval = config.index_interval_bytes;
        }
        self.config = config;
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.segments[0].base_offset
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Bytes of valid batches across all segments.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments
            .iter()
            .map(|segment| segment.base_offset)
            .collect()
    }

    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a partition log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a partition log always has a segment")
    }

    /// Index of the segment whose range holds `offset` (the first one for offsets before it).
    fn segment_index(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|segment| segment.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Appends one whole, already validated v2 batch: assigns it the log end offset as base
    /// offset (rewriting `batch`'s header), rolls first if the active segment is non-empty and
    /// would grow past `segment_bytes`, writes it and its index entries. Does not sync. On
    /// error (a full disk, say) nothing of the batch stays in the log.
    pub fn append(&mut self, batch: &mut [u8]) -> Result<AppendInfo, StorageError> {
        let invalid = |reason: String| StorageError::InvalidBatch(reason);
        let mut header = BatchHeader::parse(batch).map_err(|error| invalid(error.to_string()))?;
        header
            .check_fields(0)
            .map_err(|error| invalid(error.to_string()))?;
        if header.total_bytes() != batch.len() {
            return Err(invalid(format!(
                "batch header says {} bytes but {} were given",
                header.total_bytes(),
                batch.len()
            )));
        }
        let base_offset = self.log_end_offset();
        let last_offset = base_offset
            .checked_add(header.last_offset_delta as i64 + 1)
            .map(|next| next - 1)
            .ok_or_else(|| invalid("offsets would overflow".to_string()))?;
        let segment_limit = self.config.segment_bytes.min(u32::MAX as u64);
        let active = self.active();
        let too_big = active.size + batch.len() as u64 > segment_limit;
        let offsets_overflow = last_offset - active.base_offset > u32::MAX as i64;
        if active.size > 0 && (too_big || offsets_overflow) {
            self.roll()?;
        }
        set_base_offset(batch, base_offset);
        header.base_offset = base_offset;
        let position = self.active_mut().append(batch, &header)?;
        self.size_bytes += batch.len() as u64;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            max_timestamp: header.max_timestamp,
            position_bytes: position,
        })
    }

    /// Starts a new active segment at the log end offset; the old one waits for `sync`.
    fn roll(&mut self) -> Result<(), StorageError> {
        let base = self.log_end_offset();
        let segment = Segment::open(&self.dir, base, self.config.index_interval_bytes, true)?;
        let sealed = self.active().sealed_files();
        self.sync.on_roll(sealed, base);
        debug!(dir = %self.dir.display(), base_offset = base, "rolled a new segment");
        self.segments.push(segment);
        Ok(())
    }

    /// Makes everything appended so far durable: fdatasyncs the segments rolled since the last
    /// sync (logs and indexes), the directory if segments were created, and the active log.
    pub fn sync(&self) -> Result<(), StorageError> {
        let active = self.active();
        self.sync.sync(&active.log, &active.log_path)
    }

    /// A handle that syncs, without this log, everything appended before this call.
    pub fn sync_handle(&self) -> SyncHandle {
        let active = self.active();
        SyncHandle {
            active: active.log.clone(),
            active_path: Arc::new(active.log_path.clone()),
            shared: self.sync.clone(),
        }
    }

    /// Reads whole batches starting with the one containing `offset`, none whose base offset
    /// is >= `max_offset_exclusive` (the high watermark), within `max_bytes` except that the
    /// first batch is returned whole even when it alone is larger (so a consumer always
    /// progresses). Continues into later segments while room remains. An offset at or past
    /// the end (or the limit) gives an empty result; one below the log start is an error.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
    ) -> Result<ReadResult, StorageError> {
        let log_start = self.log_start_offset();
        if offset < log_start {
            return Err(StorageError::OffsetOutOfRange { offset, log_start });
        }
        let limit = max_offset_exclusive.min(self.log_end_offset());
        let mut out = Vec::new();
        let mut next_offset = offset;
        if offset < limit {
            for segment in &self.segments[self.segment_index(offset)..] {
                if segment.base_offset >= limit {
                    break;
                }
                let first = out.is_empty();
                let budget = max_bytes.saturating_sub(out.len());
                if !first && budget < BATCH_HEADER_BYTES {
                    break;
                }
                match segment.read_into(&mut out, next_offset, budget, first, limit)? {
                    // Stop unless the whole segment was taken: what is left did not fit.
                    Some(after) if after < segment.next_offset => {
                        next_offset = after;
                        break;
                    }
                    Some(after) => next_offset = after,
                    None if first => continue,
                    None => break,
                }
            }
        }
        Ok(ReadResult {
            bytes: Bytes::from(out),
            next_offset,
        })
    }

    /// The earliest batch whose max timestamp is >= `timestamp_ms` (Kafka ListOffsets by
    /// timestamp), as (that batch's base offset, its max timestamp). Kafka answers with the
    /// first *record* at or after the timestamp; this answers at batch granularity, which a
    /// consumer seeking there handles the same way (it skips earlier records of the batch).
    /// Does not know the high watermark: the caller filters.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        for segment in &self.segments {
            if let Some(found) = segment.find_by_timestamp(timestamp_ms)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Visits the header of every batch from the one containing `from_offset` (clamped to the
    /// log start) to the end, across segments, reading only headers.
    pub fn scan_headers(
        &self,
        from_offset: i64,
        mut visit: impl FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        let from = from_offset.max(self.log_start_offset());
        for segment in &self.segments[self.segment_index(from)..] {
            let Some((start, _)) = segment.locate(from)? else {
                continue;
            };
            segment.scan_from(start, |_, header| {
                visit(header);
                false
            })?;
        }
        Ok(())
    }

    /// Deletes whole segments from the front, never the active one: while the log without the
    /// oldest segment would still hold at least `retention_bytes`, or while the oldest
    /// segment's newest timestamp is more than `retention_ms` before `now_ms` (its file's
    /// modification time when it has no timestamps). Advances the log start offset.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, StorageError> {
        self.enforce_retention_below(now_ms, i64::MAX)
    }

    /// [`PartitionLog::enforce_retention`], deleting only segments wholly below
    /// `max_offset_exclusive` (pass the high watermark so uncommitted data is never deleted).
    pub fn enforce_retention_below(
        &mut self,
        now_ms: i64,
        max_offset_exclusive: i64,
    ) -> Result<RetentionOutcome, StorageError> {
        let mut outcome = RetentionOutcome::default();
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            if oldest.next_offset > max_offset_exclusive {
                break;
            }
            let by_bytes = self
                .config
                .retention_bytes
                .is_some_and(|limit| self.size_bytes - oldest.size >= limit);
            let by_time = self.config.retention_ms.is_some_and(|retention| {
                now_ms.saturating_sub(oldest.retention_timestamp()) > retention
            });
            if !(by_bytes || by_time) {
                break;
            }
            oldest.remove_files()?;
            let oldest = self.segments.remove(0);
            self.sync.forget(|base| base == oldest.base_offset);
            self.size_bytes -= oldest.size;
            outcome.deleted_segments += 1;
            outcome.deleted_bytes += oldest.size;
            outcome.deleted_base_offsets.push(oldest.base_offset);
            info!(
                path = %oldest.log_path.display(),
                bytes = oldest.size,
                by_bytes,
                by_time,
                "deleted a segment by retention"
            );
        }
        outcome.log_start_offset = self.log_start_offset();
        Ok(outcome)
    }

    /// Drops everything at and after `offset`, cutting at the start of the batch that holds
    /// it (so when `offset` falls inside a batch, the log end becomes that batch's base
    /// offset, below `offset`). At or past the end: nothing happens. Below the log start:
    /// everything goes and the log restarts, empty, at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let interval = self.config.index_interval_bytes;
        if offset < self.log_start_offset() {
            self.sync.prepare_rewrite(offset)?;
            // No existing segment can be named `offset`: they all start above it.
            let fresh = Segment::open(&self.dir, offset, interval, true)?;
            for segment in &self.segments {
                segment.remove_files()?;
            }
            self.segments.clear();
            self.segments.push(fresh);
            self.size_bytes = 0;
            info!(dir = %self.dir.display(), offset, "truncated the whole log");
            return Ok(());
        }
        let keep = self.segment_index(offset);
        self.sync.prepare_rewrite(self.segments[keep].base_offset)?;
        while self.segments.len() > keep + 1 {
            let segment = self.segments.pop().expect("more segments than kept");
            self.size_bytes -= segment.size;
            segment.remove_files()?;
        }
        let segment = &mut self.segments[keep];
        let cut = segment
            .locate(offset)?
            .map_or(segment.size, |(position, _)| position);
        let old_size = segment.size;
        truncate_segment(segment, cut)?;
        self.size_bytes = self.size_bytes - old_size + segment.size;
        info!(
            dir = %self.dir.display(),
            offset,
            log_end_offset = segment.next_offset,
            dropped_bytes = old_size - segment.size,
            "truncated the log"
        );
        Ok(())
    }

    /// Closes the log and removes its directory (topic deletion).
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        match std::fs::remove_dir_all(&dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(StorageError::io("deleting directory", &dir, error))
            }
            _ => Ok(()),
        }
    }
}

/// Base offsets of the segments in `dir` (those with a `.log` file), and index files whose
/// log is missing. Other files are ignored.
fn list_segments(dir: &Path) -> Result<(Vec<i64>, Vec<PathBuf>), StorageError> {
    let mut bases = BTreeSet::new();
    let mut indexes: BTreeMap<i64, Vec<PathBuf>> = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).map_err(|error| StorageError::io("listing", dir, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| StorageError::io("listing", dir, error))?;
        let name = entry.file_name();
        let Some((base, suffix)) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        match suffix {
            LOG_SUFFIX => {
                bases.insert(base);
            }
            "index" | "timeindex" => indexes.entry(base).or_default().push(entry.path()),
            _ => {}
        }
    }
    let orphans = indexes
        .into_iter()
        .filter(|(base, _)| !bases.contains(base))
        .flat_map(|(_, paths)| paths)
        .collect();
    Ok((bases.into_iter().collect(), orphans))
}
