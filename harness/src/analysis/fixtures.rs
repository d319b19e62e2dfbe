//! Synthetic runs for the analysis tests: a builder over `Records` and `FinalRead`.

use std::time::Duration;

use rdkafka::types::RDKafkaErrorCode;

use super::{analyse, Findings};
use crate::workload::{
    Acknowledgement, ConsumedRecord, ConsumerSummary, Failure, FinalRead, GroupSummary, MessageId,
    PartitionExtent, ProducerSummary, ReadRecord, Records,
};

pub const MS: i64 = 1_000_000;

pub fn message(producer: u32, sequence: u64) -> MessageId {
    MessageId { producer, sequence }
}

#[derive(Default)]
pub struct Run {
    pub records: Records,
    pub final_read: FinalRead,
}

impl Run {
    /// Topic `events`, producer 0 on it (100-byte messages), group `verifier` with consumer 0.
    pub fn new() -> Self {
        let mut run = Run::default();
        run.add_producer("events", 100);
        run.add_group("verifier", "events", 1);
        run
    }

    fn topic(&mut self, name: &str) -> u32 {
        match self.records.topics.iter().position(|topic| topic == name) {
            Some(index) => index as u32,
            None => {
                self.records.topics.push(name.to_string());
                self.records.topics.len() as u32 - 1
            }
        }
    }

    fn final_topic(&mut self, name: &str) -> u32 {
        let topics = &mut self.final_read.topics;
        match topics.iter().position(|topic| topic == name) {
            Some(index) => index as u32,
            None => {
                topics.push(name.to_string());
                topics.len() as u32 - 1
            }
        }
    }

    /// A new producer; returns its id.
    pub fn add_producer(&mut self, topic: &str, message_size_bytes: u32) -> u32 {
        let topic = self.topic(topic);
        let id = self.records.producers.len() as u32;
        self.records.producers.push(ProducerSummary {
            id,
            topic,
            message_size_bytes,
            sent: 0,
        });
        id
    }

    /// A new group of `consumers` instances; returns their indexes.
    pub fn add_group(&mut self, name: &str, topic: &str, consumers: u32) -> Vec<u32> {
        let topic = self.topic(topic);
        self.records.groups.push(GroupSummary {
            name: name.to_string(),
            topic,
        });
        let group = self.records.groups.len() as u32 - 1;
        (0..consumers)
            .map(|_| {
                self.records.consumers.push(ConsumerSummary {
                    group,
                    ..ConsumerSummary::default()
                });
                self.records.consumers.len() as u32 - 1
            })
            .collect()
    }

    fn send(&mut self, message: MessageId) {
        let producer = &mut self.records.producers[message.producer as usize];
        producer.sent = producer.sent.max(message.sequence + 1);
    }

    pub fn acknowledge(
        &mut self,
        message: MessageId,
        partition: i32,
        offset: i64,
        intended_ms: i64,
        acknowledged_ms: i64,
    ) -> &mut Self {
        self.send(message);
        self.records.acknowledgements.push(Acknowledgement {
            message,
            partition,
            offset,
            intended_ns: intended_ms * MS,
            acknowledged_ns: acknowledged_ms * MS,
        });
        self
    }

    pub fn fail(&mut self, message: MessageId, failed_ms: i64) -> &mut Self {
        self.send(message);
        self.records.failures.push(Failure {
            message,
            intended_ns: failed_ms * MS - 30_000 * MS,
            failed_ns: failed_ms * MS,
            error: RDKafkaErrorCode::MessageTimedOut,
        });
        self
    }

    pub fn consume(
        &mut self,
        consumer: u32,
        partition: i32,
        offset: i64,
        message: Option<MessageId>,
        consumed_ms: i64,
    ) -> &mut Self {
        self.records.consumed.push(ConsumedRecord {
            consumer,
            partition,
            offset,
            message,
            consumed_ns: consumed_ms * MS,
        });
        self
    }

    /// The final read finds `message` at the position (and has read the partition up to it).
    pub fn store(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        message: Option<MessageId>,
    ) -> &mut Self {
        let topic = self.final_topic(topic);
        self.final_read.records.push(ReadRecord {
            topic,
            partition,
            offset,
            message,
        });
        let extents = &mut self.final_read.partitions;
        match extents
            .iter_mut()
            .find(|extent| extent.topic == topic && extent.partition == partition)
        {
            Some(extent) => {
                extent.high_watermark = extent.high_watermark.max(offset + 1);
                extent.next_offset = extent.high_watermark;
            }
            None => extents.push(PartitionExtent {
                topic,
                partition,
                low_watermark: 0,
                high_watermark: offset + 1,
                next_offset: offset + 1,
            }),
        }
        self
    }

    /// The happy path on `events`: acknowledged at `at_ms` (intended 2 ms before), consumed by
    /// consumer 0, found by the final read.
    pub fn deliver(
        &mut self,
        message: MessageId,
        partition: i32,
        offset: i64,
        at_ms: i64,
    ) -> &mut Self {
        self.acknowledge(message, partition, offset, at_ms - 2, at_ms)
            .consume(0, partition, offset, Some(message), at_ms + 1)
            .store("events", partition, offset, Some(message))
    }

    pub fn analyse(&self, window_ms: u64) -> Findings {
        analyse(
            &self.records,
            &self.final_read,
            Duration::from_millis(window_ms),
        )
    }
}
