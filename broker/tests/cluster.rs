//! Three-node clusters of real processes on loopback, with an rdkafka idempotent acks=all
//! producer under way: kill (SIGKILL) or pause (SIGSTOP) a partition's leader or a follower,
//! bring it back, then prove that no acknowledged message was lost, none duplicated, order
//! kept per partition, and that every replica holds byte-identical partition logs.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use support::kafka;
use support::BrokerProcess;

const TOPIC: &str = "replicated";
const PARTITIONS: i32 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    partition: i32,
    offset: i64,
    sequence: u64,
}

struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Sent>>>,
    task: tokio::task::JoinHandle<()>,
}

/// An idempotent acks=all producer writing numbered messages round-robin over the partitions.
fn start_load(bootstrap: &str) -> Load {
    let producer: FutureProducer = kafka::producer(
        bootstrap,
        &[
            ("message.timeout.ms", "60000"),
            ("linger.ms", "2"),
            ("retry.backoff.ms", "50"),
            // A paused leader answers nothing: give up on it quickly and look again.
            ("request.timeout.ms", "2000"),
            ("socket.timeout.ms", "2000"),
            ("topic.metadata.refresh.interval.ms", "500"),
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let task = {
        let (stop, acked) = (stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut sequence = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sends = (0..30).map(|_| {
                    sequence += 1;
                    let partition = (sequence % PARTITIONS as u64) as i32;
                    let value = sequence.to_string();
                    let producer = &producer;
                    let current = sequence;
                    async move {
                        let record = FutureRecord::<(), _>::to(TOPIC)
                            .partition(partition)
                            .payload(&value);
                        let delivery = producer.send(record, Duration::from_secs(60)).await;
                        delivery.ok().map(|delivery| Sent {
                            partition: delivery.partition,
                            offset: delivery.offset,
                            sequence: current,
                        })
                    }
                });
                let done = futures::future::join_all(sends).await;
                acked.lock().unwrap().extend(done.into_iter().flatten());
            }
        })
    };
    Load { stop, acked, task }
}

impl Load {
    async fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let acked = self.acked.lock().unwrap().clone();
        acked
    }

    fn acknowledged(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

async fn create_topic(bootstrap: &str, replication: i32) -> Result<(), RDKafkaErrorCode> {
    kafka::try_create_topic(bootstrap, TOPIC, PARTITIONS, replication).await
}

/// The node leading `partition`, as the cluster's metadata says (waits for one).
fn leader_of(bootstrap: &str, partition: i32) -> u64 {
    let consumer: BaseConsumer = kafka::config(bootstrap).create().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(metadata) = consumer.fetch_metadata(Some(TOPIC), Duration::from_secs(5)) {
            let leader = metadata.topics()[0]
                .partitions()
                .iter()
                .find(|p| p.id() == partition)
                .map(|p| p.leader());
            if let Some(leader) = leader.filter(|leader| *leader > 0) {
                return leader as u64;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no leader for partition {partition}");
}

/// Reads every partition from the beginning to its high watermark.
fn consume_all(bootstrap: &str) -> Vec<Sent> {
    let consumer: BaseConsumer = kafka::config(bootstrap)
        .set("group.id", "verifier")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0i64;
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .unwrap();
        let (low, high) = consumer
            .fetch_watermarks(TOPIC, partition, Duration::from_secs(20))
            .unwrap();
        remaining += high - low;
    }
    consumer.assign(&assignment).unwrap();
    let mut consumed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (consumed.len() as i64) < remaining && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let text = std::str::from_utf8(message.payload().unwrap()).unwrap();
            consumed.push(Sent {
                partition: message.partition(),
                offset: message.offset(),
                sequence: text.parse().unwrap(),
            });
        }
    }
    assert_eq!(
        consumed.len() as i64,
        remaining,
        "every stored message is readable"
    );
    consumed
}

/// No acknowledged message lost, nothing duplicated, order kept per partition.
fn verify(acked: &[Sent], consumed: &[Sent]) {
    let mut by_sequence: HashMap<u64, &Sent> = HashMap::new();
    for message in consumed {
        assert!(
            by_sequence.insert(message.sequence, message).is_none(),
            "duplicate: {message:?}"
        );
    }
    for message in acked {
        assert_eq!(
            by_sequence.get(&message.sequence),
            Some(&message),
            "lost or moved: {message:?}"
        );
    }
    let mut last: BTreeMap<i32, (i64, u64)> = BTreeMap::new();
    for message in consumed {
        if let Some((offset, sequence)) = last.get(&message.partition) {
            assert!(
                message.offset > *offset && message.sequence > *sequence,
                "reordered: {message:?}"
            );
        }
        last.insert(message.partition, (message.offset, message.sequence));
    }
}

/// Leadership goes back to the preferred replicas once every node is back: with three
/// partitions on three nodes, each node leads one.
fn assert_leaders_spread(bootstrap: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut leaders: Vec<u64> = (0..PARTITIONS).map(|p| leader_of(bootstrap, p)).collect();
        leaders.sort_unstable();
        leaders.dedup();
        if leaders.len() == PARTITIONS as usize {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leaders did not spread again: {leaders:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Each partition's segment files, per node.
fn partition_logs(node: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut logs = BTreeMap::new();
    let Ok(partitions) = std::fs::read_dir(node.join("partitions")) else {
        return logs;
    };
    for partition in partitions {
        let partition: PathBuf = partition.unwrap().path();
        for file in std::fs::read_dir(&partition).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "log") {
                let name = format!(
                    "{}/{}",
                    partition.file_name().unwrap().to_string_lossy(),
                    file.file_name().unwrap().to_string_lossy()
                );
                logs.insert(name, std::fs::read(&file).unwrap());
            }
        }
    }
    logs
}

/// Waits until every node holds the same bytes for every partition.
fn assert_replicas_identical(brokers: &[BrokerProcess]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs: Vec<_> = brokers
            .iter()
            .map(|b| partition_logs(&b.data_dir))
            .collect();
        if logs.windows(2).all(|pair| pair[0] == pair[1]) && !logs[0].is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let sizes: Vec<Vec<(String, usize)>> = logs
                .iter()
                .map(|node| {
                    node.iter()
                        .map(|(name, bytes)| (name.clone(), bytes.len()))
                        .collect()
                })
                .collect();
            panic!("replicas differ after catching up: {sizes:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn run_with_fault(
    fault: impl FnOnce(&mut [BrokerProcess], u64),
    recover: impl FnOnce(&mut [BrokerProcess], u64),
    target_leader: bool,
) {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = BrokerProcess::start_cluster(directory.path(), 3, &[]);
    let bootstrap = BrokerProcess::bootstrap_all(&brokers);
    create_topic(&bootstrap, 3).await.unwrap();
    let load = start_load(&bootstrap);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let before = load.acknowledged();
    assert!(before > 0, "the load runs before the fault");
    let leader = leader_of(&bootstrap, 0);
    let target = if target_leader {
        leader
    } else {
        leader % 3 + 1
    };
    fault(&mut brokers, target);
    let resumed_by = Instant::now() + Duration::from_secs(15);
    while load.acknowledged() <= before + 100 && Instant::now() < resumed_by {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        load.acknowledged() > before + 100,
        "the producer resumed while node {target} was down"
    );
    recover(&mut brokers, target);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let acked = load.finish().await;
    let consumed = consume_all(&bootstrap);
    verify(&acked, &consumed);
    assert_replicas_identical(&brokers);
    assert_leaders_spread(&bootstrap);
    let metrics = brokers[0].http_get("/metrics").unwrap();
    for name in [
        "chronik_raft_is_leader",
        "chronik_raft_term",
        "chronik_raft_applied_index",
        "chronik_raft_leader_changes_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_message() {
    run_with_fault(
        |brokers, target| brokers[target as usize - 1].kill(),
        |brokers, target| brokers[target as usize - 1].restart(),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_follower_loses_nothing_and_it_catches_up() {
    run_with_fault(
        |brokers, target| brokers[target as usize - 1].kill(),
        |brokers, target| brokers[target as usize - 1].restart(),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_leader_loses_nothing() {
    run_with_fault(
        |brokers, target| brokers[target as usize - 1].pause(),
        |brokers, target| brokers[target as usize - 1].resume(),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_factor_above_the_node_count_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let brokers = BrokerProcess::start_cluster(directory.path(), 3, &[]);
    let refused = create_topic(&BrokerProcess::bootstrap_all(&brokers), 4).await;
    assert_eq!(refused, Err(RDKafkaErrorCode::InvalidReplicationFactor));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_the_loss_of_the_coordinator() {
    use rdkafka::consumer::CommitMode;
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = BrokerProcess::start_cluster(directory.path(), 3, &[]);
    let all = BrokerProcess::bootstrap_all(&brokers);
    create_topic(&all, 3).await.unwrap();
    let producer = kafka::producer(&all, &[]);
    let messages = (0..120).map(|i| (format!("key-{i}"), format!("value-{i}").into_bytes()));
    let acked = kafka::produce_keyed(&producer, TOPIC, messages).await;
    drop(producer);

    let consumer = kafka::consumer(&all, "survivors", &[]);
    consumer.subscribe(&[TOPIC]).unwrap();
    let first = kafka::consume(&consumer, 70, Duration::from_secs(30));
    assert_eq!(first.len(), 70);
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(consumer);

    let coordinator = support::controller(&brokers[0]);
    brokers[coordinator as usize - 1].kill();
    let bootstrap = brokers
        .iter()
        .filter(|broker| broker.node_id != coordinator)
        .map(BrokerProcess::bootstrap)
        .collect::<Vec<_>>()
        .join(",");
    let resumed = kafka::consumer(&bootstrap, "survivors", &[]);
    resumed.subscribe(&[TOPIC]).unwrap();
    let mut expected: Vec<kafka::Acked> = acked
        .iter()
        .filter(|m| !first.contains(m))
        .cloned()
        .collect();
    expected.sort_by_key(|m| (m.partition, m.offset));
    let mut rest = kafka::consume(&resumed, expected.len(), Duration::from_secs(40));
    // Nothing that was committed comes again.
    rest.extend(kafka::consume(&resumed, 1, Duration::from_secs(2)));
    kafka::assert_exactly_once_in_order(&expected, &rest);
}

/// (leader, in-sync replicas) of `partition` of the test topic, as `broker` alone answers.
fn in_sync_replicas(broker: &BrokerProcess, partition: i32) -> Option<(i32, Vec<i32>)> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut client = support::wire::RawClient::connect(broker.kafka_address());
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]));
    let response = client.call(9, &request);
    let found = response
        .topics
        .first()?
        .partitions
        .iter()
        .find(|candidate| candidate.partition_index == partition)?;
    let mut in_sync: Vec<i32> = found.isr_nodes.iter().map(|id| id.0).collect();
    in_sync.sort_unstable();
    (found.leader_id.0 > 0).then_some((found.leader_id.0, in_sync))
}

/// A follower that falls behind leaves the in-sync set, and every node says so, not only the
/// leader: followers report what their leader tells them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_reports_the_leaders_in_sync_replicas() {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = BrokerProcess::start_cluster(directory.path(), 3, &[]);
    let bootstrap = BrokerProcess::bootstrap_all(&brokers);
    create_topic(&bootstrap, 3).await.unwrap();
    let leader = leader_of(&bootstrap, 0);
    let behind = (1..=3).find(|node| *node != leader).unwrap();
    let other = (1..=3)
        .find(|node| *node != leader && *node != behind)
        .unwrap();
    brokers[behind as usize - 1].kill();
    // More single-message batches (one Raft entry each) than the in-sync lag allows.
    let producer = kafka::producer(&bootstrap, &[("linger.ms", "0")]);
    for index in 0..1_100 {
        let payload = format!("entry-{index}");
        producer
            .send(
                FutureRecord::<(), _>::to(TOPIC)
                    .partition(0)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let expected = {
        let mut nodes = vec![leader as i32, other as i32];
        nodes.sort_unstable();
        nodes
    };
    for node in [leader, other] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Leadership may move to the preferred replica meanwhile; the in-sync set may not
            // include the node that is down.
            let answer = in_sync_replicas(&brokers[node as usize - 1], 0);
            if answer
                .as_ref()
                .is_some_and(|(leader, in_sync)| expected.contains(leader) && *in_sync == expected)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {node} says {answer:?}, expected the in-sync set {expected:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The leader `broker` alone names for each partition of the test topic.
fn leaders_named_by(broker: &BrokerProcess) -> Vec<Option<i32>> {
    (0..PARTITIONS)
        .map(|partition| in_sync_replicas(broker, partition).map(|(leader, _)| leader))
        .collect()
}

/// Polls `probe` until it answers, for at most 20 s.
fn eventually<T: std::fmt::Debug>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node cut off from its peers steps down from what it led (check-quorum) but goes on naming
/// the leaders it last knew for the rest, so a client that asks only that node for metadata
/// still finds the partitions the majority serves. A cut-off node starts elections and forgets
/// its leaders when it does: named from that view alone, every partition would look
/// leaderless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_node_names_the_leaders_it_last_knew() {
    let directory = tempfile::tempdir().unwrap();
    let (brokers, relays) = BrokerProcess::start_cluster_through_relays(directory.path(), 3, &[]);
    let bootstrap = BrokerProcess::bootstrap_all(&brokers);
    create_topic(&bootstrap, 3).await.unwrap();
    let before = eventually(
        "node 1 to lead one partition and name the others' leaders",
        || {
            let named = leaders_named_by(&brokers[0]);
            let others = named.iter().filter(|leader| matches!(leader, Some(2 | 3)));
            (named.contains(&Some(1)) && others.count() + 1 == named.len()).then_some(named)
        },
    );

    relays.isolate(1);
    // Several election timeouts (500 ms by default): node 1 has stepped down and campaigns.
    std::thread::sleep(Duration::from_secs(3));
    let during = leaders_named_by(&brokers[0]);
    for (partition, (was, is)) in before.iter().zip(&during).enumerate() {
        if *was == Some(1) {
            assert_eq!(
                *is, None,
                "node 1 still names itself for partition {partition}"
            );
        } else {
            assert!(
                matches!(is, Some(2 | 3)),
                "cut off, node 1 names {is:?} for partition {partition}, led by {was:?}"
            );
        }
    }
    eventually("the majority to lead every partition", || {
        let named = leaders_named_by(&brokers[1]);
        named
            .iter()
            .all(|leader| matches!(leader, Some(2 | 3)))
            .then_some(named)
    });

    relays.rejoin(1);
    eventually("node 1 to agree with node 2 again", || {
        let named = leaders_named_by(&brokers[0]);
        (named.iter().all(Option::is_some) && named == leaders_named_by(&brokers[1]))
            .then_some(named)
    });
}
