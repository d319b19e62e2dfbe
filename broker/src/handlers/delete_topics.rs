use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::metadata_error_code;
use super::message;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6 in `topics` (by name or id).
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|topic| (topic.name.map(|name| name.0.to_string()), topic.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|name| (Some(name.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, topic_id) in targets {
        let name = name.or_else(|| broker.catalog.topic_by_id(topic_id).map(|spec| spec.name));
        let result = DeletableTopicResult::default().with_topic_id(topic_id);
        let Some(name) = name else {
            responses.push(result.with_error_code(ResponseError::UnknownTopicId.code()));
            continue;
        };
        let result = result.with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
        responses.push(match broker.delete_topic(&name).await {
            Ok(spec) => result.with_topic_id(spec.topic_id),
            Err(error) => result
                .with_error_code(metadata_error_code(&error))
                .with_error_message(message(error.to_string())),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
