//! One producer instance: a sending thread and the delivery reports that record every outcome.
//!
//! The sending thread hands messages to a librdkafka `ThreadedProducer`. With a `rate` it
//! schedules message `n` at `first + n / rate` and sends it when due, or at once when behind:
//! the intended time stays on the schedule, so a stalled broker shows up as latency instead of
//! as a stalled generator (coordinated omission). Unthrottled (`rate: 0`), a message's intended
//! time is when its send was first attempted and a full client queue is waited out
//! (back-pressure), so the latency includes the time queued in the client.
//!
//! Per message the hot path writes the 16-byte header into a reused buffer and passes the
//! intended time as the delivery opaque (an integer, no allocation); librdkafka copies the
//! payload. Delivery reports arrive on the producer's polling thread and go into this
//! instance's own log (a mutex that only that thread takes until the run ends).
//!
//! An unthrottled producer with round-robin keys hands the client at most one batch per
//! partition until it is reported (`window`), skipping partitions whose window is full; with
//! every window full it waits, and that wait counts as latency like a full queue's.
//!
//! With `stop_after` the thread stops sending at that point of the measured window and waits
//! for the run's stop. At stop the thread stops sending, flushes for at most `FLUSH_TIMEOUT_MS`, and drops the
//! client, which purges whatever is still queued: those messages are reported failed, so every
//! sequence number handed out ends acknowledged or failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::client::{
    producer_config, unthrottled_batch_messages, uses_windows, MESSAGE_TIMEOUT_MS,
};
use super::clock::RunClock;
use super::counter::Counter;
use super::keys::KeyChooser;
use super::payload::{decode, MessageId, PayloadBuffer};
use super::records::{Acknowledgement, Failure, TopicIndex};
use super::window::PartitionWindows;
use crate::scenario::{self, Acks, Keys};

/// How long a stopping producer waits for its in-flight messages.
pub const FLUSH_TIMEOUT_MS: u64 = MESSAGE_TIMEOUT_MS + 5_000;
/// How long to wait for a topic's partitions to show in the metadata (round-robin keys).
const METADATA_TIMEOUT_MS: u64 = 10_000;
/// The pause before retrying a message the client's full queue (or every full window) refused.
const QUEUE_FULL_BACKOFF_US: u64 = 200;
/// The longest sleep of a throttled producer, so a stop is noticed quickly.
const SLEEP_SLICE_MS: u64 = 50;

// The intended time (an i64) travels as the delivery opaque (a usize).
const _: () = assert!(usize::BITS == 64);

/// What one instance sends.
pub struct ProducerPlan<'a> {
    pub id: u32,
    pub topic: TopicIndex,
    pub entry: &'a scenario::Producer,
    pub seed: u64,
}

/// What the sending thread and the delivery reports share with the workload.
pub struct ProducerShared {
    pub id: u32,
    pub topic: TopicIndex,
    pub message_size_bytes: u32,
    /// Whether the broker reports offsets (not with acks=0, where librdkafka makes them up).
    pub offsets_reported: bool,
    /// Sequence numbers handed out (written by the sending thread only).
    pub sent: Counter,
    pub acknowledged: Counter,
    pub failed: Counter,
    clock: RunClock,
    log: Mutex<DeliveryLog>,
    /// Per-partition windows of an unthrottled round-robin producer (set once the partition
    /// count is known).
    windows: OnceLock<PartitionWindows>,
}

/// Every outcome so far, plus what draining needs without scanning them.
#[derive(Default)]
pub struct DeliveryLog {
    pub acknowledgements: Vec<Acknowledgement>,
    pub failures: Vec<Failure>,
    /// The highest acknowledged offset per partition (-1: none).
    pub highest_offset_by_partition: Vec<i64>,
    /// Acknowledgements that came without an offset (acks=0).
    pub acknowledged_without_offset: u64,
}

impl DeliveryLog {
    fn acknowledge(&mut self, acknowledgement: Acknowledgement) {
        if acknowledgement.offset < 0 {
            self.acknowledged_without_offset += 1;
        } else if let Ok(partition) = usize::try_from(acknowledgement.partition) {
            if self.highest_offset_by_partition.len() <= partition {
                self.highest_offset_by_partition.resize(partition + 1, -1);
            }
            let highest = &mut self.highest_offset_by_partition[partition];
            *highest = (*highest).max(acknowledgement.offset);
        }
        self.acknowledgements.push(acknowledgement);
    }
}

impl ProducerShared {
    fn fail(&self, message: MessageId, intended_ns: i64, error: RDKafkaErrorCode) {
        let failure = Failure {
            message,
            intended_ns,
            failed_ns: self.clock.now_ns(),
            error,
        };
        self.lock_log().failures.push(failure);
        self.failed.add(1);
    }

    pub fn lock_log(&self) -> std::sync::MutexGuard<'_, DeliveryLog> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct RecordingContext(Arc<ProducerShared>);

impl ClientContext for RecordingContext {}

impl ProducerContext for RecordingContext {
    /// The intended send time on the run's clock, as the bits of an i64.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, intended: usize) {
        let shared = &self.0;
        let intended_ns = intended as i64;
        let (message, outcome) = match result {
            Ok(message) => (message, None),
            Err((error, message)) => (message, Some(error)),
        };
        if let Some(windows) = shared.windows.get() {
            windows.release(message.partition());
        }
        let Some(id) = decode(message.payload()) else {
            tracing::error!(
                producer = shared.id,
                "a delivery report without a bench message"
            );
            return;
        };
        match outcome {
            None => {
                let acknowledgement = Acknowledgement {
                    message: id,
                    partition: message.partition(),
                    offset: if shared.offsets_reported {
                        message.offset()
                    } else {
                        -1
                    },
                    intended_ns,
                    acknowledged_ns: shared.clock.now_ns(),
                };
                shared.lock_log().acknowledge(acknowledgement);
                shared.acknowledged.add(1);
            }
            Some(error) => shared.fail(id, intended_ns, error_code(error)),
        }
    }
}

fn error_code(error: &KafkaError) -> RDKafkaErrorCode {
    error
        .rdkafka_error_code()
        .unwrap_or(RDKafkaErrorCode::Unknown)
}

/// A running producer instance.
pub struct ProducerInstance {
    pub shared: Arc<ProducerShared>,
    thread: Option<JoinHandle<()>>,
}

impl ProducerInstance {
    /// Creates the client and starts sending; stops when `stop` is set.
    pub fn start(
        bootstrap: &str,
        plan: ProducerPlan<'_>,
        clock: RunClock,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let entry = plan.entry;
        let shared = Arc::new(ProducerShared {
            id: plan.id,
            topic: plan.topic,
            message_size_bytes: entry.message_size,
            offsets_reported: entry.acks != Acks::None,
            sent: Counter::default(),
            acknowledged: Counter::default(),
            failed: Counter::default(),
            clock,
            log: Mutex::new(DeliveryLog::default()),
            windows: OnceLock::new(),
        });
        let client: ThreadedProducer<RecordingContext> = producer_config(bootstrap, entry)
            .create_with_context(RecordingContext(shared.clone()))
            .with_context(|| format!("creating producer {}", plan.id))?;
        let mut rng = fastrand::Rng::with_seed(instance_seed(plan.seed, plan.id));
        let keys = match entry.keys {
            Keys::None => KeyChooser::none(),
            Keys::Random => KeyChooser::random(rng.fork()),
            Keys::RoundRobin => {
                let partitions = partition_count(&client, &entry.topic)?;
                if uses_windows(entry) {
                    let batch_messages = unthrottled_batch_messages(entry.message_size);
                    let windows = PartitionWindows::new(partitions, batch_messages);
                    let _ = shared.windows.set(windows);
                }
                KeyChooser::round_robin(partitions, plan.id)
            }
        };
        let sender = Sender {
            client,
            topic: entry.topic.clone(),
            rate: entry.rate,
            stop_after_ns: entry
                .stop_after
                .map(|stop_after| i64::try_from(stop_after.as_nanos()).unwrap_or(i64::MAX)),
            payload: PayloadBuffer::new(plan.id, entry.message_size as usize, &mut rng),
            keys,
            shared: shared.clone(),
            clock,
            stop,
        };
        let thread = std::thread::Builder::new()
            .name(format!("producer-{}", plan.id))
            .spawn(move || sender.run())
            .context("starting a producer thread")?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Waits for the sending thread (after the stop flag is set): it returns once its messages
    /// are flushed or purged.
    pub fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(producer = self.shared.id, "the producer thread panicked");
            }
        }
    }
}

/// Each instance's own seed, so instances do not repeat each other's choices.
pub fn instance_seed(seed: u64, instance: u32) -> u64 {
    // splitmix64 of the pair
    let mut mixed = seed ^ (u64::from(instance) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}

/// The topic's partition count from the cluster's metadata (waits for the topic to show).
fn partition_count(
    client: &ThreadedProducer<RecordingContext>,
    topic: &str,
) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_millis(METADATA_TIMEOUT_MS);
    loop {
        let metadata = client
            .client()
            .fetch_metadata(Some(topic), Duration::from_millis(METADATA_TIMEOUT_MS));
        if let Ok(metadata) = &metadata {
            let partitions = metadata
                .topics()
                .iter()
                .find(|candidate| candidate.name() == topic && candidate.error().is_none())
                .map_or(0, |found| found.partitions().len());
            if partitions > 0 {
                return Ok(partitions as u32);
            }
        }
        if Instant::now() >= deadline {
            bail!("topic {topic} has no partitions in the cluster's metadata ({metadata:?})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sending thread's state.
struct Sender {
    client: ThreadedProducer<RecordingContext>,
    topic: String,
    rate: u64,
    /// When, on the run's clock, the instance stops sending (`stop_after`).
    stop_after_ns: Option<i64>,
    payload: PayloadBuffer,
    keys: KeyChooser,
    shared: Arc<ProducerShared>,
    clock: RunClock,
    stop: Arc<AtomicBool>,
}

impl Sender {
    fn run(mut self) {
        let first_ns = self.clock.now_ns();
        let mut sequence = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let intended_ns = if self.rate == 0 {
                self.clock.now_ns()
            } else {
                let due_ns = first_ns + scheduled_offset_ns(sequence, self.rate);
                if !self.sleep_until(due_ns) {
                    break;
                }
                due_ns
            };
            if self
                .stop_after_ns
                .is_some_and(|stop_ns| intended_ns >= stop_ns)
            {
                // Done sending: wait for the run's stop, then flush as every instance does.
                self.sleep_until(i64::MAX);
                break;
            }
            if !self.send(sequence, intended_ns) {
                break;
            }
            sequence += 1;
            self.shared.sent.set(sequence);
        }
        if let Err(error) = self.client.flush(Duration::from_millis(FLUSH_TIMEOUT_MS)) {
            tracing::warn!(producer = self.shared.id, %error, "flush incomplete; purging the rest");
        }
        // Dropping the client purges what is left; the purged messages are reported failed.
    }

    /// Sleeps until `due_ns` on the run's clock; false when stopped first.
    fn sleep_until(&self, due_ns: i64) -> bool {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let remaining_ns = due_ns.saturating_sub(self.clock.now_ns());
            if remaining_ns <= 0 {
                return true;
            }
            let slice_ns = remaining_ns.min(SLEEP_SLICE_MS as i64 * 1_000_000);
            std::thread::sleep(Duration::from_nanos(slice_ns as u64));
        }
    }

    /// Hands message `sequence` to the client, waiting out a full queue; false when stopped
    /// while waiting (the message then was not sent).
    fn send(&mut self, sequence: u64, intended_ns: i64) -> bool {
        let windows = self.shared.windows.get();
        let has_room = |partition| windows.is_none_or(|windows| windows.has_room(partition));
        while !self.keys.advance_to_accepted(has_room) {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_micros(QUEUE_FULL_BACKOFF_US));
        }
        let placement = self.keys.next_placement();
        // Taken before the send: the report that releases it may come at once.
        let windowed_partition = windows.zip(placement.partition);
        if let Some((windows, partition)) = windowed_partition {
            windows.take(partition);
        }
        let mut record =
            BaseRecord::<[u8], [u8], usize>::with_opaque_to(&self.topic, intended_ns as usize)
                .payload(self.payload.message(sequence));
        if let Some(key) = placement.key {
            record = record.key(key);
        }
        if let Some(partition) = placement.partition {
            record = record.partition(partition);
        }
        loop {
            match self.client.send(record) {
                Ok(()) => return true,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    if self.stop.load(Ordering::Relaxed) {
                        if let Some((windows, partition)) = windowed_partition {
                            windows.release(partition);
                        }
                        return false;
                    }
                    record = returned;
                    std::thread::sleep(Duration::from_micros(QUEUE_FULL_BACKOFF_US));
                }
                Err((error, _)) => {
                    if let Some((windows, partition)) = windowed_partition {
                        windows.release(partition);
                    }
                    let message = MessageId {
                        producer: self.shared.id,
                        sequence,
                    };
                    self.shared.fail(message, intended_ns, error_code(&error));
                    return true;
                }
            }
        }
    }
}

/// When message `sequence` is due, from the first message, at `rate` messages per second.
pub fn scheduled_offset_ns(sequence: u64, rate: u64) -> i64 {
    let offset_ns = u128::from(sequence) * 1_000_000_000 / u128::from(rate);
    i64::try_from(offset_ns).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_has_no_drift() {
        assert_eq!(scheduled_offset_ns(0, 500), 0);
        assert_eq!(scheduled_offset_ns(1, 500), 2_000_000);
        assert_eq!(scheduled_offset_ns(1_500, 500), 3_000_000_000);
        assert_eq!(scheduled_offset_ns(1, 3), 333_333_333);
        assert_eq!(scheduled_offset_ns(3, 3), 1_000_000_000);
    }

    #[test]
    fn instances_get_different_seeds() {
        assert_ne!(instance_seed(7, 0), instance_seed(7, 1));
        assert_ne!(instance_seed(7, 0), instance_seed(8, 0));
        assert_eq!(instance_seed(7, 3), instance_seed(7, 3));
    }

    #[test]
    fn the_log_tracks_the_highest_offset_per_partition() {
        let mut log = DeliveryLog::default();
        let acknowledgement = |partition, offset| Acknowledgement {
            message: MessageId {
                producer: 0,
                sequence: 0,
            },
            partition,
            offset,
            intended_ns: 0,
            acknowledged_ns: 0,
        };
        log.acknowledge(acknowledgement(2, 5));
        log.acknowledge(acknowledgement(2, 3));
        log.acknowledge(acknowledgement(0, 1));
        log.acknowledge(acknowledgement(1, -1));
        assert_eq!(log.highest_offset_by_partition, [1, -1, 5]);
        assert_eq!(log.acknowledged_without_offset, 1);
        assert_eq!(log.acknowledgements.len(), 4);
    }
}
