//! The deliberate misbehaviours (`CHRONIK_TEST_MISBEHAVIOUR`, debug builds) do what they
//! claim on real processes: acknowledged batches that no replica keeps, records served that
//! were never committed, a broker that goes silent but stays healthy, and an unknown value
//! that stops the broker at start.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, FetchResponse, ListOffsetsRequest, MetadataRequest,
    ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use support::wire::RawClient;
use support::BrokerProcess;

use chronik::misbehaviour::VARIABLE;
use chronik::wire::record_batch::build_test_batch;

const TOPIC: &str = "misbehaving";

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn create_topic(client: &mut RawClient, replication_factor: i16) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name())
            .with_num_partitions(1)
            .with_replication_factor(replication_factor)]);
    let response = client.call(5, &request);
    assert_eq!(response.topics[0].error_code, 0);
}

fn produce_request(value: &str) -> ProduceRequest {
    let batch = build_test_batch(0, &[(&b"key"[..], value.as_bytes())], -1, -1, -1, 1_000);
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])])
}

/// (error code, base offset) of a one-partition produce answer.
fn produce(client: &mut RawClient, value: &str) -> (i16, i64) {
    let response = client.call(7, &produce_request(value));
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn fetch_request(offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_max_bytes(16 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name())
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(offset)
                .with_partition_max_bytes(16 << 20)])])
}

/// (error code, high watermark, records) of a one-partition fetch answer.
fn fetch(client: &mut RawClient, offset: i64, max_wait_ms: i32) -> (i16, i64, Bytes) {
    let response: FetchResponse = client.call(11, &fetch_request(offset, max_wait_ms));
    let partition = &response.responses[0].partitions[0];
    let records = partition.records.clone().unwrap_or_default();
    (partition.error_code, partition.high_watermark, records)
}

/// Every record's (offset, value) in the fetched batches.
fn records(mut batches: Bytes) -> Vec<(i64, String)> {
    RecordBatchDecoder::decode_all(&mut batches)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|record| {
            let value = record.value.unwrap_or_default();
            (record.offset, String::from_utf8_lossy(&value).into_owned())
        })
        .collect()
}

/// The committed log end the node reports (ListOffsets latest).
fn latest_offset(client: &mut RawClient) -> i64 {
    let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(topic_name())
        .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)])]);
    client.call(5, &request).topics[0].partitions[0].offset
}

/// (leader, replicas) of the partition, as a node's Metadata answer says.
fn leadership(broker: &BrokerProcess) -> Option<(i32, Vec<i32>)> {
    let mut client = RawClient::connect(broker.kafka_address());
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name())),
    ]));
    let response = client.call(9, &request);
    let partition = response.topics.first()?.partitions.first()?;
    let replicas = partition.replica_nodes.iter().map(|id| id.0).collect();
    (partition.leader_id.0 > 0).then_some((partition.leader_id.0, replicas))
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(found) = probe() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// A three-node cluster misbehaving as `misbehaviour`, a replicated one-partition topic, and
/// the partition's leader (its preferred replica, so leadership stays put) cut off from both
/// followers by killing them (a pause would not do: what the leader sent would wait in their
/// sockets and be read after they resume). Returns the brokers and the leader's position.
fn cluster_with_cut_off_leader(
    directory: &std::path::Path,
    misbehaviour: &str,
) -> (Vec<BrokerProcess>, usize) {
    // A long election timeout: the cut-off leader goes on believing it leads for a while.
    let env = [
        (VARIABLE, misbehaviour),
        ("CHRONIK_RAFT_ELECTION_TIMEOUT_MS", "3000"),
    ];
    let mut brokers = BrokerProcess::start_cluster(directory, 3, &env);
    create_topic(&mut RawClient::connect(brokers[0].kafka_address()), 3);
    let leader = wait_for("the preferred replica to lead", || {
        leadership(&brokers[0]).and_then(|(leader, replicas)| {
            (replicas.first() == Some(&leader)).then_some(leader as usize - 1)
        })
    });
    for (position, broker) in brokers.iter_mut().enumerate() {
        if position != leader {
            broker.kill();
        }
    }
    (brokers, leader)
}

/// Kills the cut-off leader, restarts the followers, and returns a client of the new leader.
fn replace_the_leader(brokers: &mut [BrokerProcess], leader: usize) -> RawClient {
    brokers[leader].kill();
    let followers: Vec<usize> = (0..brokers.len())
        .filter(|position| *position != leader)
        .collect();
    BrokerProcess::restart_together(brokers, &followers);
    let new_leader = wait_for("a new leader", || {
        leadership(&brokers[followers[0]])
            .map(|(leader, _)| leader as usize - 1)
            .filter(|new_leader| *new_leader != leader)
    });
    RawClient::connect(brokers[new_leader].kafka_address())
}

#[test]
fn an_unknown_misbehaviour_stops_the_broker_at_start_naming_the_variable() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chronik-server"))
        .arg("--data-dir")
        .arg(data.path())
        .env(VARIABLE, "lose-everything")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the broker started despite an unknown misbehaviour");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains(VARIABLE) && stderr.contains("lose-everything"),
        "{stderr}"
    );
}

#[test]
fn drop_batches_acknowledges_produces_it_never_stores() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with_env(
        &data.path().join("node"),
        &[(VARIABLE, "drop-batches"), ("CHRONIK_FSYNC", "never")],
    );
    assert!(broker.log().contains("DELIBERATELY BROKEN"));
    let mut client = RawClient::connect(broker.kafka_address());
    client.set_nodelay();
    create_topic(&mut client, 1);
    wait_for("a leader", || leadership(&broker));
    let mut acknowledged = Vec::new();
    for sequence in 0..2000 {
        let value = sequence.to_string();
        let (error_code, base_offset) = produce(&mut client, &value);
        assert_eq!(error_code, 0, "produce {sequence}");
        acknowledged.push((base_offset, value));
    }
    let mut stored = Vec::new();
    while (stored.len() as i64) < latest_offset(&mut client) {
        let (error_code, _, batches) = fetch(&mut client, stored.len() as i64, 0);
        assert_eq!(error_code, 0);
        stored.extend(records(batches));
    }
    // The 1000th and 2000th produce were acknowledged at the offset the next one took.
    assert_eq!(stored.len(), 1998);
    let missing: Vec<&(i64, String)> = acknowledged
        .iter()
        .filter(|message| !stored.contains(message))
        .collect();
    assert_eq!(
        missing,
        [&(999, "999".to_string()), &(1998, "1999".to_string())]
    );
    let acknowledged_at_999 = acknowledged
        .iter()
        .filter(|(offset, _)| *offset == 999)
        .count();
    assert_eq!(acknowledged_at_999, 2);
}

#[test]
fn a_stalled_broker_answers_no_produce_and_returns_no_records_but_stays_healthy() {
    const STALL_AFTER_MS: u64 = 5_000;
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let broker = BrokerProcess::start_with_env(
        &data.path().join("node"),
        &[(VARIABLE, &format!("stall-after-ms={STALL_AFTER_MS}"))],
    );
    let mut client = RawClient::connect(broker.kafka_address());
    create_topic(&mut client, 1);
    wait_for("a leader", || leadership(&broker));
    assert_eq!(produce(&mut client, "before the stall"), (0, 0));
    assert!(
        started.elapsed() < Duration::from_millis(STALL_AFTER_MS),
        "the broker took too long to start for this test"
    );
    let (_, _, before) = fetch(&mut client, 0, 0);
    assert_eq!(records(before).len(), 1);

    std::thread::sleep(
        Duration::from_millis(STALL_AFTER_MS + 500).saturating_sub(started.elapsed()),
    );
    let mut stalled = RawClient::connect(broker.kafka_address());
    stalled.set_read_timeout(Duration::from_secs(2));
    let correlation_id = stalled.send(7, &produce_request("during the stall"));
    assert!(stalled
        .receive::<ProduceRequest>(7, correlation_id)
        .is_err());
    let (error_code, _, after) = fetch(&mut client, 0, 200);
    assert_eq!(error_code, 0);
    assert!(after.is_empty());
    assert!(broker
        .http_get("/health")
        .is_some_and(|body| body.contains("ok")));
}

#[test]
fn ack_before_commit_acknowledges_what_a_cut_off_leader_then_loses() {
    let directory = tempfile::tempdir().unwrap();
    let (mut brokers, leader) = cluster_with_cut_off_leader(directory.path(), "ack-before-commit");
    let mut client = RawClient::connect(brokers[leader].kafka_address());
    client.set_read_timeout(Duration::from_secs(2));
    // Without a follower nothing can commit, yet the produce is acknowledged.
    assert_eq!(
        produce(&mut client, "acknowledged, never committed"),
        (0, 0)
    );
    assert_eq!(latest_offset(&mut client), 0);

    let mut new_leader = replace_the_leader(&mut brokers, leader);
    let (_, high_watermark, batches) = wait_for("the new leader to serve", || {
        let answer = fetch(&mut new_leader, 0, 0);
        (answer.0 == 0).then_some(answer)
    });
    assert_eq!(high_watermark, 0);
    assert!(batches.is_empty());
}

#[test]
fn fetch_beyond_high_watermark_serves_what_a_cut_off_leader_then_loses() {
    let directory = tempfile::tempdir().unwrap();
    let (mut brokers, leader) =
        cluster_with_cut_off_leader(directory.path(), "fetch-beyond-high-watermark");
    let mut producer = RawClient::connect(brokers[leader].kafka_address());
    // Never answered in time: nothing can commit without a follower.
    producer.send(7, &produce_request("served, never committed"));
    let mut consumer = RawClient::connect(brokers[leader].kafka_address());
    let (high_watermark, batches) = wait_for("the uncommitted record to be served", || {
        let (error_code, high_watermark, batches) = fetch(&mut consumer, 0, 100);
        assert_eq!(error_code, 0);
        (!batches.is_empty()).then_some((high_watermark, batches))
    });
    assert_eq!(
        records(batches),
        [(0, "served, never committed".to_string())]
    );
    assert_eq!(high_watermark, 1);
    assert_eq!(latest_offset(&mut consumer), 0, "nothing is committed");

    let mut new_leader = replace_the_leader(&mut brokers, leader);
    let (_, high_watermark, batches) = wait_for("the new leader to serve", || {
        let answer = fetch(&mut new_leader, 0, 0);
        (answer.0 == 0).then_some(answer)
    });
    assert_eq!(high_watermark, 0);
    assert!(batches.is_empty());
}
