use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::create_topics::metadata_error_code;
use super::message;
use crate::broker::Broker;
use crate::catalog::MetadataCommand;
use crate::cluster::MetadataError;

pub async fn handle(
    broker: &Broker,
    _version: i16,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = CreatePartitionsTopicResult::default().with_name(topic.name);
        if topic.assignments.is_some() {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(message("manual replica assignment is not supported")),
            );
            continue;
        }
        let outcome = if request.validate_only {
            let command = MetadataCommand::CreatePartitions {
                name: name.clone(),
                count: topic.count,
            };
            broker.catalog.check(&command).map_err(MetadataError::from)
        } else {
            broker.create_partitions(&name, topic.count).await
        };
        results.push(match outcome {
            Ok(()) => result,
            Err(error) => result
                .with_error_code(metadata_error_code(&error))
                .with_error_message(message(error.to_string())),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
