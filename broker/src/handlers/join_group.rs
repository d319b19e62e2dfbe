//! JoinGroup (API key 11), v0-9. Long-poll: the call returns when the join phase completes.
//!
//! Static membership (group_instance_id, v5+) is treated as dynamic: the instance id is kept
//! for DescribeGroups, and a new member with the instance id of an existing one replaces it
//! (with a rebalance, where Kafka would skip it).

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::{GroupCoordinator, JoinRequest, JoinResult};

/// `client_id` comes from the request header and `client_host` from the connection; both are
/// reported by DescribeGroups (Kafka writes hosts as "/127.0.0.1").
pub async fn handle(
    broker: &Broker,
    version: i16,
    request: JoinGroupRequest,
    client_id: &str,
    client_host: &str,
) -> JoinGroupResponse {
    respond(&broker.groups, version, request, client_id, client_host).await
}

pub async fn respond(
    groups: &GroupCoordinator,
    version: i16,
    request: JoinGroupRequest,
    client_id: &str,
    client_host: &str,
) -> JoinGroupResponse {
    let session_timeout_ms = request.session_timeout_ms;
    // v0 has no rebalance timeout: the session timeout doubles as one.
    let rebalance_timeout_ms = if version == 0 || request.rebalance_timeout_ms <= 0 {
        session_timeout_ms
    } else {
        request.rebalance_timeout_ms
    };
    let join = JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    to_response(version, groups.join(join).await)
}

pub fn to_response(version: i16, result: JoinResult) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.throttle_time_ms = 0;
    response.error_code = result.error;
    response.generation_id = result.generation_id;
    if version >= 7 {
        response.protocol_type = result.protocol_type.map(StrBytes::from_string);
    }
    // Nullable from v7 only; before that an absent protocol is "".
    response.protocol_name = match result.protocol_name {
        Some(name) => Some(StrBytes::from_string(name)),
        None if version >= 7 => None,
        None => Some(StrBytes::new()),
    };
    response.leader = StrBytes::from_string(result.leader);
    response.skip_assignment = false;
    response.member_id = StrBytes::from_string(result.member_id);
    response.members = result
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default();
            member.member_id = StrBytes::from_string(m.member_id);
            if version >= 5 {
                member.group_instance_id = m.group_instance_id.map(StrBytes::from_string);
            }
            member.metadata = m.metadata;
            member
        })
        .collect();
    response
}
