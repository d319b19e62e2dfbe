//! Consumer groups across the loss of the coordinator's node, on three real nodes: the new
//! coordinator takes a Stable group over from the replicated state, so its members carry on
//! with their generation and assignment instead of rebalancing.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use support::{kafka, BrokerProcess};

const TOPIC: &str = "grouped";
const PARTITIONS: i32 = 3;

/// The test topic, replicated on all three nodes.
async fn create_topic(bootstrap: &str) {
    kafka::try_create_topic(bootstrap, TOPIC, PARTITIONS, 3)
        .await
        .unwrap();
}

/// The coordinator elected after `old` was lost, as a surviving node reports it.
fn new_coordinator(brokers: &[BrokerProcess], old: u64) -> u64 {
    let survivor = brokers.iter().find(|broker| broker.node_id != old).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let elected = support::controller(survivor);
        if elected != old {
            return elected;
        }
        assert!(Instant::now() < deadline, "no new coordinator");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A group member speaking the group protocol over a raw connection, so the test controls
/// exactly which generation it presents to which node.
mod raw_member {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::{
        GroupId, HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest, SyncGroupRequest,
        TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::support::wire::RawClient;
    use super::support::BrokerProcess;

    pub const GROUP: &str = "kept-across-failover";
    pub const NOT_COORDINATOR: i16 = 16;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    const MEMBER_ID_REQUIRED: i16 = 79;

    fn text(value: &str) -> StrBytes {
        StrBytes::from_string(value.to_string())
    }

    /// Asks `node` until it answers with something other than "not the coordinator (yet)".
    pub fn call_coordinator<T>(
        node: &BrokerProcess,
        timeout: Duration,
        mut call: impl FnMut(&mut RawClient) -> (i16, T),
    ) -> (i16, T) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut client = RawClient::connect(node.kafka_address());
            let (code, answer) = call(&mut client);
            let retriable = code == NOT_COORDINATOR || code == COORDINATOR_NOT_AVAILABLE;
            if !retriable || Instant::now() >= deadline {
                return (code, answer);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Joins the group alone and syncs its assignment: (member id, generation).
    pub fn join_and_sync(node: &BrokerProcess, assignment: &'static [u8]) -> (String, i32) {
        let join = |client: &mut RawClient, member_id: &str| {
            let mut protocol = JoinGroupRequestProtocol::default();
            protocol.name = text("range");
            protocol.metadata = Bytes::from_static(b"subscription");
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(text(GROUP)))
                .with_session_timeout_ms(30_000)
                .with_rebalance_timeout_ms(10_000)
                .with_member_id(text(member_id))
                .with_protocol_type(text("consumer"))
                .with_protocols(vec![protocol]);
            client.call(5, &request)
        };
        let (code, first) = call_coordinator(node, Duration::from_secs(20), |client| {
            let answer = join(client, "");
            (answer.error_code, answer)
        });
        assert_eq!(code, MEMBER_ID_REQUIRED);
        let member_id = first.member_id.to_string();
        let (code, joined) = call_coordinator(node, Duration::from_secs(20), |client| {
            let answer = join(client, &member_id);
            (answer.error_code, answer)
        });
        assert_eq!(code, 0, "JoinGroup");
        assert_eq!(joined.leader.as_str(), member_id);
        let generation = joined.generation_id;
        let (code, synced) = sync(node, &member_id, generation, Some(assignment));
        assert_eq!(code, 0, "SyncGroup");
        assert_eq!(synced, Bytes::from_static(assignment));
        (member_id, generation)
    }

    /// SyncGroup (the leader's when `assignment` is given): (error, assignment received).
    pub fn sync(
        node: &BrokerProcess,
        member_id: &str,
        generation: i32,
        assignment: Option<&'static [u8]>,
    ) -> (i16, Bytes) {
        call_coordinator(node, Duration::from_secs(20), |client| {
            let assignments = assignment
                .map(|bytes| {
                    let mut mine = SyncGroupRequestAssignment::default();
                    mine.member_id = text(member_id);
                    mine.assignment = Bytes::from_static(bytes);
                    vec![mine]
                })
                .unwrap_or_default();
            let request = SyncGroupRequest::default()
                .with_group_id(GroupId(text(GROUP)))
                .with_generation_id(generation)
                .with_member_id(text(member_id))
                .with_assignments(assignments);
            let answer = client.call(3, &request);
            (answer.error_code, answer.assignment)
        })
    }

    pub fn heartbeat(node: &BrokerProcess, member_id: &str, generation: i32) -> i16 {
        call_coordinator(node, Duration::from_secs(30), |client| {
            let request = HeartbeatRequest::default()
                .with_group_id(GroupId(text(GROUP)))
                .with_generation_id(generation)
                .with_member_id(text(member_id));
            (client.call(3, &request).error_code, ())
        })
        .0
    }

    /// OffsetCommit of partition 0 of `topic` with the member's generation: the error.
    pub fn commit(
        node: &BrokerProcess,
        member_id: &str,
        generation: i32,
        topic: &str,
        offset: i64,
    ) -> i16 {
        call_coordinator(node, Duration::from_secs(20), |client| {
            let mut partition = OffsetCommitRequestPartition::default();
            partition.partition_index = 0;
            partition.committed_offset = offset;
            let mut committed = OffsetCommitRequestTopic::default();
            committed.name = TopicName(text(topic));
            committed.partitions = vec![partition];
            let request = OffsetCommitRequest::default()
                .with_group_id(GroupId(text(GROUP)))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(text(member_id))
                .with_topics(vec![committed]);
            let answer = client.call(8, &request);
            let code = answer.topics[0].partitions[0].error_code;
            (code, ())
        })
        .0
    }
}

/// The coordinator's node dies (SIGKILL) while a group is Stable: on the new coordinator the
/// member carries on with its generation (Heartbeat, SyncGroup, OffsetCommit accepted, the
/// same assignment), with no rebalance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stable_group_survives_the_loss_of_the_coordinator() {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = BrokerProcess::start_cluster(directory.path(), 3, &[]);
    create_topic(&BrokerProcess::bootstrap_all(&brokers)).await;
    let coordinator = support::controller(&brokers[0]);
    let old = &brokers[coordinator as usize - 1];
    let (member, generation) = raw_member::join_and_sync(old, b"partitions 0 1 2");
    assert_eq!(raw_member::heartbeat(old, &member, generation), 0);

    brokers[coordinator as usize - 1].kill();
    let elected = new_coordinator(&brokers, coordinator);
    let new = &brokers[elected as usize - 1];
    assert_eq!(
        raw_member::heartbeat(new, &member, generation),
        0,
        "Heartbeat of generation {generation} on the new coordinator (node {elected})"
    );
    let (code, assignment) = raw_member::sync(new, &member, generation, None);
    assert_eq!(code, 0, "SyncGroup of the same generation");
    assert_eq!(&assignment[..], b"partitions 0 1 2");
    assert_eq!(
        raw_member::commit(new, &member, generation, TOPIC, 42),
        0,
        "OffsetCommit with the generation"
    );
    // Still the same generation: nothing rebalanced.
    assert_eq!(raw_member::heartbeat(new, &member, generation), 0);
    assert_eq!(
        raw_member::heartbeat(new, "someone-else", generation),
        25,
        "an unknown member is still refused"
    );
}

/// Every rebalance callback an rdkafka consumer gets.
#[derive(Default)]
struct Rebalances {
    assigned: Mutex<Vec<Vec<(String, i32)>>>,
    revoked: AtomicUsize,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let partitions = partitions
                    .elements()
                    .iter()
                    .map(|p| (p.topic().to_string(), p.partition()))
                    .collect();
                self.assigned.lock().unwrap().push(partitions);
            }
            Rebalance::Revoke(_) => {
                self.revoked.fetch_add(1, Ordering::SeqCst);
            }
            Rebalance::Error(_) => {}
        }
    }
}

/// Polls until `count` messages arrived (or the timeout passes); returns how many did. The
/// lost connection to a killed node is reported on the way and is not a failure.
fn poll_messages(consumer: &BaseConsumer<Rebalances>, count: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut received = 0;
    while received < count && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                message.payload().unwrap();
                received += 1;
            }
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown,
            ))) => {}
            Some(Err(error)) => panic!("consume failed: {error}"),
            None => {}
        }
    }
    received
}

/// A real client: an rdkafka group consumer keeps its assignment through the loss of the
/// coordinator's node, with no revoke or assign callback, goes on consuming, and commits
/// with its generation on the new coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rdkafka_consumer_does_not_rebalance_when_the_coordinator_dies() {
    let directory = tempfile::tempdir().unwrap();
    let mut brokers = BrokerProcess::start_cluster(directory.path(), 3, &[]);
    let all = BrokerProcess::bootstrap_all(&brokers);
    create_topic(&all).await;
    let producer = kafka::producer(&all, &[]);
    let batch = |from: usize| (from..from + 30).map(|i| (format!("key-{i}"), vec![b'v'; 10]));
    kafka::produce_keyed(&producer, TOPIC, batch(0)).await;

    let mut config = kafka::config(&all);
    config
        .set("group.id", "steady")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500");
    let consumer: BaseConsumer<Rebalances> =
        config.create_with_context(Rebalances::default()).unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let rebalances = consumer.context();
    assert_eq!(poll_messages(&consumer, 30, Duration::from_secs(30)), 30);
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    let assignment = consumer.assignment().unwrap();
    assert_eq!(assignment.count(), PARTITIONS as usize);
    assert_eq!(rebalances.assigned.lock().unwrap().len(), 1);
    assert_eq!(rebalances.revoked.load(Ordering::SeqCst), 0);

    let coordinator = support::controller(&brokers[0]);
    brokers[coordinator as usize - 1].kill();
    let elected = new_coordinator(&brokers, coordinator);
    kafka::produce_keyed(&producer, TOPIC, batch(30)).await;
    assert_eq!(poll_messages(&consumer, 30, Duration::from_secs(30)), 30);
    // Many heartbeats go to the new coordinator meanwhile (one every 500 ms).
    let again = poll_messages(&consumer, usize::MAX, Duration::from_secs(8));
    assert_eq!(
        rebalances.revoked.load(Ordering::SeqCst),
        0,
        "the consumer rebalanced after node {coordinator} died (new coordinator: node {elected})"
    );
    assert_eq!(rebalances.assigned.lock().unwrap().len(), 1);
    assert_eq!(consumer.assignment().unwrap(), assignment);
    assert_eq!(again, 0, "messages consumed once came again");
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
}
