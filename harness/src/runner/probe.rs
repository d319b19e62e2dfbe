//! After healing, every partition must accept a write again: one acks=all probe record per
//! partition, each of which must be acknowledged within `PROBE_TIMEOUT_MS`. A cluster whose
//! Raft groups look healthy but which no longer completes writes (a stalled broker) fails
//! here, with the verdict `liveness`. Probe records are not bench messages (no producer id
//! and sequence), so the analysis counts them as foreign, never as lost or duplicated.

use std::time::Duration;

use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use std::sync::mpsc;

use crate::throughput::client_config;

/// How long each probe may take to be acknowledged.
pub const PROBE_TIMEOUT_MS: u64 = 15_000;

/// The probe record's value.
pub const PROBE_VALUE: &[u8] = b"chronik-bench liveness probe";

struct ProbeContext(mpsc::SyncSender<(String, i32, Result<(), String>)>);

impl ClientContext for ProbeContext {}

impl ProducerContext for ProbeContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = match result {
            Ok(message) => (
                rdkafka::Message::topic(message).to_string(),
                rdkafka::Message::partition(message),
                Ok(()),
            ),
            Err((error, message)) => (
                rdkafka::Message::topic(message).to_string(),
                rdkafka::Message::partition(message),
                Err(error.to_string()),
            ),
        };
        let _ = self.0.try_send(outcome);
    }
}

/// Writes one probe to every partition; returns what did not accept it.
pub fn probe_writes(bootstrap: &str, topics: &[(String, u32)]) -> Vec<String> {
    let total: usize = topics
        .iter()
        .map(|(_, partitions)| *partitions as usize)
        .sum();
    let (sender, receiver) = mpsc::sync_channel(total.max(1));
    let producer: ThreadedProducer<ProbeContext> = match client_config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", PROBE_TIMEOUT_MS.to_string())
        .create_with_context(ProbeContext(sender))
    {
        Ok(producer) => producer,
        Err(error) => return vec![format!("probe producer: {error}")],
    };
    let mut stuck = Vec::new();
    for (topic, partitions) in topics {
        for partition in 0..*partitions as i32 {
            let record = BaseRecord::<(), [u8]>::to(topic)
                .partition(partition)
                .payload(PROBE_VALUE);
            if let Err((error, _)) = producer.send(record) {
                stuck.push(format!(
                    "{topic}/{partition} refused a probe write: {error}"
                ));
            }
        }
    }
    let _ = producer.flush(Duration::from_millis(PROBE_TIMEOUT_MS + 5_000));
    let mut acknowledged = 0;
    while let Ok((topic, partition, outcome)) = receiver.try_recv() {
        match outcome {
            Ok(()) => acknowledged += 1,
            Err(error) => stuck.push(format!("{topic}/{partition} did not take a write: {error}")),
        }
    }
    if stuck.is_empty() && acknowledged < total {
        stuck.push(format!(
            "{} of {total} partitions did not acknowledge a write within {PROBE_TIMEOUT_MS} ms",
            total - acknowledged
        ));
    }
    stuck
}
