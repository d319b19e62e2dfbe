//! OffsetFetch (API key 9), v1-9 (the versions kafka-protocol 0.18 decodes; v10's topic ids
//! are not supported). v1-7 fetch one group (top-level `group_id`/`topics`), v8+ a batch
//! (`groups`). Null topics (v2+) mean every partition the group committed. Partitions without
//! a committed offset answer offset -1, metadata "".

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::{codes, FetchedOffset, GroupCoordinator};

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    respond(&broker.groups, version, request)
}

fn topic_name(name: String) -> TopicName {
    TopicName(StrBytes::from_string(name))
}

pub fn respond(
    groups: &GroupCoordinator,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    response.throttle_time_ms = 0;
    if version >= 8 {
        response.groups = request
            .groups
            .into_iter()
            .map(|group| {
                let topics: Option<Vec<(String, Vec<i32>)>> = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let fetched = groups.fetch_offsets(&group.group_id, topics.as_deref());
                let mut out = OffsetFetchResponseGroup::default();
                out.group_id = group.group_id;
                out.error_code = codes::NONE;
                out.topics = fetched
                    .into_iter()
                    .map(|(name, partitions)| {
                        let mut topic = OffsetFetchResponseTopics::default();
                        topic.name = topic_name(name);
                        topic.partitions = partitions.into_iter().map(partition_v8).collect();
                        topic
                    })
                    .collect();
                out
            })
            .collect();
        return response;
    }
    let topics: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let fetched = groups.fetch_offsets(&request.group_id, topics.as_deref());
    response.topics = fetched
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = OffsetFetchResponseTopic::default();
            topic.name = topic_name(name);
            topic.partitions = partitions
                .into_iter()
                .map(|f| partition_v1(version, f))
                .collect();
            topic
        })
        .collect();
    if version >= 2 {
        response.error_code = codes::NONE;
    }
    response
}

fn partition_v1(version: i16, fetched: FetchedOffset) -> OffsetFetchResponsePartition {
    let mut partition = OffsetFetchResponsePartition::default();
    partition.partition_index = fetched.partition;
    partition.committed_offset = fetched.offset;
    if version >= 5 {
        partition.committed_leader_epoch = fetched.leader_epoch;
    }
    partition.metadata = Some(StrBytes::from_string(fetched.metadata));
    partition.error_code = codes::NONE;
    partition
}

fn partition_v8(fetched: FetchedOffset) -> OffsetFetchResponsePartitions {
    let mut partition = OffsetFetchResponsePartitions::default();
    partition.partition_index = fetched.partition;
    partition.committed_offset = fetched.offset;
    partition.committed_leader_epoch = fetched.leader_epoch;
    partition.metadata = Some(StrBytes::from_string(fetched.metadata));
    partition.error_code = codes::NONE;
    partition
}
