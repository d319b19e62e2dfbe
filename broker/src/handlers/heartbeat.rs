//! Heartbeat (API key 12), v0-4.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;
use crate::group::GroupCoordinator;

pub async fn handle(broker: &Broker, version: i16, request: HeartbeatRequest) -> HeartbeatResponse {
    respond(&broker.groups, version, request)
}

pub fn respond(
    groups: &GroupCoordinator,
    _version: i16,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let mut response = HeartbeatResponse::default();
    response.throttle_time_ms = 0;
    response.error_code =
        groups.heartbeat(&request.group_id, &request.member_id, request.generation_id);
    response
}
