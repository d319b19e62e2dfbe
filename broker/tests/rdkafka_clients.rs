//! librdkafka (through the rdkafka crate) against a real `chronik-server` process.

mod support;

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::TopicPartitionList;
use support::kafka::{self, assert_exactly_once_in_order};
use support::BrokerProcess;

fn keyed(count: usize, prefix: &str) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|index| {
            (
                format!("key-{}", index % 10),
                format!("{prefix}-{index}").into_bytes(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_with_idempotence_over_several_partitions() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&data.path().join("node"));
    kafka::create_topic(&broker.bootstrap(), "orders", 4).await;
    let producer = kafka::producer(&broker.bootstrap(), &[]);
    let acked = kafka::produce_keyed(&producer, "orders", keyed(2_000, "order")).await;
    let consumer = kafka::consumer(&broker.bootstrap(), "readers", &[]);
    consumer.subscribe(&["orders"]).unwrap();
    let consumed = kafka::consume(&consumer, acked.len(), Duration::from_secs(30));
    assert_exactly_once_in_order(&acked, &consumed);
    let partitions: std::collections::HashSet<i32> = acked.iter().map(|m| m.partition).collect();
    assert!(partitions.len() > 1, "keys should spread over partitions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_reads_back() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&data.path().join("node"));
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("compressed-{codec}");
        kafka::create_topic(&broker.bootstrap(), &topic, 2).await;
        let producer = kafka::producer(&broker.bootstrap(), &[("compression.codec", codec)]);
        let messages: Vec<_> = (0..300)
            .map(|index| {
                (
                    format!("key-{index}"),
                    format!("{codec} payload {index} ").repeat(20).into_bytes(),
                )
            })
            .collect();
        let acked = kafka::produce_keyed(&producer, &topic, messages).await;
        let consumer = kafka::consumer(&broker.bootstrap(), &format!("reader-{codec}"), &[]);
        consumer.subscribe(&[&topic]).unwrap();
        let consumed = kafka::consume(&consumer, acked.len(), Duration::from_secs(30));
        assert_exactly_once_in_order(&acked, &consumed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_splits_partitions_and_resumes_from_committed_offsets() {
    let data = tempfile::tempdir().unwrap();
    // Both members join the first generation (otherwise the first one starts consuming alone
    // and, legitimately for at-least-once, the partitions it hands over are read twice).
    let broker = BrokerProcess::start_with_env(
        &data.path().join("node"),
        &[("CHRONIK_GROUP_INITIAL_REBALANCE_DELAY_MS", "2000")],
    );
    kafka::create_topic(&broker.bootstrap(), "events", 4).await;
    let producer = kafka::producer(&broker.bootstrap(), &[]);
    let first = kafka::produce_keyed(&producer, "events", keyed(400, "first")).await;

    for assignor in ["range", "roundrobin", "cooperative-sticky"] {
        let group = format!("group-{assignor}");
        let settings = [("partition.assignment.strategy", assignor)];
        let one = kafka::consumer(&broker.bootstrap(), &group, &settings);
        let two = kafka::consumer(&broker.bootstrap(), &group, &settings);
        one.subscribe(&["events"]).unwrap();
        two.subscribe(&["events"]).unwrap();
        // Both poll until the group is stable and everything is consumed.
        let mut consumed = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while consumed.len() < first.len() && std::time::Instant::now() < deadline {
            consumed.extend(kafka::consume(
                &one,
                first.len(),
                Duration::from_millis(200),
            ));
            consumed.extend(kafka::consume(
                &two,
                first.len(),
                Duration::from_millis(200),
            ));
        }
        assert_exactly_once_in_order(&first, &consumed);
        let assigned_one = one.assignment().unwrap().count();
        let assigned_two = two.assignment().unwrap().count();
        assert_eq!(
            assigned_one + assigned_two,
            4,
            "{assignor}: all partitions assigned once"
        );
        assert!(
            assigned_one > 0 && assigned_two > 0,
            "{assignor}: both members got work"
        );
        one.commit_consumer_state(CommitMode::Sync).unwrap();
        two.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    drop(producer);

    let producer = kafka::producer(&broker.bootstrap(), &[]);
    let second = kafka::produce_keyed(&producer, "events", keyed(100, "second")).await;
    let resumed = kafka::consumer(&broker.bootstrap(), "group-range", &[]);
    resumed.subscribe(&["events"]).unwrap();
    let consumed = kafka::consume(&resumed, second.len(), Duration::from_secs(30));
    assert_exactly_once_in_order(&second, &consumed);
    // Nothing older arrives after the new messages.
    assert!(kafka::consume(&resumed, 1, Duration::from_secs(2)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_can_be_looked_up_by_timestamp() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&data.path().join("node"));
    kafka::create_topic(&broker.bootstrap(), "timed", 1).await;
    let producer = kafka::producer(&broker.bootstrap(), &[("linger.ms", "0")]);
    let early = kafka::produce_keyed(&producer, "timed", keyed(10, "early")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let boundary_ms = chronik::broker::now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let late = kafka::produce_keyed(&producer, "timed", keyed(10, "late")).await;
    let consumer = kafka::consumer(&broker.bootstrap(), "timestamps", &[]);
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("timed", 0, rdkafka::Offset::Offset(boundary_ms))
        .unwrap();
    let found = consumer
        .offsets_for_times(query, Duration::from_secs(10))
        .unwrap();
    let offset = found.find_partition("timed", 0).unwrap().offset();
    let first_late = late.iter().map(|m| m.offset).min().unwrap();
    assert!(early.iter().all(|m| m.offset < first_late));
    assert_eq!(offset, rdkafka::Offset::Offset(first_late));
    let (low, high) = consumer
        .fetch_watermarks("timed", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (0, 20));
}
