//! Snapshots end to end, with real processes and rdkafka: logs are compacted, a follower
//! behind its leader's compacted log installs a snapshot, a wiped node restores from the
//! object store, a corrupt snapshot is detected and never served, and a cluster that lost
//! every disk comes back from the object store with its data and committed offsets.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use support::kafka::{self, Acked};
use support::BrokerProcess;

const TOPIC: &str = "snapshotted";
const PARTITIONS: i32 = 2;
/// Snapshots every 100 entries or after 1 s with anything new: many snapshots in a short test.
const SNAPSHOT_ENV: [(&str, &str); 2] = [
    ("CHRONIK_SNAPSHOT_LOG_THRESHOLD", "100"),
    ("CHRONIK_SNAPSHOT_TIME_THRESHOLD_SECS", "1"),
];

async fn create_topic(bootstrap: &str) {
    kafka::try_create_topic(bootstrap, TOPIC, PARTITIONS, 3)
        .await
        .unwrap();
}

fn producer(bootstrap: &str) -> FutureProducer {
    kafka::producer(
        bootstrap,
        &[
            ("message.timeout.ms", "60000"),
            ("request.timeout.ms", "5000"),
            ("topic.metadata.refresh.interval.ms", "500"),
        ],
    )
}

/// `count` numbered messages from `first`, 512 bytes each, acknowledged by all in-sync
/// replicas, in rounds so that each round becomes several Raft entries.
async fn produce(producer: &FutureProducer, first: usize, count: usize) -> Vec<Acked> {
    let mut acked = Vec::new();
    for round in (first..first + count).collect::<Vec<_>>().chunks(50) {
        let messages = round.iter().map(|sequence| {
            (
                format!("key-{sequence}"),
                format!("{sequence:0>512}").into_bytes(),
            )
        });
        acked.extend(kafka::produce_keyed(producer, TOPIC, messages).await);
    }
    acked
}

/// Every stored message of the topic, read from the beginning of each partition.
fn read_everything(bootstrap: &str, expected: usize) -> Vec<Acked> {
    let consumer = kafka::consumer(bootstrap, "snapshot-verifier", &[]);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    kafka::consume(&consumer, expected, Duration::from_secs(60))
}

/// Starts that stayed out of elections because the node forgot its votes.
const VOTE_ABSTENTIONS: &str = "chronik_raft_vote_abstentions_total";

/// Sum of a metric's samples on one node (all label sets), 0 when absent.
fn metric(broker: &BrokerProcess, name: &str) -> f64 {
    let Some(text) = broker.http_get("/metrics") else {
        return 0.0;
    };
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Per partition group of `topic` on one node, in label order: (entries held in the Raft log,
/// last index).
fn raft_log_of_partitions(broker: &BrokerProcess, topic: &str) -> Vec<(f64, f64)> {
    let text = broker.http_get("/metrics").unwrap_or_default();
    let topic_label = format!("topic=\"{topic}\"");
    let sample = |name: &str| -> BTreeMap<String, f64> {
        text.lines()
            .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(&topic_label))
            .filter_map(|line| {
                let (labels, value) = line.rsplit_once(' ')?;
                Some((labels[name.len()..].to_string(), value.parse().ok()?))
            })
            .collect()
    };
    let entries = sample("chronik_raft_log_entries");
    let last = sample("chronik_raft_last_index");
    entries
        .iter()
        .filter_map(|(labels, held)| Some((*held, *last.get(labels)?)))
        .collect()
}

/// Per partition group, the highest last index among `brokers`, read after their gauges
/// (published once a second) were published at least once more.
fn highest_log_ends(brokers: &[BrokerProcess]) -> Vec<f64> {
    std::thread::sleep(Duration::from_millis(1_100));
    let mut ends = vec![0.0_f64; PARTITIONS as usize];
    for broker in brokers {
        let groups = raft_log_of_partitions(broker, TOPIC);
        assert_eq!(groups.len(), ends.len(), "every node reports every group");
        for (end, (_, last)) in ends.iter_mut().zip(groups) {
            *end = (*end).max(last);
        }
    }
    ends
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each partition's log as one byte string (its segments in offset order), per node.
fn partition_contents(node: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut contents = BTreeMap::new();
    let Ok(partitions) = std::fs::read_dir(node.join("partitions")) else {
        return contents;
    };
    for partition in partitions {
        let partition: PathBuf = partition.unwrap().path();
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&partition)
            .unwrap()
            .map(|file| file.unwrap().path())
            .filter(|file| file.extension().is_some_and(|extension| extension == "log"))
            .collect();
        segments.sort();
        let bytes = segments
            .iter()
            .flat_map(|segment| std::fs::read(segment).unwrap())
            .collect();
        contents.insert(
            partition
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            bytes,
        );
    }
    contents
}

fn assert_replicas_identical(brokers: &[BrokerProcess]) {
    wait_until(
        "every replica holds the same log",
        Duration::from_secs(30),
        || {
            let contents: Vec<_> = brokers
                .iter()
                .map(|broker| partition_contents(&broker.data_dir))
                .collect();
            !contents[0].is_empty() && contents.windows(2).all(|pair| pair[0] == pair[1])
        },
    );
}

fn object_store(directory: &Path) -> PathBuf {
    directory.join("object-store")
}

/// Chunk objects in the store, newest (highest end offset) last within each group.
fn chunk_objects(store: &Path) -> Vec<PathBuf> {
    let mut chunks = Vec::new();
    let Ok(groups) = std::fs::read_dir(store.join("groups")) else {
        return chunks;
    };
    for group in groups {
        let directory = group.unwrap().path().join("chunks");
        if let Ok(files) = std::fs::read_dir(&directory) {
            let mut files: Vec<PathBuf> = files.map(|file| file.unwrap().path()).collect();
            files.sort();
            chunks.extend(files);
        }
    }
    chunks
}

/// Whether some partition group has a complete snapshot in the store: chunks, and the
/// manifest that is written after them.
fn has_partition_snapshot(store: &Path) -> bool {
    let Ok(groups) = std::fs::read_dir(store.join("groups")) else {
        return false;
    };
    groups.flatten().any(|group| {
        let holds_any = |name: &str| {
            std::fs::read_dir(group.path().join(name))
                .is_ok_and(|mut entries| entries.next().is_some())
        };
        holds_any("chunks") && holds_any("snapshots")
    })
}

/// A partition that went quiet with over 1 MiB since its last snapshot is snapshotted and its
/// log compacted, with no threshold reached; one that went quiet with less keeps its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_went_quiet_is_snapshotted() {
    let directory = tempfile::tempdir().unwrap();
    let broker =
        BrokerProcess::start_with_env(directory.path(), &[("CHRONIK_SNAPSHOT_IDLE_SECS", "2")]);
    let bootstrap = broker.bootstrap();
    for topic in ["quiet-large", "quiet-small"] {
        kafka::try_create_topic(&bootstrap, topic, 1, 1)
            .await
            .unwrap();
    }
    let producer = producer(&bootstrap);
    // 1.5 MiB and 64 KiB of 1 KiB messages, in rounds of 64: dozens of Raft entries each,
    // far below the 10000-entry and 8 MiB thresholds.
    for (topic, messages) in [("quiet-large", 1536), ("quiet-small", 64)] {
        for round in (0..messages).collect::<Vec<usize>>().chunks(64) {
            let batch = round
                .iter()
                .map(|sequence| (format!("key-{sequence}"), vec![b'q'; 1024]));
            kafka::produce_keyed(&producer, topic, batch).await;
        }
    }
    let held = |topic: &str| raft_log_of_partitions(&broker, topic)[0];
    // The gauges are published every 250 ms.
    std::thread::sleep(Duration::from_millis(300));
    let (large_held, large_last) = held("quiet-large");
    assert!(
        large_held >= 12.0,
        "the large partition's log holds {large_held} entries before it goes quiet"
    );
    wait_until(
        "the quiet large partition is snapshotted and its log compacted",
        Duration::from_secs(20),
        || held("quiet-large").0 <= 2.0,
    );
    assert!(held("quiet-large").1 >= large_last);
    // Quiet for longer than the idle time now, as the large one was when it was snapshotted.
    std::thread::sleep(Duration::from_millis(2_500));
    let (small_held, _) = held("quiet-small");
    assert!(
        small_held > 1.0,
        "the small partition's log was compacted to {small_held} entries without a snapshot due"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_a_compacted_log_installs_its_leaders_snapshot() {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = BrokerProcess::start_cluster(directory.path(), 3, &SNAPSHOT_ENV);
    let bootstrap = BrokerProcess::bootstrap_all(&brokers);
    create_topic(&bootstrap).await;
    let producer = producer(&bootstrap);
    let mut acked = produce(&producer, 0, 1000).await;
    brokers[2].kill();
    // Node 3 holds no entry its leaders did not have when it died: once the live nodes have
    // compacted past their log ends of that moment, node 3 needs a snapshot. (What node 3
    // itself last reported can miss an entry: a snapshot marker may land after the last
    // write, and the gauges are up to a second old.)
    let node_3_ends = highest_log_ends(&brokers[..2]);
    let mut next = 1000;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        acked.extend(produce(&producer, next, 500).await);
        next += 500;
        let compacted_past_node_3 = brokers[..2].iter().all(|broker| {
            let groups = raft_log_of_partitions(broker, TOPIC);
            groups.len() == node_3_ends.len()
                && groups
                    .iter()
                    .zip(&node_3_ends)
                    .all(|((held, last), end)| last - held > *end)
        });
        if compacted_past_node_3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the live nodes never compacted their logs past what node 3 holds"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    brokers[2].restart();
    acked.extend(produce(&producer, next, 500).await);
    assert_eq!(
        metric(&brokers[2], VOTE_ABSTENTIONS),
        0.0,
        "a restarted node kept its votes on disk and takes part in elections at once"
    );
    wait_until(
        "node 3 installed snapshots sent by its leaders",
        Duration::from_secs(60),
        || metric(&brokers[2], "chronik_snapshots_installed_total") >= 1.0,
    );
    // Node 3 held the first messages, which the snapshots' first chunks cover: it copies
    // them from its own replica instead of downloading them.
    let reused_bytes = metric(&brokers[2], "chronik_snapshot_reused_bytes_total");
    assert!(reused_bytes > 0.0, "node 3 reused none of its own data");
    assert_replicas_identical(&brokers);
    let consumed = read_everything(&bootstrap, acked.len());
    kafka::assert_exactly_once_in_order(&acked, &consumed);
    let taken: f64 = brokers
        .iter()
        .map(|broker| metric(broker, "chronik_snapshots_taken_total"))
        .sum();
    assert!(taken >= 2.0, "snapshots were taken ({taken})");
    assert_eq!(
        brokers
            .iter()
            .map(|broker| metric(broker, "chronik_snapshots_failed_total"))
            .sum::<f64>(),
        0.0,
        "no snapshot failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_restores_from_the_object_store_and_catches_up() {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = BrokerProcess::start_cluster(directory.path(), 3, &SNAPSHOT_ENV);
    let bootstrap = BrokerProcess::bootstrap_all(&brokers);
    create_topic(&bootstrap).await;
    let producer = producer(&bootstrap);
    let mut acked = produce(&producer, 0, 2000).await;
    // A complete snapshot, not only its first chunks: a node wiped before the manifest is
    // written finds nothing to restore and catches up from its leader instead.
    wait_until(
        "a partition snapshot exists",
        Duration::from_secs(30),
        || has_partition_snapshot(&object_store(directory.path())),
    );
    brokers[1].kill();
    std::fs::remove_dir_all(&brokers[1].data_dir).unwrap();
    brokers[1].restart();
    acked.extend(produce(&producer, 2000, 500).await);
    assert_replicas_identical(&brokers);
    assert!(
        brokers[1]
            .log()
            .contains("replica restored from the object store"),
        "the wiped node restored its replicas from snapshots"
    );
    let abstentions: Vec<f64> = brokers
        .iter()
        .map(|broker| metric(broker, VOTE_ABSTENTIONS))
        .collect();
    assert_eq!(
        abstentions,
        [0.0, 1.0, 0.0],
        "only the wiped node, which forgot its votes, stayed out of elections after its start \
         (a first boot does not)"
    );
    let consumed = read_everything(&bootstrap, acked.len());
    kafka::assert_exactly_once_in_order(&acked, &consumed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_is_detected_and_never_served() {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = BrokerProcess::start_cluster(directory.path(), 3, &SNAPSHOT_ENV);
    let bootstrap = BrokerProcess::bootstrap_all(&brokers);
    create_topic(&bootstrap).await;
    let producer = producer(&bootstrap);
    let mut acked = produce(&producer, 0, 2000).await;
    brokers[2].kill();
    std::fs::remove_dir_all(&brokers[2].data_dir).unwrap();
    acked.extend(produce(&producer, 2000, 1000).await);
    let store = object_store(directory.path());
    wait_until("snapshots exist", Duration::from_secs(30), || {
        !chunk_objects(&store).is_empty()
    });
    // Damage every chunk: one flipped byte in the middle of each.
    let damaged = chunk_objects(&store);
    for chunk in &damaged {
        let mut bytes = std::fs::read(chunk).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(chunk, &bytes).unwrap();
    }
    brokers[2].restart();
    acked.extend(produce(&producer, 3000, 500).await);
    assert_replicas_identical(&brokers);
    let log = brokers[2].log();
    assert!(
        log.contains("is corrupt"),
        "the damage was detected and reported"
    );
    let consumed = read_everything(&bootstrap, acked.len());
    kafka::assert_exactly_once_in_order(&acked, &consumed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_lost_every_disk_comes_back_from_the_object_store() {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = BrokerProcess::start_cluster(directory.path(), 3, &SNAPSHOT_ENV);
    let bootstrap = BrokerProcess::bootstrap_all(&brokers);
    create_topic(&bootstrap).await;
    let producer = producer(&bootstrap);
    let acked = produce(&producer, 0, 1500).await;
    drop(producer);
    let consumer: BaseConsumer = kafka::consumer(&bootstrap, "survivors", &[]);
    let mut committed = TopicPartitionList::new();
    committed
        .add_partition_offset(TOPIC, 0, Offset::Offset(123))
        .unwrap();
    committed
        .add_partition_offset(TOPIC, 1, Offset::Offset(45))
        .unwrap();
    consumer.commit(&committed, CommitMode::Sync).unwrap();
    drop(consumer);
    // Nothing is written from here on: after the time threshold every group's last snapshot
    // holds everything committed.
    std::thread::sleep(Duration::from_secs(5));
    for broker in &mut brokers {
        broker.kill();
        std::fs::remove_dir_all(&broker.data_dir).unwrap();
    }
    BrokerProcess::restart_together(&mut brokers, &[0, 1, 2]);
    for broker in &brokers {
        assert!(
            broker
                .log()
                .contains("metadata restored from the object store"),
            "node {} restored the catalog",
            broker.node_id
        );
    }
    let consumed = read_everything(&bootstrap, acked.len());
    kafka::assert_exactly_once_in_order(&acked, &consumed);
    let consumer: BaseConsumer = kafka::consumer(&bootstrap, "survivors", &[]);
    let mut asked = TopicPartitionList::new();
    asked.add_partition(TOPIC, 0);
    asked.add_partition(TOPIC, 1);
    let offsets = consumer
        .committed_offsets(asked, Duration::from_secs(20))
        .unwrap();
    let found: Vec<Offset> = offsets.elements().iter().map(|e| e.offset()).collect();
    assert_eq!(found, vec![Offset::Offset(123), Offset::Offset(45)]);
}
