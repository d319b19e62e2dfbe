//! One handler per Kafka API, each `async fn handle(&Broker, version, Request) -> Response`.
//! `dispatch` routes a decoded request to its handler; the codec has already refused every
//! API and version that `wire::versions` does not list.

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod not_coordinator;
pub mod offset_commit;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

#[cfg(test)]
mod encoding_tests;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use tracing::error;

use crate::broker::Broker;

/// Routes a request to its handler. `None` only for an API the codec should have refused.
/// `peer_host` is the client's address as group descriptions show it.
pub async fn dispatch(
    broker: &Broker,
    header: &RequestHeader,
    peer_host: &str,
    request: RequestKind,
) -> Option<ResponseKind> {
    let version = header.request_api_version;
    if !broker.is_coordinator() {
        if let Some(refusal) = not_coordinator::answer(&request, version) {
            return Some(refusal);
        }
    }
    let response = match request {
        RequestKind::ApiVersions(request) => {
            ResponseKind::ApiVersions(api_versions::handle(broker, version, request).await)
        }
        RequestKind::Metadata(request) => {
            ResponseKind::Metadata(metadata::handle(broker, version, request).await)
        }
        RequestKind::Produce(request) => {
            ResponseKind::Produce(produce::handle(broker, version, request).await)
        }
        RequestKind::Fetch(request) => {
            ResponseKind::Fetch(fetch::handle(broker, version, request).await)
        }
        RequestKind::ListOffsets(request) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, version, request).await)
        }
        RequestKind::CreateTopics(request) => {
            ResponseKind::CreateTopics(create_topics::handle(broker, version, request).await)
        }
        RequestKind::DeleteTopics(request) => {
            ResponseKind::DeleteTopics(delete_topics::handle(broker, version, request).await)
        }
        RequestKind::CreatePartitions(request) => ResponseKind::CreatePartitions(
            create_partitions::handle(broker, version, request).await,
        ),
        RequestKind::InitProducerId(request) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, version, request).await)
        }
        RequestKind::DescribeConfigs(request) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(broker, version, request).await)
        }
        RequestKind::DescribeCluster(request) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(broker, version, request).await)
        }
        RequestKind::FindCoordinator(request) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(broker, version, request).await)
        }
        RequestKind::JoinGroup(request) => {
            let client_id = header.client_id.as_deref().unwrap_or("");
            let join = join_group::handle(broker, version, request, client_id, peer_host);
            ResponseKind::JoinGroup(join.await)
        }
        RequestKind::SyncGroup(request) => {
            ResponseKind::SyncGroup(sync_group::handle(broker, version, request).await)
        }
        RequestKind::Heartbeat(request) => {
            ResponseKind::Heartbeat(heartbeat::handle(broker, version, request).await)
        }
        RequestKind::LeaveGroup(request) => {
            ResponseKind::LeaveGroup(leave_group::handle(broker, version, request).await)
        }
        RequestKind::OffsetCommit(request) => {
            ResponseKind::OffsetCommit(offset_commit::handle(broker, version, request).await)
        }
        RequestKind::OffsetFetch(request) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(broker, version, request).await)
        }
        RequestKind::DescribeGroups(request) => {
            ResponseKind::DescribeGroups(describe_groups::handle(broker, version, request).await)
        }
        RequestKind::ListGroups(request) => {
            ResponseKind::ListGroups(list_groups::handle(broker, version, request).await)
        }
        other => {
            error!(request = ?std::mem::discriminant(&other), "request reached dispatch without a handler");
            return None;
        }
    };
    Some(response)
}

/// A message string for a response's error_message field.
pub(crate) fn message(text: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.into()))
}
