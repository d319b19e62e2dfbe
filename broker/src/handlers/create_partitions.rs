use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::create_topics::catalog_error_code;
use super::message;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    _version: i16,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let result = CreatePartitionsTopicResult::default().with_name(topic.name);
            if topic.assignments.is_some() {
                return result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(message("manual replica assignment is not supported"));
            }
            let outcome = match broker.catalog.partition_count(&name) {
                None => Err(crate::catalog::CatalogError::NotFound(name.clone())),
                Some(current) if topic.count <= current => {
                    Err(crate::catalog::CatalogError::InvalidPartitions {
                        count: topic.count,
                        reason: "partitions can only be added",
                    })
                }
                Some(_) if request.validate_only => Ok(()),
                Some(_) => broker.create_partitions(&name, topic.count),
            };
            match outcome {
                Ok(()) => result,
                Err(error) => result
                    .with_error_code(catalog_error_code(&error))
                    .with_error_message(message(error.to_string())),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
