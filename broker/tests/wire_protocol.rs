//! Protocol behaviour checked byte-exactly with a raw client: idempotent retries, sequence
//! gaps, corrupt batches, bad frames, and the metrics endpoint.

mod support;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use support::wire::RawClient;
use support::BrokerProcess;

use chronik::wire::record_batch::build_test_batch;

fn produce(topic: &str, partition: i32, batch: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch)))])])
}

fn create_topic(client: &mut RawClient, name: &str) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let response = client.call(5, &request);
    assert_eq!(response.topics[0].error_code, 0);
}

fn latest_offset(client: &mut RawClient, topic: &str) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)])]);
    client.call(5, &request).topics[0].partitions[0].offset
}

fn result(response: &kafka_protocol::messages::ProduceResponse) -> (i16, i64) {
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn a_retried_batch_keeps_its_offset_and_a_gap_is_refused_even_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(&data.path().join("node"));
    let mut client = RawClient::connect(broker.kafka_address());
    create_topic(&mut client, "idempotent");
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let init = client.call(1, &request);
    assert_eq!(init.error_code, 0);
    let (producer_id, epoch) = (init.producer_id.0, init.producer_epoch);
    let records = [(&b"k"[..], &b"v"[..]); 3];

    let first = build_test_batch(0, &records, producer_id, epoch, 0, 1_000);
    assert_eq!(
        result(&client.call(7, &produce("idempotent", 0, first.clone()))),
        (0, 0)
    );
    let second = build_test_batch(0, &records, producer_id, epoch, 3, 1_000);
    assert_eq!(
        result(&client.call(7, &produce("idempotent", 0, second.clone()))),
        (0, 3)
    );
    // The retry of the first batch is acknowledged with its original offset, not stored again.
    assert_eq!(
        result(&client.call(7, &produce("idempotent", 0, first.clone()))),
        (0, 0)
    );
    assert_eq!(latest_offset(&mut client, "idempotent"), 6);
    // A gap: sequence 9 when 6 is next.
    let gap = build_test_batch(0, &records, producer_id, epoch, 9, 1_000);
    let (error, _) = result(&client.call(7, &produce("idempotent", 0, gap.clone())));
    assert_eq!(error, ResponseError::OutOfOrderSequenceNumber.code());

    // Producer state is rebuilt from the log after a restart.
    assert!(broker.terminate());
    broker.restart();
    let mut client = RawClient::connect(broker.kafka_address());
    assert_eq!(
        result(&client.call(7, &produce("idempotent", 0, second))),
        (0, 3)
    );
    let (error, _) = result(&client.call(7, &produce("idempotent", 0, gap)));
    assert_eq!(error, ResponseError::OutOfOrderSequenceNumber.code());
    let next = build_test_batch(0, &records, producer_id, epoch, 6, 1_000);
    assert_eq!(
        result(&client.call(7, &produce("idempotent", 0, next))),
        (0, 6)
    );
    assert_eq!(latest_offset(&mut client, "idempotent"), 9);
}

#[test]
fn a_corrupt_batch_is_refused_and_nothing_is_stored() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&data.path().join("node"));
    let mut client = RawClient::connect(broker.kafka_address());
    create_topic(&mut client, "guarded");
    let mut batch = build_test_batch(0, &[(&b"k"[..], &b"value"[..])], -1, -1, -1, 1_000);
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let (error, _) = result(&client.call(7, &produce("guarded", 0, batch)));
    assert_eq!(error, ResponseError::CorruptMessage.code());
    let truncated = build_test_batch(0, &[(&b"k"[..], &b"value"[..])], -1, -1, -1, 1_000);
    let (error, _) = result(&client.call(7, &produce("guarded", 0, truncated[..30].to_vec())));
    assert_eq!(error, ResponseError::CorruptMessage.code());
    assert_eq!(latest_offset(&mut client, "guarded"), 0);
}

#[test]
fn bad_frames_close_only_their_connection() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(&data.path().join("node"));
    let bad_frames: Vec<Vec<u8>> = vec![
        (200 * 1024 * 1024i32).to_be_bytes().to_vec(), // over the frame limit
        (-5i32).to_be_bytes().to_vec(),                // negative size
        // Metadata v1 whose topic array claims i32::MAX entries.
        [
            &14i32.to_be_bytes()[..],
            &[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff],
            &i32::MAX.to_be_bytes(),
        ]
        .concat(),
        // An unknown API key.
        [&8i32.to_be_bytes()[..], &[0x7f, 0, 0, 0, 0, 0, 0, 1]].concat(),
    ];
    for frame in bad_frames {
        let mut stream = std::net::TcpStream::connect(broker.kafka_address()).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        use std::io::{Read, Write};
        stream.write_all(&frame).unwrap();
        let mut buffer = [0u8; 16];
        assert_eq!(
            stream.read(&mut buffer).unwrap_or(0),
            0,
            "connection is closed"
        );
    }
    assert!(broker.is_running());
    let mut client = RawClient::connect(broker.kafka_address());
    create_topic(&mut client, "still-serving");
    let metrics = broker.http_get("/metrics").unwrap();
    assert!(
        metrics.contains("chronik_requests_total"),
        "metrics:\n{metrics}"
    );
    assert!(metrics.contains("chronik_active_connections"));
}
