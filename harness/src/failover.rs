//! `chronik-bench failover`: how long a partition is unavailable when its leader is killed.
//!
//! A cluster is launched, an idempotent acks=all producer writes at a fixed rate, and the
//! leader of partition 0 is killed (SIGKILL) and restarted, `--kills` times. For each kill the
//! unavailability is the longest gap between two successive acknowledgements on partition 0
//! around the kill. Reports every window, the median and the maximum.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use serde::Serialize;

use crate::broker_process::{bootstrap, find_broker_binary, start_cluster};
use crate::throughput::{client_config, create_topic};

#[derive(Clone, Debug, clap::Args)]
pub struct FailoverArgs {
    #[arg(long, env = "CHRONIK_SERVER_BIN")]
    pub broker_bin: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    #[arg(long, default_value_t = 10)]
    pub kills: u32,
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Messages per second offered over all partitions.
    #[arg(long, default_value_t = 1500)]
    pub rate: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct FailoverReport {
    pub nodes: u64,
    pub rate: u64,
    pub unavailability_ms: Vec<f64>,
    pub unavailability_ms_median: f64,
    pub unavailability_ms_max: f64,
    pub acknowledged: u64,
    pub failed: u64,
}

#[derive(Default)]
struct Acks {
    /// When each partition-0 message was acknowledged.
    partition_zero: Mutex<Vec<Instant>>,
    acknowledged: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

struct AckContext(Arc<Acks>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        use std::sync::atomic::Ordering;
        match result {
            Ok(message) => {
                self.0.acknowledged.fetch_add(1, Ordering::Relaxed);
                if rdkafka::message::Message::partition(message) == 0 {
                    self.0
                        .partition_zero
                        .lock()
                        .expect("acks lock")
                        .push(Instant::now());
                }
            }
            Err((error, _)) => {
                let failed = self.0.failed.fetch_add(1, Ordering::Relaxed);
                if failed < 5 {
                    tracing::warn!(%error, "delivery failed");
                }
            }
        }
    }
}

fn leader_of_partition_zero(bootstrap: &str, topic: &str) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = client_config(bootstrap).create()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            let leader = metadata.topics().first().and_then(|topic| {
                topic
                    .partitions()
                    .iter()
                    .find(|p| p.id() == 0)
                    .map(|p| p.leader())
            });
            if let Some(leader) = leader.filter(|leader| *leader > 0) {
                return Ok(leader as u64);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("no leader for {topic}/0")
}

pub fn run(args: &FailoverArgs) -> anyhow::Result<FailoverReport> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let scratch = tempfile::Builder::new()
        .prefix("chronik-failover-")
        .tempdir()?;
    let binary = find_broker_binary(args.broker_bin.as_deref())?;
    let mut brokers = start_cluster(&binary, scratch.path(), args.nodes, &[])?;
    let bootstrap = bootstrap(&brokers);
    let topic = "failover";
    create_topic(&bootstrap, topic, args.partitions, args.nodes.min(3) as i32)?;
    let acks = Arc::new(Acks::default());
    let producer: ThreadedProducer<AckContext> = client_config(&bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "120000")
        // A dead leader answers nothing: give up on it quickly and look again.
        .set("request.timeout.ms", "2000")
        .set("socket.timeout.ms", "2000")
        .set("topic.metadata.refresh.interval.ms", "500")
        .set("retry.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .create_with_context(AckContext(acks.clone()))
        .context("creating the producer")?;
    let stop = Arc::new(AtomicBool::new(false));
    let generator = {
        let (stop, rate, partitions) = (stop.clone(), args.rate.max(1), args.partitions);
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let value = sent.to_string();
                let partition = (sent % partitions as u64) as i32;
                let record = BaseRecord::<(), str>::to(topic)
                    .payload(&value)
                    .partition(partition);
                match producer.send(record) {
                    Ok(()) => sent += 1,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => sent += 1,
                }
            }
            let _ = producer.flush(Duration::from_secs(120));
        })
    };
    let mut windows = Vec::new();
    std::thread::sleep(Duration::from_secs(3));
    for kill in 1..=args.kills {
        let leader = leader_of_partition_zero(&bootstrap, topic)?;
        let killed_at = Instant::now();
        brokers[leader as usize - 1].kill();
        std::thread::sleep(Duration::from_millis(DOWN_MS));
        let window = longest_gap(&acks.partition_zero.lock().expect("acks lock"), killed_at);
        brokers[leader as usize - 1].restart()?;
        // Let it catch up and take back its preferred leaderships before the next kill.
        std::thread::sleep(Duration::from_secs(4));
        eprintln!("kill {kill}: node {leader}, partition 0 unavailable for {window:.0} ms");
        windows.push(window);
    }
    stop.store(true, Ordering::Relaxed);
    generator
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator panicked"))?;
    for broker in &mut brokers {
        broker.stop()?;
    }
    let mut sorted = windows.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(FailoverReport {
        nodes: args.nodes,
        rate: args.rate,
        unavailability_ms_median: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
        unavailability_ms_max: sorted.last().copied().unwrap_or(0.0),
        unavailability_ms: windows,
        acknowledged: acks.acknowledged.load(Ordering::Relaxed),
        failed: acks.failed.load(Ordering::Relaxed),
    })
}

/// How long a killed leader stays down; the unavailability is measured within this window.
const DOWN_MS: u64 = 4_000;

/// The longest gap between successive acknowledgements from the last one before the kill to
/// the end of the down window (a window with no acknowledgement at all counts whole).
fn longest_gap(acknowledged: &[Instant], killed_at: Instant) -> f64 {
    let mut times: Vec<Instant> = acknowledged.to_vec();
    times.sort();
    let before = times
        .iter()
        .rev()
        .find(|time| **time <= killed_at)
        .copied()
        .unwrap_or(killed_at);
    let mut longest = Duration::ZERO;
    let mut previous = before;
    let window_end = killed_at + Duration::from_millis(DOWN_MS);
    for time in times
        .iter()
        .filter(|time| **time > killed_at && **time <= window_end)
    {
        longest = longest.max(time.duration_since(previous));
        previous = *time;
    }
    longest = longest.max(window_end.duration_since(previous));
    longest.as_secs_f64() * 1e3
}

pub fn print_report(report: &FailoverReport, as_json: bool) {
    if as_json {
        crate::print_json(report);
        return;
    }
    println!(
        "leader kills on {} nodes at {} msg/s: unavailability median {:.0} ms, max {:.0} ms ({:?}); {} acknowledged, {} failed",
        report.nodes,
        report.rate,
        report.unavailability_ms_median,
        report.unavailability_ms_max,
        report.unavailability_ms.iter().map(|ms| ms.round() as u64).collect::<Vec<_>>(),
        report.acknowledged,
        report.failed
    );
}
