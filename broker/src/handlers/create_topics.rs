use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::message;
use crate::broker::Broker;
use crate::catalog::CatalogError;

/// Number of nodes that can hold a replica (one until replication arrives).
const NODES: i16 = 1;

pub async fn handle(
    broker: &Broker,
    _version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            // -1 means "the broker default".
            let partitions =
                if topic.num_partitions == -1 { broker.config.default_partitions } else { topic.num_partitions };
            let replication_factor =
                if topic.replication_factor == -1 { 1 } else { topic.replication_factor };
            let result = CreatableTopicResult::default()
                .with_name(topic.name)
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor);
            if replication_factor < 1 || replication_factor > NODES {
                return result
                    .with_error_code(ResponseError::InvalidReplicationFactor.code())
                    .with_error_message(message(format!(
                        "replication factor {replication_factor} is not between 1 and the {NODES} available node(s)"
                    )));
            }
            if !topic.assignments.is_empty() {
                return result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(message("manual replica assignment is not supported"));
            }
            let configs: BTreeMap<String, String> = topic
                .configs
                .into_iter()
                .filter_map(|config| Some((config.name.to_string(), config.value?.to_string())))
                .collect();
            let outcome = if request.validate_only {
                crate::catalog::validate_topic_name(&name).and_then(|()| {
                    match broker.catalog.topic(&name) {
                        Some(_) => Err(CatalogError::AlreadyExists(name.clone())),
                        None => Ok(uuid::Uuid::nil()),
                    }
                })
            } else {
                broker
                    .create_topic(&name, partitions, replication_factor, configs)
                    .map(|spec| spec.topic_id)
            };
            match outcome {
                Ok(topic_id) => result.with_topic_id(topic_id),
                Err(error) => result
                    .with_error_code(catalog_error_code(&error))
                    .with_error_message(message(error.to_string())),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

pub fn catalog_error_code(error: &CatalogError) -> i16 {
    match error {
        CatalogError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
        CatalogError::NotFound(_) => ResponseError::UnknownTopicOrPartition.code(),
        CatalogError::InvalidName { .. } => ResponseError::InvalidTopicException.code(),
        CatalogError::InvalidPartitions { .. } => ResponseError::InvalidPartitions.code(),
        CatalogError::Io { .. } | CatalogError::Corrupt { .. } => {
            ResponseError::KafkaStorageError.code()
        }
    }
}
