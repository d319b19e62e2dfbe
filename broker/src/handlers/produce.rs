//! Produce: validate every batch (CRC-32C, framing) on the partition's leader, replicate it
//! through the partition's Raft group, answer once it is committed and applied (acks=1 is
//! treated as acks=all; acks=0 gets no answer). Partitions of one request go concurrently.

use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::message;
use crate::broker::Broker;
use crate::partition::{Acks, AppendOutcome};
use crate::wire::record_batch;

pub async fn handle(broker: &Broker, _version: i16, request: ProduceRequest) -> ProduceResponse {
    let acks = if request.transactional_id.is_some() {
        Err((
            ResponseError::InvalidRequest,
            "transactions are not supported",
        ))
    } else {
        Acks::from_wire(request.acks).ok_or((
            ResponseError::InvalidRequiredAcks,
            "acks must be -1, 0 or 1",
        ))
    };
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let topics = request.topic_data.into_iter().map(|topic| async move {
        let name = topic.name.0.to_string();
        let partitions = topic.partition_data.into_iter().map(|data| {
            let name = name.clone();
            async move {
                match acks {
                    Err((error, text)) => refused(data.index, error.code(), text),
                    Ok(acks) => produce_partition(broker, &name, data, acks, timeout).await,
                }
            }
        });
        TopicProduceResponse::default()
            .with_name(topic.name)
            .with_partition_responses(join_all(partitions).await)
    });
    ProduceResponse::default().with_responses(join_all(topics).await)
}

fn refused(index: i32, error_code: i16, text: &str) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error_code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message(text))
}

async fn produce_partition(
    broker: &Broker,
    topic: &str,
    data: PartitionProduceData,
    acks: Acks,
    timeout: Duration,
) -> PartitionProduceResponse {
    let Some(partition) = broker.partition(topic, data.index) else {
        return match broker.catalog.partition_count(topic) {
            Some(count) if (0..count).contains(&data.index) => {
                let error = ResponseError::NotLeaderOrFollower.code();
                refused(
                    data.index,
                    error,
                    "this node holds no replica of the partition",
                )
            }
            _ => {
                let error = ResponseError::UnknownTopicOrPartition.code();
                refused(data.index, error, "unknown topic or partition")
            }
        };
    };
    let Some(records) = data.records.filter(|records| !records.is_empty()) else {
        return refused(
            data.index,
            ResponseError::CorruptMessage.code(),
            "no record batch",
        );
    };
    let headers = match record_batch::validate_batches(&records, broker.config.max_frame_bytes) {
        Ok(headers) => headers,
        Err(error) => return refused(data.index, error.kafka_error_code(), &error.to_string()),
    };
    if headers
        .iter()
        .any(|header| header.is_transactional() || header.is_control())
    {
        let error = ResponseError::InvalidRecord.code();
        return refused(
            data.index,
            error,
            "transactional and control batches are not supported",
        );
    }
    if !broker.cluster.view(partition.group_id).is_leader {
        let error = ResponseError::NotLeaderOrFollower.code();
        return refused(data.index, error, "this node does not lead the partition");
    }
    drop(headers);
    let wait = acks != Acks::None;
    match broker
        .cluster
        .append(partition.group_id, records.to_vec(), wait, timeout)
        .await
    {
        Ok(outcome) => {
            let outcome = outcome.unwrap_or(AppendOutcome {
                base_offset: -1,
                log_start_offset: -1,
            });
            PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(outcome.base_offset)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(outcome.log_start_offset)
        }
        Err(error) => refused(data.index, error.kafka_error_code(), &error.to_string()),
    }
}
