//! Produce: validate every batch (CRC-32C, framing) on the partition's leader, replicate it
//! through the partition's Raft group, answer once it is committed and applied (acks=1 is
//! treated as acks=all; acks=0 gets no answer).
//!
//! Two phases, because order matters: [`submit`] validates and queues every partition's
//! proposal, and the connection calls it for its requests one at a time, in arrival order, so
//! batches that a producer pipelines on one connection reach the Raft log in the order sent
//! (an idempotent producer's sequence numbers depend on it). The returned future then waits
//! for the outcomes, concurrently with later requests.
//!
//! A debug build with a test misbehaviour switched on breaks these promises on purpose, in
//! the hooks marked as such (see [`crate::misbehaviour`]).

use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use super::message;
use crate::broker::Broker;
use crate::cluster::Proposed;
use crate::misbehaviour::ProduceHook;
use crate::partition::{Acks, AppendOutcome};
use crate::wire::record_batch;

pub async fn handle(broker: &Broker, _version: i16, request: ProduceRequest) -> ProduceResponse {
    submit(broker, request).await.await
}

/// A partition's answer, ready or still being replicated.
enum Pending {
    Ready(PartitionProduceResponse),
    Replicating { index: i32, proposed: Proposed },
}

/// Queues the request's proposals (in the order of its partitions) and returns the future of
/// its answer.
pub async fn submit(
    broker: &Broker,
    request: ProduceRequest,
) -> BoxFuture<'static, ProduceResponse> {
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
    if broker
        .misbehaving
        .as_ref()
        .is_some_and(|misbehaving| misbehaving.is_stalled())
    {
        // Deliberate misbehaviour (stall-after-ms): never answered.
        return Box::pin(futures::future::pending());
    }
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut topics: Vec<(TopicName, Vec<Pending>)> = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            partitions.push(match acks {
                Err((error, text)) => Pending::Ready(refused(data.index, error.code(), text)),
                Ok(acks) => submit_partition(broker, &name, data, acks).await,
            });
        }
        topics.push((topic.name, partitions));
    }
    Box::pin(async move {
        let topics = topics.into_iter().map(|(name, partitions)| async move {
            let answers = partitions.into_iter().map(|pending| async move {
                match pending {
                    Pending::Ready(response) => response,
                    Pending::Replicating { index, proposed } => {
                        answer(index, proposed, timeout).await
                    }
                }
            });
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(join_all(answers).await)
        });
        ProduceResponse::default().with_responses(join_all(topics).await)
    })
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

async fn submit_partition(
    broker: &Broker,
    topic: &str,
    data: PartitionProduceData,
    acks: Acks,
) -> Pending {
    let index = data.index;
    let Some(partition) = broker.partition(topic, index) else {
        let refusal = match broker.catalog.partition_count(topic) {
            Some(count) if (0..count).contains(&index) => refused(
                index,
                ResponseError::NotLeaderOrFollower.code(),
                "this node holds no replica of the partition",
            ),
            _ => refused(
                index,
                ResponseError::UnknownTopicOrPartition.code(),
                "unknown topic or partition",
            ),
        };
        return Pending::Ready(refusal);
    };
    let Some(records) = data.records.filter(|records| !records.is_empty()) else {
        return Pending::Ready(refused(
            index,
            ResponseError::CorruptMessage.code(),
            "no record batch",
        ));
    };
    let headers = match record_batch::validate_batches(&records, broker.config.max_frame_bytes) {
        Ok(headers) => headers,
        Err(error) => {
            return Pending::Ready(refused(index, error.kafka_error_code(), &error.to_string()))
        }
    };
    if headers.iter().any(|header| header.record_count == 0) {
        let error = ResponseError::InvalidRecord.code();
        return Pending::Ready(refused(
            index,
            error,
            "a record batch must hold at least one record",
        ));
    }
    if headers
        .iter()
        .any(|header| header.is_transactional() || header.is_control())
    {
        let error = ResponseError::InvalidRecord.code();
        let text = "transactional and control batches are not supported";
        return Pending::Ready(refused(index, error, text));
    }
    let view = broker.cluster.view(partition.group_id);
    if !view.is_leader {
        let error = ResponseError::NotLeaderOrFollower.code();
        return Pending::Ready(refused(
            index,
            error,
            "this node does not lead the partition",
        ));
    }
    let hook = broker
        .misbehaving
        .as_ref()
        .map_or(ProduceHook::AsUsual, |misbehaving| {
            misbehaving.before_propose(&partition, view.term, &records, &headers)
        });
    match hook {
        ProduceHook::AsUsual => {}
        ProduceHook::AnswerBeforeCommit { base_offset } => {
            let _ = broker
                .cluster
                .submit_append(partition.group_id, records, false)
                .await;
            return Pending::Ready(accepted(index, base_offset, partition.log_start_offset()));
        }
        ProduceHook::Drop { base_offset } => {
            return Pending::Ready(accepted(index, base_offset, partition.log_start_offset()));
        }
    }
    let wait = acks != Acks::None;
    let proposed = broker
        .cluster
        .submit_append(partition.group_id, records, wait)
        .await;
    Pending::Replicating { index, proposed }
}

async fn answer(index: i32, proposed: Proposed, timeout: Duration) -> PartitionProduceResponse {
    match proposed.outcome(timeout).await {
        Ok(outcome) => {
            let outcome = outcome.unwrap_or(AppendOutcome {
                base_offset: -1,
                log_start_offset: -1,
            });
            accepted(index, outcome.base_offset, outcome.log_start_offset)
        }
        Err(error) => refused(index, error.kafka_error_code(), &error.to_string()),
    }
}

fn accepted(index: i32, base_offset: i64, log_start_offset: i64) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(base_offset)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(log_start_offset)
}
