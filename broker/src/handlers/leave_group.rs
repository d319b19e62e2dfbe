//! LeaveGroup (API key 13), v0-5: v0-2 carry one member id and answer with a top-level
//! error; v3+ carry a batch of members and answer per member.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::broker::Broker;
use crate::group::{codes, GroupCoordinator};

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    respond(&broker.groups, version, request)
}

pub fn respond(
    groups: &GroupCoordinator,
    version: i16,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let mut response = LeaveGroupResponse::default();
    response.throttle_time_ms = 0;
    if request.group_id.is_empty() {
        response.error_code = codes::INVALID_GROUP_ID;
        return response;
    }
    if version <= 2 {
        let members = [(request.member_id.to_string(), None)];
        response.error_code = groups.leave(&request.group_id, &members)[0];
        return response;
    }
    let members: Vec<(String, Option<String>)> = request
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|s| s.to_string()),
            )
        })
        .collect();
    let errors = groups.leave(&request.group_id, &members);
    response.error_code = codes::NONE;
    response.members = request
        .members
        .into_iter()
        .zip(errors)
        .map(|(m, error_code)| {
            let mut member = MemberResponse::default();
            member.member_id = m.member_id;
            member.group_instance_id = m.group_instance_id;
            member.error_code = error_code;
            member
        })
        .collect();
    response
}
