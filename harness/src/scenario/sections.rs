//! Reading the scenario's sections (everything but the faults) from a `serde_yaml_ng::Value`.
//! Each section lists its keys once; any other key is an error naming it.

use std::time::Duration;

use serde_yaml_ng::Value;

use super::fault_reader::read_fault;
use super::issues::Issues;
use super::model::*;
use super::path::KeyPath;
use super::reader::{self, Fields};
use super::target::check_topic_name;
use super::{duration, fault::Fault};

const SCENARIO_KEYS: [&str; 8] = [
    "name",
    "description",
    "seed",
    "cluster",
    "topics",
    "workload",
    "faults",
    "checks",
];
const CLUSTER_KEYS: [&str; 5] = [
    "nodes",
    "runtime",
    "election_timeout",
    "object_store",
    "env",
];
const TOPIC_KEYS: [&str; 3] = ["name", "partitions", "replication_factor"];
const WORKLOAD_KEYS: [&str; 4] = ["duration", "warmup", "producers", "consumers"];
const PRODUCER_KEYS: [&str; 10] = [
    "topic",
    "count",
    "rate",
    "message_size",
    "keys",
    "acks",
    "idempotent",
    "compression",
    "config",
    "stop_after",
];
const CONSUMER_KEYS: [&str; 3] = ["topic", "group", "count"];
const CHECK_KEYS: [&str; 7] = [
    "lost",
    "duplicates",
    "reordered",
    "max_unavailability",
    "min_throughput",
    "max_p99_latency",
    "max_recovery",
];

/// The longest scenario name (it names a folder).
const MAX_NAME_LENGTH: usize = 100;

fn no_hint(_: &str) -> Option<String> {
    None
}

pub(crate) fn read_scenario(issues: &mut Issues, root: &Value) -> Option<Scenario> {
    let what = "a scenario: a mapping with name, cluster, topics, workload, faults and checks";
    let fields = Fields::open(issues, root, &KeyPath::root(), what)?;
    fields.allow_only(issues, "a scenario", &SCENARIO_KEYS, &no_hint);
    let name = fields.required(
        issues,
        "name",
        "the scenario's name",
        &reader::parsed(check_scenario_name, "a name"),
    );
    let description = fields.or(issues, "description", String::new(), &reader::string);
    let seed = fields.optional(issues, "seed", &reader::whole(0..=u64::MAX, "a seed"));
    let cluster = fields.required(issues, "cluster", "a mapping with `nodes`", &read_cluster);
    let topics = fields.or(
        issues,
        "topics",
        Vec::new(),
        &reader::list("topics", &read_topic),
    );
    let workload = fields.required(
        issues,
        "workload",
        "a mapping with `duration` and `producers`",
        &read_workload,
    );
    let faults: Option<Vec<Fault>> = fields.or(
        issues,
        "faults",
        Vec::new(),
        &reader::list("faults", &read_fault),
    );
    let checks = fields.or(issues, "checks", Checks::default(), &read_checks);
    Some(Scenario {
        name: name?,
        description: description?,
        seed: seed?,
        cluster: cluster?,
        topics: topics?,
        workload: workload?,
        faults: faults?,
        checks: checks?,
    })
}

fn check_scenario_name(name: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MAX_NAME_LENGTH || name.starts_with('.') {
        return Err(format!(
            "`{name}` is not a scenario name: expected 1 to {MAX_NAME_LENGTH} characters, not starting with `.`"
        ));
    }
    match name.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!(
            "`{name}` is not a scenario name: `{c}` is not allowed (letters, digits, `.`, `_`, `-`: it names a folder)"
        )),
        None => Ok(name.to_string()),
    }
}

fn read_cluster(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Cluster> {
    let fields = Fields::open(issues, value, path, "a mapping with `nodes`")?;
    fields.allow_only(issues, "`cluster`", &CLUSTER_KEYS, &no_hint);
    let node_count = reader::whole(1..=u64::from(MAX_NODES), "nodes in the cluster");
    let nodes = fields.required(issues, "nodes", "the number of nodes", &node_count);
    let runtimes = [("process", Runtime::Process), ("docker", Runtime::Docker)];
    let runtime = fields.or(
        issues,
        "runtime",
        Runtime::Process,
        &reader::choice(&runtimes),
    );
    let election_timeout = fields.optional(issues, "election_timeout", &election_timeout);
    let store = reader::parsed(ObjectStore::parse, "local, memory or s3://bucket/prefix");
    let object_store = fields.or(issues, "object_store", ObjectStore::Local, &store);
    let env = fields.or(
        issues,
        "env",
        Default::default(),
        &reader::string_map(check_env_name),
    );
    Some(Cluster {
        nodes: u32::try_from(nodes?).ok()?,
        runtime: runtime?,
        election_timeout: election_timeout?,
        object_store: object_store?,
        env: env?,
    })
}

/// Above zero, whole milliseconds (the broker takes milliseconds).
fn election_timeout(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Duration> {
    let timeout = reader::positive_duration(issues, value, path)?;
    if duration::is_whole_milliseconds(timeout) {
        return Some(timeout);
    }
    let message = format!(
        "the broker takes whole milliseconds; {} is not",
        duration::format(timeout)
    );
    issues.at_value(path, message);
    None
}

fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an environment variable name (letters, digits, `_`; not starting with a digit)"
        ))
    }
}

fn read_topic(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Topic> {
    let what = "a topic: { name, partitions, replication_factor }";
    let fields = Fields::open(issues, value, path, what)?;
    fields.allow_only(issues, "a topic", &TOPIC_KEYS, &no_hint);
    let topic_name = |text: &str| check_topic_name(text).map(|()| text.to_string());
    let name = fields.required(
        issues,
        "name",
        "the topic's name",
        &reader::parsed(topic_name, "a topic name"),
    );
    let partition_count = reader::whole(1..=u64::from(MAX_PARTITIONS), "partitions");
    let partitions = fields.required(issues, "partitions", "a number", &partition_count);
    let replicas = reader::whole(1..=u64::from(MAX_NODES), "replicas per partition");
    let replication_factor = fields.required(issues, "replication_factor", "a number", &replicas);
    Some(Topic {
        name: name?,
        partitions: u32::try_from(partitions?).ok()?,
        replication_factor: u32::try_from(replication_factor?).ok()?,
    })
}

fn read_workload(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Workload> {
    let fields = Fields::open(
        issues,
        value,
        path,
        "a mapping with `duration` and `producers`",
    )?;
    fields.allow_only(issues, "`workload`", &WORKLOAD_KEYS, &no_hint);
    let window = "the measured window, like 60s";
    let duration = fields.required(issues, "duration", window, &reader::positive_duration);
    let warmup = fields.or(issues, "warmup", Duration::ZERO, &reader::duration);
    let producers_list = reader::list("producers", &read_producer);
    let producers = fields.required(issues, "producers", "a list of producers", &producers_list);
    if producers.as_ref().is_some_and(Vec::is_empty) {
        issues.at_value(&path.key("producers"), "expected at least one producer");
    }
    let consumers = fields.or(
        issues,
        "consumers",
        Vec::new(),
        &reader::list("consumers", &read_consumer),
    );
    Some(Workload {
        duration: duration?,
        warmup: warmup?,
        producers: producers.filter(|producers| !producers.is_empty())?,
        consumers: consumers?,
    })
}

fn read_producer(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Producer> {
    let fields = Fields::open(
        issues,
        value,
        path,
        "a producer: a mapping with `topic`, `rate`, ...",
    )?;
    fields.allow_only(issues, "a producer", &PRODUCER_KEYS, &property_hint);
    let topic = fields.required(issues, "topic", "a topic from `topics`", &reader::string);
    let instances = reader::whole(1..=u64::from(MAX_INSTANCES), "producer instances");
    let count = fields.or(issues, "count", 1, &instances);
    let per_second = reader::whole(
        0..=u64::MAX,
        "messages per second per instance; 0 = as fast as it can",
    );
    let rate = fields.required(
        issues,
        "rate",
        "messages per second per instance",
        &per_second,
    );
    let size_range = u64::from(MIN_MESSAGE_SIZE_BYTES)..=u64::from(MAX_MESSAGE_SIZE_BYTES);
    let sizes = reader::whole(size_range, "bytes per message");
    let message_size = fields.required(issues, "message_size", "bytes per message", &sizes);
    let key_kinds = [
        ("none", Keys::None),
        ("round_robin", Keys::RoundRobin),
        ("random", Keys::Random),
    ];
    let keys = fields.or(issues, "keys", Keys::None, &reader::choice(&key_kinds));
    let ack_kinds = [("all", Acks::All), ("1", Acks::Leader), ("0", Acks::None)];
    let acks = fields.or(issues, "acks", Acks::All, &reader::choice(&ack_kinds));
    let idempotent = fields.or(issues, "idempotent", false, &reader::boolean);
    let codecs = [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    let compression = fields.or(
        issues,
        "compression",
        Compression::None,
        &reader::choice(&codecs),
    );
    let config = fields.or(
        issues,
        "config",
        Default::default(),
        &reader::string_map(check_property),
    );
    let stop_after = fields.optional(issues, "stop_after", &reader::positive_duration);
    Some(Producer {
        topic: topic?,
        count: u32::try_from(count?).ok()?,
        rate: rate?,
        message_size: u32::try_from(message_size?).ok()?,
        keys: keys?,
        acks: acks?,
        idempotent: idempotent?,
        compression: compression?,
        config: config?,
        stop_after: stop_after?,
    })
}

/// A producer key that looks like a librdkafka property belongs under `config`.
fn property_hint(key: &str) -> Option<String> {
    key.contains('.').then(|| {
        format!("librdkafka properties go under `config`, like config: {{ {key}: \"...\" }}")
    })
}

fn check_property(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("`{name}` is not a librdkafka property name"));
    }
    Ok(())
}

fn read_consumer(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Consumer> {
    let fields = Fields::open(issues, value, path, "a consumer: { topic, group, count }")?;
    fields.allow_only(issues, "a consumer", &CONSUMER_KEYS, &no_hint);
    let topic = fields.required(issues, "topic", "a topic from `topics`", &reader::string);
    let group_id = |text: &str| {
        if text.is_empty() {
            Err("expected a consumer group id, found an empty string".to_string())
        } else {
            Ok(text.to_string())
        }
    };
    let group = fields.required(
        issues,
        "group",
        "a consumer group id",
        &reader::parsed(group_id, "a group id"),
    );
    let instances = reader::whole(1..=u64::from(MAX_INSTANCES), "consumer instances");
    let count = fields.or(issues, "count", 1, &instances);
    Some(Consumer {
        topic: topic?,
        group: group?,
        count: u32::try_from(count?).ok()?,
    })
}

fn read_checks(issues: &mut Issues, value: &Value, path: &KeyPath) -> Option<Checks> {
    let fields = Fields::open(issues, value, path, "a mapping of checks")?;
    fields.allow_only(issues, "`checks`", &CHECK_KEYS, &no_hint);
    let count = reader::whole(0..=u64::MAX, "messages");
    let lost = fields.or(issues, "lost", 0, &count);
    let duplicates = fields.or(issues, "duplicates", 0, &count);
    let reordered = fields.or(issues, "reordered", 0, &count);
    let limit = &reader::duration;
    let max_unavailability = fields.optional(issues, "max_unavailability", limit);
    let per_second = reader::whole(0..=u64::MAX, "acknowledged messages per second");
    let min_throughput = fields.optional(issues, "min_throughput", &per_second);
    let max_p99_latency = fields.optional(issues, "max_p99_latency", limit);
    let max_recovery = fields.optional(issues, "max_recovery", limit);
    Some(Checks {
        lost: lost?,
        duplicates: duplicates?,
        reordered: reordered?,
        max_unavailability: max_unavailability?,
        min_throughput: min_throughput?,
        max_p99_latency: max_p99_latency?,
        max_recovery: max_recovery?,
    })
}
