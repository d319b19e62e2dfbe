//! Handler tests at every supported version: requests are encoded and decoded at the version
//! (so absent fields take kafka-protocol's defaults, as they would off the wire), handled, and
//! the responses encoded and decoded at the version (kafka-protocol refuses to encode a field
//! set that the version does not carry).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::codes;
use super::tests_membership::open;
use crate::handlers::{
    describe_groups, find_coordinator, heartbeat, join_group, leave_group, list_groups,
    offset_commit, offset_fetch, sync_group,
};

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn gid(text: &str) -> GroupId {
    GroupId(s(text))
}

/// Encodes and decodes at `version`.
fn wire<T: Encodable + Decodable>(message: &T, version: i16) -> T {
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encode at v{version}: {e}"));
    let mut bytes = buf.freeze();
    let decoded =
        T::decode(&mut bytes, version).unwrap_or_else(|e| panic!("decode at v{version}: {e}"));
    assert!(bytes.is_empty(), "trailing bytes at v{version}");
    decoded
}

#[test]
fn find_coordinator_all_versions() {
    for version in 0..=6i16 {
        let mut request = FindCoordinatorRequest::default();
        if version >= 4 {
            request.coordinator_keys = vec![s("g1"), s("g2")];
        } else {
            request.key = s("g1");
        }
        let request = wire(&request, version);
        let response = wire(
            &find_coordinator::respond(7, "localhost", 9093, version, request),
            version,
        );
        if version >= 4 {
            assert_eq!(response.coordinators.len(), 2);
            let c = &response.coordinators[1];
            assert_eq!(
                (c.key.as_str(), c.node_id.0, c.host.as_str(), c.port),
                ("g2", 7, "localhost", 9093)
            );
            assert_eq!(c.error_code, codes::NONE);
        } else {
            assert_eq!(response.error_code, codes::NONE);
            assert_eq!(
                (response.node_id.0, response.host.as_str(), response.port),
                (7, "localhost", 9093)
            );
        }
        if version >= 1 {
            let mut txn = FindCoordinatorRequest::default();
            txn.key_type = 1;
            if version >= 4 {
                txn.coordinator_keys = vec![s("txn")];
            } else {
                txn.key = s("txn");
            }
            let response = wire(
                &find_coordinator::respond(7, "h", 1, version, wire(&txn, version)),
                version,
            );
            let error = if version >= 4 {
                response.coordinators[0].error_code
            } else {
                response.error_code
            };
            assert_eq!(error, codes::COORDINATOR_NOT_AVAILABLE);
        }
    }
}

fn join_request(group: &str, member: &str, version: i16) -> JoinGroupRequest {
    let mut request = JoinGroupRequest::default();
    request.group_id = gid(group);
    request.member_id = s(member);
    request.session_timeout_ms = 10_000;
    request.rebalance_timeout_ms = if version >= 1 { 5_000 } else { -1 };
    request.protocol_type = s("consumer");
    let mut protocol = JoinGroupRequestProtocol::default();
    protocol.name = s("range");
    protocol.metadata = Bytes::from_static(b"meta");
    request.protocols = vec![protocol];
    wire(&request, version)
}

#[tokio::test]
async fn membership_apis_all_versions() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    for version in 0..=9i16 {
        let group = format!("g{version}");
        let first = join_group::respond(
            &coord,
            version,
            join_request(&group, "", version),
            "rdkafka",
            "/127.0.0.1",
        )
        .await;
        let member = if version >= 4 {
            let response = wire(&first, version);
            assert_eq!(response.error_code, codes::MEMBER_ID_REQUIRED);
            assert!(response.member_id.starts_with("rdkafka-"));
            let member = response.member_id.to_string();
            let joined = wire(
                &join_group::respond(
                    &coord,
                    version,
                    join_request(&group, &member, version),
                    "rdkafka",
                    "/127.0.0.1",
                )
                .await,
                version,
            );
            check_joined(&joined, &member, version);
            member
        } else {
            let joined = wire(&first, version);
            check_joined(&joined, joined.member_id.as_str(), version);
            joined.member_id.to_string()
        };

        let sync_version = version.min(5);
        let mut sync = SyncGroupRequest::default();
        sync.group_id = gid(&group);
        sync.generation_id = 1;
        sync.member_id = s(&member);
        if sync_version >= 5 {
            sync.protocol_type = Some(s("consumer"));
            sync.protocol_name = Some(s("range"));
        }
        let mut assignment = SyncGroupRequestAssignment::default();
        assignment.member_id = s(&member);
        assignment.assignment = Bytes::from_static(b"mine");
        sync.assignments = vec![assignment];
        let synced = wire(
            &sync_group::respond(&coord, sync_version, wire(&sync, sync_version)).await,
            sync_version,
        );
        assert_eq!(synced.error_code, codes::NONE);
        assert_eq!(synced.assignment, Bytes::from_static(b"mine"));
        if sync_version >= 5 {
            assert_eq!(synced.protocol_name.as_deref(), Some("range"));
            assert_eq!(synced.protocol_type.as_deref(), Some("consumer"));
        }

        let hb_version = version.min(4);
        let mut hb = HeartbeatRequest::default();
        hb.group_id = gid(&group);
        hb.generation_id = 1;
        hb.member_id = s(&member);
        let beat = wire(
            &heartbeat::respond(&coord, hb_version, wire(&hb, hb_version)),
            hb_version,
        );
        assert_eq!(beat.error_code, codes::NONE);
        hb.generation_id = 0;
        let beat = wire(
            &heartbeat::respond(&coord, hb_version, wire(&hb, hb_version)),
            hb_version,
        );
        assert_eq!(beat.error_code, codes::ILLEGAL_GENERATION);

        let leave_version = version.min(5);
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = gid(&group);
        if leave_version >= 3 {
            let mut identity = MemberIdentity::default();
            identity.member_id = s(&member);
            let mut stranger = MemberIdentity::default();
            stranger.member_id = s("stranger");
            leave.members = vec![identity, stranger];
        } else {
            leave.member_id = s(&member);
        }
        let left = wire(
            &leave_group::respond(&coord, leave_version, wire(&leave, leave_version)),
            leave_version,
        );
        assert_eq!(left.error_code, codes::NONE);
        if leave_version >= 3 {
            let errors: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
            assert_eq!(errors, vec![codes::NONE, codes::UNKNOWN_MEMBER_ID]);
        } else {
            let again = wire(
                &leave_group::respond(&coord, leave_version, wire(&leave, leave_version)),
                leave_version,
            );
            assert_eq!(again.error_code, codes::UNKNOWN_MEMBER_ID);
        }
    }
}

fn check_joined(joined: &JoinGroupResponse, member: &str, version: i16) {
    assert_eq!(joined.error_code, codes::NONE, "v{version}");
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.member_id.as_str(), member);
    assert_eq!(joined.leader.as_str(), member);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    if version >= 7 {
        assert_eq!(joined.protocol_type.as_deref(), Some("consumer"));
    }
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, Bytes::from_static(b"meta"));
}

#[tokio::test]
async fn offset_commit_and_fetch_all_versions() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let catalog = |topic: &str| if topic == "t" { Some(2) } else { None };
    for version in 2..=9i16 {
        let group = format!("c{version}");
        let mut request = OffsetCommitRequest::default();
        request.group_id = gid(&group);
        request.generation_id_or_member_epoch = -1;
        let partition = |index: i32, offset: i64| {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = index;
            p.committed_offset = offset;
            p.committed_leader_epoch = if version >= 6 { 4 } else { -1 };
            p.committed_metadata = Some(s("meta"));
            p
        };
        let mut known = OffsetCommitRequestTopic::default();
        known.name = TopicName(s("t"));
        known.partitions = vec![partition(0, 100), partition(1, 101), partition(2, 102)];
        let mut unknown = OffsetCommitRequestTopic::default();
        unknown.name = TopicName(s("x"));
        unknown.partitions = vec![partition(0, 1)];
        request.topics = vec![known, unknown];
        let response = wire(
            &offset_commit::respond(&coord, version, wire(&request, version), catalog).await,
            version,
        );
        let errors: Vec<Vec<i16>> = response
            .topics
            .iter()
            .map(|t| t.partitions.iter().map(|p| p.error_code).collect())
            .collect();
        assert_eq!(
            errors,
            vec![
                vec![codes::NONE, codes::NONE, codes::UNKNOWN_TOPIC_OR_PARTITION],
                vec![codes::UNKNOWN_TOPIC_OR_PARTITION]
            ],
            "v{version}"
        );
        assert_eq!(response.topics[0].name.as_str(), "t");
    }
    for version in 1..=9i16 {
        let group = format!("c{}", version.max(2));
        let mut request = OffsetFetchRequest::default();
        if version >= 8 {
            let mut g = OffsetFetchRequestGroup::default();
            g.group_id = gid(&group);
            let mut topic = OffsetFetchRequestTopics::default();
            topic.name = TopicName(s("t"));
            topic.partition_indexes = vec![0, 1, 2];
            g.topics = Some(vec![topic]);
            let mut all = OffsetFetchRequestGroup::default();
            all.group_id = gid(&group);
            all.topics = None;
            request.groups = vec![g, all];
        } else {
            request.group_id = gid(&group);
            let mut topic = OffsetFetchRequestTopic::default();
            topic.name = TopicName(s("t"));
            topic.partition_indexes = vec![0, 1, 2];
            request.topics = Some(vec![topic]);
        }
        let response = wire(
            &offset_fetch::respond(&coord, version, wire(&request, version)),
            version,
        );
        let expected_epoch = |committed_at: i16| {
            if committed_at >= 6 && (version >= 5) {
                4
            } else {
                -1
            }
        };
        let committed_at = version.max(2);
        if version >= 8 {
            assert_eq!(response.groups.len(), 2);
            let g = &response.groups[0];
            assert_eq!(g.error_code, codes::NONE);
            let p: Vec<(i32, i64, i32)> = g.topics[0]
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                    )
                })
                .collect();
            let e = expected_epoch(committed_at);
            assert_eq!(p, vec![(0, 100, e), (1, 101, e), (2, -1, -1)]);
            assert_eq!(g.topics[0].partitions[0].metadata.as_deref(), Some("meta"));
            // Null topics: all committed partitions.
            assert_eq!(response.groups[1].topics[0].partitions.len(), 2);
        } else {
            let p: Vec<(i32, i64, i32)> = response.topics[0]
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                    )
                })
                .collect();
            let e = expected_epoch(committed_at);
            assert_eq!(p, vec![(0, 100, e), (1, 101, e), (2, -1, -1)], "v{version}");
            assert_eq!(
                response.topics[0].partitions[2].metadata.as_deref(),
                Some("")
            );
            if version >= 2 {
                let mut all = OffsetFetchRequest::default();
                all.group_id = gid(&group);
                all.topics = None;
                let response = wire(
                    &offset_fetch::respond(&coord, version, wire(&all, version)),
                    version,
                );
                assert_eq!(response.topics[0].partitions.len(), 2);
            }
        }
    }
}

#[tokio::test]
async fn describe_and_list_all_versions() {
    let dir = tempfile::tempdir().unwrap();
    let coord = open(dir.path(), 0);
    let joined = join_group::respond(&coord, 3, join_request("d", "", 3), "cli", "/10.0.0.1").await;
    let member = joined.member_id.to_string();
    let mut sync = SyncGroupRequest::default();
    sync.group_id = gid("d");
    sync.generation_id = 1;
    sync.member_id = s(&member);
    let mut assignment = SyncGroupRequestAssignment::default();
    assignment.member_id = s(&member);
    assignment.assignment = Bytes::from_static(b"a");
    sync.assignments = vec![assignment];
    sync_group::respond(&coord, 3, sync).await;
    for version in 0..=6i16 {
        let mut request = DescribeGroupsRequest::default();
        request.groups = vec![gid("d"), gid("unknown")];
        request.include_authorized_operations = version >= 3;
        let response = wire(
            &describe_groups::respond(&coord, version, wire(&request, version)),
            version,
        );
        let d = &response.groups[0];
        assert_eq!(d.group_state.as_str(), "Stable");
        assert_eq!(d.protocol_type.as_str(), "consumer");
        assert_eq!(d.protocol_data.as_str(), "range");
        assert_eq!(d.members[0].client_id.as_str(), "cli");
        assert_eq!(d.members[0].client_host.as_str(), "/10.0.0.1");
        assert_eq!(d.members[0].member_assignment, Bytes::from_static(b"a"));
        assert_eq!(d.members[0].member_metadata, Bytes::from_static(b"meta"));
        if version >= 3 {
            assert_ne!(d.authorized_operations, i32::MIN);
        }
        let unknown = &response.groups[1];
        assert_eq!(unknown.group_state.as_str(), "Dead");
        let expected = if version >= 6 {
            codes::GROUP_ID_NOT_FOUND
        } else {
            codes::NONE
        };
        assert_eq!(unknown.error_code, expected);
    }
    for version in 0..=5i16 {
        let mut request = ListGroupsRequest::default();
        let response = wire(
            &list_groups::respond(&coord, version, wire(&request, version)),
            version,
        );
        assert_eq!(response.groups.len(), 1);
        assert_eq!(response.groups[0].group_id.as_str(), "d");
        assert_eq!(response.groups[0].protocol_type.as_str(), "consumer");
        if version >= 4 {
            assert_eq!(response.groups[0].group_state.as_str(), "Stable");
            request.states_filter = vec![s("empty")];
            let filtered = wire(
                &list_groups::respond(&coord, version, wire(&request, version)),
                version,
            );
            assert!(filtered.groups.is_empty());
            request.states_filter = vec![s("STABLE")];
            let filtered = wire(
                &list_groups::respond(&coord, version, wire(&request, version)),
                version,
            );
            assert_eq!(filtered.groups.len(), 1);
        }
        if version >= 5 {
            assert_eq!(response.groups[0].group_type.as_str(), "classic");
            request.types_filter = vec![s("consumer")];
            let filtered = wire(
                &list_groups::respond(&coord, version, wire(&request, version)),
                version,
            );
            assert!(filtered.groups.is_empty());
        }
    }
}
