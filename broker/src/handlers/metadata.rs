use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

use crate::broker::Broker;
use crate::catalog::{CatalogError, TopicSpec};

/// The cluster id reported to clients.
pub const CLUSTER_ID: &str = "chronik";

pub async fn handle(broker: &Broker, version: i16, request: MetadataRequest) -> MetadataResponse {
    let node_id = BrokerId(broker.config.node_id);
    let (host, port) = broker.config.advertised();
    let brokers = vec![MetadataResponseBroker::default()
        .with_node_id(node_id)
        .with_host(StrBytes::from_string(host))
        .with_port(port)];
    // v0-3 always allow auto-creation; v4+ ask for it explicitly.
    let may_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let topics = match request.topics {
        // v0 has no null: an empty list means all topics; v1+ null means all.
        None => all_topics(broker),
        Some(requested) if requested.is_empty() && version == 0 => all_topics(broker),
        Some(requested) => requested
            .into_iter()
            .map(|topic| match topic.name {
                Some(name) => describe_or_create(broker, name.0.as_str(), may_create),
                None => broker
                    .catalog
                    .topic_by_id(topic.topic_id)
                    .ok_or((String::new(), ResponseError::UnknownTopicId.code())),
            })
            .collect(),
    };
    let topics = topics
        .into_iter()
        .map(|topic| match topic {
            Ok(spec) => describe_topic(&spec, node_id),
            Err((name, error_code)) => MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name))))
                .with_error_code(error_code),
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(node_id)
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}

type TopicLookup = Result<TopicSpec, (String, i16)>;

fn all_topics(broker: &Broker) -> Vec<TopicLookup> {
    broker.catalog.topics().into_iter().map(Ok).collect()
}

fn describe_or_create(broker: &Broker, name: &str, may_create: bool) -> TopicLookup {
    if let Some(spec) = broker.catalog.topic(name) {
        return Ok(spec);
    }
    if !may_create {
        return Err((
            name.to_string(),
            ResponseError::UnknownTopicOrPartition.code(),
        ));
    }
    match broker.create_topic(name, broker.config.default_partitions, 1, BTreeMap::new()) {
        Ok(spec) => Ok(spec),
        // Created by a concurrent request in the meantime.
        Err(CatalogError::AlreadyExists(_)) => broker.catalog.topic(name).ok_or((
            name.to_string(),
            ResponseError::UnknownTopicOrPartition.code(),
        )),
        Err(CatalogError::InvalidName { .. }) => Err((
            name.to_string(),
            ResponseError::InvalidTopicException.code(),
        )),
        Err(_) => Err((name.to_string(), ResponseError::UnknownServerError.code())),
    }
}

fn describe_topic(spec: &TopicSpec, node_id: BrokerId) -> MetadataResponseTopic {
    let partitions = (0..spec.partitions)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node_id)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node_id])
                .with_isr_nodes(vec![node_id])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(spec.name.clone()))))
        .with_topic_id(spec.topic_id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
