//! The answer of a node that is not the group coordinator (the metadata leader) to a group
//! request: NOT_COORDINATOR in the places each API and version reports errors, so the client
//! looks the coordinator up again instead of talking to a stale one.

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;

use crate::group::codes::NOT_COORDINATOR;

/// `Some(answer)` for the APIs only the coordinator serves; `None` for every other request.
pub fn answer(request: &RequestKind, version: i16) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::JoinGroup(_) => ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(NOT_COORDINATOR)
                .with_generation_id(-1),
        ),
        RequestKind::SyncGroup(_) => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(NOT_COORDINATOR))
        }
        RequestKind::Heartbeat(_) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(NOT_COORDINATOR))
        }
        RequestKind::LeaveGroup(request) => {
            let members = request
                .members
                .iter()
                .map(|member| {
                    MemberResponse::default()
                        .with_member_id(member.member_id.clone())
                        .with_group_instance_id(member.group_instance_id.clone())
                        .with_error_code(NOT_COORDINATOR)
                })
                .collect();
            let response = LeaveGroupResponse::default().with_error_code(NOT_COORDINATOR);
            ResponseKind::LeaveGroup(if version >= 3 {
                response.with_members(members)
            } else {
                response
            })
        }
        RequestKind::OffsetCommit(request) => {
            let topics = request
                .topics
                .iter()
                .map(|topic| {
                    let partitions = topic
                        .partitions
                        .iter()
                        .map(|partition| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(partition.partition_index)
                                .with_error_code(NOT_COORDINATOR)
                        })
                        .collect();
                    OffsetCommitResponseTopic::default()
                        .with_name(topic.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
        }
        RequestKind::OffsetFetch(request) => {
            ResponseKind::OffsetFetch(offset_fetch(request, version))
        }
        RequestKind::DescribeGroups(request) => {
            let groups = request
                .groups
                .iter()
                .map(|group| {
                    DescribedGroup::default()
                        .with_group_id(group.clone())
                        .with_error_code(NOT_COORDINATOR)
                })
                .collect();
            ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(groups))
        }
        _ => return None,
    })
}

fn offset_fetch(request: &OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .iter()
            .map(|group| {
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id.clone())
                    .with_error_code(NOT_COORDINATOR)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if version >= 2 {
        return OffsetFetchResponse::default().with_error_code(NOT_COORDINATOR);
    }
    // v0-1 report errors per partition only.
    let topics = request
        .topics
        .iter()
        .flatten()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(*index)
                        .with_committed_offset(-1)
                        .with_error_code(NOT_COORDINATOR)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::encode_response;
    use crate::wire::versions::supported_range;
    use kafka_protocol::protocol::StrBytes;

    fn requests() -> Vec<(ApiKey, RequestKind)> {
        let group = GroupId(StrBytes::from_static_str("g"));
        let topic = TopicName(StrBytes::from_static_str("t"));
        vec![
            (
                ApiKey::JoinGroup,
                RequestKind::JoinGroup(JoinGroupRequest::default()),
            ),
            (
                ApiKey::SyncGroup,
                RequestKind::SyncGroup(SyncGroupRequest::default()),
            ),
            (
                ApiKey::Heartbeat,
                RequestKind::Heartbeat(HeartbeatRequest::default()),
            ),
            (
                ApiKey::LeaveGroup,
                RequestKind::LeaveGroup(
                    LeaveGroupRequest::default()
                        .with_members(vec![leave_group_request::MemberIdentity::default()]),
                ),
            ),
            (
                ApiKey::OffsetCommit,
                RequestKind::OffsetCommit(OffsetCommitRequest::default().with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic.clone())
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default(),
                        ]),
                ])),
            ),
            (
                ApiKey::OffsetFetch,
                RequestKind::OffsetFetch(
                    OffsetFetchRequest::default()
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(topic)
                                .with_partition_indexes(vec![0]),
                        ]))
                        .with_groups(vec![
                            offset_fetch_request::OffsetFetchRequestGroup::default()
                                .with_group_id(group.clone()),
                        ]),
                ),
            ),
            (
                ApiKey::DescribeGroups,
                RequestKind::DescribeGroups(
                    DescribeGroupsRequest::default().with_groups(vec![group]),
                ),
            ),
        ]
    }

    #[test]
    fn every_refusal_encodes_at_every_advertised_version_and_carries_the_error() {
        for (api_key, request) in requests() {
            let (min, max) = supported_range(api_key).unwrap();
            for version in min..=max {
                let answer = answer(&request, version).expect("a coordinator API");
                let encoded = encode_response(1, version, &answer);
                assert!(
                    encoded.is_ok(),
                    "{api_key:?} v{version}: {:?}",
                    encoded.err()
                );
                let text = format!("{answer:?}");
                assert!(
                    text.contains("error_code: 16"),
                    "{api_key:?} v{version} lacks the error: {text}"
                );
            }
        }
        assert!(answer(&RequestKind::ApiVersions(ApiVersionsRequest::default()), 3).is_none());
    }
}
