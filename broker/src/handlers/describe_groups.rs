//! DescribeGroups (API key 15), v0-6. As Kafka: members' metadata, assignment and the
//! protocol are reported for Stable groups only. An unknown group is reported as "Dead"
//! (v0-5) or with GROUP_ID_NOT_FOUND (v6, as KIP-1043).

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::{codes, GroupCoordinator};

/// READ | DELETE | DESCRIBE: what anyone may do to a group (there are no ACLs).
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    respond(&broker.groups, version, request)
}

pub fn respond(
    groups: &GroupCoordinator,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let operations = if version >= 3 && request.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        i32::MIN
    };
    let mut response = DescribeGroupsResponse::default();
    response.throttle_time_ms = 0;
    response.groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let mut out = DescribedGroup::default();
            out.authorized_operations = operations;
            match groups.describe(&group_id) {
                Some(description) => {
                    out.group_state = StrBytes::from_static_str(description.state.name());
                    out.protocol_type = StrBytes::from_string(description.protocol_type);
                    out.protocol_data = StrBytes::from_string(description.protocol);
                    out.members = description
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut member = DescribedGroupMember::default();
                            member.member_id = StrBytes::from_string(m.member_id);
                            if version >= 4 {
                                member.group_instance_id =
                                    m.group_instance_id.map(StrBytes::from_string);
                            }
                            member.client_id = StrBytes::from_string(m.client_id);
                            member.client_host = StrBytes::from_string(m.client_host);
                            member.member_metadata = m.metadata;
                            member.member_assignment = m.assignment;
                            member
                        })
                        .collect();
                }
                None => {
                    out.group_state = StrBytes::from_static_str("Dead");
                    if version >= 6 {
                        out.error_code = codes::GROUP_ID_NOT_FOUND;
                        out.error_message = Some(StrBytes::from_string(format!(
                            "Group {} not found.",
                            group_id.as_str()
                        )));
                    }
                }
            }
            out.group_id = group_id;
            out
        })
        .collect();
    response
}
