//! Every handler's answer to a representative request encodes at every version the broker
//! advertises (a field set outside its versions makes kafka-protocol refuse to encode, and
//! the client would wait for an answer that never comes).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::config::Config;
use crate::wire::codec::encode_response;
use crate::wire::record_batch::build_test_batch;
use crate::wire::versions::supported_range;

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str("encoded"))
}

fn requests(api_key: ApiKey) -> Option<RequestKind> {
    let batch = Bytes::from(build_test_batch(
        0,
        &[(&b"k"[..], &b"v"[..])],
        -1,
        -1,
        -1,
        1_000,
    ));
    Some(match api_key {
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::Metadata => {
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name())),
            ])))
        }
        ApiKey::Produce => RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5_000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(topic_name())
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch)),
                    ])]),
        ),
        ApiKey::Fetch => RequestKind::Fetch(
            FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(topic_name())
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)
                    ])]),
        ),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(
            vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic_name())
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
                    list_offsets_request::ListOffsetsPartition::default().with_timestamp(0),
                ])],
        )),
        ApiKey::CreateTopics => {
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(
                vec![create_topics_request::CreatableTopic::default()
                .with_name(topic_name())
                .with_num_partitions(1)
                .with_replication_factor(1)],
            ))
        }
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic_name())
                    .with_count(1),
            ]))
        }
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default().with_transactional_id(None),
        ),
        ApiKey::DescribeConfigs => {
            RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("encoded")),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("1")),
            ]))
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        // Deletion last, so the topic exists for everything above.
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(StrBytes::from_static_str("missing"))])
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("missing"))))]),
        ),
        // The group APIs have their own encoding tests in group::tests_wire.
        _ => return None,
    })
}

async fn wait_until_ready(broker: &Broker) {
    for _ in 0..200 {
        if broker.is_ready() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the one-node cluster did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_encodes_at_every_advertised_version() {
    let directory = tempfile::tempdir().unwrap();
    let broker: Arc<Broker> = Broker::open(Config::for_test(directory.path().into()))
        .await
        .unwrap();
    wait_until_ready(&broker).await;
    broker
        .create_topic("encoded", 1, 1, Default::default())
        .await
        .unwrap();
    let apis = [
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::CreateTopics,
        ApiKey::CreatePartitions,
        ApiKey::InitProducerId,
        ApiKey::DescribeConfigs,
        ApiKey::DescribeCluster,
        ApiKey::DeleteTopics,
    ];
    for api_key in apis {
        let (min, max) = supported_range(api_key).unwrap();
        for version in min..=max {
            let request = requests(api_key).unwrap();
            let header = RequestHeader::default()
                .with_request_api_key(api_key as i16)
                .with_request_api_version(version);
            let response = super::dispatch(&broker, &header, "/127.0.0.1", request)
                .await
                .unwrap_or_else(|| panic!("{api_key:?} v{version} got no answer"));
            if let Err(error) = encode_response(1, version, &response) {
                panic!("{api_key:?} v{version} does not encode: {error:#}");
            }
        }
    }
}
