//! librdkafka settings for the workload's clients. The timeouts are chosen so that a leader
//! failover (about a second) costs latency, not deliveries, while a cluster that stays down
//! still fails every message within `MESSAGE_TIMEOUT_MS` and so ends the run.

use rdkafka::config::ClientConfig;

use crate::scenario::{Acks, Compression, Keys, Producer};

/// How long librdkafka keeps retrying a message before reporting it failed.
pub const MESSAGE_TIMEOUT_MS: u64 = 30_000;
/// How long one produce or fetch request may take before it is retried (a paused broker must
/// not hold a request for the whole message timeout).
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// The client queue of an unthrottled (`rate: 0`) producer, in KiB: with
/// [`UNTHROTTLED_LINGER_MS`], enough to keep the pipelines of a cluster on this machine full
/// (about 100 ms of its throughput for two producers), small enough that a message waits a
/// fraction of a second in it, never the whole `MESSAGE_TIMEOUT_MS` (librdkafka's default of
/// 1 GiB did: messages then timed out in flight, and librdkafka re-sends the rest under a
/// bumped epoch, which stores them twice; see librdkafka issue 4953).
pub const UNTHROTTLED_QUEUE_KIB: u64 = 4 * 1024;
/// How long an unthrottled producer lets a batch fill, and how large it may grow. An
/// idempotent librdkafka producer has at most 5 requests in flight per partition; with a
/// batch always waiting and a round trip longer than 5 x `linger.ms`, its broker threads poll
/// without a timeout until an answer comes. With librdkafka's 5 ms that spin took about a
/// core of this two-core machine from the brokers it measured.
pub const UNTHROTTLED_LINGER_MS: u64 = 50;
pub const UNTHROTTLED_BATCH_BYTES: u64 = 1_000_000;
/// The client queue of an unthrottled producer with partition windows (`window`): the windows
/// bound what it holds to a batch per partition; this caps only topics with many partitions.
pub const WINDOWED_QUEUE_KIB: u64 = 64 * 1024;
/// What a record takes in a batch besides its payload (key, record header), rounded up.
const RECORD_OVERHEAD_BYTES: u64 = 64;
/// librdkafka's largest `batch.num.messages`.
const MAX_BATCH_MESSAGES: u64 = 1_000_000;
/// The longest wait before reconnecting to a broker that went away (librdkafka's default of
/// 10 s would hide a restarted broker for that long).
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 1_000;
/// A consumer whose heartbeats stop for this long leaves its group.
pub const SESSION_TIMEOUT_MS: u64 = 10_000;

/// Settings every client shares.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("reconnect.backoff.ms", "50")
        .set(
            "reconnect.backoff.max.ms",
            RECONNECT_BACKOFF_MAX_MS.to_string(),
        );
    config
}

/// A producer entry's settings; its `config` map comes last and may override the timeouts.
pub fn producer_config(bootstrap: &str, producer: &Producer) -> ClientConfig {
    let mut config = base_config(bootstrap);
    config
        .set("acks", acks_value(producer.acks))
        .set("enable.idempotence", producer.idempotent.to_string())
        .set("compression.type", compression_value(producer.compression))
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS.to_string())
        .set("request.timeout.ms", REQUEST_TIMEOUT_MS.to_string());
    if producer.rate == 0 {
        let queue_kib = if uses_windows(producer) {
            WINDOWED_QUEUE_KIB
        } else {
            UNTHROTTLED_QUEUE_KIB
        };
        config
            .set("queue.buffering.max.kbytes", queue_kib.to_string())
            .set("linger.ms", UNTHROTTLED_LINGER_MS.to_string())
            .set("batch.size", UNTHROTTLED_BATCH_BYTES.to_string());
        if uses_windows(producer) {
            config.set(
                "batch.num.messages",
                unthrottled_batch_messages(producer.message_size).to_string(),
            );
        }
    }
    for (key, value) in &producer.config {
        config.set(key, value);
    }
    config
}

/// Whether the producer limits itself to a batch per partition (`window`): unthrottled, and
/// picking its partitions itself.
pub fn uses_windows(producer: &Producer) -> bool {
    producer.rate == 0 && producer.keys == Keys::RoundRobin
}

/// How many messages of `message_size_bytes` fill an unthrottled batch, so a full batch is
/// counted full (`batch.num.messages`) before it reaches `batch.size`.
pub fn unthrottled_batch_messages(message_size_bytes: u32) -> u32 {
    let record_bytes = u64::from(message_size_bytes) + RECORD_OVERHEAD_BYTES;
    (UNTHROTTLED_BATCH_BYTES / record_bytes).clamp(1, MAX_BATCH_MESSAGES) as u32
}

/// A group member: reads from the earliest offset, commits automatically, cooperative
/// rebalancing (fewer partitions change hands, so fewer redeliveries).
pub fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = base_config(bootstrap);
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", "1000")
        .set("enable.partition.eof", "false");
    config
}

pub fn acks_value(acks: Acks) -> &'static str {
    match acks {
        Acks::All => "all",
        Acks::Leader => "1",
        Acks::None => "0",
    }
}

pub fn compression_value(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn producer() -> Producer {
        Producer {
            topic: "events".into(),
            count: 1,
            rate: 0,
            message_size: 64,
            keys: Keys::None,
            acks: Acks::Leader,
            idempotent: true,
            compression: Compression::Zstd,
            config: BTreeMap::from([
                ("linger.ms".to_string(), "7".to_string()),
                ("message.timeout.ms".to_string(), "9000".to_string()),
            ]),
            stop_after: None,
        }
    }

    #[test]
    fn the_scenario_sets_the_producer_properties_and_its_map_wins() {
        let config = producer_config("127.0.0.1:9092", &producer());
        assert_eq!(
            config.get("queue.buffering.max.kbytes"),
            Some(UNTHROTTLED_QUEUE_KIB.to_string().as_str())
        );
        assert_eq!(config.get("acks"), Some("1"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("compression.type"), Some("zstd"));
        assert_eq!(config.get("linger.ms"), Some("7"));
        assert_eq!(config.get("batch.size"), Some("1000000"));
        assert_eq!(config.get("message.timeout.ms"), Some("9000"));
        assert_eq!(config.get("request.timeout.ms"), Some("5000"));
        assert_eq!(
            config.get("batch.num.messages"),
            None,
            "keys: none has no windows"
        );
        let windowed = Producer {
            keys: Keys::RoundRobin,
            message_size: 1024,
            config: BTreeMap::new(),
            ..producer()
        };
        let config = producer_config("127.0.0.1:9092", &windowed);
        assert_eq!(config.get("batch.num.messages"), Some("919"));
        assert_eq!(
            unthrottled_batch_messages(4_000_000),
            1,
            "a batch holds a message"
        );
        assert_eq!(unthrottled_batch_messages(0), 15_625);
        assert_eq!(
            config.get("queue.buffering.max.kbytes"),
            Some(WINDOWED_QUEUE_KIB.to_string().as_str())
        );
        let throttled = Producer {
            rate: 100,
            config: BTreeMap::new(),
            ..producer()
        };
        let config = producer_config("127.0.0.1:9092", &throttled);
        assert_eq!(config.get("queue.buffering.max.kbytes"), None);
        assert_eq!(config.get("linger.ms"), None);
        assert_eq!(config.get("batch.size"), None);
    }
}
