use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    _version: i16,
    _request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let (host, port) = broker.config.advertised();
    let node = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.config.node_id))
        .with_host(StrBytes::from_string(host))
        .with_port(port);
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(
            super::metadata::CLUSTER_ID.to_string(),
        ))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_brokers(vec![node])
        .with_cluster_authorized_operations(i32::MIN)
}
