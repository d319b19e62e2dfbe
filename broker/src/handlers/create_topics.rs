use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::message;
use crate::broker::Broker;
use crate::catalog::{CatalogError, MetadataCommand};
use crate::cluster::MetadataError;

pub async fn handle(
    broker: &Broker,
    _version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        // -1 means "the broker default".
        let partitions = match topic.num_partitions {
            -1 => broker.config.default_partitions,
            count => count,
        };
        let replication_factor = match topic.replication_factor {
            -1 => 1,
            factor => factor,
        };
        let result = CreatableTopicResult::default()
            .with_name(topic.name)
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor);
        if !topic.assignments.is_empty() {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(message("manual replica assignment is not supported")),
            );
            continue;
        }
        let configs: BTreeMap<String, String> = topic
            .configs
            .into_iter()
            .filter_map(|config| Some((config.name.to_string(), config.value?.to_string())))
            .collect();
        let outcome = if request.validate_only {
            let command = MetadataCommand::CreateTopic {
                name: name.clone(),
                topic_id: uuid::Uuid::nil(),
                partitions,
                replication_factor,
                configs,
            };
            broker
                .catalog
                .check(&command)
                .map(|()| uuid::Uuid::nil())
                .map_err(MetadataError::from)
        } else {
            broker
                .create_topic(&name, partitions, replication_factor, configs)
                .await
                .map(|spec| spec.topic_id)
        };
        results.push(match outcome {
            Ok(topic_id) => result.with_topic_id(topic_id),
            Err(error) => result
                .with_error_code(metadata_error_code(&error))
                .with_error_message(message(error.to_string())),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// The Kafka error code for a failed catalog change.
pub fn metadata_error_code(error: &MetadataError) -> i16 {
    match error {
        MetadataError::Refused(refused) => match refused {
            CatalogError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
            CatalogError::NotFound(_) => ResponseError::UnknownTopicOrPartition.code(),
            CatalogError::InvalidName { .. } => ResponseError::InvalidTopicException.code(),
            CatalogError::InvalidPartitions { .. } => ResponseError::InvalidPartitions.code(),
            CatalogError::InvalidReplicationFactor { .. } => {
                ResponseError::InvalidReplicationFactor.code()
            }
            // Not a topic change; the coordinator that wrote it is no longer the leader.
            CatalogError::FormerGroupCoordinator { .. } => ResponseError::NotController.code(),
        },
        // The client refreshes metadata and retries (on the new controller).
        MetadataError::Unavailable => ResponseError::NotController.code(),
        MetadataError::TimedOut => ResponseError::RequestTimedOut.code(),
    }
}
