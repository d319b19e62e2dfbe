//! DescribeConfigs for topics (their effective retention and segment settings) and for the
//! broker (a few key settings). Tools such as kcat and admin clients call it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

pub async fn handle(
    broker: &Broker,
    _version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match broker.catalog.topic(&resource.resource_name) {
                    Some(spec) => topic_entries(broker, &spec.configs),
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    }
                },
                RESOURCE_BROKER => broker_entries(broker),
                _ => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(super::message("unsupported resource type"))
                }
            };
            let keys = resource.configuration_keys;
            let configs = entries
                .into_iter()
                .filter(|(name, _, _)| {
                    keys.as_ref()
                        .is_none_or(|keys| keys.iter().any(|key| key.as_str() == name))
                })
                .map(|(name, value, source)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_string(name))
                        .with_value(Some(StrBytes::from_string(value)))
                        .with_config_source(source)
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

type Entry = (String, String, i8);

fn topic_entries(
    broker: &Broker,
    overrides: &std::collections::BTreeMap<String, String>,
) -> Vec<Entry> {
    let config = &broker.config;
    let defaults = [
        ("retention.ms", config.retention_ms.to_string()),
        ("retention.bytes", config.retention_bytes.to_string()),
        ("segment.bytes", config.segment_bytes.to_string()),
        ("cleanup.policy", "delete".to_string()),
        ("max.message.bytes", config.max_frame_bytes.to_string()),
    ];
    let mut entries: Vec<Entry> = defaults
        .into_iter()
        .map(|(name, value)| match overrides.get(name) {
            Some(value) => (name.to_string(), value.clone(), SOURCE_TOPIC),
            None => (name.to_string(), value, SOURCE_DEFAULT),
        })
        .collect();
    for (name, value) in overrides {
        if !entries.iter().any(|(known, _, _)| known == name) {
            entries.push((name.clone(), value.clone(), SOURCE_TOPIC));
        }
    }
    entries
}

fn broker_entries(broker: &Broker) -> Vec<Entry> {
    let config = &broker.config;
    [
        ("broker.id", config.node_id.to_string()),
        ("log.dirs", config.data_dir.display().to_string()),
        ("num.partitions", config.default_partitions.to_string()),
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
        ),
        ("log.retention.ms", config.retention_ms.to_string()),
        ("log.segment.bytes", config.segment_bytes.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value, SOURCE_STATIC_BROKER))
    .collect()
}
