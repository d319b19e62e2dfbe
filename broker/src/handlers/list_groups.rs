//! ListGroups (API key 16), v0-5: v4+ filter by state (case-insensitive), v5+ by group type
//! (every group here is "classic").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::{codes, GroupCoordinator};

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    respond(&broker.groups, version, request)
}

pub fn respond(
    groups: &GroupCoordinator,
    version: i16,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let states: Vec<String> = if version >= 4 {
        request
            .states_filter
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if version >= 5 {
        request
            .types_filter
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let mut response = ListGroupsResponse::default();
    response.throttle_time_ms = 0;
    response.error_code = codes::NONE;
    response.groups = groups
        .list()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.name().to_ascii_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|g| {
            let mut listed = ListedGroup::default();
            listed.group_id = GroupId(StrBytes::from_string(g.group_id));
            listed.protocol_type = StrBytes::from_string(g.protocol_type);
            if version >= 4 {
                listed.group_state = StrBytes::from_static_str(g.state.name());
            }
            if version >= 5 {
                listed.group_type = StrBytes::from_static_str("classic");
            }
            listed
        })
        .collect();
    response
}
