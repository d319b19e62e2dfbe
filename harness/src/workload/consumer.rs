//! One consumer instance: a group member on its own thread that records every record it
//! receives (partition, offset, the bench message it carries, when).
//!
//! The thread owns its record list outright (no lock per record) and hands it over through a
//! channel when stopped, before it closes the client: closing leaves the group, which may wait
//! on a broker, and a stuck close must not hold back the records. For draining it publishes
//! the next offset it expects per partition every `PUBLISH_INTERVAL_MS`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use super::client::consumer_config;
use super::clock::RunClock;
use super::counter::Counter;
use super::payload::decode;
use super::records::ConsumedRecord;

/// How long one poll waits for a record.
const POLL_TIMEOUT_MS: u64 = 100;
/// How often the next offsets are published for draining.
const PUBLISH_INTERVAL_MS: u64 = 50;

/// What one instance is.
pub struct ConsumerPlan<'a> {
    /// Unique over the run's consumer instances.
    pub index: u32,
    pub group_index: u32,
    pub group: &'a str,
    pub topic: &'a str,
}

/// What the thread shares with the workload while it runs.
pub struct ConsumerShared {
    pub index: u32,
    pub group_index: u32,
    /// Records received, foreign ones and redeliveries included.
    pub consumed: Counter,
    /// The next offset expected per partition (0: nothing read yet), as last published.
    pub next_offsets: Mutex<Vec<i64>>,
}

/// What a stopped consumer hands over.
pub struct ConsumerLog {
    pub records: Vec<ConsumedRecord>,
    pub errors: BTreeMap<String, u64>,
}

pub struct ConsumerInstance {
    pub shared: Arc<ConsumerShared>,
    log: Receiver<ConsumerLog>,
}

impl ConsumerInstance {
    /// Creates the client, subscribes and starts polling; stops when `stop` is set.
    pub fn start(
        bootstrap: &str,
        plan: ConsumerPlan<'_>,
        clock: RunClock,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let client: BaseConsumer = consumer_config(bootstrap, plan.group)
            .create()
            .with_context(|| format!("creating consumer {} of group {}", plan.index, plan.group))?;
        client
            .subscribe(&[plan.topic])
            .with_context(|| format!("subscribing to {}", plan.topic))?;
        let shared = Arc::new(ConsumerShared {
            index: plan.index,
            group_index: plan.group_index,
            consumed: Counter::default(),
            next_offsets: Mutex::new(Vec::new()),
        });
        let (sender, log) = mpsc::sync_channel(1);
        let poller = Poller {
            client,
            shared: shared.clone(),
            clock,
            stop,
        };
        std::thread::Builder::new()
            .name(format!("consumer-{}", plan.index))
            .spawn(move || {
                let (log, client) = poller.run();
                let _ = sender.send(log);
                drop(client);
            })
            .context("starting a consumer thread")?;
        Ok(Self { shared, log })
    }

    /// The records, once the thread has seen the stop flag.
    pub fn collect(&self, timeout: Duration) -> anyhow::Result<ConsumerLog> {
        match self.log.recv_timeout(timeout) {
            Ok(log) => Ok(log),
            Err(RecvTimeoutError::Timeout) => bail!(
                "consumer {} did not stop within {} ms",
                self.shared.index,
                timeout.as_millis()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                bail!("consumer {} ended without its records", self.shared.index)
            }
        }
    }

    /// The next offset expected per partition, as last published.
    pub fn next_offsets(&self) -> Vec<i64> {
        self.shared
            .next_offsets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

struct Poller {
    client: BaseConsumer,
    shared: Arc<ConsumerShared>,
    clock: RunClock,
    stop: Arc<AtomicBool>,
}

impl Poller {
    fn run(self) -> (ConsumerLog, BaseConsumer) {
        let mut log = ConsumerLog {
            records: Vec::new(),
            errors: BTreeMap::new(),
        };
        let mut next_offsets: Vec<i64> = Vec::new();
        let mut published = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            match self.client.poll(Duration::from_millis(POLL_TIMEOUT_MS)) {
                Some(Ok(message)) => {
                    let partition = message.partition();
                    let offset = message.offset();
                    log.records.push(ConsumedRecord {
                        consumer: self.shared.index,
                        partition,
                        offset,
                        message: decode(message.payload()),
                        consumed_ns: self.clock.now_ns(),
                    });
                    self.shared.consumed.add(1);
                    if let Ok(partition) = usize::try_from(partition) {
                        if next_offsets.len() <= partition {
                            next_offsets.resize(partition + 1, 0);
                        }
                        next_offsets[partition] = next_offsets[partition].max(offset + 1);
                    }
                }
                Some(Err(error)) => *log.errors.entry(error_kind(&error)).or_default() += 1,
                None => {}
            }
            if published.elapsed() >= Duration::from_millis(PUBLISH_INTERVAL_MS) {
                self.publish(&next_offsets);
                published = Instant::now();
            }
        }
        self.publish(&next_offsets);
        (log, self.client)
    }

    fn publish(&self, next_offsets: &[i64]) {
        let mut shared = self
            .shared
            .next_offsets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        shared.clear();
        shared.extend_from_slice(next_offsets);
    }
}

/// A short, stable name for an error: librdkafka's code when it has one.
pub fn error_kind(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => format!("{error:?}"),
    }
}
