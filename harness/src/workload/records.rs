//! What a workload run leaves behind: every acknowledgement, failure and consumed record, and
//! the final read. Times are nanoseconds from the start of the measured window (negative during
//! the warmup); topics are indexes into the owning table's `topics`, so a record carries no
//! string. `analysis` judges these; nothing here interprets them.

use std::collections::BTreeMap;

use rdkafka::types::RDKafkaErrorCode;

pub use super::payload::MessageId;

/// An index into `Records::topics` (or `FinalRead::topics`).
pub type TopicIndex = u32;

/// Everything the producers and consumers of one run saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Records {
    /// The topics the workload touched.
    pub topics: Vec<String>,
    /// Indexed by producer id.
    pub producers: Vec<ProducerSummary>,
    /// One per consumer group (a group name and its topic).
    pub groups: Vec<GroupSummary>,
    /// Indexed by consumer instance.
    pub consumers: Vec<ConsumerSummary>,
    /// Every successful delivery report, in no particular order.
    pub acknowledgements: Vec<Acknowledgement>,
    /// Every failed delivery, in no particular order.
    pub failures: Vec<Failure>,
    /// Every record every consumer received, in no particular order (per consumer in the
    /// order received).
    pub consumed: Vec<ConsumedRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerSummary {
    /// Equal to this summary's index in `Records::producers`.
    pub id: u32,
    pub topic: TopicIndex,
    pub message_size_bytes: u32,
    /// Sequence numbers handed out: messages the client accepted, plus those it refused at once
    /// (which are failures). Every sequence below this ends acknowledged or failed.
    pub sent: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    pub topic: TopicIndex,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerSummary {
    /// An index into `Records::groups`.
    pub group: u32,
    /// Errors the client reported while polling (a broker going away, a rebalance), by kind.
    pub errors: BTreeMap<String, u64>,
}

/// A successful delivery report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acknowledgement {
    pub message: MessageId,
    pub partition: i32,
    /// -1 when the broker gives no offset (acks=0: librdkafka's delivery report then carries
    /// a made-up one, which is dropped).
    pub offset: i64,
    /// When the message was meant to be sent: on the producer's schedule, or when its send was
    /// first attempted for an unthrottled producer.
    pub intended_ns: i64,
    pub acknowledged_ns: i64,
}

/// A delivery that failed: refused at once by the client or reported failed later (timed out,
/// refused by the broker, purged at shutdown). Not acknowledged, so not owed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: MessageId,
    pub intended_ns: i64,
    pub failed_ns: i64,
    pub error: RDKafkaErrorCode,
}

/// One record as a consumer received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// An index into `Records::consumers` (whose group gives the topic).
    pub consumer: u32,
    pub partition: i32,
    pub offset: i64,
    /// `None` for a record that is not a bench message.
    pub message: Option<MessageId>,
    pub consumed_ns: i64,
}

/// Every partition read once from its start to its high watermark, after the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FinalRead {
    pub topics: Vec<String>,
    pub partitions: Vec<PartitionExtent>,
    /// In offset order per partition.
    pub records: Vec<ReadRecord>,
}

impl FinalRead {
    /// Whether every partition was read up to the high watermark it had when the read began.
    pub fn is_complete(&self) -> bool {
        self.partitions
            .iter()
            .all(|extent| extent.next_offset >= extent.high_watermark)
    }
}

/// How far the final read got in one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionExtent {
    pub topic: TopicIndex,
    pub partition: i32,
    pub low_watermark: i64,
    pub high_watermark: i64,
    /// One past the last offset read (the low watermark when nothing was read).
    pub next_offset: i64,
}

/// One record of the final read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    /// An index into `FinalRead::topics`.
    pub topic: TopicIndex,
    pub partition: i32,
    pub offset: i64,
    /// `None` for a record that is not a bench message.
    pub message: Option<MessageId>,
}
