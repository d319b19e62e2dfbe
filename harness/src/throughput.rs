//! `chronik-bench throughput`: produce (as fast as acknowledged, or at a fixed rate), then
//! consume everything back, with librdkafka. Reports messages/s and MB/s (10^6 bytes) for
//! both, produce latency percentiles measured from each message's intended send time (so a
//! stalled broker cannot hide behind a stalled generator), and the brokers' peak resident
//! memory when the tool launched them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use hdrhistogram::Histogram;
use std::sync::Mutex;

use crate::broker_process::{bootstrap as cluster_bootstrap, find_broker_binary, start_cluster};
use crate::workload::{
    unthrottled_batch_messages, KeyChooser, PartitionWindows, PayloadBuffer, HEADER_BYTES,
    UNTHROTTLED_BATCH_BYTES, UNTHROTTLED_LINGER_MS, WINDOWED_QUEUE_KIB,
};

/// A fixed-rate producer's linger and client queue: librdkafka's default linger, and a queue
/// that holds any backlog a stalled broker builds up during a run.
const THROTTLED_LINGER_MS: u64 = 5;
const THROTTLED_QUEUE_KIB: u64 = 1024 * 1024;

#[derive(Clone, Debug, clap::Args)]
pub struct ThroughputArgs {
    /// An already running broker; without it a broker is launched on a temporary directory.
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// The chronik-server binary to launch (default: next to chronik-bench).
    #[arg(long, env = "CHRONIK_SERVER_BIN")]
    pub broker_bin: Option<PathBuf>,
    /// Brokers to launch (a cluster when more than one).
    #[arg(long, default_value_t = 1)]
    pub nodes: u64,
    /// Replicas per partition (default: the node count, at most 3).
    #[arg(long)]
    pub replication_factor: Option<i32>,
    /// Total messages per second to offer; 0 = as fast as acknowledged.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Producer clients, each on its own thread with its own connections, sharing the rate.
    /// At `--rate 0` each keeps its own batch per partition outstanding: an idempotent
    /// librdkafka producer has one request in flight per partition, so one client measures
    /// its round trip as much as the brokers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub producers: u32,
    #[arg(long, default_value = "throughput")]
    pub topic: String,
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// How long to produce.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// The first seconds of producing are not counted in the latency percentiles (clients
    /// still discovering leaders).
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
    /// all | 1 | 0
    #[arg(long, default_value = "all")]
    pub acks: String,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub idempotent: bool,
    /// none | gzip | snappy | lz4 | zstd
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// How long the producer waits to fill a batch (default: 5 ms at a fixed rate; at
    /// `--rate 0`, the scenario runner's unthrottled settings: 50 ms, with a batch per
    /// partition outstanding at most, so the client does not spin on full pipelines).
    #[arg(long)]
    pub linger_ms: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct ThroughputReport {
    pub nodes: u64,
    pub replication_factor: i32,
    pub rate: u64,
    pub producers: u32,
    pub partitions: i32,
    pub message_bytes: usize,
    pub acks: String,
    pub idempotent: bool,
    pub produced_messages: u64,
    pub produce_seconds: f64,
    pub produce_messages_per_second: f64,
    pub produce_megabytes_per_second: f64,
    pub consumed_messages: u64,
    pub consume_seconds: f64,
    pub consume_messages_per_second: f64,
    pub consume_megabytes_per_second: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_p999: f64,
    pub latency_ms_max: f64,
    /// The largest peak resident memory among the launched brokers.
    pub broker_peak_resident_megabytes: Option<f64>,
}

struct DeliveryCounts {
    acknowledged: AtomicU64,
    failed: AtomicU64,
    /// Microseconds from intended send time to acknowledgement, after the warm-up.
    latency_us: Mutex<Histogram<u64>>,
    /// Messages meant to be sent before this are not in the histogram.
    warmup_end: Instant,
}

/// One producer's delivery reports: the shared counts, and its own partition windows (at
/// `--rate 0`: at most a batch outstanding per partition).
struct CountingContext {
    counts: Arc<DeliveryCounts>,
    windows: Option<Arc<PartitionWindows>>,
}

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    /// The message's intended send time.
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, result: &DeliveryResult<'_>, intended: Box<Instant>) {
        if let Some(windows) = &self.windows {
            let partition = match result {
                Ok(message) | Err((_, message)) => message.partition(),
            };
            windows.release(partition);
        }
        match result {
            Ok(_) => {
                self.counts.acknowledged.fetch_add(1, Ordering::Relaxed);
                if *intended < self.counts.warmup_end {
                    return;
                }
                let latency_us = intended.elapsed().as_micros() as u64;
                let mut histogram = self.counts.latency_us.lock().expect("histogram lock");
                let _ = histogram.record(latency_us.max(1));
            }
            Err(_) => {
                self.counts.failed.fetch_add(1, Ordering::Relaxed);
            }
        };
    }
}

pub fn run(args: &ThroughputArgs) -> anyhow::Result<ThroughputReport> {
    if args.message_bytes < HEADER_BYTES {
        bail!("--message-bytes must be at least {HEADER_BYTES}, the bench message's header");
    }
    let scratch = tempfile::Builder::new()
        .prefix("chronik-throughput-")
        .tempdir()?;
    let replication_factor = args.replication_factor.unwrap_or(args.nodes.min(3) as i32);
    let mut launched = Vec::new();
    let bootstrap = match &args.bootstrap {
        Some(bootstrap) => bootstrap.clone(),
        None => {
            let binary = find_broker_binary(args.broker_bin.as_deref())?;
            launched = start_cluster(&binary, scratch.path(), args.nodes, &[])?;
            cluster_bootstrap(&launched)
        }
    };
    create_topic(&bootstrap, &args.topic, args.partitions, replication_factor)?;
    let produced = produce(&bootstrap, args)?;
    let (consumed_messages, consume_seconds) = consume(&bootstrap, args, produced.acknowledged)?;
    let mut peak_bytes = None;
    for broker in &launched {
        let peak = broker.peak_resident_bytes()?;
        peak_bytes = Some(peak_bytes.map_or(peak, |current: u64| current.max(peak)));
    }
    for broker in &mut launched {
        broker.stop()?;
    }
    let megabytes = |messages: u64| messages as f64 * args.message_bytes as f64 / 1e6;
    let percentile = |quantile: f64| produced.latency_us.value_at_quantile(quantile) as f64 / 1e3;
    Ok(ThroughputReport {
        nodes: if args.bootstrap.is_some() {
            0
        } else {
            args.nodes
        },
        replication_factor,
        rate: args.rate,
        producers: args.producers,
        partitions: args.partitions,
        message_bytes: args.message_bytes,
        acks: args.acks.clone(),
        idempotent: args.idempotent,
        produced_messages: produced.acknowledged,
        produce_seconds: produced.seconds,
        produce_messages_per_second: produced.acknowledged as f64 / produced.seconds,
        produce_megabytes_per_second: megabytes(produced.acknowledged) / produced.seconds,
        consumed_messages,
        consume_seconds,
        consume_messages_per_second: consumed_messages as f64 / consume_seconds,
        consume_megabytes_per_second: megabytes(consumed_messages) / consume_seconds,
        latency_ms_p50: percentile(0.5),
        latency_ms_p99: percentile(0.99),
        latency_ms_p999: percentile(0.999),
        latency_ms_max: produced.latency_us.max() as f64 / 1e3,
        broker_peak_resident_megabytes: peak_bytes.map(|bytes| bytes as f64 / 1e6),
    })
}

struct Produced {
    acknowledged: u64,
    seconds: f64,
    latency_us: Histogram<u64>,
}

/// Messages per batch, and per partition outstanding at `--rate 0`, as the scenario runner's.
fn batch_messages(message_bytes: usize) -> u32 {
    unthrottled_batch_messages(u32::try_from(message_bytes).unwrap_or(u32::MAX))
}

pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4");
    config
}

pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let new_topic = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    let results = runtime.block_on(admin.create_topics([&new_topic], &AdminOptions::new()))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

fn produce(bootstrap: &str, args: &ThroughputArgs) -> anyhow::Result<Produced> {
    let counts = Arc::new(DeliveryCounts {
        acknowledged: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latency_us: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        warmup_end: Instant::now() + Duration::from_secs(args.warmup_seconds),
    });
    let started = Instant::now();
    let sent: u64 = std::thread::scope(|scope| {
        let producers: Vec<_> = (0..args.producers)
            .map(|index| {
                let counts = counts.clone();
                std::thread::Builder::new()
                    .name(format!("producer-{index}"))
                    .spawn_scoped(scope, move || {
                        produce_one(bootstrap, args, index, counts, started)
                    })
                    .expect("spawning a producer thread")
            })
            .collect();
        producers
            .into_iter()
            .map(|producer| producer.join().expect("a producer thread panicked"))
            .sum::<anyhow::Result<u64>>()
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let failed = counts.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} of {sent} messages were not acknowledged");
    }
    let latency_us = counts.latency_us.lock().expect("histogram lock").clone();
    Ok(Produced {
        acknowledged: counts.acknowledged.load(Ordering::Relaxed),
        seconds,
        latency_us,
    })
}

/// Producer `index` of `args.producers`: sends its share of the rate for `args.seconds` from
/// `started`, then flushes. Returns how many messages it sent.
fn produce_one(
    bootstrap: &str,
    args: &ThroughputArgs,
    index: u32,
    counts: Arc<DeliveryCounts>,
    started: Instant,
) -> anyhow::Result<u64> {
    let windows = (args.rate == 0).then(|| {
        Arc::new(PartitionWindows::new(
            args.partitions as u32,
            batch_messages(args.message_bytes),
        ))
    });
    let (default_linger_ms, queue_kib) = if args.rate == 0 {
        (UNTHROTTLED_LINGER_MS, WINDOWED_QUEUE_KIB)
    } else {
        // A fixed rate must never wait on the client's queue: that would hide a slow broker.
        (THROTTLED_LINGER_MS, THROTTLED_QUEUE_KIB)
    };
    let context = CountingContext {
        counts,
        windows: windows.clone(),
    };
    let producer: ThreadedProducer<CountingContext> = client_config(bootstrap)
        .set("acks", &args.acks)
        .set("enable.idempotence", args.idempotent.to_string())
        .set("compression.codec", &args.compression)
        .set(
            "linger.ms",
            args.linger_ms.unwrap_or(default_linger_ms).to_string(),
        )
        .set("batch.size", UNTHROTTLED_BATCH_BYTES.to_string())
        .set("queue.buffering.max.kbytes", queue_kib.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set(
            "batch.num.messages",
            batch_messages(args.message_bytes).to_string(),
        )
        .create_with_context(context)
        .context("creating the producer")?;
    // Bench messages (each with its own filler), so compression meets realistic data.
    let mut payload = PayloadBuffer::new(
        index,
        args.message_bytes,
        &mut fastrand::Rng::with_seed(1 + u64::from(index)),
    );
    let rate = args.rate as f64 / f64::from(args.producers);
    let window = Duration::from_secs(args.seconds);
    let mut sent = 0u64;
    let mut partitions = KeyChooser::round_robin(args.partitions as u32, index);
    let windows = windows.as_deref();
    // Waits for a window or for room in the client's queue end with the producing window too,
    // so a stalled broker cannot hold the tool past it.
    'sending: while started.elapsed() < window {
        let intended = if args.rate == 0 {
            Instant::now()
        } else {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            due
        };
        let has_room = |partition| windows.is_none_or(|windows| windows.has_room(partition));
        while !partitions.advance_to_accepted(has_room) {
            if started.elapsed() >= window {
                break 'sending;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let partition = partitions.next_placement().partition.unwrap_or(0);
        if let Some(windows) = windows {
            windows.take(partition);
        }
        let mut record =
            BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(&args.topic, Box::new(intended))
                .payload(payload.message(sent))
                .partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    if started.elapsed() >= window {
                        if let Some(windows) = windows {
                            windows.release(partition);
                        }
                        break 'sending;
                    }
                    record = returned;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((error, _)) => bail!("send failed: {error}"),
            }
        }
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the producer")?;
    Ok(sent)
}

fn consume(bootstrap: &str, args: &ThroughputArgs, expected: u64) -> anyhow::Result<(u64, f64)> {
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", "chronik-throughput")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "8388608")
        .set("queued.max.messages.kbytes", "1048576")
        .create()
        .context("creating the consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..args.partitions {
        assignment.add_partition_offset(&args.topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let mut consumed = 0u64;
    while consumed < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                if message.payload().map_or(0, <[u8]>::len) != args.message_bytes {
                    bail!(
                        "message at {}:{} has the wrong size",
                        message.partition(),
                        message.offset()
                    );
                }
                consumed += 1;
            }
            Some(Err(error)) => bail!("consume failed: {error}"),
            None => {}
        }
    }
    if consumed < expected {
        bail!("consumed only {consumed} of {expected} acknowledged messages");
    }
    Ok((consumed, started.elapsed().as_secs_f64()))
}

pub fn print_report(report: &ThroughputReport, as_json: bool) {
    if as_json {
        crate::print_json(report);
        return;
    }
    println!(
        "produce: {} messages of {} B from {} producer(s), {} partitions, {} node(s), RF={}, acks={}, idempotent={}: {:.0} msg/s, {:.1} MB/s",
        report.produced_messages,
        report.message_bytes,
        report.producers,
        report.partitions,
        report.nodes,
        report.replication_factor,
        report.acks,
        report.idempotent,
        report.produce_messages_per_second,
        report.produce_megabytes_per_second
    );
    println!(
        "produce latency from intended send time (after the warm-up): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        report.latency_ms_p50, report.latency_ms_p99, report.latency_ms_p999, report.latency_ms_max
    );
    println!(
        "consume: {} messages: {:.0} msg/s, {:.1} MB/s",
        report.consumed_messages,
        report.consume_messages_per_second,
        report.consume_megabytes_per_second
    );
    if let Some(peak) = report.broker_peak_resident_megabytes {
        println!("broker peak resident memory: {peak:.0} MB");
    }
}
