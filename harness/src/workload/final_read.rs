//! The final read: after the cluster has healed, a fresh client (no group membership, manual
//! assignment) reads every partition of the given topics once, from its low watermark (offset
//! 0 unless the log was trimmed) to the high watermark it had when the read began. It is the
//! reference for what the log holds: order, duplicates, and what each offset contains.
//!
//! Topics are read one after the other, so an end-of-partition event (which names only the
//! partition) is unambiguous. A partition whose end arrives before its high watermark (the log
//! shrank) is left where it ended; one not finished by the deadline too. Both show as an
//! extent with `next_offset < high_watermark` (see `FinalRead::is_complete`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::client::base_config;
use super::payload::decode;
use super::records::{FinalRead, PartitionExtent, ReadRecord, TopicIndex};

/// How long one poll waits for a record.
const POLL_TIMEOUT_MS: u64 = 100;

/// Reads `topics` (name, partition count) from start to high watermark, within `timeout`.
/// Fails only when the watermarks cannot be learnt; an unfinished read is returned as such.
pub fn final_read(
    bootstrap: &str,
    topics: &[(String, u32)],
    timeout: Duration,
) -> anyhow::Result<FinalRead> {
    let deadline = Instant::now() + timeout;
    let client: BaseConsumer = base_config(bootstrap)
        .set("group.id", "chronik-bench-final-read")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .create()
        .context("creating the final reader")?;
    let mut read = FinalRead {
        topics: topics.iter().map(|(name, _)| name.clone()).collect(),
        ..FinalRead::default()
    };
    for (index, (topic, partitions)) in topics.iter().enumerate() {
        let first_extent = read.partitions.len();
        for partition in 0..*partitions as i32 {
            let (low_watermark, high_watermark) = watermarks(&client, topic, partition, deadline)?;
            read.partitions.push(PartitionExtent {
                topic: index as TopicIndex,
                partition,
                low_watermark,
                high_watermark,
                next_offset: low_watermark,
            });
        }
        read_topic(
            &client,
            topic,
            index as TopicIndex,
            &mut read.partitions[first_extent..],
            &mut read.records,
            deadline,
        )?;
    }
    Ok(read)
}

fn watermarks(
    client: &BaseConsumer,
    topic: &str,
    partition: i32,
    deadline: Instant,
) -> anyhow::Result<(i64, i64)> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match client.fetch_watermarks(topic, partition, remaining.max(Duration::from_millis(1))) {
            Ok(watermarks) => return Ok(watermarks),
            Err(error) if Instant::now() >= deadline => {
                bail!("the watermarks of {topic}/{partition}: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Reads the partitions of one topic until each reaches its high watermark or its end.
fn read_topic(
    client: &BaseConsumer,
    topic: &str,
    topic_index: TopicIndex,
    extents: &mut [PartitionExtent],
    records: &mut Vec<ReadRecord>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut assignment = TopicPartitionList::new();
    let mut unfinished = 0usize;
    for extent in extents.iter() {
        if extent.high_watermark > extent.low_watermark {
            assignment.add_partition_offset(
                topic,
                extent.partition,
                Offset::Offset(extent.low_watermark),
            )?;
            unfinished += 1;
        }
    }
    if unfinished == 0 {
        return Ok(());
    }
    client.assign(&assignment)?;
    let mut finished: Vec<bool> = extents
        .iter()
        .map(|extent| extent.high_watermark <= extent.low_watermark)
        .collect();
    // Extents are in partition order from 0, so a partition is its extent's index.
    let extent_count = extents.len();
    let extent_index = |partition: i32| {
        usize::try_from(partition)
            .ok()
            .filter(|index| *index < extent_count)
    };
    while unfinished > 0 && Instant::now() < deadline {
        let partition = match client.poll(Duration::from_millis(POLL_TIMEOUT_MS)) {
            None => continue,
            Some(Ok(message)) => {
                records.push(ReadRecord {
                    topic: topic_index,
                    partition: message.partition(),
                    offset: message.offset(),
                    message: decode(message.payload()),
                });
                let Some(index) = extent_index(message.partition()) else {
                    continue;
                };
                let extent = &mut extents[index];
                extent.next_offset = extent.next_offset.max(message.offset() + 1);
                if extent.next_offset < extent.high_watermark {
                    continue;
                }
                index
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => match extent_index(partition) {
                Some(index) => index,
                None => continue,
            },
            Some(Err(error)) => {
                tracing::warn!(%error, topic, "final read");
                continue;
            }
        };
        if !finished[partition] {
            finished[partition] = true;
            unfinished -= 1;
        }
    }
    client.unassign()?;
    Ok(())
}
