//! The partition's single writer: takes queued appends, writes them as one group, syncs once
//! when any of them needs durability, then moves the high watermark and answers them all.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::mpsc;
use tracing::error;

use super::producer_state::{ProducerStateTable, SequenceCheck};
use super::{Acks, AppendError, AppendOutcome, AppendRequest, PartitionShared};
use crate::config::FsyncPolicy;
use crate::storage::PartitionLog;

/// Appends written together at most (one sync covers them all).
pub const MAX_GROUP_REQUESTS: usize = 256;
/// Bytes written together at most.
pub const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;

pub(crate) async fn run(shared: Arc<PartitionShared>, mut queue: mpsc::Receiver<AppendRequest>) {
    while let Some(first) = queue.recv().await {
        let mut group_bytes = first.records.len();
        let mut group = vec![first];
        while group.len() < MAX_GROUP_REQUESTS && group_bytes < MAX_GROUP_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    group_bytes += next.records.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        if tokio::task::spawn_blocking(move || write_group(&shared, group))
            .await
            .is_err()
        {
            error!("partition commit loop panicked; the partition stops accepting writes");
            return;
        }
    }
}

fn write_group(shared: &PartitionShared, group: Vec<AppendRequest>) {
    let mut producers = shared.producers.lock();
    let has_idempotent_batch = group.iter().any(|request| {
        request
            .headers
            .iter()
            .any(|header| header.has_producer_id())
    });
    let producers_before = has_idempotent_batch.then(|| producers.clone());
    let mut log = shared.log.write();
    let end_before = log.log_end_offset();
    let mut needs_sync = false;
    let mut replies = Vec::with_capacity(group.len());
    for request in group {
        let result = append_request(&mut log, &mut producers, &request);
        needs_sync |= result.is_ok() && request.acks == Acks::All;
        replies.push((request.reply, result));
    }
    if needs_sync && shared.fsync == FsyncPolicy::Always {
        if let Err(sync_error) = log.sync() {
            // Nothing of this group may be acknowledged or read: take it back out.
            error!(%sync_error, "log sync failed; rolling back the group");
            let rollback = log.truncate_to(end_before);
            if let Some(before) = producers_before {
                *producers = before;
            }
            let message = match rollback {
                Ok(()) => sync_error.to_string(),
                Err(rollback_error) => format!("{sync_error}; rollback failed: {rollback_error}"),
            };
            for (reply, _) in replies {
                let _ = reply.send(Err(AppendError::Storage(message.clone())));
            }
            return;
        }
    }
    let log_start_offset = log.log_start_offset();
    shared.high_watermark.send_replace(log.log_end_offset());
    drop(log);
    drop(producers);
    for (reply, result) in replies {
        let _ = reply.send(result.map(|base_offset| AppendOutcome {
            base_offset,
            log_start_offset,
        }));
    }
}

/// Appends every batch of one request; returns the base offset of the first.
fn append_request(
    log: &mut PartitionLog,
    producers: &mut ProducerStateTable,
    request: &AppendRequest,
) -> Result<i64, AppendError> {
    let mut records = BytesMut::from(&request.records[..]);
    let mut first_offset = None;
    let mut position = 0;
    for header in &request.headers {
        let batch_bytes = header.total_bytes();
        let batch = &mut records[position..position + batch_bytes];
        position += batch_bytes;
        if header.has_producer_id() {
            match producers.check(header) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate { base_offset } => {
                    first_offset.get_or_insert(base_offset);
                    continue;
                }
                SequenceCheck::OutOfOrder { expected_sequence } => {
                    return Err(AppendError::OutOfOrderSequence { expected_sequence });
                }
                SequenceCheck::FencedEpoch { current_epoch } => {
                    return Err(AppendError::FencedEpoch { current_epoch });
                }
            }
        }
        let appended = log
            .append(batch)
            .map_err(|error| AppendError::Storage(error.to_string()))?;
        if header.has_producer_id() {
            producers.record(header, appended.base_offset);
        }
        first_offset.get_or_insert(appended.base_offset);
    }
    first_offset.ok_or_else(|| AppendError::Storage("empty produce request".into()))
}
