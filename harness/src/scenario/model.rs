//! The typed scenario. Field names are the YAML keys, so an error's key path reads as the
//! field it is about; units are in each doc comment (durations are `std::time::Duration`).
//! A field whose key may be left out says its default.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::fault::Fault;

/// A broker's node id: 1 to `Cluster::nodes`.
pub type NodeId = u32;

/// The most nodes a scenario may ask for.
pub const MAX_NODES: u32 = 7;
/// The most partitions one topic may have.
pub const MAX_PARTITIONS: u32 = 1_000;
/// The most instances one producer or consumer entry may start.
pub const MAX_INSTANCES: u32 = 64;
/// The smallest message: it must carry the producer id and sequence number the bench checks.
pub const MIN_MESSAGE_SIZE_BYTES: u32 = 16;
/// The largest message (librdkafka's default `message.max.bytes`).
pub const MAX_MESSAGE_SIZE_BYTES: u32 = 1_000_000;

/// One scenario, read and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Names the report folder and the verdict: letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// Free text for the report. Default: empty.
    pub description: String,
    /// The seed of every random choice. Default (`None`): the bench picks one and prints it.
    pub seed: Option<u64>,
    pub cluster: Cluster,
    /// Created before the warmup. Default: none.
    pub topics: Vec<Topic>,
    pub workload: Workload,
    /// In time order. Default: none.
    pub faults: Vec<Fault>,
    /// Default: every check at its default (see `Checks`).
    pub checks: Checks,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// 1 to `MAX_NODES`; the nodes are numbered 1..=nodes.
    pub nodes: u32,
    /// Default: `Runtime::Process`.
    pub runtime: Runtime,
    /// Passed to every broker (whole milliseconds). Default (`None`): the broker's own.
    pub election_timeout: Option<Duration>,
    /// Default: `ObjectStore::Local`.
    pub object_store: ObjectStore,
    /// Extra environment for every broker. Default: none.
    pub env: BTreeMap<String, String>,
}

/// How brokers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// `process`: local processes.
    Process,
    /// `docker`: containers.
    Docker,
}

impl Runtime {
    /// The name in the scenario (and in reports).
    pub fn name(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Docker => "docker",
        }
    }
}

/// Where snapshots go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectStore {
    /// `local`: a directory inside the run's folder.
    Local,
    /// `memory`: in each broker's memory (lost with the process).
    Memory,
    /// `s3://bucket/prefix` (the prefix may be empty).
    S3 { bucket: String, prefix: String },
}

impl ObjectStore {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "local" => return Ok(Self::Local),
            "memory" => return Ok(Self::Memory),
            _ => {}
        }
        let Some(location) = text.strip_prefix("s3://") else {
            return Err(format!(
                "`{text}` is not an object store: expected local, memory or s3://bucket/prefix"
            ));
        };
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        let bucket_character =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
        if !(3..=63).contains(&bucket.len()) || !bucket.chars().all(bucket_character) {
            return Err(format!(
                "`{text}`: `{bucket}` is not an S3 bucket name (3 to 63 of a-z, 0-9, `.`, `-`)"
            ));
        }
        Ok(Self::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for ObjectStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => formatter.write_str("local"),
            Self::Memory => formatter.write_str("memory"),
            Self::S3 { bucket, prefix } => write!(formatter, "s3://{bucket}/{prefix}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    /// Kafka's rules: 1 to 249 of letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// 1 to `MAX_PARTITIONS`.
    pub partitions: u32,
    /// 1 to `Cluster::nodes`.
    pub replication_factor: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// The measured window, after the warmup; fault times count from its start. Above zero.
    pub duration: Duration,
    /// Load before the measured window, not judged. Default: 0s.
    pub warmup: Duration,
    /// At least one.
    pub producers: Vec<Producer>,
    /// Default: none.
    pub consumers: Vec<Consumer>,
}

impl Workload {
    /// The part of the measured window in which producers send: until the last producer's
    /// `stop_after`, or the whole window. Throughput, latency and unavailability are judged
    /// over it, so a scenario whose load stops on purpose is not judged unavailable after.
    pub fn sending_window(&self) -> Duration {
        self.producers
            .iter()
            .map(|producer| producer.stop_after.unwrap_or(self.duration))
            .max()
            .unwrap_or(self.duration)
            .min(self.duration)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Producer {
    /// A topic declared in `topics`.
    pub topic: String,
    /// Producer instances, 1 to `MAX_INSTANCES`. Default: 1.
    pub count: u32,
    /// Messages per second per instance; 0 = as fast as it can.
    pub rate: u64,
    /// Bytes per message, `MIN_MESSAGE_SIZE_BYTES` to `MAX_MESSAGE_SIZE_BYTES`.
    pub message_size: u32,
    /// Default: `Keys::None`.
    pub keys: Keys,
    /// Default: `Acks::All` (librdkafka's default).
    pub acks: Acks,
    /// `enable.idempotence`. Default: false (librdkafka's default).
    pub idempotent: bool,
    /// Default: `Compression::None` (librdkafka's default).
    pub compression: Compression,
    /// Extra librdkafka properties. Default: none. Properties that have a field above
    /// (`acks`, `enable.idempotence`, `compression.type`, ...) are refused here.
    pub config: BTreeMap<String, String>,
    /// How far into the measured window the instances stop sending (they keep their
    /// connections, and their in-flight messages are still acknowledged). Default: they send
    /// until the window ends. At most `workload.duration`.
    pub stop_after: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// `none`: no key; the client spreads messages over partitions.
    None,
    /// `round_robin`: keys that cycle over the partitions.
    RoundRobin,
    /// `random`: a random key per message (from the seed).
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// `all`
    All,
    /// `1`
    Leader,
    /// `0`
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// A topic declared in `topics`.
    pub topic: String,
    /// The consumer group id.
    pub group: String,
    /// Consumer instances in the group, 1 to `MAX_INSTANCES`. Default: 1.
    pub count: u32,
}

/// The limits the verdict judges. The correctness limits are always judged (default 0: a
/// scenario that forgets its checks still fails on a lost message); the others only when given.
/// `Checks::default()` is what an absent `checks` section means.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checks {
    /// Acknowledged messages never consumed. Default: 0.
    pub lost: u64,
    /// Messages consumed more than once. Default: 0.
    pub duplicates: u64,
    /// Messages consumed out of their producer's order within a partition. Default: 0.
    pub reordered: u64,
    /// The longest gap without a successful acknowledgement. Default: not judged.
    pub max_unavailability: Option<Duration>,
    /// Acknowledged messages per second over the window. Default: not judged.
    pub min_throughput: Option<u64>,
    /// p99 latency from intended send to acknowledgement. Default: not judged.
    pub max_p99_latency: Option<Duration>,
    /// From a restart or wipe until the node has caught up. Default: not judged.
    pub max_recovery: Option<Duration>,
}
