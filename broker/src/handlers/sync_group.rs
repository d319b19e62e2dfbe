//! SyncGroup (API key 14), v0-5. The leader's call carries the assignment; followers'
//! calls park until it arrives.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::{GroupCoordinator, SyncRequest, SyncResult};

pub async fn handle(broker: &Broker, version: i16, request: SyncGroupRequest) -> SyncGroupResponse {
    respond(&broker.groups, version, request).await
}

pub async fn respond(
    groups: &GroupCoordinator,
    version: i16,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let sync = SyncRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        generation_id: request.generation_id,
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        protocol_type: request.protocol_type.map(|s| s.to_string()),
        protocol_name: request.protocol_name.map(|s| s.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    to_response(version, groups.sync(sync).await)
}

pub fn to_response(version: i16, result: SyncResult) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default();
    response.throttle_time_ms = 0;
    response.error_code = result.error;
    if version >= 5 {
        response.protocol_type = result.protocol_type.map(StrBytes::from_string);
        response.protocol_name = result.protocol_name.map(StrBytes::from_string);
    }
    response.assignment = result.assignment;
    response
}
