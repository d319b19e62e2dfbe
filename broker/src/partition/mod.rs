//! A partition: the boundary between the handlers and the log, where a produce is proposed,
//! committed and applied.
//!
//! Handlers call [`Partition::append`] and [`Partition::read`]; they never touch the log. On
//! one node, "commit" is durability: the [`commit_loop`] gathers every append waiting for the
//! partition, writes them in one go, syncs once (group commit) and then advances the high
//! watermark. With replication the same loop becomes "propose to the Raft group, apply on
//! commit"; offsets are assigned at apply in both cases, so replicas agree on them.

pub mod commit_loop;
pub mod producer_state;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::FsyncPolicy;
use crate::storage::{LogConfig, PartitionLog, ReadResult, StorageError};
use crate::wire::record_batch::BatchHeader;
use producer_state::ProducerStateTable;

/// Appends queued for one partition before producers wait (back-pressure).
pub const APPEND_QUEUE_REQUESTS: usize = 1024;

/// Kafka's acks values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no response; written like acks=1.
    None,
    /// acks=1: answered once written to the log (page cache), before any sync.
    Leader,
    /// acks=all (-1): answered once committed: written and, by default, synced.
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
    #[error("the partition is closed")]
    Closed,
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
            AppendError::Closed => ResponseError::NotLeaderOrFollower.code(),
        }
    }
}

/// One produce request's worth of batches for this partition, already validated.
pub struct AppendRequest {
    pub records: Bytes,
    pub headers: Vec<BatchHeader>,
    pub acks: Acks,
    pub reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

/// State shared by the partition's readers and its commit loop.
pub(crate) struct PartitionShared {
    pub(crate) log: RwLock<PartitionLog>,
    pub(crate) high_watermark: watch::Sender<i64>,
    pub(crate) producers: Mutex<ProducerStateTable>,
    pub(crate) fsync: FsyncPolicy,
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    shared: Arc<PartitionShared>,
    appends: mpsc::Sender<AppendRequest>,
    commit_task: tokio::task::JoinHandle<()>,
}

impl Partition {
    /// Opens (recovering) the log in `directory` and starts the commit loop. Blocking I/O.
    pub fn open(
        topic: &str,
        index: i32,
        directory: &Path,
        log_config: LogConfig,
        fsync: FsyncPolicy,
    ) -> Result<Partition, StorageError> {
        let log = PartitionLog::open(directory, log_config)?;
        let mut producers = ProducerStateTable::default();
        log.scan_headers(log.log_start_offset(), |header| {
            if header.has_producer_id() && !header.is_control() {
                producers.record(header, header.base_offset);
            }
        })?;
        let high_watermark = log.log_end_offset();
        let shared = Arc::new(PartitionShared {
            log: RwLock::new(log),
            high_watermark: watch::Sender::new(high_watermark),
            producers: Mutex::new(producers),
            fsync,
        });
        let (appends, queue) = mpsc::channel(APPEND_QUEUE_REQUESTS);
        let commit_task = tokio::spawn(commit_loop::run(shared.clone(), queue));
        Ok(Partition {
            topic: topic.to_string(),
            index,
            shared,
            appends,
            commit_task,
        })
    }

    /// Appends validated batches; resolves when they are committed as `acks` requires.
    pub async fn append(
        &self,
        records: Bytes,
        headers: Vec<BatchHeader>,
        acks: Acks,
    ) -> Result<AppendOutcome, AppendError> {
        let (reply, outcome) = oneshot::channel();
        let request = AppendRequest {
            records,
            headers,
            acks,
            reply,
        };
        self.appends
            .send(request)
            .await
            .map_err(|_| AppendError::Closed)?;
        outcome.await.map_err(|_| AppendError::Closed)?
    }

    /// Reads whole batches from `offset`, never past the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, StorageError> {
        let high_watermark = self.high_watermark();
        self.shared
            .log
            .read()
            .read(offset, max_bytes, high_watermark)
    }

    pub fn high_watermark(&self) -> i64 {
        *self.shared.high_watermark.borrow()
    }

    /// Wakes when the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.shared.high_watermark.subscribe()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.shared.log.read().log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.shared.log.read().log_end_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.shared.log.read().size_bytes()
    }

    /// The first offset whose batch has a timestamp at or after `timestamp_ms`, with that
    /// batch's max timestamp, below the high watermark.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let found = self.shared.log.read().offset_for_timestamp(timestamp_ms)?;
        Ok(found.filter(|(offset, _)| *offset < self.high_watermark()))
    }

    pub fn enforce_retention(&self, now_ms: i64) -> Result<(), StorageError> {
        self.shared
            .log
            .write()
            .enforce_retention(now_ms)
            .map(|_| ())
    }

    /// Syncs the log; used at shutdown after the connections have drained.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.shared.log.read().sync()
    }

    /// Stops the commit loop and removes the partition's files (topic deletion).
    pub fn delete(self) -> Result<(), StorageError> {
        self.commit_task.abort();
        let Partition { shared, .. } = self;
        match Arc::try_unwrap(shared) {
            Ok(shared) => shared.log.into_inner().delete(),
            // A reader still holds the log; its directory goes when the last reader drops.
            Err(_) => Ok(()),
        }
    }
}
