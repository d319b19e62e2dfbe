//! Fetch with long polling: answer at once when `min_bytes` are available (or on any error),
//! otherwise wait until enough arrives or `max_wait_ms` passes. Data never comes from above
//! the high watermark. No fetch sessions: `session_id` 0 tells clients to send full requests.
//!
//! A debug build with a test misbehaviour switched on breaks these promises on purpose, in
//! the hooks marked as such (see [`crate::misbehaviour`]).

use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::misbehaviour::Misbehaving;
use crate::partition::Partition;
use crate::storage::StorageError;

/// Longest wait a client may ask for.
pub const MAX_WAIT_MS_LIMIT: i32 = 30_000;

struct Wanted {
    topic: TopicName,
    topic_id: uuid::Uuid,
    index: i32,
    fetch_offset: i64,
    max_bytes: usize,
    partition: Option<Arc<Partition>>,
    is_leader: bool,
    /// The leader's term, as this node knows it.
    term: u64,
    /// The catalog has this partition (even if this node holds no replica of it).
    known: bool,
}

pub async fn handle(broker: &Broker, _version: i16, request: FetchRequest) -> FetchResponse {
    let mut wanted = Vec::new();
    for topic in request.topics {
        // v13+ name topics by id; older versions by name.
        let name = if topic.topic.0.is_empty() {
            broker
                .catalog
                .topic_by_id(topic.topic_id)
                .map(|spec| spec.name)
                .unwrap_or_default()
        } else {
            topic.topic.0.to_string()
        };
        for partition in topic.partitions {
            let local = broker.partition(&name, partition.partition);
            let view = local
                .as_ref()
                .map(|local| broker.cluster.view(local.group_id))
                .unwrap_or_default();
            wanted.push(Wanted {
                topic: topic.topic.clone(),
                topic_id: topic.topic_id,
                index: partition.partition,
                fetch_offset: partition.fetch_offset,
                max_bytes: partition.partition_max_bytes.max(0) as usize,
                partition: local,
                is_leader: view.is_leader,
                term: view.term,
                known: broker
                    .catalog
                    .partition_count(&name)
                    .is_some_and(|count| (0..count).contains(&partition.partition)),
            });
        }
    }
    let request_max_bytes = if request.max_bytes <= 0 {
        i32::MAX
    } else {
        request.max_bytes
    };
    let min_bytes = request.min_bytes.max(0) as usize;
    let wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT) as u64);
    let deadline = Instant::now() + wait;
    loop {
        // Subscribe before reading so an append between the read and the wait is not missed.
        let mut watchers: Vec<_> = wanted
            .iter()
            .filter_map(|wanted| wanted.partition.as_ref().map(|p| p.watch_high_watermark()))
            .collect();
        let (responses, total_bytes, any_error) = read_all(
            &wanted,
            request_max_bytes as usize,
            broker.misbehaving.as_ref(),
        );
        if total_bytes >= min_bytes
            || any_error
            || watchers.is_empty()
            || Instant::now() >= deadline
        {
            return FetchResponse::default()
                .with_session_id(0)
                .with_responses(responses);
        }
        let changed = select_all(
            watchers
                .iter_mut()
                .map(|watcher| Box::pin(watcher.changed())),
        );
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            let (responses, _, _) = read_all(
                &wanted,
                request_max_bytes as usize,
                broker.misbehaving.as_ref(),
            );
            return FetchResponse::default()
                .with_session_id(0)
                .with_responses(responses);
        }
    }
}

fn read_all(
    wanted: &[Wanted],
    request_max_bytes: usize,
    misbehaving: Option<&Misbehaving>,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut total_bytes = 0usize;
    let mut any_error = false;
    for wanted in wanted {
        let room = request_max_bytes.saturating_sub(total_bytes);
        // Like Kafka, the first partition with data may exceed the request limit by one batch
        // so that a consumer always makes progress.
        let max_bytes = if total_bytes == 0 {
            wanted.max_bytes
        } else {
            wanted.max_bytes.min(room)
        };
        let data = read_partition(wanted, max_bytes, misbehaving);
        any_error |= data.error_code != 0;
        total_bytes += data.records.as_ref().map_or(0, |records| records.len());
        match topics.last_mut() {
            Some(last) if last.topic == wanted.topic && last.topic_id == wanted.topic_id => {
                last.partitions.push(data)
            }
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(wanted.topic.clone())
                    .with_topic_id(wanted.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    (topics, total_bytes, any_error)
}

fn read_partition(
    wanted: &Wanted,
    max_bytes: usize,
    misbehaving: Option<&Misbehaving>,
) -> PartitionData {
    let empty = PartitionData::default()
        .with_partition_index(wanted.index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(Some(Vec::new()))
        .with_records(Some(bytes::Bytes::new()));
    let Some(partition) = &wanted.partition else {
        let error = if wanted.known {
            ResponseError::NotLeaderOrFollower
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        return empty.with_error_code(error.code());
    };
    if !wanted.is_leader {
        return empty.with_error_code(ResponseError::NotLeaderOrFollower.code());
    }
    let high_watermark = partition.high_watermark();
    let log_start_offset = partition.log_start_offset();
    // Deliberate misbehaviour (fetch-beyond-high-watermark): the uncommitted tail is served,
    // and its end claimed as high watermark.
    let uncommitted_end_offset = misbehaving.and_then(|misbehaving| {
        misbehaving.uncommitted_end_offset(partition, wanted.term, high_watermark)
    });
    let visible_end_offset = uncommitted_end_offset.unwrap_or(high_watermark);
    let data = empty
        .with_high_watermark(visible_end_offset)
        .with_last_stable_offset(visible_end_offset)
        .with_log_start_offset(log_start_offset);
    if wanted.fetch_offset > visible_end_offset || wanted.fetch_offset < log_start_offset {
        return data.with_error_code(ResponseError::OffsetOutOfRange.code());
    }
    if max_bytes == 0 {
        return data;
    }
    if misbehaving.is_some_and(|misbehaving| misbehaving.is_stalled()) {
        // Deliberate misbehaviour (stall-after-ms): nothing is returned.
        return data;
    }
    match partition.read(wanted.fetch_offset, max_bytes) {
        Ok(read) => match (misbehaving, uncommitted_end_offset) {
            (Some(misbehaving), Some(_)) if read.next_offset >= high_watermark => {
                let records = misbehaving.with_uncommitted(
                    partition,
                    wanted.term,
                    read.bytes,
                    read.next_offset,
                    max_bytes,
                );
                data.with_records(Some(records))
            }
            _ => data.with_records(Some(read.bytes)),
        },
        Err(StorageError::OffsetOutOfRange { .. }) => {
            data.with_error_code(ResponseError::OffsetOutOfRange.code())
        }
        Err(error) => {
            tracing::warn!(topic = %wanted.topic.0, index = wanted.index, %error, "fetch read failed");
            data.with_error_code(ResponseError::KafkaStorageError.code())
        }
    }
}
