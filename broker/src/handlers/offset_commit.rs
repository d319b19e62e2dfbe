//! OffsetCommit (API key 8), v2-9 (the versions kafka-protocol 0.18 decodes; v10's topic ids
//! are not supported). The offsets are durable (fdatasync'd) before the response.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::broker::Broker;
use crate::group::coordinator::MAX_OFFSET_METADATA;
use crate::group::{codes, CommitOffset, GroupCoordinator};

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let catalog = &broker.catalog;
    respond(&broker.groups, version, request, |topic| {
        catalog.partition_count(topic)
    })
    .await
}

/// `partition_count(topic)`: the topic's partitions, None for an unknown topic.
pub async fn respond(
    groups: &GroupCoordinator,
    _version: i16,
    request: OffsetCommitRequest,
    partition_count: impl Fn(&str) -> Option<i32>,
) -> OffsetCommitResponse {
    // Per partition: Some(error) decided here, None: the group's verdict applies.
    let mut verdicts: Vec<Vec<Option<i16>>> = Vec::with_capacity(request.topics.len());
    let mut valid = Vec::new();
    for topic in &request.topics {
        let count = partition_count(&topic.name);
        let mut topic_verdicts = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let known = count.is_some_and(|c| p.partition_index >= 0 && p.partition_index < c);
            let metadata_len = p.committed_metadata.as_ref().map_or(0, |m| m.len());
            if !known {
                topic_verdicts.push(Some(codes::UNKNOWN_TOPIC_OR_PARTITION));
            } else if metadata_len > MAX_OFFSET_METADATA {
                topic_verdicts.push(Some(codes::OFFSET_METADATA_TOO_LARGE));
            } else {
                topic_verdicts.push(None);
                valid.push(CommitOffset {
                    topic: topic.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                });
            }
        }
        verdicts.push(topic_verdicts);
    }
    let group_error = if valid.is_empty() {
        codes::NONE
    } else {
        groups
            .commit_offsets(
                &request.group_id,
                &request.member_id,
                request.generation_id_or_member_epoch,
                valid,
            )
            .await
    };
    let mut response = OffsetCommitResponse::default();
    response.throttle_time_ms = 0;
    response.topics = request
        .topics
        .into_iter()
        .zip(verdicts)
        .map(|(topic, topic_verdicts)| {
            let mut out = OffsetCommitResponseTopic::default();
            out.partitions = topic
                .partitions
                .iter()
                .zip(topic_verdicts)
                .map(|(p, verdict)| {
                    let mut partition = OffsetCommitResponsePartition::default();
                    partition.partition_index = p.partition_index;
                    partition.error_code = verdict.unwrap_or(group_error);
                    partition
                })
                .collect();
            out.name = topic.name;
            out
        })
        .collect();
    response
}
