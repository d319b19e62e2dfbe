use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    _version: i16,
    _request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let brokers = broker
        .catalog
        .brokers()
        .into_iter()
        .map(|address| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(address.node_id))
                .with_host(StrBytes::from_string(address.host))
                .with_port(address.port)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(
            super::metadata::CLUSTER_ID.to_string(),
        ))
        .with_controller_id(BrokerId(broker.cluster.metadata_leader().unwrap_or(-1)))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN)
}
