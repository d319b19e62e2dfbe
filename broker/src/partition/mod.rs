//! A partition replica on this node: its log, high watermark and idempotent-producer state.
//!
//! Handlers read through it; they never write. Writes come from exactly one place, the Raft
//! loop applying committed entries of the partition's group ([`Partition::apply`]), so every
//! replica assigns the same offsets to the same batches. The high watermark moves after a
//! round of applies ([`Partition::publish_high_watermark`]), so a fetch never returns data that
//! is not committed.
//!
//! The log is not synced on apply: the Raft log is the durable record. A checkpoint
//! ([`Partition::checkpoint`], periodic and at shutdown) syncs the log and then records which
//! Raft index it reflects; at start-up the log is cut back to the last checkpoint and Raft
//! re-delivers everything committed after it.

pub mod checkpoint;
pub mod producer_snapshot;
pub mod producer_state;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tracing::{error, warn};

use crate::storage::{LogConfig, PartitionLog, ReadResult, StorageError};
use crate::wire::record_batch::{self, BatchHeader};
use checkpoint::Checkpoint;
use producer_state::{ProducerStateTable, SequenceCheck};

/// Kafka's acks values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no response.
    None,
    /// acks=1: answered like acks=all (see ARCHITECTURE.md, "Durability").
    Leader,
    /// acks=all (-1): answered once committed by a majority and applied.
    All,
}

impl Acks {
    pub fn from_wire(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub log_start_offset: i64,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AppendError {
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("out of order sequence number: expected {expected_sequence}")]
    OutOfOrderSequence { expected_sequence: i32 },
    #[error("producer epoch is older than the current one ({current_epoch})")]
    FencedEpoch { current_epoch: i16 },
    #[error("this node does not lead the partition (leader {leader})")]
    NotLeader { leader: i32 },
    #[error("the write was not committed in time")]
    TimedOut,
}

impl AppendError {
    pub fn kafka_error_code(&self) -> i16 {
        use kafka_protocol::error::ResponseError;
        match self {
            AppendError::Storage(_) => ResponseError::KafkaStorageError.code(),
            AppendError::OutOfOrderSequence { .. } => {
                ResponseError::OutOfOrderSequenceNumber.code()
            }
            AppendError::FencedEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
            AppendError::NotLeader { .. } => ResponseError::NotLeaderOrFollower.code(),
            AppendError::TimedOut => ResponseError::RequestTimedOut.code(),
        }
    }
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub group_id: u64,
    directory: PathBuf,
    log: RwLock<PartitionLog>,
    high_watermark: watch::Sender<i64>,
    producers: Mutex<ProducerStateTable>,
    /// The Raft index of the last entry applied to the log.
    applied_index: AtomicU64,
    /// Set when an apply failed on storage: the replica stops applying (so it cannot diverge)
    /// until a restart replays from its last checkpoint.
    faulted: AtomicBool,
    /// The Raft index the last written checkpoint vouches for (the log is synced up to it).
    checkpointed_index: AtomicU64,
    /// Set when a snapshot replaced this replica's files: it neither applies nor writes a
    /// checkpoint any more. Held while a checkpoint is written, so none lands after it.
    retired: Mutex<bool>,
}

impl Partition {
    /// Opens (recovering) the replica in `directory`, cut back to its last checkpoint. Returns
    /// it with the Raft index to resume applying after. Blocking I/O.
    pub fn open(
        topic: &str,
        index: i32,
        group_id: u64,
        directory: &Path,
        log_config: LogConfig,
    ) -> Result<(Partition, u64), StorageError> {
        let mut log = PartitionLog::open(directory, log_config)?;
        let mut checkpoint = Checkpoint::read(directory).unwrap_or_else(|error| {
            warn!(dir = %directory.display(), %error, "unreadable checkpoint; replaying the whole Raft log");
            Checkpoint::default()
        });
        if log.log_end_offset() < checkpoint.log_end_offset {
            // Synced data went missing: rebuild the replica from the Raft log.
            warn!(dir = %directory.display(), "partition log is behind its checkpoint; replaying from the start");
            checkpoint = Checkpoint::default();
        }
        if log.log_end_offset() > checkpoint.log_end_offset {
            log.truncate_to(checkpoint.log_end_offset)?;
        }
        let (mut producers, scan_from) =
            producer_snapshot::load(directory, log.log_start_offset(), log.log_end_offset());
        log.scan_headers(scan_from, |header| {
            if header.has_producer_id() && !header.is_control() {
                producers.record(header, header.base_offset);
            }
        })?;
        let high_watermark = log.log_end_offset();
        let partition = Partition {
            topic: topic.to_string(),
            index,
            group_id,
            directory: directory.to_path_buf(),
            log: RwLock::new(log),
            high_watermark: watch::Sender::new(high_watermark),
            producers: Mutex::new(producers),
            applied_index: AtomicU64::new(checkpoint.applied_index),
            faulted: AtomicBool::new(false),
            checkpointed_index: AtomicU64::new(checkpoint.applied_index),
            retired: Mutex::new(false),
        };
        Ok((partition, checkpoint.applied_index))
    }

    /// Applies one committed entry's batches (called by the Raft loop only, in log order).
    /// Deterministic: the same entries give the same log on every replica.
    pub fn apply(
        &self,
        raft_index: u64,
        term: u64,
        records: &[u8],
    ) -> Result<AppendOutcome, AppendError> {
        if raft_index <= self.applied_index.load(Ordering::Acquire) {
            // Already in the log (re-delivered below the checkpoint): nothing to do.
            return Err(AppendError::Storage("entry already applied".into()));
        }
        if self.faulted.load(Ordering::Acquire) {
            return Err(AppendError::Storage(
                "replica stopped after a storage failure".into(),
            ));
        }
        let headers = record_batch::validate_batches(records, usize::MAX).map_err(|error| {
            AppendError::Storage(format!("committed entry does not validate: {error}"))
        })?;
        let mut producers = self.producers.lock();
        let mut log = self.log.write();
        let mut bytes = records.to_vec();
        let mut first_offset = None;
        let mut position = 0;
        let mut outcome = Ok(());
        for header in &headers {
            let batch = &mut bytes[position..position + header.total_bytes()];
            position += header.total_bytes();
            match check_sequence(&producers, header) {
                Ok(Some(duplicate_offset)) => {
                    first_offset.get_or_insert(duplicate_offset);
                    continue;
                }
                Ok(None) => {}
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
            record_batch::set_partition_leader_epoch(batch, term.min(i32::MAX as u64) as i32);
            match log.append(batch) {
                Ok(appended) => {
                    if header.has_producer_id() {
                        producers.record(header, appended.base_offset);
                    }
                    first_offset.get_or_insert(appended.base_offset);
                }
                Err(storage_error) => {
                    error!(topic = %self.topic, index = self.index, %storage_error, "apply failed; replica stops applying until restart");
                    self.faulted.store(true, Ordering::Release);
                    return Err(AppendError::Storage(storage_error.to_string()));
                }
            }
        }
        self.applied_index.store(raft_index, Ordering::Release);
        outcome?;
        let base_offset = first_offset.ok_or_else(|| AppendError::Storage("empty entry".into()))?;
        Ok(AppendOutcome {
            base_offset,
            log_start_offset: log.log_start_offset(),
        })
    }

    /// Makes everything applied so far visible to fetches.
    pub fn publish_high_watermark(&self) {
        let end = self.log.read().log_end_offset();
        self.high_watermark.send_if_modified(|current| {
            let changed = *current != end;
            *current = end;
            changed
        });
    }

    /// Syncs the log, then records the Raft index it reflects. Blocking I/O, done outside the
    /// log's lock so applies (and with them produce) go on meanwhile.
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        let (checkpoint, sync_handle) = {
            let log = self.log.read();
            let checkpoint = Checkpoint {
                applied_index: self.applied_index.load(Ordering::Acquire),
                log_end_offset: log.log_end_offset(),
            };
            (checkpoint, log.sync_handle())
        };
        // Everything appended before the handle was taken is durable once this returns.
        sync_handle.sync()?;
        let retired = self.retired.lock();
        if *retired {
            return Ok(());
        }
        checkpoint
            .write(&self.directory)
            .map_err(|source| StorageError::Io {
                op: "write checkpoint",
                path: self.directory.clone(),
                source,
            })?;
        self.checkpointed_index
            .fetch_max(checkpoint.applied_index, Ordering::AcqRel);
        Ok(())
    }

    /// The Raft index up to which this replica survives a crash without the Raft log.
    pub fn checkpointed_index(&self) -> u64 {
        self.checkpointed_index.load(Ordering::Acquire)
    }

    /// Stops this replica for good: its files are about to be replaced by a snapshot's.
    pub fn retire(&self) {
        *self.retired.lock() = true;
        self.faulted.store(true, Ordering::Release);
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Makes everything appended so far durable (without recording a checkpoint).
    pub fn sync_log(&self) -> Result<(), StorageError> {
        let sync_handle = self.log.read().sync_handle();
        sync_handle.sync()
    }

    /// The base offsets of the log's segment files, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.log.read().segment_base_offsets()
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Ordering::Acquire)
    }

    /// Reads whole batches from `offset`, never past the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, StorageError> {
        let high_watermark = self.high_watermark();
        self.log.read().read(offset, max_bytes, high_watermark)
    }

    /// Reads whole batches from `offset` up to `end_offset` (exclusive), never past the high
    /// watermark: what a snapshot uploads.
    pub fn read_until(
        &self,
        offset: i64,
        max_bytes: usize,
        end_offset: i64,
    ) -> Result<ReadResult, StorageError> {
        let limit = end_offset.min(self.high_watermark());
        self.log.read().read(offset, max_bytes, limit)
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// Wakes when the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.read().log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.read().log_end_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.read().size_bytes()
    }

    /// The first offset whose batch has a timestamp at or after `timestamp_ms`, with that
    /// batch's max timestamp, below the high watermark.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let found = self.log.read().offset_for_timestamp(timestamp_ms)?;
        Ok(found.filter(|(offset, _)| *offset < self.high_watermark()))
    }

    /// Deletes whole segments past retention, never one holding data above the high
    /// watermark.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<(), StorageError> {
        if *self.retired.lock() {
            return Ok(());
        }
        let high_watermark = self.high_watermark();
        let mut log = self.log.write();
        log.enforce_retention_below(now_ms, high_watermark)
            .map(|_| ())
    }

    /// Removes the replica's files (its topic was deleted).
    pub fn delete_files(&self) {
        if let Err(error) = std::fs::remove_dir_all(&self.directory) {
            warn!(dir = %self.directory.display(), %error, "could not delete partition files");
        }
    }
}

/// `Ok(Some(offset))`: a retry of a batch already written at `offset`; `Ok(None)`: append.
fn check_sequence(
    producers: &ProducerStateTable,
    header: &BatchHeader,
) -> Result<Option<i64>, AppendError> {
    if !header.has_producer_id() {
        return Ok(None);
    }
    match producers.check(header) {
        SequenceCheck::Append => Ok(None),
        SequenceCheck::Duplicate { base_offset } => Ok(Some(base_offset)),
        SequenceCheck::OutOfOrder { expected_sequence } => {
            Err(AppendError::OutOfOrderSequence { expected_sequence })
        }
        SequenceCheck::FencedEpoch { current_epoch } => {
            Err(AppendError::FencedEpoch { current_epoch })
        }
    }
}
