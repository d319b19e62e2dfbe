//! The scenario's workload: librdkafka producers and consumers that record everything they
//! see, so that `analysis` can later prove what happened.
//!
//! Lifecycle, as the runner drives it:
//!
//! 1. `start` creates every producer instance (each with its own thread and client) and every
//!    consumer instance (each a group member on its own thread). Producers send at once: the
//!    warmup counts as load but is not judged.
//! 2. `RunningWorkload::progress` sums per-instance counters for a live display.
//! 3. `stop_producers` stops sending and waits until every message handed out is acknowledged
//!    or failed (flushing for at most `producer::FLUSH_TIMEOUT_MS`, then purging).
//! 4. `drain_consumers` waits until every group has read everything acknowledged on its topic.
//! 5. `finish` stops the consumers and returns the `Records`.
//! 6. After the cluster has healed, `final_read` reads every partition once, start to end.
//!
//! Every message carries its producer id and sequence number (`payload`); every producer
//! instance gets an id unique over the run (in scenario order), so a message is identified by
//! the pair, and a position by (topic, partition, offset).
//!
//! Module map: `clock` (the run's time axis), `payload` (the message format), `keys` (keys and
//! partitions), `client` (librdkafka settings), `counter` (per-thread counters), `producer`,
//! `window` (per-partition windows of unthrottled producers), `consumer`, `drain` (when a group
//! has what it is owed), `records` (what a run leaves behind),
//! `final_read`.
//!
//! Deliberately left out: creating topics and judging; the runner and `analysis` do those.

mod client;
mod clock;
mod consumer;
mod counter;
mod drain;
mod final_read;
mod keys;
mod payload;
mod producer;
mod records;
mod window;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

pub use client::{
    unthrottled_batch_messages, MESSAGE_TIMEOUT_MS, REQUEST_TIMEOUT_MS, UNTHROTTLED_BATCH_BYTES,
    UNTHROTTLED_LINGER_MS, WINDOWED_QUEUE_KIB,
};
pub use clock::RunClock;
pub use final_read::final_read;
pub use keys::KeyChooser;
pub use payload::{decode, MessageId, PayloadBuffer, HEADER_BYTES, MAGIC};
pub use producer::FLUSH_TIMEOUT_MS;
pub use records::{
    Acknowledgement, ConsumedRecord, ConsumerSummary, Failure, FinalRead, GroupSummary,
    PartitionExtent, ProducerSummary, ReadRecord, Records, TopicIndex,
};
pub use window::PartitionWindows;

use consumer::{ConsumerInstance, ConsumerPlan};
use drain::{is_drained, merge_maximum, Owed};
use producer::{ProducerInstance, ProducerPlan};

use crate::scenario::Workload;

/// How long `finish` waits for each consumer to hand over its records.
pub const CONSUMER_STOP_TIMEOUT_MS: u64 = 10_000;
/// How often `drain_consumers` looks.
const DRAIN_CHECK_INTERVAL_MS: u64 = 100;

/// Counts so far, summed over instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Sequence numbers handed out.
    pub sent: u64,
    pub acknowledged: u64,
    pub failed: u64,
    /// Records received by all consumers (redeliveries and foreign records included).
    pub consumed: u64,
}

/// A started workload; see the module documentation for its lifecycle. Dropping it without
/// `finish` stops every thread without waiting.
pub struct RunningWorkload {
    clock: RunClock,
    topics: Vec<String>,
    groups: Vec<GroupSummary>,
    producers: std::sync::Mutex<Vec<ProducerInstance>>,
    /// Shared views of the producers, readable while `producers` is locked by a stop.
    producer_views: Vec<Arc<producer::ProducerShared>>,
    consumers: Vec<ConsumerInstance>,
    stop_producing: Arc<AtomicBool>,
    stop_consuming: Arc<AtomicBool>,
}

/// Starts every producer and consumer instance of `workload` against `bootstrap`. The topics
/// must exist. `seed` decides every random choice (keys, filler); `clock` is the run's axis.
pub fn start(
    bootstrap: &str,
    workload: &Workload,
    seed: u64,
    clock: RunClock,
) -> anyhow::Result<RunningWorkload> {
    let mut running = RunningWorkload {
        clock,
        topics: Vec::new(),
        groups: Vec::new(),
        producers: std::sync::Mutex::new(Vec::new()),
        producer_views: Vec::new(),
        consumers: Vec::new(),
        stop_producing: Arc::new(AtomicBool::new(false)),
        stop_consuming: Arc::new(AtomicBool::new(false)),
    };
    // Consumers first, so they are in their groups when the first messages arrive.
    for entry in &workload.consumers {
        let topic = running.topic_index(&entry.topic);
        let group_index = match running
            .groups
            .iter()
            .position(|group| group.name == entry.group && group.topic == topic)
        {
            Some(index) => index,
            None => {
                running.groups.push(GroupSummary {
                    name: entry.group.clone(),
                    topic,
                });
                running.groups.len() - 1
            }
        } as u32;
        for _ in 0..entry.count {
            let plan = ConsumerPlan {
                index: running.consumers.len() as u32,
                group_index,
                group: &entry.group,
                topic: &entry.topic,
            };
            let instance =
                ConsumerInstance::start(bootstrap, plan, clock, running.stop_consuming.clone())?;
            running.consumers.push(instance);
        }
    }
    let mut producers = Vec::new();
    for entry in &workload.producers {
        let topic = running.topic_index(&entry.topic);
        for _ in 0..entry.count {
            let plan = ProducerPlan {
                id: producers.len() as u32,
                topic,
                entry,
                seed,
            };
            let instance =
                ProducerInstance::start(bootstrap, plan, clock, running.stop_producing.clone())?;
            running.producer_views.push(instance.shared.clone());
            producers.push(instance);
        }
    }
    running.producers = std::sync::Mutex::new(producers);
    Ok(running)
}

impl RunningWorkload {
    fn topic_index(&mut self, name: &str) -> TopicIndex {
        match self.topics.iter().position(|topic| topic == name) {
            Some(index) => index as TopicIndex,
            None => {
                self.topics.push(name.to_string());
                (self.topics.len() - 1) as TopicIndex
            }
        }
    }

    pub fn clock(&self) -> RunClock {
        self.clock
    }

    pub fn progress(&self) -> Progress {
        let mut progress = Progress::default();
        for producer in &self.producer_views {
            progress.sent += producer.sent.get();
            progress.acknowledged += producer.acknowledged.get();
            progress.failed += producer.failed.get();
        }
        for consumer in &self.consumers {
            progress.consumed += consumer.shared.consumed.get();
        }
        progress
    }

    /// Stops sending and waits until every message handed out is acknowledged or failed (at
    /// most about `FLUSH_TIMEOUT_MS`). Calling it again returns at once.
    pub fn stop_producers(&self) {
        self.stop_producing.store(true, Ordering::Relaxed);
        let mut producers = self
            .producers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for producer in producers.iter_mut() {
            producer.join();
        }
    }

    /// Waits until every consumer group has read every message acknowledged on its topic so
    /// far (see `drain`), or `timeout` passes; true when drained. Meant for after
    /// `stop_producers`.
    pub fn drain_consumers(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.all_groups_drained() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(DRAIN_CHECK_INTERVAL_MS));
        }
    }

    fn all_groups_drained(&self) -> bool {
        let mut owed = vec![Owed::default(); self.topics.len()];
        for producer in &self.producer_views {
            let acknowledged = producer.acknowledged.get();
            let log = producer.lock_log();
            owed[producer.topic as usize].add_producer(
                &log.highest_offset_by_partition,
                acknowledged,
                log.acknowledged_without_offset,
            );
        }
        self.groups.iter().enumerate().all(|(group_index, group)| {
            let mut next_offsets = Vec::new();
            let mut consumed = 0;
            for consumer in &self.consumers {
                if consumer.shared.group_index as usize == group_index {
                    merge_maximum(&mut next_offsets, &consumer.next_offsets(), 0);
                    consumed += consumer.shared.consumed.get();
                }
            }
            is_drained(&owed[group.topic as usize], &next_offsets, consumed)
        })
    }

    /// Stops the producers (if not yet) and the consumers, and returns everything recorded.
    pub fn finish(mut self) -> anyhow::Result<Records> {
        self.stop_producers();
        self.stop_consuming.store(true, Ordering::Relaxed);
        let mut records = Records {
            topics: std::mem::take(&mut self.topics),
            groups: std::mem::take(&mut self.groups),
            ..Records::default()
        };
        for consumer in &self.consumers {
            let log = consumer
                .collect(Duration::from_millis(CONSUMER_STOP_TIMEOUT_MS))
                .context("collecting consumed records")?;
            records.consumed.extend(log.records);
            records.consumers.push(ConsumerSummary {
                group: consumer.shared.group_index,
                errors: log.errors,
            });
        }
        for producer in &self.producer_views {
            let mut log = producer.lock_log();
            records.acknowledgements.append(&mut log.acknowledgements);
            records.failures.append(&mut log.failures);
            records.producers.push(ProducerSummary {
                id: producer.id,
                topic: producer.topic,
                message_size_bytes: producer.message_size_bytes,
                sent: producer.sent.get(),
            });
        }
        Ok(records)
    }
}

impl Drop for RunningWorkload {
    fn drop(&mut self) {
        self.stop_producing.store(true, Ordering::Relaxed);
        self.stop_consuming.store(true, Ordering::Relaxed);
    }
}
