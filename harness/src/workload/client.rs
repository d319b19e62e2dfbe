//! librdkafka settings for the workload's clients. The timeouts are chosen so that a leader
//! failover (about a second) costs latency, not deliveries, while a cluster that stays down
//! still fails every message within `MESSAGE_TIMEOUT_MS` and so ends the run.

use rdkafka::config::ClientConfig;

use crate::scenario::{Acks, Compression, Producer};

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
        config
            .set(
                "queue.buffering.max.kbytes",
                UNTHROTTLED_QUEUE_KIB.to_string(),
            )
            .set("linger.ms", UNTHROTTLED_LINGER_MS.to_string())
            .set("batch.size", UNTHROTTLED_BATCH_BYTES.to_string());
    }
    for (key, value) in &producer.config {
        config.set(key, value);
    }
    config
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
    use crate::scenario::Keys;

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
